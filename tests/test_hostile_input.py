"""Hostile input is refused when it is read, before any audio work: NaN, infinities, absurd numbers
and strings where numbers belong in voice profiles, recipes, presets and flags (exit 2, one line
naming the field, nothing written); argparse errors are one line; a truncated WAV is read with a
warning; a song name with line breaks keeps the .rpp valid."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from singvc.cli import main
from singvc.errors import SingvcWarning, UserInputError

from conftest import harmonic_tone, vibrato_f0

RATE = 22050


@pytest.fixture()
def song(tmp_path):
    """A 1 s synthetic vocal: enough for a real run, so a check that came too late would show."""
    path = tmp_path / "vocal.wav"
    sf.write(str(path), harmonic_tone(vibrato_f0(220, 5, 30, 1.0, RATE), 1.0, RATE), RATE, subtype="FLOAT")
    return path


def refused(rc: int, err: str, *names: str) -> None:
    """Exit 2, one line starting 'singvc: error:', naming every one of ``names``."""
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("singvc: error:") and "Traceback" not in err
    for name in names:
        assert name in err, (name, err)


def nothing_written(root, out) -> None:
    assert not out.exists()
    assert not [p for p in root.iterdir() if p.name.startswith(f".{out.name}")]


FAST = ["--pitch-model", "tiny", "--no-cache", "--quiet"]


# -- CLI flags: checked when the command line is read ---------------------------------------------
@pytest.mark.parametrize("flags, names", [
    (["--strength", "2"], ["--strength", "between 0 and 1"]),
    (["--strength", "nan"], ["--strength", "finite"]),
    (["--strength", "abc"], ["--strength", "must be a number"]),
    (["--transpose", "-40"], ["--transpose", "-36 and 36"]),
    (["--transpose", "1e9"], ["--transpose"]),
    (["--transpose", "inf"], ["--transpose"]),
    (["--pitch-hop", "-1"], ["--pitch-hop", "0.001"]),
    (["--pitch-hop", "nan"], ["--pitch-hop"]),
    (["--target-range", "5-1e9"], ["--target-range"]),
    (["--target-range", "C3-C12"], ["--target-range", "C0-C9"]),
    (["--converter", "x"], ["--converter", "must be one of", "see 'singvc cover --help'"]),
    (["--pitch-stride", "9"], ["--pitch-stride"]),
    (["--bogus-flag"], ["--bogus-flag", "see 'singvc cover --help'"]),
    (["-o", ""], ["--output", "empty"]),
])
def test_bad_flags_are_one_line_exit_2_before_any_work(song, tmp_path, capsys, flags, names):
    out = tmp_path / "out"
    argv = ["cover", "--no-separation", str(song), "--converter", "none", *FAST, "-o", str(out), *flags]
    rc = main(argv)
    refused(rc, capsys.readouterr().err, *names)
    nothing_written(tmp_path, out)


@pytest.mark.parametrize("argv, names", [
    ([], ["COMMAND", "see 'singvc --help'"]),
    (["sing"], ["invalid choice", "see 'singvc --help'"]),
    (["plan", "x.npz", "--transpose", "40"], ["--transpose", "see 'singvc plan --help'"]),
    (["eval", "--source", "a.wav"], ["required", "see 'singvc eval --help'"]),
    (["cache", "prune", "--max-gb", "inf"], ["--max-gb"]),
    (["cache", "prune", "--max-gb", "nan"], ["--max-gb"]),
    (["voice", "show", "x", "--extra"], ["--extra", "see 'singvc voice show --help'"]),
])
def test_argparse_errors_are_one_line_with_a_pointer_to_help(capsys, argv, names):
    refused(main(argv), capsys.readouterr().err, *names)


def test_help_still_prints_the_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cover", "--help"])
    assert exc.value.code == 0 and "usage: singvc cover" in capsys.readouterr().out


def test_flag_ranges_are_the_settings_table():
    # one range per setting: the planner, the converters and the flags read RANGES
    from singvc.converters.base import MAX_SEMITONES as converter_max
    from singvc.plan import MAX_SEMITONES as plan_max
    from singvc.settings import RANGES

    assert plan_max == converter_max == RANGES["transpose"][1] == -RANGES["transpose"][0] == 36


def test_planner_refuses_a_transpose_outside_its_range():
    from singvc.errors import PlanError
    from singvc.pitch import PitchTrack
    from singvc.plan import plan_transposition

    n = 100
    track = PitchTrack(times=np.arange(n) * 0.01, f0=np.full(n, 220.0), periodicity=np.ones(n),
                       voiced=np.ones(n, bool), hop=0.01)
    assert plan_transposition(track, transpose=-36).semitones == -36
    for bad in (-40, 37, float("nan")):
        with pytest.raises(PlanError, match="36"):
            plan_transposition(track, transpose=bad)


# -- settings, whichever way they come ------------------------------------------------------------
@pytest.mark.parametrize("fields, name", [
    ({"strength": 2}, "strength"), ({"strength": "0.5"}, "strength"), ({"ceiling_dbtp": float("nan")}, "ceiling_dbtp"),
    ({"ceiling_dbtp": 3.0}, "ceiling_dbtp"), ({"pitch_hop": -1}, "pitch_hop"), ({"pitch_stride": 2.5}, "pitch_stride"),
    ({"transpose": 1e9}, "transpose"), ({"transpose": float("-inf")}, "transpose"),
    ({"target_range": "C3-C12"}, "C3-C12"),
])
def test_cover_settings_refuse_out_of_range_values(fields, name):
    from singvc import CoverSettings

    with pytest.raises(UserInputError, match=name):
        CoverSettings(**fields)


def test_every_numeric_setting_has_a_range():
    from singvc.recipe import schema
    from singvc.settings import RANGES

    numeric = set()

    def walk(spec):
        for key, kind in spec.items():
            if isinstance(kind, dict):
                walk(kind)
            elif isinstance(kind, list):
                walk(kind[0])
            elif hasattr(kind, "schema"):
                walk(kind.schema)
            elif kind in (int, float):
                numeric.add(key)
    walk(schema())
    assert numeric and numeric <= set(RANGES), numeric - set(RANGES)


# -- presets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, names", [
    ("ceiling_dbtp = nan", ["ceiling_dbtp", "finite", "bad.toml:3:"]),
    ("ceiling_dbtp = -inf", ["ceiling_dbtp"]),
    ("strength = 2", ["strength", "between 0 and 1"]),
    ('strength = "0.5"', ["strength", "a number"]),
    ('transpose = "up"', ["transpose", "a number"]),
    ("transpose = 1e9", ["transpose"]),
    ("pitch_hop = -1", ["pitch_hop"]),
    ("pitch_stride = 0", ["pitch_stride"]),
    ('target_range = "C3-C12"', ["target_range", "C0-C9"]),
])
def test_bad_presets_fail_at_load(song, tmp_path, capsys, line, names):
    preset = tmp_path / "bad.toml"
    preset.write_text(f'description = "x"\n[settings]\n{line}\n')
    out = tmp_path / "out"
    rc = main(["cover", "--no-separation", str(song), "--converter", "none", *FAST, "-o", str(out),
               "--preset", str(preset)])
    refused(rc, capsys.readouterr().err, "bad.toml", *names)
    nothing_written(tmp_path, out)


def test_shipped_presets_pass_the_checks():
    from singvc.config import list_presets, load_preset

    for name in list_presets():
        load_preset(name)


# -- recipes and --set --------------------------------------------------------------------------------
RECIPE = """\
[input]
song = "{song}"
separation = false

