"""No silent clipping, no non-finite output, strict JSON.

A float input above 0 dBFS (or a converter output above full scale) is turned down, never clipped,
in PCM outputs: the stems that belong together by one headroom gain (in the report), the mix under
its true-peak ceiling; 32-bit float output keeps the level. NaN/inf results raise and leave nothing.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import harmonic_tone, synth_song, vibrato_f0
from singvc.audio import BLOCK, PCM_PEAK_DBFS, headroom_gain_db, save_audio
from singvc.cli import main
from singvc.converters import CONVERTERS, Converter
from singvc.errors import ClippingError, NonFiniteResultError
from singvc.jsonio import dumps, json_safe
from singvc.loudness import remix, true_peak_dbtp
from singvc.midi import Melody, Note, melody_to_midi
from singvc.jsonio import write_json
from singvc.pitch import PitchTrack

RATE = 44100
#: int32 codes libsndfile gives the extreme samples of a 24-bit file read as int32
PCM24_TOP, PCM24_BOTTOM = 0x7FFFFF00, -0x80000000


def strict_loads(text: str):
    """json.loads that fails on NaN / Infinity / -Infinity instead of accepting them."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def hot_vocal(seconds: float = 2.0, gain: float = 4.0) -> np.ndarray:
    """A stereo sung tone whose samples reach ±``gain`` (+12 dBFS for 4)."""
    tone = harmonic_tone(vibrato_f0(220, 5.5, 40, seconds, RATE), seconds, RATE, level=1.0)
    return (np.stack([tone, 0.9 * tone]) * np.float32(gain)).astype(np.float32)


def clipped_share(path) -> float:
    """Share of samples of a 24-bit WAV sitting at the top or bottom code (what clipping leaves)."""
    assert sf.info(str(path)).subtype == "PCM_24"
    codes, _ = sf.read(str(path), dtype="int32")
    return float(np.mean((codes >= PCM24_TOP) | (codes <= PCM24_BOTTOM)))


