"""The ``singvc`` command line. The only place that prints, exits, or maps errors to exit codes.

Exit codes: 0 success, 1 a batch finished with some songs failed, 2 bad input (file, flag, reference), 3 model or weights unavailable,
4 output cannot be written, 70 internal error, 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from . import ui, weights
from .audio import fit_length, load_audio, resample
from .cache import KINDS, Cache, parse_gigabytes
from .config import preset_layer
from .converters import CONVERTERS
from .cover import Singvc
from .doctor import check_stack, describe, require_stack
from .engine import load_voice
from .evaluate import evaluate, load_encoder
from .errors import SingvcError, SingvcWarning, UserInputError, error_line
from .jobs import cover_file, separate_file, stems_file
from .jsonio import dumps as json_dumps
from .pitch import PITCH_MODELS, PitchTrack
from .plan import plan_transposition
from .recipe import build_engine, list_songs, load_recipe, run_batch, run_recipe
from .runfolders import (
    Cancelled, audio_bytes, check_cache_dir, check_output_file, clear_cancel, request_cancel,
)
from .settings import GROUPS, SCHEMA, Layer, Setting, problem, resolve
from .voice import analyse_voice, check_name, list_profiles, load_profile, profiles_dir


class _UsageError(Exception):
    """A command-line argument error (argparse), reported by :func:`main` as one line, exit 2."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but an argument error raises :class:`_UsageError` instead of printing the usage
    and exiting (subcommand parsers are made with the same class)."""

    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message, self.prog)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        args, extras = self.parse_known_args(args, namespace)
        if extras:  # point to the help of the command they were given to
            command = " ".join(v for v in (getattr(args, "command", None), getattr(args, "voice_command", None)) if v)
            raise _UsageError(f"unrecognized arguments: {' '.join(extras)}", f"{self.prog} {command}".strip())
        return args


def _flag_type(setting: Setting):
    """An argparse ``type`` for a setting's flag: the text read as the setting's type and checked
    against the schema (choices, range, format) when the command line is read, before any work."""
    def parse(text: str):
        value: object = text
        if setting.kind in (int, float):
            try:
                value = int(text) if setting.kind is int else float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"must be {'an integer' if setting.kind is int else 'a number'} (got {text!r})") from None
        why = problem(setting.name, value)
        if why:
            raise argparse.ArgumentTypeError(why.replace(f"(got {value!r})", f"(got {text})"))
        return value

    parse.__name__ = setting.name
    return parse


def _help(setting: Setting) -> str:
    """A flag's help from the schema: what it does, its unit, choices and default."""
    text = setting.flag_help or setting.help
    if setting.name == "converter":
        text = "; ".join(f"{name}: {cls.summary}" for name, cls in CONVERTERS.items())
    if setting.unit:
        text += f"; in {setting.unit}"
    if setting.const is None and setting.default is not None:
        text += f". Default: {setting.default}"
    return text


def _add_settings(p: argparse.ArgumentParser, command: str) -> None:
    """The flags of every setting that ``command`` takes, grouped as in the schema; a flag the
    user did not give is absent from the parsed arguments (so a preset's value is not overridden)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for group in GROUPS:
        for setting in SCHEMA.values():
            if setting.group != group or setting.flag is None or command not in setting.commands:
                continue
            if group not in groups:
                groups[group] = p.add_argument_group(group)
            if setting.const is not None:
                groups[group].add_argument(setting.flag, dest=setting.name, action="store_const", const=setting.const,
                                           default=argparse.SUPPRESS, help=_help(setting))
            else:
                groups[group].add_argument(setting.flag, dest=setting.name, type=_flag_type(setting),
                                           default=argparse.SUPPRESS,
                                           metavar=setting.metavar or "{%s}" % ",".join(map(str, setting.choices or ())),
                                           help=_help(setting))
    if command != "run":
        p.add_argument("--preset", metavar="NAME",
                       help="settings preset: quality (default settings), natural, strong or fast, or a .toml file "
                            "(see presets/); flags given explicitly win")


def _flag_settings(args: argparse.Namespace) -> Layer:
    """The settings given as flags (a layer of :func:`singvc.settings.resolve`)."""
    given = {name: getattr(args, name) for name, s in SCHEMA.items() if s.flag and hasattr(args, name)}
    return Layer(given, lambda name: SCHEMA[name].flag)


def _path(text: str) -> str:
    """An argparse ``type`` for a file or folder: an empty string would mean the working directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a path)")
    return text


