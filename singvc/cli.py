"""The ``singvc`` command line. The only place that prints, exits, or maps errors to exit codes.

Exit codes: 0 success, 2 bad input (file, flag, reference), 3 model or weights unavailable,
4 output cannot be written, 70 internal error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from . import __version__
from .errors import SingvcError, UserInputError

PITCH_MODELS = ("full", "tiny")
CONVERTER_NAMES = ("pitch", "none")


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models and cache")
    g.add_argument("--separator-model", default="htdemucs", metavar="NAME",
                   help="Demucs model name (htdemucs, htdemucs_ft, mdx_extra, ...). Default: htdemucs")
    g.add_argument("--separator-repo", metavar="DIR",
                   help="local folder of Demucs model files (NAME.th), as demucs --repo; no download")
    g.add_argument("--pitch-model", choices=PITCH_MODELS, default="full", help="torchcrepe capacity. Default: full")
    g.add_argument("--pitch-hop", type=float, default=0.01, metavar="SECONDS",
                   help="pitch frame hop, at most 0.01 s. Default: 0.01")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="compute device. Default: cuda when available, else cpu")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="cache for separation and pitch results (default: $SINGVC_CACHE_DIR or ~/.cache/singvc)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summaries")


def _add_plan(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("range plan")
    g.add_argument("--target-range", metavar="LOW-HIGH",
                   help="target register as notes (C3-A4) or Hz (130-440), instead of measuring --voice")
    g.add_argument("--transpose", type=float, metavar="N", help="shift by N semitones, overriding the plan")
    g.add_argument("--no-key-lock", action="store_true",
                   help="allow any whole-semitone shift (default: whole octaves only, staying in key)")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="singvc", description="Singing voice conversion for music production.")
    parser.add_argument("--version", action="version", version=f"singvc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("cover", help="convert the lead vocal of a song into a target voice's register and remix")
    p.add_argument("song", nargs="?", help="the full song (wav, flac, ogg, mp3, ...)")
    p.add_argument("--voice", metavar="REF", help="a 3-60 s clip of the target voice")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder. Default: ./<song name>-singvc")
    p.add_argument("--vocals", metavar="FILE", help="use this vocal stem instead of separating")
    p.add_argument("--instrumental", metavar="FILE", help="instrumental stem to go with --vocals")
    p.add_argument("--no-separation", action="store_true", help="treat the input as a vocal-only stem")
    p.add_argument("--converter", choices=CONVERTER_NAMES, default="pitch",
                   help="pitch: formant-preserving shift by the plan; none: no conversion. Default: pitch")
    p.add_argument("--shift-instrumental", action="store_true",
                   help="after a non-octave shift, shift the instrumental by the same amount")
    p.add_argument("--bit-depth", choices=("16", "24", "32f"), default="24", help="WAV format. Default: 24")
    _add_plan(p)
    _add_common(p)

    p = sub.add_parser("separate", help="split a song into vocals.wav and instrumental.wav")
    p.add_argument("song")
    p.add_argument("-o", "--output", metavar="DIR", help="output folder. Default: ./<song name>-stems")
    p.add_argument("--bit-depth", choices=("16", "24", "32f"), default="24")
    _add_common(p)

    p = sub.add_parser("pitch", help="track the pitch of a vocal and save it (.npz)")
    p.add_argument("audio")
    p.add_argument("-o", "--output", metavar="FILE", help="output .npz. Default: <audio name>.pitch.npz")
    p.add_argument("--csv", metavar="FILE", help="also write time,f0_hz,periodicity,voiced as CSV")
    _add_common(p)

    p = sub.add_parser("plan", help="print the range plan (JSON) for a vocal and a target voice or range")
    p.add_argument("source", help="a vocal audio file, or a pitch track (.npz) from 'singvc pitch'")
    p.add_argument("--voice", metavar="REF", help="a clip of the target voice")
    _add_plan(p)
    _add_common(p)
    return parser


def _engine(args: argparse.Namespace, **overrides):
    from .cache import Cache
    from .pipeline import CoverSettings, Singvc

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    fields = dict(separator_model=args.separator_model, separator_repo=args.separator_repo,
                  pitch_model=args.pitch_model, pitch_hop=args.pitch_hop, device=device)
    for name in ("transpose", "target_range", "converter", "shift_instrumental", "bit_depth"):
        if hasattr(args, name):
            fields[name] = getattr(args, name)
    if getattr(args, "no_key_lock", False):
        fields["plan_mode"] = "free"
    if getattr(args, "no_separation", False):
        fields["separation"] = False
    fields.update(overrides)
    cache = Cache(args.cache_dir, enabled=not args.no_cache)
    return Singvc(CoverSettings(**fields), cache=cache, progress=not args.quiet)


def _default_dir(path: str | None, suffix: str) -> Path:
    return Path(f"{Path(path).stem if path else 'singvc'}-{suffix}")


def cmd_cover(args: argparse.Namespace) -> int:
    from .pipeline import cover_file

    if args.song is None and args.vocals is None:
        raise UserInputError("give a SONG, or --vocals FILE (with --instrumental FILE)")
    if args.instrumental and not args.vocals:
        raise UserInputError("--instrumental needs --vocals")
    out = Path(args.output) if args.output else _default_dir(args.song or args.vocals, "singvc")
    report = cover_file(args.song, out, voice_path=args.voice, engine=_engine(args),
                        vocals_path=args.vocals, instrumental_path=args.instrumental)
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
    return 0


def cmd_separate(args: argparse.Namespace) -> int:
    from .audio import load_audio, save_audio
    from .pipeline import staged_output

    engine = _engine(args)
    song, sample_rate = load_audio(args.song)
    vocals, instrumental, _ = engine.separate(song, sample_rate)
    out = Path(args.output) if args.output else _default_dir(args.song, "stems")
    with staged_output(out) as staging:
        save_audio(staging / "vocals.wav", vocals, sample_rate, args.bit_depth)
        save_audio(staging / "instrumental.wav", instrumental, sample_rate, args.bit_depth)
    if not args.quiet:
        print(f"wrote {out}/vocals.wav and {out}/instrumental.wav")
    return 0


def cmd_pitch(args: argparse.Namespace) -> int:
    import numpy as np

    from .audio import load_audio

    engine = _engine(args)
    audio, sample_rate = load_audio(args.audio)
    track, _ = engine.track(audio, sample_rate)
    out = Path(args.output) if args.output else Path(f"{Path(args.audio).stem}.pitch.npz")
    track.save(out)
    if args.csv:
        csv_path = Path(args.csv)
        tmp = csv_path.with_name(f".{csv_path.name}.part")
        rows = np.column_stack([track.times, track.f0, track.periodicity, track.voiced.astype(int)])
        np.savetxt(tmp, rows, delimiter=",", header="time_s,f0_hz,periodicity,voiced", comments="",
                   fmt=["%.4f", "%.3f", "%.4f", "%d"])
        os.replace(tmp, csv_path)
    if not args.quiet:
        voiced = track.voiced_f0
        summary = f"median {np.median(voiced):.1f} Hz" if len(voiced) else "no voiced frames"
        print(f"wrote {out}: {len(track)} frames, {track.voiced.mean():.0%} voiced, {summary}")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .pitch import PitchTrack
    from .plan import parse_range, plan_transposition

    engine = _engine(args)
    if args.source.endswith(".npz"):
        track = PitchTrack.load(args.source)
    else:
        audio, sample_rate = load_audio(args.source)
        track, _ = engine.track(audio, sample_rate)
    target = None
    if args.target_range:
        target = parse_range(args.target_range)
    elif args.voice and args.transpose is None:
        ref, ref_rate = load_audio(args.voice, name=f"reference {args.voice}")
        target = engine.target_register(ref, ref_rate)
    plan = plan_transposition(track, target, mode="free" if args.no_key_lock else "key-lock", transpose=args.transpose)
    print(json.dumps(plan.describe(), indent=2))
    return 0


COMMANDS = {"cover": cmd_cover, "separate": cmd_separate, "pitch": cmd_pitch, "plan": cmd_plan}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (tests call this directly)."""
    args = get_parser().parse_args(argv)
    debug = bool(os.environ.get("SINGVC_DEBUG"))
    if not debug:
        warnings.filterwarnings("ignore")
    try:
        return COMMANDS[args.command](args)
    except SingvcError as exc:
        if debug:
            raise
        message = " ".join(str(exc).split())
        print(f"singvc: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("singvc: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("singvc: error: out of memory (try a shorter song or --pitch-model tiny)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, with a way to get the traceback
        if debug:
            raise
        first = " ".join(str(exc).split())[:300]
        print(f"singvc: internal error: {type(exc).__name__}: {first} (set SINGVC_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 70


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
