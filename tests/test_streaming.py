"""Flat memory: a cover written through disk buffers (cover_file, no --daw) holds exactly what the
in-memory pipeline gives, and a failed run leaves neither outputs nor working files behind."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import SONG_RATE, synth_song, write_voice_clip
from singvc.audio import DiskAudio, load_audio
from singvc.cache import Cache
from singvc.errors import InvalidAudioError
from singvc.pipeline import CoverSettings, Singvc, cover_file
from singvc.separate import build_tiny_model


@pytest.fixture(scope="module")
def engine(tiny_crepe):
    settings = CoverSettings(pitch_model="tiny", bit_depth="32f", separator_model="tiny")
    return Singvc(settings, cache=Cache(enabled=False), separator_model=build_tiny_model(),
                  pitch_model=tiny_crepe)


@pytest.mark.parametrize("separation, key_change", [(True, False), (False, False), (True, True)])
def test_cover_through_disk_equals_cover_in_memory(tmp_path, engine, separation, key_change):
    song = synth_song(3.0, seed=2)
    song_path, voice_path = tmp_path / "song.wav", tmp_path / "voice.wav"
    sf.write(str(song_path), song.T, SONG_RATE, subtype="FLOAT")
    write_voice_clip(voice_path)
    run = engine.with_settings(separation=separation)
    if key_change:  # the instrumental is transposed too, through the working folder
        run = run.with_settings(transpose=3.0, shift_instrumental=True)
    report = cover_file(song_path, tmp_path / "out", voice_path, engine=run)
    reference, reference_rate = load_audio(voice_path)
    mem = run.cover(song, SONG_RATE, reference, reference_rate)
    for name, audio in mem.stems().items():
        written, rate = load_audio(tmp_path / "out" / name)
        assert rate == SONG_RATE
        np.testing.assert_array_equal(written, audio, err_msg=name)
    assert report["shift_semitones"] == mem.report["shift_semitones"]
    assert report["loudness"] == mem.report["loudness"]
    assert report["plan"]["keeps_key"] is (not key_change)
    # no working folder left beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "song.wav", "voice.wav"]


def test_bad_input_leaves_no_working_files(tmp_path, engine):
    song = synth_song(1.0)
    song[0, 100] = np.nan
    song_path = tmp_path / "song.wav"
    sf.write(str(song_path), song.T, SONG_RATE, subtype="FLOAT")
    with pytest.raises(InvalidAudioError, match="NaN"):
        cover_file(song_path, tmp_path / "out", None, engine=engine.with_settings(transpose=0.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]


def test_disk_audio_reads_and_writes_slices(tmp_path):
    x = np.arange(2 * 1000, dtype=np.float32).reshape(2, 1000)
    disk = DiskAudio(tmp_path / "x.npy", shape=x.shape)
    assert not np.asarray(disk).any()  # created zero-filled
    disk[:, 10:500] = x[:, 10:500]
    disk[1, 600:] = x[1, 600:]
    expected = np.zeros_like(x)
    expected[:, 10:500] = x[:, 10:500]
    expected[1, 600:] = x[1, 600:]
    np.testing.assert_array_equal(disk[:, :], expected)
    np.testing.assert_array_equal(disk[:, 490:620], expected[:, 490:620])
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)  # a plain .npy file
    reopened = DiskAudio(tmp_path / "x.npy")
    assert reopened.shape == (2, 1000)
    np.testing.assert_array_equal(reopened[1, 995:2000], expected[1:2, 995:])
