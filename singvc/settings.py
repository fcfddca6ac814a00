"""The fixed choices and finite ranges of singvc's settings, declared once, at the bottom of the
package (imports nothing of singvc): CLI flags, presets, recipes, ``--set``,
:class:`~singvc.pipeline.CoverSettings` and the planner all check against these tables, so a bad
value is refused where it is read, before any audio work, with the same message everywhere.
"""
from __future__ import annotations

import math
from typing import Any

#: the fixed choices of a setting, by key name
CHOICES = {"plan_mode": ("key-lock", "free"), "converter": ("dsp", "pitch", "none"), "bit_depth": ("16", "24", "32f"),
           "layer": ("replace", "duet", "double"), "pitch_model": ("full", "tiny"),
           "pitch_backend": ("auto", "onnx", "torch"), "render": ("world", "waveform"), "device": ("auto", "cpu", "cuda")}
#: the finite range (inclusive) of every numeric setting, by key name: recipes (any table), ``--set``,
#: presets, CLI flags and :class:`~singvc.pipeline.CoverSettings` all check against this table
#: (:func:`range_error`); an int range takes integers only
RANGES = {"strength": (0.0, 1.0), "pan": (-1.0, 1.0), "original_pan": (-1.0, 1.0), "crossfade_ms": (1.0, 2000.0),
          "snap_seconds": (0.0, 10.0), "min_pause": (0.0, 10.0), "phrase_pause": (0.0, 10.0),
          # semitones: the planner's range (plan.MAX_SEMITONES and the converters read it from here)
          "transpose": (-36.0, 36.0),
          "level_db": (-60.0, 20.0), "original_level_db": (-60.0, 20.0),
          "pitch_hop": (0.001, 0.01), "pitch_stride": (1, 4), "ceiling_dbtp": (-20.0, 0.0)}


def range_error(key: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for the numeric setting ``key`` (see :data:`RANGES`), or ``None``."""
    lo, hi = RANGES[key]
    if isinstance(lo, int) and isinstance(hi, int):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return f"must be an integer from {lo} to {hi} (got {value!r})"
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not lo <= value <= hi):
        return f"must be a finite number between {lo:g} and {hi:g} (got {value!r})"
    return None
