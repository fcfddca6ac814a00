"""Converter ``"dsp"``: zero-shot timbre conversion toward a :class:`~singvc.voice.VoiceProfile`, no weights.

Method (training-free; frequency warping + class-wise amplitude correction, as in DFWA, applied
inside the WORLD resynthesis that :class:`~singvc.converters.pitch_shift.PitchShiftConverter` already does on
voiced regions only):

1. **Source statistics, once per song** (so the whole song gets one mapping and cannot drift):
   CheapTrick envelope shapes and D4C aperiodicity of the voiced crepe frames every 20 ms,
   on the profile's frequency grid (:func:`singvc.voice.envelope_stats_frames`).
2. **Warp ratio** ``r`` (vocal-tract-length proxy): the ratio in ``warp_range`` under which the
   warped source frames lie closest (mean distance to the nearest class) to the profile's class
   shapes, after removing each shape's level and linear log-frequency tilt (so that only formant
   positions decide); shapes are compared on a fine grid so every ratio is judged alike
   (``warp_method="mean"`` matches long-term means instead). Applied as ``sp'(f) = sp(f / r)``
   up to ``band_limit_hz``, tapering back to no warp at Nyquist.
3. **Class-wise correction**: every (warped) source frame is softly assigned to the profile's
   envelope classes (distance between mean-normalised shapes, softmax with the class weights as
   prior). Per class, the correction is ``target class shape − source class mean`` (source class
   means come from step 1), so the source keeps its own frame-to-frame detail (vowels stay
   vowels) while each class of sounds moves to where the target has it; tilt and long-term EQ
   are part of it. The per-frame correction is the assignment-weighted sum, smoothed over
   ``smooth_seconds``; it tapers to 0 dB above the profile's band limit. Warp and correction
   change the shape of each frame's envelope, never its power: whatever the correction, no
   frame (e.g. at a hard voicing edge) is raised against its neighbours, and the level match
   (step 5) has only the pitch shift's level change to restore.
4. **Breathiness**: the aperiodicity (dB per frequency) is moved by the difference between the
   target's mean and the source's mean, clipped to [0, 1].
5. F0 is transposed exactly (``semitones``), the level of the original is restored every 30 ms,
   and unvoiced regions (consonants, breaths, silence) keep the original samples.

``strength`` (0-1) scales the log warp ratio, the envelope corrections and the aperiodicity
shift together; ``strength=0`` (or no profile) gives exactly the ``pitch`` converter's output.
Everything is deterministic (no randomness anywhere; WORLD synthesis is deterministic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from ..audio import DiskAudio, blocks, copy_into
from ..errors import UserInputError
from ..pitch import PitchTrack
from ..settings import check
from ..voice import GRID_HZ, STATS_PERIOD_MS, VoiceProfile, envelope_floor, envelope_stats_frames, grid_interp
from .base import check_inputs, register, voiced_runs
from .pitch_shift import PitchShiftConverter

#: the timbre fit analyses a song in pieces of this many seconds ...
FIT_PIECE_SECONDS = 30.0
#: ... each with this much audio on either side (wider than any CheapTrick/D4C window)
FIT_CONTEXT_SECONDS = 0.5


def _sample(shapes: np.ndarray, src_hz: np.ndarray) -> np.ndarray:
    """Rows of ``shapes`` (dB on :data:`GRID_HZ`, linear between points) read at ``src_hz``, edges held."""
    src = np.clip(src_hz, GRID_HZ[0], GRID_HZ[-1])
    idx = np.clip(np.searchsorted(GRID_HZ, src) - 1, 0, len(GRID_HZ) - 2)
    frac = (src - GRID_HZ[idx]) / (GRID_HZ[idx + 1] - GRID_HZ[idx])
    return shapes[..., idx] * (1.0 - frac) + shapes[..., idx + 1] * frac


def warp_grid(shapes: np.ndarray, ratio: float) -> np.ndarray:
    """Rows of ``shapes`` (dB on :data:`GRID_HZ`) warped by ``ratio``: ``out(f) = in(f / ratio)``, edges held."""
    if ratio == 1.0:
        return shapes.copy()
    return _sample(shapes, GRID_HZ / ratio)


#: an 8× finer grid over the same span, for comparing warped shapes: sampling a warped shape back
#: on the coarse grid smooths it by an amount that depends on the ratio (none at 1.0), which would
#: bias the search away from 1.0; on the fine grid every ratio sees the same piecewise-linear curve
FINE_HZ = np.interp(np.linspace(0, len(GRID_HZ) - 1, 8 * (len(GRID_HZ) - 1) + 1), np.arange(len(GRID_HZ)), GRID_HZ)


def _fine(shapes: np.ndarray, ratio: float = 1.0) -> np.ndarray:
    """Rows of ``shapes`` (dB on the grid) warped by ``ratio``, on :data:`FINE_HZ`."""
    return _sample(shapes, FINE_HZ / ratio)


def _detilter(band_limit_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    """A function taking shapes on :data:`FINE_HZ` (any leading axes) to their 150 Hz-``band_limit_hz``
    part minus each one's least-squares line over log-frequency (level and tilt removed)."""
    mask = (FINE_HZ >= 150.0) & (FINE_HZ <= band_limit_hz)
    design = np.stack([np.log(FINE_HZ[mask]), np.ones(int(mask.sum()))], axis=1)
    pinv = np.linalg.pinv(design)

    def detilt(shapes: np.ndarray) -> np.ndarray:
        rows = shapes[..., mask]
        return rows - (rows @ pinv.T) @ design.T

    return detilt


