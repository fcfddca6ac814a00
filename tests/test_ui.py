"""The web app's job functions, without a browser (tests/test_ui_browser.py drives the page):
uploads sanitised and size-limited, only the app's own uploads opened, one job at a time, a
cancelled or failed job leaves nothing behind, errors as the CLI's one line, recipes from the app."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import harmonic_tone, vibrato_f0, write_voice_clip
from singvc import ui
from singvc.errors import UserInputError, error_line
from singvc.recipe import parse_recipe
from singvc.settings import SCHEMA
from singvc.ui import App, JobResult, safe_name

HIDDEN = re.compile(r"\.(scratch|partial|old)-|\.part")
FAST = {"separation": False, "pitch_model": "tiny", "reference_pitch_model": "tiny", "device": "cpu"}


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("SINGVC_HOME", str(tmp_path / "home"))
    return App(tmp_path / "wd", cache_dir=tmp_path / "cache", max_upload_mb=5)


def upload(app: App, name: str, write) -> str:
    """A file as Gradio leaves an upload: in a folder of its own under the uploads folder."""
    folder = app.workspace.uploads / f"u{time.monotonic_ns()}"
    folder.mkdir()
    path = folder / name
    write(path)
    return str(path)


def vocal(path: Path, seconds: float = 2.0) -> None:
    rate = 22050
    tone = harmonic_tone(vibrato_f0(196, 5.5, 40, seconds, rate), seconds, rate, level=0.3)
    sf.write(str(path), np.stack([tone, tone]).T, rate)


def leftovers(app: App) -> list[str]:
    """Job folders and hidden working files anywhere in the working folder (uploads aside)."""
    found = [p.name for p in app.workspace.jobs.iterdir()]
    found += [str(p) for p in app.workspace.root.rglob("*") if HIDDEN.search(p.name)]
    return found


@pytest.mark.parametrize("name, expected", [
    ("jay 7s (take 1).flac", "jay_7s_take_1.flac"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\song.WAV", "song.wav"),
    (".hidden.wav", "hidden.wav"),
    ("Ünïcødé sóng.mp3", "Unicde_song.mp3"),
    ("", "file"),
    ("...", "file"),
    ("-rf .ogg", "rf.ogg"),
    ("song.tar;rm -rf", "song.tarrmrf"),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


def test_safe_name_is_short_and_plain():
    name = safe_name("a" * 300 + "." + "b" * 40)
    assert len(name) <= 91 and re.fullmatch(r"[A-Za-z0-9_.-]+", name)


def test_take_copies_an_upload_under_a_safe_name(app):
    job = app.workspace.new_job("cover")
    taken: set[str] = set()
    first = app.workspace.take(upload(app, "my song (live).wav", vocal), job, "song", taken)
    second = app.workspace.take(upload(app, "my song (live).wav", vocal), job, "instrumental", taken)
    assert first == job / "my_song_live.wav" and second == job / "instrumental-my_song_live.wav"
    assert first.read_bytes() == second.read_bytes() and not [p for p in job.iterdir() if HIDDEN.search(p.name)]


def test_take_refuses_a_path_that_is_not_an_upload(app, tmp_path):
    outside = tmp_path / "secret.wav"
    vocal(outside)
    job = app.workspace.new_job("cover")
    for path in (outside, app.workspace.uploads / ".." / ".." / "secret.wav", "/etc/hostname"):
        with pytest.raises(UserInputError, match="not a file uploaded to this app"):
            app.workspace.take(path, job)
    link = app.workspace.uploads / "link.wav"
    link.symlink_to(outside)  # a link out of the uploads folder is not an upload either
    with pytest.raises(UserInputError, match="not a file uploaded"):
        app.workspace.take(link, job)


def test_take_refuses_an_upload_over_the_limit(app):
    big = upload(app, "big.wav", lambda p: p.write_bytes(b"\0" * 5_000_001))
    with pytest.raises(UserInputError, match="accepts 5 MB at most"):
        app.workspace.take(big, app.workspace.new_job("cover"))


def test_workdir_default_follows_singvc_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SINGVC_HOME", str(tmp_path / "h"))
    assert ui.default_workdir() == tmp_path / "h" / "ui"


def test_error_line_is_the_clis_one_line():
    assert error_line(UserInputError("bad\n  thing")) == "singvc: error: bad thing"
    line = error_line(RuntimeError("boom\nTraceback (most recent call last):\n  x"))
    assert line.startswith("singvc: internal error: RuntimeError: boom") and "\n" not in line
    assert "out of memory" in error_line(MemoryError())


def test_a_bad_control_value_names_the_control():
    with pytest.raises(UserInputError, match="'Timbre strength': strength must be a finite number between 0 and 1"):
        ui.cover_settings("fast", {"strength": 2.0})
    with pytest.raises(UserInputError, match="unknown preset"):
        ui.cover_settings("../../etc/x.toml", {})
    s = ui.cover_settings("fast", {"strength": 0.5, **ui.plan_values("transpose", -5, None)})
    assert (s.pitch_model, s.strength, s.transpose, s.preset) == ("tiny", 0.5, -5.0, "fast")
    with pytest.raises(UserInputError, match="target range"):
        ui.plan_values("target range", None, " ")


def test_every_setting_has_a_control_with_its_label_and_range():
    """The app's controls are the schema's settings: every cover setting is shown (up front or
    under Advanced) except the input mode's and a folder path; labels come from the schema."""
    shown = set(ui.MAIN_SETTINGS) | set(ui.ADVANCED_SETTINGS)
    cover = {n for n, s in SCHEMA.items() if s.scope == "cover"}
    assert shown | set(ui.HIDDEN_SETTINGS) == cover and not shown & set(ui.HIDDEN_SETTINGS)
    assert ui.PLAN_CHOICES[:2] == SCHEMA["plan_mode"].choices
    assert all(SCHEMA[n].label and "_" not in SCHEMA[n].label for n in shown)


