"""Tests of singvc.converters on synthetic signals (no downloads; crepe ``tiny`` from the wheel once)."""
from __future__ import annotations

import numpy as np
import pytest

from singvc.converters import (
    CONVERTERS,
    BypassConverter,
    Converter,
    PitchShiftConverter,
    get_converter,
    voiced_runs,
)
from singvc.converters.pitch_shift import _segments, crossfade_weight
from singvc.errors import InvalidAudioError, UserInputError
from singvc.pitch import PitchTrack

SAMPLE_RATE = 22_050
HOP = 0.01
VIB_HZ = 5.5
VIB_CENTS = 50.0

# layout of the synthetic vocal (seconds)
SILENCE_END = 0.2
NOTE1 = (0.2, 0.9)
NOISE = (0.92, 1.03)  # a "consonant": white noise inside an unvoiced gap
NOTE2 = (1.05, 1.8)
DURATION = 2.0


def formant_amp(freq: np.ndarray) -> np.ndarray:
    """A fixed vowel-like envelope: resonances at 700 and 1200 Hz over a floor."""
    return np.exp(-(((freq - 700.0) / 200.0) ** 2)) + 0.6 * np.exp(-(((freq - 1200.0) / 250.0) ** 2)) + 0.05


def f0_curve(t: np.ndarray, f_centre: float) -> np.ndarray:
    return f_centre * 2.0 ** (VIB_CENTS / 1200.0 * np.sin(2 * np.pi * VIB_HZ * t))


