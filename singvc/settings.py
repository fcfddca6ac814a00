"""Every setting of singvc, declared once: type, default, allowed values or range, unit and help.

This module sits at the bottom of the package (it imports only :mod:`singvc.errors`). Everything
else derives from :data:`SCHEMA`:

- the command line's flags (:mod:`singvc.cli` builds each flag, its help and default from here),
- presets (``presets/*.toml``), recipes (``[settings]``, ``[voice]``, sections) and ``--set``,
- the Python API: :class:`CoverSettings` is made from the schema and checks every value.

One function applies precedence (:func:`resolve`: defaults < preset < recipe < ``--set`` <
flags), one resolves the device (:func:`resolve_device`). A bad value from any source stops the
job before any audio work with one line naming the setting and where it came from, e.g.
``presets/strong.toml:4: strength must be a finite number between 0 and 1 (got 2)``.

Two lists are filled by the modules that own them, when the package is imported: the converter
names (the registry in :mod:`singvc.converters` calls :func:`set_choices`) and the reading of a
register (:mod:`singvc.plan` calls :func:`set_parser` for ``target_range``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import UserInputError

#: the order flags appear in ``--help``
GROUPS = ("input", "separation", "pitch", "plan", "convert", "output", "device", "feature", "section")


@dataclass
class Setting:
    """One setting.

    Attributes:
        kind: ``str``, ``float``, ``int`` or ``bool`` (an int is accepted where a float is asked).
        default: the value when no source sets it (``None``: unset, e.g. no forced transposition).
        choices: the allowed values of a text setting.
        range: ``(low, high)`` inclusive, for numbers (always finite).
        unit: shown in help (``dB``, ``semitones``, ``s``, ...).
        flag: the command-line flag (``None``: no flag, presets and recipes only).
        commands: the CLI commands that take the flag.
        scope: ``cover`` (a :class:`CoverSettings` field), ``feature`` (a vocal feature's options)
            or ``section`` (one section of a feature).
        metavar: the flag's placeholder in help.
        const: for a switch flag (no value): the value it sets (``--no-separation`` sets False).
        flag_help: the help of a switch flag, when it differs from the setting's.
        parse: reads a text value (e.g. a note range) and raises :class:`UserInputError` when it
            cannot; set by the module that owns the format (:func:`set_parser`).
        label: a short name in producers' words for front ends (the web app's controls);
            default: the name with spaces.
    """

    name: str
    kind: type
    default: Any
    help: str
    group: str
    choices: tuple | None = None
    range: tuple | None = None
    unit: str = ""
    flag: str | None = None
    commands: tuple[str, ...] = ()
    scope: str = "cover"
    metavar: str | None = None
    const: Any = None
    flag_help: str | None = None
    parse: Callable[[str], Any] | None = field(default=None, repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.name.replace("_", " ").capitalize()

    @property
    def optional(self) -> bool:
        return self.default is None


#: the commands that load models take every model flag (a script can pass the same ones to each)
_PITCH_CMDS = _SEP_CMDS = ("cover", "separate", "stems", "pitch", "plan", "voice enroll", "eval")


def _s(name, kind, default, help, group, **kw) -> Setting:
    return Setting(name, kind, default, help, group, **kw)


SCHEMA: dict[str, Setting] = {s.name: s for s in [
    # -- input and separation ---------------------------------------------------------------------
    _s("separation", bool, True, "separate the song with Demucs (false: the input is a vocal-only stem)",
       "separation", flag="--no-separation", const=False, commands=("cover",),
       flag_help="treat the input as a vocal-only stem (no separation)", label="Separate the vocal from the song"),
    _s("separator_model", str, "htdemucs", "Demucs model name (htdemucs, htdemucs_ft, mdx_extra, ...)",
       "separation", flag="--separator-model", commands=_SEP_CMDS, metavar="NAME", label="Separation model (Demucs)"),
    _s("separator_repo", str, None, "local folder of Demucs model files (NAME.th), as demucs --repo; no download",
       "separation", flag="--separator-repo", commands=_SEP_CMDS, metavar="DIR", label="Separation model folder"),
    # -- pitch ----------------------------------------------------------------------------------
    _s("pitch_model", str, "full", "torchcrepe capacity for the vocal", "pitch", choices=("full", "tiny"),
       flag="--pitch-model", commands=_PITCH_CMDS, label="Pitch tracking of the vocal"),
    _s("reference_pitch_model", str, "tiny", "crepe capacity for target-voice clips (register and profile)",
       "pitch", choices=("full", "tiny"), flag="--reference-pitch-model", commands=_PITCH_CMDS, label="Pitch tracking of the target voice"),
    _s("pitch_backend", str, "auto", "run crepe through onnxruntime (about 2-4x faster on CPU) or torch; "
       "auto: onnx on CPU", "pitch", choices=("auto", "onnx", "torch"), flag="--pitch-backend", commands=_PITCH_CMDS, label="Pitch tracker engine"),
    _s("pitch_hop", float, 0.01, "pitch frame hop, at most 0.01 s", "pitch", range=(0.001, 0.01), unit="s",
       flag="--pitch-hop", commands=_PITCH_CMDS, metavar="SECONDS", label="Pitch frame step"),
    _s("pitch_stride", int, 2, "run crepe on every N-th frame and fill the rest (1: every frame, about 2x slower)",
       "pitch", range=(1, 4), flag="--pitch-stride", commands=_PITCH_CMDS, metavar="N", label="Pitch frames computed (every Nth)"),
    _s("pitch_refine", bool, True, "refine crepe's track by the instantaneous frequency of the voice's harmonics "
       "(WORLD StoneMask, guarded): vibrato and slides to a fraction of a cent on clean voices "
       "(docs/pitch-benchmark.md)", "pitch", flag="--no-pitch-refine", const=False, commands=_PITCH_CMDS,
       flag_help="keep crepe's own track (no harmonic refinement)", label="Refine pitch to the cent"),
    # -- range plan -----------------------------------------------------------------------------
    _s("transpose", float, None, "shift by N semitones, overriding the plan", "plan", range=(-36.0, 36.0),
       unit="semitones", flag="--transpose", commands=("cover", "plan"), metavar="N", label="Transpose"),
    _s("target_range", str, None, "target register as notes (C3-A4) or Hz (130-440), instead of measuring --voice",
       "plan", flag="--target-range", commands=("cover", "plan"), metavar="LOW-HIGH", label="Target range (notes)"),
    _s("plan_mode", str, "key-lock", "key-lock: whole octaves only, the vocal stays in the instrumental's key; "
       "free: any whole semitone", "plan", choices=("key-lock", "free"), flag="--no-key-lock",
       const="free", commands=("cover", "plan"),
       flag_help="allow any whole-semitone shift (default: whole octaves only, the vocal stays in key)", label="Key"),
    _s("shift_instrumental", bool, False, "after a non-octave shift, shift the instrumental by the same amount",
       "plan", flag="--shift-instrumental", const=True, commands=("cover",), label="Shift the instrumental to the vocal's new key"),
    # -- conversion -----------------------------------------------------------------------------
    _s("converter", str, "dsp", "the voice converter (see 'Voice conversion' in README)", "convert",
       flag="--converter", commands=("cover",), label="Voice converter"),
    _s("strength", float, 1.0, "how far the dsp converter moves the timbre toward the target (0 = pitch shift only)",
       "convert", range=(0.0, 1.0), flag="--strength", commands=("cover",), metavar="0..1", label="Timbre strength"),
    _s("render", str, "world", "dsp converter, where the pitch is not moved: world re-synthesizes with the WORLD "
       "vocoder (moves identity further); waveform filters the singer's own waveform (more natural, exact pitch, "
       "faster); shifted regions always use WORLD", "convert", choices=("world", "waveform"), flag="--render",
       commands=("cover",), label="Unshifted passages rendered by"),
    _s("steps", int, 30, "seedvc converter: diffusion (Euler) steps; 30-50 for singing, about 10 for drafts",
       "convert", range=(1, 200), flag="--steps", commands=("cover",), metavar="N", label="Diffusion steps"),
    _s("cfg", float, 0.7, "seedvc converter: classifier-free guidance rate (0 = none)", "convert",
       range=(0.0, 5.0), flag="--cfg", commands=("cover",), metavar="RATE", label="Guidance rate"),
    _s("seed", int, 0, "seedvc converter: noise seed (the same seed gives the same output)", "convert",
       range=(0, 2**31 - 1), flag="--seed", commands=("cover",), metavar="N", label="Noise seed"),
    _s("seedvc_dir", str, None, "seedvc converter: local folder of the Seed-VC weights (the layout of "
       "'singvc models fetch seedvc'); default the model cache", "convert", flag="--seedvc-dir",
       commands=("cover",), metavar="DIR", label="Seed-VC weights folder"),
    _s("backing", str, "keep", "lead/backing split of the vocal stem (docs/backing.md): keep: the original backing "
       "stays under the converted lead; convert: the backing is converted to the same voice with the same shift; "
       "mute: the backing is dropped; off: no split (the whole stem is converted). Where no second voice is "
       "found the stem is converted whole, as with off. Writes vocals_lead.wav and vocals_backing.wav when "
       "something was split", "convert", choices=("off", "keep", "convert", "mute"),
       flag="--backing", commands=("cover",), label="Backing vocals"),
    _s("dereverb", bool, False, "take the room off the lead before conversion (WPE) and put an estimated room back "
       "on the converted lead (without --backing: on the whole vocal stem); slow, and the room put back decays "
       "shorter than the original (docs/backing.md)", "convert", flag="--dereverb", const=True,
       commands=("cover",), label="Remove the room before converting"),
    # -- output ---------------------------------------------------------------------------------
    _s("ceiling_dbtp", float, -1.0, "true-peak ceiling of the mix", "output", range=(-20.0, 0.0), unit="dBTP", label="Mix ceiling"),
    _s("bit_depth", str, "24", "WAV format", "output", choices=("16", "24", "32f"), flag="--bit-depth",
       commands=("cover", "separate", "stems"), label="WAV bit depth"),
    # -- device and preset ----------------------------------------------------------------------
    _s("device", str, "auto", "compute device; auto: cuda when available, else cpu", "device",
       choices=("auto", "cpu", "cuda"), flag="--device", commands=(*_PITCH_CMDS, "run"), label="Compute on"),
    _s("preset", str, None, "the settings preset the run started from (recorded in the report)", "device"),
    # -- a vocal feature (recipes) --------------------------------------------------------------
    _s("crossfade_ms", float, 30.0, "cross-fade at every section boundary", "feature", range=(1.0, 2000.0),
       unit="ms", scope="feature", label="Cross-fade at section boundaries"),
    _s("snap_seconds", float, 0.4, "move a boundary into a pause of the vocal this close", "feature",
       range=(0.0, 10.0), unit="s", scope="feature", label="Move boundaries into pauses within"),
    _s("min_pause", float, 0.12, "shortest pause a boundary may snap into", "feature", range=(0.0, 10.0), unit="s",
       scope="feature", label="Shortest pause to snap into"),
    _s("phrase_pause", float, 0.25, "shortest pause that separates two phrases", "feature", range=(0.0, 10.0),
       unit="s", scope="feature", label="Shortest pause between phrases"),
    _s("layer", str, "replace", "replace the original singer, or layer the converted voice with it", "section",
       choices=("replace", "duet", "double"), scope="section", label="Layer"),
    _s("level_db", float, 0.0, "level of the converted layer", "section", range=(-60.0, 20.0), unit="dB",
       scope="section", label="Converted voice level"),
    _s("pan", float, 0.0, "pan of the converted layer (-1 left .. 1 right)", "section", range=(-1.0, 1.0),
       scope="section", label="Converted voice pan"),
    _s("original_level_db", float, 0.0, "level of the original layer (duet, double)", "section",
       range=(-60.0, 20.0), unit="dB", scope="section", label="Original singer level"),
    _s("original_pan", float, 0.0, "pan of the original layer (duet, double)", "section", range=(-1.0, 1.0),
       scope="section", label="Original singer pan"),
]}


def set_choices(name: str, choices: tuple[str, ...]) -> None:
    """Give a text setting its allowed values (the converter registry does, for ``converter``)."""
    SCHEMA[name].choices = tuple(choices)


def set_parser(name: str, parse: Callable[[str], Any]) -> None:
    """Give a text setting its reader (the planner does, for ``target_range``)."""
    SCHEMA[name].parse = parse


def choices(name: str) -> tuple:
    return tuple(SCHEMA[name].choices or ())


def default(name: str) -> Any:
    return SCHEMA[name].default


# -- checking ----------------------------------------------------------------------------------
_TYPE_NAMES = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}


def type_ok(value: Any, kind: type) -> bool:
    """Whether ``value`` is of ``kind`` (an int counts as a float; a bool never as a number)."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is int:
        return isinstance(value, int)
    return isinstance(value, kind)


