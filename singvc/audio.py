"""Audio I/O and the one convention used everywhere in singvc.

Convention: audio is a ``numpy.ndarray`` of dtype float32 and shape ``[channels, samples]``,
always passed together with an explicit ``sample_rate`` in Hz (int). Samples are nominally in
[-1, 1]; nothing here normalises or clips the caller's data.

Files are read with libsndfile (wav, flac, ogg/vorbis, opus, mp3, aiff, ...) at any sample rate
from 8 to 192 kHz and any channel count. Files are written as WAV (24-bit PCM by default, 16-bit
PCM or 32-bit float on request) to a temporary file beside the target, then renamed into place,
so a crash or a full disk never leaves a half-written file under the final name. Nothing is clipped
silently: PCM holds [-1, 1], and :func:`save_audio` refuses samples beyond it (callers turn a group
of outputs down together, see :func:`headroom_gain_db`) and refuses NaN/inf samples.

Long songs: :class:`DiskAudio` keeps float32 ``[channels, samples]`` in a ``.npy`` file and is
read and written by time slice (``audio[:, a:b]``), so the stages can stream a song of any length
through bounded memory; :func:`load_audio_to_disk` decodes into one, :func:`save_audio` writes
block by block, :func:`resample_into` resamples as a stream.
"""
from __future__ import annotations

import os
import struct
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .errors import (
    AudioLoadError, ClippingError, InvalidAudioError, NonFiniteResultError, OutputError, ResultError, SingvcWarning,
)
from .run import atomic_write
from .runfolders import check_cancelled, hidden_folder

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000

#: bit depth name -> libsndfile subtype
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
#: the highest sample peak (dBFS) singvc gives a PCM output it had to turn down: a hair under full
#: scale, so the float32 rounding of a gain can never carry a sample past it
PCM_PEAK_DBFS = -0.01


def as_audio(audio: np.ndarray, name: str = "audio") -> np.ndarray:
    """Check and return ``audio`` as float32 ``[channels, samples]``.

    A 1-D array is taken as mono and given a channel axis. Anything else raises
    :class:`InvalidAudioError` quoting the shape received; the channel axis is never guessed.
    A :class:`DiskAudio` (float32 ``[channels, samples]`` by construction) is returned as is.
    """
    if isinstance(audio, DiskAudio):
        return audio
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


def count_nonfinite(audio: "np.ndarray | DiskAudio") -> int:
    """How many samples of ``audio`` are NaN or infinite (read block by block)."""
    if not isinstance(audio, DiskAudio):
        audio = np.asarray(audio)
        if audio.ndim < 2:
            return int(audio.size - np.count_nonzero(np.isfinite(audio)))
    return sum(int(audio[:, a:b].size - np.count_nonzero(np.isfinite(audio[:, a:b])))
               for a, b in blocks(audio.shape[-1]))


def check_finite(audio: np.ndarray, name: str = "audio") -> None:
    """Raise :class:`InvalidAudioError` if ``audio`` holds NaN or infinite samples."""
    bad = count_nonfinite(audio)
    if bad:
        raise InvalidAudioError(f"{name} contains {bad} NaN or infinite samples")


def check_result(audio: "np.ndarray | DiskAudio", name: str) -> None:
    """Raise :class:`NonFiniteResultError` if a stage's output ``audio`` holds NaN or infinite
    samples (the input was checked: this is singvc's own failure, and nothing is written)."""
    bad = count_nonfinite(audio)
    if bad:
        raise NonFiniteResultError(f"{name} has {bad} NaN or infinite samples; nothing was written")


def output_peak_limit(bit_depth: str) -> float | None:
    """The highest peak (dBFS) an output of ``bit_depth`` is given: :data:`PCM_PEAK_DBFS` for PCM,
    ``None`` for 32-bit float (which holds any level)."""
    return None if bit_depth == "32f" else PCM_PEAK_DBFS


