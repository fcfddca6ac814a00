"""Melody MIDI from a pitch track: notes plus pitch bend that carries vibrato and slides.

Steps (all on the frames of a :class:`~singvc.pitch.PitchTrack`):

1. Voiced runs are bridged over gaps shorter than ``bridge_seconds`` (crepe voicing flicker) and
   runs shorter than ``min_note_seconds`` are dropped; each run starts a note (onset at voicing
   start).
2. Inside a run, the held pitch is found by a Viterbi path over whole MIDI notes on the contour
   (lightly smoothed against tracker jitter), with a fixed cost per change, so vibrato stays
   inside one note while a held change of pitch starts a new one. Pieces shorter than
   ``min_note_seconds`` are merged into the neighbour nearest in pitch; short moving pieces
   (scoops, slides) join the next note when its bend range covers them; neighbours left with the
   same key are joined.
3. Each note's key is the rounded median pitch of its frames; its velocity comes from its 90th-percentile
   64 ms window level (0 dB below the loudest note -> 127, 40 dB below -> 20).
4. Pitch bend on every frame is the contour minus the note's key, clipped to the bend range
   (±2 semitones by default, set by RPN 0 at the start of the file), written when it moves by
   more than ``bend_step_cents``.

The file is type 1 at 480 PPQ: a conductor track (tempo, 4/4) and a melody track on channel 1.
Times are converted seconds -> ticks with the same integer tempo written in the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NonFiniteResultError, UserInputError
from .run import atomic_write
from .pitch import PitchTrack, frame_loudness_db

PPQ = 480
BEND_RANGE = 2.0
BEND_MAX = 8191


@dataclass
class Note:
    """One note: ``start``/``end`` in seconds, ``key`` a MIDI note number, ``velocity`` 1-127."""

    start: float
    end: float
    key: int
    velocity: int = 100


@dataclass
class Melody:
    """Notes plus a pitch-bend curve.

    Attributes:
        notes: in time order, not overlapping.
        bend_times: seconds, ``[points]``; times of frames inside notes.
        bend_semitones: bend at those times relative to the sounding note, within ±``bend_range``.
        bend_range: semitones of a full bend (the RPN 0 setting).
    """

    notes: list[Note] = field(default_factory=list)
    bend_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bend_semitones: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bend_range: float = BEND_RANGE


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average with the window shrunk at the edges."""
    if width <= 1 or len(values) < 2:
        return values.copy()
    kernel = np.ones(width)
    num = np.convolve(values, kernel, mode="same")
    den = np.convolve(np.ones_like(values), kernel, mode="same")
    return num / den


def _held_pitch_path(smooth: np.ndarray, change_cost: float) -> np.ndarray:
    """Viterbi over whole MIDI notes: cost ``min(|s - k|, 3)^2`` per frame plus ``change_cost`` per change."""
    lo, hi = int(np.floor(smooth.min())) - 1, int(np.ceil(smooth.max())) + 1
    keys = np.arange(lo, hi + 1)
    emit = np.minimum(np.abs(smooth[:, None] - keys[None, :]), 3.0) ** 2
    n, k = emit.shape
    cost = emit[0].copy()
    back = np.zeros((n, k), dtype=np.int64)
    for i in range(1, n):
        best = int(np.argmin(cost))
        switch = cost[best] + change_cost
        stay = cost <= switch
        back[i] = np.where(stay, np.arange(k), best)
        cost = np.where(stay, cost, switch) + emit[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmin(cost))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return keys[path]


def _merge_short(pieces: list[list[int]], midi: np.ndarray, min_frames: int) -> list[list[int]]:
    """Merge pieces ``[start, stop]`` shorter than ``min_frames`` into the neighbour nearest in pitch."""
    pieces = [list(p) for p in pieces]
    while len(pieces) > 1:
        lengths = [b - a for a, b in pieces]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_frames:
            break
        here = np.median(midi[pieces[i][0]:pieces[i][1]])
        candidates = [j for j in (i - 1, i + 1) if 0 <= j < len(pieces)]
        j = min(candidates, key=lambda j: abs(np.median(midi[pieces[j][0]:pieces[j][1]]) - here))
        a, b = min(i, j), max(i, j)
        pieces[a] = [pieces[a][0], pieces[b][1]]
        del pieces[b]
    return pieces