def type_name(kind: type) -> str:
    return _TYPE_NAMES[kind]


def range_error(name: str, value: Any) -> str | None:
    """Why ``value`` is outside the range of the numeric setting ``name``, or ``None``."""
    lo, hi = SCHEMA[name].range
    if SCHEMA[name].kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return f"must be an integer from {lo} to {hi} (got {value!r})"
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not lo <= value <= hi):
        return f"must be a finite number between {lo:g} and {hi:g} (got {value!r})"
    return None


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for setting ``name`` (type, choices, range, format), or ``None``.
    The message starts after the setting's name: ``must be one of ... (got ...)``."""
    s = SCHEMA[name]
    if value is None:
        return None if s.optional else f"must be {type_name(s.kind)} (got nothing)"
    if not type_ok(value, s.kind):
        return f"must be {type_name(s.kind)} (got {value!r})"
    if s.choices is not None and value not in s.choices:
        return f"must be one of {', '.join(map(str, s.choices))} (got {value!r})"
    if s.range is not None:
        return range_error(name, value)
    if s.kind is str and s.parse is not None:
        try:
            s.parse(value)
        except UserInputError as exc:
            return str(exc)
    return None


def coerce(name: str, value: Any) -> Any:
    """``value`` in the setting's own type (an int given for a float becomes a float)."""
    if value is not None and SCHEMA[name].kind is float:
        return float(value)
    return value


