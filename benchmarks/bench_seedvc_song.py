"""Seed-VC over a whole song: timbre drift across the song and seams at the window joins.

Runs a real cover through the CLI (``singvc cover --converter seedvc``) on a vocal (or a song,
separated), then measures on the converted vocal:

* **drift**: speaker similarity (resemblyzer, the ``eval`` extra) of every 5 s window (hop 2.5 s,
  silent windows skipped) to the reference clip: mean, std, first, last, min, and the slope of a
  line fitted over time (similarity per minute); a converter that drifts away from the voice over
  a song shows a falling line;
* **seams**: at every window join (the centre of each cross-fade, from ``report.json``) versus
  positions between joins (the baseline: 20 evenly spaced points away from any join):
  ``click_db``, the largest 1 ms high-passed (> 6 kHz) peak within ±100 ms relative to the median
  of that measure over ±1 s around the point; ``dip_db``, the RMS over the 186 ms cross-fade relative
  to the RMS of the 0.5 s on each side (phase cancellation between windows shows as a dip).
  Seams are clean when joins look like the baseline.

With real weights (``singvc models fetch seedvc`` or ``--seedvc-dir``) this is the issue's
measurement. With the small random model of the tests (``--seedvc-dir tests/data/seedvc-small``,
``--context 4`` to force many joins) it only checks that the pipeline and this script run: random
weights make noise, so their drift and seam figures say nothing about the model.

    python benchmarks/bench_seedvc_song.py --vocal ../shared/data/vocals/see_you_again_28s.flac \\
        --voice ../shared/data/voices/s1p1.flac [--seedvc-dir DIR] [--steps 10] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.signal

from singvc.audio import load_audio, to_mono


def peak_mb() -> float:
    """Peak resident memory of this process (the cover runs in it), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def click_db(x: np.ndarray, rate: int, at: float) -> float:
    """Largest 1 ms high-passed peak within ±100 ms of ``at`` s, re the median over ±1 s (dB)."""
    sos = scipy.signal.butter(4, 6000, "highpass", fs=rate, output="sos")
    lo, hi = max(0, int((at - 1.0) * rate)), min(x.size, int((at + 1.0) * rate))
    y = np.abs(scipy.signal.sosfilt(sos, x[lo:hi]))
    ms = rate // 1000
    peaks = y[: y.size // ms * ms].reshape(-1, ms).max(axis=1)
    centre = int((at - lo / rate) * 1000)
    near = peaks[max(0, centre - 100): centre + 100]
    base = float(np.median(peaks)) + 1e-9
    return round(20 * np.log10(float(near.max()) / base + 1e-12), 2) if near.size else float("nan")


def dip_db(x: np.ndarray, rate: int, at: float, fade: float) -> float:
    """RMS over the cross-fade around ``at`` re the RMS of 0.5 s on each side (dB)."""
    def rms(a, b):
        seg = x[max(0, int(a * rate)): max(0, int(b * rate))]
        return float(np.sqrt(np.mean(seg.astype(np.float64) ** 2))) if seg.size else 0.0
    inside = rms(at - fade / 2, at + fade / 2)
    around = 0.5 * (rms(at - fade / 2 - 0.5, at - fade / 2) + rms(at + fade / 2, at + fade / 2 + 0.5))
    return round(20 * np.log10((inside + 1e-9) / (around + 1e-9)), 2)


def summary(values: list[float]) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)])
    if v.size == 0:
        return {"n": 0}
    return {"n": int(v.size), "median": round(float(np.median(v)), 2), "max": round(float(v.max()), 2),
            "min": round(float(v.min()), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocal", help="a dry vocal (converted as it is, --no-separation)")
    parser.add_argument("--song", help="a full song (separated first)")
    parser.add_argument("--voice", required=True, help="the reference clip")
    parser.add_argument("--seedvc-dir", help="the Seed-VC model folder (default: the model cache)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seconds", type=float, help="convert only the first SECONDS of the input")
    parser.add_argument("--context", type=float, help="the DiT context in seconds (default the model's 30; "
                        "a smaller one forces more joins: for checking the script with the small test model)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if bool(args.vocal) == bool(args.song):
        parser.error("give --vocal or --song")

    import soundfile as sf

    from singvc.cli import main as singvc_main
    from singvc.evaluate import cosine, drift, embed, load_encoder

    work = Path(tempfile.mkdtemp(prefix="bench-seedvc-song-"))
    source = Path(args.vocal or args.song)
    if args.seconds:
        audio, rate = load_audio(source)
        source = work / "input.wav"
        sf.write(source, audio[:, : int(args.seconds * rate)].T, rate, subtype="FLOAT")
    if args.context:
        import singvc.converters.seedvc.runtime as runtime

        runtime.CONTEXT_SECONDS = args.context
    cmd = ["cover", str(source), "--voice", args.voice, "--converter", "seedvc", "--steps", str(args.steps),
           "-o", str(work / "out"), "--quiet"]
    if args.seedvc_dir:
        cmd += ["--seedvc-dir", args.seedvc_dir]
    if args.vocal:
        cmd += ["--no-separation"]
    start = time.perf_counter()
    code = singvc_main(cmd)
    seconds = time.perf_counter() - start
    peak = peak_mb()  # before the speaker encoder is loaded
    if code:
        print(f"singvc cover failed (exit {code})", file=sys.stderr)
        return code
    report = json.loads((work / "out" / "report.json").read_text())
    converted, rate = load_audio(work / "out" / "vocals_converted.wav")
    x = to_mono(converted).astype(np.float64)
    last = report["converter"].get("last_conversion", {})
    joins = list(last.get("joins_s", []))
    fade = 16 * 512 / 44100
    length = x.size / rate
    baseline = [t for t in np.linspace(1.5, length - 1.5, 20)
                if all(abs(t - j) > 1.0 for j in joins)] if length > 3 else []

    encoder = load_encoder()
    ref, ref_rate = load_audio(args.voice)
    target = embed(encoder, ref, ref_rate)
    d = drift(encoder, converted, rate, target)
    sims, times = [], []
    win, hop = int(5 * rate), int(2.5 * rate)
    for s in range(0, max(x.size - win, 0) + 1, hop):
        seg = converted[:, s:s + win]
        if np.sqrt(np.mean(seg.astype(np.float64) ** 2)) < 1e-4:
            continue
        sims.append(cosine(embed(encoder, seg, rate), target))
        times.append((s + win / 2) / rate)
    slope = float(np.polyfit(np.asarray(times) / 60, sims, 1)[0]) if len(sims) >= 3 else None
    figures = {
        "input": str(args.vocal or args.song), "voice": args.voice, "seconds": round(length, 2),
        "steps": args.steps, "context_s": args.context or 30,
        "model_folder": report["converter"].get("model_folder"),
        "wall_s": round(seconds, 1), "rtf": round(seconds / length, 2), "peak_rss_mb": round(peak),
        "windows": last.get("windows"), "joins_s": joins,
        "drift": {**d, "min": round(min(sims), 4) if sims else None,
                  "slope_per_minute": None if slope is None else round(slope, 4)},
        "seams": {"click_db": {"joins": summary([click_db(x, rate, t) for t in joins]),
                               "baseline": summary([click_db(x, rate, t) for t in baseline])},
                  "dip_db": {"joins": summary([dip_db(x, rate, t, fade) for t in joins]),
                             "baseline": summary([dip_db(x, rate, t, fade) for t in baseline])}},
    }
    text = json.dumps(figures, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