def _merge_glides(pieces: list[list[int]], midi: np.ndarray, max_frames: int, bend_range: float,
                  moving: float = 0.75) -> list[list[int]]:
    """Merge pieces that are glides (shorter than ``max_frames`` and moving by ``moving`` semitones
    or more) into the next piece, else the previous one, when that note's bend range covers them."""
    i = 0
    while i < len(pieces) and len(pieces) > 1:
        a, b = pieces[i]
        seg = midi[a:b]
        if b - a < max_frames and np.ptp(seg) >= moving:
            for j in (i + 1, i - 1):
                if 0 <= j < len(pieces):
                    key = np.round(np.median(midi[pieces[j][0]:pieces[j][1]]))
                    if np.max(np.abs(seg - key)) <= bend_range:
                        lo, hi = min(i, j), max(i, j)
                        pieces[lo] = [pieces[lo][0], pieces[hi][1]]
                        del pieces[hi]
                        i = max(0, lo - 1)
                        break
            else:
                i += 1
            continue
        i += 1
    return pieces


def melody_from_track(
    track: PitchTrack,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    min_note_seconds: float = 0.08,
    bridge_seconds: float = 0.03,
    smooth_seconds: float = 0.05,
    change_cost: float = 6.0,
    glide_seconds: float = 0.2,
    bend_range: float = BEND_RANGE,
) -> Melody:
    """Segment ``track`` into notes with a pitch-bend curve (see the module docstring).

    Args:
        audio, sample_rate: the vocal the track was measured on (float32 ``[channels, samples]``),
            for velocities; without it every velocity is 100.
        min_note_seconds: shortest note (shorter voiced runs are dropped, shorter pieces merged).
        bridge_seconds: unvoiced gaps up to this long inside a phrase do not end a note.
        smooth_seconds: window of the moving average applied before segmentation (tracker jitter).
        change_cost: cost of a new note, in squared semitones x frames (higher: fewer splits).
        glide_seconds: a piece shorter than this that moves by 0.75 semitone or more (a scoop or a
            slide, not a held pitch) joins the next note (else the previous) when that note's bend
            range covers it.
        bend_range: semitones of a full bend.
    """
    if not bend_range > 0:
        raise UserInputError(f"bend range must be above 0 semitones (got {bend_range})")
    n = len(track)
    if n == 0:
        return Melody(bend_range=bend_range)
    hop = float(track.hop)
    midi = track.midi
    voiced = np.asarray(track.voiced, dtype=bool).copy()
    bridge = int(round(bridge_seconds / hop))
    for a, b in _runs(~voiced):  # bridge short gaps between voiced frames
        if a > 0 and b < n and b - a <= bridge:
            voiced[a:b] = True
            midi[a:b] = np.interp(np.arange(a, b), [a - 1, b], [midi[a - 1], midi[b]])
    min_frames = max(1, int(round(min_note_seconds / hop)))
    width = max(1, int(round(smooth_seconds / hop)))
    loud = None
    if audio is not None:
        if sample_rate is None:
            raise UserInputError("sample_rate is needed with audio")
        loud = frame_loudness_db(audio, sample_rate, hop, n)

    notes: list[Note] = []
    levels: list[float] = []
    bend_idx: list[np.ndarray] = []
    bend_val: list[np.ndarray] = []
    for a, b in _runs(voiced):
        if b - a < min_frames:
            continue
        seg = midi[a:b]
        path = _held_pitch_path(_smooth(seg, width), change_cost)
        cuts = np.flatnonzero(np.diff(path)) + 1
        bounds = np.concatenate([[0], cuts, [b - a]])
        pieces = _merge_short([[int(s), int(e)] for s, e in zip(bounds[:-1], bounds[1:])], seg, min_frames)
        pieces = _merge_glides(pieces, seg, int(round(glide_seconds / hop)), bend_range)
        joined: list[list[int]] = []
        for piece in pieces:  # neighbours left with the same key are one note
            if joined and np.round(np.median(seg[joined[-1][0]:joined[-1][1]])) == np.round(np.median(seg[piece[0]:piece[1]])):
                joined[-1][1] = piece[1]
            else:
                joined.append(piece)
        pieces = joined
        for s, e in pieces:
            key = int(np.clip(np.round(np.median(seg[s:e])), 0, 127))
            start = max(0.0, float(track.times[a + s]) - hop / 2)
            end = float(track.times[a + e - 1]) + hop / 2
            notes.append(Note(start, end, key))
            levels.append(float(np.percentile(loud[a + s:a + e], 90)) if loud is not None else 0.0)
            bend_idx.append(np.arange(a + s, a + e))
            bend_val.append(np.clip(seg[s:e] - key, -bend_range, bend_range))
    if loud is not None and notes:
        top = max(levels)
        for note, level in zip(notes, levels):
            note.velocity = int(np.clip(round(127 + (level - top) * 107 / 40), 20, 127))
    idx = np.concatenate(bend_idx) if bend_idx else np.zeros(0, dtype=np.int64)
    return Melody(notes=notes, bend_times=np.asarray(track.times, dtype=np.float64)[idx],
                  bend_semitones=np.concatenate(bend_val) if bend_val else np.zeros(0), bend_range=bend_range)


