"""Content-addressed cache for the slow stages (separation, pitch tracking).

An entry's key is the SHA-256 of the input audio (samples, shape, sample rate) together with the
stage's settings, so a second run on the same song with another voice or shift skips separation
and pitch tracking, while any change of input or settings misses. Entries are ``.npz`` files
(pitch tracks) or folders of ``.npy`` audio read in place (separated stems), written atomically;
a damaged entry counts as a miss.

Location: ``$SINGVC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/singvc``, else ``~/.cache/singvc``;
the CLI's ``--cache-dir DIR`` overrides it and ``--no-cache`` turns caching off.

Size: the cache keeps itself under a limit (``$SINGVC_CACHE_MAX_GB``, default
:data:`DEFAULT_MAX_GB`): after each new entry the least recently used entries are removed (an
entry counts as used when it is written or read), never those of the song at hand.
``singvc cache`` shows, prunes or clears it.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .audio import DiskAudio, blocks
from .errors import InvalidAudioError, OutputError, UserInputError
from .runfolders import OWNER_FILE, ORPHAN_STALE_SECONDS, is_stale, write_owner

CACHE_VERSION = 1
#: the stages whose results are cached (one subfolder each)
KINDS = ("separation", "pitch")
#: default size limit in GB (10⁹ bytes); a separated 3.5-minute song takes about 0.3 GB
DEFAULT_MAX_GB = 20.0
#: pruning spares the entries this process used last (the song at hand: stems and pitch tracks)
SPARED_ENTRIES = 8
#: an unfinished entry file (``.entry.*.npz``) untouched this many seconds was left by a killed run
#: (an unfinished entry folder holds its run's owner file: removed once that run is gone)
STALE_SECONDS = ORPHAN_STALE_SECONDS


def default_cache_dir() -> Path:
    """The cache folder used when none is given."""
    if os.environ.get("SINGVC_CACHE_DIR"):
        return Path(os.environ["SINGVC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "singvc"


def default_max_bytes() -> int:
    """The size limit used when none is given: ``$SINGVC_CACHE_MAX_GB`` or :data:`DEFAULT_MAX_GB`."""
    value = os.environ.get("SINGVC_CACHE_MAX_GB")
    if not value:
        return int(DEFAULT_MAX_GB * 1e9)
    try:
        gb = float(value)
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise UserInputError(f"SINGVC_CACHE_MAX_GB must be a number of GB >= 0 (got {value!r})")
    return int(gb * 1e9)


def _entry_size(path: Path) -> int:
    """Bytes of an entry (a file, or a folder of files)."""
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> None:
    """Delete an entry; a folder is first renamed out of the way (one atomic step), so that a
    lookup never finds it half deleted (where the rename fails, the entry stays whole)."""
    if path.is_dir():
        gone = path.with_name(f".entry.removing-{path.name}")
        try:
            os.replace(path, gone)
        except OSError:
            return
        shutil.rmtree(gone, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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
    """Stores arrays under ``root/<kind>/<key>.npz`` (audio: ``<key>/`` folders of ``.npy``).

    Args:
        root: the cache folder (default :func:`default_cache_dir`).
        enabled: ``False`` makes every lookup a miss and writes nothing.
        max_bytes: size limit kept after each write (default :func:`default_max_bytes`).
    """

    def __init__(self, root: str | os.PathLike | None = None, enabled: bool = True,
                 max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        if self.max_bytes < 0:
            raise UserInputError(f"cache size limit must be >= 0 bytes (got {max_bytes})")
        self._used: collections.deque[Path] = collections.deque(maxlen=SPARED_ENTRIES)

    def entries(self) -> list[tuple[Path, str, int, float]]:
        """Every finished entry as ``(path, kind, bytes, last used as a Unix time)``, oldest first."""
        found = []
        for kind in KINDS:
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if path.name.startswith("."):
                    continue
                try:
                    used = path.stat().st_mtime
                except OSError:
                    continue
                found.append((path, kind, _entry_size(path), used))
        return sorted(found, key=lambda e: e[3])

    def size(self) -> int:
        """Bytes held by finished entries."""
        return sum(e[2] for e in self.entries())

    def prune(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Remove the least recently used entries until the cache holds at most ``max_bytes``
        (default: this cache's limit), sparing the :data:`SPARED_ENTRIES` entries this object
        read or wrote last, and unfinished entries left by killed runs older than a day. Returns ``(entries removed, bytes freed)``."""
        limit = self.max_bytes if max_bytes is None else int(max_bytes)
        removed, freed = 0, self._remove_stale()
        entries = self.entries()
        total = sum(e[2] for e in entries)
        for path, _kind, size, _used in entries:
            if total <= limit:
                break
            if path in self._used:
                continue
            _remove(path)
            total -= size
            removed += 1
            freed += size
        return removed, freed

    def clear(self) -> tuple[int, int]:
        """Remove every entry, unfinished ones left by killed runs and the exported pitch models;
        returns ``(entries removed, bytes freed)``."""
        removed, freed = 0, self._remove_stale()
        for path, _kind, size, _used in self.entries():
            _remove(path)
            removed, freed = removed + 1, freed + size
        models = self.root / "models"
        for path in models.glob("*.onnx") if models.is_dir() else ():
            freed += _entry_size(path)
            path.unlink(missing_ok=True)
        return removed, freed

    def _remove_stale(self) -> int:
        """Remove unfinished entries left by killed runs (a folder whose owner run is gone, see
        :func:`~singvc.runfolders.is_stale`; a file untouched for :data:`STALE_SECONDS`); returns
        the bytes freed."""
        freed, now = 0, time.time()
        for kind in KINDS:
            folder = self.root / kind
            for path in folder.glob(".entry.*") if folder.is_dir() else ():
                try:
                    stale = is_stale(path, now) if path.is_dir() else now - path.stat().st_mtime > STALE_SECONDS
                except OSError:
                    continue
                if stale:
                    freed += _entry_size(path)
                    _remove(path)
        return freed

    def _touch(self, path: Path) -> None:
        """Mark ``path`` as used now (its mtime orders the pruning) and spare it in this process."""
        if path in self._used:
            self._used.remove(path)
        self._used.append(path)
        try:
            os.utime(path)
        except OSError:
            pass

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
                arrays = {k: data[k] for k in data.files}
        except Exception:  # damaged or partial entry: drop it, count as a miss
            path.unlink(missing_ok=True)
            return None
        self._touch(path)
        return arrays

    def load_audio(self, kind: str, digest: str, settings: dict) -> dict[str, DiskAudio] | None:
        """Stored audio (from :meth:`save_audio`) opened in place as read-only
        :class:`~singvc.audio.DiskAudio`, or ``None`` on a miss."""
        if not self.enabled:
            return None
        folder = self.path(kind, digest, settings).with_suffix("")
        if not folder.is_dir():
            return None
        try:
            stems = {p.stem: DiskAudio(p) for p in sorted(folder.glob("*.npy"))}
        except (OSError, ValueError, InvalidAudioError):  # damaged entry: drop it, count as a miss
            shutil.rmtree(folder, ignore_errors=True)
            return None
        self._touch(folder)
        return stems

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
            write_owner(tmp)  # a killed run's unfinished entry is removed once the run is gone
            for name, buffer in audio.items():
                copy = DiskAudio(tmp / f"{name}.npy", shape=tuple(buffer.shape))
                for a, b in blocks(buffer.shape[1]):
                    copy[:, a:b] = buffer[:, a:b]
                copy.close()
            (tmp / OWNER_FILE).unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except (OSError, OutputError):
            if "tmp" in locals():
                shutil.rmtree(tmp, ignore_errors=True)
            return None
        self._touch(folder)
        self.prune()
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
        self._touch(path)
        self.prune()
        return path