def make_vocal(sample_rate: int = SAMPLE_RATE, f_centre: float = 220.0, seed: int = 0):
    """Harmonic tone with vibrato and a fixed formant envelope, silence and a noise burst.

    Returns ``(audio [1, samples] float32, PitchTrack built from the known f0)``.
    """
    rng = np.random.default_rng(seed)
    n = int(DURATION * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = f0_curve(t, f_centre)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = np.zeros(n)
    for h in range(1, 60):
        fh = h * f0
        amp = np.where(fh < sample_rate / 2 - 500, formant_amp(fh) / np.sqrt(h), 0.0)
        x += amp * np.sin(h * phase)
    x *= 0.3 / np.abs(x).max()
    voiced = ((t >= NOTE1[0]) & (t < NOTE1[1])) | ((t >= NOTE2[0]) & (t < NOTE2[1]))
    x[~voiced] = 0.0
    lo, hi = int(NOISE[0] * sample_rate), int(NOISE[1] * sample_rate)
    x[lo:hi] = 0.05 * rng.standard_normal(hi - lo)
    times = np.arange(int(round(DURATION / HOP)) + 1) * HOP
    frame_voiced = voiced[np.minimum(np.round(times * sample_rate).astype(int), n - 1)]
    track = PitchTrack(times=times, f0=f0_curve(times, f_centre), periodicity=frame_voiced.astype(np.float32),
                       voiced=frame_voiced, hop=HOP, model="synthetic")
    return x.astype(np.float32)[None, :], track


@pytest.fixture(scope="module")
def vocal():
    return make_vocal()


@pytest.fixture(scope="module")
def shifted(vocal):
    """The vocal converted by +12, -5 and +7 semitones (computed once)."""
    audio, track = vocal
    conv = PitchShiftConverter()
    return {s: conv.convert(audio, SAMPLE_RATE, track, s) for s in (12.0, -5.0, 7.0)}


def region(seconds: tuple[float, float], sample_rate: int = SAMPLE_RATE) -> slice:
    return slice(int(seconds[0] * sample_rate), int(seconds[1] * sample_rate))


def pyin_f0(y: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """f0 (Hz) of a 1-D tone by librosa.pyin, NaN where unvoiced."""
    import librosa

    f0, _, _ = librosa.pyin(y.astype(np.float64), fmin=80, fmax=1000, sr=sample_rate, frame_length=1024,
                            hop_length=128, center=False)
    return f0


# inner parts of the notes, away from the cross-fades
INNER1 = (NOTE1[0] + 0.1, NOTE1[1] - 0.1)
INNER2 = (NOTE2[0] + 0.1, NOTE2[1] - 0.1)


# --- interface and registry ---------------------------------------------------------------------

def test_registry_and_protocol():
    assert set(CONVERTERS) == {"none", "pitch", "dsp", "seedvc"}
    for name in CONVERTERS:
        conv = get_converter(name)
        assert conv.name == name
        assert isinstance(conv, Converter)
    assert isinstance(get_converter("pitch", fade_seconds=0.01), PitchShiftConverter)


def test_get_converter_unknown_name_lists_choices():
    with pytest.raises(UserInputError, match="none, pitch"):
        get_converter("rvc")


def test_get_converter_bad_options():
    with pytest.raises(UserInputError, match="bad options"):
        get_converter("pitch", nonsense=1)
    with pytest.raises(UserInputError, match="fade_seconds"):
        get_converter("pitch", fade_seconds=1.0)


def test_bypass_is_exact_copy(vocal):
    audio, track = vocal
    stereo = np.concatenate([audio, -0.5 * audio])
    out = BypassConverter().convert(stereo, SAMPLE_RATE, track, 12.0)
    assert out is not stereo
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, stereo)


# --- invariants ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate", [16_000, 44_100])
@pytest.mark.parametrize("trim", [0, 37])  # odd lengths, and the track overhanging the audio end
def test_shape_dtype_finite(sample_rate, trim):
    audio, track = make_vocal(sample_rate)
    audio = audio[:, : audio.shape[1] - trim]
    out = PitchShiftConverter().convert(audio, sample_rate, track, 3.0)
    assert out.shape == audio.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.abs(out).max() < 1.0


@pytest.mark.parametrize("per_channel", [False, True])
def test_zero_semitones_is_identity(vocal, per_channel):
    audio, track = vocal
    stereo = np.concatenate([audio, 0.7 * audio])
    out = PitchShiftConverter(per_channel=per_channel).convert(stereo, SAMPLE_RATE, track, 0.0)
    assert out is not stereo
    np.testing.assert_array_equal(out, stereo)


def test_no_voiced_frames_is_identity(vocal):
    audio, track = vocal
    silent_track = PitchTrack(track.times, track.f0, track.periodicity, np.zeros_like(track.voiced), track.hop)
    np.testing.assert_array_equal(PitchShiftConverter().convert(audio, SAMPLE_RATE, silent_track, 12.0), audio)


# --- pitch, vibrato, formants, timing ------------------------------------------------------------

@pytest.mark.parametrize("semitones", [12.0, -5.0, 7.0])
def test_shift_moves_f0_and_keeps_vibrato(vocal, shifted, semitones):
    audio, _ = vocal
    for inner in (INNER1, INNER2):
        src = pyin_f0(audio[0, region(inner)])
        out = pyin_f0(shifted[semitones][0, region(inner)])
        ok = np.isfinite(src) & np.isfinite(out)
        assert ok.mean() > 0.9
        shift = 12.0 * np.log2(out[ok] / src[ok])
        assert abs(np.median(shift) - semitones) < 0.1
        # the contour follows the source frame by frame (vibrato shape and phase)
        assert np.median(np.abs(shift - semitones)) * 100 < 15
        extent = np.std(np.log2(out[ok])) / np.std(np.log2(src[ok]))
        assert 0.8 < extent < 1.2


def test_shift_measured_by_crepe(tiny_crepe):
    """The shift as seen by the project's own tracker (crepe tiny on 1.5 s)."""
    from singvc.pitch import track_pitch

    audio, track = make_vocal(16_000, f_centre=262.0)
    audio = audio[:, : int(1.5 * 16_000)]
    out = PitchShiftConverter().convert(audio, 16_000, track, 12.0)
    src, dst = track_pitch(audio, 16_000, tiny_crepe), track_pitch(out, 16_000, tiny_crepe)
    both = src.voiced & dst.voiced
    assert both.sum() >= 0.9 * src.voiced.sum()
    assert abs(np.median(12 * np.log2(dst.f0[both] / src.f0[both])) - 12.0) < 0.15


@pytest.mark.parametrize("semitones", [12.0, -5.0])
def test_formants_kept(vocal, shifted, semitones):
    """The spectral envelope stays put, unlike a naive (resampling) shift that scales it.

    Reference: the same synthetic voice (same envelope) sung directly at the target pitch.
    """
    import librosa

    audio, _ = vocal
    ratio = 2.0 ** (semitones / 12.0)
    ideal, _ = make_vocal(f_centre=220.0 * ratio)
    sl = region(INNER2)
    src, out = audio[0, sl], shifted[semitones][0, sl]
    # resampled, then played at the original rate: pitch and formants both scaled by ratio
    naive = librosa.resample(src, orig_sr=SAMPLE_RATE, target_sr=int(round(SAMPLE_RATE / ratio)))

    def centroid(y):
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / SAMPLE_RATE)
        keep = freqs < 5000
        return float((freqs[keep] * spec[keep]).sum() / spec[keep].sum())

    c_ideal = centroid(ideal[0, sl])
    assert abs(np.log2(centroid(out) / c_ideal)) < 0.1  # within 7 %
    assert abs(np.log2(centroid(naive) / c_ideal)) > 0.3  # the naive shift moves it

    if semitones != 12.0:
        return
    # the envelope sampled at the output's harmonics matches the source envelope
    f_mean = np.exp(np.mean(np.log(f0_curve(np.arange(sl.start, sl.stop) / SAMPLE_RATE, 440.0))))
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / SAMPLE_RATE)
    harmonics = f_mean * np.arange(1, 8)
    level = np.array([spec[(freqs > h * 0.95) & (freqs < h * 1.05)].max() for h in harmonics])
    expected = formant_amp(harmonics) / np.sqrt(harmonics / 220.0)
    corr = np.corrcoef(20 * np.log10(level), 20 * np.log10(expected))[0, 1]
    assert corr > 0.8


