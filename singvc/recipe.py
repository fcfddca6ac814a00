"""Recipes: one TOML file per job (a cover, a vocal feature, stems for a DAW session), kept with the
project and re-run with ``singvc run RECIPE`` (see ``recipes/`` for documented examples).

Format (every table optional; relative paths are relative to the recipe file's folder)::

    description = "what this recipe is for"
    preset = "natural"                  # a preset name (presets/*.toml) or a .toml path

    [input]                             # the song, or your own stems
    song = "song.wav"                   # or: vocals = "...", instrumental = "..."
    separation = true                   # false: the input is a vocal-only stem

    [voice]                             # the target voice of a cover
    ref = "librispeech-198"             # a clip (3-60 s) or a voice profile (name or .json)
    transpose = 12                      # -36..36; or target_range = "C3-A4"; plan_mode = "key-lock" | "free"
    strength = 0.8                      # dsp converter strength, 0..1

    [voices.alice]                      # named voices of a feature (same keys as [voice])
    ref = "alice.wav"

    [feature]                           # a vocal feature: several voices in one song
    crossfade_ms = 30                   # boundary cross-fade
    snap_seconds = 0.4                  # move a boundary into a pause this close
    [[feature.sections]]
    time = "1:05-1:40"                  # or phrases = "3-4" (detected phrases, 1-based)
    voice = "alice"                     # or "original"
    layer = "duet"                      # "replace" (default) | "duet" | "double"
    level_db = -2                       # converted layer level and pan (-1 left .. 1 right)
    pan = -0.3
    original_level_db = -4              # original layer (duet/double)
    original_pan = 0.3

    [settings]                          # any CoverSettings field (as in presets)
    pitch_model = "tiny"

    [output]
    dir = "out/cover"                   # the output folder; a batch writes one folder per song in it
    stems = true                        # vocals and instrumental WAVs besides mix.wav
    daw = false                         # also a DAW session folder (as --daw)

Precedence (:func:`singvc.settings.resolve`): defaults < preset < ``[settings]`` < ``[voice]`` /
``[input]`` keys < ``--set key=value`` < ``--device``. Unknown keys, wrong types, values outside
their choices or ranges (:data:`singvc.settings.SCHEMA`; NaN and infinities included) and unreadable ranges, times or phrase numbers
raise :class:`~singvc.errors.UserInputError` naming the key and its line, before any audio work. The report (``report.json``) records the effective recipe, its hash
and the hash of the input file; a batch uses both to skip songs already done.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .config import key_line, preset_layer, toml_loads
from .cover import Singvc
from .engine import Engine, load_voice
from .errors import SingvcError, UserInputError
from .feature import FeatureOptions, Section, VoiceSpec, parse_phrase_range, parse_time_range, render_feature
from .jobs import cover_file, estimate_run_bytes, load_song_or_stems, save_result
from .run import Timer, scratch_folder
from .runfolders import check_output_dir
from .settings import COVER_FIELDS, SCHEMA, CoverSettings, Layer, problem, resolve
from .voice import list_profiles

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aif", ".aiff", ".opus")

# -- schema ------------------------------------------------------------------------------------
# A schema is a dict key -> type (str, float, int, bool, a tuple of types), a nested dict
# (a table), a one-item list (an array of tables), or _Named(schema) (a table of named tables).


@dataclass(frozen=True)
class _Named:
    schema: dict


def _kinds(*names: str) -> dict:
    return {name: SCHEMA[name].kind for name in names}


VOICE_KEYS = {"ref": str, **_kinds("transpose", "target_range", "plan_mode", "strength")}
SECTION_KEYS = {"time": str, "phrases": (str, int), "voice": str,
                **_kinds("transpose", "strength", "layer", "level_db", "pan", "original_level_db", "original_pan")}
FEATURE_KEYS = {"sections": [SECTION_KEYS], **_kinds("crossfade_ms", "snap_seconds", "min_pause", "phrase_pause")}
INPUT_KEYS = {"song": str, "vocals": str, "instrumental": str, "separation": bool}
OUTPUT_KEYS = {"dir": str, "stems": bool, "daw": bool}
#: keys whose values are paths (relative to the recipe's folder, or to the working directory for --set)
PATH_KEYS = ("input.song", "input.vocals", "input.instrumental", "output.dir", "settings.separator_repo")
#: keys of [voice] and [input] that are settings of the run
VOICE_SETTINGS = ("transpose", "target_range", "plan_mode", "strength")


def _settings_schema() -> dict:
    return _kinds(*COVER_FIELDS)


def schema() -> dict:
    """The recipe schema (see the module docstring)."""
    return {"description": str, "preset": str, "input": INPUT_KEYS, "voice": VOICE_KEYS, "voices": _Named(VOICE_KEYS),
            "settings": _settings_schema(), "feature": FEATURE_KEYS, "output": OUTPUT_KEYS}


_TYPE_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}


def _type_ok(value: Any, kind) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k in (str, bool) and isinstance(value, k):
            return True
    return False


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES[k] for k in kinds)


def _check(data: dict, spec: dict, prefix: str, fail) -> None:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in spec:
            fail(path, f"unknown key {path!r} (expected one of: {', '.join(spec)})")
        kind = spec[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                fail(path, f"{path!r} must be a table ([{path}])")
            _check(value, kind, f"{path}.", fail)
        elif isinstance(kind, _Named):
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                fail(path, f"{path!r} must hold named tables ([{path}.NAME])")
            for name, sub in value.items():
                _check(sub, kind.schema, f"{path}.{name}.", fail)
        elif isinstance(kind, list):
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                fail(path, f"{path!r} must be an array of tables ([[{path}]])")
            for i, sub in enumerate(value, 1):
                _check(sub, kind[0], f"{path}[{i}].", fail)
        else:
            if not _type_ok(value, kind):
                fail(path, f"{path!r} must be {_type_name(kind)} (got {value!r})")
            why = problem(key, value) if key in SCHEMA else None
            if why:
                fail(path, f"{path!r} {why}")
            if isinstance(value, str) and not value.strip() and _is_path_key(path):
                fail(path, f"{path!r} must not be empty (give a path)")


def _is_path_key(dotted: str) -> bool:
    """True for keys holding a file or folder (``input.song``, ``output.dir``, ``voice.ref``, ...)."""
    plain = re.sub(r"\[\d+\]", "", dotted)
    return plain in PATH_KEYS or bool(re.fullmatch(r"voices\.[^.]+\.ref|voice\.ref", plain))


# -- the recipe --------------------------------------------------------------------------------
@dataclass
class Recipe:
    """A parsed and validated recipe. ``data`` is the effective recipe (file + ``--set``)."""

    data: dict
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    text_sha256: str = ""
    overrides: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "recipe"

    @property
    def kind(self) -> str:
        """``feature`` when the recipe has sections, else ``cover``."""
        return "feature" if self.data.get("feature", {}).get("sections") else "cover"

    @property
    def sha256(self) -> str:
        """Hash of the effective recipe (canonical JSON): what a batch compares to skip done songs."""
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def path_of(self, dotted: str) -> Path | None:
        value = self.get(dotted)
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p

    def voice_ref(self, value: str) -> str:
        """A voice reference: a clip or ``.json`` relative to the recipe, else a profile name."""
        p = Path(os.path.expanduser(value))
        if p.is_absolute():
            return str(p)
        if (self.base_dir / p).exists() or (value not in list_profiles()):
            return str(self.base_dir / p)
        return value

    def output_dir(self) -> Path:
        return self.path_of("output.dir") or self.base_dir / f"{self.name}-out"

    def describe(self) -> dict:
        """What the report records about the recipe."""
        return {"file": str(self.path) if self.path else None, "kind": self.kind, "sha256": self.sha256,
                "text_sha256": self.text_sha256, "overrides": list(self.overrides), "data": self.data}

    def settings(self, device: str | None = None) -> CoverSettings:
        """The :class:`~singvc.settings.CoverSettings` of the recipe: defaults < preset < [settings]
        < [voice] and [input] keys (``--set`` values are already in the recipe) < ``device``."""
        text = self.path.read_text() if self.path and self.path.is_file() else None
        where = _where(str(self.path or "recipe"), text, {o.split("=", 1)[0].strip(): o for o in self.overrides})
        layers = []
        preset = self.get("preset")
        if preset:
            p = Path(preset)
            layers.append(preset_layer(self.base_dir / p if p.suffix == ".toml" and not p.is_absolute() else preset))
        own = dict(self.get("settings", {}))
        if "separator_repo" in own:
            own["separator_repo"] = str(self.path_of("settings.separator_repo") or own["separator_repo"])
        layers.append(Layer(own, lambda key: where(f"settings.{key}")))
        layers.append(Layer({k: v for k, v in self.get("voice", {}).items() if k in VOICE_SETTINGS},
                            lambda key: where(f"voice.{key}")))
        layers.append(Layer({k: v for k, v in self.get("input", {}).items() if k == "separation"},
                            lambda key: where(f"input.{key}")))
        extra = {"preset": str(preset)} if preset else {}
        if device is not None:
            extra["device"] = device
        layers.append(Layer(extra, lambda key: f"--{key}"))
        return resolve(*layers)


def _where(where: str, text: str | None, overrides: dict[str, str]):
    """``dotted key -> "FILE:LINE"`` (or ``--set KEY=VALUE`` when an override set it)."""
    def at(path: str) -> str:
        if path in overrides or any(path.startswith(o + ".") or path.startswith(o + "[") for o in overrides):
            return f"--set {overrides.get(path, path)}"
        line = key_line(text, path) if text else None
        return f"{where}:{line}" if line else where
    return at


def _fail_at(where: str, text: str | None, overrides: dict[str, str]):
    at = _where(where, text, overrides)

    def fail(path: str, message: str):
        raise UserInputError(f"{at(path)}: {message}")
    return fail


def _parse_value(text: str) -> Any:
    try:
        return toml_loads(f"v = {text}", "--set")["v"]
    except UserInputError:
        return text  # a bare word: a string


def _override_path(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in key.strip().split("."):
        m = re.fullmatch(r"([A-Za-z0-9_-]+)(?:\[(\d+)\])?", piece)
        if not m:
            raise UserInputError(f"--set {key}: bad key (use dotted names, e.g. voice.strength or "
                                 "feature.sections[2].voice)")
        if m.group(1).isdigit():
            parts.append(int(m.group(1)))
        else:
            parts.append(m.group(1))
        if m.group(2) is not None:
            parts.append(int(m.group(2)))
    return parts


def apply_overrides(data: dict, overrides: list[str], cwd: Path | None = None) -> dict[str, str]:
    """Apply ``key=value`` strings to ``data`` in place (values parsed as TOML, bare words as
    strings; path keys made absolute against ``cwd``); returns ``{dotted path: original text}``."""
    cwd = cwd or Path.cwd()
    applied: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--set {item}: use KEY=VALUE, e.g. voice.strength=0.5")
        parts = _override_path(key)
        value = _parse_value(raw.strip())
        node: Any = data
        shown = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(part, int):
                if not isinstance(node, list) or not 1 <= part <= len(node):
                    raise UserInputError(f"--set {item}: {shown or key} has no element {part} "
                                         f"(arrays are numbered from 1)")
                shown += f"[{part}]"
                if last:
                    node[part - 1] = value
                else:
                    node = node[part - 1]
                continue
            if not isinstance(node, dict):
                raise UserInputError(f"--set {item}: {shown} is not a table")
            shown = f"{shown}.{part}" if shown else part
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if isinstance(parts[i + 1], int) else {})
        dotted = shown
        plain = re.sub(r"\[\d+\]", "", dotted)
        if isinstance(value, str) and _is_path_key(dotted):
            if not value.strip():  # an empty path would silently mean the working directory
                raise UserInputError(f"--set {item}: {dotted} must not be empty (give a path)")
            p = Path(os.path.expanduser(value))
            if not p.is_absolute() and (plain in PATH_KEYS or (cwd / p).exists()):
                _assign(data, parts, str(cwd / p))
        applied[dotted] = item
    return applied


def _assign(data: dict, parts: list, value: Any) -> None:
    node: Any = data
    for part in parts[:-1]:
        node = node[part - 1] if isinstance(part, int) else node[part]
    if isinstance(parts[-1], int):
        node[parts[-1] - 1] = value
    else:
        node[parts[-1]] = value


def parse_recipe(text: str, where: str = "recipe", base_dir: Path | None = None,
                 overrides: list[str] | None = None) -> Recipe:
    """Parse and validate recipe text; ``where`` names it in error messages (``where:LINE: ...``)."""
    data = toml_loads(text, where)
    applied = apply_overrides(data, list(overrides or []))
    _check(data, schema(), "", _fail_at(where, text, applied))
    for i, sec in enumerate(data.get("feature", {}).get("sections", []), 1):
        if ("time" in sec) == ("phrases" in sec):
            _fail_at(where, text, applied)(f"feature.sections[{i}]",
                                           f"section {i} needs either 'time' (e.g. \"1:05-1:40\") or 'phrases' (e.g. \"2-3\")")
        if "voice" not in sec:
            _fail_at(where, text, applied)(f"feature.sections[{i}]", f"section {i} needs a 'voice' (a name in "
                                           "[voices] or \"original\")")
        name = sec["voice"]
        if name != "original" and name not in data.get("voices", {}):
            _fail_at(where, text, applied)(f"feature.sections[{i}].voice",
                                           f"section {i}: unknown voice {name!r} (add [voices.{name}] or use \"original\")")
    if data.get("input", {}).get("instrumental") and not data.get("input", {}).get("vocals"):
        _fail_at(where, text, applied)("input.instrumental", "'input.instrumental' needs 'input.vocals'")
    _check_texts(data, _fail_at(where, text, applied))
    return Recipe(data=data, base_dir=(base_dir or Path.cwd()).absolute(),
                  text_sha256=hashlib.sha256(text.encode()).hexdigest(), overrides=list(overrides or []))


def _check_texts(data: dict, fail) -> None:
    """Values written as text that hold numbers (ranges, section times, phrase numbers), read now
    rather than when the stage runs (after separation and pitch tracking)."""
    for i, sec in enumerate(data.get("feature", {}).get("sections", []), 1):
        for key, parse in (("time", parse_time_range), ("phrases", parse_phrase_range)):
            if key in sec:
                try:
                    parse(sec[key])
                except UserInputError as exc:
                    fail(f"feature.sections[{i}].{key}", f"'feature.sections[{i}].{key}': {exc}")


def load_recipe(path: str | os.PathLike, overrides: list[str] | None = None) -> Recipe:
    """Read, parse and validate a recipe file (with ``--set`` overrides)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"recipe {path} not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"cannot read recipe {path}: {exc}") from None
    recipe = parse_recipe(text, str(path), path.absolute().parent, overrides)
    recipe.path = path
    return recipe


