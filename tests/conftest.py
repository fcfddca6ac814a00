"""Shared synthetic signals. Tests never download anything and never read ../shared/data."""
from __future__ import annotations

import numpy as np
import pytest


def harmonic_tone(
    f0: np.ndarray | float, seconds: float, sample_rate: int, n_harmonics: int = 8, level: float = 0.2
) -> np.ndarray:
    """A sawtooth-like tone following ``f0`` (Hz, scalar or per-sample), float32 ``[samples]``."""
    n = int(round(seconds * sample_rate))
    f = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f) / sample_rate
    out = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1))
    return (level * out / np.max(np.abs(out))).astype(np.float32)


def vibrato_f0(center_hz: float, rate_hz: float, extent_cents: float, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return center_hz * 2 ** (extent_cents * np.sin(2 * np.pi * rate_hz * t) / 1200)


@pytest.fixture(scope="session")
def tiny_crepe():
    from singvc.pitch import load_pitch_model

    return load_pitch_model("tiny")


@pytest.fixture(scope="session")
def full_crepe():
    from singvc.pitch import load_pitch_model

    return load_pitch_model("full")
