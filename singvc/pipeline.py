"""The cover pipeline: separate -> pitch -> range plan -> convert -> loudness/remix -> outputs.

Three layers, as everywhere in singvc:
- :func:`cover`, a function over arrays;
- :class:`Singvc`, which keeps models loaded (and a cache) between songs;
- :func:`cover_file`, which reads files and writes the output folder atomically: every file is
  written into a hidden staging folder beside the output folder and moved in only when all of
  them are complete, so a failed run leaves nothing in the output folder.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import __version__
from .audio import (
    DiskAudio, as_audio, blocks, check_finite, check_result, difference, fit_length, headroom_gain_db, headroom_warning,
    load_audio, load_audio_to_disk, match_channels, new_like, output_peak_limit, peak_dbfs, resample_into, save_audio,
    turned_down_together,
)
from .cache import Cache, audio_digest
from .convert import get_converter
from .errors import InvalidReferenceError, OutputError, PlanError, UserInputError
from .jsonio import write_json
from .loudness import integrated_loudness, match_loudness, remix, true_peak_dbtp
from .pitch import PitchTrack, load_pitch_model, track_pitch
from .plan import RangePlan, Register, measure_register, parse_range, plan_transposition
from .runfolders import (
    OUTPUT_FILES, OWNER_FILE, Aside, audio_bytes, check_output_dir, hidden_folder, plan_aside, signals_held,
    sweep,
)
from .settings import RANGES, range_error
from .voice import VoiceProfile, analyse_voice, is_profile_ref, load_profile

#: shortest reference clip accepted, seconds
MIN_REFERENCE_SECONDS = 1.0
#: a reference whose sample peak is below this is treated as silent
SILENT_DBFS = -60.0
#: full-length float32 buffers a cover run keeps on disk at most (working folder and outputs), for
#: the free-space check made before the work; a DAW session adds every stem again
RUN_BUFFERS = 10
DAW_BUFFERS = 6


@dataclass
class CoverSettings:
    """Every setting of a cover run (all recorded in the report)."""

    separator_model: str = "htdemucs"
    separator_repo: str | None = None
    separation: bool = True
    pitch_model: str = "full"
    pitch_backend: str = "auto"
    #: crepe capacity for reference clips: a register and a profile need no cent accuracy, and a
    #: new voice then costs seconds, not minutes
    reference_pitch_model: str = "tiny"
    pitch_hop: float = 0.01
    #: crepe runs on every ``pitch_stride``-th frame, the others are filled (see track_pitch)
    pitch_stride: int = 2
    converter: str = "dsp"
    strength: float = 1.0
    #: how the dsp converter renders unshifted voiced regions: "world" (vocoder) or "waveform"
    #: (filters the singer's own waveform; see PitchShiftConverter)
    render: str = "world"
    transpose: float | None = None
    target_range: str | None = None
    plan_mode: str = "key-lock"
    shift_instrumental: bool = False
    ceiling_dbtp: float = -1.0
    bit_depth: str = "24"
    device: str = "cpu"
    preset: str | None = None

    def __post_init__(self) -> None:
        # every numeric setting against its one range, however the settings were made (CLI, preset,
        # recipe, Python): a bad value stops here, before any audio work
        for name in RANGES:
            value = getattr(self, name, None)
            if value is not None and range_error(name, value):
                raise UserInputError(f"setting {name} {range_error(name, value)}")
        if self.target_range is not None:
            parse_range(self.target_range)


@dataclass
class CoverResult:
    """Audio outputs (float32 ``[channels, samples]``, all the same shape) and the report."""

    mix: np.ndarray
    vocals_converted: np.ndarray
    vocals_original: np.ndarray
    instrumental: np.ndarray
    sample_rate: int
    plan: RangePlan
    pitch: PitchTrack
    report: dict = field(default_factory=dict)
    #: the input mix (before any shift), when known
    song: np.ndarray | None = None
    #: every Demucs stem (``drums``, ``bass``, ``other``, ``vocals``, ...) when ``keep_stems`` was
    #: asked and the song was separated; shifted like the instrumental after ``shift_instrumental``
    separated: dict[str, np.ndarray] = field(default_factory=dict)

    def stems(self) -> dict[str, np.ndarray]:
        return {
            "mix.wav": self.mix,
            "vocals_converted.wav": self.vocals_converted,
            "vocals_original.wav": self.vocals_original,
            "instrumental.wav": self.instrumental,
        }


def package_versions() -> dict[str, str]:
    """Versions of singvc and the packages that shape its output."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"singvc": __version__}
    for name in ("numpy", "torch", "torchaudio", "torchcrepe", "demucs", "librosa", "pyloudnorm",
                 "soundfile", "pyworld", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


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


def _peak_rss_mb(reset: bool = False) -> float | None:
    """This process's peak resident memory in MB since the last reset (Linux ``/proc``), or None."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so one stage's freed
    working memory (Demucs, crepe batches) does not stay resident under the next one's."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _Timer:
    """Wall time and peak resident memory of each named stage (stages may repeat: summed / maxed)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        _peak_rss_mb(reset=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            peak = _peak_rss_mb()
            if peak is not None:
                self.peak_mb[name] = round(max(self.peak_mb.get(name, 0.0), peak), 1)
            _trim_heap()


class Singvc:
    """Keeps the separator and pitch models loaded (lazily, on first need) across songs.

    Args:
        settings: the run's settings.
        cache: where separation and pitch results are kept; ``Cache(enabled=False)`` turns it off.
        separator_model, pitch_model: already-loaded models to use instead of loading by name.
        progress: show progress bars (seconds of audio) on stderr.
        callback: receives progress dicts ``{"stage", "seconds_done", "seconds_total"}``.
    """

    def __init__(
        self,
        settings: CoverSettings | None = None,
        cache: Cache | None = None,
        separator_model: object | None = None,
        pitch_model: object | None = None,
        progress: bool = False,
        callback: Callable[[dict], None] | None = None,
    ) -> None:
        self.settings = settings or CoverSettings()
        self.cache = cache if cache is not None else Cache()
        self._separator_model = separator_model
        self._pitch_models: dict[str, object] = {}
        if pitch_model is not None:
            self._pitch_models[self.settings.pitch_model] = pitch_model
        self.progress = progress
        self.callback = callback

    # -- models -----------------------------------------------------------------------------
    @property
    def separator_model(self):
        if self._separator_model is None:
            from .separate import load_separator_model

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

    def _separator_cache_settings(self) -> dict:
        repo = self.settings.separator_repo
        listing = None
        if repo and Path(repo).is_dir():
            listing = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in Path(repo).iterdir())
        return {"model": self.settings.separator_model, "repo": str(Path(repo).resolve()) if repo else None,
                "repo_files": listing}

    # -- stages -----------------------------------------------------------------------------
    def separate(self, mix: np.ndarray, sample_rate: int,
                 scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
        """Split ``mix`` into ``(vocals, instrumental, cache_hit)``; ``instrumental = mix - vocals``.

        With a ``scratch`` folder the stems are :class:`~singvc.audio.DiskAudio` files (bounded
        memory whatever the length), else arrays.
        """
        stems, hit = self._separated(mix, sample_rate, scratch, every_stem=False)
        vocals = stems["vocals"]
        return vocals, difference(mix, vocals, _buffer_path(scratch, "instrumental")), hit

    def separate_all(self, mix: np.ndarray, sample_rate: int,
                     scratch: Path | None = None) -> tuple[dict[str, np.ndarray], bool]:
        """Every Demucs stem of ``mix`` (``{"drums", "bass", "other", "vocals", ...}``) and whether
        they came from the cache. Stored in the same cache entry as :meth:`separate`'s vocals."""
        return self._separated(mix, sample_rate, scratch, every_stem=True)

    def _separated(self, mix, sample_rate: int, scratch: Path | None, every_stem: bool) -> tuple[dict, bool]:
        from .separate import Separator

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
                              model=model), True
        track = track_pitch(audio, sample_rate, self.pitch_model_for(model), hop_seconds=self.settings.pitch_hop,
                            stride=self.settings.pitch_stride, progress=self.progress, callback=self.callback)
        track.check_finite()  # checked before it is cached or used
        self.cache.save("pitch", digest, settings, {
            "times": track.times, "f0": track.f0, "periodicity": track.periodicity,
            "voiced": track.voiced, "hop": np.float64(track.hop)})
        return track, False

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

    def with_settings(self, **changes) -> "Singvc":
        """A :class:`Singvc` with some settings changed, sharing this one's loaded models, cache and
        progress options (e.g. one converted section of a vocal feature)."""
        other = Singvc(dataclasses.replace(self.settings, **changes), cache=self.cache,
                       separator_model=self._separator_model, progress=self.progress, callback=self.callback)
        other._pitch_models = self._pitch_models  # shared: loaded once for both
        return other

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
            fitted = new_like(vocals, _buffer_path(scratch, "instrumental"))
            if instrumental is not None:
                instrumental = as_audio(instrumental, "instrumental")
                check_finite(instrumental, "instrumental")
                for a, b in blocks(min(vocals.shape[-1], instrumental.shape[-1])):
                    fitted[:, a:b] = match_channels(instrumental[:, a:b], vocals.shape[0])
            song = new_like(vocals, _buffer_path(scratch, "song"))
            for a, b in blocks(vocals.shape[-1]):
                song[:, a:b] = vocals[:, a:b] + fitted[:, a:b]
            return song, vocals, fitted, separated, "stems", None
        if song is None:
            raise UserInputError("no song and no vocals were given")
        song = as_audio(song, "song")
        check_finite(song, "song")
        if not self.settings.separation:
            return song, song, new_like(song, _buffer_path(scratch, "silence")), separated, "vocal-only input", None
        if keep_stems:
            separated, hit = self.separate_all(song, sample_rate, scratch)
            vocals = separated["vocals"]
            instrumental = difference(song, vocals, _buffer_path(scratch, "instrumental"))
        else:
            vocals, instrumental, hit = self.separate(song, sample_rate, scratch)
        return song, vocals, instrumental, separated, "separated", hit

    # -- the whole job ----------------------------------------------------------------------
    def cover(
        self,
        song: np.ndarray | None,
        sample_rate: int,
        reference: np.ndarray | None = None,
        reference_rate: int | None = None,
        vocals: np.ndarray | None = None,
        instrumental: np.ndarray | None = None,
        keep_stems: bool = False,
        voice: VoiceProfile | None = None,
        scratch: Path | None = None,
    ) -> CoverResult:
        """Run the cover pipeline on arrays.

        With a ``scratch`` folder every full-length buffer (stems, converted vocal, mix) is a
        :class:`~singvc.audio.DiskAudio` file there and each stage works through it block by
        block, so memory does not grow with the song's length; the result's audio fields are
        then DiskAudio too (``song`` may also be one, e.g. from :func:`~singvc.audio.load_audio_to_disk`).

        Args:
            song: the full mix ``[channels, samples]`` (ignored when ``vocals`` is given).
            reference: the target voice clip, at ``reference_rate`` Hz.
            vocals, instrumental: the user's own stems (skip separation).
            keep_stems: keep every Demucs stem in ``CoverResult.separated`` (for DAW sessions).
            voice: a saved voice profile, instead of (or besides) ``reference``; the ``dsp``
                converter needs one of the two to change the timbre.
        """
        s = self.settings
        timer = _Timer()
        warnings: list[str] = []
        cache_hits: dict[str, bool] = {}

        target: Register | None = None
        with timer.stage("plan"):
            if s.target_range:
                target = parse_range(s.target_range)
        if voice is None and reference is not None and s.converter == "dsp":
            with timer.stage("voice"):
                voice = self.voice_profile(reference, reference_rate or sample_rate)
        if target is None and voice is not None and s.transpose is None:
            target = voice.to_register()
            if target.voiced_seconds < 3.0:
                warnings.append(f"reference has only {target.voiced_seconds:.1f} s of voiced audio (3 s or more recommended)")
        elif target is None and reference is not None and s.transpose is None:
            reference = as_audio(reference, "reference")
            with timer.stage("pitch"):
                target = self.target_register(reference, reference_rate or sample_rate)
            if target.voiced_seconds < 3.0:
                warnings.append(f"reference has only {target.voiced_seconds:.1f} s of voiced audio (3 s or more recommended)")

        with timer.stage("separation"):
            song, vocals, instrumental, separated, source, hit = self.resolve_input(
                song, sample_rate, vocals, instrumental, keep_stems, scratch)
            if hit is not None:
                cache_hits["separation"] = hit
        if song.shape[-1] < int(0.5 * sample_rate):
            raise UserInputError(f"song is {song.shape[-1] / sample_rate:.2f} s long; it needs at least 0.5 s")

        with timer.stage("pitch"):
            track, cache_hits["pitch"] = self.track(vocals, sample_rate)
        with timer.stage("plan"):
            plan = plan_transposition(track, target, mode=s.plan_mode, transpose=s.transpose)
            if plan.source is None:
                warnings.append("no pitched singing found in the vocal: the register could not be measured")

        with timer.stage("convert"):
            converter = get_converter(s.converter, **({"strength": s.strength, "render": s.render}
                                                      if s.converter == "dsp" else {}))
            out = None if s.converter == "none" else new_like(vocals, _buffer_path(scratch, "vocals_converted"))
            if s.converter == "none":
                converted = vocals
            elif s.converter == "dsp":
                converted = converter.convert(vocals, sample_rate, track, plan.semitones, voice=voice,
                                              progress=self.progress, out=out)
            else:
                converted = converter.convert(vocals, sample_rate, track, plan.semitones, progress=self.progress,
                                              out=out)
            if converted.shape != vocals.shape:  # a converter that returned its own array of another length
                converted = fit_length(as_audio(np.asarray(converted), "converted vocal"), vocals.shape[-1])
            if converted is not vocals:
                check_result(converted, "converted vocal")
            if not plan.keeps_key and s.converter != "none":
                if s.shift_instrumental:  # a phase-vocoder key change, streamed
                    instrumental = _key_shifted(instrumental, sample_rate, plan.semitones, scratch, "instrumental")
                    separated = {k: v if k == "vocals" else _key_shifted(v, sample_rate, plan.semitones, scratch, k)
                                 for k, v in separated.items()}
                else:
                    warnings.append(
                        f"the vocal moves {plan.semitones:+g} semitones, out of the instrumental's key; "
                        "use --shift-instrumental or a whole-octave shift")

        with timer.stage("loudness_remix"):
            original_lufs = integrated_loudness(vocals, sample_rate)
            # the converted vocal is scaled in place when it is a buffer of this run's own
            matched, match = match_loudness(converted, sample_rate, original_lufs,
                                            out=converted if converted is out else None)
            mix, mix_info = remix(matched, instrumental, sample_rate, s.ceiling_dbtp,
                                  input_true_peak_dbtp=true_peak_dbtp(song, sample_rate),
                                  out=new_like(vocals, _buffer_path(scratch, "mix")),
                                  max_ceiling_dbtp=output_peak_limit(s.bit_depth),
                                  input_peak_dbfs=peak_dbfs(song))
            if mix_info.capped:
                warnings.append(mix_cap_warning(mix_info, s.bit_depth))

        duration = song.shape[-1] / sample_rate
        report = {
            "singvc": __version__,
            "settings": dataclasses.asdict(s),
            "input": {"source": source, "sample_rate": sample_rate, "channels": int(song.shape[0]),
                      "seconds": round(duration, 3)},
            "plan": plan.describe(),
            "voice": None if voice is None else {
                "name": voice.name, "register_median": voice.register["median"]["note"],
                "voiced_seconds": voice.voiced_seconds,
                "timbre_map": converter.last_map.describe() if getattr(converter, "last_map", None) else None},
            "shift_semitones": plan.semitones,
            "loudness": {
                "vocals_original_lufs": _num(original_lufs),
                "vocals_converted_lufs_before": _num(match.before_lufs),
                "vocals_converted_lufs_after": _num(match.after_lufs),
                "vocal_gain_db": round(match.gain_db, 3),
                "vocal_note": match.note,
                "instrumental_lufs": _num(integrated_loudness(instrumental, sample_rate)),
                "mix": mix_info.to_dict(),
            },
            "cache_hits": cache_hits,
            **run_report(s, track, timer, warnings),
        }
        return CoverResult(mix=mix, vocals_converted=matched, vocals_original=vocals, instrumental=instrumental,
                           sample_rate=sample_rate, plan=plan, pitch=track, report=report, song=song,
                           separated=separated)


def mix_cap_warning(info, bit_depth: str) -> str:
    """The run warning for a mix turned down to the PCM ceiling because the song came in above it."""
    return (f"the mix peaked at {info.true_peak_before_dbtp:+.1f} dBTP, above full scale: it is turned down "
            f"{-info.gain_db:.1f} dB to {info.ceiling_dbtp:+.2f} dBTP for {bit_depth}-bit PCM "
            "(--bit-depth 32f keeps the level)")


def run_report(settings: CoverSettings, track: PitchTrack, timer: _Timer, warnings: list[str]) -> dict:
    """The report entries every run shares: pitch summary, time and memory per stage, warnings, versions."""
    return {
        "pitch": {"model": settings.pitch_model, "hop_seconds": track.hop, "stride": settings.pitch_stride,
                  "voiced_share": round(float(track.voiced.mean()), 4)},
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "peak_memory_mb": dict(timer.peak_mb),
        "warnings": warnings,
        "versions": package_versions(),
    }


def _num(value: float) -> float | None:
    """Round a figure for JSON; ``None`` for -inf (silence)."""
    return round(float(value), 3) if np.isfinite(value) else None


def _buffer_path(scratch: Path | None, name: str) -> Path | None:
    """Where a run's full-length buffer ``name`` lives: a ``.npy`` file in ``scratch``, or None (memory)."""
    return None if scratch is None else Path(scratch) / f"{name}.npy"


def _hidden_folder_beside(out_dir: Path, kind: str) -> Path:
    """A new hidden folder ``.NAME.KIND-XXXX`` in ``out_dir``'s parent (created if needed), with
    this run's owner file; stale ones of dead runs there are removed (see :mod:`singvc.runfolders`)."""
    out_dir = Path(os.path.abspath(out_dir))  # "-o ." names the folder, not ""
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return hidden_folder(parent, f".{out_dir.name}.{kind}-")
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from exc


@contextmanager
def scratch_folder(out_dir: str | os.PathLike) -> Iterator[Path]:
    """A hidden working folder beside ``out_dir`` (same disk as the outputs, never a RAM-backed
    /tmp) for a run's full-length buffers; deleted when the run ends, whatever happens."""
    folder = _hidden_folder_beside(Path(out_dir), "scratch")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _key_shifted(audio: "np.ndarray | DiskAudio", sample_rate: int, semitones: float, scratch: Path | None,
                 name: str) -> "np.ndarray | DiskAudio":
    """``audio`` transposed by ``semitones`` (:func:`singvc.keyshift.pitch_shift`), into a new
    buffer in ``scratch`` (or memory)."""
    from .keyshift import pitch_shift

    out = new_like(audio, _buffer_path(scratch, f"{name}_shifted"))
    return pitch_shift(audio, sample_rate, semitones, out=out, scratch_path=_buffer_path(scratch, f"{name}_stretched"))


def cover(
    song: np.ndarray,
    sample_rate: int,
    reference: np.ndarray | None = None,
    reference_rate: int | None = None,
    settings: CoverSettings | None = None,
    **kwargs,
) -> CoverResult:
    """One-shot cover over arrays: builds a :class:`Singvc` and runs it (no cache unless given)."""
    engine = Singvc(settings, cache=kwargs.pop("cache", Cache(enabled=False)), **kwargs)
    return engine.cover(song, sample_rate, reference, reference_rate)


@contextmanager
def staged_output(out_dir: str | os.PathLike, aside: Aside | None = None,
                  protect: tuple = ()) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out_dir``, on failure delete it.

    Existing files in ``out_dir`` with the same names are replaced one rename at a time; a failed
    run leaves ``out_dir`` as it was. Outputs of an earlier run that this one does not write are
    first moved into ``out_dir/previous-run-*/`` with the earlier report: as ``aside`` plans
    (see :func:`~singvc.runfolders.plan_aside`), by default those the staging folder has no
    file for (never the ``protect`` paths, this run's inputs).
    """
    out_dir = Path(out_dir)
    staging = _hidden_folder_beside(out_dir, "partial")
    if out_dir.is_dir():
        sweep(out_dir)  # .NAME.old-* folders of killed runs
    try:
        yield staging
        out_dir.mkdir(parents=True, exist_ok=True)
        items = sorted(p for p in staging.iterdir() if p.name != OWNER_FILE)
        if aside is None:
            aside = plan_aside(out_dir, [p.name for p in items], protect)
        with signals_held():  # Ctrl-C or SIGTERM now takes effect after the renames, not between them
            aside.apply()
            for item in items:
                target = out_dir / item.name
                if item.is_dir() and target.is_dir():  # a folder (e.g. session/) replaces the old one whole
                    old = hidden_folder(out_dir, f".{item.name}.old-")
                    os.replace(target, old / item.name)
                    os.replace(item, target)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def headroom(together: dict[str, "np.ndarray | DiskAudio"], bit_depth: str,
             mix: "np.ndarray | DiskAudio | None" = None) -> tuple[float, float, dict, str | None]:
    """One gain (dB, <= 0) for outputs that belong together (stems that add up to a mix), so that
    none of them is clipped in ``bit_depth``; returns ``(gain_db, mix_gain_db, report entry, warning
    or None)``.

    32-bit float holds any level: nothing is scaled, and outputs above full scale are only
    reported. ``mix`` (limited on its own by :func:`~singvc.loudness.remix`) gets its own gain
    (``mix_gain_db``), non-zero only when it was made for another format. Peaks are measured
    block by block.
    """
    peaks = {name: peak_dbfs(audio) for name, audio in together.items()}
    top = max(peaks.values(), default=float("-inf"))
    gain = headroom_gain_db(top, bit_depth)
    mix_peak = peak_dbfs(mix) if mix is not None else float("-inf")
    mix_gain = headroom_gain_db(mix_peak, bit_depth)
    pcm = bit_depth != "32f"
    names = ", ".join(n.removesuffix(".wav") for n in together)
    info = {"gain_db": round(gain, 3), "sample_format": "pcm" if pcm else "float", "peak_dbfs": _num(top),
            "applies_to": list(together), "mix_gain_db": round(mix_gain, 3), "mix_peak_dbfs": _num(mix_peak)}
    warning = None
    if gain < 0 or mix_gain < 0:
        parts = []
        if gain < 0:
            parts.append(turned_down_together(names, top, gain))
        if mix_gain < 0:
            parts.append(f"mix.wav peaks at {mix_peak:+.1f} dBFS and is written {-mix_gain:.1f} dB lower")
        warning = headroom_warning(parts, bit_depth)
        info["note"] = warning
    elif not pcm and max(top, mix_peak) > 0.0:
        warning = (f"outputs peak above full scale ({max(top, mix_peak):+.1f} dBFS); written as 32-bit float, "
                   "nothing scaled: lower the level before converting them to PCM")
        info["note"] = "32-bit float output: nothing scaled; " + warning.split(";")[0]
    else:
        info["note"] = ("32-bit float output: nothing needs scaling" if not pcm
                        else "every output within full scale: nothing scaled")
    return gain, mix_gain, info, warning


def save_together(folder: str | os.PathLike, outputs: dict[str, "np.ndarray | DiskAudio"], sample_rate: int,
                  bit_depth: str = "24") -> tuple[dict, str | None]:
    """Write WAVs that belong together (stems that add up to a song; ``{file name: audio}``) into
    ``folder`` with one common headroom gain (see :func:`headroom`); returns ``(headroom entry,
    warning or None)``."""
    gain, _, info, warning = headroom(outputs, bit_depth)
    for name, audio in outputs.items():
        save_audio(Path(folder) / name, audio, sample_rate, bit_depth, gain_db=gain)
    return info, warning


def load_input(path: str | os.PathLike, scratch: Path | None = None, name: str = "input") -> tuple[np.ndarray, int]:
    """Read an audio file: into memory, or with a ``scratch`` folder block by block into a
    :class:`~singvc.audio.DiskAudio` file there (``name.npy``)."""
    if scratch is None:
        return load_audio(path)
    return load_audio_to_disk(path, _buffer_path(scratch, name))


def load_stems(vocals_path: str | os.PathLike, instrumental_path: str | os.PathLike | None,
               scratch: Path | None = None) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Read user stems; the instrumental is resampled to the vocal's rate if needed."""
    vocals, sample_rate = load_input(vocals_path, scratch, "vocals")
    instrumental = None
    if instrumental_path is not None:
        instrumental, inst_rate = load_input(instrumental_path, scratch, "instrumental_input")
        if inst_rate != sample_rate:
            length = int(round(instrumental.shape[-1] * sample_rate / inst_rate))
            resampled = new_like(instrumental, _buffer_path(scratch, "instrumental_resampled"),
                                 (instrumental.shape[0], length))
            resample_into(lambda a, b, x=instrumental: x[:, a:b], instrumental.shape[-1], inst_rate,
                          resampled, sample_rate)
            instrumental = resampled
    return vocals, instrumental, sample_rate


def load_song_or_stems(song_path: str | os.PathLike | None, vocals_path: str | os.PathLike | None,
                       instrumental_path: str | os.PathLike | None, scratch: Path | None = None,
                       ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, int]:
    """A job's audio input as ``(song, vocals, instrumental, sample_rate)``: the user's stems when
    ``vocals_path`` is given (``song`` None), else the song (``vocals``, ``instrumental`` None)."""
    if vocals_path is not None:
        vocals, instrumental, sample_rate = load_stems(vocals_path, instrumental_path, scratch)
        return None, vocals, instrumental, sample_rate
    song, sample_rate = load_input(song_path, scratch, "song")
    return song, None, None, sample_rate


def cover_file(
    song_path: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    voice_path: str | os.PathLike | None = None,
    engine: Singvc | None = None,
    vocals_path: str | os.PathLike | None = None,
    instrumental_path: str | os.PathLike | None = None,
    daw: bool = False,
    profile: VoiceProfile | None = None,
    extra_report: dict | None = None,
    stems: bool = True,
) -> dict:
    """Read the inputs, run :meth:`Singvc.cover`, write the outputs into ``out_dir``; returns the report.

    With ``daw``, also a DAW session folder ``out_dir/session/`` (see :mod:`singvc.session`): every
    Demucs stem, both vocals, melody MIDI, tempo and key, ``.dawproject`` and ``.rpp`` files.
    ``profile`` is an already-measured voice (instead of reading ``voice_path``); ``extra_report``
    is merged into the report; ``stems=False`` writes only ``mix.wav`` and ``report.json``.
    """
    engine = engine or Singvc()
    timer = _Timer()
    if song_path is None and vocals_path is None:
        raise UserInputError("give a song, or --vocals (and --instrumental)")
    # output problems are found now, not after the whole job
    check_output_dir(out_dir, estimate_run_bytes(song_path or vocals_path, daw))
    # every full-length buffer lives in a working folder on disk and each stage streams through
    # it: memory stays flat as songs get longer
    with scratch_folder(out_dir) as scratch:
        with timer.stage("load"):
            reference, reference_rate = (None, None)
            if profile is None and voice_path is not None and is_profile_ref(voice_path):
                profile = load_profile(voice_path)
            elif profile is None and voice_path is not None:
                reference, reference_rate = load_audio(voice_path, name=f"reference {voice_path}")
                check_reference(reference, reference_rate, f"reference {voice_path}")
            song, vocals, instrumental, sample_rate = load_song_or_stems(song_path, vocals_path,
                                                                         instrumental_path, scratch)
        result = engine.cover(song, sample_rate, reference, reference_rate, vocals=vocals,
                              instrumental=instrumental, keep_stems=daw, voice=profile, scratch=scratch)
        inputs = {"song": str(song_path) if song_path else None, "voice": str(voice_path) if voice_path else None,
                  "vocals": str(vocals_path) if vocals_path else None,
                  "instrumental": str(instrumental_path) if instrumental_path else None}
        return save_result(result, out_dir, engine.settings.bit_depth, daw=daw,
                           title=Path(song_path or vocals_path).stem, inputs=inputs, timer=timer,
                           extra_report=extra_report, stems=stems)


def estimate_run_bytes(input_path: str | os.PathLike | None, daw: bool = False) -> int:
    """About how many bytes a cover run of the audio file ``input_path`` needs on the output's
    disk at most (working buffers and outputs); 0 when the file cannot be read here."""
    return audio_bytes(input_path) * (RUN_BUFFERS + (DAW_BUFFERS if daw else 0))


def save_result(
    result: CoverResult,
    out_dir: str | os.PathLike,
    bit_depth: str = "24",
    daw: bool = False,
    title: str = "singvc",
    inputs: dict | None = None,
    timer: _Timer | None = None,
    extra_report: dict | None = None,
    stems: bool = True,
    midi: bool = True,
) -> dict:
    """Write a :class:`CoverResult` into ``out_dir`` atomically (WAVs, ``report.json``, with ``daw``
    the ``session/`` folder; ``stems=False``: only ``mix.wav``); returns the report written.

    Outputs of an earlier run in ``out_dir`` that this one does not write (a ``session/``, stems)
    are moved with the earlier report into ``out_dir/previous-run-*/``; the report's
    ``previous_run`` says what was moved.

    Nothing is clipped: for PCM, the stems that belong together (both vocals, the instrumental and,
    with ``daw``, every session stem) share one headroom gain when any of them peaks above full
    scale, so they still add up; it is recorded as ``headroom_gain_db`` in the report and
    announced in its warnings. ``mix.wav`` keeps the ceiling :func:`~singvc.loudness.remix` gave it.
    """
    timer = timer or _Timer()
    report = result.report
    outputs = [n for n in OUTPUT_FILES if stems or n in ("mix.wav", "report.json")] + (["session"] if daw else [])
    aside = plan_aside(out_dir, outputs, protect=(inputs or {}).values())
    with staged_output(out_dir, aside) as staging:
        with timer.stage("write"):
            together = {name: audio for name, audio in result.stems().items()
                        if name != "mix.wav" and (stems or daw)}
            if daw:
                together.update({f"session/{k}": v for k, v in result.separated.items() if k != "vocals"})
            gain, mix_gain, report["headroom"], warning = headroom(together, bit_depth, result.mix)
            report["headroom_gain_db"] = report["headroom"]["gain_db"]
            if warning:
                report.setdefault("warnings", []).append(warning)
            for name, audio in result.stems().items():
                if stems or name == "mix.wav":
                    save_audio(staging / name, audio, result.sample_rate, bit_depth,
                               gain_db=mix_gain if name == "mix.wav" else gain)
        if daw:
            from .session import cover_session, write_session

            with timer.stage("session"):
                session = cover_session(result, title=f"{title} (singvc cover)", name=title, midi=midi)
                session.headroom_gain_db = gain
                manifest = write_session(staging / "session", session, bit_depth)
            report["session"] = {"folder": "session", "tempo_bpm": manifest["tempo_bpm"], "key": manifest["keys"],
                                 "dawproject": manifest["dawproject"], "reaper": manifest["reaper"]}
        report["inputs"] = dict(inputs or {})
        report["seconds"] = {**{k: round(v, 3) for k, v in timer.seconds.items()}, **report["seconds"]}
        report["seconds"]["total"] = round(sum(v for k, v in report["seconds"].items()), 3)
        report["peak_memory_mb"] = {**timer.peak_mb, **report.get("peak_memory_mb", {})}
        report["outputs"] = outputs
        if aside.names:
            report["previous_run"] = {**aside.describe(), "note": "outputs of an earlier run in this folder that "
                                      "this run does not write, moved aside with the earlier report"}
        report.update(extra_report or {})
        write_json(staging / "report.json", report)
    return report
