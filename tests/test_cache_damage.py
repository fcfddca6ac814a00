"""A damaged cache entry is a miss: detected on read, dropped with one warning, recomputed.

Each case damages one part of a cache filled by a clean run (a stem truncated or changed in place,
a stem deleted, the pitch track truncated or changed, the exported crepe model truncated); the next
run must give the clean run's result, warn exactly once naming the damaged entry, and leave a
good entry behind (a third run hits the cache without a warning).
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SONG_RATE, synth_song
from singvc.cache import MANIFEST, Cache, check_file, write_checksum
from singvc.cli import main
from singvc.errors import SingvcWarning
from singvc import CoverSettings, Singvc

SETTINGS = dict(separator_model="tiny", pitch_model="tiny", pitch_backend="onnx", converter="pitch",
                transpose=3.0)


@pytest.fixture(scope="module")
def separator(tiny_separator_repo):
    from singvc.separate import load_separator_model

    return load_separator_model("tiny", repo=tiny_separator_repo)


@pytest.fixture(scope="module")
def song():
    return synth_song(seconds=2.0)


def run(cache_dir: Path, separator, song):
    """One engine run (every Demucs stem kept), returning ``(result, SingvcWarning messages)``."""
    engine = Singvc(CoverSettings(**SETTINGS), cache=Cache(cache_dir), separator_model=separator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = engine.cover(song, SONG_RATE, keep_stems=True)
    return result, [str(w.message) for w in caught if issubclass(w.category, SingvcWarning)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory, separator, song):
    """A cache filled by a clean run, and that run's result."""
    cache_dir = tmp_path_factory.mktemp("clean") / "cache"
    result, caught = run(cache_dir, separator, song)
    assert caught == [] and result.report["cache_hits"] == {"separation": False, "pitch": False, "split": False}
    return cache_dir, result


def only(paths) -> Path:
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # inside the samples / the zip member
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def stem_entry(cache_dir: Path) -> Path:
    return only(p for p in (cache_dir / "separation").iterdir() if not p.name.startswith("."))


def pitch_entry(cache_dir: Path) -> Path:
    return only((cache_dir / "pitch").glob("*.npz"))


def onnx_model(cache_dir: Path) -> Path:
    return only((cache_dir / "models").glob("*.onnx"))


DAMAGE = {  # case -> (damage it, the entry the warning must name)
    "stem truncated": (lambda c: truncate(stem_entry(c) / "vocals.npy"), stem_entry),
    "stem changed in place": (lambda c: flip(stem_entry(c) / "other.npy"), stem_entry),
    "stem missing": (lambda c: (stem_entry(c) / "drums.npy").unlink(), stem_entry),
    "pitch truncated": (lambda c: truncate(pitch_entry(c)), pitch_entry),
    "pitch changed in place": (lambda c: flip(pitch_entry(c)), pitch_entry),
    # the model is read only to track pitch: the pitch entry goes too (as pruning might do)
    "onnx truncated": (lambda c: (truncate(onnx_model(c)), pitch_entry(c).unlink()), onnx_model),
}


def assert_same_result(a, b) -> None:
    for name in ("mix", "vocals_converted", "vocals_original", "instrumental"):
        assert np.array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))), name
    assert sorted(a.separated) == sorted(b.separated) == ["bass", "drums", "other", "vocals"]
    for name in a.separated:
        assert np.array_equal(np.asarray(a.separated[name]), np.asarray(b.separated[name])), name
    assert np.array_equal(a.pitch.f0, b.pitch.f0, equal_nan=True)


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_entry_is_dropped_and_recomputed(case, clean, separator, song, tmp_path):
    clean_dir, clean_result = clean
    cache_dir = tmp_path / "cache"
    shutil.copytree(clean_dir, cache_dir)
    damage, entry_of = DAMAGE[case]
    name = entry_of(cache_dir).name
    damage(cache_dir)

    result, caught = run(cache_dir, separator, song)
    assert len(caught) == 1, caught
    assert name in caught[0] and "damaged" in caught[0] and "\n" not in caught[0]
    assert_same_result(result, clean_result)
    hits = result.report["cache_hits"]
    assert hits["separation"] is not case.startswith("stem") and hits["pitch"] is case.startswith("stem")

    # the cache holds a good entry again: the next run hits it, silently, with the same result
    again, caught = run(cache_dir, separator, song)
    assert caught == [] and again.report["cache_hits"] == {"separation": True, "pitch": True, "split": True}
    assert_same_result(again, clean_result)
    assert not [p for kind in ("separation", "pitch") for p in (cache_dir / kind).iterdir() if p.name.startswith(".")]


def test_entry_without_manifest_is_a_silent_miss(clean, separator, song, tmp_path):
    """A stem folder written by singvc before manifests existed: not verifiable, so a miss (not an
    error and not a warning), replaced by a verified entry."""
    clean_dir, clean_result = clean
    cache_dir = tmp_path / "cache"
    shutil.copytree(clean_dir, cache_dir)
    (stem_entry(cache_dir) / MANIFEST).unlink()
    result, caught = run(cache_dir, separator, song)
    hits = result.report["cache_hits"]
    assert caught == [] and (hits["separation"], hits["pitch"]) == (False, True)
    assert_same_result(result, clean_result)
    assert (stem_entry(cache_dir) / MANIFEST).exists()


