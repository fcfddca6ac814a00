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


SONG_RATE = 44100


def synth_song(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """A 'vocal' (vibrato tone with gaps) over a bass line and noise hits, stereo float32 at 44.1 kHz."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SONG_RATE)
    voice = harmonic_tone(vibrato_f0(220, 5.5, 40, seconds, SONG_RATE), seconds, SONG_RATE, level=0.25)
    gate = np.ones(n, np.float32)
    gate[int(0.45 * n): int(0.55 * n)] = 0
    voice *= gate
    t = np.arange(n) / SONG_RATE
    bass = 0.15 * np.sin(2 * np.pi * 55 * t)
    hits = np.zeros(n)
    for start in range(0, n, SONG_RATE // 2):
        hits[start: start + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300) * 0.3
    return np.stack([voice + bass + hits, 0.8 * voice + bass + 0.5 * hits]).astype(np.float32)


def write_voice_clip(path) -> None:
    """A 2 s, 22.05 kHz reference clip: a 440 Hz vibrato tone."""
    import soundfile as sf

    sf.write(str(path), harmonic_tone(vibrato_f0(440, 5, 30, 2.0, 22050), 2.0, 22050), 22050)


@pytest.fixture(scope="session")
def tiny_separator_repo(tmp_path_factory):
    """A local Demucs model folder holding the tiny random HTDemucs as ``tiny`` (built once per run)."""
    from singvc.separate import build_tiny_model, save_model_to_repo

    repo = tmp_path_factory.mktemp("tiny_demucs")
    save_model_to_repo(build_tiny_model(), repo, "tiny")
    return repo