def headroom_gain_db(peak: float, bit_depth: str) -> float:
    """The gain (dB, <= 0) that brings outputs whose common sample peak is ``peak`` dBFS within
    what ``bit_depth`` holds: 0 when they fit (or for float), else down to :data:`PCM_PEAK_DBFS`.
    Give every output that belongs together (stems that add up to a mix) the same gain."""
    limit = output_peak_limit(bit_depth)
    if limit is None or not np.isfinite(peak) or peak <= 0.0:
        return 0.0
    return limit - float(peak)


def turned_down_together(names: str, peak: float, gain: float) -> str:
    """What :func:`headroom_warning` says of outputs given one common ``gain`` (dB)."""
    return (f"{names} peak at {peak:+.1f} dBFS and are written {-gain:.1f} dB lower, together "
            "(so they still add up)")


def headroom_warning(parts: list[str], bit_depth: str) -> str:
    """The one-line warning for outputs turned down to fit ``bit_depth`` PCM (``parts``: what was
    turned down and by how much, e.g. :func:`turned_down_together`)."""
    return (f"above full scale for {bit_depth}-bit PCM: " + "; ".join(parts)
            + "; nothing is clipped (--bit-depth 32f keeps the levels)")


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


def _check_file(path: Path, label: str) -> None:
    if not path.exists():
        raise AudioLoadError(f"{label}: no such file")
    if path.is_dir():
        raise AudioLoadError(f"{label}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioLoadError(f"{label}: file is empty")


def declared_frames(path: str | os.PathLike) -> int | None:
    """The number of frames a WAV (RIFF/RIFX) or AIFF/AIFC header declares, or ``None`` (another
    format, a streaming header with no size, or a header too damaged to tell). libsndfile silently
    reads only what the file holds, so this is what a truncated file is recognised by."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12:
                return None
            if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
                order, block_align, big_size = ("<" if head[:4] != b"RIFX" else ">"), 0, None
                while True:
                    chunk = fh.read(8)
                    if len(chunk) < 8:
                        return None
                    kind, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
                    if kind == b"fmt ":
                        fmt = fh.read(min(size, 16))
                        if len(fmt) < 14:
                            return None
                        block_align = struct.unpack(order + "H", fmt[12:14])[0]
                        fh.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                    elif kind == b"ds64":  # RF64: the 64-bit sizes
                        ds64 = fh.read(min(size, 24))
                        if len(ds64) >= 16:
                            big_size = struct.unpack("<Q", ds64[8:16])[0]
                        fh.seek(size - len(ds64) + (size & 1), os.SEEK_CUR)
                    elif kind == b"data":
                        if size == 0xFFFFFFFF and big_size is not None:
                            size = big_size
                        # 0 / 0xFFFFFFFF: written by a stream that never went back to fill in the size
                        return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
                    else:
                        fh.seek(size + (size & 1), os.SEEK_CUR)
            if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                while True:
                    chunk = fh.read(8)
                    if len(chunk) < 8:
                        return None
                    kind, size = chunk[:4], struct.unpack(">I", chunk[4:])[0]
                    if kind == b"COMM":
                        comm = fh.read(6)
                        return struct.unpack(">I", comm[2:6])[0] if len(comm) == 6 else None
                    fh.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None
    return None


def _warn_if_truncated(path: Path, label: str, frames: int, sample_rate: int) -> None:
    """Warn (:class:`SingvcWarning`) when ``path``'s header declares more frames than were decoded."""
    declared = declared_frames(path)
    if declared is not None and declared > frames:
        warnings.warn(f"{label} is truncated: its header declares {declared / sample_rate:.2f} s but the file "
                      f"holds {frames / sample_rate:.2f} s ({(declared - frames) / sample_rate:.2f} s missing); "
                      "using what is there", SingvcWarning, stacklevel=3)


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
    _check_file(path, label)
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
    _warn_if_truncated(path, label, audio.shape[-1], int(sample_rate))
    return audio, int(sample_rate)


def save_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    bit_depth: str = "24",
    gain_db: float = 0.0,
) -> Path:
    """Write ``audio`` (float32 ``[channels, samples]``, or a :class:`DiskAudio`) as a WAV file, atomically.

    Args:
        bit_depth: ``"24"`` (PCM, default), ``"16"`` (PCM) or ``"32f"`` (IEEE float).
        gain_db: a gain applied while writing (block by block: ``audio`` itself is not changed),
            e.g. the headroom from :func:`headroom_gain_db`.

    The data goes to a temporary file in the target's folder, which is renamed over the target
    only once complete; every block is checked before it is written.

    Raises:
        NonFiniteResultError: ``audio`` holds NaN or infinite samples.
        ClippingError: PCM output asked for samples beyond full scale ([-1, 1]); nothing is ever
            clipped silently (turn the audio down first, or write ``"32f"``).
        OutputError: the file cannot be written.
    """
    if bit_depth not in SUBTYPES:
        raise OutputError(f"bit depth must be one of {sorted(SUBTYPES)} (got {bit_depth!r})")
    audio = as_audio(audio)
    path = Path(path)
    gain = np.float32(10.0 ** (gain_db / 20.0)) if gain_db else None
    with atomic_write(path) as tmp:
        _write_wav(tmp, path, audio, sample_rate, bit_depth, gain)
    return path


