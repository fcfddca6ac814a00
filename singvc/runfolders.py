"""Run plumbing below the pipeline: hidden working folders, what a killed run left behind, output
checks made before any work, and the outputs of an earlier run in the same folder.

- Every hidden folder a run makes (``.NAME.scratch-*``, ``.NAME.partial-*``, ``.NAME.old-*``,
  ``.decode-*``, cache ``.entry.*``) holds an owner file (:data:`OWNER_FILE`: pid, host, the
  process's start time, boot id and pid namespace, so a reused pid is not taken for the owner,
  and when it was made). When a run makes a new one, :func:`sweep` removes those of the same
  parent whose owner is a dead process on this host (SIGKILL, power cut); folders of other hosts
  (or containers) only when older than :data:`FOREIGN_STALE_SECONDS`, owner-less ones (killed
  before the owner file was written) when older than :data:`ORPHAN_STALE_SECONDS`. A live run's
  folders are never touched.
- :func:`check_output_dir`, :func:`check_output_file` and :func:`check_cache_dir` find output
  problems (a file where a folder belongs, a missing, read-only or full folder) before the work,
  raising :class:`~singvc.errors.OutputError` (exit 4).
- :func:`plan_aside`: outputs of an earlier run that this run does not write (a ``session/`` of an
  earlier ``--daw``, stems, a report) are moved together into ``previous-run-YYYYmmdd-HHMMSS/``.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import soundfile as sf

from .errors import OutputError

#: the owner file written into each hidden working folder
OWNER_FILE = ".singvc-owner"
#: a folder of another host is removed only when older than this (its owner cannot be asked)
FOREIGN_STALE_SECONDS = 7 * 24 * 3600.0
#: a folder without an owner file is removed when untouched for this long
ORPHAN_STALE_SECONDS = 3600.0
#: names a cover or recipe run writes into its output folder
OUTPUT_FILES = ("mix.wav", "vocals_converted.wav", "vocals_original.wav", "instrumental.wav", "plan.png", "report.json",
                "vocals_lead.wav", "vocals_backing.wav")
#: outputs of a cover only written when the vocal stem was split into lead and backing
SPLIT_FILES = ("vocals_lead.wav", "vocals_backing.wav")
#: every name any singvc command writes into an output folder (cover, run, separate, stems):
#: with the names an earlier run's report.json and session.json list, the only names ever moved aside
KNOWN_OUTPUTS = OUTPUT_FILES + ("session", "vocals.wav", "session.json")
#: hidden folders made by runs (``mkdtemp`` adds 8 characters), swept when their owner is gone
_HIDDEN_FOLDER = re.compile(r"^\..+\.(scratch|partial|old)-[A-Za-z0-9_]+$|^\.decode-[A-Za-z0-9_]+$")
#: room kept free besides a run's estimate (bytes)
MARGIN_BYTES = 64 * 1024 * 1024


# -- owners ------------------------------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _boot_id() -> str | None:
    return _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    """This process's pid namespace (containers on one host name may not see each other's pids)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22), or
    None where that cannot be read. With the pid it names one process, even after pid reuse."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: split after the last ')'
        return int(text[text.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def owner_record() -> dict:
    """This process as an owner: pid, host, start time, boot id and the current time."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": process_start(pid), "boot_id": _boot_id(),
            "pid_ns": _pid_namespace(), "created": time.time()}


def write_owner(folder: Path) -> None:
    """Write the owner file into a new hidden folder (best effort: without it the folder is
    swept only by age)."""
    try:
        (Path(folder) / OWNER_FILE).write_text(json.dumps(owner_record()) + "\n")
    except OSError:
        pass


def read_owner(folder: Path) -> dict | None:
    """The owner record of a hidden folder, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(folder) / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not isinstance(data.get("host"), str):
        return None
    return data


def owner_alive(owner: dict) -> bool:
    """True when the process that ``owner`` names still runs on this host (a folder of another
    host, or of another pid namespace such as another container, counts as alive: it cannot be
    asked)."""
    if not _same_host(owner):
        return True
    boot = _boot_id()
    if owner.get("boot_id") and boot and owner["boot_id"] != boot:
        return False  # the machine restarted since: every process of that boot is gone
    pid = owner["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return True
    start = process_start(pid)
    if owner.get("start") is not None and start is not None and start != owner["start"]:
        return False  # the pid now belongs to another process
    return True


def _same_host(owner: dict) -> bool:
    """True when ``owner``'s pid can be looked up here: same host name and pid namespace."""
    ns = _pid_namespace()
    return owner["host"] == socket.gethostname() and not (owner.get("pid_ns") and ns and owner["pid_ns"] != ns)


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` and (for a folder) its direct entries."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            try:
                newest = max(newest, child.lstat().st_mtime)
            except OSError:
                pass
    return newest


def is_stale(folder: Path, now: float | None = None) -> bool:
    """True when a hidden working folder was left by a run that is gone (see the module doc)."""
    now = time.time() if now is None else now
    try:
        age = now - _newest_mtime(folder)
    except OSError:
        return False
    owner = read_owner(folder)
    if owner is None:
        return age > ORPHAN_STALE_SECONDS
    if not _same_host(owner):
        return age > FOREIGN_STALE_SECONDS
    return not owner_alive(owner)


def hidden_folder(parent: Path, prefix: str) -> Path:
    """A new hidden folder ``PREFIX-XXXXXXXX`` in ``parent`` holding this process's owner file;
    stale folders of dead runs in ``parent`` are swept first. Raises OSError as mkdtemp does."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    write_owner(folder)
    sweep(parent)
    return folder


def sweep(parent: Path, pattern: re.Pattern = _HIDDEN_FOLDER) -> list[Path]:
    """Remove the stale hidden working folders (``.NAME.scratch-*``, ``.NAME.partial-*``,
    ``.NAME.old-*``, ``.decode-*``) in ``parent``; returns those removed. Never raises."""
    removed = []
    try:
        candidates = [p for p in Path(parent).iterdir() if pattern.match(p.name)]
    except OSError:
        return removed
    now = time.time()
    for path in candidates:
        if path.is_dir() and not path.is_symlink() and is_stale(path, now):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (in the main thread) while a few renames put a run's outputs
    in place: a signal that arrives then is passed on to the handler that was in force just after,
    never between two renames, so the output folder holds the old result or the new one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    old = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if previous is not None:  # None: a handler not set from Python, which cannot be put back
            old[signum] = previous
            signal.signal(signum, lambda n, frame: arrived.append(n))
    try:
        yield
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)
        for signum in dict.fromkeys(arrived):
            signal.raise_signal(signum)


# -- cancelling a run -------------------------------------------------------------------------------
class Cancelled(BaseException):
    """A run was asked to stop (SIGTERM in the CLI; a Cancel button). Like KeyboardInterrupt it
    unwinds through every ``finally`` (working and staging folders are removed) and no
    ``except Exception`` stops it."""


_cancel = threading.Event()


def request_cancel() -> None:
    """Ask the run in progress to stop: :func:`check_cancelled` raises :class:`Cancelled` from now
    on (every block of audio a stage streams checks it, so a raise that was lost, e.g. from a
    signal handler that fired inside a ``__del__``, is raised again at the next block)."""
    _cancel.set()


def clear_cancel() -> None:
    """Forget an earlier :func:`request_cancel` (a new run starts)."""
    _cancel.clear()


def cancel_requested() -> bool:
    return _cancel.is_set()


def check_cancelled() -> None:
    """Raise :class:`Cancelled` when a cancel was requested (cheap: called once per audio block)."""
    if _cancel.is_set():
        raise Cancelled()


# -- output checks before the work --------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path, what: str) -> None:
    """Create and remove a temp file in ``folder``; OutputError naming ``what`` when that fails."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".singvc-probe-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
        raise OutputError(f"cannot write {what}: {folder}: {reason}") from None


def _check_space(folder: Path, need_bytes: int, what: str, hint: str = "") -> None:
    if need_bytes <= 0:
        return
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < need_bytes + MARGIN_BYTES:
        raise OutputError(f"not enough free space for {what} in {folder}: {free / 1e6:.0f} MB free, about "
                          f"{(need_bytes + MARGIN_BYTES) / 1e6:.0f} MB needed{hint}")


def check_output_dir(out_dir: str | os.PathLike, need_bytes: int = 0) -> None:
    """Raise :class:`~singvc.errors.OutputError` when the output folder ``out_dir`` cannot be
    written: it is an existing file, a file stands where a parent folder belongs, the folder (or
    its nearest existing parent, where it and the working folders would be made) is read-only,
    or its disk has less than ``need_bytes`` free (an estimate; 0 skips that check)."""
    out_dir = Path(out_dir)
    label = f"output folder {out_dir}"
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise OutputError(f"{label} is an existing file, not a folder")
    # working folders are made beside the output folder, in its parent
    parent = _nearest_existing(Path(os.path.abspath(out_dir)).parent)
    if not parent.is_dir():
        raise OutputError(f"cannot make {label}: {parent} is a file, not a folder")
    _probe(parent, label)
    if out_dir.is_dir():
        _probe(out_dir, label)
    _check_space(parent, need_bytes, label)


def check_output_file(path: str | os.PathLike, what: str = "output file", make_parents: bool = False) -> None:
    """Raise :class:`~singvc.errors.OutputError` when the file ``path`` cannot be written: it is a
    folder, or its folder is missing (unless ``make_parents``: the writer makes it, then its
    nearest existing parent is checked), not a folder or read-only."""
    path = Path(path)
    label = f"{what} {path}"
    if path.is_dir():
        raise OutputError(f"{label} is a folder")
    folder = Path(os.path.abspath(path)).parent
    if make_parents:
        folder = _nearest_existing(folder)
    elif not os.path.lexists(folder):
        raise OutputError(f"cannot write {label}: folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write {label}: {folder} is not a folder")
    _probe(folder, label)


def check_cache_dir(root: str | os.PathLike, need_bytes: int = 0) -> None:
    """Raise :class:`~singvc.errors.OutputError` when the cache folder ``root`` (or its nearest
    existing parent) cannot be written or its disk is full; the message suggests the ways out."""
    root = Path(root)
    hint = "; use --no-cache, or --cache-dir DIR on a writable disk"
    where = _nearest_existing(root)
    if not where.is_dir():
        raise OutputError(f"cache folder {root}: {where} is a file, not a folder{hint}")
    try:
        _probe(where, f"cache folder {root}")
    except OutputError as exc:
        raise OutputError(f"{exc}{hint}") from None
    _check_space(where, need_bytes, f"cache folder {root}", hint)


def audio_bytes(path: str | os.PathLike | None) -> int:
    """Bytes of one float32 buffer of the audio file ``path`` decoded (0 when unknown): the unit
    of the disk estimates, cheap (reads the header only)."""
    if path is None:
        return 0
    try:
        info = sf.info(str(path))
        return max(int(info.frames), 0) * int(info.channels) * 4
    except Exception:  # not readable here: the load reports it, with its own message
        return 0


# -- outputs of an earlier run ------------------------------------------------------------------
def _plain(names) -> list[str]:
    return [n for n in names if isinstance(n, str) and n and n == Path(n).name and not n.startswith(".")]


def session_files(manifest_path: Path) -> list[str]:
    """Plain file names a session manifest (``session.json``) lists (empty if there is none or it
    is unreadable)."""
    try:
        data = json.loads(Path(manifest_path).read_text())
        names = [e["file"] for e in data.get("stems", []) + data.get("midi", [])]
        names += [data.get("dawproject"), data.get("reaper")]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    return _plain(names)


def earlier_outputs(out_dir: Path) -> list[str]:
    """Names in ``out_dir`` that a singvc run wrote: :data:`KNOWN_OUTPUTS` and those listed by
    the folder's ``report.json`` (``outputs``) and ``session.json``; only names present."""
    out_dir = Path(out_dir)
    names = list(KNOWN_OUTPUTS)
    try:
        report = json.loads((out_dir / "report.json").read_text())
        if isinstance(report, dict) and isinstance(report.get("outputs"), list):
            names += _plain(report["outputs"])
    except (OSError, ValueError):
        pass
    names += session_files(out_dir / "session.json")
    seen = []
    for n in names:
        if n not in seen and os.path.lexists(out_dir / n):
            seen.append(n)
    return seen


@dataclass
class Aside:
    """Outputs of an earlier run to move into ``folder`` (inside the output folder) before this
    run's outputs go in: the names this run does not write, with the earlier report."""

    folder: Path
    names: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"folder": self.folder.name, "files": list(self.names)}

    def apply(self) -> None:
        """Move the names (those still there) into the folder; OutputError when that fails."""
        if not self.names:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=False)
            for name in self.names:
                source = self.folder.parent / name
                if os.path.lexists(source):
                    os.replace(source, self.folder / name)
        except OSError as exc:
            raise OutputError(f"cannot move the earlier run's outputs into {self.folder}: "
                              f"{exc.strerror or exc}") from exc


def plan_aside(out_dir: str | os.PathLike, new_names: Iterable[str],
               protect: Iterable[str | os.PathLike | None] = ()) -> Aside:
    """What to move aside in ``out_dir`` before writing ``new_names``: every earlier output (see
    :func:`earlier_outputs`) this run does not write, and then also the earlier ``report.json``
    (kept with the outputs it describes). Files singvc never writes are left alone, and so are
    the ``protect`` paths (this run's inputs, e.g. a ``vocals.wav`` given as ``--vocals``)."""
    out_dir = Path(out_dir)
    new = set(new_names)
    earlier = earlier_outputs(out_dir) if out_dir.is_dir() else []
    kept = set()
    for p in protect:
        if isinstance(p, (str, os.PathLike)):
            try:
                kept.add(Path(p).resolve())
            except OSError:
                pass
    names = [n for n in earlier if n not in new and (out_dir / n).resolve() not in kept]
    if names and "report.json" in earlier and "report.json" not in names:
        names.append("report.json")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = out_dir / f"previous-run-{stamp}"
    n = 2
    while os.path.lexists(folder):
        folder = out_dir / f"previous-run-{stamp}-{n}"
        n += 1
    return Aside(folder, names)