def test_no_delay():
    """A level step inside a note comes out at the same time (WORLD output is aligned).

    Level matching is off: it would otherwise pull the edge into place by itself.
    """
    sample_rate = 22_050
    n = sample_rate
    t = np.arange(n) / sample_rate
    x = sum(np.sin(2 * np.pi * h * 220.0 * t) / h for h in range(1, 30))
    x = (0.2 * x * np.where(t < 0.5, 0.25, 1.0)).astype(np.float32)[None]
    times = np.arange(101) * HOP
    track = PitchTrack(times, np.full(101, 220.0), np.ones(101, np.float32), np.ones(101, bool), HOP)

    def edge(y):
        k = int(0.005 * sample_rate)
        env = np.sqrt(np.convolve(y.astype(np.float64) ** 2, np.ones(k) / k, "same"))
        lo = np.median(env[int(0.3 * sample_rate): int(0.45 * sample_rate)])
        hi = np.median(env[int(0.55 * sample_rate): int(0.7 * sample_rate)])
        start = int(0.45 * sample_rate)
        return start + int(np.argmax(env[start: int(0.55 * sample_rate)] > np.sqrt(lo * hi)))

    for semitones in (12.0, 7.0):
        out = PitchShiftConverter(match_level=False).convert(x, sample_rate, track, semitones)
        assert abs(edge(out[0]) - edge(x[0])) / sample_rate < 0.001


# --- unvoiced parts and cross-fades --------------------------------------------------------------

