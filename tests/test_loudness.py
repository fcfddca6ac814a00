import numpy as np
import pytest

from singvc.loudness import integrated_loudness, match_loudness, remix, true_peak_dbtp

RATE = 44100


def noise(seconds, level, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(seconds * RATE))) * level).astype(np.float32)


def test_match_to_reference():
    quiet = noise(3, 0.01)
    target = integrated_loudness(noise(3, 0.1, 1), RATE)
    out, info = match_loudness(quiet, RATE, target)
    assert integrated_loudness(out, RATE) == pytest.approx(target, abs=0.1)
    assert info.gain_db == pytest.approx(20, abs=0.5)


def test_silent_vocal_gets_no_gain():
    silent = np.zeros((2, 3 * RATE), np.float32)
    out, info = match_loudness(silent, RATE, -20.0)
    assert info.gain_db == 0 and np.array_equal(out, silent) and "silent" in info.note
    tiny = noise(3, 1e-6)
    _, info = match_loudness(tiny, RATE, -20.0)
    assert info.gain_db == 0


def test_same_loudness_is_bit_exact():
    x = noise(3, 0.1)
    out, info = match_loudness(x, RATE, integrated_loudness(x, RATE))
    assert info.gain_db == 0 and np.array_equal(out, x)


def test_true_peak_sees_intersample_peaks():
    # a quarter-sample-rate sine at 45° phase: samples sit at 0.707 of the true peak
    n = np.arange(RATE)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)[None]
    assert np.max(np.abs(x)) == pytest.approx(0.7071, abs=1e-3)
    assert true_peak_dbtp(x, RATE) == pytest.approx(0.0, abs=0.2)


def test_remix_noop_when_quiet_and_limited_when_loud():
    v, i = noise(2, 0.01), noise(2, 0.01, 3)
    mix, info = remix(v, i, RATE)
    assert np.array_equal(mix, v + i) and not info.limited
    loud_v = np.clip(noise(2, 0.5), -1, 1)
    mix, info = remix(loud_v, loud_v, RATE)
    assert info.limited and true_peak_dbtp(mix, RATE) <= -1.0 + 0.05


def test_remix_keeps_an_already_loud_input_unchanged():
    v = np.clip(noise(2, 0.3), -0.99, 0.99)
    i = np.zeros_like(v)
    peak = true_peak_dbtp(v, RATE)
    assert peak > -1
    mix, info = remix(v, i, RATE, input_true_peak_dbtp=peak)
    assert np.array_equal(mix, v) and not info.limited


@pytest.mark.parametrize("sample_rate,channels,seconds", [(44100, 2, 50.3), (48000, 1, 2.7), (22050, 6, 3.1)])
def test_streamed_loudness_equals_pyloudnorm(tmp_path, sample_rate, channels, seconds):
    """The block-by-block meter gives pyloudnorm's value on the whole signal (several blocks at
    44.1 kHz), for arrays and DiskAudio alike."""
    import pyloudnorm

    from singvc.audio import DiskAudio

    rng = np.random.default_rng(channels)
    n = int(seconds * sample_rate)
    x = (0.1 * rng.standard_normal((channels, n)) * np.sin(np.linspace(0, 30, n)) ** 4).astype(np.float32)
    data = x.T if channels <= 5 else x.mean(axis=0, keepdims=True).T
    ref = pyloudnorm.Meter(sample_rate).integrated_loudness(data)
    assert integrated_loudness(x, sample_rate) == pytest.approx(ref, abs=1e-5)
    disk = DiskAudio(tmp_path / "x.npy", shape=x.shape)
    disk[:, :] = x
    assert integrated_loudness(disk, sample_rate) == pytest.approx(ref, abs=1e-5)
