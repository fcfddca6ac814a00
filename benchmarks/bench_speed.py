"""Speed and memory of singvc on this machine (issue 5). Not a test: it prints and writes a table.

Runs (each ``singvc`` call in its own process, so memory figures are clean):

- ``cover`` of a 30 s and a 3.5-minute vocal-only input (``--no-separation``) with the
  ``quality`` and ``fast`` presets, cold cache;
- the 3.5-minute ``quality`` run again with another voice (cache warm);
- ``cover`` of a 10-minute song with separation (quality preset);
- separation alone, ``singvc separate`` vs the demucs CLI, same model and input;
- pitch accuracy of each preset's tracker against plain ``torchcrepe`` ``full`` (its own
  Viterbi decoder) on the 30 s vocal.

Inputs are built from ../shared/data: the 28 s vocal, that vocal repeated to 3.5 minutes, and
the 133 s song repeated to 10 minutes. This machine has no Demucs weights, so separation uses a
randomly initialised full-size HTDemucs (same class and default size as htdemucs; speed does not
depend on the weights) saved as a local model folder, for singvc and the demucs CLI alike.

Usage: python benchmarks/bench_speed.py [--data ../shared/data] [--only NAME ...] [--work DIR]
Writes docs/speed.md and docs/speed.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("load", "separation", "voice", "pitch", "plan", "convert", "loudness_remix", "write")


def build_inputs(data: Path, work: Path) -> dict[str, Path]:
    import soundfile as sf

    from singvc.audio import load_audio

    work.mkdir(parents=True, exist_ok=True)
    vocal, rate = load_audio(data / "vocals" / "see_you_again_28s.flac")
    song, song_rate = load_audio(data / "songs" / "lets_go_fishin.ogg")
    out = {"vocal_30s": work / "vocal_30s.wav", "vocal_3m30": work / "vocal_3m30.wav",
           "song_10min": work / "song_10min.wav", "song_133s": data / "songs" / "lets_go_fishin.ogg"}
    if not out["vocal_30s"].exists():
        sf.write(str(out["vocal_30s"]), vocal.T, rate, subtype="FLOAT")
    if not out["vocal_3m30"].exists():
        n = int(210 * rate)
        sf.write(str(out["vocal_3m30"]), np.tile(vocal, (1, n // vocal.shape[1] + 1))[:, :n].T, rate, subtype="FLOAT")
    for minutes in (5, 10):  # the song repeated to 5 and 10 minutes
        key = f"song_{minutes}min"
        out[key] = work / f"{key}.wav"
        if not out[key].exists():
            n = int(minutes * 60 * song_rate)
            sf.write(str(out[key]), np.tile(song, (1, n // song.shape[1] + 1))[:, :n].T, song_rate, subtype="FLOAT")
    return out


def build_separator_repo(work: Path) -> Path:
    import torch
    from demucs.htdemucs import HTDemucs

    from singvc.separate import save_model_to_repo

    repo = work / "demucs_repo"
    if not (repo / "htdemucs_random.th").exists():
        torch.manual_seed(0)
        model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=44100, audio_channels=2)
        save_model_to_repo(model, repo, "htdemucs_random")
    return repo


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, exit code, peak RSS (MB) of that child alone (``wait4``), stderr tail.

    singvc resets the kernel's peak at each stage start (to measure stages), so for singvc the
    child's ru_maxrss is only the peak since the last stage began: use the max of the report's
    stage peaks as well (``run_peak``)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().strip()[-400:]
    return {"exit": proc.returncode, "wall_seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1),
            "stderr": tail}


def singvc_cover(name: str, song: Path, voice: Path, preset: str, out: Path, cache: Path, repo: Path,
                 extra: list[str]) -> dict:
    import soundfile as sf

    cmd = [sys.executable, "-m", "singvc", "cover", str(song), "--voice", str(voice), "-o", str(out),
           "--preset", preset, "--cache-dir", str(cache), "--separator-model", "htdemucs_random",
           "--separator-repo", str(repo), "--quiet", *extra]
    result = timed(cmd)
    duration = sf.info(str(song)).duration
    result.update(name=name, preset=preset, audio_seconds=round(duration, 1))
    if result["exit"] == 0:
        report = json.loads((out / "report.json").read_text())
        result["stages"] = {k: {"seconds": report["seconds"].get(k), "rtf": round(report["seconds"][k] / duration, 3),
                                "peak_mb": report.get("peak_memory_mb", {}).get(k)}
                            for k in STAGES if k in report["seconds"]}
        result["total_seconds"] = report["seconds"]["total"]
        result["rtf"] = round(result["wall_seconds"] / duration, 3)
        result["cache_hits"] = report["cache_hits"]
    shutil.rmtree(out, ignore_errors=True)
    return result


def separation_vs_demucs(song: Path, repo: Path, work: Path, rounds: int = 2) -> dict:
    import soundfile as sf

    duration = sf.info(str(song)).duration
    # alternated, twice each, fastest of each kept: this shared machine's speed drifts by ~10 %
    # over minutes, more than the difference being measured
    ours_runs, theirs_runs = [], []
    for _ in range(rounds):
        ours_runs.append(timed([sys.executable, "-m", "singvc", "separate", str(song), "-o", str(work / "sep_singvc"),
                                "--separator-model", "htdemucs_random", "--separator-repo", str(repo), "--no-cache",
                                "--quiet"]))
        theirs_runs.append(timed([sys.executable, "-m", "demucs.separate", "-n", "htdemucs_random", "--repo", str(repo),
                                  "-d", "cpu", "-o", str(work / "sep_demucs"), str(song)]))
        shutil.rmtree(work / "sep_singvc", ignore_errors=True)
        shutil.rmtree(work / "sep_demucs", ignore_errors=True)
    ours = min(ours_runs, key=lambda r: r["wall_seconds"])
    theirs = min(theirs_runs, key=lambda r: r["wall_seconds"])
    return {"audio_seconds": round(duration, 1), "singvc_seconds": ours["wall_seconds"], "singvc_exit": ours["exit"],
            "demucs_cli_seconds": theirs["wall_seconds"], "demucs_exit": theirs["exit"],
            "ratio": round(ours["wall_seconds"] / theirs["wall_seconds"], 3) if theirs["wall_seconds"] else None,
            "all_singvc_seconds": [r["wall_seconds"] for r in ours_runs],
            "all_demucs_cli_seconds": [r["wall_seconds"] for r in theirs_runs],
            "singvc_peak_rss_mb": ours["peak_rss_mb"], "demucs_cli_peak_rss_mb": theirs["peak_rss_mb"],
            "stderr": (ours["stderr"] + " | " + theirs["stderr"])[-300:]}


def run_peak(run: dict) -> float:
    """A singvc run's peak resident memory (MB): the largest stage peak or the process's own."""
    return max([st["peak_mb"] or 0 for st in run.get("stages", {}).values()] + [run.get("peak_rss_mb") or 0])


def memory_scaling(inputs: dict[str, Path], voice: Path, repo: Path, work: Path) -> dict:
    """Peak resident memory of whole ``cover`` runs with separation (fast preset) on the same song
    at 133 s, 5 min and 10 min, each in its own process, cold cache; and MiB per added minute."""
    runs = []
    for key in ("song_133s", "song_5min", "song_10min"):
        cache = work / "cache-memory"
        shutil.rmtree(cache, ignore_errors=True)
        run = singvc_cover(f"memory {key}", inputs[key], voice, "fast", work / "out", cache, repo, [])
        runs.append({"input": key, "audio_seconds": run["audio_seconds"], "exit": run["exit"],
                     "wall_seconds": run["wall_seconds"], "peak_rss_mb": run_peak(run),
                     "stage_peak_mb": {k: v["peak_mb"] for k, v in run.get("stages", {}).items()}})
        print(json.dumps(runs[-1]), flush=True)
    first, last = runs[0], runs[-1]
    slope = (last["peak_rss_mb"] - first["peak_rss_mb"]) / ((last["audio_seconds"] - first["audio_seconds"]) / 60.0)
    return {"preset": "fast", "runs": runs, "mb_per_minute": round(slope, 1)}


def pitch_accuracy(vocal: Path) -> dict:
    """Each preset's tracker vs plain torchcrepe full (Viterbi), median |cents| on frames voiced in both."""
    import torch
    import torchcrepe

    from singvc.audio import load_audio, resample, to_mono
    from singvc.pitch import load_pitch_model, track_pitch

    audio, rate = load_audio(vocal)
    x16 = resample(to_mono(audio)[None], rate, 16000)
    start = time.perf_counter()
    f0, periodicity = torchcrepe.predict(torch.from_numpy(x16), 16000, 160, 50.0, 1100.0, "full",
                                         decoder=torchcrepe.decode.viterbi, return_periodicity=True, batch_size=512)
    plain_seconds = time.perf_counter() - start
    f0 = f0[0].numpy()
    out = {"plain_torchcrepe_full_rtf": round(plain_seconds / (audio.shape[1] / rate), 3)}
    from singvc.config import load_preset
    from singvc import CoverSettings

    variants = {}
    for preset in ("quality", "fast"):
        settings = CoverSettings(**load_preset(preset))
        variants[preset] = (settings.pitch_model, settings.pitch_stride)
    variants["full, every frame"] = ("full", 1)  # what the quality preset's stride trades away
    tracks = {}
    for label, (name, stride) in variants.items():
        model = load_pitch_model(name, backend="auto")
        start = time.perf_counter()
        track = track_pitch(audio, rate, model, stride=stride)
        seconds = time.perf_counter() - start
        n = min(len(track), len(f0))
        both = track.voiced[:n]
        cents = np.abs(1200 * np.log2(track.f0[:n][both] / f0[:n][both]))
        plain_voiced = periodicity[0].numpy()[:n] > 0.5
        out[label] = {"model": name, "stride": stride, "rtf": round(seconds / (audio.shape[1] / rate), 3),
                      "median_cents_vs_plain_full": round(float(np.median(cents)), 2),
                      "p90_cents": round(float(np.percentile(cents, 90)), 2),
                      "voicing_agreement_vs_plain_full_periodicity_0.5": round(float(np.mean(both == plain_voiced)), 4)}
        tracks[label] = track
    # against singvc's own decoder on every frame of crepe full (no dither on either side)
    ref = tracks["full, every frame"]
    for label, track in tracks.items():
        both = ref.voiced & track.voiced
        cents = np.abs(1200 * np.log2(track.f0[both] / ref.f0[both]))
        out[label]["median_cents_vs_full_every_frame"] = round(float(np.median(cents)), 2)
        out[label]["p90_cents_vs_full_every_frame"] = round(float(np.percentile(cents, 90)), 2)
        out[label]["voicing_agreement_vs_full_every_frame"] = round(float(np.mean(ref.voiced == track.voiced)), 4)
    return out


