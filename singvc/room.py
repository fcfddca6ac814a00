"""Room: take the reverb off a vocal before conversion, and put a matching room back after.

A vocal stem carries the room or plate of the mix. Converted as if it were voice, the tail
would be re-synthesised at the lead's pitch; so the vocal is dereverberated first, and the
converted vocal gets a room back whose decay and level are those of what was removed.

**Dereverberation**: WPE, weighted prediction error (Nakatani et al. 2010; Yoshioka & Nakatani
2012), from ``nara_wpe`` (Paderborn University, MIT licence), in the STFT domain of all channels
at once (93 ms Hann window, hop 1/4; :mod:`singvc.spectral`). Each STFT frame is predicted from
``taps`` frames starting ``delay`` frames back, and the prediction (the late reverberation) is
subtracted; the direct sound and the early reflections (the first ``delay`` hops, 46 ms at
44.1 kHz) stay. Identical channels (a centred mono vocal) are processed as one: the two-channel
prediction would be singular. Songs are processed in blocks of ``block_seconds`` with
``context_seconds`` of frames either side for the filter estimate, on one frame grid, cross-faded
over :data:`CROSSFADE_SECONDS`; WPE takes :data:`WPE_BINS` frequency bins at a time, so memory
is bounded.

**Filter length**: by default (``taps=None``) it follows the room: :func:`pilot_room` runs WPE
with 10 taps on every 4th bin of 300 Hz - 4 kHz of the first 20 s (about 1 s per song) and
:func:`taps_for` maps its RT60 to 10-40 taps (40 · RT60). Measured on the benchmark's wet lead
(docs/backing-benchmark.md): at RT60 2 s, 10 taps gain +2.5 dB SI-SDR, 30 taps +3.8, 40 +4.1; at 1 s,
10 taps +4.7, 30 taps +6.6; at 0.5 s, 10 and 30 taps alike (+3.6, +3.7). The pilot's RT60 is also
what :mod:`singvc.backing` models the reverberation with.

**Estimate** (:class:`RoomEstimate`): the removed part's frame energy is modelled as the dry
part's frame energy fed through an exponential decay starting ``delay`` frames later,
``E_removed(t) = g · Σ_{k ≥ delay} E_dry(t - k) · 10^(-6 k hop / RT60)``; RT60 and g are
fitted (log-energy least squares over a grid of RT60). The wet level is the removed energy
against the dry energy (dB). With 10 taps the decay came out short (0.59 s for a 1 s room,
0.7-0.8 s for 2 s): a short filter removes only the start of the tail, and the fit then credits
the decay to the excitation; with the taps following the room it comes closer (see
docs/backing-benchmark.md).

**Room back** (:func:`add_room`): a synthetic late-reverb impulse response, exponentially
decaying Gaussian noise (independent per channel, so stereo is wide) starting at the pre-delay,
with its energy set so that the wet part sits at the estimated level under the dry one, and a
gentle high-frequency damping; convolved block by block (overlap-add with FFTs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .audio import DiskAudio, as_audio, blocks, check_finite, copy_into, new_like
from .errors import UserInputError
from .spectral import FrameGrid, fft_size_for

#: RT60 values (s) searched by the room estimate
RT60_GRID = np.exp(np.linspace(math.log(0.1), math.log(4.0), 80))
#: frequency bins given to WPE at once (with 10 taps; fewer with more)
WPE_BINS = 256
#: blocks are cross-faded over this long (s), inside their context
CROSSFADE_SECONDS = 0.5
#: less removed than this (dB under the dry part) is no room worth putting back
MIN_WET_DB = -25.0


@dataclass
class RoomEstimate:
    """The late reverberation removed by :func:`dereverb`.

    Attributes:
        rt60: decay time (s, -60 dB) of the removed reverberation; ``None`` when too little was
            removed to tell.
        wet_db: removed energy against the dereverberated energy (dB; ``-inf`` when none).
        predelay: where the removed part starts after the direct sound (s).
        fit_db: RMS error of the decay fit (dB per frame); large means the model fits poorly.
        taps: the WPE filter length used (frames).
    """

    rt60: float | None
    wet_db: float
    predelay: float
    fit_db: float | None = None
    taps: int | None = None

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float) else v))
                for k, v in asdict(self).items()}


def _wpe(Y: np.ndarray, taps: int, delay: int, iterations: int) -> np.ndarray:
    """WPE of ``Y`` ``[channels, bins, frames]`` (nara_wpe's batched ``wpe_v7``, all bins at once).

    The BLAS is held to one thread meanwhile: the per-bin matrices are small (``channels * taps``
    square), and a threaded BLAS on a busy machine was measured 15x slower than one thread.
    """
    try:
        from nara_wpe.wpe import wpe_v7
    except ImportError as exc:  # pragma: no cover - an install problem
        raise UserInputError("dereverberation needs nara_wpe: pip install nara-wpe") from exc
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn (librosa)
        from contextlib import nullcontext as threadpool_limits  # type: ignore[assignment]
    X = np.empty_like(Y)
    with threadpool_limits(1):
        # bins are independent: a few at a time keeps the stacked past frames (bins x channels*taps
        # x frames, complex) near 100 MB; nara_wpe wants (..., D, T), bins first
        step = max(16, WPE_BINS * 10 // max(taps, 10))  # the stack grows with the taps
        for a in range(0, Y.shape[1], step):
            part = np.ascontiguousarray(Y[:, a:a + step].transpose(1, 0, 2))
            X[:, a:a + step] = wpe_v7(part, taps=taps, delay=delay, iterations=iterations,
                                          statistics_mode="full").transpose(1, 0, 2)
    return X


def dereverb(
    audio: "np.ndarray | DiskAudio",
    sample_rate: int,
    taps: int | None = None,
    delay: int = 2,
    iterations: int = 3,
    window_seconds: float = 0.093,
    block_seconds: float = 20.0,
    context_seconds: float = 2.0,
    out: "np.ndarray | DiskAudio | None" = None,
    callback: Callable[[dict], None] | None = None,
) -> tuple["np.ndarray | DiskAudio", RoomEstimate]:
    """Remove the late reverberation of ``audio`` (WPE; see the module docstring).

    Args:
        audio: float32 ``[channels, samples]`` (array or DiskAudio) at ``sample_rate`` Hz.
        taps: prediction filter length in STFT frames (hop = 1/4 of the window); ``None``
            (default) follows the room: :func:`pilot_rt60` on a few bins of the first
            ``block_seconds``, then :func:`taps_for` (10 for a short room up to 40 for RT60 2 s).
        delay: frames kept before the prediction starts (the direct sound and early reflections;
            2 hops = half a window: a frame is never predicted from one sharing most of its samples,
            which took sustained notes away as if they were reverberation).
        window_seconds: STFT window (rounded to a power of two: 4096 samples at 44.1 and 48 kHz).
        iterations: WPE iterations (power estimate and filter, alternately).
        block_seconds, context_seconds: block length and the extra frames either side each
            block's filter is estimated over.
        out: where the dereverberated audio goes (default a new array).
        callback: called with ``{"stage": "dereverb", "seconds_done", "seconds_total"}`` per block.

    Returns:
        ``(dry, estimate)``: float32 ``[channels, samples]`` and the :class:`RoomEstimate` of what
        was removed (``audio - dry``).
    """
    audio = as_audio(audio, "audio")
    check_finite(audio, "audio")
    if taps is None:
        taps = taps_for(pilot_rt60(audio, sample_rate, delay, iterations, window_seconds, block_seconds))
    if not 1 <= int(taps) <= 64 or not 1 <= int(delay) <= 16 or not 1 <= int(iterations) <= 10:
        raise UserInputError(f"taps 1-64, delay 1-16, iterations 1-10 (got {taps}, {delay}, {iterations})")
    if block_seconds < 2.0 or context_seconds < 0.0:
        raise UserInputError(f"block_seconds must be >= 2 and context_seconds >= 0 (got {block_seconds}, {context_seconds})")
    channels, n = audio.shape
    dry = out if out is not None else new_like(audio)
    grid = FrameGrid(fft_size_for(sample_rate, window_seconds), n)
    ctx = int(round(context_seconds * sample_rate / grid.hop))
    fade = min(int(CROSSFADE_SECONDS * sample_rate), max(0, ctx * grid.hop - grid.n_fft))
    pending = None  # the previous block's output over the first `fade` samples of this one
    e_dry_parts, e_rem_parts = [], []
    for start, stop in blocks(n, max(grid.hop, int(block_seconds * sample_rate))):
        end = min(n, stop + fade)  # this block also renders the cross-fade into the next
        t0, t1 = grid.frames_touching(start, end)
        Y = grid.analyse(audio, t0 - ctx, t1 + ctx)
        mid = Y.mean(axis=0, keepdims=True)
        side = float(np.sum(np.abs(Y - mid) ** 2))
        if channels > 1 and side <= 1e-6 * float(np.sum(np.abs(mid) ** 2)):
            # channels (nearly) equal: the multichannel prediction would be singular; one channel
            X = np.repeat(_wpe(mid, int(taps), int(delay), int(iterations)), channels, axis=0)
        else:
            X = _wpe(Y, int(taps), int(delay), int(iterations))
        X = X[:, :, ctx:ctx + t1 - t0]
        Y = Y[:, :, ctx:ctx + t1 - t0]
        y = grid.overlap_add(X, t0, start, end)
        if pending is not None:
            k = pending.shape[1]
            w = (np.arange(k) + 0.5) / k
            y[:, :k] = pending * (1.0 - w) + y[:, :k] * w
        dry[:, start:stop] = y[:, :stop - start].astype(np.float32)
        pending = y[:, stop - start:] if end > stop else None
        # frame energies of the frames this block owns (centres in [start, stop))
        centres = np.arange(t0, t1) * grid.hop
        own = (centres >= start) & (centres < stop)
        e_dry_parts.append(np.sum(np.abs(X[:, :, own]) ** 2, axis=(0, 1)))
        e_rem_parts.append(np.sum(np.abs(Y[:, :, own] - X[:, :, own]) ** 2, axis=(0, 1)))
        if callback is not None:
            callback({"stage": "dereverb", "seconds_done": stop / sample_rate, "seconds_total": n / sample_rate})
    e_dry = np.concatenate(e_dry_parts) if e_dry_parts else np.zeros(0)
    e_rem = np.concatenate(e_rem_parts) if e_rem_parts else np.zeros(0)
    estimate = estimate_room(e_dry, e_rem, grid.hop / sample_rate, int(delay))
    estimate.taps = int(taps)
    return dry, estimate


#: the pilot's bins: every PILOT_STEP-th bin within PILOT_BAND_HZ
PILOT_BAND_HZ = (300.0, 4000.0)
PILOT_STEP = 4
#: taps of the pilot WPE
PILOT_TAPS = 10


def pilot_rt60(audio, sample_rate: int, delay: int = 2, iterations: int = 3, window_seconds: float = 0.093,
               seconds: float = 20.0) -> float | None:
    """:func:`pilot_room`'s RT60 (s): what :func:`dereverb` chooses its filter length by."""
    return pilot_room(audio, sample_rate, delay, iterations, window_seconds, seconds).rt60


def pilot_room(audio, sample_rate: int, delay: int = 2, iterations: int = 3, window_seconds: float = 0.093,
               seconds: float = 20.0) -> RoomEstimate:
    """A quick :class:`RoomEstimate` of ``audio`` (about 1 s per 20 s of audio): WPE with :data:`PILOT_TAPS` taps
    on every :data:`PILOT_STEP`-th bin of :data:`PILOT_BAND_HZ` over the first ``seconds``, and
    :func:`estimate_room` on what it removes. Short of the truth (10 taps do not reach a long tail:
    about 0.5 / 0.7 / 1.0 s for rooms of 0.5 / 1 / 2 s in docs/backing-benchmark.md) but monotone
    in it; ``rt60`` ``None`` when too little was removed to tell (no room)."""
    audio = as_audio(audio, "audio")
    channels, n = audio.shape
    m = min(n, int(seconds * sample_rate))
    grid = FrameGrid(fft_size_for(sample_rate, window_seconds), m)
    freqs = grid.freqs(sample_rate)
    sel = np.flatnonzero((freqs >= PILOT_BAND_HZ[0]) & (freqs <= PILOT_BAND_HZ[1]))[::PILOT_STEP]
    t0, t1 = grid.frames_touching(0, m)
    Y = grid.analyse(audio[:, :m] if not isinstance(audio, np.ndarray) else audio[:, :m], t0, t1)[:, sel]
    mid = Y.mean(axis=0, keepdims=True)
    if channels > 1 and float(np.sum(np.abs(Y - mid) ** 2)) <= 1e-6 * float(np.sum(np.abs(mid) ** 2)):
        Y = mid
    X = _wpe(Y, PILOT_TAPS, int(delay), int(iterations))
    e_dry = np.sum(np.abs(X) ** 2, axis=(0, 1))
    e_rem = np.sum(np.abs(Y - X) ** 2, axis=(0, 1))
    estimate = estimate_room(e_dry, e_rem, grid.hop / sample_rate, int(delay))
    estimate.taps = PILOT_TAPS
    return estimate


def taps_for(rt60: float | None) -> int:
    """WPE filter length (frames of a 93 ms window, hop 23 ms) for a pilot RT60 (:func:`pilot_rt60`):
    ``40 · rt60`` within 10-40 (10 when no room was found). Measured on the benchmark's rooms
    (docs/backing-benchmark.md): longer filters help most where the tail is long (at RT60 2 s,
    +2.5 dB with 10 taps, +3.8 with 30, +4.1 with 40 on the wet lead)."""
    if rt60 is None:
        return 10
    return int(np.clip(round(40.0 * rt60), 10, 40))


def estimate_room(e_dry: np.ndarray, e_removed: np.ndarray, hop: float, delay: int) -> RoomEstimate:
    """Fit the decay of the removed reverberation (see the module docstring).

    Args:
        e_dry, e_removed: energy per STFT frame of the dereverberated signal and of what was removed.
        hop: frame hop (s); delay: frames between the direct sound and the removed part.
    """
    from scipy.signal import lfilter

    total_dry, total_rem = float(np.sum(e_dry)), float(np.sum(e_removed))
    wet_db = 10.0 * math.log10(total_rem / total_dry) if total_rem > 0 and total_dry > 0 else float("-inf")
    predelay = delay * hop
    if not math.isfinite(wet_db) or wet_db < MIN_WET_DB or len(e_dry) < 50:
        return RoomEstimate(rt60=None, wet_db=wet_db, predelay=predelay)
    # frames where the removed part is well above the numerical floor
    use = e_removed > 1e-4 * np.max(e_removed)
    log_r = np.log(np.maximum(e_removed, 1e-30))
    fed = np.concatenate([np.zeros(delay), e_dry[:len(e_dry) - delay]])
    best = (np.inf, None, 0.0)
    for rt60 in RT60_GRID:
        a = 10.0 ** (-6.0 * hop / rt60)
        model = lfilter([1.0], [1.0, -a], fed)
        ok = use & (model > 0)
        if ok.sum() < 20:
            continue
        resid = log_r[ok] - np.log(model[ok])
        log_g = float(np.mean(resid))
        err = float(np.mean((resid - log_g) ** 2))
        if err < best[0]:
            best = (err, float(rt60), log_g)
    if best[1] is None:
        return RoomEstimate(rt60=None, wet_db=wet_db, predelay=predelay)
    return RoomEstimate(rt60=best[1], wet_db=wet_db, predelay=predelay,
                        fit_db=10.0 / math.log(10.0) * math.sqrt(best[0]))


def room_impulse(sample_rate: int, rt60: float, wet_db: float, channels: int = 2, predelay: float = 0.035,
                 damping_hz: float = 6000.0, seed: int = 0) -> np.ndarray:
    """A synthetic late-reverb impulse response, float64 ``[channels, samples]``.

    Gaussian noise (independent per channel) under an exponential decay of ``rt60`` seconds
    (-60 dB), starting at ``predelay`` with a 10 ms fade-in, low-passed at ``damping_hz`` (one
    pole), lasting until -60 dB; scaled so that each channel's energy (sum of squares) is
    ``10^(wet_db / 10)``: a signal convolved with it comes out about ``wet_db`` under the signal.
    """
    from scipy.signal import lfilter

    if not 0.05 <= rt60 <= 10.0:
        raise UserInputError(f"rt60 must be within 0.05-10 s (got {rt60})")
    if not -80.0 <= wet_db <= 20.0:
        raise UserInputError(f"wet_db must be within -80..20 dB (got {wet_db})")
    rng = np.random.default_rng(seed)
    start = int(round(predelay * sample_rate))
    length = start + int(math.ceil(rt60 * sample_rate))
    t = np.arange(length - start) / sample_rate
    env = 10.0 ** (-3.0 * t / rt60)  # amplitude: -60 dB of energy at rt60
    fade = min(len(t), max(1, int(0.01 * sample_rate)))
    env[:fade] *= np.linspace(0.0, 1.0, fade, endpoint=False)
    h = np.zeros((channels, length))
    noise = rng.standard_normal((channels, len(t)))
    if damping_hz and damping_hz < sample_rate / 2:
        pole = math.exp(-2.0 * math.pi * damping_hz / sample_rate)
        noise = lfilter([1.0 - pole], [1.0, -pole], noise, axis=1)
    h[:, start:] = noise * env
    energy = np.sum(h ** 2, axis=1, keepdims=True)
    return h * np.sqrt(10.0 ** (wet_db / 10.0) / np.maximum(energy, 1e-30))


def convolve_stream(audio: "np.ndarray | DiskAudio", impulse: np.ndarray,
                    out: "np.ndarray | DiskAudio | None" = None, block: int = 1 << 18,
                    add_input: bool = False) -> "np.ndarray | DiskAudio":
    """``audio`` convolved with ``impulse`` (``[channels or 1, taps]``), cut to ``audio``'s length,
    block by block (FFT overlap-add, the tail carried to the next block); with ``add_input`` the
    input is added (dry + wet)."""
    from scipy.signal import oaconvolve

    audio = as_audio(audio, "audio")
    channels, n = audio.shape
    h = np.asarray(impulse, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] not in (1, channels):
        raise UserInputError(f"impulse must be [1 or {channels} channels, taps] (got shape {h.shape})")
    h = np.broadcast_to(h, (channels, h.shape[1]))
    result = out if out is not None else new_like(audio)
    carry = np.zeros((channels, max(h.shape[1] - 1, 0)))
    for start, stop in blocks(n, block):
        x = np.asarray(audio[:, start:stop], dtype=np.float64)
        y = np.stack([oaconvolve(x[c], h[c]) for c in range(channels)])
        y[:, :carry.shape[1]] += carry  # len(y) = block + taps - 1 >= len(carry) = taps - 1
        seg = y[:, :stop - start]
        result[:, start:stop] = (seg + x if add_input else seg).astype(np.float32)
        carry = y[:, stop - start:]
    return result


def add_room(audio: "np.ndarray | DiskAudio", sample_rate: int, rt60: float, wet_db: float,
             predelay: float = 0.035, damping_hz: float = 6000.0, seed: int = 0,
             out: "np.ndarray | DiskAudio | None" = None) -> "np.ndarray | DiskAudio":
    """``audio`` with a room: the dry signal plus its convolution with :func:`room_impulse`
    (``rt60`` s, ``wet_db`` under the dry signal, starting ``predelay`` s after it). float32
    ``[channels, samples]`` (``out`` when given), the length of ``audio`` (the tail past the end is cut)."""
    audio = as_audio(audio, "audio")
    h = room_impulse(sample_rate, rt60, wet_db, audio.shape[0], predelay, damping_hz, seed)
    return convolve_stream(audio, h, out=out, add_input=True)


def add_estimated_room(audio, sample_rate: int, estimate: RoomEstimate, seed: int = 0, out=None):
    """:func:`add_room` with a :class:`RoomEstimate` from :func:`dereverb`; a copy of ``audio``
    when no room was found (``rt60`` is ``None``)."""
    if estimate.rt60 is None:
        return copy_into(as_audio(audio, "audio"), out)
    return add_room(audio, sample_rate, estimate.rt60, max(estimate.wet_db, -80.0), estimate.predelay,
                    seed=seed, out=out)


def schroeder_rt60(impulse: np.ndarray, sample_rate: int, fit_db: tuple[float, float] = (-5.0, -25.0)) -> float:
    """RT60 (s) of an impulse response ``[samples]`` by Schroeder backward integration, a line fitted
    to the decay curve between ``fit_db`` (T20 by default) and extrapolated to -60 dB."""
    h = np.asarray(impulse, dtype=np.float64).ravel()
    edc = np.cumsum((h ** 2)[::-1])[::-1]
    edc_db = 10.0 * np.log10(np.maximum(edc / edc[0], 1e-300))
    hi, lo = fit_db
    sel = (edc_db <= hi) & (edc_db >= lo)
    if sel.sum() < 2:
        raise UserInputError("impulse response too short to measure its decay")
    t = np.flatnonzero(sel) / sample_rate
    slope, _ = np.polyfit(t, edc_db[sel], 1)
    return float(-60.0 / slope)
