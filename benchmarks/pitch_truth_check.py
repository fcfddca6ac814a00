"""Whose error is it, the tracker's or the truth's? (issue 17, the re-synthesised vocals)

``bench_pitch.py`` re-synthesises the real vocals with WORLD on a known contour. With the envelope
as analysed (frame by frame), a synthesised frame's real F0 need not be the contour: near voicing
edges the truth is harvest's onset, smoothed; in mostly aperiodic frames WORLD makes little or no
pulse; and where the envelope moves, the phase of its minimum-phase response moves from one pulse
to the next, so the harmonics' frequencies leave the pulse rate. This script looks at the frames
where the error is largest and measures, on every scored frame:

* ``oracle``: StoneMask (the refinement's estimator, no guard, no smoothing) started from the truth
  itself, on the same 16 kHz signal: how far the harmonics' instantaneous frequency is from the
  truth when the start is perfect;
* ``spread``: the standard deviation (cents) over harmonics 1-8 of ``peak_k / k``, the harmonic peaks
  of a 40 ms Hann window (zero-padded FFT, parabolic interpolation) searched within ±60 cents of
  ``k`` times the truth: a signal with one F0 has its harmonics agree (the window's own vibrato
  and glide spread them by a few cents);
* ``envelope phase``: the deviation the envelope's motion predicts, from the synthesis parameters
  alone: the phase of the minimum-phase response of ``sp`` (real cepstrum, folded) at each harmonic of
  the truth, differenced over ±5 ms, as a frequency offset over the harmonic number, weighted by the
  harmonics' periodic power (``sp (1 - ap^2)``) for harmonics 1-6 under 4 kHz, averaged over ±10 ms;
* whether the refinement kept crepe's value on the frame (its guard) and why, and what StoneMask
  started from crepe's value gave there.

Crepe tracks come from ``bench_pitch.py``'s cache (``--cache``, filled by a run of it; crepe is
run otherwise). Prints the worst frames as markdown and a summary; ``--out`` writes the summary as
JSON, ``--md`` the worst frames as markdown.

Usage::

    python benchmarks/pitch_truth_check.py --cache DIR [--config full-stride2] [--worst 12]
        [--out docs/pitch-truth-check.json] [--md docs/pitch-truth-check.md]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_pitch as bp  # noqa: E402
from singvc.audio import mono_resampled  # noqa: E402
from singvc.pitch import (CREPE_SAMPLE_RATE, REFINE_JUMP_CENTS, REFINE_MAX_CENTS, REFINE_NEIGHBOURS,  # noqa: E402
                          _sliding_nanmedian, stonemask_f0)


def harmonic_spread(x: np.ndarray, sample_rate: int, t: float, f0: float, seconds: float = 0.04,
                    harmonics: int = 8) -> float:
    """Standard deviation (cents) over harmonics of ``peak_k / k`` around ``t`` (NaN if under 3 found)."""
    n = int(seconds * sample_rate)
    s0 = int(round(t * sample_rate)) - n // 2
    if s0 < 0 or s0 + n > len(x):
        return np.nan
    size = 1 << 18
    spec = np.abs(np.fft.rfft(x[s0:s0 + n] * np.hanning(n), size))
    step = sample_rate / size
    est, amp = [], []
    for k in range(1, harmonics + 1):
        a, b = (int(k * f0 * 2 ** (c / 1200) / step) for c in (-60, 60))
        if b - a < 3 or b + 1 >= len(spec):
            continue
        i = a + int(np.argmax(spec[a:b]))
        if i in (a, b - 1):
            continue
        lo, mid, hi = np.log(spec[i - 1:i + 2] + 1e-20)
        est.append((i + 0.5 * (lo - hi) / (lo - 2 * mid + hi)) * step / k)
        amp.append(spec[i])
    if len(est) < 3:
        return np.nan
    est, w = np.array(est), np.array(amp) ** 2
    centre = np.average(est, weights=w)
    return float(np.std(1200 * np.log2(est / centre)))


def envelope_phase_deviation(sp: np.ndarray, ap: np.ndarray, f0: np.ndarray, sample_rate: int,
                             frame_seconds: float = 0.005, harmonics: int = 6) -> np.ndarray:
    """Per WORLD frame, the harmonics' offset (cents) from ``f0`` that the motion of the envelope's
    minimum-phase response predicts (NaN where unvoiced)."""
    size = 2 * (sp.shape[1] - 1)
    cep = np.fft.irfft(0.5 * np.log(np.maximum(sp, 1e-16)), size, axis=1)
    cep[:, 1:size // 2] *= 2.0
    cep[:, size // 2 + 1:] = 0.0
    phase = np.fft.rfft(cep, size, axis=1).imag
    bins = np.arange(sp.shape[1])
    hz_per_bin = sample_rate / size
    out = np.full(len(f0), np.nan)
    for j in range(1, len(f0) - 1):
        if f0[j] <= 0:
            continue
        fk = f0[j] * np.arange(1, harmonics + 1)
        fk = fk[fk < bp.CLEAN_BAND_HZ]
        b = fk / hz_per_bin
        dphi = np.angle(np.exp(1j * (np.interp(b, bins, phase[j + 1]) - np.interp(b, bins, phase[j - 1]))))
        dfk = dphi / (2 * frame_seconds) / (2 * np.pi)
        power = np.interp(b, bins, sp[j]) * (1.0 - np.interp(b, bins, ap[j]) ** 2)
        out[j] = np.average(1200 * np.log2(np.maximum(1 + dfk / fk, 1e-3)), weights=power + 1e-30)
    return out


def stats(e: np.ndarray) -> dict:
    e = np.abs(e[np.isfinite(e)])
    if not len(e):
        return {"frames": 0}
    return {"frames": int(len(e)), "median": round(float(np.median(e)), 2), "p95": round(float(np.percentile(e, 95)), 1)}


def main(argv: list[str] | None = None) -> int:
    ap_ = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap_.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap_.add_argument("--cache", type=Path, help="bench_pitch.py's cache folder (crepe tracks, WORLD analyses)")
    ap_.add_argument("--config", default="full-stride2", help="a bench_pitch configuration name")
    ap_.add_argument("--worst", type=int, default=12, help="worst frames listed per case")
    ap_.add_argument("--out", type=Path, help="write the summary as JSON here")
    ap_.add_argument("--md", type=Path, help="write the worst frames as markdown here")
    args = ap_.parse_args(argv)
    from scipy.ndimage import gaussian_filter1d

    conf = bp.configurations([args.config])[args.config]
    cases = bp.vocal_cases(args.data, args.cache)
    models: dict = {}
    tracked = {}
    for case in cases:
        crepe, _ = bp.crepe_track(case, conf, models, args.cache)
        refined, _ = bp.refine_16k(case, crepe)
        tracked[case.name] = (crepe, refined)
    summary = {}
    pool: dict = {}
    head = ["# Whose error: the tracker's or the truth's (issue 17)", "",
            f"Produced by `python benchmarks/pitch_truth_check.py` (configuration `{args.config}`); the summary "
            "figures are in the JSON beside it and in docs/pitch-benchmark.md (notes). Per case, the "
            f"{args.worst} scored frames with the largest refined error. Columns, in cents unless said: crepe and "
            "refined error against the truth; what the refinement did (refined, or kept crepe's value and why); "
            "the error of StoneMask started from the truth itself (no guard, no smoothing); the spread (sd) of the "
            "harmonics' peak_k / k in a 40 ms window; the harmonics' offset the envelope's minimum-phase motion "
            "predicts from the synthesis parameters; distance to the truth's nearest voicing edge; the "
            "synthesis's periodic share (worst within ±20 ms); whether the clean-frame rule keeps the frame.", ""]
    md: list[str] = []
    for case in cases:
        crepe, refined = tracked[case.name]
        times = crepe.times
        truth, tvoiced, _ = case.truth_at(times)
        both = tvoiced & crepe.voiced
        clean = case.clean_at(times)
        ec = 1200 * np.log2(crepe.f0 / truth)
        er = 1200 * np.log2(refined.f0 / truth)
        x16 = mono_resampled(case.audio, case.sample_rate, CREPE_SAMPLE_RATE)[None]
        oracle = stonemask_f0(x16, CREPE_SAMPLE_RATE, times, np.where(both, truth, 0.0), both)
        raw = stonemask_f0(x16, CREPE_SAMPLE_RATE, times, crepe.f0, crepe.voiced)
        with np.errstate(divide="ignore", invalid="ignore"):
            eo = np.where(oracle > 0, 1200 * np.log2(oracle / truth), np.nan)
            eraw = np.where(raw > 0, 1200 * np.log2(raw / truth), np.nan)
            delta = np.where(crepe.voiced & (raw > 0), 1200 * np.log2(raw / crepe.f0), np.nan)
        too_far = ~(np.abs(delta) <= REFINE_MAX_CENTS)
        kept_delta = np.where(too_far, np.nan, delta)
        jump = ~too_far & ~(np.abs(kept_delta - _sliding_nanmedian(kept_delta, REFINE_NEIGHBOURS)) <= REFINE_JUMP_CENTS)
        unrefined = refined.f0 == crepe.f0
        # the synthesis parameters of this case (bench_pitch.vocal_cases)
        stem = case.name.split(" ")[0]
        w = bp.world_analysis(args.data / "vocals" / f"{stem}.flac", args.cache)
        sp, aper = w["sp"], w["ap"]
        if "env-smoothed" in case.name:
            sp = np.exp(gaussian_filter1d(np.log(np.maximum(sp, 1e-16)), 4.0, axis=0, mode="nearest"))
            aper = np.clip(gaussian_filter1d(aper, 4.0, axis=0, mode="nearest"), 0.0, 1.0)
        env = envelope_phase_deviation(sp, aper, case.truth_f0, int(w["sr"]))
        wi = np.clip(np.round(times / 0.005).astype(int), 0, len(env) - 1)
        env_f = np.array([np.nanmean(env[max(0, j - 2):j + 3]) if np.isfinite(env[max(0, j - 2):j + 3]).any()
                          else np.nan for j in wi])
        per = case.periodic_worst(times)
        on = case.truth_f0 > 0
        change = case.truth_t[np.flatnonzero(np.diff(on.astype(np.int8)))]
        edge_ms = np.array([1000 * np.min(np.abs(change - t)) if len(change) else np.inf for t in times])
        x = case.audio[0].astype(np.float64)
        idx = np.flatnonzero(both)
        worst = idx[np.argsort(-np.abs(er[idx]))][:args.worst]
        md += [f"### {case.name}", "",
               "| time (s) | truth (Hz) | crepe | refined | refinement | StoneMask from truth | harmonic spread | "
               "envelope phase | edge (ms) | periodic share | clean |",
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for i in sorted(worst):
            why = ("kept crepe: " + ("no harmonics" if raw[i] == 0 else "> 100 c" if too_far[i] else "jump" if jump[i] else "?")
                   if unrefined[i] else "refined")
            md.append(f"| {times[i]:.2f} | {truth[i]:.1f} | {ec[i]:+.1f} | {er[i]:+.1f} | {why} | {eo[i]:+.1f} | "
                  f"{harmonic_spread(x, case.sample_rate, times[i], truth[i]):.1f} | {env_f[i]:+.1f} | {edge_ms[i]:.0f} | "
                  f"{per[i]:.2f} | {'yes' if clean[i] else 'no'} |")
        md.append("")
        big = both & (np.abs(er) > 15)
        sub = idx[::4]
        spread_all = np.array([harmonic_spread(x, case.sample_rate, times[i], truth[i]) for i in sub])
        worst40 = idx[np.argsort(-np.abs(er[idx]))][:40]
        spread_worst = np.array([harmonic_spread(x, case.sample_rate, times[i], truth[i]) for i in worst40])
        m = both & np.isfinite(eo) & np.isfinite(env_f)
        # the frames off by more than 15 cents, sorted (in this order): outside the clean rule; the
        # truth's harmonics are off (StoneMask started from the truth errs the same way, by more than
        # half as much); crepe is off and the refinement kept it (StoneMask from the truth within 15
        # cents); the rest
        unclean_big = big & ~clean
        truth_off = big & clean & (np.sign(eo) == np.sign(er)) & (np.abs(eo) > 0.5 * np.abs(er))
        crepe_kept = big & clean & ~truth_off & unrefined & (np.abs(eo) <= 15)
        rest = big & clean & ~truth_off & ~crepe_kept
        sorted_big = {"unclean": int(unclean_big.sum()), "truth_off": int(truth_off.sum()),
                      "crepe_off_kept": int(crepe_kept.sum()), "other": int(rest.sum())}
        steady = m & (np.abs(env_f) <= 5.0)
        s = {
            "scored": int(both.sum()), "clean": int((both & clean).sum()),
            "crepe": stats(ec[both]), "refined": stats(er[both]),
            "oracle_stonemask": stats(eo[both]), "oracle_stonemask_clean": stats(eo[both & clean]),
            "refined_clean": stats(er[both & clean]), "crepe_clean": stats(ec[both & clean]),
            "frames_refined_err_over_15": int(big.sum()),
            "sorted": sorted_big,
            "of_them_unrefined": int((big & unrefined).sum()),
            "of_them_unrefined_by": {"jump": int((big & unrefined & jump).sum()),
                                     "over_100_cents": int((big & unrefined & too_far & (raw > 0)).sum()),
                                     "no_harmonics": int((big & unrefined & (raw == 0)).sum())},
            "of_them_unclean": int((big & ~clean).sum()),
            "unrefined_there_crepe_vs_stonemask_from_crepe": [stats(ec[big & unrefined]), stats(eraw[big & unrefined])],
            "of_them_oracle_same_sign_over_half": int((big & (np.sign(eo) == np.sign(er))
                                                       & (np.abs(eo) > 0.5 * np.abs(er))).sum()),
            "harmonic_spread_median": {"scored (every 4th)": round(float(np.nanmedian(spread_all)), 1),
                                       "40 worst": round(float(np.nanmedian(spread_worst)), 1)},
            "envelope_phase": stats(env_f[m]),
            "corr_envelope_phase_oracle": round(float(np.corrcoef(env_f[m], eo[m])[0, 1]), 2),
            "corr_envelope_phase_refined": round(float(np.corrcoef(env_f[m], er[m])[0, 1]), 2),
            "envelope_steady_5c": {"share": round(float(steady.sum() / m.sum()), 3), "crepe": stats(ec[steady]),
                                   "refined": stats(er[steady]), "oracle": stats(eo[steady])},
        }
        summary[case.name] = s
        pool.setdefault(case.group, []).append((ec[both & clean], er[both & clean], eo[both & clean],
                                                ec[steady], er[steady], eo[steady], sorted_big))
    for group, parts in pool.items():
        cat = [np.concatenate([p[i] for p in parts]) for i in range(6)]
        summary[group + " (pooled)"] = {
            "clean": {"crepe": stats(cat[0]), "refined": stats(cat[1]), "oracle": stats(cat[2])},
            "envelope_steady_5c": {"crepe": stats(cat[3]), "refined": stats(cat[4]), "oracle": stats(cat[5])},
            "sorted": {k: sum(p[6][k] for p in parts) for k in parts[0][6]}}
    print("\n".join(md))
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"config": args.config, "cases": summary}, indent=1) + "\n")
    if args.md:
        args.md.write_text("\n".join(head + md) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
