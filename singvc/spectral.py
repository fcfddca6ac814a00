"""A short-time Fourier transform on one global frame grid, read and written by stretches.

The split (:mod:`singvc.backing`) masks a song's STFT and goes back to samples block by block;
for the blocks to give exactly what the whole song gives, every block must see the same frames.
Here frame ``t`` (any integer, negative ones included) is centred on sample ``t * hop`` and
windowed by a periodic Hann window of ``n_fft`` samples (``hop = n_fft / 4``); samples outside
``[0, n_samples)`` are zeros. :func:`frames_touching` says which frames a stretch of samples
needs, :func:`analyse` makes them from the audio (reading only what they cover) and
:func:`overlap_add` turns masked frames back into that stretch (weighted overlap-add, exact
reconstruction for an unmasked STFT).
"""
from __future__ import annotations

import numpy as np


def fft_size_for(sample_rate: int, seconds: float = 0.046) -> int:
    """The power of two nearest ``seconds`` of audio (2048 at 44.1 and 48 kHz, 1024 at 22.05 kHz)."""
    return int(2 ** round(np.log2(max(seconds * sample_rate, 64))))


class FrameGrid:
    """The frame grid of an ``n_fft``-point STFT with hop ``n_fft // 4`` over ``n_samples`` samples."""

    def __init__(self, n_fft: int, n_samples: int) -> None:
        if n_fft % 4:
            raise ValueError(f"n_fft must be a multiple of 4 (got {n_fft})")
        self.n_fft = int(n_fft)
        self.hop = self.n_fft // 4
        self.n_samples = int(n_samples)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)).astype(np.float64)
        # sum of squared windows over the frames covering a sample: periodic in the hop (1.5 for Hann / 4)
        w2 = self.window ** 2
        self._norm = w2.reshape(4, self.hop).sum(axis=0)
        self.first = self.frames_touching(0, 1)[0] if n_samples else 0
        self.last = self.frames_touching(n_samples - 1, n_samples)[1] if n_samples else 0

    def frames_touching(self, start: int, stop: int) -> tuple[int, int]:
        """Frames ``[t0, t1)`` whose windows overlap samples ``[start, stop)``."""
        half = self.n_fft // 2
        t0 = (start - half) // self.hop + 1
        t1 = (stop - 1 + half) // self.hop + 1
        return int(t0), int(t1)

    def times(self, t0: int, t1: int, sample_rate: int) -> np.ndarray:
        """Centre times (s) of frames ``[t0, t1)``."""
        return np.arange(t0, t1) * self.hop / float(sample_rate)

    def freqs(self, sample_rate: int) -> np.ndarray:
        return np.arange(self.n_fft // 2 + 1) * float(sample_rate) / self.n_fft

    def analyse(self, audio, t0: int, t1: int) -> np.ndarray:
        """STFT frames ``[t0, t1)`` of ``audio`` (``[channels, samples]``, array or DiskAudio):
        complex128 ``[channels, n_fft // 2 + 1, t1 - t0]``."""
        half = self.n_fft // 2
        a, b = t0 * self.hop - half, (t1 - 1) * self.hop + half
        channels = audio.shape[0]
        seg = np.zeros((channels, max(b - a, 0)), dtype=np.float64)
        lo, hi = max(a, 0), min(b, self.n_samples)
        if hi > lo:
            seg[:, lo - a:hi - a] = audio[:, lo:hi]
        if t1 <= t0:
            return np.zeros((channels, self.n_fft // 2 + 1, 0), dtype=np.complex128)
        view = np.lib.stride_tricks.sliding_window_view(seg, self.n_fft, axis=1)[:, ::self.hop][:, : t1 - t0]
        return np.fft.rfft(view * self.window, axis=-1).transpose(0, 2, 1)

    def overlap_add(self, frames: np.ndarray, t0: int, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` from STFT frames starting at frame ``t0`` (complex
        ``[channels, bins, frames]``, covering every frame that touches the stretch); float64
        ``[channels, stop - start]``."""
        half = self.n_fft // 2
        channels, _, n_frames = frames.shape
        seg_start = t0 * self.hop - half
        length = (n_frames - 1) * self.hop + self.n_fft
        out = np.zeros((channels, length), dtype=np.float64)
        y = np.fft.irfft(frames.transpose(0, 2, 1), n=self.n_fft, axis=-1) * self.window
        for i in range(n_frames):
            out[:, i * self.hop:i * self.hop + self.n_fft] += y[:, i]
        pos = np.arange(start, stop)
        return out[:, start - seg_start:stop - seg_start] / self._norm[(pos + half) % self.hop]