# -- running -----------------------------------------------------------------------------------
def build_engine(recipe: Recipe, cache=None, progress: bool = False, device: str | None = None,
                 settings: CoverSettings | None = None) -> Singvc:
    """A :class:`~singvc.cover.Singvc` with the recipe's settings (or ``settings`` already resolved
    from it); models load on first use."""
    return Singvc(settings or recipe.settings(device), cache=cache, progress=progress)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None
    return h.hexdigest()


def load_voices(recipe: Recipe, engine: Engine) -> dict:
    """The recipe's voices as :class:`~singvc.feature.VoiceSpec` (``[voice]`` under the name
    ``"main"``, ``[voices.NAME]`` under their names), each measured or loaded once."""
    engine.converter()  # a converter that cannot run here (weights missing) stops the job before any audio
    tables = dict(recipe.get("voices", {}))
    if "voice" in recipe.data:
        tables = {"main": recipe.data["voice"], **tables}
    voices = {}
    for name, table in tables.items():
        if "ref" not in table:
            if name == "main":
                continue  # [voice] with only a shift or range
            raise UserInputError(f"voice {name!r} needs a 'ref' (a clip or a voice profile)")
        ref = load_voice(recipe.voice_ref(table["ref"]))
        profile = ref.profile or engine.voice_profile(ref.audio, ref.sample_rate, name=ref.name)
        if engine.converter().needs_reference:  # a profile without its clip stops the job before any song
            engine.check_voice_reference(profile, engine.converter().name)
        voices[name] = VoiceSpec(profile=profile, transpose=table.get("transpose"),
                                 target_range=table.get("target_range"), plan_mode=table.get("plan_mode"),
                                 strength=table.get("strength"))
    return voices