def test_unvoiced_parts_kept_exactly(vocal, shifted):
    audio, _ = vocal
    fade = PitchShiftConverter().fade_seconds
    for semitones, out in shifted.items():
        # the noise burst sits in the unvoiced gap; away from the fades it is the original
        gap = region((NOTE1[1] + fade, NOTE2[0] - fade))
        np.testing.assert_array_equal(out[:, gap], audio[:, gap])
        assert np.abs(out[:, region(NOISE)]).max() > 0.05  # still there
        lead = region((0.0, SILENCE_END - fade))
        np.testing.assert_array_equal(out[:, lead], audio[:, lead])
        tail = region((NOTE2[1] + fade, DURATION))
        np.testing.assert_array_equal(out[:, tail], audio[:, tail])


def test_level_kept(vocal, shifted):
    audio, _ = vocal
    sl = region(INNER1)
    for out in shifted.values():
        ratio_db = 20 * np.log10(np.sqrt(np.mean(out[0, sl] ** 2)) / np.sqrt(np.mean(audio[0, sl] ** 2)))
        assert abs(ratio_db) < 1.0


def test_crossfade_weight():
    w = crossfade_weight([(100, 200)], 300, 20)
    assert w.shape == (300,)
    assert w[:89].max() == 0.0 and w[111:189].min() == 1.0 and w[211:].max() == 0.0
    assert 0.4 < w[100] < 0.6 and 0.4 < w[200] < 0.6
    assert np.all(np.diff(w[80:120]) >= 0)


def test_voiced_runs_follow_track_grid():
    times = np.arange(10) * HOP
    voiced = np.array([0, 1, 1, 0, 0, 0, 0, 0, 1, 1], bool)
    track = PitchTrack(times, np.full(10, 200.0), voiced.astype(np.float32), voiced, HOP)
    # frame k covers [k - 0.5, k + 0.5) hops; the last run extends one hop past the last frame
    assert voiced_runs(track, 1000, 10_000) == [(50, 250), (750, 1000)]
    # audio longer than the track: beyond it counts as unvoiced
    assert voiced_runs(track, 5000, 10_000) == [(50, 250), (750, 1000)]


def test_segments_respect_chunk_length():
    runs = [(0, 100), (150, 250), (300, 400), (1000, 1100)]
    assert _segments(runs, 2000, 40, 10_000) == [(0, 440, runs[:3]), (960, 1140, runs[3:])]
    segs = _segments(runs, 2000, 40, 300)
    assert all(hi - lo <= 300 for lo, hi, _ in segs)
    assert sum(len(r) for _, _, r in segs) == len(runs)


def test_track_shorter_than_audio(vocal):
    audio, track = vocal
    half = PitchTrack(track.times[:100], track.f0[:100], track.periodicity[:100], track.voiced[:100], HOP)
    out = PitchShiftConverter().convert(audio, SAMPLE_RATE, half, 12.0)
    assert out.shape == audio.shape
    after = region((1.0 + 0.02, DURATION))  # past the track: kept as is
    np.testing.assert_array_equal(out[:, after], audio[:, after])


# --- channels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_channel", [False, True])
def test_multichannel(vocal, per_channel):
    audio, track = vocal
    rng = np.random.default_rng(1)
    stereo = np.concatenate([audio, 0.5 * audio + 0.001 * rng.standard_normal(audio.shape).astype(np.float32)])
    out = PitchShiftConverter(per_channel=per_channel).convert(stereo, SAMPLE_RATE, track, 12.0)
    assert out.shape == stereo.shape and out.dtype == np.float32
    gap = region((NOTE1[1] + 0.015, NOTE2[0] - 0.015))
    np.testing.assert_array_equal(out[:, gap], stereo[:, gap])  # each channel's own unvoiced samples
    sl = region(INNER1)
    left, right = (np.sqrt(np.mean(out[c, sl] ** 2)) for c in range(2))
    if per_channel:
        assert 0.4 < right / left < 0.6  # each channel keeps its level
    else:
        np.testing.assert_array_equal(out[0, sl], out[1, sl])  # converted mean on every channel


