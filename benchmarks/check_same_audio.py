"""Same audio before and after a change that must not touch the sound (a re-layout, a refactor).

Runs a fixed set of jobs through the real CLI — covers with every converter, a vocal feature, DAW
sessions, stems — on synthetic inputs made here (deterministic) and, with ``--real``, on
``../shared/data``, and records the SHA-256 of every audio sample and MIDI file they write
(report.json and the session XML hold timings and paths, so they are not compared).

    python benchmarks/check_same_audio.py --write docs/same-audio.json          # record
    python benchmarks/check_same_audio.py --check docs/same-audio.json          # compare (exit 1 if any differs)
    python benchmarks/check_same_audio.py --check docs/same-audio.json --real   # also the real vocals

Hashes hold for one package set (``constraints.txt``) on one kind of machine: the record names the
versions it was made with, and ``--check`` says so when they differ instead of comparing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RATE = 44100


def _tone(f0: np.ndarray, rate: int, level: float) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0) / rate
    out = sum(np.sin(k * phase) / k for k in range(1, 9))
    return (level * out / np.max(np.abs(out))).astype(np.float32)


def synth_inputs(folder: Path) -> dict[str, Path]:
    """A 5 s stereo 'song' (a sung-like tone with pauses over bass and noise hits), its vocal and
    instrumental stems, two voice clips and a tiny random Demucs repo."""
    rng = np.random.default_rng(7)
    n = 5 * RATE
    t = np.arange(n) / RATE
    f0 = 220 * 2 ** ((40 * np.sin(2 * np.pi * 5.5 * t) + 200 * (t > 2.6)) / 1200)
    voice = _tone(f0, RATE, 0.25)
    for a, b in ((1.2, 1.45), (2.5, 2.7), (3.9, 4.1)):
        voice[int(a * RATE):int(b * RATE)] = 0
    bass = 0.15 * np.sin(2 * np.pi * 55 * t)
    hits = np.zeros(n)
    for start in range(0, n, RATE // 2):
        hits[start:start + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300) * 0.3
    vocals = np.stack([voice, 0.8 * voice]).astype(np.float32)
    inst = np.stack([bass + hits, bass + 0.5 * hits]).astype(np.float32)
    files = {"song": folder / "song.wav", "vocals": folder / "vocals.wav", "instrumental": folder / "inst.wav",
             "voice_a": folder / "voice_a.wav", "voice_b": folder / "voice_b.wav"}
    sf.write(files["song"], (vocals + inst).T, RATE, subtype="FLOAT")
    sf.write(files["vocals"], vocals.T, RATE, subtype="FLOAT")
    sf.write(files["instrumental"], inst.T, RATE, subtype="FLOAT")
    for name, hz, rate in (("voice_a", 440, 22050), ("voice_b", 150, 24000)):
        tt = np.arange(3 * rate) / rate
        sf.write(files[name], _tone(hz * 2 ** (30 * np.sin(2 * np.pi * 5 * tt) / 1200), rate, 0.3), rate)
    sys.path.insert(0, str(ROOT))
    from singvc.separate import build_tiny_model, save_model_to_repo

    repo = folder / "demucs"
    repo.mkdir()
    save_model_to_repo(build_tiny_model(), repo, "tiny")
    files["repo"] = repo
    feature = folder / "feature.toml"
    feature.write_text(f"""
