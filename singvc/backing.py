"""Lead / backing split of a separated vocal stem, driven by the stem's crepe track.

Demucs' vocal stem holds the lead and whatever else is sung: harmonies, backing parts, doubles.
The converters assume one voice, so the stem is split before conversion; ``lead + backing`` is
always the stem (``backing`` is computed, ``lead = stem - backing``).

Method, per STFT frame (46 ms Hann window, hop 1/4; :mod:`singvc.spectral`):

1. **Lead comb.** The crepe track of the stem follows the lead. Around each harmonic ``h * f0``
   (up to ``max_harmonic_hz``) a Gaussian of width ``sqrt(σ0² + (h·tol)² + (h·slope)²)`` (the
   window's main lobe, the track's error, the vibrato inside the window) marks the bins the lead
   owns. Unvoiced frames have no comb.
2. **Second voice.** Its pitch comes from :func:`track_backing` (recommended): crepe, the
   model that tracked the stem, run on :func:`lead_residual` (the stem without the lead comb), voiced
   where that residual is clearly periodic, i.e. where one other voice dominates it. Without it,
   :func:`split_lead` searches the residual (60 Hz - 5 kHz) by harmonic summation (candidates
   70-1000 Hz, 1/16 semitone apart, harmonic weights 0.8^(h-1)) and judges a frame by how much more
   of the residual energy the best candidate's comb holds than a comb of that density holds of
   noise (``harmonicity``, 1 for noise); measured weaker (docs/backing-benchmark.md). Either way the
   pitch is refined on the residual's spectrum (±60 cents, parabolic peak), candidates within
   ``exclude_semitones`` of the lead, its octaves, or what the lead sang 0.1 and 0.2 s earlier (its
   own reverberation) are refused (a unison double or a slip of the track is the lead's), the
   backing's comb energy must reach ``backing_floor_db`` against the frame's, and the evidence is
   smoothed over ±3 frames (median, then mean) with a dead zone of 0.1, so stray frames do not
   carve the lead.
3. **Mask.** Backing weight per bin ``d·C_B / (d·C_B + C_L + ε)`` with the backing comb ``C_B`` at
   the found pitch, the evidence ``d`` in [0, 1], the lead comb ``C_L`` and a floor ``ε``: bins on
   the backing's harmonics go to the backing, bins on the lead's to the lead, shared bins are split
   between the two, and everything else (breaths, consonants, noise, the air above
   ``max_harmonic_hz``) stays with the lead. Where no backing is found the mask is exactly 0 and the
   lead is the stem, sample for sample.
4. **Presence** (with a backing track): :func:`backing_presence` keeps the backing track only in
   regions around runs of at least 0.15 s that are away (50 cents) from every pitch the lead sang
   in the last 1.5 s: the lead's reverberation rings at its past notes and crepe finds it in the
   residual, but it never sings a note the lead has not just sung. Outside the regions the mask
   is 0 and the stem stays whole; with no region at all, nothing is split ("no backing found",
   said in :attr:`SplitReport.decision`).
5. **Room**: the late reverberation of each part, per bin, from its own past energy
   (:class:`_RoomModel`, RT60 and wet level from :func:`singvc.room.pilot_room` of the stem, or
   ``room_rt60``/``room_wet_db``): each part keeps its tail (the lead's at the notes it sang
   before, the backing's after it stops), and only what is left (the direct sound) is shared by
   the combs. :func:`lead_residual` takes the lead's tail out as well, so crepe tracks the
   backing rather than the lead's past notes.
6. **Stereo.** A stereo stem is **unmixed by direction** (:func:`spatial_wiener`, ``spatial``)
   where that model holds: each voice's pan is measured per frame (the power-weighted mean pan
   ``(|R|²-|L|²) / (|L|²+|R|²)`` of the bins its comb holds alone, over ±6 frames), its direct
   sound comes from that direction with the power the combs give it, the tails are diffuse, and a
   multichannel Wiener filter takes the backing out (never more of a bin than the stem holds).
   Where the harmonics of the two voices coincide, this unmixes them when they are panned apart,
   which no mask can (benchmark, dry: +11.8 to +14.0 dB over the stem, against +8.6 to +10.7 with
   masks). Frames where a voice's own bins are not coherent between the channels
   (``spatial_min_coherence``: a double on both sides, or a room whose early reflections and tails
   differ between the channels) or where the two voices' pans are close
   (``spatial_min_separation``) take the masks: there the model is wrong or the unmixing
   ill-conditioned. The masks (and mono stems) keep the stereo lean (``stereo_weight`` > 0): a
   bin panned like the backing (the mean pan of its own bins in that frame) leans to the backing
   and a centred one (``lead_pan``) to the lead.

Blocks of :data:`SPLIT_BLOCK` samples are processed with the frames (plus the smoothing
context) that touch them, on one global frame grid, so the result equals the whole-song result
and memory does not grow with the song's length.

What is not split: a unison double (same pitch as the lead), backing whose pitch coincides with
the lead's or its octaves, unpitched backing (whispers, shouts), a backing part that only ever
sings notes the lead sang in the 1.5 s before (taken for the lead's reverberation), and chords of
several backing voices beyond the strongest one (the others stay with the lead, as inter-harmonic
energy).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from .audio import DiskAudio, as_audio, blocks, check_finite, new_like
from .converters import voiced_runs
from .converters.pitch_shift import crossfade_weight
from .errors import UserInputError
from .keyshift import pitch_shift
from .room import pilot_room
from .loudness import integrated_loudness
from .pitch import PitchTrack, track_pitch
from .spectral import FrameGrid, fft_size_for

#: the version of the split (part of its cache key: bump it when the split's output changes)
SPLIT_VERSION = 5

#: smoothed evidence under this is taken as none (so faint doubt never touches the lead)
EVIDENCE_DEAD_ZONE = 0.1
#: samples per block (about 6 s at 44.1 kHz): the masks' float64 temporaries stay near 150 MB
SPLIT_BLOCK = 1 << 18
#: frames either side used to smooth the backing evidence (median, then mean, each this wide)
SMOOTH_FRAMES = 3
#: candidate pitches of the second voice
CANDIDATES_PER_OCTAVE = 192  # 1/16 semitone
CANDIDATE_HZ = 70.0 * 2.0 ** (np.arange(0, int(CANDIDATES_PER_OCTAVE * math.log2(1000.0 / 70.0)) + 1)
                              / CANDIDATES_PER_OCTAVE)
#: the lead's pitch now and this long ago (s) is not taken for another voice (its reverberation)
LOOKBACK_SECONDS = (0.0, 0.1, 0.2)
#: band searched for the second voice
SEARCH_BAND_HZ = (60.0, 5000.0)
#: half-width of the combs' flat top, in STFT bins (the Hann main lobe spans ±2)
SIGMA_BINS = 1.5


@dataclass
class SplitOptions:
    """Settings of :func:`split_lead` (defaults recommended; see the module docstring).

    Attributes:
        max_harmonic_hz: highest frequency the harmonic combs reach; above it all goes to the lead.
        track_tolerance_cents: assumed error of the crepe track, widening the lead's upper harmonics.
        exclude_semitones: second-voice candidates this close to the lead (or its octaves) are ignored.
        harmonicity: (low, high) ratio of the candidate comb's share of the residual to its
            share of noise, over which the evidence goes from 0 to 1.
        backing_floor_db: (low, high) level of the backing comb's energy against the frame's
            (dB) over which the evidence goes from 0 to 1; quieter backing is left in the lead.
        stereo_weight: how strongly pan position sways bins (0 = ignore stereo).
        lead_pan: the lead's pan position (-1 left, 0 centre, 1 right).
        floor: the weight of "neither comb" in the mask (keeps noise with the lead).
        silence_db: frames quieter than this (dBFS, power mean over bins) hold no backing.
        room_rt60, room_wet_db: the room of the stem (s; dB of the late tail under the direct
            sound) for the reverberation model; ``None`` (default): :func:`singvc.room.pilot_room`
            of the stem; ``room_rt60=0``: no model (the dry masks).
        presence_history_seconds, presence_cents, presence_min_run: a backing-track run of
            ``presence_min_run`` s or more whose pitch is ``presence_cents`` away from all the lead
            sang in the last ``presence_history_seconds`` is another voice (:func:`backing_presence`).
        presence_gap_seconds, presence_margin_seconds: the backing track's voiced frames joined over
            gaps this long form the regions that such a run makes split, widened by the margin.
        spatial: unmix a stereo stem by direction where the model holds (:func:`spatial_wiener`);
            ``False``: masks only.
        spatial_min_coherence, spatial_min_separation: a frame is unmixed by direction only when
            each voice's own bins are this coherent between the channels (1 = one direction) and
            the two voices' pans are this far apart; other frames take the masks.
    """

    max_harmonic_hz: float = 8000.0
    track_tolerance_cents: float = 15.0
    exclude_semitones: float = 0.7
    harmonicity: tuple[float, float] = (2.0, 3.5)
    backing_floor_db: tuple[float, float] = (-32.0, -24.0)
    stereo_weight: float = 1.0
    lead_pan: float = 0.0
    floor: float = 0.05
    silence_db: float = -70.0
    room_rt60: float | None = None
    room_wet_db: float | None = None
    presence_history_seconds: float = 1.5
    presence_cents: float = 50.0
    presence_min_run: float = 0.15
    presence_gap_seconds: float = 1.0
    presence_margin_seconds: float = 0.3
    spatial: bool = True
    spatial_min_coherence: float = 0.9
    spatial_min_separation: float = 0.2

    def check(self) -> None:
        lo, hi = self.harmonicity
        if not 0.0 < lo < hi:
            raise UserInputError(f"harmonicity must be (low, high) with 0 < low < high (got {self.harmonicity})")
        lo, hi = self.backing_floor_db
        if not lo < hi:
            raise UserInputError(f"backing_floor_db must be (low, high) with low < high (got {self.backing_floor_db})")
        if not 500.0 <= self.max_harmonic_hz <= 24000.0:
            raise UserInputError(f"max_harmonic_hz must be within 500-24000 Hz (got {self.max_harmonic_hz})")
        if not 0.0 <= self.stereo_weight <= 4.0:
            raise UserInputError(f"stereo_weight must be within 0-4 (got {self.stereo_weight})")
        if not -1.0 <= self.lead_pan <= 1.0:
            raise UserInputError(f"lead_pan must be within -1..1 (got {self.lead_pan})")
        if not 0.0 < self.floor <= 1.0:
            raise UserInputError(f"floor must be within (0, 1] (got {self.floor})")
        if not 0.0 <= self.spatial_min_coherence <= 1.0:
            raise UserInputError(f"spatial_min_coherence must be within 0-1 (got {self.spatial_min_coherence})")
        if not 0.0 <= self.spatial_min_separation <= 2.0:
            raise UserInputError(f"spatial_min_separation must be within 0-2 (got {self.spatial_min_separation})")


@dataclass
class SplitReport:
    """What :func:`split_lead` did, for the run report.

    Attributes:
        split: whether any backing was found.
        backing_seconds: seconds of frames holding backing (evidence above 0.5).
        backing_share: those frames as a share of the frames with sound in them.
        backing_db: backing energy relative to the stem's (dB; ``-inf`` for none).
        lead_db: lead energy relative to the stem's (dB).
        interval_semitones: median interval backing − lead where both sing (``None`` if never).
        decision: what :func:`backing_presence` decided and why ("backing found: ..." or
            "no backing found: ...").
        regions: ``(start, end)`` seconds where the stem was split (with a backing track).
        spatial_seconds: seconds of frames with backing that were unmixed by direction
            (:func:`spatial_wiener`; the others were masked).
        backing_pitch_hz: median pitch of the backing (``None`` if never).
        backing_lufs, stem_lufs: integrated loudness (filled by :func:`describe_split`).
        track: the second voice's pitch per STFT frame (``f0`` Hz, ``periodicity`` = evidence,
            ``voiced`` = evidence > 0.5); a first guess, not a crepe track.
    """

    split: bool
    backing_seconds: float
    backing_share: float
    backing_db: float
    lead_db: float
    interval_semitones: float | None
    backing_pitch_hz: float | None
    backing_lufs: float | None = None
    stem_lufs: float | None = None
    decision: str = ""
    regions: list = field(default_factory=list)
    spatial_seconds: float = 0.0
    track: PitchTrack | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "track"}
        out["regions"] = [[round(a, 2), round(b, 2)] for a, b in self.regions]
        for k, v in out.items():
            if isinstance(v, float):
                out[k] = round(v, 2) if math.isfinite(v) else None
        return out


def _gauss(d: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (d / sigma) ** 2)


def harmonic_comb(freqs: np.ndarray, f0: np.ndarray, active: np.ndarray, sigma0: float, max_hz: float,
                  tolerance: float = 0.0, slope: np.ndarray | None = None, order: int = 4) -> np.ndarray:
    """Weights in [0, 1] ``[bins, frames]`` peaking at the harmonics of ``f0`` (Hz, ``[frames]``).

    Each bin takes its nearest harmonic ``h`` (1 .. ``max_hz / f0``) and the weight
    ``exp(-(d/σ)^order / 2)`` of its distance ``d`` (Hz) from it, ``σ = sqrt(sigma0² + (h·tolerance·f0)²
    + (h·slope/2)²)`` (``tolerance`` relative, ``slope`` in Hz over the window); ``order`` 4 gives a
    flat top over the window's main lobe. Frames where ``active`` is False get zeros.
    """
    f0 = np.maximum(np.asarray(f0, dtype=np.float64), 1.0)
    ratio = freqs[:, None] / f0[None, :]
    h = np.maximum(np.round(ratio), 1.0)
    d = freqs[:, None] - h * f0[None, :]
    var = sigma0 ** 2 + (h * tolerance * f0[None, :]) ** 2
    if slope is not None:
        var = var + (h * slope[None, :] / 2.0) ** 2
    comb = np.exp(-0.5 * (d * d / var) ** (order / 2))
    comb *= (h * f0[None, :] <= max_hz) & (ratio >= 0.5)
    comb *= np.asarray(active, dtype=bool)[None, :]
    return comb


def _moving(x: np.ndarray, k: int, how: str) -> np.ndarray:
    """Centred moving median or mean over ``2k + 1`` samples, output ``len(x) - 2k`` (valid part)."""
    if k == 0:
        return x.copy()
    view = np.lib.stride_tricks.sliding_window_view(x, 2 * k + 1)
    return np.median(view, axis=1) if how == "median" else view.mean(axis=1)


class _Searcher:
    """Harmonic summation over :data:`CANDIDATE_HZ` on the search band's bins."""

    def __init__(self, freqs: np.ndarray, sigma_search: float, sigma0: float) -> None:
        self.band = (freqs >= SEARCH_BAND_HZ[0]) & (freqs <= SEARCH_BAND_HZ[1])
        f = freqs[self.band]
        self.freqs = f
        weights = np.zeros((len(f), len(CANDIDATE_HZ)))
        for j, fc in enumerate(CANDIDATE_HZ):
            n_h = int(min(15, SEARCH_BAND_HZ[1] // fc))
            for h in range(1, n_h + 1):
                weights[:, j] += 0.8 ** (h - 1) * _gauss(f - h * fc, np.full(len(f), sigma_search))
        self.weights = weights
        self.sigma0 = sigma0


def _lead_comb(track: PitchTrack, t_sec: np.ndarray, freqs: np.ndarray, n_fft: int, sample_rate: int,
               opts: SplitOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lead's comb ``[bins, frames]`` at frame times ``t_sec``, with the lead's f0, voicing and
    which frames lie within the track."""
    half_win = 0.5 * n_fft / sample_rate
    f_lead, v_lead = track.f0_at(t_sec)
    slope = np.abs(track.f0_at(t_sec + half_win)[0] - track.f0_at(t_sec - half_win)[0])
    tol = 2.0 ** (opts.track_tolerance_cents / 1200.0) - 1.0
    in_song = (t_sec >= track.times[0] - track.hop) & (t_sec <= track.times[-1] + track.hop)
    lead_on = np.asarray(v_lead, dtype=bool) & in_song
    sigma0 = SIGMA_BINS * sample_rate / n_fft
    return harmonic_comb(freqs, f_lead, lead_on, sigma0, opts.max_harmonic_hz, tol, slope), f_lead, lead_on, in_song


def _frame_analysis(X: np.ndarray, freqs: np.ndarray, t_sec: np.ndarray, track: PitchTrack,
                    grid: FrameGrid, sample_rate: int, opts: SplitOptions, searcher: _Searcher,
                    backing_track: PitchTrack | None = None):
    """Per-frame lead comb, backing pitch and raw evidence for STFT frames ``X`` ``[ch, bins, T]``."""
    power = np.mean(np.abs(X) ** 2, axis=0)  # [bins, T]
    mag = np.sqrt(power)
    sigma0 = searcher.sigma0
    c_lead, f_lead, lead_on, in_song = _lead_comb(track, t_sec, freqs, grid.n_fft, sample_rate, opts)
    # the second voice: harmonic summation on what the lead comb leaves
    band = searcher.band
    resid = mag[band] * (1.0 - c_lead[band])
    sal = searcher.weights.T @ resid  # [cands, T]
    log_c = np.log2(CANDIDATE_HZ)[:, None]
    allowed = np.ones_like(sal, dtype=bool)
    # not the lead, nor its octaves, nor what it sang a moment ago (its reverberation)
    for back_s in LOOKBACK_SECONDS:
        f_then, v_then = track.f0_at(t_sec - back_s) if back_s else (f_lead, lead_on)
        v_then = np.asarray(v_then, bool) & in_song
        cents = 1200.0 * (log_c - np.log2(np.maximum(f_then, 1.0))[None, :])
        for octave in (-1200.0, 0.0, 1200.0):
            allowed &= ~((np.abs(cents - octave) < 100.0 * opts.exclude_semitones) & v_then[None, :])
    given = None
    if backing_track is not None:
        f_given, v_given = backing_track.f0_at(t_sec)
        given = np.asarray(v_given, bool)
        allowed &= np.abs(1200.0 * (log_c - np.log2(np.maximum(f_given, 1.0))[None, :])) < 60.0
    sal = np.where(allowed, sal, -np.inf)
    best = np.argmax(sal, axis=0)
    cols = np.arange(sal.shape[1])
    # parabolic refinement of the peak on the log-frequency grid
    s0 = sal[np.maximum(best - 1, 0), cols]
    s1 = sal[best, cols]
    s2 = sal[np.minimum(best + 1, len(CANDIDATE_HZ) - 1), cols]
    ok = np.isfinite(s0) & np.isfinite(s1) & np.isfinite(s2)
    s0, s1, s2 = (np.where(ok, v, 0.0) for v in (s0, s1, s2))
    den = s0 - 2.0 * s1 + s2
    ok &= den < 0
    shift = np.where(ok, 0.5 * (s0 - s2) / np.where(ok, den, -1.0), 0.0)
    f_back = CANDIDATE_HZ[best] * 2.0 ** (np.clip(shift, -0.5, 0.5) / CANDIDATES_PER_OCTAVE)
    possible = np.isfinite(sal[best, cols])
    # evidence: the residual energy its comb holds, against the share a comb that dense holds of noise
    comb_b = harmonic_comb(searcher.freqs, f_back, np.ones(len(f_back), bool), sigma0, SEARCH_BAND_HZ[1])
    r2 = resid ** 2
    captured = np.sum(comb_b * r2, axis=0)
    duty = np.maximum(np.mean(comb_b, axis=0), 1e-6)
    total_r = np.maximum(np.sum(r2, axis=0), 1e-30)
    ratio = captured / total_r / duty
    frame_energy = np.sum(power[band], axis=0)
    rel_db = 10.0 * np.log10(np.maximum(captured, 1e-30) / np.maximum(frame_energy, 1e-30))
    lo, hi = opts.harmonicity
    ev = np.clip((ratio - lo) / (hi - lo), 0.0, 1.0) if given is None else given.astype(np.float64)
    lo, hi = opts.backing_floor_db
    ev *= np.clip((rel_db - lo) / (hi - lo), 0.0, 1.0) * possible
    level_db = 10.0 * np.log10(np.maximum(np.mean(power, axis=0), 1e-30) / np.sum(grid.window ** 2))
    ev *= level_db > opts.silence_db
    return c_lead, f_back, ev, f_lead, lead_on


class _RoomModel:
    """Late reverberation of the lead and of the backing, per bin, from their past energy.

    Each part's late reverberation in frame ``t`` is ``R(t) = Σ_{k ≥ K} g·a^k·D(t − k)``: its direct
    sound ``D`` of ``K`` or more frames before, decaying by ``a`` per frame (``a = 10^(-6·hop / RT60)``)
    and ``w = Σ g·a^k`` times its energy in all (the wet ratio). With ``D = Y − R`` (``Y`` the
    part's observed energy) this is the linear recursion
    ``R(t) = a·R(t−1) − w(1−a)·R(t−K) + w(1−a)·Y(t−K)``, run on the parts' first-pass shares of
    the stem's energy and carried from block to block (so blocks give the whole-song result). The
    mask then gives each part its reverberation and its share of what is left (the direct sound)::

        backing = (max(Y − R_L − R_B, 0) · share + R_B · min(1, Y / (R_L + R_B))) / Y

    Without a room (``room_rt60`` 0) the mask is ``share``.
    """

    def __init__(self, opts: SplitOptions, hop_s: float, bins: int, delay_frames: int = 3) -> None:
        rt60 = opts.room_rt60 or 0.0
        self.on = rt60 > 0 and opts.room_wet_db is not None and math.isfinite(opts.room_wet_db)
        self.state = None
        if not self.on:
            return
        a = 10.0 ** (-6.0 * hop_s / rt60)
        w = 10.0 ** (opts.room_wet_db / 10.0)
        K = delay_frames
        self.b = np.zeros(K + 1)
        self.b[K] = w * (1.0 - a)
        self.a = np.zeros(K + 1)
        self.a[0], self.a[1] = 1.0, -a
        self.a[K] += w * (1.0 - a)
        self.state = np.zeros((2, bins, K))

    def tails(self, Y: np.ndarray, share: np.ndarray, advance: int) -> tuple[np.ndarray, np.ndarray]:
        """The late reverberation of the lead and of the backing ``[bins, T]`` each (energies,
        together at most ``Y``) in frames with energy ``Y`` and direct-sound backing share
        ``share``; the recursion's state moves on by the first ``advance`` frames (those the next
        block does not analyse again). Zeros without a room."""
        if not self.on:
            return np.zeros_like(Y), np.zeros_like(Y)
        from scipy.signal import lfilter

        parts = np.stack([Y * (1.0 - share), Y * share])  # [2, bins, T]: lead, backing
        head, tail = parts[..., :advance], parts[..., advance:]
        r_head, new_state = lfilter(self.b, self.a, head, axis=-1, zi=self.state)
        r_tail, _ = lfilter(self.b, self.a, tail, axis=-1, zi=new_state)
        self.state = new_state
        R = np.maximum(np.concatenate([r_head, r_tail], axis=-1), 0.0)
        scale = np.minimum(1.0, Y / np.maximum(R[0] + R[1], 1e-30))
        return R[0] * scale, R[1] * scale

    def mask(self, Y: np.ndarray, share: np.ndarray, advance: int) -> np.ndarray:
        """Backing mask ``[bins, T]``: its tail and its share of the direct sound (see :meth:`tails`)."""
        if not self.on:
            return share
        r_lead, r_back = self.tails(Y, share, advance)
        return _backing_mask(Y, np.maximum(Y - r_lead - r_back, 0.0), share, r_back)


def _backing_mask(Y: np.ndarray, direct: np.ndarray, share: np.ndarray, back_tail: np.ndarray) -> np.ndarray:
    """The backing's mask: its share of the direct sound plus its tail, over the bin's energy ``Y``."""
    m = (direct * share + back_tail) / np.maximum(Y, 1e-30)
    return np.where(Y > 0, np.clip(m, 0.0, 1.0), 0.0)


def _voice_pans(X: np.ndarray, c_lead: np.ndarray, f_back: np.ndarray, evidence: np.ndarray, freqs: np.ndarray,
                sigma0: float, opts: SplitOptions, k: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lead pan, backing pan, lead coherence, backing coherence)`` per frame, for the frames of
    ``X`` ``[2, bins, T]`` less ``k`` at each end: the power-weighted mean pan of the bins each
    voice's comb holds and the other's does not, over the frame and ``k`` frames either side
    (``lead_pan`` where a voice holds none, so a backing without bins is not apart from the lead),
    and ``|Σ L·R*| / sqrt(Σ|L|²·Σ|R|²)`` over the same bins (1: from one direction;
    lower for a voice spread over the two sides, a double, or a room)."""
    p2 = np.abs(X) ** 2
    cross = X[0] * np.conj(X[1])
    c_back = harmonic_comb(freqs, f_back, evidence > 0, sigma0, opts.max_harmonic_hz) * evidence[None, :]
    pans, coherence = [], []
    for mine, other in ((c_lead, c_back), (c_back, c_lead)):
        w = mine * (1.0 - other)
        # the power-weighted mean of the bins' pans is the pan of their summed channel powers
        left, right = (_moving(np.sum(w * p2[c], axis=0), k, "mean") for c in (0, 1))
        weight = left + right
        pans.append(np.where(weight > 0, (right - left) / np.maximum(weight, 1e-30), opts.lead_pan))
        # one direction means the two channels are copies up to a gain: coherence 1
        xr = _moving(np.sum(w * cross.real, axis=0), k, "mean")
        xi = _moving(np.sum(w * cross.imag, axis=0), k, "mean")
        coherence.append(np.hypot(xr, xi) / np.maximum(np.sqrt(left * right), 1e-30))
    return pans[0], pans[1], coherence[0], coherence[1]


def pan_direction(pan: np.ndarray) -> np.ndarray:
    """Channel gains ``[2, ...]`` of an amplitude-panned source at ``pan`` (-1 left, 0 centre,
    1 right; the pan of a bin is ``(|R|²-|L|²)/(|L|²+|R|²)``), scaled so ``|d|² = 2``: the
    source's power per channel, averaged, is its power."""
    theta = 0.5 * np.arccos(np.clip(-np.asarray(pan, dtype=np.float64), -1.0, 1.0))
    return math.sqrt(2.0) * np.stack([np.cos(theta), np.sin(theta)])


def spatial_wiener(X: np.ndarray, lead_power: np.ndarray, back_power: np.ndarray, lead_tail: np.ndarray,
                   back_tail: np.ndarray, lead_dir: np.ndarray, back_dir: np.ndarray,
                   diffuse_floor: float = 1e-6) -> np.ndarray:
    """The backing's part of a stereo STFT ``X`` ``[2, bins, T]`` by a multichannel Wiener filter.

    Each bin of the stem is modelled as the lead's and the backing's direct sound, each coming from
    one direction (``lead_dir``, ``back_dir``: channel gains ``[2, T]``, see :func:`pan_direction`)
    with power ``lead_power``, ``back_power`` ``[bins, T]``, plus each part's late reverberation,
    spatially diffuse (equal power in both channels, uncorrelated) with power ``lead_tail``,
    ``back_tail``, plus a diffuse floor (``diffuse_floor`` × the bin's power, the lead's). The
    backing is ``C_B · C_X⁻¹ · x`` with ``C_B = v_B·d_B·d_Bᴴ + r_B·I`` and ``C_X`` the sum of all
    parts' covariances (Duong, Vincent & Gribonval 2010, with rank-1 direct sound). Where two voices
    share a bin (their harmonics coincide) but come from different directions, this unmixes them,
    which no mask can; with one direction for both, it is the single-channel Wiener mask.
    Bins where the backing has no power get exactly 0.
    """
    dl = lead_dir[:, None, :]
    db = back_dir[:, None, :]
    r_l = lead_tail + diffuse_floor * (lead_power + back_power + lead_tail + back_tail) + 1e-30
    # C_B and C_X entries (real: the directions are real gains)
    b00, b01, b11 = back_power * db[0] ** 2 + back_tail, back_power * db[0] * db[1], back_power * db[1] ** 2 + back_tail
    x00 = b00 + lead_power * dl[0] ** 2 + r_l
    x01 = b01 + lead_power * dl[0] * dl[1]
    x11 = b11 + lead_power * dl[1] ** 2 + r_l
    det = x00 * x11 - x01 * x01
    # y = C_X^-1 x, then the backing = C_B y
    y0 = (x11 * X[0] - x01 * X[1]) / det
    y1 = (x00 * X[1] - x01 * X[0]) / det
    return np.stack([b00 * y0 + b01 * y1, b01 * y0 + b11 * y1])


def lead_residual(
    vocals: "np.ndarray | DiskAudio",
    sample_rate: int,
    track: PitchTrack,
    options: SplitOptions | None = None,
    out: "np.ndarray | DiskAudio | None" = None,
    block: int | None = None,
) -> "np.ndarray | DiskAudio":
    """What of ``vocals`` is not on the lead's harmonics: the stem with the lead comb (see the
    module docstring) taken out of every frame where ``track`` is voiced. float32 ``[channels,
    samples]`` (``out`` when given). Tracking its pitch (:func:`track_backing`) finds the backing."""
    opts = options or SplitOptions()
    opts.check()
    audio = as_audio(vocals, "vocals")
    check_finite(audio, "vocals")
    channels, n = audio.shape
    result = out if out is not None else new_like(audio)
    grid = FrameGrid(fft_size_for(sample_rate), n)
    freqs = grid.freqs(sample_rate)
    room = _RoomModel(_with_room(opts, audio, sample_rate), grid.hop / sample_rate, len(freqs))
    for start, stop in blocks(n, block or SPLIT_BLOCK):
        t0, t1 = grid.frames_touching(start, stop)
        X = grid.analyse(audio, t0, t1)
        comb = _lead_comb(track, grid.times(t0, t1, sample_rate), freqs, grid.n_fft, sample_rate, opts)[0]
        next_t0 = grid.frames_touching(stop, stop + 1)[0] if stop < n else t1
        # the lead's harmonics and its late reverberation (at the notes it sang before) go
        keep = room.mask(np.mean(np.abs(X) ** 2, axis=0), 1.0 - comb, next_t0 - t0)
        result[:, start:stop] = grid.overlap_add(X * keep[None], t0, start, stop).astype(np.float32)
    return result


def _with_room(opts: SplitOptions, audio, sample_rate: int) -> SplitOptions:
    """``opts`` with the room's RT60 and wet level: as given, else :func:`singvc.room.pilot_room`
    of ``audio`` (0 = no room when it finds none)."""
    if opts.room_rt60 is not None:
        return opts
    est = pilot_room(audio, sample_rate)
    return replace(opts, room_rt60=est.rt60 or 0.0, room_wet_db=est.wet_db)


def track_backing(
    vocals: "np.ndarray | DiskAudio",
    sample_rate: int,
    track: PitchTrack,
    model,
    options: SplitOptions | None = None,
    residual_out: "np.ndarray | DiskAudio | None" = None,
    voicing_high: float = 0.6,
    voicing_low: float = 0.4,
    **track_kwargs,
) -> PitchTrack:
    """The pitch track of the strongest voice besides the lead: crepe (``model``, as for the
    stem) on :func:`lead_residual`. Voiced where that voice is clearly periodic (monophonic);
    frames within ``options.exclude_semitones`` of the lead or its octaves are unvoiced (what is
    left of the lead itself). ``residual_out``: a buffer for the residual (e.g. a DiskAudio)."""
    opts = options or SplitOptions()
    residual = lead_residual(vocals, sample_rate, track, opts, out=residual_out)
    back = track_pitch(residual, sample_rate, model, voicing_high=voicing_high, voicing_low=voicing_low,
                       **track_kwargs)
    near = np.zeros(len(back), dtype=bool)
    for back_s in LOOKBACK_SECONDS:
        f_then, v_then = track.f0_at(back.times - back_s)
        cents = 1200.0 * np.log2(np.maximum(back.f0, 1e-6) / np.maximum(f_then, 1e-6))
        for octave in (-1200.0, 0.0, 1200.0):
            near |= (np.abs(cents - octave) < 100.0 * opts.exclude_semitones) & np.asarray(v_then, bool)
    back.voiced = back.voiced & ~near
    return back


def _merge(spans: list) -> list:
    """Sorted ``(start, end)`` spans with the overlapping ones joined."""
    out: list = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@dataclass
class BackingPresence:
    """Where a backing part sings, decided from its pitch track (:func:`backing_presence`).

    Attributes:
        regions: ``(start, end)`` seconds where the stem is split; elsewhere it stays whole.
        anchor_seconds: seconds of the backing track that the lead does not explain.
        voiced_seconds: seconds the backing track is voiced at all.
        decision: a sentence for the report (what was found, or why nothing was).
    """

    regions: list
    anchor_seconds: float
    voiced_seconds: float
    decision: str

    def gate(self, times: np.ndarray) -> np.ndarray:
        """True at ``times`` (s) inside a region."""
        g = np.zeros(len(times), dtype=bool)
        for a, b in self.regions:
            g |= (times >= a) & (times <= b)
        return g


def backing_presence(track: PitchTrack, backing_track: PitchTrack, options: SplitOptions | None = None
                     ) -> BackingPresence:
    """Decide where ``backing_track`` (:func:`track_backing`) is another voice and not the lead.

    A frame of the backing track is *explained by the lead* when its pitch is within
    ``presence_cents`` of a pitch the lead (``track``) sang at that moment or in the
    ``presence_history_seconds`` before (the lead's reverberation rings at its past notes and
    crepe finds them in the residual). Runs of at least ``presence_min_run`` seconds of voiced,
    unexplained frames are *anchors*: another voice, singing notes the lead has not just sung.
    The backing track's voiced frames, joined over gaps of up to ``presence_gap_seconds``, form
    stretches; the stem is split over each stretch holding an anchor (widened by
    ``presence_margin_seconds``) and left whole elsewhere; with no anchor at all, nowhere ("no backing found").
    """
    opts = options or SplitOptions()
    t = np.asarray(backing_track.times, dtype=np.float64)
    voiced = np.asarray(backing_track.voiced, dtype=bool).copy()
    hop = float(backing_track.hop)
    voiced_s = float(np.sum(voiced)) * hop
    explained = np.zeros(len(t), dtype=bool)
    log_b = np.log2(np.maximum(backing_track.f0, 1e-6))
    step = 0.02
    for lag in np.arange(0.0, opts.presence_history_seconds + 1e-9, step):
        f_then, v_then = track.f0_at(t - lag)
        cents = 1200.0 * np.abs(log_b - np.log2(np.maximum(f_then, 1e-6)))
        explained |= (cents < opts.presence_cents) & np.asarray(v_then, bool) & voiced
    free = voiced & ~explained
    anchors = []
    i = 0
    while i < len(free):
        if free[i]:
            j = i
            while j < len(free) and free[j]:
                j += 1
            if (j - i) * hop >= opts.presence_min_run - 1e-9:
                anchors.append((t[i], t[j - 1]))
            i = j
        else:
            i += 1
    anchor_s = float(sum(b - a + hop for a, b in anchors))
    # the backing track's voiced stretches, joined over gaps of up to presence_gap_seconds
    spans: list = []
    for idx in np.flatnonzero(voiced):
        if spans and t[idx] - spans[-1][1] <= opts.presence_gap_seconds:
            spans[-1][1] = t[idx]
        else:
            spans.append([t[idx], t[idx]])
    margin = opts.presence_margin_seconds
    regions = _merge([(a - margin, b + margin) for a, b in spans if any(a <= x <= b for x, _ in anchors)])
    if regions:
        covered = sum(b - a for a, b in regions)
        decision = (f"backing found: {len(anchors)} run(s) of the second voice ({anchor_s:.2f} s) away from the "
                    f"lead's pitches; split in {len(regions)} region(s), {covered:.1f} s")
    elif voiced_s > 0:
        decision = (f"no backing found: the second voice's track ({voiced_s:.2f} s voiced) has no run of "
                    f"{opts.presence_min_run:g} s or more away from what the lead sang in the last "
                    f"{opts.presence_history_seconds:g} s (it is the lead's reverberation or a slip); the stem is "
                    "left whole")
    else:
        decision = "no backing found: no second voice in the stem; the stem is left whole"
    return BackingPresence(regions=[(float(a), float(b)) for a, b in regions], anchor_seconds=anchor_s,
                           voiced_seconds=voiced_s, decision=decision)


def split_lead(
    vocals: "np.ndarray | DiskAudio",
    sample_rate: int,
    track: PitchTrack,
    options: SplitOptions | None = None,
    lead_out: "np.ndarray | DiskAudio | None" = None,
    backing_out: "np.ndarray | DiskAudio | None" = None,
    block: int | None = None,
    callback: Callable[[dict], None] | None = None,
    backing_track: PitchTrack | None = None,
) -> tuple["np.ndarray | DiskAudio", "np.ndarray | DiskAudio", SplitReport]:
    """Split a vocal stem into the lead (what follows ``track``) and the backing.

    Args:
        vocals: the vocal stem, float32 ``[channels, samples]`` (array or DiskAudio).
        sample_rate: Hz.
        track: the crepe track of ``vocals`` (:func:`singvc.pitch.track_pitch`).
        options: :class:`SplitOptions` (default: the recommended settings).
        lead_out, backing_out: where to write the two parts (same shape as ``vocals``, e.g. a
            :class:`~singvc.audio.DiskAudio` for bounded memory); default new arrays.
        block: samples per block (default :data:`SPLIT_BLOCK`); the result does not depend on it.
        callback: called with ``{"stage": "split", "seconds_done", "seconds_total"}`` per block.
        backing_track: a pitch track of the backing (e.g. crepe on a first split's backing); where
            it is voiced it replaces the harmonic-summation search (the level gate still applies).

    Returns:
        ``(lead, backing, report)``: float32 ``[channels, samples]`` each, ``lead + backing ==
        vocals`` (to float32 rounding; exactly, where nothing was split), and a :class:`SplitReport`.
    """
    opts = options or SplitOptions()
    opts.check()
    audio = as_audio(vocals, "vocals")
    check_finite(audio, "vocals")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise UserInputError(f"sample_rate must be a positive int in Hz (got {sample_rate!r})")
    if not isinstance(track, PitchTrack) or len(track) == 0:
        raise UserInputError("track must be a non-empty singvc.pitch.PitchTrack of the vocals")
    channels, n = audio.shape
    lead = lead_out if lead_out is not None else new_like(audio)
    backing = backing_out if backing_out is not None else new_like(audio)
    for name, buf in (("lead_out", lead), ("backing_out", backing)):
        if tuple(buf.shape) != (channels, n):
            raise UserInputError(f"{name} must have shape {(channels, n)} (got {tuple(buf.shape)})")
    presence = None
    if backing_track is not None:
        presence = backing_presence(track, backing_track, opts)
        backing_track = replace(backing_track, voiced=np.asarray(backing_track.voiced, bool)
                                & presence.gate(np.asarray(backing_track.times)))
    grid = FrameGrid(fft_size_for(sample_rate), n)
    freqs = grid.freqs(sample_rate)
    sigma0 = SIGMA_BINS * sample_rate / grid.n_fft
    searcher = _Searcher(freqs, 0.8 * sample_rate / grid.n_fft, sigma0)
    stereo = channels == 2 and opts.stereo_weight > 0
    k = SMOOTH_FRAMES
    ctx = 2 * k
    seconds_total = n / sample_rate
    # report accumulators
    e_stem = e_back = e_lead = 0.0
    n_sound = n_back = n_spatial = 0
    intervals: list[np.ndarray] = []
    pitches: list[np.ndarray] = []
    tr_f0: list[np.ndarray] = []
    tr_ev: list[np.ndarray] = []
    room_opts = opts
    if presence is None or presence.regions:  # nothing to split: no need for the room
        room_opts = _with_room(opts, audio, sample_rate)
    room = _RoomModel(room_opts, grid.hop / sample_rate, len(freqs))
    # a stereo stem is unmixed by direction in the frames where that model holds (see below)
    spatial = channels == 2 and opts.spatial
    if presence is not None and room.on:
        # a region's backing rings on after it: keep its tail (down 30 dB) with it
        tail = 0.5 * float(room_opts.room_rt60)
        presence.regions = _merge([(a, b + tail) for a, b in presence.regions])
        presence.decision += f"; each widened by {tail:.2f} s at its end for the room's tail"
    for start, stop in blocks(n, block or SPLIT_BLOCK):
        t0, t1 = grid.frames_touching(start, stop)
        X = grid.analyse(audio, t0 - ctx, t1 + ctx)  # [ch, bins, T + 2 ctx]
        t_sec = grid.times(t0 - ctx, t1 + ctx, sample_rate)
        c_lead, f_back, ev, f_lead, lead_on = _frame_analysis(X, freqs, t_sec, track, grid, sample_rate, opts,
                                                              searcher, backing_track)
        if spatial:
            pan_l, pan_b, coh_l, coh_b = _voice_pans(X, c_lead, f_back, ev, freqs, sigma0, opts, ctx)
        ev = _moving(_moving(ev, k, "median"), k, "mean")  # frames [t0, t1)
        ev = np.clip((ev - EVIDENCE_DEAD_ZONE) / (1.0 - EVIDENCE_DEAD_ZONE), 0.0, 1.0)
        f_b = f_back[ctx:len(f_back) - ctx]
        X = X[:, :, ctx:X.shape[2] - ctx]
        c_lead = c_lead[:, ctx:c_lead.shape[1] - ctx]
        f_l, l_on = f_lead[ctx:len(f_lead) - ctx], lead_on[ctx:len(lead_on) - ctx]
        on = ev > 0
        share = np.zeros(X.shape[1:])  # the backing's share of each bin's direct sound
        lean = share  # the same, leaning to each voice's side (the masks' stereo cue)
        if np.any(on):
            c_back = harmonic_comb(freqs, f_b[on], np.ones(int(on.sum()), bool), sigma0, opts.max_harmonic_hz)
            w_b = ev[on][None, :] * c_back
            w_l = c_lead[:, on]
            share[:, on] = w_b / (w_b + w_l + opts.floor)
            if stereo:
                p2 = np.abs(X[:, :, on]) ** 2
                pan = (p2[1] - p2[0]) / np.maximum(p2[0] + p2[1], 1e-30)
                sel = w_b * (1.0 - w_l) * (p2[0] + p2[1])
                pan_frame = np.sum(sel * pan, axis=0) / np.maximum(np.sum(sel, axis=0), 1e-30)
                apart = np.clip((np.abs(pan_frame - opts.lead_pan) - 0.1) / 0.2, 0.0, 1.0)[None, :]
                sig = 0.3
                g_b = _gauss(pan - pan_frame[None, :], np.full_like(pan, sig))
                g_l = _gauss(pan - opts.lead_pan, np.full_like(pan, sig))
                a = opts.stereo_weight * apart
                w_b = w_b * (g_b + 0.05) ** a
                w_l = w_l * (g_l + 0.05) ** a
                lean = share.copy()
                lean[:, on] = w_b / (w_b + w_l + opts.floor)
        next_t0 = grid.frames_touching(stop, stop + 1)[0] if stop < n else t1
        Y = np.mean(np.abs(X) ** 2, axis=0)
        unmixed = np.zeros(X.shape[2], dtype=bool)  # frames with backing unmixed by direction
        if spatial:
            r_lead, r_back = room.tails(Y, lean, next_t0 - t0)
            direct = np.maximum(Y - r_lead - r_back, 0.0)
            back_frames = spatial_wiener(X, direct * (1.0 - share), direct * share, r_lead, r_back,
                                         pan_direction(pan_l), pan_direction(pan_b))
            # never more backing in a bin than the stem holds (the unmixing amplifies a wrong model)
            mag, limit = np.abs(back_frames), np.abs(X)
            back_frames = np.where(mag > limit, back_frames * (limit / np.maximum(mag, 1e-30)), back_frames)
            # frames where a voice does not come from one direction, or both come from about the
            # same one (a double on both sides, a centred harmony), take the masks
            sharing = np.any(share > 0, axis=0)
            masked = sharing & ((np.minimum(coh_l, coh_b) < opts.spatial_min_coherence)
                                | (np.abs(pan_b - pan_l) < opts.spatial_min_separation))
            if np.any(masked):
                back_frames[:, :, masked] = X[:, :, masked] * _backing_mask(
                    Y[:, masked], direct[:, masked], lean[:, masked], r_back[:, masked])
            unmixed = sharing & ~masked
        else:
            back_frames = X * room.mask(Y, lean, next_t0 - t0)[None]
        if presence is not None:  # the stem stays whole outside the backing's regions
            back_frames = back_frames * presence.gate(grid.times(t0, t1, sample_rate))[None, None, :]
        part = grid.overlap_add(back_frames, t0, start, stop).astype(np.float32)
        stem = audio[:, start:stop]
        backing[:, start:stop] = part
        lead[:, start:stop] = stem - part
        e_stem += float(np.sum(np.square(stem, dtype=np.float64)))
        e_back += float(np.sum(np.square(part, dtype=np.float64)))
        e_lead += float(np.sum(np.square(stem - part, dtype=np.float64)))
        # frames this block owns for the report: centres within [start, stop)
        centres = np.arange(t0, t1) * grid.hop
        own = (centres >= start) & (centres < stop)
        level = np.mean(Y, axis=0)
        sound = level > np.max(level) * 1e-6 if level.size and np.max(level) > 0 else np.zeros(len(level), bool)
        n_sound += int(np.sum(sound & own))
        n_spatial += int(np.sum(unmixed & own))
        held = (ev > 0.5) & own
        n_back += int(np.sum(held))
        both = held & l_on
        if np.any(both):
            intervals.append(12.0 * np.log2(f_b[both] / f_l[both]))
        if np.any(held):
            pitches.append(f_b[held])
        tr_f0.append(f_b[own])
        tr_ev.append(ev[own])
        if callback is not None:
            callback({"stage": "split", "seconds_done": stop / sample_rate, "seconds_total": seconds_total})
    hop_s = grid.hop / sample_rate
    f0s = np.concatenate(tr_f0) if tr_f0 else np.zeros(0)
    evs = np.concatenate(tr_ev) if tr_ev else np.zeros(0)
    back_track = PitchTrack(times=np.arange(len(f0s)) * hop_s, f0=f0s, periodicity=evs.astype(np.float32),
                            voiced=evs > 0.5, hop=hop_s, model="harmonic-sum")

    def rel(e: float) -> float:
        return 10.0 * math.log10(e / e_stem) if e > 0 and e_stem > 0 else float("-inf")

    report = SplitReport(
        split=e_back > 0, backing_seconds=n_back * hop_s, backing_share=n_back / max(n_sound, 1),
        backing_db=rel(e_back), lead_db=rel(e_lead),
        interval_semitones=float(np.median(np.concatenate(intervals))) if intervals else None,
        backing_pitch_hz=float(np.median(np.concatenate(pitches))) if pitches else None,
        track=back_track,
        decision=(presence.decision if presence is not None else
                  ("backing found by harmonic summation (no backing track given)" if e_back > 0 else
                   "no backing found by harmonic summation (no backing track given)")),
        regions=presence.regions if presence is not None else [],
        spatial_seconds=n_spatial * hop_s,
    )
    return lead, backing, report


def describe_split(report: SplitReport, vocals, backing, sample_rate: int) -> dict:
    """``report`` as a dict for the run report, with the integrated loudness of the stem and the
    backing (LUFS, measured as a stream)."""
    report.stem_lufs = integrated_loudness(vocals, sample_rate)
    report.backing_lufs = integrated_loudness(backing, sample_rate) if report.split else float("-inf")
    return report.as_dict()


def convert_backing(
    backing: "np.ndarray | DiskAudio",
    sample_rate: int,
    backing_track: PitchTrack,
    converter,
    semitones: float,
    voice: object | None = None,
    out: "np.ndarray | DiskAudio | None" = None,
    scratch_path=None,
    fade_seconds: float = 0.015,
    shifted_out: "np.ndarray | DiskAudio | None" = None,
) -> tuple["np.ndarray | DiskAudio", dict]:
    """``--backing convert``: the backing in the converted voice, with the lead's shift.

    Where the backing is monophonic (``backing_track``, crepe on the backing stem, is voiced) it
    goes through ``converter`` exactly like the lead (same ``semitones``, same ``voice``). Where
    it is not (chords of several backing singers, whispers, or crepe unsure) no converter can
    follow one pitch: those stretches keep the original voice and are transposed by ``semitones``
    with the instrumental's phase-vocoder key shift (:func:`singvc.keyshift.pitch_shift`; formants
    move with it), so that they stay in the song's new key; with ``semitones == 0`` they are kept
    as they are. Joined by ``fade_seconds`` linear cross-fades at the voicing boundaries.
    ``shifted_out``: a buffer for the transposed backing (e.g. a DiskAudio; default a new array).

    Returns:
        ``(audio, info)``: float32 ``[channels, samples]`` (``out`` when given) and
        ``{"converted_seconds", "kept_seconds", "transposed"}``.
    """
    audio = as_audio(backing, "backing")
    channels, n = audio.shape
    result = converter.convert(audio, sample_rate, backing_track, semitones, voice=voice, out=out)
    runs = voiced_runs(backing_track, n, sample_rate)
    converted = sum(b - a for a, b in runs) / sample_rate
    transposed = bool(semitones) and converted < n / sample_rate
    if transposed:
        shifted = pitch_shift(audio, sample_rate, semitones, out=shifted_out, scratch_path=scratch_path)
        fade = max(1, int(fade_seconds * sample_rate))
        for start, stop in blocks(n):
            rest = 1.0 - crossfade_weight(runs, n, fade, start, stop)
            result[:, start:stop] = (result[:, start:stop] + rest * (shifted[:, start:stop] - audio[:, start:stop])
                                     ).astype(np.float32)
    return result, {"converted_seconds": round(converted, 2), "kept_seconds": round(n / sample_rate - converted, 2),
                    "transposed": transposed}
