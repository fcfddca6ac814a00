"""``seedvc``: the Seed-VC converter (44.1 kHz f0-conditioned DiT + BigVGAN), behind the
:class:`~singvc.converters.base.Converter` interface.

This module imports neither torch nor transformers: the networks live in
:mod:`singvc.converters.seedvc.runtime`, loaded (with ``importlib``, the heavy-package rule) the
first time a voice is prepared or a vocal converted. Missing weights are found before that,
from the file table alone (:func:`singvc.weights.seedvc_missing`): one line, exit 3, no torch.

Phase 1 (issue 14): the reference is the voice's clips joined, trimmed of leading silence and cut
to 25 s; the vocal is converted in fixed windows of (30 s − reference) with 16-frame cross-fades,
as the reference implementation does. Pause-aware windows, best-25-s selection and the per-voice
cache are not done yet.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ...audio import DiskAudio, load_audio, resample
from ...cache import file_checksum
from ...errors import InvalidReferenceError, UserInputError, WeightsUnavailableError
from ...pitch import PitchTrack, load_pitch_model, track_pitch
from ...weights import seedvc_folder, seedvc_missing
from ..base import Converter, check_inputs, register

RUNTIME = "singvc.converters.seedvc.runtime"
FEATURES = "singvc.converters.seedvc.features"
#: mel frames cross-faded at each window join (as the reference implementation)
OVERLAP_FRAMES = 16
#: the reference is cut to this many seconds (the model's in-context prompt)
MAX_REFERENCE_SECONDS = 25


def window_spans(voiced: np.ndarray, window: int, overlap: int, search: int | None = None) -> list[tuple[int, int]]:
    """Frame spans ``[(start, stop), ...]`` covering ``len(voiced)`` frames, each at most ``window``
    long; consecutive spans share ``overlap`` frames (the cross-fade), centred where possible in
    the longest pause (unvoiced run) among the last ``search`` frames of a window (default a
    third of it), else at the window's end."""
    total = int(len(voiced))
    if window <= 2 * overlap:
        raise ValueError(f"window ({window} frames) must exceed twice the overlap ({overlap})")
    search = window // 3 if search is None else search
    half = overlap // 2
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        if total - start <= window:
            spans.append((start, total))
            return spans
        lo = max(start + window - search, start + overlap + half + 1)
        hi = start + window - (overlap - half)  # the cut: stop = cut + (overlap - half) <= start + window
        quiet = ~np.asarray(voiced[lo:hi], bool)
        cut = hi
        if quiet.any():
            edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
            runs = list(zip(edges[::2], edges[1::2]))
            a, b = max(runs, key=lambda r: (r[1] - r[0], r[0]))
            cut = lo + (a + b) // 2
        spans.append((start, cut + overlap - half))
        start = cut - half


@dataclass
class PreparedVoice:
    """What the converter derived from a target voice (``features`` is a runtime.ReferenceFeatures)."""

    name: str
    features: Any
    seconds: float