def estimate_warp(source_mean: np.ndarray, target_mean: np.ndarray, band_limit_hz: float,
                  warp_range: tuple[float, float] = (0.8, 1.25), steps: int = 91) -> float:
    """The frequency-warp ratio (target formants / source formants) matching long-term shapes.

    Searches ``steps`` log-spaced ratios in ``warp_range``; shapes are compared on 150 Hz to
    ``band_limit_hz`` after removing level and log-frequency tilt.
    """
    detilt = _detilter(band_limit_hz)
    tgt = detilt(_fine(target_mean))
    ratios = np.exp(np.linspace(math.log(warp_range[0]), math.log(warp_range[1]), steps))
    errors = [np.mean((detilt(_fine(source_mean, r)) - tgt) ** 2) for r in ratios]
    return float(ratios[int(np.argmin(errors))])


def estimate_warp_frames(source_shapes: np.ndarray, target_classes: np.ndarray, band_limit_hz: float,
                         warp_range: tuple[float, float] = (0.8, 1.25), steps: int = 91,
                         max_frames: int = 600, prior_weight: float = 0.0) -> float:
    """The warp ratio under which source frames sit closest to the target's classes.

    For each of ``steps`` log-spaced ratios, every (sub-sampled) source frame shape is warped and
    compared with its nearest target class shape (both without level and log-frequency tilt,
    150 Hz to ``band_limit_hz``); the ratio with the smallest mean distance wins. Frames carry
    formant positions vowel by vowel, so this does not depend on the song's mix of vowels the way
    a long-term mean does. ``prior_weight`` (dB² per squared log-ratio) pulls toward no warp.
    """
    detilt = _detilter(band_limit_hz)
    frames = source_shapes[::max(1, len(source_shapes) // max_frames)]
    tgt = detilt(_fine(target_classes))
    tgt_sq = (tgt**2).sum(axis=1)
    ratios = np.exp(np.linspace(math.log(warp_range[0]), math.log(warp_range[1]), steps))
    errors = []
    for r in ratios:
        w = detilt(_fine(frames, r))
        d = (w**2).sum(axis=1)[:, None] - 2.0 * w @ tgt.T + tgt_sq[None]  # squared distances
        errors.append(d.min(axis=1).mean() / w.shape[1] + prior_weight * math.log(r) ** 2)
    return float(ratios[int(np.argmin(errors))])


def _log_power(log_sp: np.ndarray) -> np.ndarray:
    """``log(sum(exp(log_sp), axis=-1))`` without overflow: a frame's power from its log envelope."""
    top = log_sp.max(axis=-1)
    return top + np.log(np.exp(log_sp - top[..., None]).sum(axis=-1))


@dataclass
class TimbreMap:
    """The song-wide mapping from the source voice to the profile (all dB on :data:`GRID_HZ`)."""

    ratio: float
    target_norm: np.ndarray      # [classes, grid] target class shapes minus the target mean
    log_prior: np.ndarray        # [classes]
    source_mean: np.ndarray      # [grid] mean of warped source shapes
    corrections: np.ndarray      # [classes, grid] target class shape − source class mean
    class_means: np.ndarray      # [classes, grid] source class means (warped shapes)
    aperiodicity_shift: np.ndarray  # [grid]
    band_limit_hz: float
    temperature: float

    def assign(self, warped: np.ndarray) -> np.ndarray:
        """Soft class weights ``[frames, classes]`` for warped source shapes ``[frames, grid]``."""
        norm = warped - self.source_mean
        d = ((norm[:, None, :] - self.target_norm[None]) ** 2).mean(-1)
        logits = self.log_prior[None] - d / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        return w / w.sum(axis=1, keepdims=True)

    def describe(self) -> dict:
        return {"warp_ratio": round(self.ratio, 4), "classes": len(self.corrections),
                "mean_correction_db": [round(float(v), 2) for v in self.corrections.mean(0)[::6]],
                "aperiodicity_shift_db": round(float(self.aperiodicity_shift.mean()), 2)}


def fit_timbre_map(source_shapes: np.ndarray, source_ap: np.ndarray, profile: VoiceProfile,
                   warp_range: tuple[float, float] = (0.8, 1.25), prior_count: float = 20.0,
                   warp_method: str = "frames", warp_prior: float = 0.0) -> TimbreMap:
    """Fit the source→target mapping from source frame shapes and aperiodicity (dB on the grid).

    ``warp_method``: ``"frames"`` (:func:`estimate_warp_frames`) or ``"mean"`` (:func:`estimate_warp`
    on long-term means).
    """
    arrays = profile.arrays()
    band = float(min(profile.band_limit_hz, GRID_HZ[-1]))
    if warp_method == "frames":
        ratio = estimate_warp_frames(source_shapes, arrays["classes"], band, warp_range, prior_weight=warp_prior)
    elif warp_method == "mean":
        ratio = estimate_warp(source_shapes.mean(0), arrays["mean"], band, warp_range)
    else:
        raise UserInputError(f"warp_method must be 'frames' or 'mean' (got {warp_method!r})")
    warped = warp_grid(source_shapes, ratio)
    warped -= warped.mean(axis=1, keepdims=True)
    source_mean = warped.mean(0)
    target_norm = arrays["classes"] - arrays["mean"]
    # temperature: the typical squared distance of frames to their nearest class, so that the
    # assignment is soft between neighbouring classes but not uniform
    d = (((warped - source_mean)[:, None, :] - target_norm[None]) ** 2).mean(-1)
    temperature = float(max(np.median(d.min(axis=1)), 1e-3))
    tmap = TimbreMap(ratio=ratio, target_norm=target_norm, log_prior=np.log(np.maximum(arrays["weights"], 1e-3)),
                     source_mean=source_mean, corrections=np.zeros_like(target_norm),
                     class_means=np.zeros_like(target_norm),
                     aperiodicity_shift=np.zeros(len(GRID_HZ)), band_limit_hz=band, temperature=temperature)
    w = tmap.assign(warped)
    counts = w.sum(0)
    # source class means, shrunk toward the source mean for classes the song rarely visits
    class_means = (w.T @ warped + prior_count * source_mean) / (counts[:, None] + prior_count)
    tmap.corrections = arrays["classes"] - class_means
    tmap.class_means = class_means
    tmap.aperiodicity_shift = arrays["aperiodicity"] - source_ap.mean(0)
    return tmap


@register
@dataclass
class DSPConverter(PitchShiftConverter):
    """Converter ``"dsp"`` (the default): pitch shift plus timbre conversion toward a voice profile.

    See the module docstring for the method. Options beyond :class:`PitchShiftConverter`'s:

    Args:
        strength: 0-1, how far to move toward the target (warp, envelope, breathiness together).
        warp_range: smallest and largest formant-warp ratio searched.
        smooth_seconds: moving-average length of the per-frame envelope correction.
        max_correction_db: clamp of the envelope correction, either way.
        breathiness: move the aperiodicity toward the target's.
        detail: 0-1, how much of each frame's own deviation from its class mean is replaced by
            the target's class shape (0 keeps the singer's frame detail; 1 gives the target's
            class blend). Measured: lowers *toward* and DNSMOS on the benchmark (0.5: 0.17, 1.0:
            0.09, against 0.28 at 0; docs/converter-experiments.md), so the default is 0.
        warp_method: ``"frames"`` (default: the ratio under which the song's frames sit closest to
            the profile's classes) or ``"mean"`` (long-term mean shapes).
        warp_prior: pull of the warp search toward no warp (dB² per squared log-ratio; 0 = none).
        warp: a fixed formant-warp ratio (0.5-2) instead of the search (> 1 moves formants up).
        render: inherited; ``"waveform"`` filters the singer's waveform where the shift is 0.
    """

    name: ClassVar[str] = "dsp"
    summary: ClassVar[str] = ("shift by the plan and move the timbre toward the target voice with signal processing "
                              "(no model weights)")
    uses_voice: ClassVar[bool] = True
    settings: ClassVar[tuple[str, ...]] = ("strength", "render")
    strength: float = 1.0
    warp_range: tuple[float, float] = (0.75, 1.33)
    smooth_seconds: float = 0.03
    max_correction_db: float = 18.0
    breathiness: bool = True
    detail: float = 0.0
    warp_method: str = "frames"
    warp_prior: float = 0.0
    warp: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.strength = check("strength", self.strength, "dsp converter")  # the schema's range, declared once
        lo, hi = self.warp_range
        if not 0.5 <= lo <= 1.0 <= hi <= 2.0:
            raise UserInputError(f"warp_range must satisfy 0.5 <= low <= 1 <= high <= 2 (got {self.warp_range})")
        if self.warp is not None and not 0.5 <= float(self.warp) <= 2.0:
            raise UserInputError(f"warp must be within 0.5-2 (got {self.warp!r})")
        if not 0.0 <= self.smooth_seconds <= 0.5:
            raise UserInputError(f"smooth_seconds must be within 0-0.5 s (got {self.smooth_seconds})")
        self.last_map: TimbreMap | None = None

    def convert(
        self,
        vocals: np.ndarray,
        sample_rate: int,
        pitch: PitchTrack,
        semitones: float,
        voice: object | None = None,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        out: "np.ndarray | DiskAudio | None" = None,
    ) -> np.ndarray:
        """Transpose ``vocals`` by ``semitones`` and move its timbre toward ``voice``.

        Args:
            vocals: float32 ``[channels, samples]`` at ``sample_rate`` Hz.
            pitch: crepe track of ``vocals``.
            semitones: transposition of the melody.
            voice: a :class:`~singvc.voice.VoiceProfile`; ``None`` behaves like ``"pitch"``.
            progress, callback, out: as :meth:`PitchShiftConverter.convert`.

        Returns:
            float32 ``[channels, samples]`` (``out`` when given), the shape of ``vocals``, sample-aligned.
        """
        if voice is not None and not isinstance(voice, VoiceProfile):
            raise UserInputError(f"voice must be a singvc.voice.VoiceProfile (got {type(voice).__name__})")
        if voice is None or float(self.strength) == 0.0:
            return super().convert(vocals, sample_rate, pitch, semitones, None, progress, callback, out)
        audio = check_inputs(vocals, sample_rate, pitch, semitones)
        sample_rate = int(sample_rate)
        runs = voiced_runs(pitch, audio.shape[-1], sample_rate)
        if not runs:
            return copy_into(audio, out)
        tmap = self.fit(audio, sample_rate, pitch, voice)
        self.last_map = tmap
        transform = self._make_transform(tmap)
        return self._render(audio, sample_rate, pitch, runs, 2.0 ** (float(semitones) / 12.0), transform,
                            progress, callback, out)

    def describe(self) -> dict:
        """Name, settings and the timbre map of the last conversion (warp ratio, classes)."""
        return {**super().describe(), "timbre_map": self.last_map.describe() if self.last_map else None}

    def fit(self, audio: np.ndarray, sample_rate: int, pitch: PitchTrack, voice: VoiceProfile) -> TimbreMap:
        """The song-wide :class:`TimbreMap` from the voiced frames of ``audio`` (channel mean).

        The song is analysed in pieces of ``FIT_PIECE_SECONDS`` (with context around each), so
        memory does not grow with its length; every piece uses the song-wide analysis window.
        """
        n = audio.shape[-1]
        v = np.asarray(pitch.voiced, dtype=bool) & (np.asarray(pitch.f0) > 0)
        step = max(1, int(round(STATS_PERIOD_MS / 1000.0 / pitch.hop)))
        idx = np.flatnonzero(v)[::step]
        t = np.asarray(pitch.times, dtype=np.float64)[idx]
        keep = t < n / sample_rate
        t, f0 = t[keep], np.asarray(pitch.f0, dtype=np.float64)[idx][keep]
        floor = envelope_floor(f0)
        piece, context = int(FIT_PIECE_SECONDS * sample_rate), int(FIT_CONTEXT_SECONDS * sample_rate)
        shape_parts, ap_parts = [], []
        for a, b in blocks(n, piece):
            sel = (t >= a / sample_rate) & (t < b / sample_rate)
            if not np.any(sel):
                continue
            lo, hi = max(0, a - context), min(n, b + context)
            x = audio[:, lo:hi].mean(axis=0, dtype=np.float64)
            sh, ap = envelope_stats_frames(x, sample_rate, t[sel] - lo / sample_rate, f0[sel],
                                           aperiodicity=self.breathiness, f0_floor=floor)
            shape_parts.append(sh)
            ap_parts.append(ap if ap is not None else np.zeros_like(sh))
        shapes = np.concatenate(shape_parts) if shape_parts else np.zeros((0, len(GRID_HZ)))
        ap = np.concatenate(ap_parts) if ap_parts else np.zeros_like(shapes)
        warp_range = self.warp_range if self.warp is None else (float(self.warp), float(self.warp))
        tmap = fit_timbre_map(shapes, ap, voice, warp_range, warp_method=self.warp_method,
                              warp_prior=self.warp_prior)
        if not self.breathiness:
            tmap.aperiodicity_shift[:] = 0.0
        return tmap

    def _make_transform(self, tmap: TimbreMap):
        strength = float(self.strength)
        ratio = tmap.ratio ** strength
        smooth_frames = max(1, int(round(self.smooth_seconds * 1000.0 / self.frame_period)))
        limit = self.max_correction_db
        detail = float(self.detail)

        def transform(sp: np.ndarray, ap: np.ndarray, f0: np.ndarray, sample_rate: int):
            n_bins = sp.shape[1]
            fft_size = 2 * (n_bins - 1)
            freqs = np.arange(n_bins) * sample_rate / fft_size
            nyq = sample_rate / 2.0
            voiced = f0 > 0
            # per-frame class weights from the unwarped analysis, warped on the grid
            db = 10.0 * np.log10(np.maximum(sp, 1e-20))
            shapes = grid_interp(db, freqs)
            shapes -= shapes.mean(axis=1, keepdims=True)
            wshapes = warp_grid(shapes, tmap.ratio)
            wshapes -= wshapes.mean(axis=1, keepdims=True)
            w = tmap.assign(wshapes)
            delta = w @ tmap.corrections
            if detail:
                delta -= detail * (wshapes - w @ tmap.class_means)
            delta = np.clip(delta, -limit, limit)  # [frames, grid]
            if smooth_frames > 1:
                kernel = np.ones(smooth_frames) / smooth_frames
                pad = np.pad(delta, ((smooth_frames // 2, smooth_frames - 1 - smooth_frames // 2), (0, 0)), mode="edge")
                delta = np.stack([np.convolve(pad[:, g], kernel, mode="valid") for g in range(delta.shape[1])], axis=1)
            delta -= delta.mean(axis=1, keepdims=True)  # shape only (each frame's power is kept below)
            # frequency warp of the envelope: out(f) = in(src(f)), src(f) = f / ratio below the band
            # limit, tapering linearly back to no warp at Nyquist
            band = min(tmap.band_limit_hz, 0.9 * nyq)
            src = np.where(freqs <= band, freqs / ratio,
                           band / ratio + (freqs - band) * (nyq - band / ratio) / max(nyq - band, 1e-9))
            pos = np.clip(src * fft_size / sample_rate, 0, n_bins - 1)
            i0 = np.minimum(pos.astype(np.int64), n_bins - 2)
            frac = pos - i0
            log_sp = np.log(np.maximum(sp, 1e-300))
            warped = log_sp[:, i0] * (1.0 - frac) + log_sp[:, i0 + 1] * frac
            # grid corrections onto the bins, tapering to 0 dB from the band limit to Nyquist
            knots = np.concatenate([[0.0], GRID_HZ[GRID_HZ <= band], [nyq]])
            gsel = GRID_HZ <= band

            def to_bins(values: np.ndarray) -> np.ndarray:
                rows = np.concatenate([values[..., :1], values[..., gsel], np.zeros(values.shape[:-1] + (1,))], axis=-1)
                idx = np.clip(np.searchsorted(knots, freqs) - 1, 0, len(knots) - 2)
                fr = np.clip((freqs - knots[idx]) / np.maximum(knots[idx + 1] - knots[idx], 1e-9), 0.0, 1.0)
                return rows[..., idx] * (1.0 - fr) + rows[..., idx + 1] * fr

            gain = to_bins(strength * delta) * (math.log(10.0) / 10.0)
            log_new = warped + gain
            # the transform reshapes a frame's envelope but keeps its power. Removing the dB mean
            # of ``delta`` does not do that: the power change depends on where the frame's energy
            # sits under the correction, and a ±18 dB correction took a steady note down 20 dB but
            # the frames at a hard voicing edge (their envelope holding the edge's broadband
            # click) up 14 dB, more than the level match (30 ms, ±12 dB) can put right: the edge
            # stood 12 dB above the source once the vocal's loudness was matched
            level = _log_power(log_new) - _log_power(log_sp)
            new_sp = np.where(voiced[:, None], np.exp(log_new - level[:, None]), sp)
            new_ap = ap
            if np.any(tmap.aperiodicity_shift):
                ap_gain = 10.0 ** (to_bins(strength * tmap.aperiodicity_shift) / 10.0)
                new_ap = np.where(voiced[:, None], np.clip(ap * ap_gain[None], 1e-12, 1.0), ap)
            return np.ascontiguousarray(new_sp), np.ascontiguousarray(new_ap)

        return transform