def _write_wav(tmp: Path, path: Path, audio, sample_rate: int, bit_depth: str, gain) -> None:
    """The body of :func:`save_audio`: ``audio`` into the temporary file ``tmp`` (checked block by block)."""
    try:
        with sf.SoundFile(tmp, "w", samplerate=sample_rate, channels=audio.shape[0],
                          subtype=SUBTYPES[bit_depth], format="WAV") as fh:
            for start, stop in blocks(audio.shape[1]):  # block by block: bounded memory for any length
                block = audio[:, start:stop] if gain is None else audio[:, start:stop] * gain
                if not np.all(np.isfinite(block)):
                    # counted block by block over the whole input (slicing the rest of a DiskAudio
                    # would read it into memory at once); the headroom gains singvc passes (<= 0 dB) make
                    # no sample non-finite
                    raise NonFiniteResultError(f"{path.name}: the audio has {count_nonfinite(audio)} NaN or "
                                               "infinite samples; nothing was written")
                if bit_depth != "32f" and block.size and float(np.max(np.abs(block))) > 1.0:
                    raise ClippingError(_clipping_message(path, audio, gain, bit_depth))
                fh.write(np.ascontiguousarray(block.T))
    except (ResultError, OSError):
        raise
    except Exception as exc:  # libsndfile's own errors
        raise OutputError(f"cannot write {path}: {exc}") from exc


def _clipping_message(path: Path, audio, gain: np.float32 | None, bit_depth: str) -> str:
    over, peak = 0, 0.0
    for a, b in blocks(audio.shape[-1]):
        block = np.abs(audio[:, a:b] if gain is None else audio[:, a:b] * gain)
        over += int(np.count_nonzero(block > 1.0))
        peak = max(peak, float(np.max(block)) if block.size else 0.0)
    return (f"{path.name}: {over} samples beyond full scale (peak {20 * np.log10(peak):+.2f} dBFS) cannot be "
            f"written as {bit_depth}-bit PCM without clipping; nothing was written (turn it down first, "
            "or write 32-bit float)")


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


def resample_into(read, n_samples: int, sample_rate: int, out, target_rate: int) -> None:
    """Resample ``n_samples`` of audio at ``sample_rate`` into ``out`` at ``target_rate``, as a stream.

    ``read(start, stop)`` returns float32 ``[channels, stop - start]``; ``out`` is any writable
    ``[channels, length]`` buffer (array, :class:`DiskAudio`), filled to its length (trimmed, or
    zero-padded when the resampler gives fewer samples). soxr HQ, block by block: the result
    equals :func:`resample` of the whole signal, with bounded memory.
    """
    import soxr

    channels, length = out.shape
    stream = soxr.ResampleStream(sample_rate, target_rate, channels, dtype="float32", quality="HQ")
    pos = 0
    for start, stop in blocks(n_samples):
        y = stream.resample_chunk(np.ascontiguousarray(read(start, stop).T), last=stop == n_samples)
        take = min(len(y), length - pos)
        if take > 0:
            out[:, pos:pos + take] = y[:take].T
            pos += take
    if pos < length:
        out[:, pos:length] = 0.0


