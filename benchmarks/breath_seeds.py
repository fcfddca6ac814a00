"""The breath tones of bench_pitch.py with other noise seeds (11-13): is the refinement within 1 cent
of crepe (median) for noise realisations it was not tuned on? Crepe ``full`` at stride 2 and 1; the
refinement as configured and without the roughness-adapted smoothing (``long_smooth=0``). Prints
one line per track (about 5 min on 2 cores); the figures are quoted in docs/pitch-benchmark.md."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_pitch as B  # noqa: E402
from singvc.audio import mono_resampled  # noqa: E402
from singvc.pitch import CREPE_SAMPLE_RATE, load_pitch_model, refine_track, track_pitch  # noqa: E402


def main() -> int:
    model = load_pitch_model("full", backend="auto")
    sr = B.SR
    n = int((B.TONE_SECONDS - 2 * B.PAD) * sr)
    t = np.arange(n) / sr
    for seed in (11, 12, 13):
        for extent in (20.0, 50.0, 100.0):
            f0 = B._padded(220.0 * 2 ** (extent * np.sin(2 * np.pi * 5.5 * t) / 1200), sr)
            audio = B._render(f0, sr, breath_db=-10.0, seed=seed)
            case = B.Case(f"breath seed {seed} ±{extent:g}c", "tone+breath", audio, sr, np.arange(len(f0)) / sr, f0,
                          B._padded(np.full(n, 220.0), sr), (5.5, extent))
            x16 = mono_resampled(case.audio, sr, CREPE_SAMPLE_RATE)[None]
            for stride in (2, 1):
                crepe = track_pitch(case.audio, sr, model, stride=stride, refine=False)
                new = refine_track(x16, CREPE_SAMPLE_RATE, crepe)
                old = refine_track(x16, CREPE_SAMPLE_RATE, crepe, long_smooth=0)
                m = [B.metrics(case, k) for k in (crepe, new, old)]
                print(f"seed {seed} ±{extent:g}c stride {stride}: crepe {m[0]['median_cents']:.2f} "
                      f"refined {m[1]['median_cents']:.2f} (extent {m[1]['vibrato_extent_ratio']:.3f}) "
                      f"without long smoothing {m[2]['median_cents']:.2f}  "
                      f"refined - crepe {m[1]['median_cents'] - m[0]['median_cents']:+.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