def test_old_format_entry_and_unreadable_manifest_at_the_cache_level(tmp_path):
    cache = Cache(tmp_path)
    stems = {"vocals": np.ones((2, 500), np.float32), "drums": np.zeros((2, 500), np.float32)}
    folder = cache.save_audio("separation", "song", {}, stems)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["drums.npy", "vocals.npy"]
    assert manifest["files"]["vocals.npy"]["shape"] == [2, 500] and len(manifest["files"]["vocals.npy"]["sha256"]) == 2

    (folder / MANIFEST).write_text("{not json")
    with pytest.warns(SingvcWarning, match=f"separation/{folder.name}.*{MANIFEST} unreadable"):
        assert cache.load_audio("separation", "song", {}) is None
    assert not folder.exists()

    folder.mkdir()  # the old layout: bare .npy files
    for name, audio in stems.items():
        np.save(folder / f"{name}.npy", audio)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load_audio("separation", "song", {}) is None
    assert not folder.exists()


def test_stems_that_do_not_match_the_model_are_dropped(clean, separator, song, tmp_path):
    """A verified entry holding other stems than the loaded model yields (here: one stem fewer, with
    a manifest to match) is not used for a DAW session without them."""
    clean_dir, clean_result = clean
    cache_dir = tmp_path / "cache"
    shutil.copytree(clean_dir, cache_dir)
    folder = stem_entry(cache_dir)
    (folder / "bass.npy").unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    del manifest["files"]["bass.npy"]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    result, caught = run(cache_dir, separator, song)
    assert len(caught) == 1 and folder.name in caught[0] and "bass" in caught[0]
    assert_same_result(result, clean_result)


def test_onnx_checksum_sidecar(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x" * 1000)
    sidecar = tmp_path / "m.onnx.json"
    assert check_file(model, sidecar) == "no checksum"
    write_checksum(model, sidecar)
    assert check_file(model, sidecar) is None
    model.write_bytes(b"x" * 999 + b"y")
    assert check_file(model, sidecar) == "checksum mismatch"
    model.write_bytes(b"x" * 10)
    assert check_file(model, sidecar).startswith("truncated")


def test_export_without_checksum_is_redone_silently(tmp_path):
    """An export from before checksums existed is exported again (no warning), then verified."""
    from singvc.pitch import load_pitch_model, onnx_checksum_path

    first = load_pitch_model("tiny", backend="onnx", cache_dir=tmp_path)
    onnx_checksum_path(first.path).unlink()
    first.path.write_bytes(first.path.read_bytes()[:100])  # damaged too: must not be used
    with warnings.catch_warnings():
        warnings.simplefilter("error", SingvcWarning)
        again = load_pitch_model("tiny", backend="onnx", cache_dir=tmp_path)
    assert check_file(again.path, onnx_checksum_path(again.path)) is None


@pytest.fixture(scope="module")
def cli_setup(tmp_path_factory, tiny_separator_repo):
    root = tmp_path_factory.mktemp("cli_damage")
    path = root / "song.wav"
    sf.write(str(path), synth_song(seconds=2.0).T, SONG_RATE, subtype="FLOAT")
    args = ["--separator-model", "tiny", "--separator-repo", str(tiny_separator_repo), "--pitch-model", "tiny",
            "--pitch-backend", "onnx", "--converter", "pitch", "--transpose", "3", "--daw", "--quiet"]
    return root, path, args


@pytest.mark.parametrize("case", ["stem missing", "stem truncated"])
def test_cli_run_after_damage(case, cli_setup, tmp_path, capsys):
    """Through the CLI: a deleted drums.npy no longer drops the drums from the DAW session, a
    truncated stem is no longer exit 70; one warning line, same outputs as a clean run."""
    root, path, args = cli_setup
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["cover", str(path), "-o", str(tmp_path / "clean"), *args, *cache]) == 0
    capsys.readouterr()
    folder = stem_entry(tmp_path / "cache")
    if case == "stem missing":
        (folder / "drums.npy").unlink()
    else:
        truncate(folder / "vocals.npy")

    assert main(["cover", str(path), "-o", str(tmp_path / "after"), *args, *cache]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("singvc: warning: cache entry separation/" + folder.name)
    for name in ("mix.wav", "vocals_converted.wav", "session/03_drums.wav"):
        a, _ = sf.read(str(tmp_path / "clean" / name))
        b, _ = sf.read(str(tmp_path / "after" / name))
        assert np.array_equal(a, b), name
    session = json.loads((tmp_path / "after" / "session" / "session.json").read_text())
    assert "drums" in [s["role"] for s in session["stems"]]
    assert main(["cover", str(path), "-o", str(tmp_path / "third"), *args, *cache]) == 0
    assert "warning" not in capsys.readouterr().err
    assert json.loads((tmp_path / "third" / "report.json").read_text())["cache_hits"]["separation"] is True
