"""Run folders (issue 12, items 4, 6, 7): killed runs leave nothing for long, output problems are
exit 4 before the work, and a re-run leaves one consistent result.

Real subprocesses are killed with SIGTERM / SIGKILL mid-run; synthetic audio only, crepe tiny,
no separation except where the tiny random Demucs is asked for."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import singvc
from singvc.cache import Cache
from singvc.cli import main
from singvc.runfolders import OWNER_FILE, is_stale, owner_record, process_start, sweep, write_owner

from conftest import harmonic_tone, synth_song, vibrato_f0

RATE = 44100
ROOT = Path(singvc.__file__).resolve().parent.parent  # the checkout under test, for subprocesses
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def audio(tmp_path_factory, tiny_separator_repo):
    root = tmp_path_factory.mktemp("runfolders")
    vocal = root / "vocal.wav"
    sf.write(str(vocal), harmonic_tone(vibrato_f0(200, 6, 50, 1.5, RATE), 1.5, RATE), RATE, subtype="FLOAT")
    song = root / "song.wav"
    sf.write(str(song), synth_song(seconds=1.5).T, RATE, subtype="FLOAT")
    # long enough that a run is still working when the test kills it
    long_vocal = root / "long_vocal.wav"
    sf.write(str(long_vocal), harmonic_tone(vibrato_f0(200, 6, 50, 40.0, RATE), 40.0, RATE), RATE, subtype="FLOAT")
    return {"root": root, "vocal": vocal, "song": song, "long_vocal": long_vocal, "repo": tiny_separator_repo}


FAST = ["--pitch-model", "tiny", "--no-cache", "--quiet"]


def cover_args(audio, out, *extra) -> list[str]:
    return ["cover", "--vocals", str(audio["vocal"]), "--converter", "none", "-o", str(out), *FAST, *extra]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_hidden(parent: Path, name: str, owner: dict | None, age_seconds: float = 0.0) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "song.npy").write_bytes(b"\0" * 1024)
    if owner is not None:
        (folder / OWNER_FILE).write_text(json.dumps(owner))
    if age_seconds:
        then = time.time() - age_seconds
        for p in (*folder.iterdir(), folder):
            os.utime(p, (then, then))
    return folder


def start_killable_cover(audio, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A real ``python -m singvc cover`` subprocess, returned once its working folder exists."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path / "home")}
    env.pop("SINGVC_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "singvc", "cover", "--vocals", str(audio["long_vocal"]), "--converter", "pitch",
         "--transpose", "3", "--pitch-model", "tiny", "--no-cache", "--quiet", "-o", str(out)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.scratch-*")):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the cover never started working: rc {proc.returncode}, {proc.communicate()[1]}")
        time.sleep(0.05)
    time.sleep(0.5)  # into the work (decoding, pitch tracking)
    assert proc.poll() is None, "the run finished before it could be killed: make the test input longer"
    return proc, out


# -- 4. killed runs ----------------------------------------------------------------------------
def test_sigterm_mid_run_cleans_up_and_exits_143(audio, tmp_path):
    proc, out = start_killable_cover(audio, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == "singvc: terminated"
    assert len([line for line in err.splitlines() if line.startswith("singvc:")]) == 1
    assert hidden(tmp_path) == [] and not out.exists()


def test_sigkilled_run_is_swept_by_the_next_run(audio, tmp_path):
    proc, out = start_killable_cover(audio, tmp_path)
    proc.kill()
    proc.wait()
    left = list(tmp_path.glob(".out.scratch-*"))
    assert left and (left[0] / OWNER_FILE).is_file()  # SIGKILL: nothing could clean up
    owner = json.loads((left[0] / OWNER_FILE).read_text())
    assert owner["pid"] == proc.pid and owner["host"] == socket.gethostname()
    # the next run into the same parent removes it
    assert main(cover_args(audio, out)) == 0
    assert hidden(tmp_path) == []
    assert (out / "mix.wav").is_file()


def test_next_run_sweeps_dead_owners_and_keeps_live_ones(audio, tmp_path):
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        me = owner_record()
        live = {"pid": sleeper.pid, "host": host, "start": process_start(sleeper.pid), "created": time.time()}
        folders = {
            "dead": make_hidden(tmp_path, ".out.scratch-dead0001",
                                {"pid": dead_pid(), "host": host, "start": None, "created": time.time()}),
            "dead_partial": make_hidden(tmp_path, ".other.partial-dead0002",
                                        {"pid": dead_pid(), "host": host, "start": None, "created": time.time()}),
            # the pid is alive but belongs to another process now (pid reuse): its start time differs
            "reused": make_hidden(tmp_path, ".out.scratch-reuse001", {**me, "start": (me["start"] or 0) + 12345}),
            "orphan_old": make_hidden(tmp_path, ".out.scratch-orphan01", None, age_seconds=2 * 3600),
            "foreign_old": make_hidden(tmp_path, ".out.partial-foreign1",
                                       {"pid": 1, "host": host + "-elsewhere", "created": 0}, age_seconds=8 * 86400),
            # kept: a live run of another process, this very process, a fresh owner-less folder
            # (its run may not have written the owner file yet), another host's recent folder
            "live": make_hidden(tmp_path, ".out.scratch-live0001", live),
            "me": make_hidden(tmp_path, ".out.partial-mine0001", me),
            "orphan_new": make_hidden(tmp_path, ".out.scratch-orphan02", None),
            "foreign_new": make_hidden(tmp_path, ".out.scratch-foreign2",
                                       {"pid": 1, "host": host + "-elsewhere", "created": time.time()}),
            # same host name, another pid namespace (another container): its pids mean nothing here
            "other_ns": make_hidden(tmp_path, ".out.scratch-otherns1",
                                    {**me, "pid": dead_pid(), "pid_ns": "pid:[1]"}),
        }
        user = tmp_path / ".my-notes.scratch-keep"  # a name singvc never makes... as a file
        user.write_text("mine")
        assert main(cover_args(audio, tmp_path / "out")) == 0
        gone = {k for k, p in folders.items() if not p.exists()}
        assert gone == {"dead", "dead_partial", "reused", "orphan_old", "foreign_old"}
        assert user.read_text() == "mine"
        assert (tmp_path / "out" / "mix.wav").is_file()
    finally:
        sleeper.kill()
        sleeper.wait()
    # once that process has ended, its folder goes too
    assert is_stale(folders["live"]) and sweep(tmp_path) == [folders["live"]]


def test_stale_old_folders_inside_the_output_folder_are_swept(audio, tmp_path):
    out = tmp_path / "out"
    assert main(cover_args(audio, out, "--daw")) == 0
    old = make_hidden(out, ".session.old-dead0001", {"pid": dead_pid(), "host": socket.gethostname()})
    assert main(cover_args(audio, out, "--daw")) == 0
    assert not old.exists() and hidden(out) == []


def test_unfinished_cache_entries_of_dead_runs_are_removed(tmp_path):
    cache = Cache(tmp_path / "cache")
    folder = tmp_path / "cache" / "separation"
    folder.mkdir(parents=True)
    dead = make_hidden(folder, ".entry.dead0001", {"pid": dead_pid(), "host": socket.gethostname()})
    live = folder / ".entry.live0001"
    live.mkdir()
    write_owner(live)
    old_file = folder / ".entry.old001.npz"
    old_file.write_bytes(b"x")
    os.utime(old_file, (time.time() - 2 * 3600,) * 2)
    new_file = folder / ".entry.new001.npz"
    new_file.write_bytes(b"x")
    cache.prune()
    assert not dead.exists() and not old_file.exists()
    assert live.exists() and new_file.exists()
    # a finished entry written by save_audio carries no owner file
    stored = cache.save_audio("separation", "d" * 64, {}, {"vocals": np.zeros((1, 100), np.float32)})
    assert stored is not None and not (stored / OWNER_FILE).exists()


def test_outputs_are_put_in_place_before_a_signal_takes_effect():
    from singvc.runfolders import signals_held

    seen = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert seen == []  # held while the renames run
        time.sleep(0.05)
        assert seen == [signal.SIGTERM]  # delivered right after
    finally:
        signal.signal(signal.SIGTERM, old)
    # Ctrl-C: KeyboardInterrupt comes after the block, which ran to its end
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append(True)
    assert done == [True]


# -- 6. output problems are exit 4, before the work --------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Any audio work fails the test loudly (an internal error, exit 70, not 4)."""
    from singvc import engine, jobs, separate

    def fail(*args, **kwargs):
        raise AssertionError("the work started before the output was checked")

    monkeypatch.setattr(jobs, "load_song_or_stems", fail)
    monkeypatch.setattr(jobs, "load_input", fail)
    monkeypatch.setattr(engine.Engine, "track", fail)
    monkeypatch.setattr(separate.Separator, "separate", fail)
    monkeypatch.setattr("singvc.audio.load_audio", fail)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("singvc: error: ")
    return err[0]