def tempo_microseconds(bpm: float) -> int:
    """MIDI tempo (microseconds per quarter note) for ``bpm``."""
    if not 1.0 <= bpm <= 1000.0:
        raise UserInputError(f"tempo must be within 1-1000 BPM (got {bpm})")
    return int(round(60_000_000 / bpm))


def seconds_to_ticks(seconds: np.ndarray | float, bpm: float, ppq: int = PPQ) -> np.ndarray:
    """Absolute ticks at a constant tempo, using the integer tempo written in the file."""
    return np.round(np.asarray(seconds, dtype=np.float64) * 1e6 / tempo_microseconds(bpm) * ppq).astype(np.int64)


def bend_value(semitones: np.ndarray | float, bend_range: float = BEND_RANGE) -> np.ndarray:
    """Pitch-wheel values (-8192..8191) for bends in semitones."""
    return np.clip(np.round(np.asarray(semitones) / bend_range * 8192), -8192, BEND_MAX).astype(np.int64)


def check_melody(melody: Melody, bpm: float, name: str = "melody") -> None:
    """Raise :class:`NonFiniteResultError` if ``bpm``, a note's times or a bend point is not finite."""
    times = np.array([(n.start, n.end) for n in melody.notes], dtype=np.float64).reshape(-1)
    values = {"tempo": np.array([bpm], dtype=np.float64), "note times": times,
              "bend times": np.asarray(melody.bend_times, dtype=np.float64),
              "bends": np.asarray(melody.bend_semitones, dtype=np.float64),
              "bend range": np.array([melody.bend_range], dtype=np.float64)}
    bad = {k: int(v.size - np.count_nonzero(np.isfinite(v))) for k, v in values.items()}
    if any(bad.values()):
        what = ", ".join(f"{n} in {k}" for k, n in bad.items() if n)
        raise NonFiniteResultError(f"{name}: NaN or infinite values ({what}); no MIDI file was written")


