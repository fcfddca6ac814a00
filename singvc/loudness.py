"""Loudness matching (ITU-R BS.1770 via pyloudnorm) and the final remix.

The converted vocal is matched to the original vocal's integrated loudness, then summed with the
instrumental. The mix is kept from clipping by one overall gain: its true peak (4× oversampled)
is held at or below a ceiling of -1 dBTP, or at the input song's own true peak when the song was
already louder than that (singvc never makes a song peak higher than it came, nor re-masters it). When nothing would
exceed the ceiling, the mix is left untouched. For PCM output the ceiling never goes above full scale
(``max_ceiling_dbtp``): a song that came in hotter than 0 dBTP (a float file) is turned down, not clipped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .audio import DiskAudio, as_audio, blocks
from .errors import InvalidAudioError

#: integrated loudness below this is treated as silence (no gain is applied)
SILENCE_LUFS = -70.0
#: largest boost applied when matching loudness
MAX_GAIN_DB = 24.0


def integrated_loudness(audio: "np.ndarray | DiskAudio", sample_rate: int) -> float:
    """Integrated loudness in LUFS of ``[channels, samples]``; ``-inf`` when silent or under 0.4 s.

    ITU-R BS.1770-4 exactly as ``pyloudnorm.Meter.integrated_loudness`` computes it (its
    K-weighting filters, 400 ms blocks, 75 % overlap, absolute and relative gates), but as a
    stream: the filters carry their state from block to block and only the samples of gating
    blocks not yet complete are kept, so memory does not grow with the length (a 10-minute stereo
    song measured whole needed ~0.6 GB). Same value as pyloudnorm on the whole signal.
    """
    import pyloudnorm
    from scipy.signal import lfilter, lfilter_zi

    audio = as_audio(audio)
    channels, n = audio.shape
    if n < int(0.4 * sample_rate) or not _any_nonzero(audio):
        return float("-inf")
    meter = pyloudnorm.Meter(sample_rate)
    downmix = channels > 5  # BS.1770 weights cover up to 5 channels: measure the downmix
    channels = 1 if downmix else channels
    stages = list(meter._filters.values())
    states = [[np.zeros(len(lfilter_zi(st.b, st.a)), dtype=np.float64) for _ in range(channels)] for st in stages]
    block, step = meter.block_size, 1.0 - meter.overlap
    n_blocks = int(np.round(((n / sample_rate - block) / (block * step)))) + 1
    # the block bounds pyloudnorm uses (same float expressions, so the same samples)
    lower = [int(block * (j * step) * sample_rate) for j in range(n_blocks)]
    upper = [int(block * (j * step + 1) * sample_rate) for j in range(n_blocks)]
    z = np.zeros((channels, n_blocks))
    pending = np.zeros((channels, 0), dtype=np.float32)  # filtered samples from sample `base` on
    base, j = 0, 0
    for start, stop in blocks(n):
        x = audio[:, start:stop]
        if downmix:
            x = x.mean(axis=0, keepdims=True)
        y = np.empty_like(x)
        for c in range(channels):
            row = x[c]
            for k, st in enumerate(stages):
                row, states[k][c] = lfilter(st.b, st.a, row, zi=states[k][c])
                row = st.passband_gain * row
            y[c] = row
        pending = np.concatenate([pending, y], axis=1)
        while j < n_blocks and upper[j] <= stop:
            z[:, j] = np.sum(np.square(pending[:, lower[j] - base:upper[j] - base]), axis=1) / (block * sample_rate)
            j += 1
        keep_from = lower[j] if j < n_blocks else stop
        pending = pending[:, keep_from - base:]
        base = keep_from
    for j in range(j, n_blocks):  # blocks reaching past the end: pyloudnorm sums what is there
        z[:, j] = np.sum(np.square(pending[:, lower[j] - base:upper[j] - base]), axis=1) / (block * sample_rate)
    return _gated_loudness(z)


def _gated_loudness(z: np.ndarray) -> float:
    """BS.1770 gating over block mean squares ``z [channels, blocks]`` (as pyloudnorm), LUFS."""
    gains = np.array([1.0, 1.0, 1.0, 1.41, 1.41])[: z.shape[0], None]
    with np.errstate(divide="ignore", invalid="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(np.sum(gains * z, axis=0))
        gated = block_lufs >= -70.0
        if not np.any(gated):
            return float("-inf")
        relative = -0.691 + 10.0 * np.log10(np.sum(gains[:, 0] * z[:, gated].mean(axis=1))) - 10.0
        gated = (block_lufs > relative) & (block_lufs > -70.0)
        if not np.any(gated):
            return float("-inf")
        value = float(-0.691 + 10.0 * np.log10(np.sum(gains[:, 0] * z[:, gated].mean(axis=1))))
    return value if np.isfinite(value) else float("-inf")


def _any_nonzero(audio) -> bool:
    return any(np.any(audio[:, a:b]) for a, b in blocks(audio.shape[-1]))


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
        peak = max(float(np.max(np.abs(audio[:, a:b]))) for a, b in blocks(n))
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
    audio: np.ndarray, sample_rate: int, reference_lufs: float, out: "np.ndarray | DiskAudio | None" = None,
) -> tuple[np.ndarray, LoudnessMatch]:
    """Scale ``audio`` to ``reference_lufs``.

    Near-silent audio or reference (below -70 LUFS) is left unchanged; boosts are capped at
    +24 dB; gains under 0.01 dB are skipped so an unchanged vocal stays bit-exact (``audio``
    itself is returned). ``out``: where the scaled audio goes (``audio`` itself to scale in
    place, e.g. a :class:`DiskAudio`); default a new array.
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
    out = _scaled(audio, np.float32(10.0 ** (gain_db / 20.0)), out)
    return out, LoudnessMatch(reference_lufs, before, integrated_loudness(out, sample_rate), gain_db, note)


