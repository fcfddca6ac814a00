"""Run plumbing: timers, working folders, staged output folders and the one atomic-write helper.

- :func:`atomic_write`: every file singvc writes goes through it (a temporary file beside the
  target, renamed over it only when complete; a failure becomes :class:`~singvc.errors.OutputError`,
  exit 4, and leaves nothing half-written).
- :func:`scratch_folder`: a hidden working folder beside the output for a run's full-length
  buffers (:func:`buffer_path`), removed when the run ends.
- :func:`staged_output`: the outputs are written into a hidden staging folder and moved into the
  output folder only when all of them are complete.
- :class:`Timer`: wall time and peak memory of each stage, for the report.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError
from .runfolders import OWNER_FILE, Aside, hidden_folder, plan_aside, signals_held, sweep


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends without error the
    file replaces ``path`` in one rename (with the usual file mode), else it is removed.

    ``suffix`` ends the temporary name (for writers that add one, like ``np.savez``'s ``.npz``).
    The parent folder is created. An :class:`OSError` (full disk, read-only folder, missing
    permission) raises :class:`~singvc.errors.OutputError` naming ``path``; other errors pass
    through unchanged (after the clean-up).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {path.parent}: {exc.strerror or exc}") from exc
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; give it the usual mode
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# -- timers ----------------------------------------------------------------------------------------
def peak_rss_mb(reset: bool = False) -> float | None:
    """This process's peak resident memory in MB since the last reset (Linux ``/proc``), or None."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so one stage's freed
    working memory (Demucs, crepe batches) does not stay resident under the next one's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Timer:
    """Wall time and peak resident memory of each named stage (stages may repeat: summed / maxed)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        peak_rss_mb(reset=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            peak = peak_rss_mb()
            if peak is not None:
                self.peak_mb[name] = round(max(self.peak_mb.get(name, 0.0), peak), 1)
            trim_heap()


# -- working and staging folders -----------------------------------------------------------------
def buffer_path(scratch: Path | None, name: str) -> Path | None:
    """Where a run's full-length buffer ``name`` lives: a ``.npy`` file in ``scratch``, or None (memory)."""
    return None if scratch is None else Path(scratch) / f"{name}.npy"


def hidden_folder_beside(out_dir: str | os.PathLike, kind: str) -> Path:
    """A new hidden folder ``.NAME.KIND-XXXX`` in ``out_dir``'s parent (created if needed), with
    this run's owner file; stale ones of dead runs there are removed (see :mod:`singvc.runfolders`)."""
    out_dir = Path(os.path.abspath(out_dir))  # "-o ." names the folder, not ""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return hidden_folder(parent, f".{out_dir.name}.{kind}-")
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from exc


@contextmanager
def scratch_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A hidden working folder beside ``out_dir`` (same disk as the outputs, never a RAM-backed
    /tmp) for a run's full-length buffers; deleted when the run ends, whatever happens."""
    folder = hidden_folder_beside(Path(out_dir), "scratch")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def staged_output(out_dir: str | os.PathLike, aside: Aside | None = None,
                  protect: tuple = ()) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out_dir``, on failure delete it.

    Existing files in ``out_dir`` with the same names are replaced one rename at a time; a failed
    run leaves ``out_dir`` as it was. Outputs of an earlier run that this one does not write are
    first moved into ``out_dir/previous-run-*/`` with the earlier report: as ``aside`` plans
    (see :func:`~singvc.runfolders.plan_aside`), by default those the staging folder has no
    file for (never the ``protect`` paths, this run's inputs).
    """
    out_dir = Path(out_dir)
    staging = hidden_folder_beside(out_dir, "partial")
    if out_dir.is_dir():
        sweep(out_dir)  # .NAME.old-* folders of killed runs
    try:
        yield staging
        out_dir.mkdir(parents=True, exist_ok=True)
        items = sorted(p for p in staging.iterdir() if p.name != OWNER_FILE)
        if aside is None:
            aside = plan_aside(out_dir, [p.name for p in items], protect)
        with signals_held():  # Ctrl-C or SIGTERM now takes effect after the renames, not between them
            aside.apply()
            for item in items:
                target = out_dir / item.name
                if item.is_dir() and target.is_dir():  # a folder (e.g. session/) replaces the old one whole
                    old = hidden_folder(out_dir, f".{item.name}.old-")
                    os.replace(target, old / item.name)
                    os.replace(item, target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