def sep_args(audio) -> list[str]:
    return ["--separator-model", "tiny", "--separator-repo", str(audio["repo"]), "--pitch-model", "tiny",
            "--no-cache", "--quiet"]


@pytest.mark.parametrize("command", ["cover", "separate", "stems", "run", "batch"])
def test_existing_file_as_output_folder_is_exit_4_before_the_work(audio, tmp_path, capsys, no_work, command):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    if command in ("run", "batch"):
        recipe = tmp_path / "r.toml"
        recipe.write_text(f'[input]\nsong = "{audio["song"]}"\n[voice]\ntranspose = 0\n')
        argv = ["run", str(recipe), "-o", str(target), "--no-cache", "--quiet"]
        if command == "batch":
            argv += ["--songs", str(audio["root"])]
    elif command == "cover":
        argv = ["cover", str(audio["song"]), "--transpose", "0", "-o", str(target), *sep_args(audio)]
    else:
        argv = [command, str(audio["song"]), "-o", str(target), *sep_args(audio)]
    assert main(argv) == 4
    assert "is an existing file" in one_error_line(capsys)
    assert target.read_text() == "not a folder"
    assert hidden(tmp_path) == []


def test_output_folder_under_a_file_or_read_only_is_exit_4(audio, tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(cover_args(audio, blocker / "out")) == 4
    assert "is a file, not a folder" in one_error_line(capsys)
    if Path("/proc/self").is_dir():  # read-only even for root
        assert main(cover_args(audio, Path("/proc/singvc-test-out"))) == 4
        one_error_line(capsys)
    assert hidden(tmp_path) == []


@pytest.mark.skipif(IS_ROOT, reason="root writes into a chmod 555 folder; the /proc and file cases cover root")
def test_read_only_output_folder_is_exit_4(audio, tmp_path, capsys, no_work):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(cover_args(audio, ro / "out")) == 4
        one_error_line(capsys)
    finally:
        ro.chmod(0o755)


def test_unwritable_or_full_cache_is_exit_4_before_the_work(audio, tmp_path, capsys, no_work, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = ["cover", str(audio["song"]), "--transpose", "0", "-o", str(tmp_path / "out"), "--separator-model",
            "tiny", "--separator-repo", str(audio["repo"]), "--pitch-model", "tiny", "--quiet"]
    assert main([*base, "--cache-dir", str(blocker / "cache")]) == 4
    assert "--no-cache" in one_error_line(capsys)
    if Path("/proc/self").is_dir():
        assert main([*base, "--cache-dir", "/proc/singvc-test-cache"]) == 4
        assert "--no-cache" in one_error_line(capsys)
    # a full disk (free space below what the separated stems need)
    import singvc.runfolders as rf

    monkeypatch.setattr(rf.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    assert main([*base, "--cache-dir", str(tmp_path / "cache")]) == 4
    line = one_error_line(capsys)
    assert "not enough free space" in line and "--no-cache" in line
    assert not (tmp_path / "out").exists() and hidden(tmp_path) == []


def test_full_output_disk_is_exit_4(audio, tmp_path, capsys, no_work, monkeypatch):
    import singvc.runfolders as rf

    monkeypatch.setattr(rf.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    assert main(cover_args(audio, tmp_path / "out")) == 4
    assert "not enough free space" in one_error_line(capsys)


def test_pitch_output_into_missing_or_unwritable_folder_is_exit_4(audio, tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [["-o", str(tmp_path / "missing" / "t.npz")],
             ["-o", str(blocker / "t.npz")],
             ["-o", str(tmp_path / "t.npz"), "--csv", str(tmp_path / "missing" / "t.csv")],
             ["-o", str(tmp_path)]]  # a folder
    if Path("/proc/self").is_dir():
        cases.append(["-o", "/proc/t.npz"])
    for extra in cases:
        assert main(["pitch", str(audio["vocal"]), *extra, *FAST]) == 4, extra
        one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_voice_profile_output_under_a_file_is_exit_4(audio, tmp_path, capsys, no_work):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["voice", "enroll", str(audio["vocal"]), "--name", "x", "-o", str(blocker / "x.json"), *FAST]) == 4
    assert "is not a folder" in one_error_line(capsys)


# -- 7. a re-run leaves one consistent result ---------------------------------------------------
def test_rerun_without_daw_moves_the_old_session_aside(audio, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(cover_args(audio, out, "--daw")) == 0
    first = json.loads((out / "report.json").read_text())
    assert "session" in first["outputs"]
    (out / "notes.txt").write_text("mine")  # the user's own file
    assert main([*cover_args(audio, out)[:-1]]) == 0  # not --quiet: the move is said
    assert "moved the earlier run's session, report.json into" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert not (out / "session").exists()
    assert "session" not in report["outputs"] and "previous_run" in report
    aside = out / report["previous_run"]["folder"]
    assert aside.name.startswith("previous-run-")
    assert sorted(report["previous_run"]["files"]) == ["report.json", "session"]
    assert (aside / "session" / "session.json").is_file()
    assert json.loads((aside / "report.json").read_text())["outputs"] == first["outputs"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*report["outputs"], "notes.txt", aside.name])
    assert (out / "notes.txt").read_text() == "mine"
    # the same run again: nothing to move aside
    assert main(cover_args(audio, out)) == 0
    assert "previous_run" not in json.loads((out / "report.json").read_text())
    assert len(list(out.glob("previous-run-*"))) == 1


def test_rerun_with_fewer_stems_and_an_input_inside_the_folder(audio, tmp_path):
    out = tmp_path / "out"
    assert main(cover_args(audio, out)) == 0
    # a recipe that writes only mix.wav and report.json, whose vocal is a file of the old run
    vocal = out / "vocals_original.wav"
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[input]\nvocals = "{vocal}"\n[voice]\ntranspose = 0\n'
                      '[settings]\nconverter = "none"\npitch_model = "tiny"\n[output]\nstems = false\n')
    assert main(["run", str(recipe), "-o", str(out), "--no-cache", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    moved = report["previous_run"]["files"]
    assert sorted(moved) == ["instrumental.wav", "report.json", "vocals_converted.wav"]
    assert vocal.is_file()  # this run's input stays where it is
    assert sorted(p.name for p in out.iterdir()) == sorted(["mix.wav", "plan.png", "report.json", "vocals_original.wav",
                                                            report["previous_run"]["folder"]])


def test_separate_into_a_cover_folder_moves_the_cover_aside(audio, tmp_path):
    out = tmp_path / "out"
    assert main(cover_args(audio, out)) == 0
    assert main(["separate", str(audio["song"]), "-o", str(out), *sep_args(audio)]) == 0
    aside = list(out.glob("previous-run-*"))
    assert len(aside) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(["vocals.wav", "instrumental.wav", aside[0].name])
    assert sorted(p.name for p in aside[0].iterdir()) == ["mix.wav", "plan.png", "report.json",
                                                          "vocals_converted.wav", "vocals_original.wav"]


def test_stems_rerun_without_midi_moves_the_old_midi_aside(audio, tmp_path):
    out = tmp_path / "session"
    assert main(["stems", str(audio["song"]), "-o", str(out), *sep_args(audio)]) == 0
    midi = [p.name for p in out.glob("*.mid")]
    assert midi
    assert main(["stems", str(audio["song"]), "-o", str(out), "--no-midi", *sep_args(audio)]) == 0
    aside = list(out.glob("previous-run-*"))
    assert len(aside) == 1 and not list(out.glob("*.mid"))
    assert sorted(p.name for p in aside[0].glob("*.mid")) == sorted(midi)
    listed = json.loads((out / "session.json").read_text())
    assert {s["file"] for s in listed["stems"]} <= {p.name for p in out.iterdir()} and listed["midi"] == []


def test_a_cancel_whose_raise_was_lost_stops_at_the_next_block():
    """SIGTERM's handler may fire where an exception is swallowed (inside a ``__del__``): the
    request stays set, and the next block of audio any stage streams raises it again."""
    from singvc.audio import blocks
    from singvc.runfolders import Cancelled, clear_cancel, request_cancel

    try:
        class Swallows:
            def __del__(self):
                request_cancel()
                raise Cancelled()  # printed as "Exception ignored", never propagated

        Swallows()
        seen = []
        with pytest.raises(Cancelled):
            for a, b in blocks(10, 3):
                seen.append(a)
        assert seen == []
    finally:
        clear_cancel()
    assert list(blocks(10, 3)) == [(0, 3), (3, 6), (6, 9), (9, 10)]
