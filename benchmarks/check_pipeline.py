"""Checks issue 2's 'done when' figures on real audio, through the installed CLI (subprocesses).

1. A tiny random Demucs saved as a local model folder; ``singvc cover`` on the full song:
   vocals_original + instrumental vs the input (target < -80 dB) and, with ``--converter none``,
   mix vs the input (target < -60 dB).
2. Offline, no weights: ``singvc cover SONG`` must fail in < 10 s with a one-line hint.
3. Bad inputs: one line on stderr, non-zero exit, no traceback, empty output folder.

Usage: python benchmarks/check_pipeline.py [--data ../shared/data] [--pitch-model full]
Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from singvc.audio import load_audio
from singvc.separate import build_tiny_model, save_model_to_repo


def db(residual: np.ndarray, reference: np.ndarray) -> float:
    num = np.sum(residual.astype(np.float64) ** 2)
    return float(10 * np.log10(num / np.sum(reference.astype(np.float64) ** 2))) if num > 0 else float("-inf")


def run(args: list[str], env: dict | None = None) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "singvc", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stderr, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--pitch-model", default="full", choices=("full", "tiny"))
    args = parser.parse_args()
    data = Path(args.data)
    song = data / "songs" / "lets_go_fishin.ogg"
    voice = data / "voices" / "s1p1.flac"
    results: dict = {"pitch_model": args.pitch_model}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo = tmp / "repo"
        save_model_to_repo(build_tiny_model(), repo, "tiny")
        common = ["--separator-model", "tiny", "--separator-repo", str(repo), "--pitch-model", args.pitch_model,
                  "--cache-dir", str(tmp / "cache"), "--quiet"]
        reference, _ = load_audio(song)

        rc, err, seconds = run(["cover", str(song), "--voice", str(voice), "-o", str(tmp / "none"),
                                "--converter", "none", *common])
        entry: dict = {"exit": rc, "seconds": round(seconds, 1), "stderr": err.strip()[-300:]}
        if rc == 0:
            vocals, _ = load_audio(tmp / "none" / "vocals_original.wav")
            inst, _ = load_audio(tmp / "none" / "instrumental.wav")
            mix, _ = load_audio(tmp / "none" / "mix.wav")
            entry["stems_sum_vs_input_db"] = round(db(vocals + inst - reference, reference), 1)
            entry["mix_vs_input_db"] = round(db(mix - reference, reference), 1)
            entry["same_shape"] = vocals.shape == inst.shape == mix.shape == reference.shape
            entry["report_seconds"] = json.loads((tmp / "none" / "report.json").read_text())["seconds"]
        results["converter_none"] = entry

        rc, err, seconds = run(["cover", str(song), "--voice", str(voice), "-o", str(tmp / "pitch"), *common])
        entry = {"exit": rc, "seconds": round(seconds, 1), "stderr": err.strip()[-300:]}
        if rc == 0:
            report = json.loads((tmp / "pitch" / "report.json").read_text())
            entry.update(shift=report["shift_semitones"], cache_hits=report["cache_hits"],
                         warnings=report["warnings"], report_seconds=report["seconds"])
        results["converter_pitch_second_run"] = entry

        rc, err, seconds = run(["cover", str(song), "--no-cache", "-o", str(tmp / "offline")],
                               env={"TORCH_HOME": str(tmp / "torch"), "HF_HOME": str(tmp / "hf")})
        results["offline_no_weights"] = {"exit": rc, "seconds": round(seconds, 2), "lines": len(err.strip().splitlines()),
                                         "message": err.strip(), "output_exists": (tmp / "offline").exists()}

        bad = tmp / "bad"
        bad.mkdir()
        (bad / "empty.wav").write_bytes(b"")
        (bad / "text.mp3").write_text("hello\n" * 50)
        sr = 44100
        sf.write(str(bad / "short.wav"), np.sin(np.arange(int(0.3 * sr)) * 0.05).astype(np.float32), sr)
        sf.write(str(bad / "silent.wav"), np.zeros(3 * sr, np.float32), sr)
        nan = np.zeros(sr, np.float32)
        nan[10] = np.nan
        sf.write(str(bad / "nan.wav"), nan, sr, subtype="FLOAT")
        cases = {"missing file": (bad / "missing.wav", voice), "non-audio file": (bad / "text.mp3", voice),
                 "empty file": (bad / "empty.wav", voice), "0.3 s reference": (song, bad / "short.wav"),
                 "silent reference": (song, bad / "silent.wav"), "NaN samples": (bad / "nan.wav", voice)}
        errors = {}
        for name, (s, v) in cases.items():
            out = tmp / f"err-{len(errors)}"
            out.mkdir()
            rc, err, seconds = run(["cover", str(s), "--voice", str(v), "-o", str(out), *common])
            errors[name] = {"exit": rc, "lines": len(err.strip().splitlines()), "traceback": "Traceback" in err,
                            "output_empty": not any(out.iterdir()), "message": err.strip(),
                            "seconds": round(seconds, 1)}
        results["user_errors"] = errors
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
