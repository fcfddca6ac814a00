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
from singvc import CoverSettings, Singvc, cover_file
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


def test_feature_through_disk_equals_feature_in_memory(tmp_path, engine, monkeypatch):
    """A vocal feature assembled block by block in a working folder (as `singvc run` does) gives
    the same vocal and mix as the in-memory assembly, across block edges and overlapping fades."""
    import singvc.feature as feature
    from singvc.feature import FeatureOptions, Section, VoiceSpec, render_feature

    song = synth_song(3.0, seed=4)
    write_voice_clip(tmp_path / "voice.wav")
    reference, reference_rate = load_audio(tmp_path / "voice.wav")
    run = engine.with_settings(separation=False)
    voices = {"guest": VoiceSpec(profile=run.voice_profile(reference, reference_rate, name="guest"), transpose=12.0)}
    sections = [Section(voice="guest", time="0:00.2-0:01.4"),
                Section(voice="guest", time="0:01.4-0:02.5", layer="duet", pan=-0.4, level_db=-2.0)]
    options = FeatureOptions(snap_seconds=0.0)
    mem = render_feature(run, song, SONG_RATE, sections, voices, options=options)

    monkeypatch.setattr(feature, "blocks", lambda n, block=20_011: ((a, min(n, a + block)) for a in range(0, n, block)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    disk = render_feature(run, _to_disk(song, scratch / "song.npy"), SONG_RATE, sections, voices,
                          options=options, scratch=scratch)
    assert isinstance(disk.vocals_converted, DiskAudio)
    np.testing.assert_array_equal(np.asarray(disk.vocals_converted), mem.vocals_converted)
    np.testing.assert_array_equal(np.asarray(disk.mix), mem.mix)
    assert disk.report["sections"] == mem.report["sections"]
    assert sorted(p.name for p in scratch.iterdir() if p.is_dir()) == []  # section folders removed


def _to_disk(audio: np.ndarray, path) -> DiskAudio:
    disk = DiskAudio(path, shape=audio.shape)
    disk[:, :] = audio
    return disk


def test_section_weight_window_is_a_slice_of_the_whole():
    from singvc.feature import section_weight

    whole = section_weight(1000, 200, 700, 64)
    for window in ((0, 1000), (150, 260), (690, 720), (0, 10), (990, 1000)):
        np.testing.assert_array_equal(section_weight(1000, 200, 700, 64, window=window), whole[window[0]:window[1]])
