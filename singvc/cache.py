"""Content-addressed cache for the slow stages (separation, pitch tracking).

An entry's key is the SHA-256 of the input audio (samples, shape, sample rate) together with the
stage's settings, so a second run on the same song with another voice or shift skips separation
and pitch tracking, while any change of input or settings misses. Entries are ``.npz`` files
(pitch tracks) or folders of ``.npy`` audio read in place (separated stems), written atomically;
a damaged entry counts as a miss.

Location: ``$SINGVC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/singvc``, else ``~/.cache/singvc``;
the CLI's ``--cache-dir DIR`` overrides it and ``--no-cache`` turns caching off.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .audio import DiskAudio, blocks
from .errors import InvalidAudioError, OutputError

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """The cache folder used when none is given."""
    if os.environ.get("SINGVC_CACHE_DIR"):
        return Path(os.environ["SINGVC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "singvc"


def audio_digest(audio: "np.ndarray | DiskAudio", sample_rate: int) -> str:
    """SHA-256 hex digest of float32 ``[channels, samples]`` audio and its rate (read block by
    block: a :class:`~singvc.audio.DiskAudio` gives the digest of the same array in memory)."""
    if not isinstance(audio, DiskAudio):
        audio = np.ascontiguousarray(audio, dtype=np.float32)
    h = hashlib.sha256()
    h.update(f"{tuple(audio.shape)}:{sample_rate}".encode())
    for c in range(audio.shape[0]):
        for a, b in blocks(audio.shape[1]):
            h.update(memoryview(np.ascontiguousarray(audio[c:c + 1, a:b], dtype=np.float32)).cast("B"))
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

    def load_audio(self, kind: str, digest: str, settings: dict) -> dict[str, DiskAudio] | None:
        """Stored audio (from :meth:`save_audio`) opened in place as read-only
        :class:`~singvc.audio.DiskAudio`, or ``None`` on a miss."""
        if not self.enabled:
            return None
        folder = self.path(kind, digest, settings).with_suffix("")
        if not folder.is_dir():
            return None
        try:
            return {p.stem: DiskAudio(p) for p in sorted(folder.glob("*.npy"))}
        except (OSError, ValueError, InvalidAudioError):  # damaged entry: drop it, count as a miss
            shutil.rmtree(folder, ignore_errors=True)
            return None

    def save_audio(self, kind: str, digest: str, settings: dict,
                   audio: dict[str, "np.ndarray | DiskAudio"]) -> Path | None:
        """Store audio buffers as ``.npy`` files in one folder, copied block by block (bounded
        memory), so that :meth:`load_audio` can read them in place; failures to write are ignored."""
        if not self.enabled:
            return None
        folder = self.path(kind, digest, settings).with_suffix("")
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".entry.", dir=folder.parent))
            for name, buffer in audio.items():
                copy = DiskAudio(tmp / f"{name}.npy", shape=tuple(buffer.shape))
                for a, b in blocks(buffer.shape[1]):
                    copy[:, a:b] = buffer[:, a:b]
                copy.close()
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except (OSError, OutputError):
            if "tmp" in locals():
                shutil.rmtree(tmp, ignore_errors=True)
            return None
        return folder

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
