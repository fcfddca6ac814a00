"""Loudness matching (ITU-R BS.1770 via pyloudnorm) and the final remix.

The converted vocal is matched to the original vocal's integrated loudness, then summed with the
instrumental. The mix is kept from clipping by one overall gain: its true peak (4× oversampled)
is held at or below a ceiling of -1 dBTP, or at the input song's own true peak when the song was
already louder than that (singvc never makes a song peak higher than it came, nor re-masters it). When nothing would
exceed the ceiling, the mix is left untouched.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .audio import as_audio

#: integrated loudness below this is treated as silence (no gain is applied)
SILENCE_LUFS = -70.0
#: largest boost applied when matching loudness
MAX_GAIN_DB = 24.0


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``[channels, samples]``; ``-inf`` when silent or under 0.4 s."""
    import pyloudnorm

    audio = as_audio(audio)
    if audio.shape[-1] < int(0.4 * sample_rate) or not np.any(audio):
        return float("-inf")
    meter = pyloudnorm.Meter(sample_rate)
    # float32 in: pyloudnorm's filters keep it, and a 10-minute stereo song then needs ~0.6 GB
    # of working memory instead of ~1 GB; the result differs by < 1e-6 LU
    data = audio.T
    if data.shape[1] > 5:  # BS.1770 weights cover up to 5 channels: measure the downmix
        data = data.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        value = float(meter.integrated_loudness(data))
    return value if np.isfinite(value) else float("-inf")


def true_peak_dbtp(audio: np.ndarray, sample_rate: int, chunk_seconds: float = 10.0) -> float:
    """True peak in dBTP: the sample peak of a 4× oversampled copy (2× at 96 kHz and above).

    Works in chunks (with a margin for the interpolation filter) so memory stays bounded.
    """
    from scipy.signal import resample_poly

    audio = as_audio(audio)
    factor = 4 if sample_rate < 96_000 else (2 if sample_rate < 176_400 else 1)
    n = audio.shape[-1]
    if n == 0:
        return float("-inf")
    if factor == 1:
        peak = float(np.max(np.abs(audio)))
    else:
        step = max(1, int(chunk_seconds * sample_rate))
        margin = 64
        peak = 0.0
        for start in range(0, n, step):
            lo, hi = max(0, start - margin), min(n, start + step + margin)
            up = resample_poly(audio[:, lo:hi].astype(np.float64), factor, 1, axis=-1)
            keep = up[:, (start - lo) * factor: (min(n, start + step) - lo) * factor]
            peak = max(peak, float(np.max(np.abs(keep))), float(np.max(np.abs(audio[:, start:start + step]))))
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


@dataclass
class LoudnessMatch:
    """What :func:`match_loudness` did. Loudness in LUFS, gain in dB."""

    reference_lufs: float
    before_lufs: float
    after_lufs: float
    gain_db: float
    note: str = ""


def match_loudness(
    audio: np.ndarray, sample_rate: int, reference_lufs: float
) -> tuple[np.ndarray, LoudnessMatch]:
    """Scale ``audio`` to ``reference_lufs``.

    Near-silent audio or reference (below -70 LUFS) is left unchanged; boosts are capped at
    +24 dB; gains under 0.01 dB are skipped so an unchanged vocal stays bit-exact.
    """
    audio = as_audio(audio)
    before = integrated_loudness(audio, sample_rate)
    if before < SILENCE_LUFS or reference_lufs < SILENCE_LUFS:
        which = "vocal" if before < SILENCE_LUFS else "reference vocal"
        return audio, LoudnessMatch(reference_lufs, before, before, 0.0, f"{which} is near-silent: no gain applied")
    gain_db = float(min(reference_lufs - before, MAX_GAIN_DB))
    note = "boost capped at +24 dB" if reference_lufs - before > MAX_GAIN_DB else ""
    if abs(gain_db) < 0.01:
        return audio, LoudnessMatch(reference_lufs, before, before, 0.0, "already matched")
    out = (audio * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    return out, LoudnessMatch(reference_lufs, before, integrated_loudness(out, sample_rate), gain_db, note)


@dataclass
class RemixInfo:
    """What :func:`remix` did. Peaks in dBTP, gain in dB, loudness in LUFS."""

    true_peak_before_dbtp: float
    ceiling_dbtp: float
    gain_db: float
    true_peak_after_dbtp: float
    limited: bool
    mix_lufs: float

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and np.isfinite(v) else v) for k, v in asdict(self).items()}


def remix(
    vocals: np.ndarray,
    instrumental: np.ndarray,
    sample_rate: int,
    ceiling_dbtp: float = -1.0,
    input_true_peak_dbtp: float | None = None,
) -> tuple[np.ndarray, RemixInfo]:
    """Sum ``vocals`` and ``instrumental`` (same ``[channels, samples]``) and keep the result from clipping.

    Args:
        ceiling_dbtp: true-peak ceiling.
        input_true_peak_dbtp: true peak of the original song; when above ``ceiling_dbtp`` it
            becomes the ceiling, so an unchanged song is given back unchanged.
    """
    vocals, instrumental = as_audio(vocals, "vocals"), as_audio(instrumental, "instrumental")
    if vocals.shape != instrumental.shape:
        from .errors import InvalidAudioError

        raise InvalidAudioError(f"vocals {vocals.shape} and instrumental {instrumental.shape} differ in shape")
    mix = vocals + instrumental
    ceiling = ceiling_dbtp
    if input_true_peak_dbtp is not None and np.isfinite(input_true_peak_dbtp):
        ceiling = max(ceiling_dbtp, input_true_peak_dbtp)
    peak = true_peak_dbtp(mix, sample_rate)
    gain_db = 0.0
    if peak > ceiling:
        gain_db = ceiling - peak
        mix = (mix * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)
    after = peak + gain_db
    return mix, RemixInfo(peak, ceiling, gain_db, after, gain_db != 0.0, integrated_loudness(mix, sample_rate))
