"""Recipes (``singvc run``): the shipped recipes on synthetic audio, validation errors with line
numbers, a three-section vocal feature (right voice per section, no clicks) and a resumable batch."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from singvc.audio import load_audio
from singvc.cli import main
from singvc.errors import UserInputError
from singvc.config import key_line, key_lines
from singvc.recipe import apply_overrides, load_recipe, parse_recipe

from conftest import harmonic_tone, synth_song, vibrato_f0, write_voice_clip

RATE = 44100
RECIPES = Path(__file__).resolve().parent.parent / "recipes"
VRATE = 22050  # the feature test's vocal


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_separator_repo):
    root = tmp_path_factory.mktemp("recipes")
    song = root / "song.wav"
    sf.write(str(song), synth_song(2.0).T, RATE, subtype="FLOAT")
    voice = root / "voice.flac"
    write_voice_clip(voice)
    return {"root": root, "repo": tiny_separator_repo, "song": song, "voice": voice, "cache": root / "cache"}


def fast(files) -> list[str]:
    """--set options pointing a recipe at the tiny Demucs and crepe tiny."""
    return ["--set", "settings.separator_model=tiny", "--set", f"settings.separator_repo={files['repo']}",
            "--set", "settings.pitch_model=tiny", "--cache-dir", str(files["cache"]), "--quiet"]


# -- format ------------------------------------------------------------------------------------
def test_key_lines_maps_dotted_paths_to_lines():
    text = ('description = "x"\n'          # 1
            '[voice]\n'                    # 2
            'ref = "a.wav"  # c\n'         # 3
            '[voices."my voice"]\n'        # 4
            'strength = 0.5\n'             # 5
            '[[feature.sections]]\n'       # 6
            'time = "0:00-0:10"\n'         # 7
            '[[feature.sections]]\n'       # 8
            'voice = "original"\n'         # 9
            'double = { level_db = -3 }\n'  # 10
            'output.dir = "out"\n')        # 11
    lines = key_lines(text)
    assert lines["description"] == 1 and lines["voice.ref"] == 3 and lines["voices.my voice.strength"] == 5
    assert lines["feature.sections[1].time"] == 7 and lines["feature.sections[2].voice"] == 9
    assert lines["feature.sections[2]"] == 8 and lines["feature.sections[2].output.dir"] == 11
    assert key_line(text, "feature.sections[2].double.level_db") == 10  # inline table: its key's line
    assert key_line(text, "nothing.here") is None


def test_unknown_keys_and_wrong_types_name_key_and_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[input]\nsong = "a.wav"\n\n[voice]\nref = "x"\nstrenght = 0.5\n')
    with pytest.raises(UserInputError, match=r"bad\.toml:6: unknown key 'voice\.strenght'"):
        load_recipe(bad)
    bad.write_text('[voice]\nstrength = "high"\n')
    with pytest.raises(UserInputError, match=r"bad\.toml:2: 'voice\.strength' must be a number"):
        load_recipe(bad)
    bad.write_text('[voices.a]\nref = "x"\n[[feature.sections]]\ntime = "0:00-0:01"\nvoice = "a"\n'
                   '[[feature.sections]]\ntime = "0:01-0:02"\nvoice = "a"\npan = "left"\n')
    with pytest.raises(UserInputError, match=r"bad\.toml:9: 'feature\.sections\[2\]\.pan' must be a number"):
        load_recipe(bad)
    bad.write_text('[settings]\npitch_model = "huge"\n')
    with pytest.raises(UserInputError, match=r":2: 'settings\.pitch_model' must be one of full, tiny"):
        load_recipe(bad)
    bad.write_text('[[feature.sections]]\ntime = "0:00-0:01"\nvoice = "nobody"\n')
    with pytest.raises(UserInputError, match=r":3: section 1: unknown voice 'nobody'"):
        load_recipe(bad)
    with pytest.raises(UserInputError, match=r"--set voice\.strength=abc: 'voice\.strength' must be a number"):
        load_recipe(RECIPES / "cover.toml", ["voice.strength=abc"])
    with pytest.raises(UserInputError, match=r"--set voice\.warp=1: unknown key 'voice\.warp'"):
        load_recipe(RECIPES / "cover.toml", ["voice.warp=1"])


def test_set_overrides_types_and_paths(tmp_path):
    data = {"voice": {"ref": "x"}, "feature": {"sections": [{"voice": "a"}, {"voice": "b"}]}}
    applied = apply_overrides(data, ["voice.strength=0.5", "feature.sections[2].voice=original",
                                     "input.song=a.wav", "output.daw=true"], cwd=tmp_path)
    assert data["voice"]["strength"] == 0.5 and data["feature"]["sections"][1]["voice"] == "original"
    assert data["input"]["song"] == str(tmp_path / "a.wav") and data["output"]["daw"] is True
    assert "feature.sections[2].voice" in applied
    with pytest.raises(UserInputError, match="no element 3"):
        apply_overrides(data, ["feature.sections[3].voice=a"])
    recipe = parse_recipe('preset = "natural"\n[voice]\nref = "x"\n[settings]\npitch_model = "tiny"\n')
    s = recipe.settings()
    assert (s.strength, s.pitch_model, s.preset) == (0.6, "tiny", "natural")  # preset < [settings]
    assert parse_recipe('preset = "natural"\n[voice]\nstrength = 0.9\n').settings().strength == 0.9
    assert parse_recipe("", overrides=["voice.strength=0.2"]).sha256 != parse_recipe("").sha256


def test_shipped_recipes_and_presets_are_valid():
    from singvc.config import list_presets, load_preset

    assert {"quality", "fast", "natural", "strong"} <= set(list_presets())
    assert load_preset("natural")["strength"] == 0.6 and load_preset("strong")["strength"] == 1.0
    kinds = {name: load_recipe(RECIPES / f"{name}.toml").kind for name in ("cover", "feature", "daw-stems")}
    assert kinds == {"cover": "cover", "feature": "feature", "daw-stems": "cover"}
    for path in RECIPES.glob("*.toml"):
        assert load_recipe(path).get("description")


# -- shipped recipes, end to end ---------------------------------------------------------------
def test_cover_recipe(files, tmp_path):
    out = tmp_path / "cover"
    assert main(["run", str(RECIPES / "cover.toml"), "--set", f"input.song={files['song']}",
                 "--set", f"voice.ref={files['voice']}", "-o", str(out), *fast(files)]) == 0
    report = json.loads((out / "report.json").read_text())
    recipe = load_recipe(RECIPES / "cover.toml", [f"input.song={files['song']}", f"voice.ref={files['voice']}",
                                                  "settings.separator_model=tiny",
                                                  f"settings.separator_repo={files['repo']}",
                                                  "settings.pitch_model=tiny"])
    assert report["recipe"]["sha256"] == recipe.sha256 and report["recipe"]["kind"] == "cover"
    assert report["recipe"]["data"]["voice"]["ref"] == str(files["voice"])
    assert report["settings"]["preset"] == "quality" and report["settings"]["pitch_model"] == "tiny"
    assert {p.name for p in out.iterdir()} == set(report["outputs"])
    assert "vocals_converted.wav" in report["outputs"]


def test_daw_stems_recipe(files, tmp_path):
    out = tmp_path / "daw"
    assert main(["run", str(RECIPES / "daw-stems.toml"), "--set", f"input.song={files['song']}",
                 "--set", "output.stems=false", "-o", str(out), *fast(files)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["outputs"] == ["mix.wav", "plan.png", "report.json", "session"]
    assert (out / "session" / "session.json").is_file() and not (out / "vocals_converted.wav").exists()
    assert report["voice"]["name"] == "librispeech-198"  # the shipped profile named by the recipe


def test_feature_recipe_with_duet_on_a_song(files, tmp_path):
    """The shipped feature recipe as is (duet, pan) on a separated stereo song."""
    out = tmp_path / "feat"
    args = ["--set", f"input.song={files['song']}", "--set", "feature.sections[1].time=0:00-0:00.6",
            "--set", "feature.sections[2].time=0:00.6-0:01.2", "--set", "feature.sections[3].time=0:01.2-0:02"]
    assert main(["run", str(RECIPES / "feature.toml"), *args, "-o", str(out), *fast(files)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [s["voice"] for s in report["sections"]] == ["original", "guest", "second"]
    assert report["sections"][2]["layer"] == "duet" and report["sections"][2]["pan"] == -0.3
    mix, rate = load_audio(out / "mix.wav")
    assert rate == RATE and mix.shape == (2, 2 * RATE) and np.all(np.isfinite(mix))


# -- the three-section feature -----------------------------------------------------------------
def _jump_ratio(x: np.ndarray, boundary: int, rate: int) -> float:
    """Largest sample-to-sample step within ±25 ms of ``boundary`` over the largest step in the
    surrounding 40-250 ms on either side (a click shows as a ratio well above 1)."""
    d = np.abs(np.diff(x))
    near = d[boundary - int(0.025 * rate): boundary + int(0.025 * rate)].max()
    around = np.concatenate([d[boundary - int(0.25 * rate): boundary - int(0.04 * rate)],
                             d[boundary + int(0.04 * rate): boundary + int(0.25 * rate)]]).max()
    return float(near / around)


def test_three_section_feature_right_voice_and_no_clicks(files, tmp_path):
    seconds = 6.0
    n = int(seconds * VRATE)
    vocal = harmonic_tone(vibrato_f0(220, 5.5, 30, seconds, VRATE), seconds, VRATE, level=0.3)
    vocal[int(1.85 * VRATE): int(2.15 * VRATE)] = 0  # a pause near the first boundary, none near 4.0 s
    vocal_path = tmp_path / "vocal.wav"
    sf.write(str(vocal_path), vocal, VRATE, subtype="FLOAT")
    high = tmp_path / "high.wav"  # voice A: an octave up, bright
    sf.write(str(high), harmonic_tone(vibrato_f0(440, 5, 30, 2.5, VRATE), 2.5, VRATE, n_harmonics=16), VRATE)
    low = tmp_path / "low.wav"  # voice B: an octave down, dark
    sf.write(str(low), harmonic_tone(vibrato_f0(110, 5, 30, 2.5, VRATE), 2.5, VRATE, n_harmonics=3), VRATE)
    out = tmp_path / "feature"
    rc = main(["run", str(RECIPES / "feature.toml"), "-o", str(out),
               "--set", f"input.song={vocal_path}", "--set", "input.separation=false",
               "--set", f"voices.guest.ref={high}", "--set", f"voices.second.ref={low}",
               "--set", "voices.guest.strength=1.0", "--set", "voices.second.strength=1.0",
               "--set", "feature.sections[1].time=0:00-0:02.1", "--set", "feature.sections[2].time=0:02.1-0:04",
               "--set", "feature.sections[3].time=0:04-0:06", "--set", "feature.sections[3].layer=replace",
               *fast(files)])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    secs = report["sections"]
    assert [s["voice"] for s in secs] == ["original", "guest", "second"]
    assert [s["semitones"] for s in secs] == [0.0, 12.0, -12.0]
    assert secs[1]["snapped_to_pause"][0] and 1.85 < secs[1]["placed"][0] < 2.15  # moved into the pause
    assert not secs[1]["snapped_to_pause"][1] and secs[1]["placed"][1] == pytest.approx(4.0)  # cross-faded
    converted, rate = load_audio(out / "vocals_converted.wav")
    mix, _ = load_audio(out / "mix.wav")
    assert rate == VRATE and converted.shape == (1, n)
    # nothing went above full scale (the dsp converter once put a +10 dBFS spike at the 2.15 s
    # onset, which made every stem share a -10 dB headroom gain), and the original section is
    # untouched, away from its boundary's cross-fade
    assert report["headroom_gain_db"] == 0.0
    assert np.abs(converted[0, : int(1.8 * VRATE)] - vocal[: int(1.8 * VRATE)]).max() < 1e-3

    # right voice per section: speaker similarity (resemblyzer), with a spectral-centroid check
    ref_a, _ = load_audio(high)
    ref_b, _ = load_audio(low)
    parts = {"guest": converted[:, int(2.3 * VRATE): int(3.8 * VRATE)],
             "second": converted[:, int(4.2 * VRATE): int(5.9 * VRATE)]}
    try:
        from singvc.evaluate import cosine, embed, load_encoder

        encoder = load_encoder()
    except Exception:  # resemblyzer not installed
        encoder = None
    if encoder is not None:
        ea, eb = embed(encoder, ref_a, VRATE), embed(encoder, ref_b, VRATE)
        sims = {k: (cosine(embed(encoder, v, VRATE), ea), cosine(embed(encoder, v, VRATE), eb)) for k, v in parts.items()}
        # each section leans toward its own voice more than the other section does (synthetic tones
        # give resemblyzer little to go on, so the comparison is between sections, not absolute)
        lean = {k: a - b for k, (a, b) in sims.items()}
        assert lean["guest"] > lean["second"] + 0.1, sims
        assert sims["second"][1] > sims["second"][0], sims
        assert sims["second"][1] > sims["guest"][1], sims

    def centroid(x):
        spec = np.abs(np.fft.rfft(x[0] * np.hanning(x.shape[-1])))
        freqs = np.fft.rfftfreq(x.shape[-1], 1 / VRATE)
        return float((spec * freqs).sum() / spec.sum())

    orig = centroid(vocal[None, int(0.2 * VRATE): int(1.7 * VRATE)])
    c_guest, c_second = centroid(parts["guest"]), centroid(parts["second"])
    assert c_guest > 1.1 * orig and orig > 1.3 * c_second, (c_guest, orig, c_second)

    # no clicks at the boundaries, in the vocal and in the mix
    for boundary_s in (secs[1]["placed"][0], secs[1]["placed"][1]):
        b = int(round(boundary_s * VRATE))
        for signal in (converted[0], mix[0]):
            assert _jump_ratio(signal, b, VRATE) < 1.2, boundary_s


# -- batch -------------------------------------------------------------------------------------
def test_batch_with_a_corrupt_song_and_resume(files, tmp_path, capsys):
    songs = tmp_path / "songs"
    songs.mkdir()
    for i in range(5):
        if i == 2:
            (songs / "song3.wav").write_text("not audio\n" * 50)
        else:
            sf.write(str(songs / f"song{i + 1}.wav"), synth_song(1.0, seed=i).T, RATE, subtype="FLOAT")
    out = tmp_path / "batch"
    args = ["run", str(RECIPES / "cover.toml"), "--songs", str(songs), "-o", str(out), *fast(files)[:-1]]
    capsys.readouterr()
    assert main(args) == 1
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 5 and "FAILED" in progress[2] and "song3.wav" in progress[2]
    assert all("done in" in line for k, line in enumerate(progress) if k != 2)
    assert "4 done, 0 skipped (done before), 1 failed" in lines[-1]
    done = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert done == ["song1", "song2", "song4", "song5"]
    stamps = {d: (out / d / "report.json").stat().st_mtime_ns for d in done}

    assert main(args) == 1  # resume: nothing to do for the four, the corrupt one fails again
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert sum("skipped (already done)" in line for line in progress) == 4 and "FAILED" in progress[2]
    assert stamps == {d: (out / d / "report.json").stat().st_mtime_ns for d in done}

    # a changed recipe is not "done": the song is converted again
    listing = tmp_path / "list.txt"  # a list file instead of a folder
    listing.write_text("# one song a line\nsongs/song1.wav\n")
    assert main(["run", str(RECIPES / "cover.toml"), "--songs", str(listing), "-o", str(out), *fast(files),
                 "--set", "voice.strength=0.5"]) == 0
    assert (out / "song1" / "report.json").stat().st_mtime_ns != stamps["song1"]

