"""The cover algorithm over arrays, as named steps:

resolve the target (:meth:`~singvc.engine.Engine.resolve_target`) -> :func:`plan_shift` ->
:func:`convert_vocal` (+ :func:`follow_key`) -> :func:`remix_vocal` -> :func:`cover_report`.

With ``settings.backing`` other than ``off`` the vocal stem is split after pitch tracking
(:func:`separate_backing`), the lead alone is converted (:func:`convert_lead`: dereverbed first
and given an estimated room after when ``settings.dereverb``), and :func:`rejoin_backing` puts
the lead at the original lead's loudness and the backing (kept, converted or muted) under it
before the remix. With ``off`` (the default) the steps are exactly those above.

:class:`Singvc` is the engine (:class:`~singvc.engine.Engine`: models loaded once) plus
:meth:`Singvc.cover`, which runs the steps in that order; vocal features
(:mod:`singvc.feature`) call the same steps on each section. File-level jobs (reading inputs,
writing output folders) are in :mod:`singvc.jobs`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from . import __version__
from .audio import (
    as_audio, blocks, check_result, fit_length, new_like, output_peak_limit, peak_dbfs, resample_into,
)
from .backing import SplitReport, convert_backing, describe_split
from .cache import Cache
from .engine import Engine
from .errors import UserInputError
from .keyshift import pitch_shift
from .loudness import LoudnessMatch, RemixInfo, integrated_loudness, match_loudness, remix, true_peak_dbtp
from .pitch import PitchTrack
from .plan import RangePlan, Register, plan_transposition
from .room import RoomEstimate, add_estimated_room, dereverb
from .run import Timer, buffer_path
from .settings import CoverSettings
from .voice import VoiceProfile


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
    #: semitones the converted vocal actually moved (0 when the converter passes it through)
    vocal_shift: float = 0.0
    #: more outputs of the same shape, by file name: the original ``vocals_lead.wav`` and
    #: ``vocals_backing.wav`` when the vocal stem was split (``settings.backing`` not ``off``)
    extra_stems: dict[str, np.ndarray] = field(default_factory=dict)

    def stems(self) -> dict[str, np.ndarray]:
        return {
            "mix.wav": self.mix,
            "vocals_converted.wav": self.vocals_converted,
            "vocals_original.wav": self.vocals_original,
            "instrumental.wav": self.instrumental,
            **self.extra_stems,
        }


def package_versions() -> dict[str, str]:
    """Versions of singvc and the packages that shape its output."""
    out = {"singvc": __version__}
    for name in ("numpy", "torch", "torchaudio", "torchcrepe", "demucs", "librosa", "pyloudnorm",
                 "soundfile", "pyworld", "scipy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def report_number(value: float) -> float | None:
    """Round a figure for JSON; ``None`` for -inf (silence)."""
    return round(float(value), 3) if np.isfinite(value) else None


# -- the steps ---------------------------------------------------------------------------------
def plan_shift(track: PitchTrack, register: Register | None, settings: CoverSettings,
               warnings: list[str], transpose: float | None = None, plan_mode: str | None = None) -> RangePlan:
    """The transposition of the vocal ``track`` into ``register`` (``transpose`` forces it;
    default ``settings.transpose``; mode ``settings.plan_mode`` unless given)."""
    transpose = settings.transpose if transpose is None else transpose
    plan = plan_transposition(track, register, mode=plan_mode or settings.plan_mode, transpose=transpose)
    if plan.source is None:
        warnings.append("no pitched singing found in the vocal: the register could not be measured")
    return plan


def convert_vocal(engine: Engine, vocals: np.ndarray, sample_rate: int, track: PitchTrack, semitones: float,
                  voice: VoiceProfile | None, scratch: Path | None = None, name: str = "vocals_converted"):
    """``vocals`` converted by the engine's converter (built once), ``semitones`` shifted, toward
    ``voice``; a new buffer of the vocal's shape (a file in ``scratch`` when given), checked finite.

    A converter that works at its own rate (``Converter.sample_rate``) is given the vocal resampled
    to it, and its output is resampled back and fitted to the vocal's length (streamed, soxr HQ);
    the pitch track is in seconds and serves both."""
    converter = engine.converter()
    out = new_like(vocals, buffer_path(scratch, name))
    rate = converter.sample_rate or sample_rate
    source, target = vocals, out
    if rate != sample_rate:
        length = int(round(vocals.shape[-1] * rate / sample_rate))
        source = new_like(vocals, buffer_path(scratch, f"{name}_input"), (vocals.shape[0], length))
        resample_into(lambda a, b: vocals[:, a:b], vocals.shape[-1], sample_rate, source, rate)
        target = new_like(vocals, buffer_path(scratch, f"{name}_at_rate"), source.shape)
    converted = converter.convert(source, rate, track, semitones, voice=engine.prepared_voice(converter, voice),
                                  progress=engine.progress, callback=engine.callback, out=target)
    if converted.shape != source.shape:  # a converter that returned its own array of another length
        converted = fit_length(as_audio(np.asarray(converted), "converted vocal"), source.shape[-1])
    if rate != sample_rate:
        resample_into(lambda a, b: converted[:, a:b], converted.shape[-1], rate, out, sample_rate)
        converted = out
    check_result(converted, "converted vocal")
    return converted


@dataclass
class BackingSplit:
    """The vocal stem split into the original ``lead`` and ``backing`` (float32 ``[channels,
    samples]``, ``lead + backing == stem``), what :func:`singvc.backing.split_lead` found and its
    description for the report (:func:`singvc.backing.describe_split`)."""

    lead: np.ndarray
    backing: np.ndarray
    report: SplitReport
    described: dict
    cache_hit: bool = False


def separate_backing(engine: Engine, vocals, sample_rate: int, track: PitchTrack,
                     scratch: Path | None = None) -> BackingSplit:
    """Split the vocal stem ``vocals`` (pitch ``track``) into lead and backing
    (:meth:`~singvc.engine.Engine.split_backing`; buffers in ``scratch`` when given)."""
    lead, backing, report, hit = engine.split_backing(vocals, sample_rate, track, scratch)
    return BackingSplit(lead, backing, report, describe_split(report, vocals, backing, sample_rate), hit)


def convert_lead(engine: Engine, lead, sample_rate: int, track: PitchTrack, semitones: float,
                 voice: VoiceProfile | None, scratch: Path | None = None) -> tuple:
    """:func:`convert_vocal` of ``lead``; with ``settings.dereverb`` the lead is dereverbed first
    (:func:`singvc.room.dereverb`, WPE) and the converted lead gets a room like the one removed
    (:func:`singvc.room.add_estimated_room`). Returns ``(converted, room estimate or None)``."""
    if not engine.settings.dereverb:
        return convert_vocal(engine, lead, sample_rate, track, semitones, voice, scratch), None
    dry, room = dereverb(lead, sample_rate, out=new_like(lead, buffer_path(scratch, "vocals_dry")),
                         callback=engine.callback)
    check_result(dry, "dereverbed vocal")
    converted = convert_vocal(engine, dry, sample_rate, track, semitones, voice, scratch, name="vocals_converted_dry")
    wet = add_estimated_room(converted, sample_rate, room,
                             out=new_like(converted, buffer_path(scratch, "vocals_converted")))
    check_result(wet, "converted vocal with its room")
    return wet, room


def rejoin_backing(engine: Engine, split: BackingSplit, converted, plan: RangePlan, voice: VoiceProfile | None,
                   sample_rate: int, scratch: Path | None = None) -> tuple:
    """The converted vocal of a split stem: ``converted`` (the converted lead) scaled in place to
    the original lead's loudness, plus, by ``settings.backing``, the original backing (``keep``),
    the backing converted toward the same voice with the same shift and matched to the original
    backing's loudness (``convert``, :func:`singvc.backing.convert_backing`; its pitch is the
    engine's vocal track of the backing), or nothing (``mute``).

    Returns ``(vocal, lead_match, lead_lufs, backing_info)``; ``vocal`` is a new buffer (the
    matched lead itself for ``mute``)."""
    mode = engine.settings.backing
    lead_lufs = integrated_loudness(split.lead, sample_rate)
    matched, match = match_loudness(converted, sample_rate, lead_lufs, out=converted)
    info: dict = {}
    if mode == "mute":
        return matched, match, lead_lufs, info
    backing = split.backing
    if mode == "convert":
        if not split.report.split:
            info = {"converted": False, "note": "no backing found: nothing to convert"}
        else:
            converter = engine.converter()
            backing_track, _ = engine.track(split.backing, sample_rate)
            semitones = plan.semitones if converter.moves_pitch else 0.0
            converted_backing, done = convert_backing(
                split.backing, sample_rate, backing_track, converter, semitones,
                voice=engine.prepared_voice(converter, voice),
                out=new_like(split.backing, buffer_path(scratch, "vocals_backing_converted")),
                scratch_path=buffer_path(scratch, "vocals_backing_stretched"),
                shifted_out=new_like(split.backing, buffer_path(scratch, "vocals_backing_shifted")))
            check_result(converted_backing, "converted backing")
            backing, backing_match = match_loudness(converted_backing, sample_rate, split.report.backing_lufs,
                                                    out=converted_backing)
            info = {"converted": True, "semitones": semitones, **done,
                    "lufs_after": report_number(backing_match.after_lufs),
                    "gain_db": round(backing_match.gain_db, 3), "note": backing_match.note}
    vocal = new_like(matched, buffer_path(scratch, "vocals_converted_with_backing"))
    for a, b in blocks(matched.shape[-1]):
        vocal[:, a:b] = matched[:, a:b] + backing[:, a:b]
    return vocal, match, lead_lufs, info


def backing_report(mode: str, split: BackingSplit | None, room: RoomEstimate | None, lead_lufs: float | None,
                   match: LoudnessMatch | None, converted_backing: dict) -> dict:
    """``report["backing"]``: the mode, what the split found (:func:`singvc.backing.describe_split`),
    the loudness the converted lead was matched to, the converted backing and the room estimate.
    (A split that found no backing is not passed: the stem went on whole; its description is added
    by the caller.)"""
    out: dict = {"mode": mode}
    if split is not None:
        out.update(split.described)
        out["lead_lufs"] = report_number(lead_lufs)
        out["lead_gain_db"] = round(match.gain_db, 3)
        if mode == "convert":
            out["converted_backing"] = converted_backing
    out["room"] = None if room is None else room.as_dict()
    return out


def leaves_key(engine: Engine, plan: RangePlan) -> bool:
    """Whether the converted vocal ends up out of the song's key: a shift that does not keep the
    key, by a converter that moves the vocal."""
    return not plan.keeps_key and engine.converter().moves_pitch


def key_warning(engine: Engine, plan: RangePlan) -> str | None:
    """The warning for a vocal moved out of the instrumental's key (none when the shift keeps the
    key, the converter does not move the vocal, or the instrumental follows it)."""
    if not leaves_key(engine, plan) or engine.settings.shift_instrumental:
        return None
    return (f"the vocal moves {plan.semitones:+g} semitones, out of the instrumental's key; "
            "use --shift-instrumental or a whole-octave shift")


def follow_key(engine: Engine, plan: RangePlan, instrumental, separated: dict, sample_rate: int,
               scratch: Path | None, warnings: list[str]) -> tuple:
    """After a shift out of the song's key: shift the instrumental (and every stem) too when
    ``shift_instrumental`` is set, else warn. Returns ``(instrumental, separated)``."""
    warning = key_warning(engine, plan)
    if warning:
        warnings.append(warning)
    if not (leaves_key(engine, plan) and engine.settings.shift_instrumental):
        return instrumental, separated
    instrumental = _key_shifted(instrumental, sample_rate, plan.semitones, scratch, "instrumental")
    separated = {k: v if k == "vocals" else _key_shifted(v, sample_rate, plan.semitones, scratch, k)
                 for k, v in separated.items()}
    return instrumental, separated


def _key_shifted(audio, sample_rate: int, semitones: float, scratch: Path | None, name: str):
    """``audio`` transposed by ``semitones`` (:func:`singvc.keyshift.pitch_shift`), into a new
    buffer in ``scratch`` (or memory)."""
    out = new_like(audio, buffer_path(scratch, f"{name}_shifted"))
    return pitch_shift(audio, sample_rate, semitones, out=out, scratch_path=buffer_path(scratch, f"{name}_stretched"))


def remix_vocal(settings: CoverSettings, vocals, converted, instrumental, song, sample_rate: int,
                scratch: Path | None, warnings: list[str]) -> tuple:
    """Give ``converted`` the loudness of ``vocals`` (scaled in place) and mix it with
    ``instrumental`` under the ceiling; returns ``(matched, match, mix, mix_info, original_lufs)``."""
    original_lufs = integrated_loudness(vocals, sample_rate)
    matched, match = match_loudness(converted, sample_rate, original_lufs, out=converted)
    mix, mix_info = mix_with(settings, matched, instrumental, song, sample_rate, scratch, warnings)
    return matched, match, mix, mix_info, original_lufs


def mix_with(settings: CoverSettings, vocal, instrumental, song, sample_rate: int, scratch: Path | None,
             warnings: list[str]) -> tuple:
    """``vocal`` + ``instrumental`` under the ceiling (a song above it keeps its own peak when PCM
    holds it); returns ``(mix, mix_info)``."""
    mix, mix_info = remix(vocal, instrumental, sample_rate, settings.ceiling_dbtp,
                          input_true_peak_dbtp=true_peak_dbtp(song, sample_rate),
                          out=new_like(vocal, buffer_path(scratch, "mix")),
                          max_ceiling_dbtp=output_peak_limit(settings.bit_depth),
                          input_peak_dbfs=peak_dbfs(song))
    if mix_info.capped:
        warnings.append(mix_cap_warning(mix_info, settings.bit_depth))
    return mix, mix_info


def mix_cap_warning(info: RemixInfo, bit_depth: str) -> str:
    """The run warning for a mix turned down to the PCM ceiling because the song came in above it."""
    return (f"the mix peaked at {info.true_peak_before_dbtp:+.1f} dBTP, above full scale: it is turned down "
            f"{-info.gain_db:.1f} dB to {info.ceiling_dbtp:+.2f} dBTP for {bit_depth}-bit PCM "
            "(--bit-depth 32f keeps the level)")


def run_report(settings: CoverSettings, track: PitchTrack, timer: Timer, warnings: list[str]) -> dict:
    """The report entries every run shares: pitch summary, time and memory per stage, warnings, versions."""
    return {
        "pitch": {"model": settings.pitch_model, "hop_seconds": track.hop, "stride": settings.pitch_stride,
                  "refined": bool(track.refined), "voiced_share": round(float(track.voiced.mean()), 4)},
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "peak_memory_mb": dict(timer.peak_mb),
        "warnings": warnings,
        "versions": package_versions(),
    }


def cover_report(engine: Engine, song, sample_rate: int, source: str, plan: RangePlan,
                 voice: VoiceProfile | None, vocals, instrumental, original_lufs: float, match: LoudnessMatch,
                 mix_info: RemixInfo, cache_hits: dict, track: PitchTrack, timer: Timer, warnings: list[str]) -> dict:
    """The report of a cover (``report.json``)."""
    return {
        "singvc": __version__,
        "settings": dataclasses.asdict(engine.settings),
        "input": {"source": source, "sample_rate": sample_rate, "channels": int(song.shape[0]),
                  "seconds": round(song.shape[-1] / sample_rate, 3)},
        "plan": plan.describe(),
        "voice": None if voice is None else {
            "name": voice.name, "register_median": voice.register["median"]["note"],
            "voiced_seconds": voice.voiced_seconds},
        "converter": engine.converter().describe(),
        "shift_semitones": plan.semitones,
        "loudness": {
            "vocals_original_lufs": report_number(original_lufs),
            "vocals_converted_lufs_before": report_number(match.before_lufs),
            "vocals_converted_lufs_after": report_number(match.after_lufs),
            "vocal_gain_db": round(match.gain_db, 3),
            "vocal_note": match.note,
            "instrumental_lufs": report_number(integrated_loudness(instrumental, sample_rate)),
            "mix": mix_info.to_dict(),
        },
        "cache_hits": cache_hits,
        **run_report(engine.settings, track, timer, warnings),
    }


class Singvc(Engine):
    """The engine (models loaded once, see :class:`~singvc.engine.Engine`) and the cover job over arrays."""

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
            voice: a saved voice profile, instead of (or besides) ``reference``; a converter that
                uses a voice (``dsp``) needs one of the two to change the timbre.
        """
        s = self.settings
        rate = self.converter().sample_rate if s.backing == "convert" else None
        if rate not in (None, sample_rate):  # convert_backing does not resample
            raise UserInputError(f"--backing convert needs a converter that works at the song's rate "
                                 f"({sample_rate} Hz); {s.converter} works at {rate} Hz")
        timer = Timer()
        cache_hits: dict[str, bool] = {}
        target = self.resolve_target(voice, reference, reference_rate or sample_rate, s.target_range, s.transpose,
                                     timer)
        warnings = list(target.warnings)

        with timer.stage("separation"):
            song, vocals, instrumental, separated, source, hit = self.resolve_input(
                song, sample_rate, vocals, instrumental, keep_stems, scratch)
            if hit is not None:
                cache_hits["separation"] = hit
        if song.shape[-1] < int(0.5 * sample_rate):
            raise UserInputError(f"song is {song.shape[-1] / sample_rate:.2f} s long; it needs at least 0.5 s")

        with timer.stage("pitch"):
            track, cache_hits["pitch"] = self.track(vocals, sample_rate)
        split = unsplit = None
        if s.backing != "off":
            with timer.stage("split"):
                split = separate_backing(self, vocals, sample_rate, track, scratch)
            cache_hits["split"] = split.cache_hit
            if not split.report.split:  # no backing found: the stem goes on whole, as without a split
                split, unsplit = None, split
        with timer.stage("plan"):
            plan = plan_shift(track, target.register, s, warnings)
        with timer.stage("convert"):
            converted, room = convert_lead(self, vocals if split is None else split.lead, sample_rate, track,
                                           plan.semitones, target.voice, scratch)
            instrumental, separated = follow_key(self, plan, instrumental, separated, sample_rate, scratch, warnings)
        extra_stems: dict[str, np.ndarray] = {}
        with timer.stage("loudness_remix"):
            if split is None:
                matched, match, mix, mix_info, original_lufs = remix_vocal(s, vocals, converted, instrumental, song,
                                                                           sample_rate, scratch, warnings)
            else:
                matched, match, lead_lufs, converted_backing = rejoin_backing(
                    self, split, converted, plan, target.voice, sample_rate, scratch)
                original_lufs = integrated_loudness(vocals, sample_rate)
                mix, mix_info = mix_with(s, matched, instrumental, song, sample_rate, scratch, warnings)
                extra_stems = {"vocals_lead.wav": split.lead, "vocals_backing.wav": split.backing}
        report = cover_report(self, song, sample_rate, source, plan, target.voice, vocals, instrumental,
                              original_lufs, match, mix_info, cache_hits, track, timer, warnings)
        if split is not None or unsplit is not None or room is not None:
            report["backing"] = backing_report(s.backing, split, room, lead_lufs if split else None, match,
                                               converted_backing if split else {})
            if unsplit is not None:
                report["backing"].update(unsplit.described)
            if split is not None:  # the converted lead was matched to the original lead, not the stem
                report["loudness"]["vocal_note"] = "; ".join(
                    n for n in ("converted lead matched to the original lead (report: backing.lead_lufs)",
                                match.note) if n)
                report["loudness"]["vocals_converted_with_backing_lufs"] = report_number(
                    integrated_loudness(matched, sample_rate))
        return CoverResult(mix=mix, vocals_converted=matched, vocals_original=vocals, instrumental=instrumental,
                           sample_rate=sample_rate, plan=plan, pitch=track, report=report, song=song,
                           separated=separated,
                           vocal_shift=plan.semitones if self.converter().moves_pitch else 0.0,
                           extra_stems=extra_stems)


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
