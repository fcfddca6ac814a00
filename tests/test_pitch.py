import numpy as np
import pytest
import torch

from singvc.errors import UserInputError
from singvc.pitch import CENTS_OFFSET, PitchTrack, decode, drop_short_runs, hysteresis, track_pitch

from conftest import harmonic_tone, vibrato_f0


def fit_vibrato(times, cents, rate):
    a = np.stack([np.sin(2 * np.pi * rate * times), np.cos(2 * np.pi * rate * times), np.ones_like(times)], 1)
    coef = np.linalg.lstsq(a, cents, rcond=None)[0]
    return float(np.hypot(coef[0], coef[1]))


def test_refinement_is_cent_accurate_on_synthetic_activations():
    # activations shaped like crepe's: a Gaussian (25 cents wide) around a known pitch
    true_cents = np.linspace(4000, 4100, 50)  # continuous slide, not on bin centres
    bins = np.arange(360)
    bin_cents = 20 * bins + CENTS_OFFSET
    act = np.exp(-0.5 * ((bin_cents[None] - true_cents[:, None]) / 25) ** 2)
    f0, periodicity = decode(act)
    est = 1200 * np.log2(f0 / 10)
    assert np.max(np.abs(est - true_cents)) < 2.0
    assert np.all(periodicity > 0.5)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("rate,extent,center,min_ratio", [(5, 100, 150, 0.85), (6, 50, 220, 0.85), (8, 20, 330, 0.65)])
def test_vibrato_survives(full_crepe, rate, extent, center, min_ratio, stride):
    sample_rate = 44100
    f = vibrato_f0(center, rate, extent, 1.5, sample_rate)
    x = harmonic_tone(f, 1.5, sample_rate)
    track = track_pitch(x[None], sample_rate, full_crepe, stride=stride)
    sel = track.voiced & (track.times > 0.1) & (track.times < 1.4)
    assert sel.mean() > 0.8
    true_cents = 1200 * np.log2(np.interp(track.times, np.arange(len(f)) / sample_rate, f) / center)
    est_cents = 1200 * np.log2(track.f0 / center)
    assert np.median(np.abs(est_cents - true_cents)[sel]) < 10
    ratio = fit_vibrato(track.times[sel], est_cents[sel], rate) / extent
    # crepe's 64 ms window attenuates fast vibrato a little; no smoothing of ours may add to it
    assert min_ratio <= ratio <= 1.1
    # the contour's own spectrum peaks at the vibrato rate
    c = est_cents[sel] - est_cents[sel].mean()
    spec = np.abs(np.fft.rfft(c * np.hanning(len(c)), 4096))
    freqs = np.fft.rfftfreq(4096, track.hop)
    assert abs(freqs[np.argmax(spec)] - rate) < 0.3


def test_deterministic(tiny_crepe):
    x = harmonic_tone(vibrato_f0(200, 6, 60, 1.0, 16000), 1.0, 16000)
    a = track_pitch(x[None], 16000, tiny_crepe)
    b = track_pitch(x[None], 16000, tiny_crepe)
    assert np.array_equal(a.f0, b.f0) and np.array_equal(a.voiced, b.voiced)


def test_silence_and_noise_are_unvoiced(tiny_crepe):
    sample_rate = 22050
    silence = np.zeros((1, sample_rate), np.float32)
    assert not track_pitch(silence, sample_rate, tiny_crepe).voiced.any()
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal((2, sample_rate)) * 0.1).astype(np.float32)
    assert track_pitch(noise, sample_rate, tiny_crepe).voiced.mean() < 0.2


def test_frame_grid_and_save_load(tmp_path, tiny_crepe):
    sample_rate = 48000
    x = harmonic_tone(220.0, 0.75, sample_rate)
    track = track_pitch(np.stack([x, x]), sample_rate, tiny_crepe)
    assert len(track) == 1 + int(0.75 * 16000) // 160
    assert track.hop == pytest.approx(0.01)
    assert np.median(track.voiced_f0) == pytest.approx(220, rel=0.01)
    path = track.save(tmp_path / "t.npz")
    back = PitchTrack.load(path)
    assert np.array_equal(back.f0, track.f0) and np.array_equal(back.voiced, track.voiced) and back.hop == track.hop
    assert np.allclose(track.shifted(12).f0, 2 * track.f0)


def test_hysteresis_and_short_runs():
    v = np.array([0.1, 0.6, 0.4, 0.35, 0.2, 0.45, 0.7, 0.1])
    assert hysteresis(v, 0.5, 0.3).tolist() == [False, True, True, True, False, False, True, False]
    m = np.array([1, 1, 0, 1, 0, 1, 1, 1], bool)
    assert drop_short_runs(m, 2).tolist() == [True, True, False, False, False, True, True, True]


