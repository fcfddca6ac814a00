"""Real-audio check of the "pitch" converter: does +N semitones come out as +N, contour and voicing kept?

Tracks the source vocal with crepe ``full`` (10 ms), converts it, tracks the output the same way
and prints JSON:

- ``median_shift_semitones``: median of 12·log2(f0_out / f0_src) on frames voiced in both
  (target: the requested shift ± 0.1);
- ``median_abs_contour_error_cents``: median |1200·log2(f0_out / (f0_src · 2^(N/12)))| on the
  same frames (target ≤ 15);
- ``voiced_kept``: fraction of source-voiced frames still voiced in the output (target ≥ 0.90);
- ``duration_unchanged``: output has exactly the input's shape;
- ``convert_rtf``: converter wall time / audio duration (target ≲ 0.3).

The output is tracked with ``fmax`` raised to 1900 Hz (crepe's range ends near 1975 Hz), since an
octave up a soprano line passes the tracker's 1100 Hz default.

Usage::

    PYTHONPATH=. python benchmarks/check_pitch_shift.py [AUDIO] [--semitones 12] [--cache DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_AUDIO = "/work/shared/data/vocals/see_you_again_28s.flac"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="?", default=DEFAULT_AUDIO)
    parser.add_argument("--semitones", type=float, default=12.0)
    parser.add_argument("--pitch-model", choices=("full", "tiny"), default="full")
    parser.add_argument("--cache", default=None, help="folder to cache the source pitch track in")
    parser.add_argument("--save-output", default=None, help="write the converted vocal to this WAV")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="converter option, e.g. --option aperiodicity_period=10 (repeatable)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for crepe")
    return parser


def parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        options[key] = True if value == "true" else False if value == "false" else float(value)
    return options


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    import torch

    from singvc.audio import load_audio, save_audio
    from singvc.converters import get_converter
    from singvc.pitch import PitchTrack, load_pitch_model, track_pitch

    if args.threads:
        torch.set_num_threads(args.threads)
    audio, sample_rate = load_audio(args.audio)
    duration = audio.shape[-1] / sample_rate
    model = load_pitch_model(args.pitch_model)

    src = None
    cache_path = None
    if args.cache:
        digest = hashlib.sha1(Path(args.audio).read_bytes()).hexdigest()[:12]
        cache_path = Path(args.cache) / f"{Path(args.audio).stem}.{digest}.{args.pitch_model}.npz"
        if cache_path.exists():
            src = PitchTrack.load(cache_path)
    timings = {}
    if src is None:
        t0 = time.perf_counter()
        src = track_pitch(audio, sample_rate, model)
        timings["track_source_s"] = round(time.perf_counter() - t0, 2)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            src.save(cache_path)

    options = parse_options(args.option)
    converter = get_converter("pitch", **options)
    t0 = time.perf_counter()
    out = converter.convert(audio, sample_rate, src, args.semitones)
    convert_s = time.perf_counter() - t0
    if args.save_output:
        save_audio(args.save_output, out, sample_rate)

    t0 = time.perf_counter()
    dst = track_pitch(out, sample_rate, model, fmax=1900.0)
    timings["track_output_s"] = round(time.perf_counter() - t0, 2)

    n = min(len(src), len(dst))
    sv, dv = src.voiced[:n], dst.voiced[:n]
    both = sv & dv
    shift = 12.0 * np.log2(dst.f0[:n][both] / src.f0[:n][both])
    error_cents = np.abs(shift - args.semitones) * 100.0
    report = {
        "audio": str(args.audio),
        "duration_s": round(duration, 3),
        "sample_rate": sample_rate,
        "channels": int(audio.shape[0]),
        "semitones": args.semitones,
        "converter": converter.name,
        "options": options,
        "source_voiced_frames": int(sv.sum()),
        "frames_voiced_in_both": int(both.sum()),
        "median_shift_semitones": round(float(np.median(shift)), 4),
        "median_abs_contour_error_cents": round(float(np.median(error_cents)), 2),
        "p90_abs_contour_error_cents": round(float(np.percentile(error_cents, 90)), 2),
        "octave_errors": int(np.sum(error_cents > 600)),
        "voiced_kept": round(float(both.sum() / max(1, sv.sum())), 4),
        "output_voiced_where_source_unvoiced": int(np.sum(dv & ~sv)),
        "duration_unchanged": bool(out.shape == audio.shape),
        "convert_s": round(convert_s, 2),
        "convert_rtf": round(convert_s / duration, 3),
        **timings,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