def _gigabytes(text: str) -> float:
    """An argparse ``type`` for ``--max-gb`` (:func:`singvc.cache.parse_gigabytes`)."""
    value = parse_gigabytes(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be a finite number of GB, 0 or more (got {text})")
    return value


def _add_common(p: argparse.ArgumentParser, command: str) -> None:
    """The settings flags of ``command``, the cache options and ``--quiet``."""
    _add_settings(p, command)
    g = p.add_argument_group("cache")
    g.add_argument("--cache-dir", type=_path, metavar="DIR",
                   help="cache for separation and pitch results (default: $SINGVC_CACHE_DIR or ~/.cache/singvc)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summaries")


class _VersionAction(argparse.Action):
    """``--version``: singvc's version, the torch stack's versions and one line on whether they fit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print("\n".join(describe(check_stack())))
        parser.exit(0)


def get_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="singvc", description="Singing voice conversion for music production.")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the versions of singvc and its torch stack, and whether they fit together")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("cover", help="convert the lead vocal of a song into a target voice's register and remix")
    p.add_argument("song", nargs="?", help="the full song (wav, flac, ogg, mp3, ...)")
    p.add_argument("--voice", metavar="REF",
                   help="the target voice: a 3-60 s clip, or a saved profile (name or .json, see 'singvc voice')")
    p.add_argument("-o", "--output", type=_path, metavar="DIR", help="output folder. Default: ./<song name>-singvc")
    p.add_argument("--vocals", metavar="FILE", help="use this vocal stem instead of separating")
    p.add_argument("--instrumental", metavar="FILE", help="instrumental stem to go with --vocals")
    p.add_argument("--daw", action="store_true",
                   help="also write a DAW session folder DIR/session/ (all stems, melody MIDI, tempo, key, "
                        ".dawproject and REAPER .rpp)")
    _add_common(p, "cover")

    p = sub.add_parser("separate", help="split a song into vocals.wav and instrumental.wav")
    p.add_argument("song")
    p.add_argument("-o", "--output", type=_path, metavar="DIR", help="output folder. Default: ./<song name>-stems")
    _add_common(p, "separate")

    p = sub.add_parser("stems", help="separate a song into a DAW session folder (every stem, melody MIDI, "
                                     "tempo, key, .dawproject and .rpp)")
    p.add_argument("song")
    p.add_argument("-o", "--output", type=_path, metavar="DIR", help="session folder. Default: ./<song name>-session")
    p.add_argument("--no-midi", action="store_true", help="skip the vocal's melody MIDI (no pitch tracking)")
    _add_common(p, "stems")

    p = sub.add_parser("pitch", help="track the pitch of a vocal and save it (.npz)")
    p.add_argument("audio")
    p.add_argument("-o", "--output", type=_path, metavar="FILE", help="output .npz. Default: <audio name>.pitch.npz")
    p.add_argument("--csv", type=_path, metavar="FILE", help="also write time,f0_hz,periodicity,voiced as CSV")
    _add_common(p, "pitch")

    p = sub.add_parser("plan", help="print the range plan (JSON) for a vocal and a target voice or range")
    p.add_argument("source", help="a vocal audio file, or a pitch track (.npz) from 'singvc pitch'")
    p.add_argument("--voice", metavar="REF", help="a clip or saved profile of the target voice")
    _add_common(p, "plan")

    p = sub.add_parser("voice", help="voice profiles: enroll a target voice from clips, list, show")
    vsub = p.add_subparsers(dest="voice_command", required=True, metavar="ACTION")
    q = vsub.add_parser("enroll", help="measure a voice profile from one or more clips and save it")
    q.add_argument("clips", nargs="+", metavar="REF", help="clips of the target voice (3 s or more of voice in all)")
    q.add_argument("--name", required=True, help="profile name (letters, digits, _ . -)")
    q.add_argument("-o", "--output", type=_path, metavar="FILE",
                   help="write the profile here instead of the profiles folder ($SINGVC_HOME/voices)")
    q.add_argument("--force", action="store_true", help="replace an existing profile of that name")
    _add_common(q, "voice enroll")
    q = vsub.add_parser("list", help="list saved and shipped profiles")
    q = vsub.add_parser("show", help="print a profile (JSON)")
    q.add_argument("voice", metavar="NAME|FILE")

    p = sub.add_parser("eval", help="print evaluation figures (JSON) of a converted vocal against a target voice")
    p.add_argument("--source", required=True, metavar="FILE", help="the original vocal")
    p.add_argument("--output", required=True, metavar="FILE", help="the converted vocal (same length)")
    p.add_argument("--voice", required=True, metavar="REF", help="the reference clip the converter was given")
    p.add_argument("--heldout", metavar="FILE", help="another clip of the target voice, not given to the converter")
    p.add_argument("--semitones", type=_flag_type(SCHEMA["transpose"]), metavar="N",
                   help="the planned transposition (default: read from a report.json beside --output, else "
                        "the median pitch difference rounded to whole semitones)")
    p.add_argument("--no-windows", action="store_true", help="skip the 5 s drift windows")
    _add_common(p, "eval")

    p = sub.add_parser("doctor", help="check the install: versions of the torch stack, whether torch and torchaudio "
                                      "load together, crepe and Demucs weights, the cache folder")
    p.add_argument("--separator-model", default="htdemucs", metavar="NAME",
                   help="the Demucs model whose weights to look for. Default: htdemucs")
    p.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: $SINGVC_CACHE_DIR or ~/.cache/singvc)")

    p = sub.add_parser("cache", help="show the cache of separation and pitch results, prune it to a size, or clear it")
    p.add_argument("action", nargs="?", choices=("info", "prune", "clear"), default="info",
                   help="info (default): location, entries and size; prune: remove the least recently used "
                        "entries down to the limit; clear: remove everything")
    p.add_argument("--max-gb", type=_gigabytes, metavar="GB",
                   help="size limit in GB for prune (default: $SINGVC_CACHE_MAX_GB or 20)")
    p.add_argument("--cache-dir", type=_path, metavar="DIR", help="the cache folder (default: $SINGVC_CACHE_DIR or ~/.cache/singvc)")

    p = sub.add_parser("models", help="list the known models (where each is looked for, size, present or not), "
                                      "verify their checksums, or download one")
    p.add_argument("action", nargs="?", choices=("list", "verify", "fetch"), default="list",
                   help="list (default): every known model with its kind, licence, size, status and folder; "
                        "verify [NAME]: check each file's size and SHA-256 (every model on this machine when "
                        "no NAME; exit 3 if one is damaged or incomplete); fetch NAME: download what is "
                        "missing or damaged into the model's folder")
    p.add_argument("name", nargs="?", metavar="NAME", help="a model name (see 'singvc models')")
    p.add_argument("--kind", choices=("separator", "pitch", "converter"), help="list only models of this kind")
    p.add_argument("--local-dir", type=_path, metavar="DIR",
                   help="also look in this folder first (as --separator-repo DIR does for separation)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="fetch: seconds the download hosts have to answer, and per read. Default: 30")
    p.add_argument("--quiet", "-q", action="store_true", help="fetch: no progress bars")

    p = sub.add_parser("run", help="run a recipe (recipes/*.toml): a cover, a vocal feature or DAW stems; "
                                   "with --songs, a batch of songs")
    p.add_argument("recipe", metavar="RECIPE", help="a recipe .toml file (see recipes/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key (dotted: voice.strength=0.5, input.song=a.wav, "
                        "feature.sections[2].voice=original); repeatable")
    p.add_argument("--songs", metavar="DIR|LIST",
                   help="batch: every audio file of DIR, or the paths listed in a text file, one output folder "
                        "per song; songs already done are skipped")
    p.add_argument("-o", "--output", type=_path, metavar="DIR", help="output folder (overrides output.dir)")
    _add_common(p, "run")

    p = sub.add_parser("ui", help="the local web app (needs 'pip install singvc[ui]'): covers, vocal features, "
                                  "batches, voices, models and cache, in the browser")
    p.add_argument("--host", default=ui.DEFAULT_HOST,
                   help=f"address to serve on. Default: {ui.DEFAULT_HOST} (this machine only)")
    p.add_argument("--port", type=int, default=ui.DEFAULT_PORT, help=f"port. Default: {ui.DEFAULT_PORT}")
    p.add_argument("--workdir", type=_path, metavar="DIR",
                   help="the app's working folder: uploads, one folder per job "
                        "(default: $SINGVC_HOME/ui or ~/.local/share/singvc/ui)")
    p.add_argument("--cache-dir", type=_path, metavar="DIR",
                   help="cache for separation and pitch results (default: $SINGVC_CACHE_DIR or ~/.cache/singvc)")
    p.add_argument("--max-upload-mb", type=float, default=ui.MAX_UPLOAD_MB, metavar="MB",
                   help=f"largest upload accepted. Default: {ui.MAX_UPLOAD_MB}")
    p.add_argument("--share", action="store_true",
                   help="also open a public link through Gradio's share servers (off by default: the app is offline)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    return parser


def _engine(args: argparse.Namespace) -> Singvc:
    """The engine of a command: its settings resolved (defaults < preset < flags), the torch stack
    checked, the cache checked for room."""
    layers = []
    if getattr(args, "preset", None):
        layers += [preset_layer(args.preset), Layer({"preset": args.preset}, lambda name: "--preset")]
    settings = resolve(*layers, _flag_settings(args))
    require_stack()  # a torch/torchaudio pair that does not load: one line now, not after the first stage
    cache = Cache(args.cache_dir, enabled=not args.no_cache)
    separates = getattr(args, "song", None) is not None and getattr(args, "vocals", None) is None \
        and settings.separation
    _check_cache(cache, args.song if separates else None)
    return Singvc(settings, cache=cache, progress=not args.quiet)


#: float32 buffers of the song's length a separation cache entry holds (Demucs' four stems)
CACHE_STEMS = 4


def _check_cache(cache, separated_song: str | os.PathLike | None) -> None:
    """An unwritable or full cache found now, not after the work: exit 4 (with room for the stems
    of ``separated_song`` when the run separates one)."""
    if cache.enabled:
        check_cache_dir(cache.root, CACHE_STEMS * audio_bytes(separated_song))


def _default_dir(path: str | None, suffix: str) -> Path:
    return Path(f"{Path(path).stem if path else 'singvc'}-{suffix}")


def cmd_cover(args: argparse.Namespace) -> int:
    if args.song is None and args.vocals is None:
        raise UserInputError("give a SONG, or --vocals FILE (with --instrumental FILE)")
    if args.instrumental and not args.vocals:
        raise UserInputError("--instrumental needs --vocals")
    out = Path(args.output) if args.output else _default_dir(args.song or args.vocals, "singvc")
    report = cover_file(args.song, out, voice_path=args.voice, engine=_engine(args),
                        vocals_path=args.vocals, instrumental_path=args.instrumental, daw=args.daw)
    if not args.quiet:
        plan = report["plan"]
        line = f"shift {plan['semitones']:+g} semitones ({plan['mode']})"
        if plan["source"]:
            line += (f"; source median {plan['source']['median']['note']} -> "
                     f"{plan['shifted_source_median']['note']}")
        if plan["target"]:
            line += f"; out of target range {plan['out_of_range_share_after']:.0%}"
        print(line)
        for w in report["warnings"]:
            print(f"warning: {w}", file=sys.stderr)
        print(f"wrote {out}/ ({', '.join(report['outputs'])}) in {report['seconds']['total']:.1f} s")
        _print_moved_aside(report, out)
        if "session" in report:
            session = report["session"]
            print(f"DAW session {out}/session/: {session['tempo_bpm']:g} BPM, {session['key']['song']['name']}"
                  f" (vocal now in {session['key']['vocal_after_shift']['name']})")
    return 0


def _print_moved_aside(report: dict, out: Path) -> None:
    """Say where the outputs of an earlier run in the same folder went (see save_result)."""
    moved = report.get("previous_run")
    if moved:
        print(f"moved the earlier run's {', '.join(moved['files'])} into {out}/{moved['folder']}/")


def cmd_separate(args: argparse.Namespace) -> int:
    engine = _engine(args)
    out = Path(args.output) if args.output else _default_dir(args.song, "stems")
    warning = separate_file(args.song, out, engine)
    if not args.quiet:
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"wrote {out}/vocals.wav and {out}/instrumental.wav")
    return 0


def cmd_stems(args: argparse.Namespace) -> int:
    engine = _engine(args)
    out = Path(args.output) if args.output else _default_dir(args.song, "session")
    manifest = stems_file(args.song, out, engine, midi=not args.no_midi)
    if not args.quiet:
        if manifest["headroom_warning"]:
            print(f"warning: {manifest['headroom_warning']}", file=sys.stderr)
        files = [s["file"] for s in manifest["stems"]] + [m["file"] for m in manifest["midi"]]
        print(f"{manifest['tempo_bpm']:g} BPM, {manifest['key']['name']}")
        print(f"wrote {out}/ ({', '.join(files)}, {manifest['dawproject']}, {manifest['reaper']}, session.json)")
    return 0


def cmd_voice(args: argparse.Namespace) -> int:
    if args.voice_command == "list":
        for name, path in sorted(list_profiles().items()):
            print(f"{name}\t{path}")
        return 0
    if args.voice_command == "show":
        print(load_profile(args.voice).to_json(), end="")
        return 0
    name = check_name(args.name)
    out = Path(args.output) if args.output else profiles_dir() / f"{name}.json"
    if out.exists() and not args.force:
        raise UserInputError(f"voice profile {out} exists; use --force to replace it")
    if args.output:
        check_output_file(out, "voice profile", make_parents=True)  # the profile's folder is made
    engine = _engine(args)
    clips, tracks = [], []
    for path in args.clips:
        ref = load_voice(path)
        if ref.audio is None:
            raise UserInputError(f"{path} is a voice profile; enroll from audio clips")
        clips.append((ref.audio, ref.sample_rate))
        tracks.append(engine.track(ref.audio, ref.sample_rate, engine.settings.reference_pitch_model)[0])
    profile = analyse_voice(clips, tracks, name, clip_names=[Path(c).name for c in args.clips])
    profile.save(out)
    if not args.quiet:
        for w in profile.warnings:
            print(f"warning: {w}", file=sys.stderr)
        reg = profile.register
        print(f"wrote {out}: median {reg['median']['note']}, tessitura {reg['p10']['note']}-{reg['p90']['note']}, "
              f"{profile.voiced_seconds:.1f} s voiced")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:

    encoder = load_encoder()  # fails first, with the install hint, when resemblyzer is missing
    engine = _engine(args)
    source, sample_rate = load_audio(args.source)
    output, out_rate = load_audio(args.output)
    output = fit_length(resample(output, out_rate, sample_rate), source.shape[-1])
    reference, ref_rate = load_audio(args.voice, name=f"reference {args.voice}")
    heldout, held_rate = load_audio(args.heldout, name=f"held-out {args.heldout}") if args.heldout else (None, None)
    src_track, _ = engine.track(source, sample_rate)
    out_track, _ = engine.track(output, sample_rate)
    semitones = args.semitones
    if semitones is None:
        report = Path(args.output).parent / "report.json"
        if report.is_file():
            semitones = float(json.loads(report.read_text())["shift_semitones"])
        else:
            n = min(len(src_track), len(out_track))
            both = src_track.voiced[:n] & out_track.voiced[:n]
            semitones = float(np.round(np.median(12 * np.log2(out_track.f0[:n][both] / src_track.f0[:n][both])))) \
                if both.any() else 0.0
    result = evaluate(encoder, source, output, sample_rate, reference, ref_rate, src_track, out_track, semitones,
                      heldout=heldout, heldout_rate=held_rate, windows=not args.no_windows)
    print(json_dumps(result))
    return 0


def cmd_pitch(args: argparse.Namespace) -> int:
    out = Path(args.output) if args.output else Path(f"{Path(args.audio).stem}.pitch.npz")
    # output problems are found before the pitch tracking
    check_output_file(out, "pitch track")
    if args.csv:
        check_output_file(args.csv, "CSV file")
    engine = _engine(args)
    audio, sample_rate = load_audio(args.audio)
    track, _ = engine.track(audio, sample_rate)
    track.save(out)
    if args.csv:
        track.save_csv(args.csv)
    if not args.quiet:
        voiced = track.voiced_f0
        summary = f"median {np.median(voiced):.1f} Hz" if len(voiced) else "no voiced frames"
        print(f"wrote {out}: {len(track)} frames, {track.voiced.mean():.0%} voiced, {summary}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    engine = _engine(args)
    s = engine.settings
    if args.source.endswith(".npz"):
        track = PitchTrack.load(args.source)
    else:
        audio, sample_rate = load_audio(args.source)
        track, _ = engine.track(audio, sample_rate)
    ref = load_voice(args.voice) if args.voice else None
    target = engine.resolve_target(ref and ref.profile, ref and ref.audio, ref and ref.sample_rate, s.target_range,
                                   s.transpose, use_voice=False)
    plan = plan_transposition(track, target.register, mode=s.plan_mode, transpose=s.transpose)
    print(json_dumps(plan.describe()))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    max_bytes = None if args.max_gb is None else int(args.max_gb * 1e9)
    cache = Cache(args.cache_dir, max_bytes=max_bytes)
    if args.action == "clear":
        removed, freed = cache.clear()
        print(f"removed {removed} entries ({freed / 1e9:.2f} GB) from {cache.root}")
        return 0
    if args.action == "prune":
        removed, freed = cache.prune()
        print(f"removed {removed} entries ({freed / 1e9:.2f} GB); {cache.size() / 1e9:.2f} GB left "
              f"(limit {cache.max_bytes / 1e9:g} GB)")
        return 0
    entries = cache.entries()
    print(f"{cache.root}: {sum(e[2] for e in entries) / 1e9:.2f} GB in {len(entries)} entries "
          f"(limit {cache.max_bytes / 1e9:g} GB, least recently used removed first)")
    for kind in KINDS:
        mine = [e for e in entries if e[1] == kind]
        print(f"  {kind}: {len(mine)} entries, {sum(e[2] for e in mine) / 1e9:.2f} GB")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Versions and load test of the torch stack, then what a first run will need; exit 3 when broken."""
    report = check_stack()
    for line in describe(report):
        print(line)
    if not report.loads:
        return 3
    crepe_ok = True
    for name in PITCH_MODELS:
        found = weights.verify(f"crepe_{name}")[0]
        crepe_ok = crepe_ok and found.status in ("verified", "present")
        state = {"verified": "ok, ", "present": "ok, ", "missing": "MISSING: ", "damaged": "DAMAGED: "}[found.status]
        print(f"crepe {name} weights: {state}{found.path}{f' ({found.reason})' if found.reason else ''}")
    try:
        where = weights.cached_weights(args.separator_model)
    except SingvcError as exc:
        where, note = None, str(exc)
    else:
        note = ("not on this machine yet: fetched on the first separation (needs internet; offline, see README, "
                "'Separation weights', or use --no-separation / --vocals)")
    print(f"Demucs {args.separator_model} weights: {'ok, ' + where if where else note}")
    missing = weights.seedvc_missing()  # optional: only --converter seedvc needs them
    print(f"Seed-VC weights (--converter seedvc only): "
          f"{'ok, ' + str(weights.seedvc_folder()) if missing is None else 'not installed (singvc models fetch seedvc)'}")
    print(f"cache folder: {Cache(args.cache_dir).root}")
    return 0 if crepe_ok else 3


def cmd_models(args: argparse.Namespace) -> int:
    """``singvc models [list|verify [NAME]|fetch NAME]``; exit 3 when verify finds a model damaged or
    incomplete, or fetch cannot download (offline)."""
    def megabytes(n: int | None) -> str:
        return "?" if n is None else f"{n / 1e6:.1f} MB"

    def state(spec) -> tuple[str, str, list]:
        """(status word, folder shown, file statuses) of one model; a missing model whose other
        copy exists (demucs' HuggingFace cache) shows that copy."""
        try:
            found = weights.verify(spec, args.local_dir) if args.action == "verify" else weights.locate(spec, args.local_dir)
        except SingvcError as exc:  # its package is not installed
            return "unavailable", str(exc), []
        word = weights.summary(found)
        folders = {str(f.path.parent) for f in found}
        shown = folders.pop() if len(folders) == 1 else ", ".join(sorted(folders))
        if word in ("missing", "incomplete"):
            other = weights.other_copy(spec)
            if other:
                return "present (other copy)", other, found
        return word, shown, found

    if args.action == "fetch":
        if not args.name:
            raise _UsageError("fetch needs a model NAME (see 'singvc models')", "singvc models")
        if not args.timeout > 0:
            raise _UsageError(f"argument --timeout: must be a number of seconds > 0 (got {args.timeout:g})",
                              "singvc models")
        ok = True
        for spec in weights.members(args.name):  # a group (seedvc) fetches each of its models
            found = weights.fetch(spec, timeout=args.timeout, progress=not args.quiet)  # offline: exit 3
            for f in found:
                print(f"{f.file.name}: {f.status}, {f.path}")
            ok = ok and weights.summary(found) in ("verified", "present")
        return 0 if ok else 3

    if args.action == "verify":
        specs = weights.members(args.name) if args.name else weights.known(args.kind)
        bad = False
        for spec in specs:
            word, shown, found = state(spec)
            if not args.name and word == "missing":
                continue  # verify every model on this machine: one never fetched is not a fault
            print(f"{spec.name}: {word}{', ' + shown if not found or word.endswith('(other copy)') else ''}")
            for f in found:
                detail = f" ({f.reason})" if f.reason else ""
                print(f"  {f.file.name:<28} {f.status:<9} {f.path}{detail}")
            bad = bad or word in ("damaged", "incomplete", "missing", "unavailable")
        if not args.name:
            print("models never fetched are not listed (see 'singvc models')")
        return 3 if bad else 0

    if args.name:
        raise _UsageError("list takes no NAME (use 'singvc models verify NAME')", "singvc models")
    rows = []
    for spec in weights.known(args.kind):
        word, shown, found = state(spec)
        size = spec.size
        if size is None and found and all(f.size is not None for f in found):
            size = sum(f.size for f in found)  # what lies on disk
        rows.append((spec.name, spec.kind, spec.licence, megabytes(size), word, shown))
    header = ("name", "kind", "licence", "size", "status", "folder")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row[:5], widths)) + "  " + row[5])
    print(f"model cache: {weights.models_dir()} ($SINGVC_MODELS_DIR); status: present = found, size checked; "
          "'singvc models verify' checks checksums")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    songs = list_songs(args.songs) if args.songs else None
    cache = Cache(args.cache_dir, enabled=not args.no_cache)
    settings = recipe.settings(getattr(args, "device", None))  # every value checked before any work
    require_stack()  # a torch/torchaudio pair that does not load: one line now, not after the first stage
    engine = build_engine(recipe, cache, progress=not args.quiet and songs is None, settings=settings)
    separates = engine.settings.separation and not (songs is None and recipe.get("input.vocals"))
    _check_cache(cache, (songs[0] if songs else recipe.path_of("input.song")) if separates else None)
    out = Path(args.output) if args.output else None
    if songs is None:
        report = run_recipe(recipe, engine, out)
        if not args.quiet:
            for w in report["warnings"]:
                print(f"warning: {w}", file=sys.stderr)
            where = out or recipe.output_dir()
            print(f"{recipe.name} ({recipe.kind}, recipe {recipe.sha256[:12]}): wrote {where}/ "
                  f"({', '.join(report['outputs'])}) in {report['seconds']['total']:.1f} s")
            _print_moved_aside(report, where)
        return 0
    items = []
    width = max(len(s.name) for s in songs)
    for item in run_batch(recipe, songs, engine, out):
        items.append(item)
        detail = {"done": lambda i: f"done in {i.seconds:.1f} s -> {i.out_dir}",
                  "skipped": lambda i: f"skipped (already done) -> {i.out_dir}",
                  "failed": lambda i: f"FAILED: {i.message}"}[item.status](item)
        print(f"[{item.index}/{item.total}] {item.song.name:<{width}}  {detail}", flush=True)
    if not args.quiet:
        print()
        print(f"{'song':<{width}}  {'status':<7}  {'seconds':>7}  {'shift':>6}  output")
        for item in items:
            shift = item.report.get("shift_semitones") if item.report else None
            print(f"{item.song.name:<{width}}  {item.status:<7}  {item.seconds:7.1f}  "
                  f"{'' if shift is None else format(shift, '+g'):>6}  {item.out_dir if item.status != 'failed' else item.message}")
        counts = {s: sum(i.status == s for i in items) for s in ("done", "skipped", "failed")}
        print(f"{len(items)} songs: {counts['done']} done, {counts['skipped']} skipped (done before), "
              f"{counts['failed']} failed")
    return 1 if any(i.status == "failed" for i in items) else 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web app until Ctrl-C (or SIGTERM); the running job is cancelled on the way out."""
    if not 0 < args.port < 65536:
        raise _UsageError(f"argument --port: must be from 1 to 65535 (got {args.port})", "singvc ui")
    if not args.max_upload_mb > 0:
        raise _UsageError(f"argument --max-upload-mb: must be > 0 (got {args.max_upload_mb:g})", "singvc ui")
    demo, url = ui.serve(args.host, args.port, args.workdir, args.cache_dir, share=args.share,
                         max_upload_mb=args.max_upload_mb, open_browser=args.open)
    print(f"singvc ui: {url} (working folder {demo.singvc_app.workspace.root}; Ctrl-C to stop)", flush=True)
    try:
        demo.block_thread()
    finally:
        request_cancel()
        demo.close()
    return 0


COMMANDS = {"cover": cmd_cover, "separate": cmd_separate, "stems": cmd_stems, "pitch": cmd_pitch, "plan": cmd_plan, "voice": cmd_voice, "eval": cmd_eval,
            "run": cmd_run, "cache": cmd_cache, "doctor": cmd_doctor, "models": cmd_models, "ui": cmd_ui}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call this directly)."""
    parser = get_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        return _usage(exc)
    debug = bool(os.environ.get("SINGVC_DEBUG"))
    with warnings.catch_warnings():
        if not debug:
            warnings.filterwarnings("ignore")
        warnings.filterwarnings("always", category=SingvcWarning)
        warnings.showwarning = _show_warning
        with _sigterm_raises():
            return _run(args, debug)


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM does not cut the clean-up short
    request_cancel()  # should this raise be lost, the next block of audio raises it again
    raise Cancelled()


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the command runs, SIGTERM cancels it (:class:`~singvc.runfolders.Cancelled`); the old
    handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    clear_cancel()
    old = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
        clear_cancel()


def _usage(exc: _UsageError) -> int:
    """An argument error as one line with a pointer to the command's help; exit code 2."""
    message = " ".join(str(exc).split())
    print(f"singvc: error: {message}; see '{exc.prog} --help'", file=sys.stderr)
    return 2


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one line each on stderr (others only with SINGVC_DEBUG)."""
    text = " ".join(str(message).split())
    prefix = "singvc: warning" if issubclass(category, SingvcWarning) else f"{category.__name__}"
    print(f"{prefix}: {text}", file=sys.stderr)


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        return COMMANDS[args.command](args)
    except _UsageError as exc:  # a command's own argument check
        return _usage(exc)
    except SingvcError as exc:
        if debug:
            raise
        print(error_line(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("singvc: interrupted", file=sys.stderr)
        return 130
    except Cancelled:
        print("singvc: terminated", file=sys.stderr)
        return 143
    except MemoryError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, with a way to get the traceback
        if debug:
            raise
        print(error_line(exc), file=sys.stderr)
        return 70


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
