"""Song analysis for DAW sessions: tempo (librosa beat tracking) and key (chroma vs key profiles).

Key finding is the Krumhansl–Schmuckler method: the song's mean chroma (librosa CQT chroma) is
correlated with the Krumhansl–Kessler major and minor profiles rotated to all twelve tonics; the
best correlation names the key. :func:`transpose_key` gives the key after a shift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import as_audio, check_finite, mono_resampled
from .errors import InvalidAudioError

#: analysis rate (librosa's default); long enough for chroma up to C8 and beat tracking
ANALYSIS_RATE = 22_050

#: Krumhansl & Kessler (1982) probe-tone profiles, tonic first
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

#: conventional spelling of tonics (flats for the flat keys, sharps for F#/C#/G# where usual)
MAJOR_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
MODES = ("major", "minor")


@dataclass(frozen=True)
class Key:
    """A musical key.

    Attributes:
        tonic: pitch class of the tonic, 0 = C ... 11 = B.
        mode: ``"major"`` or ``"minor"``.
        confidence: correlation of the chroma with the chosen profile in [-1, 1] (1.0 when given).
    """

    tonic: int
    mode: str
    confidence: float = 1.0

    @property
    def name(self) -> str:
        """E.g. ``"A minor"``, ``"Eb major"``."""
        names = MAJOR_NAMES if self.mode == "major" else MINOR_NAMES
        return f"{names[self.tonic % 12]} {self.mode}"

    def describe(self) -> dict:
        return {"name": self.name, "tonic": self.tonic, "mode": self.mode, "confidence": round(float(self.confidence), 3)}


def _mono_at(audio: np.ndarray, sample_rate: int, name: str) -> np.ndarray:
    audio = as_audio(audio, name)
    check_finite(audio, name)
    if audio.shape[-1] == 0:
        raise InvalidAudioError(f"{name} holds no samples (shape {audio.shape})")
    return mono_resampled(audio, sample_rate, ANALYSIS_RATE)  # a stream: DiskAudio is never read whole


def estimate_tempo(audio: np.ndarray, sample_rate: int, default: float = 120.0) -> float:
    """Tempo in BPM of ``audio`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz).

    librosa's dynamic-programming beat tracker on the onset envelope. Audio without onsets (silence,
    a steady tone) gives ``default``. The result is rounded to 0.01 BPM.
    """
    import librosa

    y = _mono_at(audio, sample_rate, "audio")
    if not np.any(y):
        return float(default)
    onset = librosa.onset.onset_strength(y=y, sr=ANALYSIS_RATE)
    tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=ANALYSIS_RATE)
    bpm = float(np.atleast_1d(tempo)[0])
    if not np.isfinite(bpm) or bpm <= 0 or len(beats) < 2:
        return float(default)
    return round(bpm, 2)


def key_scores(chroma: np.ndarray) -> np.ndarray:
    """Correlation of a 12-bin chroma vector with every key profile: ``[2, 12]`` (major, minor) x tonic."""
    chroma = np.asarray(chroma, dtype=np.float64)
    out = np.zeros((2, 12))
    if not np.any(chroma - chroma.mean()):
        return out
    for m, profile in enumerate((MAJOR_PROFILE, MINOR_PROFILE)):
        for tonic in range(12):
            out[m, tonic] = np.corrcoef(chroma, np.roll(profile, tonic))[0, 1]
    return out


def estimate_key(audio: np.ndarray, sample_rate: int) -> Key:
    """Key of ``audio`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz), e.g. ``Key(9, "minor")``.

    Mean CQT chroma (energy-weighted over the whole song) against Krumhansl–Kessler profiles.
    Audio without pitched content returns C major with confidence 0.
    """
    import librosa

    y = _mono_at(audio, sample_rate, "audio")
    if not np.any(y) or len(y) < ANALYSIS_RATE // 10:
        return Key(0, "major", 0.0)
    chroma = librosa.feature.chroma_cqt(y=y, sr=ANALYSIS_RATE, hop_length=2048, norm=None)
    profile = chroma.sum(axis=1)
    scores = key_scores(profile)
    mode, tonic = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return Key(int(tonic), MODES[int(mode)], float(scores[mode, tonic]))


def transpose_key(key: Key, semitones: float) -> Key:
    """The key after a shift of ``semitones`` (rounded to the nearest semitone); octaves keep the key."""
    return Key((key.tonic + int(round(semitones))) % 12, key.mode, key.confidence)