def read(path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == RATE
    return data.T


def run_args(*extra) -> list[str]:
    return ["--no-separation", "--pitch-model", "tiny", "--no-cache", "--quiet", *extra]


@pytest.fixture
def hot_wav(tmp_path):
    path = tmp_path / "hot.wav"
    sf.write(str(path), hot_vocal().T, RATE, subtype="FLOAT")
    return path


# -- the whole run ---------------------------------------------------------------------------------
@pytest.mark.parametrize("converter, extra", [("pitch", ["--transpose", "12"]), ("none", ["--transpose", "0"]),
                                              ("pitch", ["--transpose", "0", "--daw"])])
def test_hot_float_vocal_is_turned_down_not_clipped(tmp_path, hot_wav, converter, extra):
    out = tmp_path / "out"
    assert main(["cover", str(hot_wav), "-o", str(out), "--converter", converter, *run_args(*extra)]) == 0
    report = strict_loads((out / "report.json").read_text())
    wavs = sorted(out.rglob("*.wav"))
    assert len(wavs) == (8 if "--daw" in extra else 4)
    for wav in wavs:
        assert clipped_share(wav) == 0.0, wav.name
    # the mix keeps its true-peak ceiling, and that ceiling is under full scale for PCM
    mix_info = report["loudness"]["mix"]
    assert mix_info["capped"] and mix_info["ceiling_dbtp"] <= 0.0
    assert true_peak_dbtp(read(out / "mix.wav"), RATE) <= mix_info["ceiling_dbtp"] + 0.01
    # one headroom gain for the stems, recorded and announced
    gain = report["headroom_gain_db"]
    assert gain == report["headroom"]["gain_db"] and gain < -12.0
    assert set(report["headroom"]["applies_to"]) == {"vocals_converted.wav", "vocals_original.wav",
                                                     "instrumental.wav"}
    assert any("written" in w and "lower" in w for w in report["warnings"])
    assert any("mix peaked" in w for w in report["warnings"])
    # the recorded gain is what the written original vocal got
    original = read(out / "vocals_original.wav")
    expected = hot_vocal() * np.float32(10 ** (gain / 20))
    assert np.max(np.abs(original - expected)) < 1e-4
    # the mix is still converted + instrumental, up to the mix gain (relative to the stems)
    stems = read(out / "vocals_converted.wav") + read(out / "instrumental.wav")
    mix = read(out / "mix.wav")
    k = float(np.sum(mix.astype(np.float64) * stems) / np.sum(stems.astype(np.float64) ** 2))
    assert 20 * np.log10(k) == pytest.approx(mix_info["gain_db"] - gain, abs=0.005)
    residual = mix - k * stems
    assert 10 * np.log10(np.sum(residual.astype(np.float64) ** 2) / np.sum(mix.astype(np.float64) ** 2)) < -70
    if "--daw" in extra:
        manifest = strict_loads((out / "session" / "session.json").read_text())
        assert manifest["headroom_gain_db"] == pytest.approx(gain, abs=1e-3)
        gains = {s["role"]: s["gain_db"] for s in manifest["stems"]}
        assert gains.pop("mix") == 0.0 and all(g == pytest.approx(gain, abs=1e-3) for g in gains.values())
        np.testing.assert_array_equal(read(out / "session" / "04_mix.wav"), mix)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hot.wav", "out"]  # no hidden folders left


def test_float_output_keeps_the_level_and_says_so(tmp_path, hot_wav):
    out = tmp_path / "out"
    assert main(["cover", str(hot_wav), "-o", str(out), "--converter", "none", "--bit-depth", "32f",
                 *run_args("--transpose", "0")]) == 0
    report = strict_loads((out / "report.json").read_text())
    assert report["headroom_gain_db"] == 0.0 and report["headroom"]["sample_format"] == "float"
    assert "nothing scaled" in report["headroom"]["note"]
    assert any("32-bit float" in w for w in report["warnings"])
    assert not report["loudness"]["mix"]["capped"]
    np.testing.assert_array_equal(read(out / "vocals_original.wav"), hot_vocal())  # bit-equal, +12 dBFS
    np.testing.assert_array_equal(read(out / "mix.wav"), hot_vocal())  # the song's own peak is its ceiling


def test_input_within_full_scale_is_written_unchanged(tmp_path):
    quiet = hot_vocal(gain=0.5)
    path = tmp_path / "quiet.wav"
    sf.write(str(path), quiet.T, RATE, subtype="PCM_24")  # exactly representable in the output too
    out = tmp_path / "out"
    assert main(["cover", str(path), "-o", str(out), "--converter", "none", *run_args("--transpose", "0")]) == 0
    report = strict_loads((out / "report.json").read_text())
    assert report["headroom_gain_db"] == 0.0 and not report["loudness"]["mix"]["capped"]
    assert not [w for w in report["warnings"] if "full scale" in w]
    source = read(path)
    for name in ("vocals_original.wav", "vocals_converted.wav", "mix.wav"):
        np.testing.assert_array_equal(read(out / name), source, err_msg=name)


def test_separate_and_stems_turn_a_hot_song_down_together(tmp_path, tiny_separator_repo):
    song = synth_song(2.0) * np.float32(5.0)  # about +9 dBFS
    path = tmp_path / "song.wav"
    sf.write(str(path), song.T, RATE, subtype="FLOAT")
    args = ["--separator-model", "tiny", "--separator-repo", str(tiny_separator_repo), "--no-cache", "--quiet"]
    assert main(["separate", str(path), "-o", str(tmp_path / "sep"), *args]) == 0
    vocals, inst = read(tmp_path / "sep" / "vocals.wav"), read(tmp_path / "sep" / "instrumental.wav")
    assert clipped_share(tmp_path / "sep" / "vocals.wav") == 0 == clipped_share(tmp_path / "sep" / "instrumental.wav")
    k = float(np.sum((vocals + inst).astype(np.float64) * song) / np.sum(song.astype(np.float64) ** 2))
    assert k < 10 ** (-8 / 20)  # turned down together: they still add up to the (quieter) song
    assert np.max(np.abs(vocals + inst - k * song)) < 1e-4

    assert main(["stems", str(path), "-o", str(tmp_path / "ses"), "--no-midi", *args]) == 0
    manifest = strict_loads((tmp_path / "ses" / "session.json").read_text())
    assert manifest["headroom_gain_db"] < -8
    assert manifest["headroom_warning"].startswith("above full scale for 24-bit PCM: the stems peak at")
    for wav in (tmp_path / "ses").glob("*.wav"):
        assert clipped_share(wav) == 0.0, wav.name
    song_stem = next(s["file"] for s in manifest["stems"] if s["role"] == "mix")
    np.testing.assert_allclose(read(tmp_path / "ses" / song_stem),
                               song * np.float32(10 ** (manifest["headroom_gain_db"] / 20)), atol=1e-4)


# -- non-finite results ------------------------------------------------------------------------------
class NaNConverter(Converter):
    """A converter whose output has NaN samples (a numerical failure)."""

    name = "pitch"

    def convert(self, audio, sample_rate, track, semitones, progress=False, out=None, **kwargs):
        result = np.array(audio[:, :], dtype=np.float32)
        result[:, 1000:1012] = np.nan
        return result


def test_converter_nan_is_an_error_and_leaves_nothing(tmp_path, hot_wav, monkeypatch, capsys):
    monkeypatch.setitem(CONVERTERS, "pitch", NaNConverter)
    out = tmp_path / "out"
    rc = main(["cover", str(hot_wav), "-o", str(out), "--converter", "pitch", *run_args("--transpose", "0")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 70
    assert len(err) == 1 and "converted vocal has 24 NaN" in err[0] and "nothing was written" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hot.wav"]  # no output, no hidden folders


def test_save_audio_refuses_nan_and_leaves_the_old_file(tmp_path):
    target = tmp_path / "x.wav"
    save_audio(target, np.zeros((1, 100), np.float32), RATE)
    before = target.read_bytes()
    audio = np.zeros((2, BLOCK + 500), np.float32)
    audio[1, BLOCK + 10] = np.inf  # in the second block: the first is already in the temp file
    audio[0, 3] = np.nan
    with pytest.raises(NonFiniteResultError, match="2 NaN or infinite"):
        save_audio(target, audio, RATE)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.wav"]


def test_save_audio_never_clips_pcm(tmp_path):
    audio = np.array([[0.5, -1.0, 1.0, 0.25]], np.float32)
    save_audio(tmp_path / "full.wav", audio, RATE)  # ±1.0 is full scale: written
    hot = np.array([[0.5, 1.5, -2.0, 0.25]], np.float32)
    for depth in ("16", "24"):
        with pytest.raises(ClippingError, match=r"2 samples beyond full scale.*\+6\.02 dBFS"):
            save_audio(tmp_path / f"hot{depth}.wav", hot, RATE, depth)
    save_audio(tmp_path / "hot32.wav", hot, RATE, "32f")
    np.testing.assert_array_equal(read(tmp_path / "hot32.wav"), hot)
    # with the headroom gain the same audio fits, and is written scaled
    gain = headroom_gain_db(20 * np.log10(2.0), "24")
    assert gain == pytest.approx(PCM_PEAK_DBFS - 6.0206, abs=1e-3) and headroom_gain_db(6.0, "32f") == 0.0
    save_audio(tmp_path / "fit.wav", hot, RATE, "24", gain_db=gain)
    np.testing.assert_allclose(read(tmp_path / "fit.wav"), hot * 10 ** (gain / 20), atol=2e-7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.wav", "full.wav", "hot32.wav"]


def test_remix_ceiling_stays_under_full_scale_for_pcm():
    hot = hot_vocal(1.0)
    silence = np.zeros_like(hot)
    peak = true_peak_dbtp(hot, RATE)
    assert peak > 11.5
    mix, info = remix(hot, silence, RATE, -1.0, input_true_peak_dbtp=peak, max_ceiling_dbtp=PCM_PEAK_DBFS)
    assert info.capped and info.ceiling_dbtp == PCM_PEAK_DBFS
    assert true_peak_dbtp(mix, RATE) <= PCM_PEAK_DBFS + 1e-3 and np.max(np.abs(mix)) < 1.0
    same, info = remix(hot, silence, RATE, -1.0, input_true_peak_dbtp=peak)  # float output: as before
    assert not info.capped and np.array_equal(same, hot)
    quiet, info = remix(hot * 0.1, silence, RATE, -1.0, input_true_peak_dbtp=peak - 20, max_ceiling_dbtp=PCM_PEAK_DBFS)
    assert not info.capped and not info.limited and np.array_equal(quiet, hot * 0.1)


def test_pitch_track_with_nan_is_not_written(tmp_path):
    n = 50
    track = PitchTrack(times=np.arange(n) * 0.01, f0=np.full(n, 220.0), periodicity=np.full(n, 0.9),
                       voiced=np.ones(n, bool), hop=0.01, model="tiny")
    track.save(tmp_path / "ok.npz")
    track.f0[7] = np.nan
    with pytest.raises(NonFiniteResultError, match="1 in f0"):
        track.save(tmp_path / "bad.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]


def test_melody_with_nan_makes_no_midi():
    melody = Melody(notes=[Note(0.0, 0.5, 60), Note(0.5, float("nan"), 62)], bend_times=np.zeros(0),
                    bend_semitones=np.zeros(0))
    with pytest.raises(NonFiniteResultError, match="note times"):
        melody_to_midi(melody, 120.0)
    melody_to_midi(Melody(notes=[Note(0.0, 0.5, 60)]), 120.0)


# -- strict JSON -------------------------------------------------------------------------------------
def test_write_json_turns_non_finite_numbers_into_null(tmp_path):
    data = {"a": float("nan"), "b": [1.0, float("inf"), {"c": np.float32("-inf")}], "d": np.float64(2.5),
            "e": np.array([1.0, np.nan]), "f": (np.int64(3), np.bool_(True)), 4: tmp_path / "p",
            "g": {"h": [np.float16("nan")]}}
    write_json(tmp_path / "r.json", data)
    back = strict_loads((tmp_path / "r.json").read_text())
    assert back == {"a": None, "b": [1.0, None, {"c": None}], "d": 2.5, "e": [1.0, None], "f": [3, True],
                    "4": str(tmp_path / "p"), "g": {"h": [None]}}
    assert json_safe(float("nan")) is None and strict_loads(dumps([np.inf])) == [None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_non_finite_pitch_track_is_neither_cached_nor_used(tmp_path, monkeypatch):
    import singvc.engine
    from singvc.cache import Cache
    from singvc import Singvc

    n = 40
    bad = PitchTrack(times=np.arange(n) * 0.01, f0=np.full(n, np.nan), periodicity=np.zeros(n),
                     voiced=np.zeros(n, bool), hop=0.01, model="tiny")
    monkeypatch.setattr(singvc.engine, "track_pitch", lambda *a, **k: bad)
    engine = Singvc(cache=Cache(tmp_path / "cache"), pitch_model=object())
    with pytest.raises(NonFiniteResultError, match="40 in f0"):
        engine.track(hot_vocal(0.5, 0.5), RATE)
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_loud_pcm_master_comes_back_unchanged_but_a_hot_float_song_gets_the_ceiling():
    """A master whose samples fit PCM but whose true peak is above 0 dBTP (inter-sample peaks) is
    returned bit-equal; a song beyond full scale gets the ordinary -1 dBTP ceiling."""
    from singvc.audio import peak_dbfs

    t = np.arange(RATE) / RATE
    # a tone at fs/4 with a 45-degree phase: samples at +-0.707 of the wave's peak, so scaled to a
    # sample peak of 0.999 its true peak is about +3 dBTP
    master = (0.999 / np.sin(np.pi / 4) * np.sin(2 * np.pi * (RATE / 4) * t + np.pi / 4)).astype(np.float32)[None]
    assert peak_dbfs(master) <= 0.0
    tp = true_peak_dbtp(master, RATE)
    assert tp > 2.0
    silence = np.zeros_like(master)
    same, info = remix(master, silence, RATE, -1.0, input_true_peak_dbtp=tp, max_ceiling_dbtp=PCM_PEAK_DBFS,
                       input_peak_dbfs=peak_dbfs(master))
    assert np.array_equal(same, master) and not info.capped and not info.limited
    hot = 4.0 * master
    mix, info = remix(hot, silence, RATE, -1.0, input_true_peak_dbtp=true_peak_dbtp(hot, RATE),
                      max_ceiling_dbtp=PCM_PEAK_DBFS, input_peak_dbfs=peak_dbfs(hot))
    assert info.capped and info.ceiling_dbtp == -1.0
    assert true_peak_dbtp(mix, RATE) <= -1.0 + 0.05