[input]
song = "{files['song']}"
[voices.a]
ref = "{files['voice_a']}"
[voices.b]
ref = "{files['voice_b']}"
transpose = -5
[settings]
separator_model = "tiny"
separator_repo = "{repo}"
[[feature.sections]]
time = "0:00-0:01.3"
voice = "a"
[[feature.sections]]
time = "0:02-0:03"
voice = "b"
layer = "duet"
pan = -0.4
original_pan = 0.4
[[feature.sections]]
phrases = "3"
voice = "a"
strength = 0.5
[output]
daw = true
""")
    files["feature"] = feature
    return files


def jobs(f: dict[str, Path], real: bool) -> dict[str, list[str]]:
    """name -> singvc arguments (the output folder is appended as ``-o``)."""
    sep = ["--separator-model", "tiny", "--separator-repo", str(f["repo"])]
    out = {
        "cover-dsp": ["cover", str(f["song"]), "--voice", str(f["voice_a"]), *sep],
        "cover-dsp-daw": ["cover", str(f["song"]), "--voice", str(f["voice_b"]), "--daw", "--strength", "0.6", *sep],
        "cover-dsp-waveform": ["cover", "--vocals", str(f["vocals"]), "--instrumental", str(f["instrumental"]),
                               "--voice", str(f["voice_a"]), "--render", "waveform", "--bit-depth", "32f"],
        "cover-pitch-shift-inst": ["cover", str(f["song"]), "--converter", "pitch", "--transpose", "5",
                                   "--shift-instrumental", *sep],
        "cover-none": ["cover", str(f["song"]), "--converter", "none", "--voice", str(f["voice_a"]), *sep],
        "cover-preset-fast": ["cover", str(f["vocals"]), "--no-separation", "--voice", str(f["voice_b"]),
                              "--preset", "fast", "--no-key-lock", "--bit-depth", "16"],
        "feature": ["run", str(f["feature"])],
        "stems": ["stems", str(f["song"]), *sep],
        "separate": ["separate", str(f["song"]), *sep],
    }
    if real:
        vocal, voice = DATA / "vocals" / "see_you_again_28s.flac", DATA / "voices" / "s1p1.flac"
        out.update({
            "real-dsp": ["cover", str(vocal), "--no-separation", "--voice", str(voice)],
            "real-pitch-daw": ["cover", str(vocal), "--no-separation", "--converter", "pitch", "--transpose", "-3",
                               "--daw"],
            "real-none": ["cover", str(DATA / "vocals" / "jay_7s.flac"), "--no-separation", "--converter", "none"],
        })
    return out


def digest(path: Path) -> str:
    """SHA-256 of a WAV's samples (as written, with its format), or of a file's bytes."""
    if path.suffix == ".wav":
        data, rate = sf.read(str(path), dtype="int32" if sf.info(str(path)).subtype.startswith("PCM") else "float32",
                             always_2d=True)
        return hashlib.sha256(np.ascontiguousarray(data).tobytes() + str(rate).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_all(real: bool, only: list[str] | None = None, no_refine: bool = False) -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="singvc-same-") as tmp:
        tmp = Path(tmp)
        f = synth_inputs(tmp)
        for name, args in jobs(f, real).items():
            if only and name not in only:
                continue
            out = tmp / "out" / name
            cmd = [sys.executable, "-m", "singvc", *args, "-o", str(out), "--quiet",
                   "--cache-dir", str(tmp / "cache")]
            if no_refine:
                cmd += ["--set", "settings.pitch_refine=false"] if args[0] == "run" else ["--no-pitch-refine"]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                results[name] = {"error": f"exit {done.returncode}: {done.stderr.strip()[-400:]}"}
                continue
            results[name] = {str(p.relative_to(out)): digest(p) for p in sorted(out.rglob("*"))
                             if p.suffix in (".wav", ".mid")}
            print(f"{name}: {len(results[name])} files", file=sys.stderr)
    return results


def versions() -> dict:
    from importlib.metadata import version

    return {"python": platform.python_version(), "machine": platform.machine(),
            **{n: version(n) for n in ("numpy", "torch", "torchaudio", "torchcrepe", "demucs", "librosa",
                                        "pyworld", "scipy", "soundfile")}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", metavar="JSON", help="record the hashes here")
    ap.add_argument("--check", metavar="JSON", help="compare with a record")
    ap.add_argument("--real", action="store_true", help="also the jobs on ../shared/data (about 3 min more)")
    ap.add_argument("--only", nargs="*", help="run only these jobs")
    ap.add_argument("--no-refine", action="store_true",
                    help="every job with pitch refinement off (compare with a record made before it existed)")
    args = ap.parse_args(argv)
    results = run_all(args.real, args.only, args.no_refine)
    if args.write:
        Path(args.write).write_text(json.dumps({"versions": versions(), "jobs": results}, indent=1) + "\n")
        print(f"wrote {args.write}: {sum(len(v) for v in results.values())} files in {len(results)} jobs")
    if args.check:
        record = json.loads(Path(args.check).read_text())
        if record["versions"] != versions():
            print(f"record made with {record['versions']}, this machine has {versions()}: not comparable")
            return 2
        bad = 0
        for name, files in results.items():
            want = record["jobs"].get(name)
            if want is None:
                print(f"{name}: not in the record")
                continue
            diff = sorted(k for k in set(want) | set(files) if want.get(k) != files.get(k))
            bad += bool(diff)
            print(f"{name}: {'SAME' if not diff else 'DIFFERENT: ' + ', '.join(diff)} ({len(files)} files)")
        print("all the same" if not bad else f"{bad} job(s) differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
