"""The engine: the loaded models, the cache and the stages that use them.

:class:`Engine` holds what is expensive to make — the Demucs separator, the crepe models, the
converter (built once per set of its settings) and what the converter prepared from each target
voice — and offers the stages as methods (:meth:`Engine.separate`, :meth:`Engine.track`, ...).
Everything else is an argument, as in demucs' ``api.Separator``. The cover algorithm that orders
the stages lives in :mod:`singvc.cover`; file-level jobs in :mod:`singvc.jobs`.

:meth:`Engine.resolve_target` is singvc's one rule for whom a vocal is converted toward and into
which register: an explicit range, else the voice profile, else the reference clip's register
(none when a transposition is forced).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .audio import (
    as_audio, blocks, check_finite, check_result, difference, load_audio, match_channels, new_like, peak_dbfs,
)
from .backing import SPLIT_VERSION, SplitOptions, SplitReport, split_lead, track_backing
from .cache import Cache, audio_digest
from .converters import Converter, Reference, converter_class
from .errors import InvalidReferenceError, PlanError, UserInputError
from .pitch import REFINE_VERSION, PitchTrack, load_pitch_model, track_pitch
from .plan import Register, measure_register, parse_range
from .run import Timer, buffer_path
from .separate import Separator, load_separator_model
from .settings import CoverSettings, resolve_device
from .voice import VoiceClip, VoiceProfile, analyse_voice, is_profile_ref, load_profile

#: shortest reference clip accepted, seconds
MIN_REFERENCE_SECONDS = 1.0
#: a reference whose sample peak is below this is treated as silent
SILENT_DBFS = -60.0
#: a target voice with less voiced audio than this gets a warning
MIN_VOICED_SECONDS = 3.0
#: the crepe capacity that tracks the backing voice (what docs/backing-benchmark.md measured)
BACKING_PITCH_MODEL = "tiny"


def check_reference(audio: np.ndarray, sample_rate: int, name: str = "reference") -> None:
    """Reject a reference clip that is too short, silent or not finite."""
    check_finite(audio, name)
    seconds = audio.shape[-1] / sample_rate
    if seconds < MIN_REFERENCE_SECONDS:
        raise InvalidReferenceError(
            f"{name} is {seconds:.2f} s long; it needs at least {MIN_REFERENCE_SECONDS:.0f} s (3-60 s recommended)"
        )
    if peak_dbfs(audio) < SILENT_DBFS:
        raise InvalidReferenceError(f"{name} is silent (peak {peak_dbfs(audio):.1f} dBFS)")


@dataclass
class VoiceRef:
    """A target voice as the user gave it: a saved profile, or a reference clip (``audio`` at ``sample_rate``)."""

    name: str
    profile: VoiceProfile | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None


def load_voice(ref: str | os.PathLike) -> VoiceRef:
    """Read a ``--voice`` argument: a profile (a name from ``singvc voice list`` or a ``.json``
    file), else an audio clip (checked: long enough, not silent, finite)."""
    if is_profile_ref(ref):
        profile = load_profile(ref)
        return VoiceRef(name=profile.name, profile=profile)
    audio, rate = load_audio(ref, name=f"reference {ref}")
    check_reference(audio, rate, f"reference {ref}")
    return VoiceRef(name=Path(ref).stem, audio=audio, sample_rate=rate)


@dataclass
class Target:
    """Whom a vocal is converted toward: the register to plan for (``None``: none, e.g. a forced
    transposition) and the voice profile the converter gets (``None``: the converter keeps the timbre)."""

    register: Register | None = None
    voice: VoiceProfile | None = None
    warnings: list[str] = field(default_factory=list)


def voice_key(voice: VoiceProfile, with_reference: bool = False) -> str:
    """A fingerprint of a profile and, ``with_reference``, of the reference audio it keeps (what
    a converter prepared from it is kept under)."""
    h = hashlib.sha256(voice.to_json().encode())
    if with_reference and voice.reference is not None:
        h.update(audio_digest(voice.reference.audio, voice.reference.sample_rate).encode())
    return h.hexdigest()


class Engine:
    """Keeps the separator, crepe models and converters loaded (lazily, on first need) across songs.

    Args:
        settings: the run's settings (``device="auto"`` is resolved here, once).
        cache: where separation and pitch results are kept; ``Cache(enabled=False)`` turns it off.
        separator_model, pitch_model: already-loaded models to use instead of loading by name.
        converter: an already-built converter to use for ``settings.converter``.
        progress: show progress bars (seconds of audio) on stderr.
        callback: receives progress dicts ``{"stage", "seconds_done", "seconds_total"}``.
    """

    def __init__(
        self,
        settings: CoverSettings | None = None,
        cache: Cache | None = None,
        separator_model: object | None = None,
        pitch_model: object | None = None,
        converter: Converter | None = None,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
    ) -> None:
        settings = settings or CoverSettings()
        self.settings = dataclasses.replace(settings, device=resolve_device(settings.device))
        self.cache = cache if cache is not None else Cache()
        self._separator_model = separator_model
        self._pitch_models: dict[str, object] = {}
        if pitch_model is not None:
            self._pitch_models[self.settings.pitch_model] = pitch_model
        self._converters: dict[tuple, Converter] = {}
        self._prepared: dict[tuple, Any] = {}
        if converter is not None:
            self._converters[self._converter_key()] = converter
        self.progress = progress
        self.callback = callback

    # -- models -----------------------------------------------------------------------------
    @property
    def separator_model(self):
        if self._separator_model is None:
            repo = Path(self.settings.separator_repo) if self.settings.separator_repo else None
            self._separator_model = load_separator_model(self.settings.separator_model, repo=repo)
        return self._separator_model

    @property
    def pitch_model(self):
        """The crepe model for the vocal (``settings.pitch_model``)."""
        return self.pitch_model_for(self.settings.pitch_model)

    def pitch_model_for(self, name: str):
        """The crepe model of capacity ``name``, loaded on first use and kept."""
        if name not in self._pitch_models:
            if self.cache.enabled:  # the ONNX export is kept in the cache folder
                self._pitch_models[name] = load_pitch_model(name, self.settings.device,
                                                            backend=self.settings.pitch_backend,
                                                            cache_dir=self.cache.root)
            else:  # exported into a throw-away folder, removed once onnxruntime has read the model
                throwaway = tempfile.mkdtemp(prefix="singvc-onnx-")
                try:
                    self._pitch_models[name] = load_pitch_model(name, self.settings.device,
                                                                backend=self.settings.pitch_backend,
                                                                cache_dir=throwaway)
                finally:
                    shutil.rmtree(throwaway, ignore_errors=True)
        return self._pitch_models[name]

    def _converter_key(self) -> tuple:
        cls = converter_class(self.settings.converter)
        return (cls.name, self.settings.device, *((k, getattr(self.settings, k)) for k in cls.settings))

    def converter(self) -> Converter:
        """The converter of ``settings.converter`` with its settings, built on first use and kept
        (engines made by :meth:`with_settings` share them). A new one is checked at once
        (:meth:`Converter.check_ready`: e.g. its weights in place), before any audio work."""
        key = self._converter_key()
        if key not in self._converters:
            converter = converter_class(self.settings.converter).from_settings(self.settings, self.settings.device)
            converter.check_ready()
            self._converters[key] = converter
        return self._converters[key]

    def prepared_voice(self, converter: Converter, voice: VoiceProfile | None) -> Any:
        """What ``converter`` prepared from ``voice`` (:meth:`Converter.prepare`), made once per
        converter and voice; ``None`` when there is no voice or the converter uses none."""
        if voice is None or not converter.uses_voice:
            return None
        key = (id(converter), voice_key(voice, converter.needs_reference))
        if key not in self._prepared:
            if converter.needs_reference:
                self._prepared[key] = converter.prepare(voice, self.voice_reference(voice, converter.name), self.cache)
            else:
                self._prepared[key] = converter.prepare(voice)
        return self._prepared[key]

    def voice_reference(self, voice: VoiceProfile, needed_by: str = "this converter") -> Reference:
        """The reference audio ``voice`` keeps and its pitch track (``settings.reference_pitch_model``, cached).

        Raises:
            InvalidReferenceError: the profile keeps no audio (shipped voices, profiles enrolled
                before profiles kept their clips).
        """
        clip = self.check_voice_reference(voice, needed_by)
        track, _ = self.track(clip.audio, clip.sample_rate, self.settings.reference_pitch_model)
        return Reference(clip, track)

    @staticmethod
    def check_voice_reference(voice: VoiceProfile, needed_by: str = "this converter") -> VoiceClip:
        """The reference audio ``voice`` keeps, read and checked now (a job calls this before any
        audio work when its converter needs the reference).

        Raises:
            InvalidReferenceError: the profile keeps no audio.
            UserInputError: the kept audio cannot be read.
        """
        if voice.reference is None:
            raise InvalidReferenceError(
                f"voice {voice.name!r} keeps no reference audio, which the {needed_by} converter needs: pass the "
                f"clip itself (--voice CLIP) or enroll the voice again ('singvc voice enroll CLIP --name {voice.name}')")
        voice.reference.audio  # noqa: B018 - read and checked here, not after the separation
        return voice.reference

    def with_settings(self, **changes) -> "Engine":
        """An engine of the same class with some settings changed, sharing this one's loaded
        models, converters, cache and progress options (e.g. one section of a vocal feature)."""
        other = type(self)(dataclasses.replace(self.settings, **changes), cache=self.cache,
                           separator_model=self._separator_model, progress=self.progress, callback=self.callback)
        other._pitch_models = self._pitch_models  # shared: loaded once for both
        other._converters = self._converters
        other._prepared = self._prepared
        return other

    # -- stages -----------------------------------------------------------------------------
    def _separator_cache_settings(self) -> dict:
        repo = self.settings.separator_repo
        listing = None
        if repo and Path(repo).is_dir():
            listing = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in Path(repo).iterdir())
        return {"model": self.settings.separator_model, "repo": str(Path(repo).resolve()) if repo else None,
                "repo_files": listing}

    def separate(self, mix: np.ndarray, sample_rate: int,
                 scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Split ``mix`` into ``(vocals, instrumental, cache_hit)``; ``instrumental = mix - vocals``.

        With a ``scratch`` folder the stems are :class:`~singvc.audio.DiskAudio` files (bounded
        memory whatever the length), else arrays.
        """
        stems, hit = self._separated(mix, sample_rate, scratch, every_stem=False)
        vocals = stems["vocals"]
        return vocals, difference(mix, vocals, buffer_path(scratch, "instrumental")), hit

    def separate_all(self, mix: np.ndarray, sample_rate: int,
                     scratch: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """Every Demucs stem of ``mix`` (``{"drums", "bass", "other", "vocals", ...}``) and whether
        they came from the cache. Stored in the same cache entry as :meth:`separate`'s vocals."""
        return self._separated(mix, sample_rate, scratch, every_stem=True)

    def _separated(self, mix, sample_rate: int, scratch: Path | None, every_stem: bool) -> tuple[dict, bool]:
        mix = as_audio(mix, "song")
        digest = audio_digest(mix, sample_rate)
        settings = self._separator_cache_settings()
        cached = self.cache.load_audio("separation", digest, settings)
        if cached is not None:
            reason = self._stems_problem(cached, mix.shape)
            if reason:  # a verified entry that does not fit this model or song
                self.cache.drop(self.cache.path("separation", digest, settings).with_suffix(""), reason)
                cached = None
        if cached is not None and (not every_stem or len(cached) > 1):
            stems = cached if every_stem else {"vocals": cached["vocals"]}
            return (dict(stems) if scratch is not None else {k: np.asarray(v) for k, v in stems.items()}), True
        separator = Separator(self.separator_model, device=self.settings.device)
        result = separator.separate(mix, sample_rate, progress=self.progress, callback=self.callback,
                                    scratch=scratch)
        for name, stem in result.stems.items():  # checked before it is cached or used
            check_result(stem, f"separated {name} stem")
        self.cache.save_audio("separation", digest, settings, result.stems)
        return (dict(result.stems) if every_stem else {"vocals": result.vocals}), False

    def _stems_problem(self, stems: dict, shape: tuple) -> str | None:
        """Why cached ``stems`` cannot stand for the separation of a mix of ``shape``, or ``None``."""
        if "vocals" not in stems:
            return "no vocals stem"
        wrong = [f"{name}.npy" for name, stem in stems.items() if tuple(stem.shape) != tuple(shape)]
        if wrong:
            return f"{', '.join(wrong)} not of the song's shape {tuple(shape)}"
        sources = getattr(self._separator_model, "sources", None)  # only when the model is loaded anyway
        if sources and set(sources) != set(stems):
            return f"stems {', '.join(sorted(stems))}, the model yields {', '.join(sorted(sources))}"
        return None

    def track(self, audio: np.ndarray, sample_rate: int, model: str | None = None) -> tuple[PitchTrack, bool]:
        """Pitch track of ``audio`` and whether it came from the cache.

        Args:
            model: crepe capacity; default ``settings.pitch_model``.
        """
        audio = as_audio(audio)
        model = model or self.settings.pitch_model
        settings = {"model": model, "hop": self.settings.pitch_hop, "stride": self.settings.pitch_stride}
        if self.settings.pitch_refine:  # unrefined tracks keep the key they were cached under
            settings["refine"] = REFINE_VERSION
        digest = audio_digest(audio, sample_rate)
        keys = ("times", "f0", "periodicity", "voiced", "hop")
        cached = self.cache.load("pitch", digest, settings, keys=keys)
        if cached is not None and not (cached["hop"].shape == () and len({cached[k].shape for k in keys[:4]}) == 1
                                       and cached["times"].ndim == 1):
            self.cache.drop(self.cache.path("pitch", digest, settings), "arrays of unequal shapes")
            cached = None
        if cached is not None:
            return PitchTrack(times=cached["times"], f0=cached["f0"], periodicity=cached["periodicity"],
                              voiced=cached["voiced"].astype(bool), hop=float(cached["hop"]),
                              model=model, refined=self.settings.pitch_refine), True
        track = track_pitch(audio, sample_rate, self.pitch_model_for(model), hop_seconds=self.settings.pitch_hop,
                            stride=self.settings.pitch_stride, refine=self.settings.pitch_refine,
                            progress=self.progress, callback=self.callback)
        track.check_finite()  # checked before it is cached or used
        self.cache.save("pitch", digest, settings, {
            "times": track.times, "f0": track.f0, "periodicity": track.periodicity,
            "voiced": track.voiced, "hop": np.float64(track.hop)})
        return track, False

    def split_backing(self, vocals: np.ndarray, sample_rate: int, track: PitchTrack,
                      scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray, SplitReport, bool]:
        """Split the vocal stem ``vocals`` (tracked as ``track``) into ``(lead, backing, report,
        cache_hit)``.

        The backing's pitch is crepe (:data:`BACKING_PITCH_MODEL`, whatever the vocal's model) on
        what the lead's harmonics leave (:func:`singvc.backing.track_backing`), then
        :func:`singvc.backing.split_lead` writes both parts; ``lead + backing == vocals`` (to float32
        rounding). With a ``scratch`` folder the residual, lead and backing are
        :class:`~singvc.audio.DiskAudio` files there (``vocals_lead_residual``, ``vocals_lead``,
        ``vocals_backing``), else arrays.

        Cached by the vocal's digest, its pitch track's settings and the split's
        (:data:`~singvc.backing.SPLIT_VERSION`, :class:`~singvc.backing.SplitOptions`): the
        decision and, when something was split, both parts, so a second cover of the song skips it.
        """
        vocals = as_audio(vocals, "vocals")
        digest = audio_digest(vocals, sample_rate)
        key = {"version": SPLIT_VERSION, "options": dataclasses.asdict(SplitOptions()), "backing_model": BACKING_PITCH_MODEL,
               "track": {"model": track.model, "refined": bool(track.refined), "hop": track.hop,
                         "frames": len(track.times), "f0": hashlib.sha256(np.ascontiguousarray(track.f0, np.float64)).hexdigest()}}
        cached = self.cache.load("split-report", digest, key, keys=("report",))
        if cached is not None:
            try:
                report = SplitReport(**json.loads(str(cached["report"])))
            except (TypeError, ValueError):
                report = None
            if report is not None and not report.split:
                return vocals, new_like(vocals, buffer_path(scratch, "vocals_backing")), report, True
            parts = self.cache.load_audio("split", digest, key) if report is not None else None
            if parts is not None and set(parts) == {"lead", "backing"}:
                return parts["lead"], parts["backing"], report, True
        residual = new_like(vocals, buffer_path(scratch, "vocals_lead_residual"))
        backing_track = track_backing(vocals, sample_rate, track, self.pitch_model_for(BACKING_PITCH_MODEL),
                                      residual_out=residual, progress=self.progress, callback=self.callback)
        lead, backing, report = split_lead(vocals, sample_rate, track, backing_track=backing_track,
                                           lead_out=new_like(vocals, buffer_path(scratch, "vocals_lead")),
                                           backing_out=new_like(vocals, buffer_path(scratch, "vocals_backing")),
                                           callback=self.callback)
        check_result(lead, "lead vocal")
        check_result(backing, "backing vocal")
        if report.split:
            self.cache.save_audio("split", digest, key, {"lead": lead, "backing": backing})
        self.cache.save("split-report", digest, key, {"report": np.array(json.dumps(report.as_dict()))})
        return lead, backing, report, False

    def target_register(self, reference: np.ndarray, sample_rate: int) -> Register:
        """The register of a reference clip (validated: long enough, not silent, voiced)."""
        check_reference(reference, sample_rate)
        track, _ = self.track(reference, sample_rate, self.settings.reference_pitch_model)
        try:
            register = measure_register(track)
        except PlanError as exc:
            raise InvalidReferenceError(f"reference has no usable pitched voice: {exc}") from None
        register.source = "reference"
        return register

    def voice_profile(self, reference: np.ndarray, sample_rate: int, name: str = "reference") -> VoiceProfile:
        """A :class:`~singvc.voice.VoiceProfile` measured on a reference clip (validated like the register)."""
        reference = as_audio(reference, "reference")
        check_reference(reference, sample_rate)
        track, _ = self.track(reference, sample_rate, self.settings.reference_pitch_model)
        return analyse_voice([(reference, sample_rate)], [track], name)

    def resolve_target(
        self,
        voice: VoiceProfile | None = None,
        reference: np.ndarray | None = None,
        reference_rate: int | None = None,
        target_range: str | None = None,
        transpose: float | None = None,
        timer: Timer | None = None,
        use_voice: bool | None = None,
    ) -> Target:
        """Whom to convert toward and the register to plan for — singvc's one rule.

        The register: ``target_range`` when given; else, unless ``transpose`` forces the shift,
        the voice profile's register, else the reference clip's. The converter gets a profile
        when it uses one (``use_voice``, default: whether the engine's converter does): ``voice``,
        or one measured on ``reference``.
        """
        if use_voice is None:
            use_voice = self.converter().uses_voice
        timer = timer or Timer()
        register: Register | None = None
        warnings: list[str] = []
        with timer.stage("plan"):
            if target_range:
                register = parse_range(target_range)
        if voice is None and reference is not None and use_voice:
            with timer.stage("voice"):
                voice = self.voice_profile(reference, reference_rate)
        if register is None and transpose is None:
            if voice is not None:
                register = voice.to_register()
            elif reference is not None:
                with timer.stage("pitch"):
                    register = self.target_register(as_audio(reference, "reference"), reference_rate)
            if register is not None and register.voiced_seconds < MIN_VOICED_SECONDS:
                warnings.append(f"reference has only {register.voiced_seconds:.1f} s of voiced audio "
                                f"({MIN_VOICED_SECONDS:g} s or more recommended)")
        if use_voice and voice is not None and self.converter().needs_reference:
            self.check_voice_reference(voice, self.converter().name)
        return Target(register=register, voice=voice, warnings=warnings)

    def resolve_input(
        self,
        song: np.ndarray | None,
        sample_rate: int,
        vocals: np.ndarray | None = None,
        instrumental: np.ndarray | None = None,
        keep_stems: bool = False,
        scratch: Path | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], str, bool | None]:
        """Turn the job's input into ``(song, vocals, instrumental, separated, source, cache_hit)``.

        The user's stems (``vocals`` [+ ``instrumental``]), or ``song`` separated (every Demucs
        stem kept in ``separated`` when ``keep_stems``), or ``song`` as a vocal-only input. Always
        ``song == vocals + instrumental``; ``cache_hit`` is None when nothing was separated.
        With a ``scratch`` folder, new buffers are :class:`~singvc.audio.DiskAudio` files there.
        """
        separated: dict[str, np.ndarray] = {}
        if vocals is not None:
            vocals = as_audio(vocals, "vocals")
            check_finite(vocals, "vocals")
            fitted = new_like(vocals, buffer_path(scratch, "instrumental"))
            if instrumental is not None:
                instrumental = as_audio(instrumental, "instrumental")
                check_finite(instrumental, "instrumental")
                for a, b in blocks(min(vocals.shape[-1], instrumental.shape[-1])):
                    fitted[:, a:b] = match_channels(instrumental[:, a:b], vocals.shape[0])
            song = new_like(vocals, buffer_path(scratch, "song"))
            for a, b in blocks(vocals.shape[-1]):
                song[:, a:b] = vocals[:, a:b] + fitted[:, a:b]
            return song, vocals, fitted, separated, "stems", None
        if song is None:
            raise UserInputError("no song and no vocals were given")
        song = as_audio(song, "song")
        check_finite(song, "song")
        if not self.settings.separation:
            return song, song, new_like(song, buffer_path(scratch, "silence")), separated, "vocal-only input", None
        if keep_stems:
            separated, hit = self.separate_all(song, sample_rate, scratch)
            vocals = separated["vocals"]
            instrumental = difference(song, vocals, buffer_path(scratch, "instrumental"))
        else:
            vocals, instrumental, hit = self.separate(song, sample_rate, scratch)
        return song, vocals, instrumental, separated, "separated", hit