def test_banded_viterbi_equals_librosa_reference():
    import librosa

    from singvc.pitch import _transition, viterbi_banded

    rng = np.random.default_rng(1)
    trans = _transition()
    for _ in range(3):
        obs = rng.uniform(0, 1, (200, 360)) ** 8 + 1e-8
        obs /= obs.sum(axis=1, keepdims=True)
        assert np.array_equal(viterbi_banded(obs, trans), librosa.sequence.viterbi(obs.T, trans))


def test_skipping_quiet_frames_changes_nothing_voiced(tiny_crepe):
    sample_rate = 16000
    tone = harmonic_tone(vibrato_f0(250, 5, 40, 0.6, sample_rate), 0.6, sample_rate)
    x = np.concatenate([tone, np.zeros(sample_rate, np.float32), tone])[None]
    a = track_pitch(x, sample_rate, tiny_crepe, skip_silence=False)
    b = track_pitch(x, sample_rate, tiny_crepe, skip_silence=True)
    assert len(a) == len(b) and np.array_equal(a.voiced, b.voiced)
    # the Viterbi path may differ on the last frames before a silence (it sees other activations
    # there), by less than a bin; everywhere else the result is the same up to float rounding
    # (the network sees other batches, which may take other BLAS kernels: ~1e-6 cents)
    diff = np.abs(1200 * np.log2(a.f0 / b.f0))[a.voiced]
    assert np.mean(diff < 1e-3) > 0.95 and diff.max() < 20
    assert not b.voiced[(b.times > 0.75) & (b.times < 1.45)].any()


def test_onnx_backend_matches_torch(tmp_path, tiny_crepe):
    from singvc.pitch import OnnxCrepe, load_pitch_model

    onnx_model = load_pitch_model("tiny", backend="onnx", cache_dir=tmp_path)
    assert isinstance(onnx_model, OnnxCrepe) and onnx_model.path.exists()
    import torch

    frames = torch.randn(64, 1024)
    with torch.inference_mode():
        expected = tiny_crepe(frames).numpy()
    assert np.max(np.abs(onnx_model(frames).numpy() - expected)) < 1e-4
    x = harmonic_tone(vibrato_f0(300, 6, 40, 1.0, 22050), 1.0, 22050)[None]
    a, b = track_pitch(x, 22050, onnx_model), track_pitch(x, 22050, tiny_crepe)
    assert np.array_equal(a.voiced, b.voiced)
    assert np.max(np.abs(1200 * np.log2(a.f0 / b.f0))[a.voiced]) < 1.0
    # a second load reuses the exported file
    again = load_pitch_model("tiny", backend="onnx", cache_dir=tmp_path)
    assert again.path == onnx_model.path


class CountingModel(torch.nn.Module):
    """Wraps a crepe model and counts the frames it is given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.frames = model, 0

    def forward(self, x):
        self.frames += len(x)
        return self.model(x)


def test_stride_runs_the_network_on_fewer_frames_and_fills_the_rest(tiny_crepe):
    sample_rate = 16000
    x = harmonic_tone(vibrato_f0(260, 5.5, 60, 2.0, sample_rate), 2.0, sample_rate)[None]
    counts = {}
    tracks = {}
    for stride in (1, 2, 3):
        model = CountingModel(tiny_crepe)
        tracks[stride] = track_pitch(x, sample_rate, model, stride=stride, skip_silence=False)
        counts[stride] = model.frames
    n = len(tracks[1])
    # every stride-th frame, plus the last one
    assert [counts[s] for s in (1, 2, 3)] == [n] + [len(range(0, n, s)) + ((n - 1) % s != 0) for s in (2, 3)]
    a = tracks[1]
    for stride in (2, 3):
        b = tracks[stride]
        assert len(b) == n and b.hop == a.hop
        both = a.voiced & b.voiced
        assert both.mean() > 0.9
        diff = np.abs(1200 * np.log2(b.f0 / a.f0))[both]
        assert np.median(diff) < 3 and np.percentile(diff, 95) < 15, (stride, np.median(diff))
    # the frames the network saw are decoded exactly as without a stride
    b = tracks[2]
    same = a.voiced[::2] & b.voiced[::2]
    assert np.median(np.abs(1200 * np.log2(b.f0[::2] / a.f0[::2]))[same]) < 0.5
    with pytest.raises(UserInputError):
        track_pitch(x, sample_rate, tiny_crepe, stride=0)
