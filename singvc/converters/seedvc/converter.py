"""``seedvc``: the Seed-VC converter (44.1 kHz f0-conditioned DiT + BigVGAN), behind the
:class:`~singvc.converters.base.Converter` interface.

This module imports neither torch nor transformers: the networks live in
:mod:`singvc.converters.seedvc.runtime`, loaded (with ``importlib``, the heavy-package rule) the
first time a voice is prepared or a vocal converted. Missing weights are found before that,
from the file table alone (:func:`singvc.weights.seedvc_missing`): one line, exit 3, no torch.

The reference: the audio the voice profile keeps (:class:`~singvc.voice.VoiceClip`) and its
crepe track, from the engine; its best at most 25 s of singing (:func:`select_reference`: long
pauses shortened, then the most voiced stretch) is the model's prompt. What the model derives from
it (style vector, prompt mel, content features, F0 conditioning) is kept in the results cache per
reference audio, model files and pitch track, so a second song with the same voice skips it.

The vocal: windows of at most (30 s − prompt) cut in pauses (:func:`window_spans`), every window
with the same prompt and style and its own noise seed (``seed + k``), joined by 16-frame
squared-cosine cross-fades and written into the output window by window.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ...audio import DiskAudio, blocks, resample
from ...cache import Cache, audio_digest, file_checksum
from ...errors import InvalidReferenceError, UserInputError, WeightsUnavailableError
from ...pitch import PitchTrack
from ...settings import check
from ...weights import seedvc_folder, seedvc_missing
from ..base import Converter, Reference, check_inputs, register

RUNTIME = "singvc.converters.seedvc.runtime"
FEATURES = "singvc.converters.seedvc.features"
#: mel frames cross-faded at each window join (as the reference implementation)
OVERLAP_FRAMES = 16
#: the reference is cut to this many seconds (the model's in-context prompt)
MAX_REFERENCE_SECONDS = 25
#: a pause in the reference keeps this many seconds (longer ones are cut out)
PAUSE_KEPT_SECONDS = 0.3
#: silence kept before the first and after the last voiced frame of the reference
EDGE_SECONDS = 0.1
#: fade where two cut pieces of the reference meet
JOIN_FADE_SECONDS = 0.01
#: the version of the reference selection (part of the per-voice cache key)
SELECT_VERSION = 1


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


def select_reference(f0: np.ndarray, max_seconds: float = MAX_REFERENCE_SECONDS, frame_rate: int = 100,
                     keep_pause: float = PAUSE_KEPT_SECONDS, edge: float = EDGE_SECONDS) -> list[tuple[int, int]]:
    """The best at most ``max_seconds`` of a reference, as frame spans ``[(start, stop), ...]`` on
    its F0 grid (``frame_rate`` frames/s, 0 = unvoiced) to be joined in order.

    Pauses longer than ``keep_pause`` keep only ``keep_pause`` (half after the singing, half
    before it), leading and trailing silence keeps ``edge``; if what remains is still longer
    than ``max_seconds``, the stretch of that length holding the most voiced frames is taken
    (the earliest of equals), ending in a pause where one lies in its last two seconds."""
    voiced = np.asarray(f0) > 0
    n = voiced.size
    if not voiced.any():
        return [(0, min(n, int(max_seconds * frame_rate)))]
    keep = np.zeros(n, bool)
    idx = np.flatnonzero(voiced)
    first, last = int(idx[0]), int(idx[-1]) + 1
    keep[max(0, first - int(edge * frame_rate)): min(n, last + int(edge * frame_rate))] = True
    half = int(keep_pause * frame_rate / 2)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], (~voiced).astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):  # pauses between first and last voiced frame
        if a > first and b < last and b - a > 2 * half:
            keep[a + half: b - half] = False
    kept = np.flatnonzero(keep)  # frame index of each kept frame, in order
    limit = int(max_seconds * frame_rate)
    if kept.size > limit:
        counts = np.concatenate([[0], np.cumsum(voiced[kept])])
        scores = counts[limit:] - counts[:-limit]
        s0 = int(np.argmax(scores))
        window = kept[s0: s0 + limit]
        tail_len = min(window.size, 2 * frame_rate)
        tail = ~voiced[window[-tail_len:]]
        if tail.any():  # end in the last pause of the final two seconds
            window = window[: window.size - tail_len + int(np.flatnonzero(tail)[-1]) + 1]
        kept = window
    breaks = np.flatnonzero(np.diff(kept) != 1)
    starts = np.concatenate([[kept[0]], kept[breaks + 1]])
    stops = np.concatenate([kept[breaks] + 1, [kept[-1] + 1]])
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def join_spans(audio: np.ndarray, spans: list[tuple[int, int]], hop: int, fade: int) -> np.ndarray:
    """``audio`` (1-D) cut to the frame ``spans`` (``hop`` samples per frame) and joined, each
    piece faded in and out over ``fade`` samples where it meets another (cuts lie in pauses)."""
    pieces = []
    ramp = np.sin(np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)) ** 2
    for k, (a, b) in enumerate(spans):
        piece = np.array(audio[a * hop: b * hop], np.float32)
        m = min(fade, piece.size // 2)
        if k > 0 and m:
            piece[:m] *= ramp[:m]
        if k < len(spans) - 1 and m:
            piece[-m:] *= ramp[:m][::-1]
        pieces.append(piece)
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


@dataclass
class PreparedVoice:
    """What the converter derived from a target voice (``features`` is a runtime.ReferenceFeatures)."""

    name: str
    features: Any
    seconds: float
    cached: bool = False


@register
class SeedVCConverter(Converter):
    name: ClassVar[str] = "seedvc"
    summary: ClassVar[str] = ("Seed-VC neural zero-shot conversion toward the target voice (44.1 kHz DiT + BigVGAN; "
                              "its weights are downloaded once, see Models)")
    sample_rate: ClassVar[int | None] = 44100
    uses_voice: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = True
    settings: ClassVar[tuple[str, ...]] = ("steps", "cfg", "seed", "seedvc_dir")

    def __init__(self, steps: int = 30, cfg: float = 0.7, seed: int = 0, seedvc_dir: str | None = None):
        where = "seedvc converter"  # each value against the schema's declaration
        self.steps, self.cfg, self.seed = (int(check("steps", steps, where)), float(check("cfg", cfg, where)),
                                           int(check("seed", seed, where)))
        self.seedvc_dir = check("seedvc_dir", seedvc_dir, where)
        self._stack = None
        self._files: list[dict] | None = None
        self._references: dict[str, dict] = {}
        self._last: dict | None = None

    # -- models -------------------------------------------------------------------------------------
    def check_ready(self) -> None:
        """Raise :class:`WeightsUnavailableError` (one line) when a Seed-VC file is missing; no torch."""
        problem = seedvc_missing(self.seedvc_dir)
        if problem:
            raise WeightsUnavailableError(problem)

    def stack(self):
        """The loaded networks (``runtime.SeedVCStack``), once."""
        if self._stack is None:
            self.check_ready()
            runtime = importlib.import_module(RUNTIME)
            self._stack = runtime.SeedVCStack.from_folder(seedvc_folder(self.seedvc_dir), device=self.device)
        return self._stack

    # -- the target voice ---------------------------------------------------------------------------
    def prepare(self, voice: Any, reference: Reference | None = None, cache: Cache | None = None) -> PreparedVoice:
        """Style vector, prompt mel, content features and F0 conditioning of the best at most 25 s
        of the voice's reference (:func:`select_reference`), kept in ``cache`` per reference
        audio, model files and pitch track, so a second song with the same voice skips them."""
        self.check_ready()
        if reference is None:
            raise InvalidReferenceError(f"the seedvc converter needs the reference audio of voice "
                                        f"{getattr(voice, 'name', voice)!r}")
        name = getattr(voice, "name", "reference")
        clip, track = reference.clip, reference.track
        rate = self.sample_rate
        settings = {"converter": self.name, "select": SELECT_VERSION, "pitch_model": track.model,
                    "pitch_refined": bool(track.refined),
                    "models": {f["file"]: f["sha256"] for f in self.model_files()}}
        digest = audio_digest(clip.audio, clip.sample_rate)
        keys = ("content", "mel", "fbank", "style", "prompt_cond", "spans", "seconds")
        if cache is not None:
            arrays = cache.load("seedvc-voice", digest, settings, keys=keys)
            if arrays is not None:
                torch = importlib.import_module("torch")
                runtime = importlib.import_module(RUNTIME)
                device = self.stack().device
                features = runtime.ReferenceFeatures(*(torch.from_numpy(arrays[k]).to(device) for k in keys[:5]))
                self._references[name] = {"seconds": float(arrays["seconds"]),
                                          "spans_s": (arrays["spans"] / 100.0).round(2).tolist(), "cached": True}
                return PreparedVoice(name, features, float(arrays["seconds"]), cached=True)
        mono = resample(np.asarray(clip.audio, np.float32).mean(axis=0, keepdims=True), clip.sample_rate, rate)[0]
        features_mod = importlib.import_module(FEATURES)
        f0 = features_mod.f0_on_grid(track.times, track.f0, track.voiced, mono.size, rate)
        spans = select_reference(f0)
        hop = rate // 100
        audio = join_spans(mono, spans, hop, int(JOIN_FADE_SECONDS * rate))
        f0_sel = np.concatenate([f0[a:b] for a, b in spans]) if spans else f0[:0]
        n_grid = features_mod.grid_frames(audio.size, rate)  # the joined audio's own grid length
        f0_sel = np.pad(f0_sel, (0, max(0, n_grid - f0_sel.size)))[:n_grid].astype(np.float32)
        prepared = self.prepare_audio(audio[None], rate, f0_sel, name)
        self._references[name] = {"seconds": round(prepared.seconds, 2),
                                  "spans_s": [[round(a / 100, 2), round(b / 100, 2)] for a, b in spans], "cached": False}
        if cache is not None:
            f = prepared.features
            cache.save("seedvc-voice", digest, settings, {
                **{k: getattr(f, k).detach().cpu().numpy() for k in keys[:5]},
                "spans": np.asarray(spans, np.int64).reshape(-1, 2), "seconds": np.float64(prepared.seconds)})
        return prepared

    def prepare_audio(self, audio: np.ndarray, sample_rate: int, f0: "np.ndarray | PitchTrack",
                      name: str = "reference") -> PreparedVoice:
        """What the model derives from a reference clip (float32 ``[channels, samples]`` at
        ``sample_rate`` = 44100, at most 25 s are used) and its F0 (a pitch track, or Hz on the
        model's 100 frames/s grid): style vector, prompt mel, content features and F0 conditioning."""
        if sample_rate != self.sample_rate:
            raise UserInputError(f"the seedvc converter works at {self.sample_rate} Hz (got {sample_rate})")
        mono = np.asarray(audio, np.float32).mean(axis=0)[: sample_rate * MAX_REFERENCE_SECONDS]
        torch = importlib.import_module("torch")
        features = importlib.import_module(FEATURES)
        if isinstance(f0, PitchTrack):
            f0 = features.f0_on_grid(f0.times, f0.f0, f0.voiced, mono.size, sample_rate)
        prepared = self.stack().reference_features(torch.from_numpy(mono)[None],
                                                   torch.from_numpy(np.asarray(f0, np.float32))[None])
        return PreparedVoice(name, prepared, mono.size / sample_rate)

    # -- conversion -----------------------------------------------------------------------------------
    def convert(self, vocals, sample_rate: int, pitch: PitchTrack, semitones: float, voice: Any = None,
                progress: bool = False, callback: Callable[[dict], None] | None = None,
                out: "np.ndarray | DiskAudio | None" = None) -> np.ndarray:
        """The vocal converted toward ``voice`` (a :class:`PreparedVoice`), its melody the crepe
        track moved by ``semitones``; mono output written to every channel of ``out``.

        Content features and conditioning are computed for the whole vocal (about 10 MB per
        minute of audio); sampling and vocoding run window by window and each window's audio is
        written into ``out`` as it is done, so a DiskAudio ``out`` keeps memory flat."""
        audio = check_inputs(vocals, sample_rate, pitch, semitones)
        if sample_rate != self.sample_rate:
            raise UserInputError(f"the seedvc converter works at {self.sample_rate} Hz (got {sample_rate})")
        if not isinstance(voice, PreparedVoice):
            raise UserInputError("the seedvc converter needs a target voice (--voice)")
        torch = importlib.import_module("torch")
        features = importlib.import_module(FEATURES)
        stack = self.stack()
        n = audio.shape[-1]
        mono = np.zeros(n, np.float32)
        for a, b in blocks(n):
            mono[a:b] = np.asarray(audio[:, a:b], np.float32).mean(axis=0)
        f0 = features.f0_on_grid(pitch.times, np.asarray(pitch.f0) * 2.0 ** (float(semitones) / 12.0),
                                 pitch.voiced, n, sample_rate)
        src = stack.source_features(torch.from_numpy(mono)[None], torch.from_numpy(f0)[None])
        del mono
        frames = src.cond.shape[1]
        grid_voiced = f0 > 0  # 100 frames/s -> mel frames (nearest)
        at = np.minimum((np.arange(frames) * stack.config.hop_length / sample_rate * 100).round().astype(int),
                        grid_voiced.size - 1)
        out = out if out is not None else np.zeros(audio.shape, np.float32)
        self._windows(stack, src.cond, voice.features, grid_voiced[at], out, n, progress, callback)
        return out

    def _windows(self, stack, cond, ref, voiced, out, n: int, progress: bool,
                 callback: Callable[[dict], None] | None) -> None:
        """Sample and vocode ``cond`` in windows of at most (context − prompt) frames, cut in pauses
        (:func:`window_spans`) and joined by squared-cosine cross-fades over :data:`OVERLAP_FRAMES`;
        every window gets the same prompt and style, and noise from its own generator (``seed + k``).
        Each window's audio up to the next window's cross-fade is written into ``out[:, :n]``."""
        torch = importlib.import_module("torch")
        runtime = importlib.import_module(RUNTIME)
        c = stack.config
        hop = c.hop_length
        window = c.sample_rate // hop * runtime.CONTEXT_SECONDS - ref.mel.shape[-1]
        fade = OVERLAP_FRAMES * hop
        ramp_out = (np.cos(np.linspace(0, np.pi / 2, fade)) ** 2).astype(np.float32)
        spans = window_spans(voiced, window, OVERLAP_FRAMES)
        total = n / c.sample_rate
        self._last = {"windows": len(spans), "window_seconds": round(window * hop / c.sample_rate, 3),
                      "joins_s": [round((a + OVERLAP_FRAMES / 2) * hop / c.sample_rate, 3) for a, _ in spans[1:]]}
        bar = None
        if progress:
            import tqdm

            bar = tqdm.tqdm(total=round(total, 2), unit="s", desc="convert", leave=False,
                            bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s [{elapsed}<{remaining}]")
        carry = np.zeros(0, np.float32)  # the previous window's fade-out, not yet written
        try:
            for k, (a, b) in enumerate(spans):
                mel = stack.sample(torch.cat([ref.prompt_cond, cond[:, a:b]], dim=1), ref, self.steps, self.cfg,
                                   self.seed + k)
                wave = stack.vocode(mel)[0].cpu().numpy().astype(np.float32)
                if k > 0:  # fade in over the previous window's fade-out (both cover the same 16 frames)
                    wave[:fade] *= ramp_out[::-1]
                    wave[:fade] += carry
                last = k == len(spans) - 1
                keep = wave if last else wave[: wave.size - fade]
                if not last:
                    carry = wave[wave.size - fade:] * ramp_out
                lo = a * hop
                hi = min(n, lo + keep.size)
                if hi > lo:
                    out[:, lo:hi] = np.broadcast_to(keep[: hi - lo], (out.shape[0], hi - lo))
                done = hi / c.sample_rate
                if bar is not None:
                    bar.n = round(done, 2)
                    bar.refresh()
                if callback is not None:
                    callback({"stage": "convert", "seconds_done": done, "seconds_total": total})
            end = min(n, spans[-1][1] * hop) if spans else 0
            if end < n:  # the vocoder's frames stop short of the last samples
                out[:, end:n] = np.zeros((out.shape[0], n - end), np.float32)
        finally:
            if bar is not None:
                bar.close()

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
        if self._references:
            info["references"] = self._references
        if self._last:
            info["last_conversion"] = self._last  # windows and where they join (centres of the cross-fades)
        if self._stack is not None:
            info["model_folder"] = str(seedvc_folder(self.seedvc_dir))
            info["model_files"] = self.model_files()
        return info
