"""BigVGAN v2 (44.1 kHz, 128 bands, 512×) on CPU: the polyphase anti-aliased activation against the
reference form, side by side on the same input.

Builds the full-size generator from ``V2_44K_128_512X`` with random weights (seeded; SnakeBeta's
α and β drawn around the published log-scale values so that the activation is not the identity),
feeds it ``--seconds`` of random mel, and runs the reference form and the polyphase form
alternately (``--repeats`` times each, after one untimed warm-up each), so that the drift of a
shared machine falls on both. Reports each run's seconds, the ratio of the medians, the largest
absolute difference between the two waveforms, and optionally (``--window``) the time of the
new form on one full Seed-VC window (``bench_seedvc.py``'s 19.99 s).

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_bigvgan.py --seconds 2 --threads 2 \\
        --repeats 3 --json docs/bench-bigvgan-2026-11-29.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch


def build(seed: int = 0):
    from singvc.converters.seedvc.bigvgan import V2_44K_128_512X, BigVGAN, SnakeBeta

    torch.manual_seed(seed)
    model = BigVGAN({}).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SnakeBeta):  # log-scale α, β: zeros by default (α = β = 1)
                m.alpha.normal_(0.0, 0.5)
                m.beta.normal_(0.0, 0.5)
    return model, V2_44K_128_512X


def timed(model, mel) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    with torch.no_grad():
        out = model(mel)
    return time.perf_counter() - start, out


def stages(model, frames: int, repeats: int) -> list:
    """Median milliseconds of the first activation of each stage's first AMP block on random input of
    that stage's shape (``frames`` mel frames), the two forms alternating."""
    from singvc.converters.seedvc.bigvgan import AntiAliasedSnake

    rows, length = [], frames
    for i, up in enumerate(model.ups):
        length *= up[0].stride[0]
        act = next(m for m in model.resblocks[i * model.n_kernels].modules() if isinstance(m, AntiAliasedSnake))
        x = torch.randn(1, act.act.alpha.numel(), length, generator=torch.Generator().manual_seed(i))
        times = {"reference": [], "polyphase": []}
        with torch.no_grad():
            act(x), act.reference_forward(x)
            for _ in range(max(3, repeats)):
                for name, fn in (("reference", act.reference_forward), ("polyphase", act)):
                    start = time.perf_counter()
                    fn(x)
                    times[name].append(time.perf_counter() - start)
        ref, new = statistics.median(times["reference"]), statistics.median(times["polyphase"])
        rows.append({"channels": x.shape[1], "samples": length, "reference_ms": round(1000 * ref, 1),
                     "polyphase_ms": round(1000 * new, 1), "speedup": round(ref / new, 2)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="audio seconds of mel per run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", action="store_true",
                        help="also time the polyphase form once on a full 19.99 s Seed-VC window")
    parser.add_argument("--window-reference", action="store_true",
                        help="with --window, also time the reference form on it (after the polyphase form)")
    parser.add_argument("--stages", action="store_true",
                        help="also time one anti-aliased activation of each stage alone (both forms, alternating)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from singvc.converters.seedvc.bigvgan import set_polyphase

    model, cfg = build()
    rate, hop = cfg["sampling_rate"], cfg["hop_size"]
    frames = max(1, round(args.seconds * rate / hop))
    mel = torch.randn(1, cfg["num_mels"], frames, generator=torch.Generator().manual_seed(1)) - 5.0
    runs = {"reference": [], "polyphase": []}
    outs = {}
    for i in range(args.repeats + 1):  # the first round is the warm-up
        for name, flag in (("reference", False), ("polyphase", True)) if i % 2 == 0 else \
                (("polyphase", True), ("reference", False)):
            set_polyphase(model, flag)
            seconds, outs[name] = timed(model, mel)
            if i:
                runs[name].append(round(seconds, 3))
            print(f"round {i} {name}: {seconds:.2f} s", file=sys.stderr)
    ref, new = statistics.median(runs["reference"]), statistics.median(runs["polyphase"])
    audio = frames * hop / rate
    result = {
        "what": "BigVGAN v2 44k 128-band 512x, random weights (full size), CPU float32, torch.no_grad",
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "threads": args.threads, "mel_frames": frames, "audio_seconds": round(audio, 3),
        "repeats": args.repeats, "seconds": runs,
        "median_seconds": {"reference": ref, "polyphase": new},
        "speedup_median": round(ref / new, 2),
        "speedup_per_round": [round(a / b, 2) for a, b in zip(runs["reference"], runs["polyphase"])],
        "seconds_per_audio_second": {"reference": round(ref / audio, 2), "polyphase": round(new / audio, 2)},
        "max_abs_difference": float((outs["reference"] - outs["polyphase"]).abs().max()),
        "peak_abs_output": float(outs["reference"].abs().max()),
    }
    if args.stages:
        result["activation_per_stage_ms"] = stages(model, frames, args.repeats)
    if args.window:
        window_frames = 1722  # bench_seedvc.py: 30 s context minus a 10 s prompt
        big = torch.randn(1, cfg["num_mels"], window_frames, generator=torch.Generator().manual_seed(2)) - 5.0
        set_polyphase(model, True)
        seconds, new_out = timed(model, big)
        result["window"] = {"mel_frames": window_frames, "audio_seconds": round(window_frames * hop / rate, 2),
                            "polyphase_seconds": round(seconds, 1)}
        if args.window_reference:
            set_polyphase(model, False)
            seconds, ref_out = timed(model, big)
            result["window"].update(reference_seconds=round(seconds, 1),
                                    max_abs_difference=float((ref_out - new_out).abs().max()))
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