def write_table(results: dict, path: Path) -> None:
    lines = [f"# Speed and memory ({results['date']})", "",
             f"Machine: {results['machine']}. Produced by `python benchmarks/bench_speed.py`; raw figures in "
             "`speed.json`. RTF = wall time / audio duration (lower is faster).", "",
             "| run | preset | audio | wall | RTF | peak RSS (MB) | " + " | ".join(STAGES) + " |",
             "| --- | --- | --- | --- | --- | --- | " + " | ".join("---" for _ in STAGES) + " |"]
    for r in results["runs"]:
        if r.get("exit") != 0:
            lines.append(f"| {r['name']} | {r['preset']} | {r['audio_seconds']} s | failed (exit {r['exit']}) | | | "
                         + " | ".join("" for _ in STAGES) + " |")
            continue
        cells = []
        for k in STAGES:
            st = r["stages"].get(k)
            cells.append(f"{st['seconds']:.1f} s / {st['rtf']:.2f}× / {st['peak_mb'] or 0:.0f} MB" if st else "")
        peak = run_peak(r)
        lines.append(f"| {r['name']} | {r['preset']} | {r['audio_seconds']} s | {r['wall_seconds']:.1f} s | "
                     f"{r['rtf']:.2f}× | {peak:.0f} | " + " | ".join(cells) + " |")
    lines += ["", "Stage cells: seconds / RTF / peak resident memory of the process during that stage.",
              "Peak RSS column: the largest of the stage peaks (the process's VmHWM, reset at each stage start; "
              "the kernel's whole-process maximum is reset with it, so it is not used).", ""]
    if "separation" in results:
        s = results["separation"]
        lines += ["## Separation vs the demucs CLI (same model, same input)", "",
                  f"{s['audio_seconds']} s song: singvc {s['singvc_seconds']:.1f} s, demucs CLI {s['demucs_cli_seconds']:.1f} s "
                  f"(ratio {s['ratio']}; fastest of alternated runs: singvc {s.get('all_singvc_seconds')}, "
                  f"demucs {s.get('all_demucs_cli_seconds')})."
                  + (f" Peak RSS: singvc {s['singvc_peak_rss_mb']:.0f} MB, demucs CLI {s['demucs_cli_peak_rss_mb']:.0f} MB."
                     if s.get("singvc_peak_rss_mb") else ""), ""]
    if "memory_scaling" in results:
        m = results["memory_scaling"]
        lines += ["## Peak memory as songs get longer", "",
                  f"`singvc cover` with separation, {m['preset']} preset, the same song repeated to each length, "
                  "each run in its own process with a cold cache.", "",
                  "| song | wall | peak RSS (MB) | largest stage |", "| --- | --- | --- | --- |"]
        for r in m["runs"]:
            stage = max(r["stage_peak_mb"], key=lambda k: r["stage_peak_mb"][k] or 0) if r["stage_peak_mb"] else ""
            lines.append(f"| {r['audio_seconds']} s | {r['wall_seconds']:.1f} s | {r['peak_rss_mb']:.0f} | {stage} |")
        lines += ["", f"Growth: {m['mb_per_minute']} MB per added minute of song.", ""]
    if "pitch_accuracy" in results:
        p = results["pitch_accuracy"]
        lines += ["## Pitch accuracy against plain torchcrepe `full` (30 s vocal)", "",
                  f"plain torchcrepe full: RTF {p['plain_torchcrepe_full_rtf']}.", ""]
        for label, q in p.items():
            if not isinstance(q, dict):
                continue
            agree = q.get("voicing_agreement_vs_plain_full_periodicity_0.5")
            lines.append(f"- {label} (crepe {q['model']}, stride {q.get('stride', 1)}, singvc decoder): RTF {q['rtf']}, median "
                         f"{q['median_cents_vs_plain_full']} cents from plain full (p90 {q['p90_cents']})"
                         + (f", voicing agrees with plain full (periodicity > 0.5) on {100 * agree:.1f} % of frames" if agree else "")
                         + (f"; against singvc's full on every frame: median {q['median_cents_vs_full_every_frame']} cents "
                            f"(p90 {q['p90_cents_vs_full_every_frame']}), voicing agrees on "
                            f"{100 * q['voicing_agreement_vs_full_every_frame']:.1f} %." if "median_cents_vs_full_every_frame" in q else "."))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--work", default="/tmp/singvc-bench-speed")
    ap.add_argument("--only", nargs="*",
                    help="what to run (default all): run labels, 'LABEL/PRESET', 'separation', 'pitch'")
    ap.add_argument("--out", default=str(ROOT / "docs" / "speed.md"))
    ap.add_argument("--merge", action="store_true",
                    help="keep the figures already in the JSON beside --out, replacing only the runs made now")
    args = ap.parse_args()
    data, work = Path(args.data), Path(args.work)
    inputs = build_inputs(data, work)
    repo = build_separator_repo(work)
    voices = [data / "voices" / "s1p1.flac", data / "voices" / "librispeech_198-209-0000.ogg"]
    results = {"date": datetime.date.today().isoformat(),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
               "runs": []}
    json_path = Path(args.out).with_suffix(".json")
    if args.merge and json_path.exists():
        previous = json.loads(json_path.read_text())
        results.update({k: v for k, v in previous.items() if k not in ("date", "machine")})

    def save() -> None:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
        write_table(results, Path(args.out))

    plan = [
        ("vocal 30 s", "vocal_30s", "quality", voices[0], "c30q", ["--no-separation"]),
        ("vocal 30 s", "vocal_30s", "fast", voices[0], "c30f", ["--no-separation"]),
        ("vocal 3.5 min", "vocal_3m30", "fast", voices[0], "c210f", ["--no-separation"]),
        ("vocal 3.5 min", "vocal_3m30", "quality", voices[0], "c210q", ["--no-separation"]),
        ("vocal 3.5 min, re-run other voice", "vocal_3m30", "quality", voices[1], "c210q", ["--no-separation"]),
        ("song 10 min with separation", "song_10min", "quality", voices[0], "c600q", []),
    ]
    for label, key, preset, voice, cache_tag, extra in plan:
        if args.only and f"{label}/{preset}" not in args.only and label not in args.only:
            continue
        cache = work / f"cache-{cache_tag}"
        if "re-run" not in label:  # a cold run: no separation or pitch results (the ONNX export stays)
            for stage in ("separation", "pitch"):
                shutil.rmtree(cache / stage, ignore_errors=True)
        run = singvc_cover(label, inputs[key], voice, preset, work / "out", cache, repo, extra)
        results["runs"] = [r for r in results["runs"] if (r["name"], r["preset"]) != (label, preset)] + [run]
        save()
        print(json.dumps(results["runs"][-1]), flush=True)
    if not args.only or "separation" in args.only:
        results["separation"] = separation_vs_demucs(inputs["song_133s"], repo, work)
        save()
        print(json.dumps(results["separation"]), flush=True)
    if not args.only or "memory" in args.only:
        results["memory_scaling"] = memory_scaling(inputs, voices[0], repo, work)
        save()
        print(json.dumps(results["memory_scaling"]), flush=True)
    if not args.only or "pitch" in args.only:
        results["pitch_accuracy"] = pitch_accuracy(inputs["vocal_30s"])
        save()
        print(json.dumps(results["pitch_accuracy"]), flush=True)


if __name__ == "__main__":
    main()
