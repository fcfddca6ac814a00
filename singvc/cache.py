"""Content-addressed cache for the slow stages (separation, pitch tracking).

An entry's key is the SHA-256 of the input audio (samples, shape, sample rate) together with the
stage's settings, so a second run on the same song with another voice or shift skips separation
and pitch tracking, while any change of input or settings misses. Entries are ``.npz`` files
written atomically; a damaged entry counts as a miss.

Location: ``$SINGVC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/singvc``, else ``~/.cache/singvc``;
the CLI's ``--cache-dir DIR`` overrides it and ``--no-cache`` turns caching off.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """The cache folder used when none is given."""
    if os.environ.get("SINGVC_CACHE_DIR"):
        return Path(os.environ["SINGVC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "singvc"


def audio_digest(audio: np.ndarray, sample_rate: int) -> str:
    """SHA-256 hex digest of float32 ``[channels, samples]`` audio and its rate."""
    arr = np.ascontiguousarray(audio, dtype=np.float32)
    h = hashlib.sha256()
    h.update(f"{arr.shape}:{sample_rate}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


class Cache:
    """Stores arrays under ``root/<kind>/<key>.npz``. ``enabled=False`` makes every lookup a miss."""

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled

    def path(self, kind: str, digest: str, settings: dict) -> Path:
        blob = json.dumps({"v": CACHE_VERSION, "digest": digest, "settings": settings}, sort_keys=True, default=str)
        return self.root / kind / f"{hashlib.sha256(blob.encode()).hexdigest()[:40]}.npz"

    def load(self, kind: str, digest: str, settings: dict) -> dict[str, np.ndarray] | None:
        """The stored arrays, or ``None`` on a miss."""
        if not self.enabled:
            return None
        path = self.path(kind, digest, settings)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except Exception:  # damaged or partial entry: drop it, count as a miss
            path.unlink(missing_ok=True)
            return None

    def save(self, kind: str, digest: str, settings: dict, arrays: dict[str, np.ndarray]) -> Path | None:
        """Store ``arrays``; failures to write (full disk, read-only folder) are ignored."""
        if not self.enabled:
            return None
        path = self.path(kind, digest, settings)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".entry.", suffix=".npz", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except OSError:
            return None
        return path