def _scaled(audio, gain: np.float32, out=None):
    """``audio * gain`` block by block into ``out`` (default a new array); returns ``out``."""
    out = out if out is not None else np.empty(audio.shape, dtype=np.float32)
    for a, b in blocks(audio.shape[-1]):
        out[:, a:b] = audio[:, a:b] * gain
    return out


@dataclass
class RemixInfo:
    """What :func:`remix` did. Peaks in dBTP, gain in dB, loudness in LUFS."""

    true_peak_before_dbtp: float
    ceiling_dbtp: float
    gain_db: float
    true_peak_after_dbtp: float
    limited: bool
    mix_lufs: float
    #: the ceiling was held at ``max_ceiling_dbtp`` (the output format's full scale) below what
    #: the song's own peak would have allowed
    capped: bool = False

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and np.isfinite(v) else v) for k, v in asdict(self).items()}


def remix(
    vocals: np.ndarray,
    instrumental: np.ndarray,
    sample_rate: int,
    ceiling_dbtp: float = -1.0,
    input_true_peak_dbtp: float | None = None,
    out: "np.ndarray | DiskAudio | None" = None,
    max_ceiling_dbtp: float | None = None,
    input_peak_dbfs: float | None = None,
) -> tuple[np.ndarray, RemixInfo]:
    """Sum ``vocals`` and ``instrumental`` (same ``[channels, samples]``) and keep the result from clipping.

    Args:
        ceiling_dbtp: true-peak ceiling.
        input_true_peak_dbtp: true peak of the original song; when above ``ceiling_dbtp`` it
            becomes the ceiling, so an unchanged song is given back unchanged.
        out: where the mix goes (e.g. a :class:`DiskAudio`); default a new array.
        max_ceiling_dbtp: the highest the ceiling may be, whatever the two above say: the output
            format's full scale (:func:`singvc.audio.output_peak_limit`, just under 0 dBTP for
            PCM); ``None`` (32-bit float output) for no limit.
        input_peak_dbfs: sample peak of the original song. With a ``max_ceiling_dbtp``, the song's
            true peak raises the ceiling only when the song itself fits the format (sample peak
            <= 0 dBFS: a loud PCM master comes back unchanged); a song beyond full scale (a hot
            float file) gets ``ceiling_dbtp``. Not given: the raised ceiling is capped at
            ``max_ceiling_dbtp``.
    """
    vocals, instrumental = as_audio(vocals, "vocals"), as_audio(instrumental, "instrumental")
    if vocals.shape != instrumental.shape:
        raise InvalidAudioError(f"vocals {vocals.shape} and instrumental {instrumental.shape} differ in shape")
    mix = out if out is not None else np.empty(vocals.shape, dtype=np.float32)
    for a, b in blocks(vocals.shape[-1]):
        mix[:, a:b] = vocals[:, a:b] + instrumental[:, a:b]
    ceiling, capped = ceiling_dbtp, False
    if input_true_peak_dbtp is not None and np.isfinite(input_true_peak_dbtp) and input_true_peak_dbtp > ceiling:
        if max_ceiling_dbtp is None or (input_peak_dbfs is not None and input_peak_dbfs <= 0.0):
            ceiling = input_true_peak_dbtp  # the song fits the format: unchanged, it comes back unchanged
        elif input_peak_dbfs is not None:
            capped = True  # the song itself is beyond full scale: the mix gets the ordinary ceiling
        else:
            ceiling = min(input_true_peak_dbtp, max_ceiling_dbtp)
            capped = ceiling < input_true_peak_dbtp
    if max_ceiling_dbtp is not None and ceiling > max_ceiling_dbtp and not (
            input_peak_dbfs is not None and input_peak_dbfs <= 0.0):
        ceiling, capped = max_ceiling_dbtp, True
    peak = true_peak_dbtp(mix, sample_rate)
    gain_db = 0.0
    if peak > ceiling:
        gain_db = ceiling - peak
        mix = _scaled(mix, np.float32(10.0 ** (gain_db / 20.0)), mix)
    after = peak + gain_db
    return mix, RemixInfo(peak, ceiling, gain_db, after, gain_db != 0.0, integrated_loudness(mix, sample_rate),
                          capped and gain_db != 0.0)
