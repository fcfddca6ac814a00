"""Probe singvc with faults and hostile input through the real command line, and check what it leaves.

Every case of issue 12 ("no garbage passes as audio; kills and a damaged cache heal") as a run of
``python -m singvc ...`` in a new folder, with the exit code it must end with and what must (or must
not) be on disk afterwards. Signals are synthesised here; the separator is a tiny random Demucs saved
to a local model folder, so nothing is downloaded.

    python benchmarks/probe.py                 # all cases, a table, exit 1 if any case fails
    python benchmarks/probe.py -k cache        # only cases whose name contains "cache"
    python benchmarks/probe.py --json docs/probe.json
    python benchmarks/probe.py --torchaudio-dir DIR   # also: a mismatched torchaudio (pip install
                                                      # --no-deps --target DIR torchaudio==2.11.1)

tests/test_probe.py runs every case of this script in the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

RATE = 44100
ROOT = Path(__file__).resolve().parent.parent


# -- signals and fixtures ------------------------------------------------------------------------------
def tone(f0: float, seconds: float, rate: int = RATE, level: float = 0.25, vibrato: float = 40.0) -> np.ndarray:
    """A harmonic 'sung' tone with vibrato, float32 [samples]."""
    t = np.arange(int(seconds * rate)) / rate
    f = f0 * 2 ** (vibrato * np.sin(2 * np.pi * 5.5 * t) / 1200)
    phase = 2 * np.pi * np.cumsum(f) / rate
    out = sum(np.sin(k * phase) / k for k in range(1, 9))
    return (level * out / np.max(np.abs(out))).astype(np.float32)


def song(seconds: float = 2.0) -> np.ndarray:
    """Stereo 'song': the tone over a bass line, float32 [samples, 2] (soundfile's layout)."""
    voice = tone(220, seconds)
    t = np.arange(voice.size) / RATE
    bass = (0.15 * np.sin(2 * np.pi * 55 * t)).astype(np.float32)
    return np.stack([voice + bass, 0.8 * voice + bass], axis=1)


@dataclass
class Fixtures:
    """Files every case may use, made once per probe run in ``root``."""

    root: Path

    def __post_init__(self) -> None:
        self.vocal = self.root / "vocal.wav"
        sf.write(self.vocal, tone(220, 2.0), RATE, subtype="FLOAT")
        self.voice = self.root / "voice.wav"
        sf.write(self.voice, tone(330, 2.0, 22050), 22050)
        self.song = self.root / "song.wav"
        sf.write(self.song, song(), RATE, subtype="FLOAT")
        self.loud = self.root / "loud.wav"  # +12 dBFS float vocal: samples reach about 4
        sf.write(self.loud, 4.0 * tone(220, 2.0, level=1.0), RATE, subtype="FLOAT")
        self.repo = self.root / "demucs"
        self.repo.mkdir()
        code = ("import sys; from singvc.separate import build_tiny_model, save_model_to_repo; "
                "save_model_to_repo(build_tiny_model(), sys.argv[1], 'tiny')")
        subprocess.run([sys.executable, "-c", code, str(self.repo)], check=True, env=_env(self.root / "home"))

    def fast(self, cache: Path | None = None) -> list[str]:
        """Flags for a quick run: tiny crepe, tiny Demucs, a cache of the case's own."""
        flags = ["--pitch-model", "tiny", "--separator-model", "tiny", "--separator-repo", str(self.repo), "-q"]
        return flags + (["--cache-dir", str(cache)] if cache else ["--no-cache"])


def _env(home: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGVC_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), PYTHONPATH=str(ROOT), **(extra or {}))
    return env


