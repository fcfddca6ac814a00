"""What Seed-VC derives from audio: the 44.1 kHz log-mel, 16 kHz audio for Whisper and CAM++,
Whisper content features, the CAM++ fbank and an F0 contour on the 100 frames/s grid.

All take mono float32 tensors ``[B, samples]`` in [-1, 1] (one item in practice); see
``docs/seedvc-architecture.md`` for the parameters.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

CONTENT_RATE = 16000
#: Whisper's window: 30 s at 16 kHz; its encoder gives 50 frames per second
WHISPER_SECONDS = 30
WHISPER_HOP = 320
#: the F0 grid the model was trained with (RMVPE on 16 kHz audio, hop 160)
F0_HOP_SECONDS = 0.01


class MelSpectrogram(torch.nn.Module):
    """Log-mel as the DiT and BigVGAN see it: reflect padding of (n_fft − hop)/2, no centring,
    magnitude with a 1e-9 floor inside the root, Slaney mel bands, ``log(max(x, 1e-5))``.
    ``[B, samples]`` → ``[B, n_mels, samples // hop]``."""

    def __init__(self, sample_rate: int = 44100, n_fft: int = 2048, win_length: int = 2048, hop_length: int = 512,
                 n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None):
        super().__init__()
        import librosa  # noqa: PLC0415 - librosa is a core dependency; imported here to keep import light

        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        self.register_buffer("basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        pad = (self.n_fft - self.hop_length) // 2
        x = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length, window=self.window,
                          center=False, normalized=False, onesided=True, return_complex=True)
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        return torch.log(torch.clamp(self.basis @ mag, min=1e-5))


def to_16k(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Resample to 16 kHz with torchaudio's default windowed-sinc filter (as the model was fed)."""
    return torchaudio.functional.resample(audio, sample_rate, CONTENT_RATE)


def whisper_window_features(extractor, encoder, audio16: torch.Tensor) -> torch.Tensor:
    """Whisper encoder output for at most 30 s of 16 kHz audio ``[1, n]`` → ``[1, n // 320 + 1, d_model]``."""
    inputs = extractor([audio16[0].cpu().numpy()], return_tensors="pt", sampling_rate=CONTENT_RATE)
    features = inputs.input_features.to(device=audio16.device, dtype=next(encoder.parameters()).dtype)
    hidden = encoder(features).last_hidden_state.float()
    return hidden[:, : audio16.shape[-1] // WHISPER_HOP + 1]


def whisper_content(extractor, encoder, audio16: torch.Tensor, overlap_seconds: int = 5) -> torch.Tensor:
    """Content features of any length ``[1, n]`` at 16 kHz: 30 s windows, each after the first
    starting with the last ``overlap_seconds`` of the previous one, whose first frames are dropped."""
    full = CONTENT_RATE * WHISPER_SECONDS
    n = audio16.shape[-1]
    if n <= full:
        return whisper_window_features(extractor, encoder, audio16)
    parts = []
    done = 0
    carry = None
    overlap = CONTENT_RATE * overlap_seconds
    frames_overlap = overlap // WHISPER_HOP
    while done < n:
        if carry is None:
            chunk = audio16[:, :full]
        else:
            chunk = torch.cat([carry, audio16[:, done: done + full - overlap]], dim=-1)
        out = whisper_window_features(extractor, encoder, chunk)
        parts.append(out if carry is None else out[:, frames_overlap:])
        carry = chunk[:, -overlap:]
        done += full if done == 0 else chunk.shape[-1] - overlap
    return torch.cat(parts, dim=1)


def campplus_fbank(audio16: torch.Tensor) -> torch.Tensor:
    """Kaldi fbank (80 bins, no dither) of ``[1, n]`` 16 kHz audio, mean-normalised over time → ``[1, T, 80]``."""
    fbank = torchaudio.compliance.kaldi.fbank(audio16, num_mel_bins=80, dither=0, sample_frequency=CONTENT_RATE)
    return (fbank - fbank.mean(dim=0, keepdim=True)).unsqueeze(0)


def grid_frames(n_samples: int, sample_rate: int) -> int:
    """Frames of the model's 100 frames/s F0 grid for ``n_samples`` at ``sample_rate`` (``n16k // 160 + 1``)."""
    return int(round(n_samples * CONTENT_RATE / sample_rate)) // 160 + 1


def f0_on_grid(times: np.ndarray, f0: np.ndarray, voiced: np.ndarray, n_samples: int, sample_rate: int) -> np.ndarray:
    """A pitch track (times in s, f0 in Hz, voicing) resampled to the model's 100 frames/s grid
    (``n16k // 160 + 1`` frames): linear in log-frequency between voiced neighbours, 0 where the
    nearest frame is unvoiced."""
    grid = np.arange(grid_frames(n_samples, sample_rate)) * F0_HOP_SECONDS
    times = np.asarray(times, np.float64)
    f0 = np.asarray(f0, np.float64)
    voiced = np.asarray(voiced, bool) & (f0 > 0)
    if times.size == 0 or not voiced.any():
        return np.zeros(grid.size, np.float32)
    nearest = np.clip(np.searchsorted(times, grid), 0, times.size - 1)
    prev = np.clip(nearest - 1, 0, times.size - 1)
    nearest = np.where(np.abs(times[prev] - grid) < np.abs(times[nearest] - grid), prev, nearest)
    logf = np.interp(grid, times[voiced], np.log(f0[voiced]))
    return np.where(voiced[nearest], np.exp(logf), 0.0).astype(np.float32)