def run_recipe(recipe: Recipe, engine=None, out_dir: str | os.PathLike | None = None,
               song: str | os.PathLike | None = None, voices: dict | None = None) -> dict:
    """Execute one recipe (``song`` replaces ``input.song``); writes ``out_dir`` (default
    ``output.dir``) atomically and returns the report, which records the recipe and its hashes."""
    engine = engine or build_engine(recipe)
    out_dir = Path(out_dir) if out_dir is not None else recipe.output_dir()
    vocals_path = None if song is not None else recipe.path_of("input.vocals")
    instrumental_path = None if song is not None else recipe.path_of("input.instrumental")
    song_path = Path(song) if song is not None else None if vocals_path else recipe.path_of("input.song")
    if song_path is None and vocals_path is None:
        raise UserInputError(f"recipe {recipe.name}: no input (set input.song or input.vocals, e.g. "
                             "--set input.song=song.wav)")
    for p in (song_path, vocals_path, instrumental_path):
        if p is not None and not p.is_file():
            raise UserInputError(f"input file {p} not found")
    # output problems are found before the voices are measured and the song is loaded
    check_output_dir(out_dir, estimate_run_bytes(vocals_path or song_path, bool(recipe.get("output.daw", False))))
    record = {**recipe.describe(), "input_sha256": file_sha256(vocals_path or song_path)}
    if voices is None:
        voices = load_voices(recipe, engine)
    daw = bool(recipe.get("output.daw", False))
    stems = bool(recipe.get("output.stems", True))
    if recipe.kind == "cover":
        main = voices.get("main")
        voice_ref = recipe.voice_ref(recipe.data["voice"]["ref"]) if "ref" in recipe.get("voice", {}) else None
        return cover_file(song_path, out_dir, voice_path=voice_ref, engine=engine,
                          vocals_path=vocals_path, instrumental_path=instrumental_path, daw=daw,
                          profile=main.profile if main else None, extra_report={"recipe": record}, stems=stems)

    feature = recipe.data["feature"]
    sections = [Section(**{k: (str(v) if k == "phrases" else v) for k, v in sec.items()}) for sec in feature["sections"]]
    options = FeatureOptions(**{k: float(v) for k, v in feature.items() if k != "sections"})
    timer = Timer()
    # full-length buffers live in a working folder beside the output, as for a cover
    with scratch_folder(out_dir) as scratch:
        with timer.stage("load"):
            mix, vocals, instrumental, sample_rate = load_song_or_stems(song_path, vocals_path,
                                                                        instrumental_path, scratch)
        result = render_feature(engine, mix, sample_rate, sections, {k: v for k, v in voices.items() if k != "main"},
                                vocals=vocals, instrumental=instrumental, options=options, keep_stems=daw,
                                scratch=scratch)
        inputs = {"song": str(song_path) if vocals_path is None else None,
                  "vocals": str(vocals_path) if vocals_path else None,
                  "instrumental": str(instrumental_path) if instrumental_path else None,
                  "voices": {k: recipe.get(f"voices.{k}.ref") for k in recipe.get("voices", {})}}
        return save_result(result, out_dir, engine.settings.bit_depth, daw=daw, title=(song_path or vocals_path).stem,
                           inputs=inputs, timer=timer, extra_report={"recipe": record}, stems=stems, midi=False)


