"""The converter interface and its registry.

A converter takes the separated vocal (float32 ``[channels, samples]`` at ``sample_rate`` Hz), its
pitch track from :func:`singvc.pitch.track_pitch`, a transposition in semitones and, when it
uses one, the target voice as :meth:`Converter.prepare` made it; it returns a vocal of exactly
the same shape, sample-aligned with the input (no delay), so that it can be mixed straight back
over the accompaniment.

Every backend subclasses :class:`Converter` and registers itself with :func:`register`; the
command line, recipes, presets and the settings schema take their choices from :func:`names`.
The engine builds a converter once with :func:`build` and reuses it across sections and songs;
nothing outside this package branches on a converter's name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ..audio import DiskAudio, as_audio, blocks, check_finite
from ..cache import Cache
from ..errors import UserInputError
from ..pitch import PitchTrack
from ..plan import MAX_SEMITONES
from ..settings import set_choices
from ..voice import VoiceClip


@dataclass
class Reference:
    """A target voice's reference audio (mono, at its own rate) and its pitch track, for
    converters that condition on audio (:attr:`Converter.needs_reference`)."""

    clip: VoiceClip
    track: PitchTrack


class Converter:
    """What the cover pipeline needs from a voice converter.

    Class attributes:
        name: the registry name (``"none"``, ``"pitch"``, ``"dsp"``, ...).
        summary: one line for ``--help``.
        sample_rate: the rate it works at in Hz (``None``: any; it is given the vocal's rate).
        uses_voice: whether it converts toward a target voice (it is then given the voice
            :meth:`prepare` made; without one it keeps the singer's timbre).
        needs_reference: whether :meth:`prepare` needs the voice's reference audio (a
            :class:`Reference`: the clip the profile keeps and its pitch track) besides the profile.
        settings: the names of its settings in :data:`singvc.settings.SCHEMA` (constructor
            arguments of the same names; :meth:`from_settings` reads them).

    Attributes:
        device: where it computes (``cpu`` or ``cuda``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    sample_rate: ClassVar[int | None] = None
    uses_voice: ClassVar[bool] = False
    needs_reference: ClassVar[bool] = False
    settings: ClassVar[tuple[str, ...]] = ()
    #: whether the output follows the plan's shift (the bypass does not move the vocal)
    moves_pitch: ClassVar[bool] = True
    device: str = "cpu"

    @classmethod
    def from_settings(cls, settings: Any, device: str = "cpu") -> "Converter":
        """Build from a :class:`~singvc.settings.CoverSettings` (only this converter's own settings are read)."""
        converter = cls(**{key: getattr(settings, key) for key in cls.settings})
        converter.device = device
        return converter

    def check_ready(self) -> None:
        """Raise when this converter cannot run here (e.g. its weights are missing:
        :class:`~singvc.errors.WeightsUnavailableError`), quickly and without loading a network,
        so a job can stop before any audio work. The default has nothing to check."""

    def prepare(self, voice: Any, reference: Reference | None = None, cache: Cache | None = None) -> Any:
        """What :meth:`convert` needs from a target voice (a :class:`~singvc.voice.VoiceProfile`),
        computed once per voice: the engine keeps the result and hands it to every conversion
        toward that voice. The default keeps the profile as it is.

        A converter with :attr:`needs_reference` is also given the voice's ``reference`` audio and
        its pitch track, and the results ``cache``, where it may keep what it derives per voice."""
        return voice

    def convert(
        self,
        vocals: np.ndarray,
        sample_rate: int,
        pitch: PitchTrack,
        semitones: float,
        voice: Any = None,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
        out: "np.ndarray | DiskAudio | None" = None,
    ) -> np.ndarray:
        """Convert ``vocals`` (float32 ``[channels, samples]`` at ``sample_rate`` Hz, an array or
        a :class:`~singvc.audio.DiskAudio`).

        Args:
            pitch: the pitch track of ``vocals`` (crepe, :func:`singvc.pitch.track_pitch`).
            semitones: transposition to apply to the melody.
            voice: the target voice as :meth:`prepare` made it, or ``None`` to keep the singer's timbre.
            progress: show a progress bar (tqdm, counting seconds of audio) on stderr.
            callback: called with ``{"stage": "convert", "seconds_done", "seconds_total"}``.
            out: where the converted vocal is written (same shape as ``vocals``, e.g. a
                :class:`~singvc.audio.DiskAudio` for bounded memory); default a new array.

        Returns:
            float32 ``[channels, samples]`` (``out`` when given), the shape of ``vocals``, sample-aligned.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        """What the report records about this converter (its name, settings and, after a
        conversion, what it measured)."""
        return {"name": self.name, **{key: getattr(self, key) for key in self.settings}}


def check_inputs(vocals: np.ndarray, sample_rate: int, pitch: PitchTrack, semitones: float) -> np.ndarray:
    """Validate the arguments shared by every converter; return ``vocals`` as float32 2-D."""
    audio = as_audio(vocals, "vocals")
    check_finite(audio, "vocals")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise UserInputError(f"sample_rate must be a positive int in Hz (got {sample_rate!r})")
    if not isinstance(pitch, PitchTrack):
        raise UserInputError(f"pitch must be a singvc.pitch.PitchTrack (got {type(pitch).__name__})")
    if not (len(pitch.times) == len(pitch.f0) == len(pitch.voiced)):
        raise UserInputError(
            f"pitch track arrays differ in length (times {len(pitch.times)}, f0 {len(pitch.f0)}, "
            f"voiced {len(pitch.voiced)})"
        )
    if not (isinstance(semitones, (int, float, np.number)) and math.isfinite(float(semitones))):
        raise UserInputError(f"semitones must be a finite number (got {semitones!r})")
    if abs(float(semitones)) > MAX_SEMITONES:
        raise UserInputError(f"semitones must be within ±{MAX_SEMITONES:g} (got {semitones})")
    return audio



def voiced_runs(pitch: PitchTrack, n_samples: int, sample_rate: int) -> list[tuple[int, int]]:
    """Voiced regions of ``pitch`` as sample ranges ``[(start, stop), ...]`` within ``[0, n_samples)``.

    Each sample takes the voicing of the nearest frame; samples past the last frame by more
    than one hop (a track shorter than the audio) count as unvoiced.
    """
    voiced = np.asarray(pitch.voiced, dtype=bool)
    if voiced.size == 0 or n_samples == 0:
        return []
    t0 = float(pitch.times[0])
    hop = float(pitch.hop)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = []
    for a, b in zip(edges[::2], edges[1::2]):
        start_s = t0 + (a - 0.5) * hop if a > 0 else min(0.0, t0)
        stop_s = t0 + (b - 0.5) * hop if b < len(voiced) else t0 + (len(voiced) - 1) * hop + hop
        start = int(np.clip(round(start_s * sample_rate), 0, n_samples))
        stop = int(np.clip(round(stop_s * sample_rate), 0, n_samples))
        if stop > start:
            runs.append((start, stop))
    return runs



def copy_into_like(vocals, out=None, gain: float = 1.0):
    """``vocals * gain`` block by block into ``out`` (default a new array) — a helper for simple backends."""
    audio = as_audio(vocals, "vocals")
    out = out if out is not None else np.zeros(audio.shape, np.float32)
    for a, b in blocks(audio.shape[-1]):
        out[:, a:b] = audio[:, a:b] * np.float32(gain)
    return out


#: converter name -> class
CONVERTERS: dict[str, type[Converter]] = {}


def register(cls: type[Converter]) -> type[Converter]:
    """Make ``cls`` reachable by its ``name`` (usable as a class decorator); the ``converter``
    setting's choices follow the registry."""
    CONVERTERS[cls.name] = cls
    set_choices("converter", tuple(CONVERTERS))
    return cls


def names() -> tuple[str, ...]:
    """Registered converter names, in registration order."""
    return tuple(CONVERTERS)


def converter_class(name: str) -> type[Converter]:
    if name not in CONVERTERS:
        raise UserInputError(f"unknown converter {name!r}; choose one of {', '.join(sorted(CONVERTERS))}")
    return CONVERTERS[name]


def get_converter(name: str, **options) -> Converter:
    """Build the converter registered as ``name`` with ``options`` (its constructor's arguments).

    Raises:
        UserInputError: unknown name (the message lists the choices) or unknown/invalid option.
    """
    cls = converter_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise UserInputError(f"converter {name!r}: bad options {sorted(options)} ({exc})") from exc


def build(settings: Any, device: str = "cpu") -> Converter:
    """The converter ``settings.converter`` with its settings from ``settings``."""
    return converter_class(settings.converter).from_settings(settings, device)