def hidden(folder: Path) -> list[str]:
    """Names of singvc's hidden working entries (``.NAME.scratch-*``, ``.NAME.partial-*``, ...) in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


# -- cases ------------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    #: (fixtures, case folder) -> the singvc arguments; may prepare files in the folder
    args: Callable[[Fixtures, Path], list[str]]
    expect: int
    #: (fixtures, case folder, stderr) -> problems found on disk or in the messages ([] = fine)
    check: Callable[[Fixtures, Path, str], list[str]] = lambda f, d, err: []
    #: a second run before the checked one (same folder), e.g. to fill a cache
    before: Callable[[Fixtures, Path], list[str]] | None = None
    #: between ``before`` and the run: damage something
    damage: Callable[[Fixtures, Path], None] | None = None
    #: send SIGTERM this many seconds after start
    term_after: float | None = None
    env: dict = field(default_factory=dict)
    #: stderr must be exactly one line (errors), or at most this many lines
    max_err_lines: int | None = 1


def _nothing_left(out_name: str = "out") -> Callable[[Fixtures, Path, str], list[str]]:
    def check(f: Fixtures, d: Path, err: str) -> list[str]:
        problems = []
        if (d / out_name).exists():
            problems.append(f"{out_name} exists")
        if hidden(d):
            problems.append(f"hidden entries left: {hidden(d)}")
        return problems
    return check


def _mentions(*words: str, then=None) -> Callable[[Fixtures, Path, str], list[str]]:
    def check(f: Fixtures, d: Path, err: str) -> list[str]:
        problems = [f"message does not name {w!r}" for w in words if w not in err]
        return problems + (then(f, d, err) if then else [])
    return check


def _profile(f: Fixtures, d: Path, **changes) -> Path:
    """A shipped voice profile with some fields changed, as a file in ``d``."""
    data = json.loads((ROOT / "presets" / "voices" / "librispeech-198.json").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    path = d / "voice.json"
    # NaN and Infinity as Python's json writes them: what a hand-edited or buggy file may hold
    path.write_text(json.dumps(data))
    return path


def _cover_with_profile(**changes):
    def args(f: Fixtures, d: Path) -> list[str]:
        return ["cover", "--vocals", str(f.vocal), "--voice", str(_profile(f, d, **changes)), "-o", str(d / "out"),
                *f.fast()]
    return args


def _recipe(voice: str = "", body: str = ""):
    """A recipe over the probe's vocal (no separation) with extra ``[voice]`` keys and tables."""
    def args(f: Fixtures, d: Path) -> list[str]:
        path = d / "r.toml"
        path.write_text(f'[input]\nsong = "{f.vocal}"\nseparation = false\n'
                        f'[voice]\ntarget_range = "C3-C4"\n{voice}\n' + body.replace("VOICE_CLIP", str(f.voice)) + "\n")
        return ["run", str(path), "-o", str(d / "out"), "--set", "settings.pitch_model=tiny", "-q", "--no-cache"]
    return args


def _pcm_clipped(path: Path) -> float:
    data, _ = sf.read(path, dtype="float64")
    return float(np.mean(np.abs(data) >= (2 ** 23 - 1) / 2 ** 23))


