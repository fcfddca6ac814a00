"""Exception classes raised by the singvc library.

The library never exits the process or prints: it raises one of these. The CLI alone turns them
into one-line messages and exit codes (see :mod:`singvc.cli`).
"""
from __future__ import annotations


class SingvcError(Exception):
    """Base class of every error singvc raises on purpose."""

    exit_code = 1


class UserInputError(SingvcError):
    """The user gave something singvc cannot work with (file, flag, value)."""

    exit_code = 2


class AudioLoadError(UserInputError):
    """A file is missing, empty, not audio, or cannot be decoded."""


class InvalidAudioError(UserInputError):
    """Audio was decoded but is unusable (wrong shape, NaN/inf samples, too short, silent)."""


class InvalidReferenceError(InvalidAudioError):
    """The target-voice reference clip is too short, silent or has no voiced frames."""


class PlanError(UserInputError):
    """The range plan cannot be made from the given pitch data or range."""


class ModelNotFoundError(SingvcError):
    """A named model is not known, or a local model folder does not hold it."""

    exit_code = 3


class WeightsUnavailableError(ModelNotFoundError):
    """Model weights are neither cached nor reachable (offline machine)."""


class ModelLoadError(ModelNotFoundError):
    """Model files are there but do not fit the model (wrong keys or shapes, unreadable config)."""


class InstallError(SingvcError):
    """The installed packages do not work together (e.g. a torchaudio built for another torch)."""

    exit_code = 3


class OutputError(SingvcError):
    """An output file or folder cannot be written."""

    exit_code = 4


class ResultError(SingvcError):
    """A stage produced a result singvc will not write (a numerical failure or a bug, not the
    user's input); nothing was written."""

    exit_code = 70


class NonFiniteResultError(ResultError):
    """A stage's output holds NaN or infinite values (audio, pitch track, melody)."""


class ClippingError(ResultError):
    """PCM output was asked for samples beyond full scale. The caller must leave headroom
    (scale first) or write 32-bit float: singvc never clips silently."""


class SingvcWarning(UserWarning):
    """Something the user should know that does not stop the run (a damaged cache entry
    recomputed, a truncated file read, headroom gain applied). The library issues it with
    :func:`warnings.warn`; the CLI prints each as one line ``singvc: warning: ...``."""


def error_line(exc: BaseException) -> str:
    """The one line a front end shows for an error that stopped a job (the CLI prints it on
    stderr, the web app shows it): ``singvc: error: ...`` for a :class:`SingvcError`, the
    out-of-memory hint for a :class:`MemoryError`, else ``singvc: internal error: Type: ...``
    (a bug; its first 300 characters, with how to get the traceback). Never more than one line."""
    if isinstance(exc, SingvcError):
        return f"singvc: error: {' '.join(str(exc).split())}"
    if isinstance(exc, MemoryError):
        return "singvc: error: out of memory (try a shorter song or --pitch-model tiny)"
    first = " ".join(str(exc).split())[:300]
    return f"singvc: internal error: {type(exc).__name__}: {first} (set SINGVC_DEBUG=1 for a traceback)"
