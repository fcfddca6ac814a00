"""End to end through the CLI: tiny random Demucs in a local repo, crepe `tiny`, synthetic audio."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import soundfile as sf

from singvc.audio import load_audio
from singvc.cli import main

from conftest import harmonic_tone, synth_song, vibrato_f0, write_voice_clip

RATE = 44100


def db(residual: np.ndarray, reference: np.ndarray) -> float:
    return 10 * np.log10(np.sum(residual.astype(np.float64) ** 2) / np.sum(reference.astype(np.float64) ** 2) + 1e-30)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_separator_repo):
    root = tmp_path_factory.mktemp("cli")
    repo = tiny_separator_repo
    song = root / "song.wav"
    sf.write(str(song), synth_song().T, RATE, subtype="FLOAT")
    voice = root / "voice.flac"
    write_voice_clip(voice)
    vocal = root / "vocal.wav"
    sf.write(str(vocal), harmonic_tone(vibrato_f0(200, 6, 50, 1.5, RATE), 1.5, RATE), RATE, subtype="FLOAT")
    return {"root": root, "repo": repo, "song": song, "voice": voice, "vocal": vocal, "cache": root / "cache"}


def base_args(files) -> list[str]:
    return ["--separator-model", "tiny", "--separator-repo", str(files["repo"]), "--pitch-model", "tiny",
            "--cache-dir", str(files["cache"]), "--quiet"]


def test_cover_null_tests_and_outputs(files, tmp_path):
    out = tmp_path / "out"
    rc = main(["cover", str(files["song"]), "--voice", str(files["voice"]), "-o", str(out), "--converter", "none",
               *base_args(files)])
    assert rc == 0
    song, _ = load_audio(files["song"])
    wavs = {name: sf.info(str(out / name)) for name in
            ("mix.wav", "vocals_converted.wav", "vocals_original.wav", "instrumental.wav")}
    assert {(i.samplerate, i.frames, i.channels, i.subtype) for i in wavs.values()} == {
        (RATE, song.shape[1], 2, "PCM_24")}
    mix, _ = load_audio(out / "mix.wav")
    vocals, _ = load_audio(out / "vocals_original.wav")
    inst, _ = load_audio(out / "instrumental.wav")
    assert db(vocals + inst - song, song) < -80
    assert db(mix - song, song) < -60
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["converter"] == "none"
    assert report["plan"]["target"]["source"] == "reference"
    assert report["plan"]["semitones"] % 12 == 0
    for key in ("separation", "pitch", "convert", "loudness_remix", "write", "load"):
        assert key in report["seconds"]
    assert report["versions"]["torchcrepe"] != "not installed"
    assert sorted(p.name for p in out.iterdir()) == sorted(report["outputs"])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_second_run_hits_cache_and_pitch_converter_runs(files, tmp_path):
    args = base_args(files)
    assert main(["cover", str(files["song"]), "--target-range", "C4-C5", "-o", str(tmp_path / "a"), *args]) == 0
    assert main(["cover", str(files["song"]), "--transpose", "12", "-o", str(tmp_path / "b"), *args]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["cache_hits"] == {"separation": True, "pitch": True, "split": True}
    assert report["shift_semitones"] == 12 and report["plan"]["mode"] == "manual"
    mix, _ = load_audio(tmp_path / "b" / "mix.wav")
    assert np.all(np.isfinite(mix)) and mix.shape[1] == int(3.0 * RATE)


def test_no_separation_pitch_shift_moves_the_pitch(files, tmp_path, tiny_crepe):
    from singvc.pitch import track_pitch

    out = tmp_path / "o"
    assert main(["cover", str(files["vocal"]), "--no-separation", "--transpose", "12", "-o", str(out),
                 *base_args(files)]) == 0
    src, _ = load_audio(files["vocal"])
    conv, _ = load_audio(out / "vocals_converted.wav")
    assert conv.shape == src.shape
    a, b = track_pitch(src, RATE, tiny_crepe), track_pitch(conv, RATE, tiny_crepe)
    both = a.voiced & b.voiced
    assert both.sum() > 0.9 * a.voiced.sum()
    assert np.median(12 * np.log2(b.f0[both] / a.f0[both])) == pytest.approx(12, abs=0.1)


def test_user_stems_and_key_change(files, tmp_path):
    vocal, inst = files["vocal"], files["root"] / "inst.wav"
    sf.write(str(inst), (0.1 * np.sin(2 * np.pi * 110 * np.arange(RATE) / RATE)).astype(np.float32), RATE)
    out = tmp_path / "o"
    assert main(["cover", "--vocals", str(vocal), "--instrumental", str(inst), "--transpose", "3",
                 "--shift-instrumental", "-o", str(out), *base_args(files)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["source"] == "stems" and report["plan"]["keeps_key"] is False
    assert not report["warnings"]


def test_single_stage_commands(files, tmp_path, capsys):
    args = base_args(files)
    assert main(["separate", str(files["song"]), "-o", str(tmp_path / "stems"), *args]) == 0
    assert {p.name for p in (tmp_path / "stems").iterdir()} == {"vocals.wav", "instrumental.wav"}
    track = tmp_path / "t.npz"
    assert main(["pitch", str(files["vocal"]), "-o", str(track), "--csv", str(tmp_path / "t.csv"), *args]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("time_s,f0_hz")
    capsys.readouterr()
    assert main(["plan", str(track), "--target-range", "C2-C3", *args[:-1]]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["semitones"] == -12 and plan["mode"] == "key-lock"


def _bad_inputs(root):
    empty = root / "empty.wav"
    empty.write_bytes(b"")
    text = root / "notes.wav"
    text.write_text("not audio\n" * 100)
    short = root / "short.wav"
    sf.write(str(short), harmonic_tone(220.0, 0.3, RATE), RATE)
    silent = root / "silent.wav"
    sf.write(str(silent), np.zeros(3 * RATE, np.float32), RATE)
    nan = root / "nan.wav"
    x = synth_song(1.0)
    x[0, 100] = np.nan
    sf.write(str(nan), x.T, RATE, subtype="FLOAT")
    return {"missing song": ("song", root / "nope.wav"), "non-audio song": ("song", text),
            "empty song": ("song", empty), "short reference": ("voice", short),
            "silent reference": ("voice", silent), "NaN samples": ("song", nan)}


@pytest.mark.parametrize("case", ["missing song", "non-audio song", "empty song", "short reference",
                                  "silent reference", "NaN samples"])
def test_user_errors_are_one_line_and_leave_nothing(files, tmp_path, capsys, case):
    which, path = _bad_inputs(tmp_path)[case]
    song = path if which == "song" else files["song"]
    voice = path if which == "voice" else files["voice"]
    out = tmp_path / "out"
    out.mkdir()
    capsys.readouterr()
    rc = main(["cover", str(song), "--voice", str(voice), "-o", str(out), *base_args(files)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("singvc: error:")
    assert "Traceback" not in err
    assert list(out.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_offline_without_weights_fails_fast_with_hint(files, tmp_path, monkeypatch, capsys):
    import singvc.weights as weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(weights, "reachable_hosts", lambda hosts, timeout: set())
    start = time.perf_counter()
    rc = main(["cover", str(files["song"]), "--no-cache", "--quiet", "-o", str(tmp_path / "out")])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 3 and elapsed < 10
    assert len(err.strip().splitlines()) == 1
    assert "--separator-repo" in err and str(tmp_path / "torch") in err
    assert not (tmp_path / "out").exists()


def test_reference_is_tracked_with_the_reference_model(files, tmp_path):
    from singvc import CoverSettings, Singvc
    from singvc.cache import Cache

    engine = Singvc(CoverSettings(pitch_model="full", reference_pitch_model="tiny"),
                    cache=Cache(tmp_path / "cache"))
    ref, rate = load_audio(files["voice"])
    register = engine.target_register(ref, rate)
    assert register.source == "reference"
    assert list(engine._pitch_models) == ["tiny"]  # the full model was never loaded