# -- batches -----------------------------------------------------------------------------------
def list_songs(spec: str | os.PathLike) -> list[Path]:
    """Songs of a batch: the audio files of a folder (sorted by name), or a list file with one
    path a line (relative to the list file; blank lines and ``#`` comments skipped)."""
    spec = Path(spec)
    if spec.is_dir():
        songs = sorted(p for p in spec.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    elif spec.is_file():
        songs = []
        for line in spec.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                p = Path(os.path.expanduser(line))
                songs.append(p if p.is_absolute() else spec.absolute().parent / p)
    else:
        raise UserInputError(f"--songs {spec}: no such folder or list file")
    if not songs:
        raise UserInputError(f"--songs {spec}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return songs


@dataclass
class BatchItem:
    """What happened to one song of a batch: ``status`` is ``done``, ``skipped`` (done before,
    same recipe and input) or ``failed`` (``message`` says why)."""

    index: int
    total: int
    song: Path
    out_dir: Path
    status: str
    seconds: float = 0.0
    message: str = ""
    report: dict | None = None


def is_done(out_dir: Path, recipe_sha256: str, input_sha256: str) -> bool:
    """True when ``out_dir`` holds a complete report of this recipe on this input."""
    try:
        report = json.loads((Path(out_dir) / "report.json").read_text())
    except (OSError, ValueError):
        return False
    rec = report.get("recipe", {}) if isinstance(report, dict) else {}
    if rec.get("sha256") != recipe_sha256 or rec.get("input_sha256") != input_sha256:
        return False
    return all((Path(out_dir) / name).exists() for name in report.get("outputs", []))


def batch_dirs(songs: list[Path], root: Path) -> list[Path]:
    """One output folder per song, named after it (a number added when two songs share a name)."""
    seen: dict[str, int] = {}
    out = []
    for song in songs:
        n = seen.get(song.stem, 0)
        seen[song.stem] = n + 1
        out.append(root / (song.stem if n == 0 else f"{song.stem}-{n + 1}"))
    return out


def run_batch(recipe: Recipe, songs: list[Path], engine=None, out_root: str | os.PathLike | None = None) -> Iterator[BatchItem]:
    """Convert many songs with one recipe, models and voices loaded once; yields one
    :class:`BatchItem` per song as it finishes. Songs already done (same recipe hash and input
    hash in their folder's report) are skipped; a song that fails is reported and the batch
    goes on."""
    engine = engine or build_engine(recipe)
    root = Path(out_root) if out_root is not None else recipe.output_dir()
    check_output_dir(root)  # an unwritable output root stops the batch before any work
    voices = load_voices(recipe, engine)  # a bad voice stops the batch before any song
    dirs = batch_dirs(songs, root)
    for i, (song, out_dir) in enumerate(zip(songs, dirs), 1):
        start = time.perf_counter()
        try:
            if is_done(out_dir, recipe.sha256, file_sha256(song)):
                yield BatchItem(i, len(songs), song, out_dir, "skipped", message="already done")
                continue
            report = run_recipe(recipe, engine, out_dir, song=song, voices=voices)
            yield BatchItem(i, len(songs), song, out_dir, "done", time.perf_counter() - start, report=report)
        except (SingvcError, MemoryError, Exception) as exc:  # noqa: B014 - one song never stops the batch
            message = " ".join(str(exc).split()) if isinstance(exc, SingvcError) else \
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            yield BatchItem(i, len(songs), song, out_dir, "failed", time.perf_counter() - start, message=message)
