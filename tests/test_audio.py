import numpy as np
import pytest
import soundfile as sf

from singvc.audio import as_audio, fit_length, load_audio, match_channels, resample, save_audio
from singvc.errors import AudioLoadError, InvalidAudioError, OutputError


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 96000, 192000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_round_trip_24_bit(tmp_path, sample_rate, channels):
    rng = np.random.default_rng(channels)
    audio = (rng.uniform(-0.9, 0.9, (channels, 1001))).astype(np.float32)
    path = save_audio(tmp_path / "x.wav", audio, sample_rate)
    back, rate = load_audio(path)
    assert rate == sample_rate and back.shape == audio.shape and back.dtype == np.float32
    assert np.max(np.abs(back - audio)) < 2 ** -22
    assert sf.info(str(path)).subtype == "PCM_24"


@pytest.mark.parametrize("bit_depth,subtype,tol", [("16", "PCM_16", 2 ** -14), ("32f", "FLOAT", 0.0)])
def test_other_bit_depths(tmp_path, bit_depth, subtype, tol):
    audio = np.linspace(-0.5, 0.5, 999, dtype=np.float32)[None]
    path = save_audio(tmp_path / "x.wav", audio, 48000, bit_depth)
    assert sf.info(str(path)).subtype == subtype
    back, _ = load_audio(path)
    assert np.max(np.abs(back - audio)) <= tol


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_reads_compressed_formats(tmp_path, fmt, ext):
    sample_rate = 44100
    t = np.arange(sample_rate) / sample_rate
    audio = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 330 * t)]).astype(np.float32) * 0.3
    path = tmp_path / f"x.{ext}"
    sf.write(str(path), audio.T, sample_rate, format=fmt)
    back, rate = load_audio(path)
    assert rate == sample_rate and back.shape[0] == 2
    assert abs(back.shape[1] - sample_rate) < 3000  # mp3 adds encoder padding
    assert np.sqrt(np.mean(back ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.1)


def test_no_partial_file_left_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sf.SoundFile, "write", broken)  # the writer fails mid-file
    with pytest.raises(OutputError):
        save_audio(target, np.zeros((1, 10), np.float32), 44100)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_is_atomic_rename(tmp_path):
    target = tmp_path / "out.wav"
    save_audio(target, np.zeros((1, 10), np.float32), 44100)
    save_audio(target, np.ones((1, 20), np.float32) * 0.5, 44100)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
    assert load_audio(target)[0].shape == (1, 20)


@pytest.mark.parametrize("content,error", [(None, AudioLoadError), (b"", AudioLoadError),
                                           (b"this is not audio at all" * 20, AudioLoadError)])
def test_bad_files(tmp_path, content, error):
    path = tmp_path / "song.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error) as info:
        load_audio(path)
    assert "\n" not in str(info.value)


def test_non_audio_mp3_prints_nothing(tmp_path, capfd):
    path = tmp_path / "song.mp3"
    path.write_text("hello\n" * 50)
    with pytest.raises(AudioLoadError, match="not an audio file"):
        load_audio(path)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_nan_samples_rejected(tmp_path):
    audio = np.zeros((2, 1000), np.float32)
    audio[1, 500] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), audio.T, 44100, subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="NaN"):
        load_audio(path)


def test_shape_errors_quote_the_shape():
    with pytest.raises(InvalidAudioError, match=r"\(2, 3, 4\)"):
        as_audio(np.zeros((2, 3, 4)))
    with pytest.raises(InvalidAudioError, match="channels"):
        as_audio(np.zeros((44100, 2)))  # [samples, channels] is not guessed
    assert as_audio(np.zeros(5)).shape == (1, 5)


def test_helpers():
    a = np.arange(10, dtype=np.float32)[None]
    assert fit_length(a, 4).shape == (1, 4)
    assert fit_length(a, 12)[0, -1] == 0
    assert match_channels(a, 2).shape == (2, 10)
    x = np.sin(2 * np.pi * 440 * np.arange(48000) / 48000).astype(np.float32)[None]
    y = resample(x, 48000, 16000)
    assert y.shape == (1, 16000) and y.dtype == np.float32


def test_written_files_get_the_usual_mode(tmp_path):
    """Not the private 0600 of the temporary file: a DAW under another account can open it."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = save_audio(tmp_path / "out.wav", np.zeros((1, 10), np.float32), 44100)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