def check(name: str, value: Any, where: str) -> Any:
    """``value`` checked and coerced; a bad one raises :class:`UserInputError` naming ``where``."""
    if name not in SCHEMA:
        raise UserInputError(f"{where}: unknown setting {name!r}")
    why = problem(name, value)
    if why:
        raise UserInputError(f"{where}: {name} {why}")
    return coerce(name, value)


# -- the settings of a cover run ---------------------------------------------------------------
def _post_init(self) -> None:
    # every value against the schema, however the settings were made (CLI, preset, recipe, Python)
    for f in dataclasses.fields(self):
        setattr(self, f.name, check(f.name, getattr(self, f.name), "setting"))


#: every setting of a cover run (all recorded in the report); fields, types and defaults are the
#: schema's ``cover`` settings
CoverSettings = dataclasses.make_dataclass(
    "CoverSettings",
    [(s.name, s.kind if not s.optional else "Any", field(default=s.default))
     for s in SCHEMA.values() if s.scope == "cover"],
    namespace={"__post_init__": _post_init,
               "__doc__": "Every setting of a cover run (see :data:`singvc.settings.SCHEMA`; all recorded in "
                          "the report). Checked against the schema when made."},
)
CoverSettings.__module__ = __name__

COVER_FIELDS = tuple(s.name for s in SCHEMA.values() if s.scope == "cover")