def test_mono_1d_input_accepted(vocal):
    audio, track = vocal
    out = PitchShiftConverter().convert(audio[0], SAMPLE_RATE, track, 2.0)
    assert out.shape == audio.shape


# --- errors --------------------------------------------------------------------------------------

def test_bad_inputs(vocal):
    audio, track = vocal
    conv = PitchShiftConverter()
    with pytest.raises(InvalidAudioError, match=r"shape \(1, 2, 3\)"):
        conv.convert(np.zeros((1, 2, 3), np.float32), SAMPLE_RATE, track, 1.0)
    bad = audio.copy()
    bad[0, 5] = np.nan
    with pytest.raises(InvalidAudioError, match="NaN"):
        conv.convert(bad, SAMPLE_RATE, track, 1.0)
    with pytest.raises(UserInputError, match="semitones"):
        conv.convert(audio, SAMPLE_RATE, track, float("nan"))
    with pytest.raises(UserInputError, match="semitones"):
        conv.convert(audio, SAMPLE_RATE, track, 48.0)
    with pytest.raises(UserInputError, match="sample_rate"):
        conv.convert(audio, 22050.0, track, 1.0)
    with pytest.raises(UserInputError, match="PitchTrack"):
        conv.convert(audio, SAMPLE_RATE, np.zeros(10), 1.0)


# --- options -------------------------------------------------------------------------------------

def test_coarse_aperiodicity_grid(vocal, shifted):
    """D4C on a coarser grid (faster) gives nearly the same output."""
    audio, track = vocal
    out = PitchShiftConverter(aperiodicity_period=15.0).convert(audio, SAMPLE_RATE, track, 12.0)
    assert out.shape == audio.shape and np.all(np.isfinite(out))
    sl = region(INNER1)
    diff = out[0, sl] - shifted[12.0][0, sl]
    assert np.sqrt(np.mean(diff**2)) < 0.2 * np.sqrt(np.mean(out[0, sl] ** 2))


def test_level_match_gain():
    from singvc.converters.pitch_shift import level_match_gain

    rng = np.random.default_rng(2)
    x = rng.standard_normal(8000)
    gain = level_match_gain(x, 0.5 * x, 8000)
    assert gain.shape == x.shape
    np.testing.assert_allclose(gain[100:-100], 2.0, rtol=1e-6)
    assert level_match_gain(x, 1e-6 * x, 8000, max_gain_db=12.0).max() <= 10 ** (12 / 20) + 1e-9


def test_crossfade_weight_stretch_equals_the_whole(tmp_path):
    """Any stretch [start, stop) of the weight, computed alone, equals that stretch of the whole
    weight, which is the running mean of the voiced mask over ``fade`` samples."""
    from singvc.converters.pitch_shift import crossfade_weight

    rng = np.random.default_rng(4)
    for _ in range(200):
        n, fade = int(rng.integers(1, 600)), int(rng.integers(0, 40))
        edges = np.sort(rng.integers(0, n + 1, size=2 * int(rng.integers(0, 5))))
        runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b > a]
        mask = np.zeros(n)
        for a, b in runs:
            mask[a:b] = 1.0
        if fade <= 1:
            slow = mask
        else:  # weight[k] = mean of mask[k - fade // 2 : k - fade // 2 + fade], zero outside
            padded = np.concatenate([np.zeros(fade), mask, np.zeros(fade)])
            slow = np.array([padded[fade + k - fade // 2: fade + k - fade // 2 + fade].mean() for k in range(n)])
        whole = crossfade_weight(runs, n, fade)
        np.testing.assert_allclose(whole, slow, atol=1e-12)
        a = int(rng.integers(0, n)); b = int(rng.integers(a, n + 1))
        np.testing.assert_array_equal(crossfade_weight(runs, n, fade, a, b), whole[a:b])
