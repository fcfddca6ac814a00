"""Range plan: choose the transposition that brings the source vocal into the target's register.

Registers are measured on voiced frames in MIDI note numbers (semitones). The default mode,
key-lock, only moves by whole octaves so the vocal stays in the instrumental's key; ``free``
allows any whole-semitone shift (the instrumental then needs the same shift to stay in key);
a manual ``--transpose`` overrides both.

The choice minimises ``share of voiced frames outside the target range + |median gap| / 24``,
so fitting the range comes first and the median gap breaks near-ties (smaller shifts win ties).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import PlanError
from .pitch import PitchTrack
from .settings import SCHEMA, set_parser

MODES = SCHEMA["plan_mode"].choices
#: largest shift in semitones (either direction): a manual transpose, the converters and the CLI all
#: use this one range (kept in the settings table, :data:`singvc.settings.RANGES`)
MAX_SEMITONES = float(SCHEMA["transpose"].range[1])
_NOTE = r"[A-Ga-g][#b♯♭]?-?\d+"


def midi_to_hz(midi: float) -> float:
    return float(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


def hz_to_midi(hz: float) -> float:
    return float(69.0 + 12.0 * np.log2(hz / 440.0))


def midi_to_note(midi: float) -> str:
    """Nearest note name with cents, e.g. ``'A3+12'``; plain ``'A3'`` within ±2 cents."""
    import librosa

    return str(librosa.midi_to_note(midi, cents=abs(midi - round(midi)) > 0.02, unicode=False))


@dataclass
class Register:
    """A voice's pitch register, in MIDI note numbers.

    ``low``/``high`` bound the range used for the out-of-range check; ``p10``/``p90`` give the
    tessitura; ``voiced_seconds`` is how much voiced audio it was measured on (0 when given).
    """

    median: float
    p10: float
    p90: float
    low: float
    high: float
    voiced_seconds: float = 0.0
    source: str = "measured"

    def describe(self) -> dict:
        """JSON-ready summary with note names and Hz."""
        out: dict = {"source": self.source, "voiced_seconds": round(self.voiced_seconds, 2)}
        for key in ("median", "p10", "p90", "low", "high"):
            value = getattr(self, key)
            out[key] = {"note": midi_to_note(value), "hz": round(midi_to_hz(value), 2), "midi": round(value, 2)}
        return out


def measure_register(track: PitchTrack, min_voiced_seconds: float = 0.25) -> Register:
    """Register of the voiced frames of ``track`` (low/high are the 5th/95th percentiles)."""
    f0 = track.voiced_f0
    seconds = len(f0) * track.hop
    if seconds < min_voiced_seconds:
        raise PlanError(
            f"only {seconds:.2f} s of voiced audio (need {min_voiced_seconds:.2f} s) to measure a register"
        )
    midi = 69.0 + 12.0 * np.log2(f0 / 440.0)
    p5, p10, p50, p90, p95 = np.percentile(midi, [5, 10, 50, 90, 95])
    return Register(median=float(p50), p10=float(p10), p90=float(p90), low=float(p5), high=float(p95),
                    voiced_seconds=seconds)


def parse_range(text: str) -> Register:
    """Parse ``'C3-A4'`` (note names) or ``'130-440'`` (Hz) into a :class:`Register`."""
    import librosa

    text = text.strip()
    m = re.fullmatch(rf"({_NOTE})\s*[-–:]\s*({_NOTE})", text)
    try:
        if m:
            low, high = (float(librosa.note_to_midi(n.replace("♯", "#").replace("♭", "b"))) for n in m.groups())
        else:
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[-–:]\s*(\d+(?:\.\d+)?)", text)
            if not m:
                raise ValueError
            low, high = (hz_to_midi(float(v)) for v in m.groups())
    except (ValueError, librosa.ParameterError):
        raise PlanError(f"cannot read range {text!r}: use notes like C3-A4 or Hz like 130-440") from None
    if not low < high:
        raise PlanError(f"range {text!r} is empty: the low end must be below the high end")
    if low < 12 or high > 120:
        raise PlanError(f"range {text!r} is outside C0-C9")
    mid = (low + high) / 2
    return Register(median=mid, p10=low, p90=high, low=low, high=high, source="given")


set_parser("target_range", parse_range)  # the settings schema reads registers with it


@dataclass
class RangePlan:
    """The chosen transposition and what it does to the source's register."""

    semitones: float
    mode: str  # "key-lock", "free", "manual" or "none"
    source: Register | None  # None when the source has too little voiced audio to measure
    target: Register | None
    out_of_range_before: float
    out_of_range_after: float

    @property
    def keeps_key(self) -> bool:
        """True when the shift is a whole number of octaves."""
        return float(self.semitones) % 12.0 == 0.0

    def describe(self) -> dict:
        return {
            "semitones": self.semitones,
            "mode": self.mode,
            "keeps_key": self.keeps_key,
            "source": self.source.describe() if self.source else None,
            "target": self.target.describe() if self.target else None,
            "shifted_source_median": {
                "note": midi_to_note(self.source.median + self.semitones),
                "hz": round(midi_to_hz(self.source.median + self.semitones), 2),
            } if self.source else None,
            "out_of_range_share_before": round(self.out_of_range_before, 4),
            "out_of_range_share_after": round(self.out_of_range_after, 4),
        }


def out_of_range_share(track: PitchTrack, target: Register, semitones: float) -> float:
    """Share of voiced frames outside ``[target.low, target.high]`` after shifting by ``semitones``."""
    f0 = track.voiced_f0
    if len(f0) == 0:
        return 0.0
    midi = 69.0 + 12.0 * np.log2(f0 / 440.0) + semitones
    return float(np.mean((midi < target.low) | (midi > target.high)))


def plan_transposition(
    track: PitchTrack,
    target: Register | None = None,
    mode: str = "key-lock",
    transpose: float | None = None,
    max_octaves: int = 3,
) -> RangePlan:
    """Choose the shift for the voiced frames of ``track`` toward ``target``.

    Args:
        target: the target register; ``None`` keeps the source register unless ``transpose`` is given.
        mode: ``"key-lock"`` (whole octaves) or ``"free"`` (whole semitones).
        transpose: semitones; overrides the search when given.

    A source with too little voiced audio to measure gets ``source=None`` and no shift (unless
    ``transpose`` is given): there is nothing to place in a register.
    """
    if mode not in MODES:
        raise PlanError(f"unknown plan mode {mode!r}; choose one of {', '.join(MODES)}")
    try:
        source: Register | None = measure_register(track)
    except PlanError:
        source = None
    if transpose is not None:
        if not -MAX_SEMITONES <= transpose <= MAX_SEMITONES:  # also refuses NaN
            raise PlanError(f"transpose must be within ±{MAX_SEMITONES:g} semitones (got {transpose})")
        shift, chosen_mode = float(transpose), "manual"
    elif target is None or source is None:
        shift, chosen_mode = 0.0, "none"
    else:
        step = 12 if mode == "key-lock" else 1
        candidates = np.arange(-max_octaves * 12, max_octaves * 12 + 1, step, dtype=float)
        scores = [
            out_of_range_share(track, target, c) + abs(source.median + c - target.median) / 24.0 + abs(c) * 1e-6
            for c in candidates
        ]
        shift, chosen_mode = float(candidates[int(np.argmin(scores))]), mode
    before = out_of_range_share(track, target, 0.0) if target else 0.0
    after = out_of_range_share(track, target, shift) if target else 0.0
    return RangePlan(semitones=shift, mode=chosen_mode, source=source, target=target,
                     out_of_range_before=before, out_of_range_after=after)

