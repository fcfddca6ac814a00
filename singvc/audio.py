"""Audio I/O and the one convention used everywhere in singvc.

Convention: audio is a ``numpy.ndarray`` of dtype float32 and shape ``[channels, samples]``,
always passed together with an explicit ``sample_rate`` in Hz (int). Samples are nominally in
[-1, 1]; nothing here normalises or clips the caller's data.

Files are read with libsndfile (wav, flac, ogg/vorbis, opus, mp3, aiff, ...) at any sample rate
from 8 to 192 kHz and any channel count. Files are written as WAV (24-bit PCM by default, 16-bit
PCM or 32-bit float on request) to a temporary file beside the target, then renamed into place,
so a crash or a full disk never leaves a half-written file under the final name.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .errors import AudioLoadError, InvalidAudioError, OutputError

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000

#: bit depth name -> libsndfile subtype
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}


def as_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Check and return ``audio`` as float32 ``[channels, samples]``.

    A 1-D array is taken as mono and given a channel axis. Anything else raises
    :class:`InvalidAudioError` quoting the shape received; the channel axis is never guessed.
    """
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidAudioError(
            f"{name} must have shape [channels, samples] (got {arr.ndim} dimensions, shape {arr.shape})"
        )
    if arr.shape[0] > 64:
        raise InvalidAudioError(
            f"{name} has {arr.shape[0]} channels; expected [channels, samples] (got shape {arr.shape})"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


def check_finite(audio: np.ndarray, name: str = "audio") -> None:
    """Raise :class:`InvalidAudioError` if ``audio`` holds NaN or infinite samples."""
    if not np.all(np.isfinite(audio)):
        bad = int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))
        raise InvalidAudioError(f"{name} contains {bad} NaN or infinite samples")


@contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Hide what C decoders write straight to file descriptor 2 (libmpg123 prints resync notes
    while probing a file that is not MPEG audio). Python-level stderr is untouched."""
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_audio(path: str | os.PathLike, name: str | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Returns:
        ``(audio, sample_rate)``: float32 ``[channels, samples]`` and the file's rate in Hz.

    Raises:
        AudioLoadError: the file is missing, empty, not audio or undecodable.
        InvalidAudioError: unsupported sample rate, no samples, or NaN/inf samples.
    """
    path = Path(path)
    label = name or str(path)
    if not path.exists():
        raise AudioLoadError(f"{label}: no such file")
    if path.is_dir():
        raise AudioLoadError(f"{label}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{label}: file is empty")
    try:
        with _quiet_fd2():
            data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioLoadError(f"{label}: not an audio file singvc can read (unknown or damaged format)") from exc
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InvalidAudioError(
            f"{label}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if data.shape[0] == 0:
        raise InvalidAudioError(f"{label}: holds no samples")
    audio = np.ascontiguousarray(data.T)
    check_finite(audio, label)
    return audio, int(sample_rate)


def save_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    bit_depth: str = "24",
) -> Path:
    """Write ``audio`` (float32 ``[channels, samples]``) as a WAV file, atomically.

    Args:
        bit_depth: ``"24"`` (PCM, default), ``"16"`` (PCM) or ``"32f"`` (IEEE float).

    The data goes to a temporary file in the target's folder, which is renamed over the target
    only once complete. PCM output is clipped to [-1, 1) by libsndfile.
    """
    if bit_depth not in SUBTYPES:
        raise OutputError(f"bit depth must be one of {sorted(SUBTYPES)} (got {bit_depth!r})")
    audio = as_audio(audio)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write to {path.parent}: {exc.strerror}") from exc
    try:
        sf.write(tmp, audio.T, sample_rate, subtype=SUBTYPES[bit_depth], format="WAV")
        os.replace(tmp, path)
    except Exception as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return path


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Average the channels: ``[channels, samples]`` -> ``[samples]`` (float32)."""
    return np.asarray(audio, dtype=np.float32).mean(axis=0)


def resample(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``[channels, samples]`` from ``sample_rate`` to ``target_rate`` (soxr, high quality)."""
    if sample_rate == target_rate:
        return np.asarray(audio, dtype=np.float32)
    import soxr

    out = soxr.resample(np.ascontiguousarray(np.asarray(audio).T), sample_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad ``[channels, samples]`` to exactly ``length`` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Give ``[c, samples]`` audio ``channels`` channels: copy mono up, average down otherwise."""
    if audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    return np.repeat(audio.mean(axis=0, keepdims=True), channels, axis=0)


def peak_dbfs(audio: np.ndarray) -> float:
    """Sample peak in dBFS (``-inf`` for digital silence)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")
