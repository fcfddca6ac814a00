"""Converter ``"none"``: the vocal passes through unchanged (for A/B and for tests)."""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from ..audio import DiskAudio, as_audio, check_finite, copy_into
from ..pitch import PitchTrack
from .base import Converter, register


@register
class BypassConverter(Converter):
    """Converter ``"none"``: returns a copy of the input, bit-exact (for A/B and for tests)."""

    name: ClassVar[str] = "none"
    moves_pitch: ClassVar[bool] = False
    summary: ClassVar[str] = "no conversion: the vocal passes through (the mix then equals the input)"

    def convert(
        self,
        vocals: np.ndarray,
        sample_rate: int,
        pitch: PitchTrack,
        semitones: float,
        voice: Any = None,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        out: "np.ndarray | DiskAudio | None" = None,
    ) -> np.ndarray:
        """Return a bit-exact copy of ``vocals`` (in ``out`` when given); everything else is ignored."""
        audio = as_audio(vocals, "vocals")
        check_finite(audio, "vocals")
        return copy_into(audio, out)