@dataclass
class Layer:
    """One source of setting values: ``values`` and where each came from (``where(name)``, e.g.
    ``--strength``, ``presets/strong.toml:4``, ``song.toml:12``)."""

    values: dict[str, Any]
    where: Callable[[str], str]


def resolve(*layers: Layer, base: Any = None) -> Any:
    """The :class:`CoverSettings` of a run: ``base`` (default: the schema's defaults), then each
    layer in order, later ones winning (defaults < preset < recipe < ``--set`` < flags). Every
    value is checked as it is read; the first bad one raises :class:`UserInputError` naming the
    setting and its source."""
    values = dataclasses.asdict(base) if base is not None else {}
    for layer in layers:
        for name, value in layer.values.items():
            where = layer.where(name)
            if name not in SCHEMA or SCHEMA[name].scope != "cover":
                raise UserInputError(f"{where}: unknown setting {name!r} (known: {', '.join(COVER_FIELDS)})")
            values[name] = check(name, value, where)
    return CoverSettings(**values)


def pick(*candidates: Any) -> Any:
    """The first of ``candidates`` that is set (not ``None``): a section's value over its voice's
    over the run's."""
    return next((c for c in candidates if c is not None), None)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cpu``/``cuda`` as given."""
    check("device", name, "device")
    if name != "auto":
        return name
    import torch  # heavy: imported only when a device is resolved

    return "cuda" if torch.cuda.is_available() else "cpu"


#: the finite range of every numeric setting, by name (a view of the schema)
RANGES = {n: s.range for n, s in SCHEMA.items() if s.range is not None}