[voice]
ref = "librispeech-198"

[settings]
pitch_model = "tiny"
converter = "none"

[output]
dir = "out"
"""

FEATURE = """\
[input]
song = "{song}"
separation = false

[voices.alice]
ref = "librispeech-198"

[settings]
pitch_model = "tiny"
converter = "none"

[feature]
min_pause = 0.12

[[feature.sections]]
time = "0:00-0:01"
voice = "alice"

[output]
dir = "out"
"""


@pytest.mark.parametrize("table, line, names", [
    ("settings", "ceiling_dbtp = nan", ["settings.ceiling_dbtp", "finite", "recipe.toml:"]),
    ("settings", "pitch_hop = -1", ["settings.pitch_hop"]),
    ("settings", 'strength = "strong"', ["settings.strength", "a number"]),
    ("voice", "strength = 2", ["voice.strength", "between 0 and 1"]),
    ("voice", "transpose = 1e9", ["voice.transpose", "-36 and 36"]),
    ("voice", "transpose = -40", ["voice.transpose"]),
    ("voice", 'target_range = "C3-C12"', ["voice.target_range", "C0-C9"]),
    ("section", "level_db = 1000", ["feature.sections[1].level_db"]),
    ("section", "pan = inf", ["feature.sections[1].pan", "finite"]),
    ("section", "original_level_db = nan", ["feature.sections[1].original_level_db"]),
    ("section", 'level_db = "loud"', ["feature.sections[1].level_db", "a number"]),
    ("section", "transpose = 99", ["feature.sections[1].transpose"]),
    ("feature", 'crossfade_ms = "30"', ["feature.crossfade_ms", "a number"]),
    ("feature", "snap_seconds = -inf", ["feature.snap_seconds"]),
    ("voices.alice", "strength = nan", ["voices.alice.strength"]),
])
def test_bad_recipes_fail_at_load(song, tmp_path, capsys, table, line, names):
    text = (FEATURE if table in ("section", "feature", "voices.alice") else RECIPE).format(song=song)
    anchor = {"settings": "[settings]\n", "voice": "[voice]\n", "voices.alice": "[voices.alice]\n",
              "feature": "[feature]\n", "section": 'voice = "alice"\n'}[table]
    text = text.replace(anchor, anchor + line + "\n", 1)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    rc = main(["run", str(recipe), "--quiet", "--no-cache"])
    refused(rc, capsys.readouterr().err, *names)
    nothing_written(tmp_path, tmp_path / "out")


def test_the_recipe_template_runs(song, tmp_path):
    # the recipes above fail only for the bad line
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(song=song))
    assert main(["run", str(recipe), "--quiet", "--no-cache"]) == 0
    assert (tmp_path / "out" / "mix.wav").is_file()


@pytest.mark.parametrize("override, names", [
    ("output.dir=", ["output.dir", "empty"]),
    ("output.dir=  ", ["output.dir", "empty"]),
    ("input.song=", ["input.song", "empty"]),
    ("voice.strength=2", ["voice.strength", "between 0 and 1"]),
    ("settings.ceiling_dbtp=nan", ["settings.ceiling_dbtp", "finite"]),
    ("settings.ceiling_dbtp=+inf", ["settings.ceiling_dbtp"]),
    ("voice.transpose=-40", ["voice.transpose"]),
    ("settings.pitch_hop=loud", ["settings.pitch_hop", "a number"]),
])
def test_bad_overrides_fail_at_load(song, tmp_path, capsys, monkeypatch, override, names):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(song=song))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    rc = main(["run", str(recipe), "--quiet", "--no-cache", "--set", override])
    refused(rc, capsys.readouterr().err, "--set", *names)
    assert list(work.iterdir()) == []  # an empty output.dir never means the working directory
    nothing_written(tmp_path, tmp_path / "out")


def test_empty_output_dir_in_a_recipe_file_is_refused(song, tmp_path, capsys):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(song=song).replace('dir = "out"', 'dir = ""'))
    refused(main(["run", str(recipe), "--quiet", "--no-cache"]), capsys.readouterr().err, "output.dir", "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.toml", "vocal.wav"]


# -- voice profiles ---------------------------------------------------------------------------------
def shipped_profile() -> dict:
    from singvc.voice import list_profiles

    return json.loads(list_profiles()["librispeech-198"].read_text())


def _set(path: str, value):
    def change(data):
        node = data
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


PROFILE_CASES = {
    "NaN register median": (_set("register.median.midi", float("nan")), "register.median.midi"),
    "inf register high": (_set("register.high.midi", float("inf")), "register.high.midi"),
    "register above singing": (_set("register.high.midi", 130.0), "register.high.midi"),
    "register as a string": (_set("register.low.midi", "34"), "register.low.midi"),
    "register out of order": (_set("register.p10", {"note": "A#4", "midi": 70.0}), "ordered"),
    "register Hz disagrees": (_set("register.median.hz", 900.0), "register.median.hz"),
    "register not a table": (_set("register", [1, 2]), "register"),
    "NaN mean envelope": (_set("mean_shape_db.5", float("nan")), "mean_shape_db[5]"),
    "absurd mean envelope": (_set("mean_shape_db.0", 1e6), "mean_shape_db[0]"),
    "short mean envelope": (_set("mean_shape_db", [0.0] * 10), "mean_shape_db"),
    "inf class envelope": (_set("class_shapes_db.2.7", float("-inf")), "class_shapes_db[2][7]"),
    "string in class envelope": (_set("class_shapes_db.0.0", "x"), "class_shapes_db[0][0]"),
    "ragged classes": (_set("class_shapes_db.1", [0.0] * 3), "class_shapes_db[1]"),
    "NaN aperiodicity": (_set("aperiodicity_db.0", float("nan")), "aperiodicity_db[0]"),
    "positive aperiodicity": (_set("aperiodicity_db.0", 40.0), "aperiodicity_db[0]"),
    "negative weight": (_set("class_weights.0", -0.5), "class_weights[0]"),
    "weights not adding up": (_set("class_weights", [0.5] * 8), "class_weights"),
    "band limit string": (_set("band_limit_hz", "7600"), "band_limit_hz"),
    "band limit NaN": (_set("band_limit_hz", float("nan")), "band_limit_hz"),
    "loudness 1000": (_set("loudness_lufs", 1000), "loudness_lufs"),
    "voiced seconds inf": (_set("voiced_seconds", float("inf")), "voiced_seconds"),
    "grid of strings": (_set("grid_hz", ["a"] * 60), "grid_hz[0]"),
    "name not a string": (_set("name", 3), "name"),
}


@pytest.mark.parametrize("case", list(PROFILE_CASES))
def test_bad_profiles_are_refused_naming_the_field(tmp_path, case):
    from singvc.voice import VoiceProfile

    change, name = PROFILE_CASES[case]
    data = shipped_profile()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # NaN and Infinity as Python's json writes them
    with pytest.raises(UserInputError, match=r"bad\.json: .*" + name.replace("[", r"\[").replace("]", r"\]")):
        VoiceProfile.load(path)


def test_shipped_profiles_pass_the_checks():
    from singvc.voice import list_profiles, load_profile

    assert list_profiles()
    for name in list_profiles():
        load_profile(name)


def test_a_profile_singvc_would_refuse_is_never_saved(tmp_path):
    from singvc.voice import VoiceProfile

    profile = VoiceProfile.from_dict(shipped_profile())
    profile.mean_shape_db[0] = float("nan")
    with pytest.raises(UserInputError, match="mean_shape_db"):
        profile.save(tmp_path / "p.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["NaN register median", "inf class envelope", "band limit string"])
def test_cover_with_a_bad_profile_is_exit_2_and_writes_nothing(song, tmp_path, capsys, case):
    change, name = PROFILE_CASES[case]
    data = shipped_profile()
    change(data)
    voice = tmp_path / "bad.json"
    voice.write_text(json.dumps(data))
    out = tmp_path / "out"
    rc = main(["cover", "--no-separation", str(song), "--voice", str(voice), *FAST, "-o", str(out)])
    refused(rc, capsys.readouterr().err, "bad.json", name)
    nothing_written(tmp_path, out)


def test_recipe_with_a_bad_profile_is_exit_2_and_writes_nothing(song, tmp_path, capsys):
    data = shipped_profile()
    data["register"]["median"]["midi"] = float("nan")
    (tmp_path / "bad.json").write_text(json.dumps(data))
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE.format(song=song).replace('ref = "librispeech-198"', 'ref = "bad.json"'))
    refused(main(["run", str(recipe), "--quiet", "--no-cache"]), capsys.readouterr().err, "register.median.midi")
    nothing_written(tmp_path, tmp_path / "out")


# -- truncated audio files ----------------------------------------------------------------------------
def truncated(tmp_path, fmt: str, subtype: str, seconds: float = 2.0):
    suffix = {"WAV": "wav", "AIFF": "aiff", "RF64": "wav"}[fmt]
    path = tmp_path / f"cut.{suffix}"
    x = harmonic_tone(220.0, seconds, RATE)
    sf.write(str(path), np.stack([x, x]).T, RATE, format=fmt, subtype=subtype)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    return path


@pytest.mark.parametrize("fmt, subtype", [("WAV", "PCM_24"), ("WAV", "FLOAT"), ("AIFF", "PCM_16"),
                                          ("RF64", "PCM_16")])
def test_a_truncated_file_is_read_with_one_warning(tmp_path, fmt, subtype):
    from singvc.audio import load_audio, load_audio_to_disk

    path = truncated(tmp_path, fmt, subtype)
    for load in (lambda: load_audio(path), lambda: load_audio_to_disk(path, tmp_path / "x.npy")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            audio, rate = load()
        mine = [w for w in caught if issubclass(w.category, SingvcWarning)]
        assert len(mine) == 1, [str(w.message) for w in caught]
        text = str(mine[0].message)
        assert str(path) in text and "truncated" in text and "\n" not in text
        missing = 2.0 - audio.shape[-1] / rate
        assert f"{missing:.2f} s missing" in text
        assert 0.9 < missing < 1.1


def test_a_complete_file_gives_no_warning(tmp_path):
    from singvc.audio import declared_frames, load_audio, load_audio_to_disk

    for fmt, subtype in (("WAV", "PCM_16"), ("WAV", "FLOAT"), ("AIFF", "PCM_24"), ("FLAC", "PCM_16")):
        path = tmp_path / f"full.{fmt.lower()}"
        sf.write(str(path), harmonic_tone(220.0, 0.5, RATE), RATE, format=fmt, subtype=subtype)
        assert declared_frames(path) in (None if fmt == "FLAC" else int(0.5 * RATE), None)
        with warnings.catch_warnings():
            warnings.simplefilter("error", SingvcWarning)
            load_audio(path)
            load_audio_to_disk(path, tmp_path / "x.npy")


def test_cli_prints_the_truncation_warning_as_one_line(tmp_path, capsys):
    path = truncated(tmp_path, "WAV", "PCM_16")
    rc = main(["pitch", str(path), "-o", str(tmp_path / "cut.npz"), *FAST])
    err = capsys.readouterr().err
    assert rc == 0
    lines = [line for line in err.splitlines() if "truncated" in line]
    assert len(lines) == 1 and lines[0].startswith("singvc: warning:") and "s missing" in lines[0]


# -- song names in the REAPER project ----------------------------------------------------------------
def test_line_breaks_in_a_song_name_keep_the_rpp_valid():
    from singvc.session import Session, Stem, read_reaper_tracks, reaper_project

    title = "My\nSong\r\n>\x00\tx\u2028y (singvc cover)"
    session = Session(stems=[Stem("vocals", "Vocal\n(converted)", np.zeros((2, 10), np.float32))],
                      sample_rate=RATE, tempo_bpm=120.0, title=title, name=title)
    info = [{"track": "Vocal\n(converted)", "role": "vocals", "muted": False, "file": "01_vocals.wav", "channels": 2}]
    text = reaper_project(session, info, [], 1.0)
    lines = text.splitlines()
    start = lines.index("  <NOTES 0 2")
    end = lines.index("  >", start)
    notes = lines[start + 1:end]
    assert len(notes) == 1 and notes[0].startswith("    |")
    assert "My Song" in notes[0] and "\x00" not in text
    assert read_reaper_tracks(text) == [{"name": "Vocal (converted)", "muted": False, "source": "WAVE",
                                         "file": "01_vocals.wav"}]
    # every line of the project is a tag, an attribute line or a notes line
    assert all(line.strip().split(" ")[0].isupper() or line.strip()[0] in "<>|" for line in lines)
