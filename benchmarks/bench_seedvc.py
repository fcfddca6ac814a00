"""Seed-VC speed and memory at the published sizes, with random weights (no download needed).

Measures, on this machine, one full context window (30 s: a reference prompt of ``--ref`` s and
the rest of the source): the DiT's time per Euler step (CFG batch of 2), BigVGAN's time per second
of audio, Whisper's and the length regulator's time; then states the real-time factor of a whole
vocal of ``--minutes`` at 10 and 30 steps **estimated** from those per-window figures (a window
count times the per-window cost), and the peak resident memory of the process.

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_seedvc.py [--device cuda] [--threads 2]

A whole vocal is not run end to end here (on a 2-core CPU that takes hours): the song figure is
an estimate. ``benchmarks/bench_seedvc_song.py`` runs a real cover through the CLI (with the
published weights, or the small test model) and reports its wall time and RTF.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

import numpy as np
import torch


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ref", type=float, default=10.0, help="reference prompt seconds")
    parser.add_argument("--minutes", type=float, default=3.5)
    parser.add_argument("--steps-measured", type=int, default=1, help="Euler steps timed on the window")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from singvc.converters.seedvc.bigvgan import BigVGAN
    from singvc.converters.seedvc.campplus import CAMPPlus
    from singvc.converters.seedvc.model import SeedVCConfig, SeedVCModel
    from singvc.converters.seedvc.runtime import CONTEXT_SECONDS, SeedVCStack

    torch.manual_seed(0)
    config = SeedVCConfig()
    whisper = WhisperModel(WhisperConfig(d_model=768, encoder_layers=12, encoder_attention_heads=12,
                                         encoder_ffn_dim=3072, decoder_layers=1, num_mel_bins=80)).encoder
    stack = SeedVCStack(SeedVCModel(config), whisper, WhisperFeatureExtractor(feature_size=80), CAMPPlus(),
                        BigVGAN({}), device=args.device)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("dit", stack.model.dit), ("length_regulator", stack.model.length_regulator),
               ("whisper_encoder", stack.whisper), ("campplus", stack.campplus), ("bigvgan", stack.vocoder))}
    sr, hop = config.sample_rate, config.hop_length
    rng = np.random.default_rng(0)
    ref = torch.from_numpy((0.1 * rng.standard_normal(int(args.ref * sr))).astype(np.float32))[None]
    src_seconds = CONTEXT_SECONDS - args.ref
    src = torch.from_numpy((0.1 * rng.standard_normal(int(src_seconds * sr))).astype(np.float32))[None]
    f0r = torch.full((1, int(args.ref * 100) + 1), 220.0)
    f0s = torch.full((1, int(src_seconds * 100) + 1), 220.0)
    sync = (lambda: torch.cuda.synchronize()) if args.device.startswith("cuda") else (lambda: None)
    t = time.perf_counter()
    r = stack.reference_features(ref, f0r)
    sync()
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    s = stack.source_features(src, f0s)
    sync()
    t_src = time.perf_counter() - t
    cat = torch.cat([r.prompt_cond, s.cond], dim=1)
    t = time.perf_counter()
    mel = stack.sample(cat, r, args.steps_measured, 0.7, 0)
    sync()
    t_step = (time.perf_counter() - t) / args.steps_measured
    t = time.perf_counter()
    stack.vocode(mel)
    sync()
    t_voc = time.perf_counter() - t
    window_frames = cat.shape[1] - r.mel.shape[-1]
    window_seconds = window_frames * hop / sr
    song = args.minutes * 60
    windows = math.ceil(song / window_seconds)
    per_second_features = t_src / src_seconds
    est = {steps: (windows * (steps * t_step + t_voc) + song * per_second_features + t_ref) / song for steps in (10, 30)}
    result = {
        "device": args.device, "threads": args.threads, "params": params,
        "window": {"prompt_frames": r.mel.shape[-1], "source_frames": window_frames, "seconds": round(window_seconds, 2)},
        "seconds": {"reference_features": round(t_ref, 2), "source_features_per_window": round(t_src, 2),
                    "dit_step_per_window": round(t_step, 2), "bigvgan_per_window": round(t_voc, 2)},
        "estimated_rtf": {f"{k}_steps": round(v, 1) for k, v in est.items()},
        "estimate_for": f"{args.minutes} min vocal, {windows} windows",
        "peak_rss_mb": round(peak_mb()),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