def melody_to_midi(
    melody: Melody,
    bpm: float,
    name: str = "melody",
    ppq: int = PPQ,
    channel: int = 0,
    bend_step_cents: float = 1.0,
):
    """A ``mido.MidiFile`` (type 1, ``ppq`` ticks per quarter note) holding ``melody`` at ``bpm``.

    Raises:
        NonFiniteResultError: the tempo, a note time or a bend is NaN or infinite.
    """
    import mido

    check_melody(melody, bpm, name)
    tempo = tempo_microseconds(bpm)
    conductor = mido.MidiTrack([
        mido.MetaMessage("track_name", name=name, time=0),
        mido.MetaMessage("set_tempo", tempo=tempo, time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
    ])
    semis = int(np.floor(melody.bend_range))
    cents = int(round((melody.bend_range - semis) * 100))
    setup = [("control_change", dict(control=c, value=v)) for c, v in
             ((101, 0), (100, 0), (6, semis), (38, min(cents, 127)), (101, 127), (100, 127))]
    events: list[tuple[int, int, str, dict]] = [(0, -1, kind, kw) for kind, kw in setup]
    step = max(1, int(round(bend_step_cents / 100 / melody.bend_range * 8192)))
    note_ticks = [(int(a), int(b)) for a, b in zip(seconds_to_ticks([x.start for x in melody.notes], bpm, ppq),
                                                    seconds_to_ticks([x.end for x in melody.notes], bpm, ppq))]
    bend_ticks = seconds_to_ticks(melody.bend_times, bpm, ppq)
    bends = bend_value(melody.bend_semitones, melody.bend_range)
    order = np.searchsorted(melody.bend_times, [x.start for x in melody.notes] + [np.inf])
    for i, (note, (on, off)) in enumerate(zip(melody.notes, note_ticks)):
        off = max(off, on + 1)
        lo, hi = order[i], order[i + 1]
        first = int(bends[lo]) if hi > lo else 0
        events.append((on, 1, "pitchwheel", dict(pitch=first)))
        events.append((on, 2, "note_on", dict(note=note.key, velocity=int(note.velocity))))
        last = first
        for tick, value in zip(bend_ticks[lo + 1:hi], bends[lo + 1:hi]):
            if abs(int(value) - last) >= step and on < tick < off:
                events.append((int(tick), 1, "pitchwheel", dict(pitch=int(value))))
                last = int(value)
        events.append((off, 0, "note_off", dict(note=note.key, velocity=0)))
    if melody.notes:
        events.append((max(b for _, b in note_ticks), 3, "pitchwheel", dict(pitch=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    now = 0
    for tick, _, kind, kw in events:
        track.append(mido.Message(kind, channel=channel, time=tick - now, **kw))
        now = tick
    midi_file = mido.MidiFile(type=1, ticks_per_beat=ppq)
    midi_file.tracks.extend([conductor, track])
    return midi_file


def save_midi(path: str | os.PathLike, midi_file) -> Path:
    """Write a ``mido.MidiFile`` atomically (temp file beside the target, then rename)."""
    with atomic_write(path) as tmp:
        midi_file.save(str(tmp))
    return Path(path)


def midi_pitch_at(midi_file, times: np.ndarray) -> np.ndarray:
    """Sounding pitch (MIDI note number + bend, semitones) of a monophonic MIDI file at ``times`` (s).

    Reads the bend range from RPN 0 (±2 semitones if absent). ``nan`` where no note sounds. Used to
    check what a written file plays back.
    """
    times = np.asarray(times, dtype=np.float64)
    out = np.full(len(times), np.nan)
    bend_range, rpn, bend = BEND_RANGE, [127, 127], 0.0
    semis, cents = 2, 0
    sounding: int | None = None
    since = 0.0
    now = 0.0
    segments: list[tuple[float, float, float]] = []  # (start, end, pitch)

    def close(t: float) -> None:
        if sounding is not None and t > since:
            segments.append((since, t, sounding + bend))

    for msg in midi_file:  # merged tracks, msg.time in seconds
        now += msg.time
        if msg.is_meta:
            continue
        if msg.type == "control_change":
            if msg.control in (101, 100):
                rpn[0 if msg.control == 101 else 1] = msg.value
            elif msg.control in (6, 38) and rpn == [0, 0]:
                if msg.control == 6:
                    semis = msg.value
                else:
                    cents = msg.value
                bend_range = semis + cents / 100
        elif msg.type == "pitchwheel":
            close(now)
            bend = msg.pitch / 8192 * bend_range
            since = now
        elif msg.type == "note_on" and msg.velocity > 0:
            close(now)
            sounding, since = msg.note, now
        elif msg.type in ("note_off", "note_on") and msg.note == sounding:
            close(now)
            sounding = None
    for start, end, pitch in segments:
        out[(times >= start) & (times < end)] = pitch
    return out