def mono_resampled(audio: "np.ndarray | DiskAudio", sample_rate: int, target_rate: int) -> np.ndarray:
    """The channel mean of ``audio`` at ``target_rate``, ``[samples]`` float32 (resampled as a
    stream, so a :class:`~singvc.audio.DiskAudio` is never read whole)."""
    n = audio.shape[-1]
    if sample_rate == target_rate:
        return np.concatenate([to_mono(audio[:, a:b]) for a, b in blocks(n)]) if n else np.zeros(0, np.float32)
    out = np.zeros((1, int(round(n * target_rate / sample_rate))), dtype=np.float32)
    resample_into(lambda a, b: to_mono(audio[:, a:b])[None], n, sample_rate, out, target_rate)
    return out[0]


def difference(a: "np.ndarray | DiskAudio", b: "np.ndarray | DiskAudio",
               path: str | os.PathLike | None = None) -> "np.ndarray | DiskAudio":
    """``a - b`` (same ``[channels, samples]``) block by block, into a DiskAudio at ``path`` or an array."""
    out = new_like(a, path)
    for start, stop in blocks(a.shape[-1]):
        out[:, start:stop] = a[:, start:stop] - b[:, start:stop]
    return out


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
    n = audio.shape[-1] if audio.size else 0
    peak = max((float(np.max(np.abs(audio[..., a:b]))) for a, b in blocks(n)), default=0.0)
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


# -- disk-backed audio: long songs without holding them in memory ---------------------------------
#: samples per block when streaming long audio through a stage (about 23 s at 44.1 kHz)
BLOCK = 1 << 20


class DiskAudio:
    """float32 ``[channels, samples]`` kept in a ``.npy`` file and read or written by time slice.

    Behaves like a 2-D array for what the pipeline needs: ``shape``, ``dtype``, ``audio[:, a:b]``
    (reads only those samples, with ``pread``: no memory map, so nothing of the file stays
    resident in the process) and ``audio[:, a:b] = block``. ``np.asarray(audio)`` reads it all.
    The file is a plain ``.npy`` (channel-major, C order): ``np.load`` opens it too.

    Args:
        path: the ``.npy`` file.
        shape: ``(channels, samples)`` to create a new zero-filled file (sparse on disk); ``None``
            opens an existing one.
        writable: open for writing (always, when creating).
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int] | None = None, writable: bool = False) -> None:
        self.path = Path(path)
        if shape is not None:
            channels, samples = int(shape[0]), int(shape[1])
            try:
                with open(self.path, "wb") as fh:
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                             "shape": (channels, samples)})
                    self._offset = fh.tell()
                    fh.truncate(self._offset + channels * samples * self.dtype.itemsize)
            except OSError as exc:
                raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
            self.shape = (channels, samples)
            writable = True
        else:
            with open(self.path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                file_shape, fortran, dtype = header(fh)
                self._offset = fh.tell()
            if len(file_shape) != 2 or fortran or np.dtype(dtype) != self.dtype:
                raise InvalidAudioError(f"{self.path}: not float32 [channels, samples] audio")
            self.shape = (int(file_shape[0]), int(file_shape[1]))
        self._fd = os.open(self.path, os.O_RDWR if writable else os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    def _ranges(self, key) -> tuple[range, int, int]:
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(f"DiskAudio takes [channels, start:stop] (got {key!r})")
        rows, cols = key
        if rows is Ellipsis:
            rows = slice(None)
        if isinstance(rows, (int, np.integer)):
            rows = slice(int(rows), int(rows) + 1 if rows != -1 else None)
        if not isinstance(rows, slice) or not isinstance(cols, slice) or cols.step not in (None, 1):
            raise TypeError(f"DiskAudio takes [channels, start:stop] (got {key!r})")
        start, stop, _ = cols.indices(self.shape[1])
        return range(*rows.indices(self.shape[0])), start, max(start, stop)

    def __getitem__(self, key) -> np.ndarray:
        rows, start, stop = self._ranges(key)
        out = np.empty((len(rows), stop - start), dtype=self.dtype)
        for i, c in enumerate(rows):
            data = os.pread(self._fd, (stop - start) * 4, self._offset + (c * self.shape[1] + start) * 4)
            out[i] = np.frombuffer(data, dtype=self.dtype)
        return out

    def __setitem__(self, key, value) -> None:
        rows, start, stop = self._ranges(key)
        block = np.broadcast_to(np.asarray(value, dtype=self.dtype), (len(rows), stop - start))
        for i, c in enumerate(rows):
            data = np.ascontiguousarray(block[i]).tobytes()
            written = os.pwrite(self._fd, data, self._offset + (c * self.shape[1] + start) * 4)
            if written != len(data):
                raise OutputError(f"cannot write {self.path}: disk full?")

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:, :]
        return out if dtype is None else out.astype(dtype)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"DiskAudio({str(self.path)!r}, shape={self.shape})"


def blocks(n_samples: int, block: int = BLOCK) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` sample ranges of at most ``block`` samples covering ``[0, n_samples)``.

    Every stage streams through these, so each block is also where a cancelled run stops
    (:func:`singvc.runfolders.check_cancelled`)."""
    for start in range(0, n_samples, block):
        check_cancelled()
        yield start, min(n_samples, start + block)


