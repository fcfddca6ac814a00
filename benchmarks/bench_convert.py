"""Benchmark the converters over ../shared/data: every sung vocal × every voice clip.

Each voice clip is split: the first 60 % is the reference the converter gets (profile, register,
Praat's parameters), the remaining 40 % is held out and only used to judge identity.
Methods: ``dsp`` (singvc's default), ``pitch`` (formant-preserving shift only) and, when
praat-parselmouth (GPL-3.0, bench-only extra) is installed, Praat's "Change gender" with its
formant ratio (F1-F3 medians) and new pitch median estimated from the same reference.

Writes a markdown table (with date and machine) to ``docs/convert-benchmark.md`` and the raw
figures to ``docs/convert-benchmark.json``.

Usage::

    python benchmarks/bench_convert.py [--data ../shared/data] [--pitch-model tiny|full]
        [--vocals NAME ...] [--voices NAME ...] [--methods dsp pitch praat] [--pitch-refine on|off|both]

``--pitch-refine`` (default ``on``, as ``track_pitch``) sets the pitch refinement of every track
(source, reference and output; ``refine`` of :func:`singvc.pitch.track_pitch`). ``both`` runs each
pair twice in the same run, crepe alone (``[refine off]``) then refined (``[refine on]``), so the
two come from the same machine state; rows carry ``pitch_refine``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from singvc.audio import load_audio, to_mono  # noqa: E402
from singvc.converters import get_converter  # noqa: E402
from singvc import evaluate as ev  # noqa: E402
from singvc.pitch import load_pitch_model, track_pitch  # noqa: E402
from singvc.plan import plan_transposition  # noqa: E402
from singvc.voice import analyse_voice  # noqa: E402


def praat_change_gender(audio, sample_rate, src_track, ref, ref_rate, ref_track, semitones):
    """Praat "Change gender" with the formant ratio from F1-F3 medians and the planned pitch median."""
    import parselmouth
    from parselmouth.praat import call

    def formant_medians(x, rate, track):
        snd = parselmouth.Sound(to_mono(x).astype(np.float64), sampling_frequency=rate)
        fm = call(snd, "To Formant (burg)", 0.01, 5, 5500, 0.025, 50)
        times = track.times[track.voiced]
        out = []
        for k in (1, 2, 3):
            vals = np.array([call(fm, "Get value at time", k, float(t), "Hertz", "Linear") for t in times[::3]])
            out.append(np.nanmedian(vals))
        return np.array(out)

    ratio = float(np.exp(np.mean(np.log(formant_medians(ref, ref_rate, ref_track)
                                         / formant_medians(audio, sample_rate, src_track)))))
    ratio = float(np.clip(ratio, 0.8, 1.25))
    f0 = src_track.voiced_f0
    median = float(np.median(f0)) * 2 ** (semitones / 12)
    floor, ceiling = 75.0, max(600.0, 1.5 * float(np.percentile(f0, 95)) * 2 ** (max(semitones, 0) / 12))
    out = []
    for ch in audio:
        snd = parselmouth.Sound(ch.astype(np.float64), sampling_frequency=sample_rate)
        res = call(snd, "Change gender", floor, ceiling, ratio, median, 1.0, 1.0)
        y = res.values[0]
        y = y[: audio.shape[-1]] if len(y) >= audio.shape[-1] else np.pad(y, (0, audio.shape[-1] - len(y)))
        out.append(y)
    return np.asarray(out, dtype=np.float32), {"formant_ratio": round(ratio, 3)}


def dnsmos(audio, sample_rate):
    try:
        from speechmos import dnsmos as dm
    except ImportError:
        return None
    from singvc.audio import resample

    x = resample(to_mono(audio)[None], sample_rate, 16000)[0].astype(np.float64)
    x = x / max(np.abs(x).max(), 1e-9) * 0.9
    return float(dm.run(x, sr=16000)["ovrl_mos"])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPU threads visible, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def parse_method(method: str) -> tuple[str, dict]:
    """``"dsp"`` or ``"dsp:key=value,key=value"`` (converter options, Python literals) -> (name, options)."""
    import ast

    name, _, rest = method.partition(":")
    options = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        options[key.strip()] = ast.literal_eval(value.strip())
    return name, options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--pitch-model", default="tiny", choices=("tiny", "full"))
    ap.add_argument("--vocals", nargs="*")
    ap.add_argument("--voices", nargs="*")
    ap.add_argument("--methods", nargs="*", default=["dsp", "pitch", "praat"],
                    help="dsp, pitch, praat; converter options as dsp:key=value;key=value (e.g. dsp:warp_method='mean')")
    ap.add_argument("--plan-mode", default="key-lock", choices=("key-lock", "free"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "convert-benchmark.md"))
    ap.add_argument("--pitch-refine", default="on", choices=("on", "off", "both"),
                    help="refine every pitch track (source, reference, output) by the harmonics' instantaneous "
                         "frequency (track_pitch's refine); both: each pair with it off then on, in one run")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    data = Path(args.data)
    vocals = sorted(p for p in (data / "vocals").iterdir() if not args.vocals or p.stem in args.vocals)
    voices = sorted(p for p in (data / "voices").iterdir() if not args.voices or p.stem in args.voices)
    methods = list(args.methods)
    if "praat" in methods:
        try:
            import parselmouth  # noqa: F401
        except ImportError:
            print("praat-parselmouth not installed: skipping the Praat baseline", file=sys.stderr)
            methods.remove("praat")
    refines = {"on": [True], "off": [False], "both": [False, True]}[args.pitch_refine]

    def label(method: str, refine: bool) -> str:
        return method if len(refines) == 1 else f"{method} [refine {'on' if refine else 'off'}]"

    model = load_pitch_model(args.pitch_model)
    encoder = ev.load_encoder()
    rows = []
    for vpath in vocals:
        audio, rate = load_audio(vpath)
        src_mos = dnsmos(audio, rate)
        tracks = {refine: track_pitch(audio, rate, model, refine=refine) for refine in refines}
        for cpath in voices:
            clip, crate = load_audio(cpath)
            k = int(0.6 * clip.shape[-1])
            ref, held = clip[:, :k], clip[:, k:]
            ref_tracks = {refine: track_pitch(ref, crate, model, refine=refine) for refine in refines}
            for refine, method in ((r, m) for r in refines for m in methods):
                track, ref_track = tracks[refine], ref_tracks[refine]
                profile = analyse_voice([(ref, crate)], [ref_track], cpath.stem)
                plan = plan_transposition(track, profile.to_register(), mode=args.plan_mode)
                t0 = time.perf_counter()
                info = {}
                if method == "praat":
                    out, info = praat_change_gender(audio, rate, track, ref, crate, ref_track, plan.semitones)
                else:
                    base, options = parse_method(method)
                    conv = get_converter(base, **options)
                    out = conv.convert(audio, rate, track, plan.semitones, voice=profile if base == "dsp" else None)
                    if base == "dsp":
                        info = {"warp": round(conv.last_map.ratio, 3)}
                seconds = time.perf_counter() - t0
                out_track = track_pitch(out, rate, model, refine=refine)
                r = ev.evaluate(encoder, audio, out, rate, ref, crate, track, out_track, plan.semitones,
                                heldout=held, heldout_rate=crate)
                mos = dnsmos(out, rate)
                row = {"vocal": vpath.stem, "voice": cpath.stem, "method": label(method, refine),
                       "pitch_refine": refine, "semitones": plan.semitones,
                       "rtf": seconds / (audio.shape[-1] / rate), "dnsmos": mos, "dnsmos_source": src_mos,
                       **info, **r}
                rows.append(row)
                print(f"{vpath.stem:20s} {cpath.stem:30s} {label(method, refine):6s} toward={r['toward']:+.3f} "
                      f"cents={r['pitch']['median_cents']} kept={r['voicing']['voiced_kept']} "
                      f"vib={r['vibrato']['extent_ratio']} rtf={row['rtf']:.2f} mos={mos}", flush=True)
    write_report(rows, [label(m, r) for m in methods for r in refines], args, Path(args.out))


def _fmt(v, spec=".2f"):
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def write_report(rows, methods, args, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    lines = [
        "# Converter benchmark",
        "",
        f"Run {time.strftime('%Y-%m-%d')} on {machine()}; pitch model crepe `{args.pitch_model}` for both sides; "
        f"range plan `{args.plan_mode}`;",
        f"{len({r['vocal'] for r in rows})} sung vocals × {len({r['voice'] for r in rows})} voice clips "
        "(first 60 % of each clip = reference, last 40 % = held-out judge). Produced by "
        "`benchmarks/bench_convert.py`; raw figures in `convert-benchmark.json`.",
        "",
        "| method | toward mean | toward min | pairs < 0 | contour error median (cents) | voiced kept (mean) "
        "| vibrato extent ratio (median) | drift std (mean) | DNSMOS OVRL Δ (mean) | RTF (mean) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        tw = np.array([r["toward"] for r in rs], dtype=float)
        cents = [r["pitch"]["median_cents"] for r in rs if r["pitch"]["median_cents"] is not None]
        kept = [r["voicing"]["voiced_kept"] for r in rs if r["voicing"]["voiced_kept"] is not None]
        vib = [r["vibrato"]["extent_ratio"] for r in rs if r["vibrato"]["extent_ratio"] is not None]
        drift = [r["drift"]["std"] for r in rs if r.get("drift") and r["drift"]["std"] is not None]
        mos = [r["dnsmos"] - r["dnsmos_source"] for r in rs if r["dnsmos"] is not None and r["dnsmos_source"] is not None]
        lines.append(
            f"| `{m}` | {_fmt(np.nanmean(tw), '+.3f')} | {_fmt(np.nanmin(tw), '+.3f')} | {int(np.sum(tw < 0))}/{len(tw)} "
            f"| {_fmt(float(np.median(cents)) if cents else None, '.1f')} | {_fmt(float(np.mean(kept)) if kept else None, '.3f')} "
            f"| {_fmt(float(np.median(vib)) if vib else None, '.3f')} | {_fmt(float(np.mean(drift)) if drift else None, '.3f')} "
            f"| {_fmt(float(np.mean(mos)) if mos else None, '+.2f')} | {_fmt(float(np.mean([r['rtf'] for r in rs])), '.2f')} |")
    lines += ["", "Per pair (toward on the held-out half):", "",
              "| vocal | voice | shift | " + " | ".join(methods) + " |",
              "| --- | --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    pairs = sorted({(r["vocal"], r["voice"]) for r in rows})
    for v, c in pairs:
        cells = []
        for m in methods:
            hit = [r for r in rows if r["vocal"] == v and r["voice"] == c and r["method"] == m]
            cells.append(_fmt(hit[0]["toward"], "+.3f") if hit else "–")
        shift = next(r["semitones"] for r in rows if r["vocal"] == v and r["voice"] == c)
        lines.append(f"| {v} | {c} | {shift:+g} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
