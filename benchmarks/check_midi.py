"""Real-audio check of the melody MIDI: does the written file play back the crepe pitch?

Tracks the vocal with crepe ``full`` (10 ms; the track is cached with ``PitchTrack.save`` so a
re-run takes seconds), segments it into notes with pitch bend (:mod:`singvc.midi`), writes the
MIDI file at the tempo librosa finds, reads it back with mido and compares, frame by frame, the
sounding pitch (note + bend, from the parsed file) with the crepe pitch. Prints JSON:

- ``agreement``: share of voiced frames inside notes where |MIDI pitch - crepe pitch| <= 0.5
  semitone once bends are applied (target >= 0.90);
- ``agreement_without_bend``: the same with the note keys alone (for information);
- ``voiced_covered``: share of crepe-voiced frames that fall inside a note;
- ``median_abs_error_cents``: median |MIDI pitch - crepe pitch| on those frames;
- notes, tempo, key, timings.

The file's pitch is read 2 ms after each frame centre: event times are rounded to ticks (about
1 ms at 480 PPQ), so a bend written for a frame may land just after the frame's own instant.

Usage::

    PYTHONPATH=. python benchmarks/check_midi.py [AUDIO] [--pitch-model full] [--cache /tmp/singvc_check_midi]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_AUDIO = "/work/shared/data/vocals/see_you_again_28s.flac"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", default=DEFAULT_AUDIO)
    parser.add_argument("--pitch-model", choices=("full", "tiny"), default="full")
    parser.add_argument("--cache", default="/tmp/singvc_check_midi", help="folder to cache the pitch track in")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for crepe")
    parser.add_argument("--save-midi", default=None, help="also keep the MIDI file here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    import mido
    import torch

    from singvc.analysis import estimate_key, estimate_tempo
    from singvc.audio import load_audio
    from singvc.midi import melody_from_track, melody_to_midi, midi_pitch_at, save_midi
    from singvc.pitch import PitchTrack, load_pitch_model, track_pitch

    if args.threads:
        torch.set_num_threads(args.threads)
    audio, sample_rate = load_audio(args.audio)
    timings: dict[str, float] = {}
    digest = hashlib.sha1(Path(args.audio).read_bytes()).hexdigest()[:12]
    cache_path = Path(args.cache) / f"{Path(args.audio).stem}.{digest}.{args.pitch_model}.npz"
    if cache_path.exists():
        track = PitchTrack.load(cache_path)
    else:
        t0 = time.perf_counter()
        track = track_pitch(audio, sample_rate, load_pitch_model(args.pitch_model))
        timings["track_s"] = round(time.perf_counter() - t0, 2)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        track.save(cache_path)

    t0 = time.perf_counter()
    tempo = estimate_tempo(audio, sample_rate)
    key = estimate_key(audio, sample_rate)
    timings["tempo_key_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    melody = melody_from_track(track, audio, sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_midi(Path(args.save_midi) if args.save_midi else Path(tmp) / "melody.mid",
                         melody_to_midi(melody, tempo))
        midi_file = mido.MidiFile(str(path))
    timings["midi_s"] = round(time.perf_counter() - t0, 2)

    played = midi_pitch_at(midi_file, track.times + 0.002)
    keys_only = np.full(len(track), np.nan)
    for note in melody.notes:
        keys_only[(track.times + 0.002 >= note.start) & (track.times + 0.002 < note.end)] = note.key
    crepe = track.midi
    voiced = track.voiced
    inside = voiced & ~np.isnan(played)
    error = np.abs(played[inside] - crepe[inside])
    error_keys = np.abs(keys_only[inside] - crepe[inside])
    lengths = np.array([n.end - n.start for n in melody.notes])
    report = {
        "audio": str(args.audio),
        "pitch_model": args.pitch_model,
        "duration_s": round(audio.shape[-1] / sample_rate, 3),
        "voiced_frames": int(voiced.sum()),
        "frames_in_notes": int(inside.sum()),
        "agreement": round(float(np.mean(error <= 0.5)), 4) if len(error) else None,
        "agreement_without_bend": round(float(np.mean(error_keys <= 0.5)), 4) if len(error) else None,
        "voiced_covered": round(float(inside.sum() / max(1, voiced.sum())), 4),
        "median_abs_error_cents": round(float(np.median(error) * 100), 2) if len(error) else None,
        "p99_abs_error_cents": round(float(np.percentile(error, 99) * 100), 2) if len(error) else None,
        "notes": len(melody.notes),
        "shortest_note_s": round(float(lengths.min()), 3) if len(lengths) else None,
        "median_note_s": round(float(np.median(lengths)), 3) if len(lengths) else None,
        "ppq": midi_file.ticks_per_beat,
        "tempo_bpm": tempo,
        "key": key.name,
        "seconds": timings,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
