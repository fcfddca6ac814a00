"""Content-addressed cache for the slow stages (separation, pitch tracking).

An entry's key is the SHA-256 of the input audio (samples, shape, sample rate) together with the
stage's settings, so a second run on the same song with another voice or shift skips separation
and pitch tracking, while any change of input or settings misses. Entries are ``.npz`` files
(pitch tracks, whose zip members carry a CRC-32) or folders of ``.npy`` audio read in place
(separated stems) with a ``manifest.json`` giving each file's size, shape and SHA-256, written
atomically. Every read is verified: a damaged entry (truncated, changed, a stem missing) is dropped
with a one-line :class:`~singvc.errors.SingvcWarning` and counts as a miss, so the stage is computed
again; a folder without a manifest (written before manifests existed) is a miss too.

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
import warnings
from pathlib import Path

import numpy as np

from .audio import DiskAudio, blocks
from .errors import InvalidAudioError, OutputError, SingvcWarning, UserInputError
from .run import atomic_write, write_text
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
#: the file in an audio entry listing its files with their size, shape and SHA-256
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
#: bytes read at a time when checksumming a file
HASH_BLOCK = 1 << 20


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
    gb = parse_gigabytes(value)
    if gb is None:
        raise UserInputError(f"SINGVC_CACHE_MAX_GB must be a finite number of GB >= 0 (got {value!r})")
    return int(gb * 1e9)


def parse_gigabytes(text: str) -> float | None:
    """A cache size limit in GB read from text, or ``None`` when it is not a finite number >= 0
    (NaN and inf included: inf overflowed into an internal error)."""
    try:
        gb = float(text)
    except ValueError:
        return None
    return gb if 0 <= gb < 1e6 else None


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


def file_checksum(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": hex digest}`` of a file, read in blocks of :data:`HASH_BLOCK`."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_BLOCK):
            h.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": h.hexdigest()}


def write_checksum(path: str | os.PathLike, sidecar: str | os.PathLike) -> None:
    """Write ``path``'s :func:`file_checksum` as JSON to ``sidecar`` (through a temporary file and a
    rename, so the sidecar is whole or absent)."""
    write_text(sidecar, json.dumps(file_checksum(path)))


def check_file(path: str | os.PathLike, sidecar: str | os.PathLike) -> str | None:
    """Why ``path`` does not match the checksum in ``sidecar`` (from :func:`write_checksum`), or
    ``None`` when it does. A missing or unreadable sidecar is a reason too."""
    path = Path(path)
    try:
        expected = json.loads(Path(sidecar).read_text())
        want_bytes, want_hash = int(expected["bytes"]), str(expected["sha256"])
    except FileNotFoundError:
        return "no checksum"
    except (OSError, ValueError, KeyError, TypeError):
        return "checksum file unreadable"
    try:
        size = path.stat().st_size
        if size != want_bytes:
            return f"{'truncated' if size < want_bytes else 'too long'}: {size} of {want_bytes} bytes"
        if file_checksum(path)["sha256"] != want_hash:
            return "checksum mismatch"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return None


def _check_stem(path: Path, expected: dict) -> str | None:
    """Why the stem file at ``path`` does not match its manifest record, or ``None``."""
    name = path.name
    try:
        shape, want_bytes, hashes = tuple(expected["shape"]), int(expected["bytes"]), list(expected["sha256"])
    except (KeyError, TypeError, ValueError):
        return f"{name}: manifest record unreadable"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{name} missing"
    except OSError as exc:
        return f"{name} unreadable ({exc.strerror or exc})"
    if size != want_bytes:
        return f"{name} {'truncated' if size < want_bytes else 'too long'} ({size} of {want_bytes} bytes)"
    try:
        audio = DiskAudio(path)
        audio.close()
    except (OSError, ValueError, InvalidAudioError):
        return f"{name} header unreadable"
    if audio.shape != shape or len(hashes) != shape[0]:
        return f"{name} has shape {audio.shape}, expected {shape}"
    row_bytes = shape[1] * audio.dtype.itemsize
    offset = size - shape[0] * row_bytes  # the samples fill the end of the file, channel after channel
    with open(path, "rb") as fh:
        fh.seek(offset)
        for channel, want in enumerate(hashes):
            h, left = hashlib.sha256(), row_bytes
            while left > 0:
                chunk = fh.read(min(HASH_BLOCK, left))
                if not chunk:
                    return f"{name} truncated while read"
                h.update(chunk)
                left -= len(chunk)
            if h.hexdigest() != want:
                return f"{name} checksum mismatch (channel {channel})"
    return None


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
        for path in models.glob("*.onnx*") if models.is_dir() else ():  # the models and their checksums
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

    def drop(self, path: Path, reason: str) -> None:
        """Remove the damaged entry at ``path``, warning once (``SingvcWarning``) with ``reason``."""
        warnings.warn(f"cache entry {path.parent.name}/{path.name} was damaged ({reason}); recomputing",
                      SingvcWarning, stacklevel=3)
        _remove(path)

    def load(self, kind: str, digest: str, settings: dict,
             keys: "tuple[str, ...] | None" = None) -> dict[str, np.ndarray] | None:
        """The stored arrays, or ``None`` on a miss. A damaged entry (unreadable, a member's CRC
        wrong, or one of ``keys`` missing) is dropped with a warning and is a miss."""
        if not self.enabled:
            return None
        path = self.path(kind, digest, settings)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except Exception as exc:  # damaged or partial entry: drop it, count as a miss
            self.drop(path, " ".join(f"{type(exc).__name__}: {exc}".split()))
            return None
        missing = [k for k in keys or () if k not in arrays]
        if missing:
            self.drop(path, f"{', '.join(missing)} missing")
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
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
            if manifest.get("version") != MANIFEST_VERSION or not isinstance(files, dict) or not files:
                raise ValueError("unknown manifest")
        except FileNotFoundError:  # written before entries had manifests: unverifiable, a miss
            _remove(folder)
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.drop(folder, f"{MANIFEST} unreadable")
            return None
        for name, expected in files.items():
            reason = (f"{name}: not a stem file" if Path(name).name != name or not name.endswith(".npy")
                      else _check_stem(folder / name, expected))
            if reason:
                self.drop(folder, reason)
                return None
        try:
            stems = {Path(name).stem: DiskAudio(folder / name) for name in files}
        except (OSError, ValueError, InvalidAudioError) as exc:  # changed since it was checked
            self.drop(folder, f"unreadable ({exc})")
            return None
        self._touch(folder)
        return stems

    def save_audio(self, kind: str, digest: str, settings: dict,
                   audio: dict[str, "np.ndarray | DiskAudio"]) -> Path | None:
        """Store audio buffers as ``.npy`` files in one folder, copied block by block (bounded
        memory), so that :meth:`load_audio` can read them in place, with a :data:`MANIFEST` of
        every file's size, shape and per-channel SHA-256 (hashed while copying); failures to write
        are ignored."""
        if not self.enabled:
            return None
        folder = self.path(kind, digest, settings).with_suffix("")
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".entry.", dir=folder.parent))
            files = {}
            write_owner(tmp)  # a killed run's unfinished entry is removed once the run is gone
            for name, buffer in audio.items():
                shape = tuple(int(n) for n in buffer.shape)
                copy = DiskAudio(tmp / f"{name}.npy", shape=shape)
                hashes = [hashlib.sha256() for _ in range(shape[0])]
                for a, b in blocks(shape[1]):
                    block = np.ascontiguousarray(buffer[:, a:b], dtype=np.float32)
                    copy[:, a:b] = block
                    for h, row in zip(hashes, block):
                        h.update(memoryview(row).cast("B"))
                copy.close()
                files[f"{name}.npy"] = {"shape": list(shape), "bytes": (tmp / f"{name}.npy").stat().st_size,
                                        "sha256": [h.hexdigest() for h in hashes]}
            (tmp / MANIFEST).write_text(json.dumps({"version": MANIFEST_VERSION, "files": files}, indent=1))
            (tmp / OWNER_FILE).unlink(missing_ok=True)
            _remove(folder)
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
            with atomic_write(path, suffix=".npz") as tmp:
                np.savez(tmp, **arrays)
        except OutputError:  # the cache is an optimisation: a full or read-only disk is not an error
            return None
        self._touch(path)
        self.prune()
        return path