def test_a_failed_job_is_one_line_and_leaves_nothing(app):
    song = upload(app, "notes.wav", lambda p: p.write_text("not audio"))
    result = app.run_cover(song=song, settings=FAST, daw=False)
    assert result.status == "failed" and result.message.startswith("singvc: error: ")
    assert "\n" not in result.message and "notes.wav" in result.message
    assert leftovers(app) == []


def test_a_bug_in_a_job_is_one_line_and_leaves_nothing(app, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("internal\nstate")

    monkeypatch.setattr(ui, "cover_file", broken)
    result = app.run_cover(song=upload(app, "v.wav", vocal), settings=FAST, daw=False)
    assert result.status == "failed" and result.message.startswith("singvc: internal error: KeyError")
    assert "\n" not in result.message and leftovers(app) == []


def test_jobs_run_one_at_a_time(app):
    running, most = [0], [0]
    lock = threading.Lock()

    def work(job):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return JobResult("done", "ok", job)

    threads = [threading.Thread(target=app.run_job, args=("t", (), work)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert app.cancel() == "no job is running"


def test_cover_then_another_voice_reuses_the_cache_and_cancel_leaves_nothing(app):
    song = upload(app, "lead vocal.wav", vocal)
    first = app.run_cover(song=song, voice_clip=upload(app, "voice a.wav", write_voice_clip), preset="fast",
                          settings=FAST, daw=False)
    assert first.status == "done", first.message
    out = first.folder / "out"
    assert {p.name for p in out.iterdir()} == set(first.report["outputs"])
    assert (out / "plan.png").read_bytes().startswith(b"\x89PNG")
    assert sf.info(str(first.files["mix.wav"])).duration == pytest.approx(2.0, abs=1e-3)
    assert first.report["inputs"]["song"].endswith("lead_vocal.wav")  # the sanitised copy was read
    assert first.report["cache_hits"] == {"pitch": False, "split": False} and first.report["app"]["voice_seconds"] > 0
    stages, _, _ = app.progress.snapshot()
    assert list(stages) == ["voice", "pitch", "split", "convert", "finish"] and set(stages.values()) == {1.0}

    second = app.run_cover(song=song, voice_clip=upload(app, "voice b.wav", write_voice_clip), preset="fast",
                           settings=FAST, daw=False)
    assert second.status == "done" and second.report["cache_hits"] == {"pitch": True, "split": True}

    # cancel from the progress callback, as the page's Cancel button does mid-job
    calls = []
    original = app.progress.__class__.__call__

    def cancel_on_convert(progress, event):
        original(progress, event)
        if event["stage"] == "convert" and not calls:
            calls.append(app.cancel())

    app.progress.__class__ = type("Cancelling", (ui.Progress,), {"__call__": cancel_on_convert})
    jobs_before = sorted(p.name for p in app.workspace.jobs.iterdir())
    third = app.run_cover(song=song, voice_clip=upload(app, "voice c.wav", write_voice_clip), preset="fast",
                          settings=FAST, daw=False)
    assert calls and calls[0].startswith("cancelling")
    assert third.status == "cancelled" and third.folder is None
    assert sorted(p.name for p in app.workspace.jobs.iterdir()) == jobs_before
    assert not [p for p in app.workspace.root.rglob("*") if HIDDEN.search(p.name)]


def test_feature_recipe_runs_as_shown(app, tmp_path):
    (tmp_path / "home" / "voices").mkdir(parents=True)
    table = [["time", "0:00-0:01", "original", "", "", "", "", ""],
             ["phrases", "1", "librispeech-198", "duet", -2, -0.3, -4, 0.3],
             ["", "", "", "", "", "", "", ""]]
    text = app.feature_recipe_text({"song": "my_song.wav"}, table, "fast", {"strength": 0.5}, {"crossfade_ms": 20.0})
    recipe = parse_recipe(text, "recipe.toml")
    assert recipe.kind == "feature" and recipe.get("input.song") == "my_song.wav"
    secs = recipe.get("feature.sections")
    assert secs[0] == {"time": "0:00-0:01", "voice": "original", "layer": "replace"}
    assert secs[1]["phrases"] == "1" and secs[1]["layer"] == "duet" and secs[1]["original_pan"] == 0.3
    assert recipe.get("voices")["librispeech-198"] == {"ref": "librispeech-198"}
    assert recipe.settings().strength == 0.5 and recipe.get("feature.crossfade_ms") == 20.0
    with pytest.raises(UserInputError, match=r"layer' must be one of replace, duet, double \(got 'echo'\)"):
        app.feature_recipe_text({"song": "s.wav"}, [["time", "0:00-0:01", "librispeech-198", "echo"]], None, {}, {})
    with pytest.raises(UserInputError, match="'by' must be time or phrases"):
        ui.section_rows([["bars", "1-2", "original"]])


def test_recipes_in_the_app_name_no_file(app):
    with pytest.raises(UserInputError, match="must be a saved voice"):
        ui.check_app_recipe(parse_recipe('[voice]\nref = "/etc/passwd"\n', "r"))
    with pytest.raises(UserInputError, match="does not open model folders"):
        ui.check_app_recipe(parse_recipe('[settings]\nseparator_repo = "/x"\n', "r"))
    ui.check_app_recipe(parse_recipe('[voice]\nref = "librispeech-198"\n', "r"))
    with pytest.raises(UserInputError, match="must be a saved voice"):
        app.run_batch("b", ["x"], '[voice]\nref = "clip.wav"\n')
    assert leftovers(app) == []


def test_voices_enroll_inspect_delete(app):
    for name in ("my voice", "../x", ""):
        with pytest.raises(UserInputError, match="bad voice name"):
            app.enroll(name, [upload(app, "c.wav", write_voice_clip)])
    done = app.enroll("alto", [upload(app, "clip one.wav", write_voice_clip)])
    assert done.status == "done", done.message
    assert "tessitura" in done.message and leftovers(app) == []
    rows = {r[0]: r for r in ui.voice_rows()}
    assert rows["alto"][1] == "yours" and rows["librispeech-198"][1] == "shipped"
    assert "tessitura high (P90)" in ui.voice_details("alto")
    with pytest.raises(UserInputError, match="exists"):
        app.enroll("alto", [upload(app, "c.wav", write_voice_clip)])
    with pytest.raises(UserInputError, match="ships with singvc"):
        App.delete_voice("librispeech-198")
    assert App.delete_voice("alto") == "deleted voice alto" and "alto" not in {r[0] for r in ui.voice_rows()}


def test_models_and_cache_views(app):
    rows = ui.model_rows()
    assert {r[0] for r in rows} >= {"htdemucs", "crepe_tiny"}
    assert all(r[4] for r in rows)
    assert "0 entries" in app.cache_text()
    with pytest.raises(UserInputError):
        app.prune_cache(-1)
    assert app.prune_cache(0).startswith("removed 0 entries")


def test_feature_job_runs_its_recipe_and_offers_it(app):
    song = upload(app, "duet song.wav", lambda p: vocal(p, 3.0))
    table = [["time", "0:00-0:01.5", "original"], ["time", "0:01.5-0:03", "librispeech-198", "double", -2, 0, -4, 0]]
    result = app.run_feature(None, song, None, table, "fast",
                             {"pitch_model": "tiny", "device": "cpu", "strength": 0.7}, {"crossfade_ms": 20.0})
    assert result.status == "done", result.message
    recipe = result.files["recipe.toml"]
    assert recipe.parent == result.folder and (result.folder / "duet_song.wav").is_file()
    text = recipe.read_text()
    assert 'vocals = "duet_song.wav"' in text and "[voices.librispeech-198]" in text
    report = result.report
    assert report["kind"] == "feature" and [s["voice"] for s in report["sections"]] == ["original", "librispeech-198"]
    assert report["recipe"]["text_sha256"] and (result.folder / "out" / "plan.png").is_file()
    assert report["settings"]["strength"] == 0.7 and report["settings"]["preset"] == "fast"


def test_batch_is_resumable(app):
    songs = [upload(app, f"song {i}.wav", vocal) for i in (1, 2)]
    recipe = ('preset = "fast"\n[voice]\nref = "librispeech-198"\n[settings]\nseparation = false\n'
              'device = "cpu"\n[output]\nstems = false\n')
    first = app.run_batch("my batch", songs, recipe)
    assert first.status == "done", first.message
    assert [r[2] for r in first.rows] == ["done", "done"] and first.message.startswith("2 songs: 2 done")
    assert {p.name for p in (app.workspace.batches / "my_batch" / "out" / "song_1").iterdir()} == {
        "mix.wav", "plan.png", "report.json"}
    again = app.run_batch("my batch", [upload(app, "song 1.wav", vocal), upload(app, "song 3.wav", vocal)], recipe)
    # every song of the batch runs again: 1 and 2 were done (skipped), 3 is new
    assert [(r[1], r[2]) for r in again.rows] == [("song_1.wav", "skipped"), ("song_2.wav", "skipped"),
                                                  ("song_3.wav", "done")], again.rows
    assert app.run_batch("other", [], recipe).message == "singvc: error: add one or more songs"
    import zipfile

    with zipfile.ZipFile(again.files["results.zip"]) as z:
        assert {"my_batch-results/song_3/mix.wav", "my_batch-results/song_1/report.json"} <= set(z.namelist())
    assert leftovers(app) == []


def test_serving_on_a_taken_port_is_one_line(tmp_path, monkeypatch, capsys):
    import socket

    from singvc.cli import main

    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[ui]')")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "g"))  # serve() sets both; restored after
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("SINGVC_HOME", str(tmp_path / "home"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port), "--workdir", str(tmp_path / "wd"),
                     "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"singvc: error: cannot serve on 127.0.0.1:{port} (address in use); choose another with --port N"