def _no_clipping(f: Fixtures, d: Path, err: str) -> list[str]:
    out = d / "out"
    if not (out / "report.json").is_file():
        return ["no report.json"]
    problems = [f"{n}: {_pcm_clipped(out / n):.1%} samples at full scale" for n in
                ("mix.wav", "vocals_converted.wav", "vocals_original.wav", "instrumental.wav")
                if _pcm_clipped(out / n) > 0]
    report = json.loads((out / "report.json").read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    if "headroom" not in json.dumps(report):
        problems.append("report says nothing about headroom")
    return problems


def _report_valid(f: Fixtures, d: Path, err: str) -> list[str]:
    """The run's report.json (cover, run) or session.json (stems) exists and is strict JSON."""
    out = d / "out"
    path = out / "report.json" if (out / "report.json").exists() else out / "session.json"
    try:
        json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (OSError, ValueError) as exc:
        return [f"{path.name} not valid JSON: {exc}"]
    return []


def _stale_folders(f: Fixtures, d: Path) -> None:
    """Leftovers of a killed run (its owner file written by a process that has ended, as after a
    SIGKILL) and of a live one (owned by this probe's own process)."""
    from singvc.runfolders import write_owner

    for name in (".out.scratch-dead1234", ".out.partial-dead1234", ".out.scratch-live1234"):
        folder = d / name
        folder.mkdir()
        (folder / "junk.npy").write_bytes(b"\0" * 1_000_000)
        if "live" in name:
            write_owner(folder)
        else:
            code = "import sys; from pathlib import Path; from singvc.runfolders import write_owner; write_owner(Path(sys.argv[1]))"
            subprocess.run([sys.executable, "-c", code, str(folder)], check=True, env=_env(f.root / "home"))


def _only_live_left(f: Fixtures, d: Path, err: str) -> list[str]:
    left = hidden(d)
    return [] if left == [".out.scratch-live1234"] else [f"hidden entries after the run: {left} (want only the live one)"]


def _truncate(rel_glob: str, keep: float = 0.5):
    def damage(f: Fixtures, d: Path) -> None:
        hits = sorted((d / "cache").glob(rel_glob))
        if not hits:
            raise RuntimeError(f"nothing matches cache/{rel_glob}")
        for path in hits[:1]:
            data = path.read_bytes()
            path.write_bytes(data[: int(len(data) * keep)])
    return damage


def _delete(rel_glob: str):
    def damage(f: Fixtures, d: Path) -> None:
        hits = sorted((d / "cache").glob(rel_glob))
        if not hits:
            raise RuntimeError(f"nothing matches cache/{rel_glob}")
        hits[0].unlink()
    return damage


def _both(*damages):
    """Several damages in turn (the ONNX model is loaded only when pitch is tracked, not on a hit)."""
    def damage(f: Fixtures, d: Path) -> None:
        for one in damages:
            one(f, d)
    return damage


def _warned_and_done(*words: str):
    def check(f: Fixtures, d: Path, err: str) -> list[str]:
        problems = [] if err.count("singvc: warning") == 1 else [f"want one warning, got: {err.strip()[-300:]!r}"]
        problems += [f"warning does not name {w!r}" for w in words if w not in err]
        return problems + _report_valid(f, d, err)
    return check


def _stems_cover(f: Fixtures, d: Path) -> list[str]:
    return ["stems", str(f.song), "-o", str(d / "out"), *f.fast(d / "cache")]


def _pitch_cached(f: Fixtures, d: Path) -> list[str]:
    return ["cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "--converter", "pitch", "-o", str(d / "out"),
            *f.fast(d / "cache")[:-2], "--cache-dir", str(d / "cache"), "--pitch-backend", "onnx"]


def _rerun_args(daw: bool):
    def args(f: Fixtures, d: Path) -> list[str]:
        return ["cover", str(f.song), "--target-range", "C3-C4", "--converter", "none", "-o", str(d / "out"),
                *f.fast(), *(["--daw"] if daw else [])]
    return args


def _no_stale_session(f: Fixtures, d: Path, err: str) -> list[str]:
    out = d / "out"
    problems = _report_valid(f, d, err)
    if (out / "session").exists():
        problems.append("session/ of the earlier --daw run left beside the new mix")
    moved = [p for p in out.rglob("session") if p.is_dir()] + [p for p in d.rglob("session") if p.is_dir()]
    if not moved:
        problems.append("the earlier session/ was deleted, not moved aside")
    return problems


def _rpp_ok(f: Fixtures, d: Path, err: str) -> list[str]:
    """Every line of the .rpp is a block start, a block end, a KEY line, or inside NOTES a '|' line."""
    import re

    rpp = sorted((d / "out").rglob("*.rpp"))
    if not rpp:
        return ["no .rpp written"]
    depth, in_notes, problems = 0, False, []
    for n, line in enumerate(rpp[0].read_text().splitlines(), 1):
        s = line.strip()
        if s == ">":
            depth -= 1
            in_notes = False
        elif s.startswith("<"):
            depth += 1
            in_notes = s.startswith("<NOTES")
        elif not (re.match(r"^[A-Z_]+( |$)", s) or (in_notes and s.startswith("|"))):
            problems.append(f".rpp line {n} is not REAPER syntax: {s[:40]!r}")
    return problems + ([] if depth == 0 else [f".rpp blocks unbalanced (depth {depth} at the end)"])


def _odd_name(f: Fixtures, d: Path) -> list[str]:
    path = d / "bad\nname.wav"
    path.write_bytes(f.song.read_bytes())
    return ["stems", str(path), "-o", str(d / "out"), "--no-midi", *f.fast()]


def _truncated_wav(f: Fixtures, d: Path) -> list[str]:
    path = d / "cut.wav"
    data = f.vocal.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ["pitch", str(path), "-o", str(d / "t.npz"), "--pitch-model", "tiny", "--no-cache", "-q"]


def _file_as_output(f: Fixtures, d: Path) -> list[str]:
    (d / "out").write_text("precious")
    return ["cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "-o", str(d / "out"), *f.fast()]


def _untouched_file(f: Fixtures, d: Path, err: str) -> list[str]:
    problems = [] if (d / "out").read_text() == "precious" else ["the file given as -o was changed"]
    return problems + ([f"hidden entries left: {hidden(d)}"] if hidden(d) else [])


def _cache_under_file(f: Fixtures, d: Path) -> list[str]:
    (d / "afile").write_text("x")
    return ["cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "-o", str(d / "out"),
            *f.fast()[:-1], "--cache-dir", str(d / "afile" / "cache")]


def _killed_run(f: Fixtures, d: Path) -> None:
    """A cover killed with SIGKILL mid-run (no clean-up can run): its hidden folders stay behind."""
    args = _term(f, d)
    env = _env(f.root / "home")
    proc = subprocess.Popen([sys.executable, "-m", "singvc", *args], cwd=d, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not any("scratch" in n for n in hidden(d)):
        time.sleep(0.2)
    time.sleep(3.0)
    proc.kill()
    proc.wait()
    if not hidden(d):
        raise RuntimeError("the killed run left nothing to sweep (killed too early?)")


def _preset(f: Fixtures, d: Path) -> list[str]:
    (d / "hot.toml").write_text('description = "bad"\n[settings]\nstrength = 2.0\n')
    return ["cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "--preset", str(d / "hot.toml"),
            "-o", str(d / "out"), *f.fast()]


def _silent_vocal(f: Fixtures, d: Path) -> list[str]:
    path = d / "silence.wav"
    sf.write(path, np.zeros(RATE * 2, np.float32), RATE, subtype="FLOAT")
    return ["cover", "--vocals", str(path), "--target-range", "C3-C4", "--converter", "pitch", "-o", str(d / "out"),
            *f.fast()]


def _term(f: Fixtures, d: Path) -> list[str]:
    long = d / "long.wav"
    sf.write(long, np.tile(song(2.0), (30, 1)), RATE, subtype="FLOAT")  # 60 s: still running at the signal
    return ["cover", str(long), "--target-range", "C3-C4", "-o", str(d / "out"), "--pitch-model", "full",
            "--pitch-stride", "1", "--separator-model", "tiny", "--separator-repo", str(f.repo), "--no-cache", "-q"]


CASES = [
    # 2. garbage refused at load, exit 2, naming the field
    Case("profile: NaN register", _cover_with_profile(**{"register.median.hz": float("nan")}), 2,
         _mentions("register", then=_nothing_left())),
    Case("profile: NaN envelope", _cover_with_profile(**{"mean_shape_db.3": float("nan")}), 2,
         _mentions("mean_shape_db", then=_nothing_left())),
    Case("profile: inf loudness", _cover_with_profile(loudness_lufs=float("inf")), 2,
         _mentions("loudness_lufs", then=_nothing_left())),
    Case("profile: string for a number", _cover_with_profile(voiced_seconds="lots"), 2,
         _mentions("voiced_seconds", then=_nothing_left())),
    Case("recipe: ceiling_dbtp = nan", _recipe(body="[settings]\nceiling_dbtp = nan"), 2,
         _mentions("ceiling_dbtp", then=_nothing_left())),
    Case("recipe: level_db = 1000", _recipe(body='[voices.a]\nref = "VOICE_CLIP"\n[[feature.sections]]\n'
                                                 'time = "0:00-0:01"\nvoice = "a"\nlevel_db = 1000'), 2,
         _mentions("level_db", then=_nothing_left())),
    Case("recipe: string for a number", _recipe(voice='strength = "high"'), 2,
         _mentions("strength", then=_nothing_left())),
    Case("flag: --strength 2", lambda f, d: ["cover", "--vocals", str(f.vocal), "--target-range", "C3-C4",
                                             "--strength", "2", "-o", str(d / "out"), *f.fast()], 2,
         _mentions("strength", then=_nothing_left())),
    Case("preset: strength = 2", _preset, 2, _mentions("strength", then=_nothing_left())),
    Case("silent vocal: report.json is strict JSON", _silent_vocal, 0, _report_valid, max_err_lines=None),
    # 3. no silent clipping
    Case("+12 dBFS float vocal, pitch converter", lambda f, d: [
        "cover", "--vocals", str(f.loud), "--target-range", "C3-C4", "--converter", "pitch", "-o", str(d / "out"),
        *f.fast()], 0, _no_clipping, max_err_lines=None),
    Case("+12 dBFS float vocal, no converter", lambda f, d: [
        "cover", "--vocals", str(f.loud), "--target-range", "C3-C4", "--converter", "none", "-o", str(d / "out"),
        *f.fast()], 0, _no_clipping, max_err_lines=None),
    # 4. killed runs
    Case("SIGTERM mid-run", _term, 143, _nothing_left(), term_after=12.0),
    Case("stale folders of a dead run are swept, a live run's kept", lambda f, d: [
        "cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "--converter", "none", "-o", str(d / "out"),
        *f.fast()], 0, _only_live_left, damage=_stale_folders, max_err_lines=None),
    Case("SIGKILL mid-run, then a run in the same folder sweeps its leftovers", lambda f, d: [
        "cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "--converter", "none", "-o", str(d / "out2"),
        *f.fast()], 0, lambda f, d, err: [f"hidden entries left: {hidden(d)}"] if hidden(d) else [],
         damage=_killed_run, max_err_lines=None),
    # 5. damaged cache entries are misses
    Case("cache: truncated stem", _stems_cover, 0, _warned_and_done("cache"), before=_stems_cover,
         damage=_truncate("separation/*/vocals.npy"), max_err_lines=None),
    Case("cache: missing drums stem", _stems_cover, 0, _warned_and_done("drums"), before=_stems_cover,
         damage=_delete("separation/*/drums.npy"), max_err_lines=None),
    Case("cache: truncated pitch track", _pitch_cached, 0, _warned_and_done("cache"), before=_pitch_cached,
         damage=_truncate("pitch/*.npz"), max_err_lines=None),
    Case("cache: truncated crepe ONNX model", _pitch_cached, 0, _warned_and_done("onnx"), before=_pitch_cached,
         damage=_both(_truncate("models/*.onnx"), _delete("pitch/*.npz")), max_err_lines=None),
    # 6. output problems: exit 4, before the work
    Case("-o is an existing file", _file_as_output, 4, _untouched_file),
    Case("cache folder under a file", _cache_under_file, 4, _nothing_left()),
    Case("pitch -o into a missing folder", lambda f, d: [
        "pitch", str(f.vocal), "-o", str(d / "missing" / "t.npz"), "--pitch-model", "tiny", "--no-cache", "-q"], 4,
         lambda f, d, err: ["missing folder was created"] if (d / "missing").exists() else []),
    # 7. a re-run leaves one consistent result
    Case("re-run without --daw after --daw", _rerun_args(False), 0, _no_stale_session, before=_rerun_args(True),
         max_err_lines=None),
    # 8. smaller
    Case("--transpose -40", lambda f, d: ["cover", "--vocals", str(f.vocal), "--transpose", "-40", "-o", str(d / "out"),
                                          *f.fast()], 2, _mentions("transpose", then=_nothing_left())),
    Case("argument error is one line", lambda f, d: ["cover", "--converter", "nope"], 2, _mentions("--help")),
    Case("newline in a song name", _odd_name, 0, _rpp_ok, max_err_lines=None),
    Case("truncated WAV warns", _truncated_wav, 0, _mentions("warning", "cut.wav"), max_err_lines=None),
    Case("--set output.dir= (empty)", lambda f, d: [
        "run", str(ROOT / "recipes" / "cover.toml"), "--set", "output.dir=", "--set", f"input.song={f.vocal}",
        "--set", "input.separation=false", "--set", "settings.pitch_model=tiny", "--no-cache", "-q"], 2,
         _mentions("output.dir", then=lambda f, d, err: [f"wrote into the current folder: {sorted(p.name for p in d.iterdir())}"]
                   if any(p.suffix == ".wav" for p in d.iterdir()) else [])),
]


# -- running ---------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    expect: int
    got: int | None
    problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.got == self.expect and not self.problems


def _singvc(argv: list[str], cwd: Path, env: dict, term_after: float | None = None) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "singvc", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if term_after is not None:
        try:
            proc.wait(timeout=term_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def run_case(case: Case, fixtures: Fixtures, folder: Path) -> Result:
    folder.mkdir(parents=True)
    env = _env(fixtures.root / "home", case.env)
    start = time.perf_counter()
    problems: list[str] = []
    try:
        if case.before is not None:
            code, err = _singvc(case.before(fixtures, folder), folder, env)
            if code != 0:
                return Result(case.name, case.expect, None, [f"setup run failed ({code}): {err.strip()[-300:]}"], 0.0)
        if case.damage is not None:
            case.damage(fixtures, folder)
        code, err = _singvc(case.args(fixtures, folder), folder, env, case.term_after)
        lines = [line for line in err.splitlines() if line.strip()]
        if case.max_err_lines is not None and len(lines) > case.max_err_lines:
            problems.append(f"stderr has {len(lines)} lines: {lines[:3]}")
        problems += case.check(fixtures, folder, err)
        if code != case.expect:
            problems.append(f"stderr: {err.strip()[-300:]}")
    except Exception as exc:  # the probe itself failed on this case
        return Result(case.name, case.expect, None, [f"probe error: {type(exc).__name__}: {exc}"],
                      time.perf_counter() - start)
    return Result(case.name, case.expect, code, problems, time.perf_counter() - start)


def run(cases: list[Case], workdir: Path | None = None) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="singvc-probe-", dir=workdir) as tmp:
        root = Path(tmp)
        (root / "fixtures").mkdir()
        fixtures = Fixtures(root / "fixtures")
        return [run_case(c, fixtures, root / f"case{i:02d}") for i, c in enumerate(cases)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", metavar="TEXT", help="only cases whose name contains TEXT")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--torchaudio-dir", metavar="DIR",
                        help="a folder holding a torchaudio that does not fit the installed torch "
                             "(pip install --no-deps --target DIR torchaudio==2.11.1): adds that case")
    args = parser.parse_args(argv)
    cases = list(CASES)
    if args.torchaudio_dir:
        mismatch = {"PYTHONPATH": f"{Path(args.torchaudio_dir).resolve()}{os.pathsep}{ROOT}"}
        cases.append(Case("torchaudio built for another torch", lambda f, d: [
            "cover", "--vocals", str(f.vocal), "--target-range", "C3-C4", "-o", str(d / "out"), *f.fast()], 3,
            _mentions("torchaudio", "constraints.txt", then=_nothing_left()), env=mismatch))
    if args.k:
        cases = [c for c in cases if args.k.lower() in c.name.lower()]
    results = run(cases)
    width = max(len(r.name) for r in results)
    for r in results:
        got = "-" if r.got is None else r.got
        print(f"{'ok  ' if r.ok else 'FAIL'} {r.name:<{width}}  exit {got} (want {r.expect})  {r.seconds:5.1f} s"
              + ("" if r.ok else "  " + "; ".join(r.problems)))
    print(f"{sum(r.ok for r in results)} passed, {sum(not r.ok for r in results)} failed")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ | {"ok": r.ok} for r in results], indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