def copy_into(audio: "np.ndarray | DiskAudio", out: "np.ndarray | DiskAudio | None" = None) -> np.ndarray:
    """``audio`` copied block by block into ``out`` (default a new float32 array); returns ``out``."""
    out = out if out is not None else np.empty(audio.shape, dtype=np.float32)
    for a, b in blocks(audio.shape[-1]):
        out[:, a:b] = audio[:, a:b]
    return out


def new_like(audio: "np.ndarray | DiskAudio", path: str | os.PathLike | None = None,
             shape: tuple[int, int] | None = None) -> "np.ndarray | DiskAudio":
    """A zero-filled float32 buffer of ``shape`` (default ``audio``'s): on disk at ``path`` when
    given, else in memory."""
    shape = tuple(shape or audio.shape)
    return DiskAudio(path, shape=shape) if path is not None else np.zeros(shape, dtype=np.float32)


def load_audio_to_disk(path: str | os.PathLike, out_path: str | os.PathLike,
                       name: str | None = None) -> tuple[DiskAudio, int]:
    """Decode an audio file block by block into a :class:`DiskAudio` at ``out_path``.

    Same checks and errors as :func:`load_audio`; memory use does not grow with the file's length.
    """
    path = Path(path)
    label = name or str(path)
    _check_file(path, label)
    try:
        with _quiet_fd2():
            fh = sf.SoundFile(str(path))
    except Exception as exc:
        raise AudioLoadError(f"{label}: not an audio file singvc can read (unknown or damaged format)") from exc
    with fh:
        sample_rate = int(fh.samplerate)
        if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
            raise InvalidAudioError(
                f"{label}: sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
        parts: list[Path] = []
        total = 0
        bad = 0
        # frame counts of compressed files are not always exact: decode into per-block parts, then
        # lay them out channel-major once the length is known
        tmp_dir = hidden_folder(Path(out_path).parent, ".decode-")
        try:
            while True:
                try:
                    with _quiet_fd2():
                        data = fh.read(BLOCK, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioLoadError(f"{label}: decoding failed after {total / sample_rate:.1f} s") from exc
                if data.shape[0] == 0:
                    break
                bad += int(data.size - np.count_nonzero(np.isfinite(data)))
                part = tmp_dir / f"{len(parts):06d}.npy"
                np.save(part, np.ascontiguousarray(data.T))
                parts.append(part)
                total += data.shape[0]
                if data.shape[0] < BLOCK:
                    break
            if total == 0:
                raise InvalidAudioError(f"{label}: holds no samples")
            if bad:
                raise InvalidAudioError(f"{label} contains {bad} NaN or infinite samples")
            _warn_if_truncated(path, label, total, sample_rate)
            out = DiskAudio(out_path, shape=(fh.channels, total))
            pos = 0
            for part in parts:
                block = np.load(part)
                out[:, pos:pos + block.shape[1]] = block
                pos += block.shape[1]
        finally:
            import shutil

            shutil.rmtree(tmp_dir, ignore_errors=True)
    return out, sample_rate
