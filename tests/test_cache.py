"""The cache keeps itself under its size limit, least recently used first, and never a half entry."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from singvc.cache import STALE_SECONDS, Cache, default_max_bytes
from singvc.cli import main
from singvc.errors import UserInputError

ENTRY = {"f0": np.zeros(25_000, np.float32)}  # 100 kB of payload per entry


def _age(path, seconds_ago: float) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def test_prune_removes_least_recently_used_first(tmp_path):
    writer = Cache(tmp_path)
    paths = [writer.save("pitch", f"song{i}", {}, ENTRY) for i in range(3)]
    for i, p in enumerate(paths):  # song0 oldest ... song2 newest
        _age(p, 300 - 100 * i)
    size = paths[0].stat().st_size

    # another run reads song0: it becomes the most recently used
    reader = Cache(tmp_path)
    assert reader.load("pitch", "song0", {}) is not None
    # a third run, limited to three entries, writes a fourth: song1 (now the oldest) goes
    limited = Cache(tmp_path, max_bytes=3 * size)
    new = limited.save("pitch", "song3", {}, ENTRY)
    assert sorted(p.exists() for p in paths) == [False, True, True] and not paths[1].exists()
    assert new.exists() and limited.size() <= 3 * size
    assert limited.load("pitch", "song1", {}) is None  # a miss, not an error


def test_prune_spares_what_this_run_uses(tmp_path):
    cache = Cache(tmp_path, max_bytes=0)  # a limit smaller than one entry
    first = cache.save("pitch", "a", {}, ENTRY)
    second = cache.save("pitch", "b", {}, ENTRY)
    assert first.exists() and second.exists()  # both belong to the song at hand
    removed, freed = Cache(tmp_path, max_bytes=0).prune()
    assert (removed, not first.exists(), not second.exists()) == (2, True, True) and freed > 0


def test_audio_entries_are_pruned_whole(tmp_path):
    stems = {"vocals": np.ones((2, 1000), np.float32), "instrumental": np.zeros((2, 1000), np.float32)}
    Cache(tmp_path).save_audio("separation", "song", {}, stems)
    cache = Cache(tmp_path)
    loaded = cache.load_audio("separation", "song", {})
    assert sorted(loaded) == ["instrumental", "vocals"] and np.all(loaded["vocals"][:, :] == 1)
    assert cache.entries()[0][2] >= 2 * 2 * 1000 * 4
    assert Cache(tmp_path, max_bytes=0).prune()[0] == 1
    assert os.listdir(tmp_path / "separation") == []  # nothing half deleted left behind
    assert cache.load_audio("separation", "song", {}) is None


def test_stale_unfinished_entries_go_fresh_ones_stay(tmp_path):
    folder = tmp_path / "pitch"
    folder.mkdir()
    stale, fresh = folder / ".entry.old.npz", folder / ".entry.new.npz"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"x" * 10)
    _age(stale, STALE_SECONDS + 60)
    Cache(tmp_path).prune()
    assert not stale.exists() and fresh.exists()


def test_clear_leaves_foreign_files(tmp_path):
    cache = Cache(tmp_path)
    cache.save("pitch", "a", {}, ENTRY)
    cache.save_audio("separation", "b", {}, {"vocals": np.ones((1, 10), np.float32)})
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "crepe-tiny.onnx").write_bytes(b"onnx")
    (tmp_path / "notes.txt").write_text("mine")
    removed, _ = cache.clear()
    assert removed == 2 and cache.entries() == []
    assert not (tmp_path / "models" / "crepe-tiny.onnx").exists() and (tmp_path / "notes.txt").exists()


def test_size_limit_from_environment(monkeypatch):
    monkeypatch.setenv("SINGVC_CACHE_MAX_GB", "1.5")
    assert default_max_bytes() == 1_500_000_000
    monkeypatch.setenv("SINGVC_CACHE_MAX_GB", "lots")
    with pytest.raises(UserInputError, match="SINGVC_CACHE_MAX_GB"):
        Cache()


def test_cache_command(tmp_path, capsys):
    cache = Cache(tmp_path)
    for name in ("a", "b"):
        _age(cache.save("pitch", name, {}, ENTRY), 100 if name == "a" else 0)
    assert main(["cache", "--cache-dir", str(tmp_path)]) == 0
    assert "2 entries" in capsys.readouterr().out
    size = cache.entries()[0][2]
    assert main(["cache", "prune", "--max-gb", str(1.5 * size / 1e9), "--cache-dir", str(tmp_path)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert [e[0].name for e in Cache(tmp_path).entries()] == [cache.path("pitch", "b", {}).name]
    assert main(["cache", "prune", "--max-gb", "-1", "--cache-dir", str(tmp_path)]) == 2
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert Cache(tmp_path).entries() == []


def test_no_cache_leaves_no_exported_model_behind(tmp_path, monkeypatch):
    """With the cache off, crepe's ONNX export goes to a throw-away folder, removed once loaded."""
    import tempfile

    from singvc import CoverSettings, Singvc

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    engine = Singvc(CoverSettings(pitch_model="tiny", pitch_backend="onnx"), cache=Cache(enabled=False))
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    track, hit = engine.track(tone, 16000)
    assert not hit and track.voiced.mean() > 0.9
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "lots", "1e300"])
def test_cache_limit_from_the_environment_must_be_finite(monkeypatch, value):
    from singvc.errors import UserInputError

    monkeypatch.setenv("SINGVC_CACHE_MAX_GB", value)
    with pytest.raises(UserInputError, match="SINGVC_CACHE_MAX_GB"):
        default_max_bytes()
