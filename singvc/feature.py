"""Vocal features: several voices in one song.

A feature is a list of :class:`Section` s, each a stretch of the song (given by time, ``1:05-1:40``,
or by detected phrases, ``2-3``) sung by one voice with its own shift, or left as the original
singer (outside every section the original is kept). Each converted section goes through the
cover's own steps (:mod:`singvc.cover`: the section's vocal is pitch-tracked, converted by the
engine's converter toward the section's voice with the shift planned for that voice on the *whole*
vocal, so a voice keeps one shift across its sections, and given the section's loudness). Boundaries move into a pause of the vocal when one is within
``snap_seconds``; every boundary gets a short raised-cosine cross-fade (inaudible in a pause, no
click mid-note). A section with ``layer = "duet"`` (or ``"double"``) plays the converted voice
together with the original, each with its own level (dB) and pan (-1 left .. 1 right).

Pure functions over arrays (:func:`parse_time_range`, :func:`detect_phrases`, :func:`find_pauses`,
:func:`snap_boundary`, :func:`section_weight`, :func:`pan_gains`) and :func:`render_feature`, which
takes an :class:`~singvc.engine.Engine` to reuse its models, converters and cache.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .audio import blocks, new_like
from .cover import (CoverResult, convert_vocal, key_warning, mix_with, plan_shift, report_number, run_report,
                    separate_backing)
from .engine import Engine
from .errors import UserInputError
from .loudness import integrated_loudness, match_loudness
from .pitch import PitchTrack
from .plan import RangePlan, plan_transposition
from .run import Timer, buffer_path
from .settings import SCHEMA, choices, pick
from .voice import VoiceProfile

#: voice name of a section left as the original singer
ORIGINAL = "original"
LAYERS = choices("layer")

_TIME = re.compile(r"^\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*$")


def parse_time(text: str) -> float:
    """``"1:05"``, ``"1:05.5"``, ``"0:01:05"`` or ``"65"`` -> seconds."""
    m = _TIME.match(str(text))
    if not m:
        raise UserInputError(f"bad time {text!r}: use m:ss, h:mm:ss or seconds (e.g. 1:05)")
    a, b, c = m.groups()
    parts = [float(x) for x in (a, b) if x is not None]
    seconds = float(c)
    if len(parts) == 2:
        seconds += parts[0] * 3600 + parts[1] * 60
    elif len(parts) == 1:
        seconds += parts[0] * 60
    if not seconds < 1e7:  # hundreds of digits overflow to inf
        raise UserInputError(f"bad time {text!r}: too large")
    return seconds


def parse_time_range(text: str) -> tuple[float, float]:
    """``"1:05-1:40"`` -> ``(65.0, 100.0)`` seconds; the end must follow the start."""
    pieces = str(text).split("-")
    if len(pieces) != 2:
        raise UserInputError(f"bad time range {text!r}: use START-END, e.g. 1:05-1:40")
    start, end = parse_time(pieces[0]), parse_time(pieces[1])
    if end <= start:
        raise UserInputError(f"time range {text!r} ends before it starts")
    return start, end


def parse_phrase_range(text: str | int) -> tuple[int, int]:
    """``"2-3"`` or ``2`` -> ``(2, 3)`` / ``(2, 2)``: 1-based phrase numbers, inclusive."""
    pieces = str(text).split("-")
    try:
        first, last = int(pieces[0]), int(pieces[-1])
    except ValueError:
        raise UserInputError(f"bad phrase range {text!r}: use N or N-M (1-based)") from None
    if len(pieces) > 2 or first < 1 or last < first:
        raise UserInputError(f"bad phrase range {text!r}: use N or N-M (1-based)")
    return first, last


def find_pauses(track: PitchTrack, min_pause: float = 0.12) -> list[tuple[float, float]]:
    """Unvoiced stretches of at least ``min_pause`` seconds, as ``(start, end)`` seconds."""
    voiced = np.asarray(track.voiced, dtype=bool)
    if voiced.size == 0:
        return []
    hop = float(track.hop)
    t0 = float(track.times[0])
    edges = np.flatnonzero(np.diff(np.concatenate([[1], voiced.astype(np.int8), [1]])))
    pauses = []
    for a, b in zip(edges[::2], edges[1::2]):  # unvoiced runs [a, b)
        start = t0 + (a - 0.5) * hop if a > 0 else 0.0
        end = t0 + (b - 0.5) * hop
        if end - start >= min_pause:
            pauses.append((max(start, 0.0), end))
    return pauses


def detect_phrases(track: PitchTrack, min_pause: float = 0.25, min_phrase: float = 0.2) -> list[tuple[float, float]]:
    """Sung phrases: voiced stretches separated by pauses of at least ``min_pause`` seconds
    (shorter gaps, e.g. consonants, stay inside a phrase); phrases under ``min_phrase`` s dropped."""
    voiced = np.asarray(track.voiced, dtype=bool)
    if not voiced.any():
        return []
    hop = float(track.hop)
    t0 = float(track.times[0])
    end_of_track = t0 + len(voiced) * hop
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    runs = [[t0 + (a - 0.5) * hop, t0 + (b - 0.5) * hop] for a, b in zip(edges[::2], edges[1::2])]
    merged = [runs[0]]
    for start, end in runs[1:]:
        if start - merged[-1][1] < min_pause:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [(max(a, 0.0), min(b, end_of_track)) for a, b in merged if b - a >= min_phrase]


def snap_boundary(t: float, pauses: list[tuple[float, float]], radius: float, fade: float) -> tuple[float, bool]:
    """Move boundary ``t`` (seconds) into the nearest pause within ``radius`` seconds, far enough
    inside for a ``fade``-second cross-fade; returns ``(t, snapped)``, ``t`` unchanged if none."""
    best: tuple[float, float] | None = None
    for start, end in pauses:
        lo, hi = start + fade / 2, end - fade / 2
        if hi < lo:
            lo = hi = (start + end) / 2
        placed = min(max(t, lo), hi)
        distance = abs(placed - t)
        if distance <= radius and (best is None or distance < best[1]):
            best = (placed, distance)
    return (best[0], True) if best is not None else (t, False)


def section_weight(n_samples: int, start: int, end: int, fade: int,
                   window: tuple[int, int] | None = None) -> np.ndarray:
    """Weight ``[n_samples]`` that is 1 on ``[start, end)``, 0 outside, with raised-cosine ramps of
    ``fade`` samples centred on each boundary (a ramp at 0 or ``n_samples`` is skipped). Adjacent
    sections' weights sum to exactly 1 across a shared boundary. With ``window=(a, b)`` only
    samples ``a <= i < b`` are made (the same values as ``section_weight(...)[a:b]``)."""
    a0, b0 = window if window is not None else (0, n_samples)
    w = np.zeros(b0 - a0, np.float64)
    lo, hi = max(start, 0, a0), min(end, n_samples, b0)
    if hi > lo:
        w[lo - a0:hi - a0] = 1.0
    if fade > 1:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)
        for edge, shape in ((start, ramp), (end, ramp[::-1])):
            if 0 < edge < n_samples:
                a = edge - fade // 2
                lo, hi = max(a, 0, a0), min(a + fade, n_samples, b0)
                if hi > lo:
                    w[lo - a0:hi - a0] = shape[lo - a: hi - a]
    return w.astype(np.float32)


def pan_gains(pan: float) -> tuple[float, float]:
    """Balance gains ``(left, right)`` of a stereo layer: ``0`` keeps both at 1, ``-1`` only left,
    ``1`` only right; constant power between (``-3 dB`` per side at ±0.5)."""
    if not -1.0 <= pan <= 1.0:
        raise UserInputError(f"pan must be between -1 (left) and 1 (right) (got {pan})")
    angle = (pan + 1) * np.pi / 4
    return float(min(1.0, np.sqrt(2) * np.cos(angle))), float(min(1.0, np.sqrt(2) * np.sin(angle)))


def place(audio: np.ndarray, level_db: float, pan: float) -> np.ndarray:
    """``audio`` ``[channels, samples]`` at ``level_db`` and panned (pan needs two channels)."""
    out = audio * np.float32(10 ** (level_db / 20))
    if pan and audio.shape[0] == 2:
        left, right = pan_gains(pan)
        out = out * np.array([[left], [right]], np.float32)
    return out.astype(np.float32, copy=False)


@dataclass
class Section:
    """One stretch of a feature. ``voice`` is a name in the voices given to :func:`render_feature`
    or ``"original"``; give ``time`` (``"1:05-1:40"``) or ``phrases`` (``"2-3"``, 1-based)."""

    voice: str = ORIGINAL
    time: str | None = None
    phrases: str | None = None
    transpose: float | None = None
    strength: float | None = None
    layer: str = SCHEMA["layer"].default
    level_db: float = SCHEMA["level_db"].default
    pan: float = SCHEMA["pan"].default
    original_level_db: float = SCHEMA["original_level_db"].default
    original_pan: float = SCHEMA["original_pan"].default
    #: filled in by :func:`render_feature`: seconds as asked and as placed
    start: float | None = None
    end: float | None = None
    placed: tuple[float, float] | None = None
    snapped: tuple[bool, bool] = (False, False)


@dataclass
class VoiceSpec:
    """A voice of a feature: its profile and how to plan its shift."""

    profile: VoiceProfile
    transpose: float | None = None
    target_range: str | None = None
    plan_mode: str | None = None
    strength: float | None = None


@dataclass
class FeatureOptions:
    crossfade_ms: float = SCHEMA["crossfade_ms"].default
    snap_seconds: float = SCHEMA["snap_seconds"].default
    min_pause: float = SCHEMA["min_pause"].default
    phrase_pause: float = SCHEMA["phrase_pause"].default


def resolve_sections(sections: list[Section], track: PitchTrack, seconds: float,
                     options: FeatureOptions) -> tuple[list[Section], list[tuple[float, float]]]:
    """Turn times or phrase numbers into placed boundaries (snapped into pauses); checks overlap."""
    phrases = detect_phrases(track, options.phrase_pause)
    pauses = find_pauses(track, options.min_pause)
    fade = options.crossfade_ms / 1000
    out = []
    for i, sec in enumerate(sections, 1):
        sec = dataclasses.replace(sec)
        if (sec.time is None) == (sec.phrases is None):
            raise UserInputError(f"section {i}: give either time (e.g. '1:05-1:40') or phrases (e.g. '2-3')")
        if sec.layer not in LAYERS:
            raise UserInputError(f"section {i}: layer must be one of {', '.join(LAYERS)} (got {sec.layer!r})")
        if sec.time is not None:
            sec.start, sec.end = parse_time_range(sec.time)
        else:
            first, last = parse_phrase_range(sec.phrases)
            if last > len(phrases):
                raise UserInputError(f"section {i}: phrases {sec.phrases} asked but {len(phrases)} phrase(s) "
                                     "were found in the vocal")
            sec.start, sec.end = phrases[first - 1][0], phrases[last - 1][1]
        if sec.start >= seconds:
            raise UserInputError(f"section {i} starts at {sec.start:.2f} s, after the song's end ({seconds:.2f} s)")
        end = min(sec.end, seconds)
        a, snap_a = (0.0, False) if sec.start <= 0 else snap_boundary(sec.start, pauses, options.snap_seconds, fade)
        b, snap_b = (seconds, False) if end >= seconds else snap_boundary(end, pauses, options.snap_seconds, fade)
        if b - a < fade * 2:
            raise UserInputError(f"section {i} ({sec.time or 'phrases ' + str(sec.phrases)}) is too short")
        sec.placed, sec.snapped = (round(a, 4), round(b, 4)), (snap_a, snap_b)
        out.append(sec)
    ordered = sorted(out, key=lambda s: s.placed[0])
    for prev, nxt in zip(ordered, ordered[1:]):
        if nxt.placed[0] < prev.placed[1] - 1e-6:
            raise UserInputError(f"sections overlap: {prev.placed[0]:.2f}-{prev.placed[1]:.2f} s and "
                                 f"{nxt.placed[0]:.2f}-{nxt.placed[1]:.2f} s")
    return out, phrases


def render_feature(
    engine: Engine,
    song: np.ndarray | None,
    sample_rate: int,
    sections: list[Section],
    voices: dict[str, VoiceSpec],
    vocals: np.ndarray | None = None,
    instrumental: np.ndarray | None = None,
    options: FeatureOptions | None = None,
    keep_stems: bool = False,
    scratch: Path | None = None,
):
    """Render a vocal feature; returns a :class:`~singvc.cover.CoverResult` whose
    ``vocals_converted`` is the assembled lead (every section in its voice) and whose report lists
    the sections as asked and as placed.

    Args:
        engine: an :class:`~singvc.engine.Engine` (models, converters, cache, base settings).
        song: the full mix ``[channels, samples]`` (or ``vocals`` + ``instrumental`` stems), arrays
            or :class:`~singvc.audio.DiskAudio`.
        sections: the sections; voice names refer to ``voices`` or are ``"original"``.
        scratch: a working folder: every full-length buffer is then a DiskAudio file there and
            the song is assembled block by block (bounded memory), with the same result.
    """
    options = options or FeatureOptions()
    s = engine.settings
    timer = Timer()
    for i, sec in enumerate(sections, 1):
        if sec.voice != ORIGINAL and sec.voice not in voices:
            raise UserInputError(f"section {i}: unknown voice {sec.voice!r} (known: {', '.join(sorted(voices)) or 'none'}, "
                                 f"{ORIGINAL})")
    with timer.stage("separation"):
        song, vocals, instrumental, separated, source, _ = engine.resolve_input(
            song, sample_rate, vocals, instrumental, keep_stems, scratch)
    n = song.shape[-1]
    seconds = n / sample_rate
    with timer.stage("pitch"):
        track, _ = engine.track(vocals, sample_rate)
    placed, phrases = resolve_sections(sections, track, seconds, options)

    plans: dict[tuple[str, float | None], RangePlan] = {}
    fade = max(2, int(round(options.crossfade_ms / 1000 * sample_rate)))
    margin = fade + int(0.05 * sample_rate)
    assembled = new_like(vocals, buffer_path(scratch, "vocals_converted"))
    spans: list[tuple[int, int, int, int]] = []  # (lo, hi, a, b) of every converted section
    warnings: list[str] = []
    # the lead/backing split (issue 16): sections convert the lead; the backing goes back under
    # the whole song (keep), or is dropped (mute); a stem without a second voice stays whole
    lead, backing, split_info, extra_stems = vocals, None, None, {}
    if s.backing != "off":
        with timer.stage("split"):
            split = separate_backing(engine, vocals, sample_rate, track, scratch)
        split_info = {"mode": s.backing, **split.described}
        if split.report.split:
            lead, backing = split.lead, split.backing
            extra_stems = {"vocals_lead.wav": split.lead, "vocals_backing.wav": split.backing}
            if s.backing == "convert":
                warnings.append("vocal features keep the backing as it is: backing=convert is done in covers only")
    if s.dereverb:
        warnings.append("vocal features ignore dereverb for now (covers only)")
    described = []
    for number, sec in enumerate(placed):
        a, b = (int(round(t * sample_rate)) for t in sec.placed)
        info = {"voice": sec.voice, "asked": sec.time or f"phrases {sec.phrases}",
                "start": round(sec.start, 3), "end": round(sec.end, 3), "placed": list(sec.placed),
                "snapped_to_pause": list(sec.snapped), "layer": sec.layer}
        if sec.voice == ORIGINAL:
            described.append({**info, "semitones": 0.0})
            continue
        spec = voices[sec.voice]
        transpose = pick(sec.transpose, spec.transpose)
        key = (sec.voice, transpose)
        if key not in plans:
            target = engine.resolve_target(spec.profile, target_range=spec.target_range, transpose=transpose,
                                           timer=timer)
            warnings += [f"voice {sec.voice}: {w}" for w in target.warnings]
            with timer.stage("plan"):
                plans[key] = plan_shift(track, target.register, s, [], transpose=transpose, plan_mode=spec.plan_mode)
        plan = plans[key]
        lo, hi = max(a - margin, 0), min(b + margin, n)
        if hi - lo < int(0.6 * sample_rate):  # the pipeline needs 0.5 s at least
            grow = int(0.6 * sample_rate) - (hi - lo)
            lo, hi = max(lo - grow, 0), min(hi + grow, n)
        strength = float(pick(sec.strength, spec.strength, s.strength))
        sub = engine.with_settings(strength=strength)  # converters are shared: built once per strength
        sub_scratch = None if scratch is None else Path(scratch) / f"section{number}"
        with timer.stage("convert"):
            if sub_scratch is None:
                section_vocals = lead[:, lo:hi]
            else:
                sub_scratch.mkdir()
                section_vocals = new_like(vocals, sub_scratch / "input.npy", shape=(vocals.shape[0], hi - lo))
                for p, q in blocks(hi - lo):
                    section_vocals[:, p:q] = lead[:, lo + p:lo + q]
            section_track, _ = sub.track(section_vocals, sample_rate)
            converted = convert_vocal(sub, section_vocals, sample_rate, section_track, plan.semitones, spec.profile,
                                      sub_scratch)
            match_loudness(converted, sample_rate, integrated_loudness(section_vocals, sample_rate), out=converted)
        warning = key_warning(sub, plan)
        if warning:
            warnings.append(f"section {sec.voice} {info['asked']}: {warning}")
        for p, q in blocks(hi - lo):
            layered = converted[:, p:q]
            if sec.layer != "replace":
                layered = (place(layered, sec.level_db, sec.pan)
                           + place(lead[:, lo + p:lo + q], sec.original_level_db, sec.original_pan))
            w = section_weight(n, a, b, fade, window=(lo + p, lo + q))
            assembled[:, lo + p:lo + q] = assembled[:, lo + p:lo + q] + w * layered
        spans.append((lo, hi, a, b))
        if sub_scratch is not None:
            del converted, section_vocals
            shutil.rmtree(sub_scratch, ignore_errors=True)
        described.append({**info, "semitones": plan.semitones, "strength": strength,
                          **({"level_db": sec.level_db, "pan": sec.pan, "original_level_db": sec.original_level_db,
                              "original_pan": sec.original_pan} if sec.layer != "replace" else {})})
    if any(sec.pan or sec.original_pan for sec in placed) and vocals.shape[0] != 2:
        warnings.append("pan is ignored on a mono song")
    for p, q in blocks(n):  # the original singer wherever no section covers the song fully
        covered = np.zeros(q - p, np.float32)
        for lo, hi, a, b in spans:
            if lo < q and hi > p:
                covered[max(lo, p) - p:min(hi, q) - p] += section_weight(n, a, b, fade, window=(max(lo, p), min(hi, q)))
        assembled[:, p:q] = assembled[:, p:q] + (1.0 - np.clip(covered, 0.0, 1.0)) * lead[:, p:q]
        if backing is not None and s.backing != "mute":
            assembled[:, p:q] = assembled[:, p:q] + backing[:, p:q]

    with timer.stage("loudness_remix"):
        mix, mix_info = mix_with(s, assembled, instrumental, song, sample_rate, scratch, warnings)
    main_plan = next(iter(plans.values()), None) or plan_transposition(track, None, transpose=0.0)
    report = {
        "singvc": __version__,
        "kind": "feature",
        "settings": dataclasses.asdict(s),
        "input": {"source": source, "sample_rate": sample_rate, "channels": int(song.shape[0]),
                  "seconds": round(seconds, 3)},
        "sections": described,
        "phrases": [[round(a, 3), round(b, 3)] for a, b in phrases],
        "voices": {name: {"profile": spec.profile.name, "register_median": spec.profile.register["median"]["note"],
                          "semitones": sorted({p.semitones for (v, _), p in plans.items() if v == name})}
                   for name, spec in voices.items()},
        "converter": engine.converter().describe(),
        "shift_semitones": main_plan.semitones,
        "plan": main_plan.describe(),
        "loudness": {"vocals_original_lufs": report_number(integrated_loudness(vocals, sample_rate)),
                     "vocals_converted_lufs": report_number(integrated_loudness(assembled, sample_rate)),
                     "mix": mix_info.to_dict()},
        **run_report(s, track, timer, warnings),
    }
    if split_info is not None:
        report["backing"] = split_info
    return CoverResult(mix=mix, vocals_converted=assembled, vocals_original=vocals, instrumental=instrumental,
                       sample_rate=sample_rate, plan=main_plan, pitch=track, report=report, song=song,
                       separated=separated, vocal_shift=main_plan.semitones if engine.converter().moves_pitch else 0.0,
                       extra_stems=extra_stems)