@register
class SeedVCConverter(Converter):
    name: ClassVar[str] = "seedvc"
    summary: ClassVar[str] = "Seed-VC neural zero-shot conversion (44.1 kHz DiT + BigVGAN; weights: singvc models fetch seedvc)"
    sample_rate: ClassVar[int | None] = 44100
    uses_voice: ClassVar[bool] = True
    settings: ClassVar[tuple[str, ...]] = ("steps", "cfg", "seed", "seedvc_dir")

    def __init__(self, steps: int = 30, cfg: float = 0.7, seed: int = 0, seedvc_dir: str | None = None):
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= 200:
            raise UserInputError(f"steps must be an integer from 1 to 200 (got {steps!r})")
        if not isinstance(cfg, (int, float)) or not 0.0 <= float(cfg) <= 5.0:
            raise UserInputError(f"cfg must be a number from 0 to 5 (got {cfg!r})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise UserInputError(f"seed must be a whole number >= 0 (got {seed!r})")
        self.steps, self.cfg, self.seed, self.seedvc_dir = int(steps), float(cfg), int(seed), seedvc_dir
        self._stack = None
        self._files: list[dict] | None = None

    # -- models -------------------------------------------------------------------------------------
    def check_ready(self) -> None:
        """Raise :class:`WeightsUnavailableError` (one line) when a Seed-VC file is missing; no torch."""
        self.check_weights()

    def check_weights(self) -> None:
        """Raise :class:`WeightsUnavailableError` (one line) when a Seed-VC file is missing; no torch."""
        problem = seedvc_missing(self.seedvc_dir)
        if problem:
            raise WeightsUnavailableError(problem)

    def stack(self):
        """The loaded networks (``runtime.SeedVCStack``), once."""
        if self._stack is None:
            self.check_weights()
            runtime = importlib.import_module(RUNTIME)
            self._stack = runtime.SeedVCStack.from_folder(seedvc_folder(self.seedvc_dir), device=self.device)
        return self._stack

    # -- the target voice ---------------------------------------------------------------------------
    def prepare(self, voice: Any) -> PreparedVoice:
        self.check_weights()
        clips = list(getattr(voice, "clips", []) or [])
        if not clips:
            raise InvalidReferenceError(f"voice {getattr(voice, 'name', voice)!r} keeps no clip: the seedvc "
                                        "converter needs the reference audio (enroll it from a clip, or pass --voice CLIP)")
        rate = self.sample_rate
        parts = []
        for clip in clips:
            audio, sr = load_audio(clip, "voice clip")
            parts.append(resample(audio.mean(axis=0, keepdims=True), sr, rate)[0])
        audio = np.concatenate(parts).astype(np.float32)
        level = np.abs(audio)
        loud = np.flatnonzero(level > 10 ** (-40 / 20) * max(float(level.max()), 1e-9))
        start = int(loud[0]) if loud.size else 0
        audio = audio[start: start + rate * MAX_REFERENCE_SECONDS]
        track = track_pitch(audio[None], rate, load_pitch_model("tiny", self.device, backend="auto"))
        return self.prepare_audio(audio[None], rate, track, getattr(voice, "name", "reference"))

    def prepare_audio(self, audio: np.ndarray, sample_rate: int, pitch: PitchTrack, name: str = "reference") -> PreparedVoice:
        """What the model derives from a reference clip (float32 ``[channels, samples]`` at
        ``sample_rate`` = 44100, at most 25 s are used) and its pitch track: style vector, prompt
        mel, content features and F0 conditioning."""
        if sample_rate != self.sample_rate:
            raise UserInputError(f"the seedvc converter works at {self.sample_rate} Hz (got {sample_rate})")
        mono = np.asarray(audio, np.float32).mean(axis=0)[: sample_rate * MAX_REFERENCE_SECONDS]
        torch = importlib.import_module("torch")
        features = importlib.import_module(FEATURES)
        f0 = features.f0_on_grid(pitch.times, pitch.f0, pitch.voiced, mono.size, sample_rate)
        prepared = self.stack().reference_features(torch.from_numpy(mono)[None], torch.from_numpy(f0)[None])
        return PreparedVoice(name, prepared, mono.size / sample_rate)

    # -- conversion -----------------------------------------------------------------------------------
    def convert(self, vocals, sample_rate: int, pitch: PitchTrack, semitones: float, voice: Any = None,
                progress: bool = False, callback: Callable[[dict], None] | None = None,
                out: "np.ndarray | DiskAudio | None" = None) -> np.ndarray:
        audio = check_inputs(vocals, sample_rate, pitch, semitones)
        if sample_rate != self.sample_rate:
            raise UserInputError(f"the seedvc converter works at {self.sample_rate} Hz (got {sample_rate})")
        if not isinstance(voice, PreparedVoice):
            raise UserInputError("the seedvc converter needs a target voice (--voice)")
        torch = importlib.import_module("torch")
        features = importlib.import_module(FEATURES)
        stack = self.stack()
        n = audio.shape[-1]
        mono = np.asarray(audio[:, :], dtype=np.float32).mean(axis=0)
        f0 = features.f0_on_grid(pitch.times, np.asarray(pitch.f0) * 2.0 ** (float(semitones) / 12.0),
                                 pitch.voiced, n, sample_rate)
        ref = voice.features
        src = stack.source_features(torch.from_numpy(mono)[None], torch.from_numpy(f0)[None])
        frames = src.cond.shape[1]
        grid_voiced = f0 > 0  # 100 frames/s -> mel frames (nearest)
        at = np.minimum((np.arange(frames) * stack.config.hop_length / sample_rate * 100).round().astype(int),
                        grid_voiced.size - 1)
        wave = self._windows(stack, src.cond, ref, grid_voiced[at], progress, callback, n / sample_rate)
        wave = np.pad(wave, (0, max(0, n - wave.size)))[:n].astype(np.float32)
        out = out if out is not None else np.zeros(audio.shape, np.float32)
        for ch in range(audio.shape[0]):
            out[ch, :] = wave
        return out

    def _windows(self, stack, cond, ref, voiced, progress, callback, seconds_total: float) -> np.ndarray:
        """Sample and vocode ``cond`` in windows of at most (context − prompt) frames, cut in pauses
        (:func:`window_spans`) and joined by squared-cosine cross-fades over :data:`OVERLAP_FRAMES`;
        every window gets the same prompt and style, and noise from its own generator (``seed + k``)."""
        torch = importlib.import_module("torch")
        runtime = importlib.import_module(RUNTIME)
        c = stack.config
        hop = c.hop_length
        window = c.sample_rate // hop * runtime.CONTEXT_SECONDS - ref.mel.shape[-1]
        fade = OVERLAP_FRAMES * hop
        ramp_out = (np.cos(np.linspace(0, np.pi / 2, fade)) ** 2).astype(np.float32)
        out = np.zeros(cond.shape[1] * hop, np.float32)
        for k, (a, b) in enumerate(window_spans(voiced, window, OVERLAP_FRAMES)):
            mel = stack.sample(torch.cat([ref.prompt_cond, cond[:, a:b]], dim=1), ref, self.steps, self.cfg, self.seed + k)
            wave = stack.vocode(mel)[0].cpu().numpy()
            if k > 0:  # fade in over the previous window's fade-out (both cover the same 16 frames)
                wave[:fade] *= ramp_out[::-1]
                out[a * hop: a * hop + fade] *= ramp_out
                out[a * hop: a * hop + fade] += wave[:fade]
                out[a * hop + fade: b * hop] = wave[fade:]
            else:
                out[: b * hop] = wave
            if callback is not None:
                callback({"stage": "convert", "seconds_done": b * hop / c.sample_rate, "seconds_total": seconds_total})
        return out

    def model_files(self) -> list[dict]:
        """Each Seed-VC file read: path relative to the model folder, bytes and SHA-256 (hashed once)."""
        if self._files is None:
            runtime = importlib.import_module(RUNTIME)
            root = seedvc_folder(self.seedvc_dir)
            self._files = [{"file": str(p.relative_to(root)), **file_checksum(p)} for p in runtime.required_files(root)]
        return self._files

    def describe(self) -> dict:
        """Name, steps, cfg, seed; after the models are loaded also the folder and every file with its checksum."""
        info = {"name": self.name, "steps": self.steps, "cfg": self.cfg, "seed": self.seed}
        if self._stack is not None:
            info["model_folder"] = str(seedvc_folder(self.seedvc_dir))
            info["model_files"] = self.model_files()
        return info
