"""The settings schema: one declaration per setting, one precedence rule, messages that name the
setting and its source, and the CLI, presets, recipes and CoverSettings all derived from it."""
from __future__ import annotations

import dataclasses

import pytest

from singvc.cli import get_parser, main
from singvc.config import preset_layer
from singvc.converters import CONVERTERS, names
from singvc.errors import UserInputError
from singvc.recipe import parse_recipe
from singvc.settings import COVER_FIELDS, SCHEMA, CoverSettings, Layer, check, resolve, resolve_device


def test_cover_settings_fields_are_the_schema():
    fields = {f.name: f.default for f in dataclasses.fields(CoverSettings)}
    assert tuple(fields) == COVER_FIELDS
    assert fields == {name: SCHEMA[name].default for name in COVER_FIELDS}


def test_every_numeric_setting_has_a_finite_range_and_every_text_setting_choices_or_a_reader():
    for s in SCHEMA.values():
        if s.kind in (int, float):
            assert s.range is not None, s.name
        if s.kind is str and s.name not in ("separator_model", "separator_repo", "seedvc_dir", "preset"):  # names and folders
            assert s.choices or s.parse, s.name


def test_converter_choices_come_from_the_registry():
    assert SCHEMA["converter"].choices == names() == tuple(CONVERTERS)
    assert set(names()) >= {"dsp", "pitch", "none"}


@pytest.mark.parametrize("name,value,message", [
    ("strength", 2, "strength must be a finite number between 0 and 1 (got 2)"),
    ("strength", float("nan"), "strength must be a finite number"),
    ("pitch_stride", 1.5, "pitch_stride must be an integer"),
    ("converter", "rvc", "converter must be one of"),
    ("render", 3, "render must be a string (got 3)"),
    ("target_range", "C9-C3", "target_range range 'C9-C3' is empty"),
    ("separation", "no", "separation must be true or false"),
])
def test_check_names_the_setting_and_the_source(name, value, message):
    with pytest.raises(UserInputError) as info:
        check(name, value, "here")
    assert str(info.value).startswith(f"here: {message}")


def test_cover_settings_refuses_a_bad_value_from_python():
    with pytest.raises(UserInputError, match="strength must be a finite number between 0 and 1"):
        CoverSettings(strength=2)
    assert CoverSettings(strength=1).strength == 1.0 and isinstance(CoverSettings(strength=1).strength, float)


def test_resolve_applies_layers_in_order_and_names_the_source():
    low = Layer({"strength": 0.2, "render": "waveform"}, lambda k: f"low.toml:{k}")
    high = Layer({"strength": 0.7}, lambda k: f"--{k}")
    s = resolve(low, high)
    assert (s.strength, s.render, s.converter) == (0.7, "waveform", "dsp")
    with pytest.raises(UserInputError, match=r"^--strength: strength must be"):
        resolve(low, Layer({"strength": 9}, lambda k: f"--{k}"))
    with pytest.raises(UserInputError, match=r"^x:1: unknown setting 'strenght'"):
        resolve(Layer({"strenght": 1}, lambda k: "x:1"))


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(UserInputError):
        resolve_device("tpu")


def test_preset_error_names_file_and_line(tmp_path):
    bad = tmp_path / "strong.toml"
    bad.write_text('description = "x"\n[settings]\nconverter = "dsp"\nstrength = 2\n')
    with pytest.raises(UserInputError, match=r"strong\.toml:4: strength must be a finite number between 0 and 1"):
        preset_layer(bad)


def test_recipe_settings_error_names_file_and_line(tmp_path):
    text = '[input]\nsong = "a.wav"\n\n[settings]\npitch_model = "huge"\n'
    with pytest.raises(UserInputError, match=r"^song\.toml:5: 'settings\.pitch_model' must be one of full, tiny"):
        parse_recipe(text, "song.toml", tmp_path)


def test_recipe_precedence_preset_settings_voice_device(tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nstrength = 0.3\nrender = "waveform"\npitch_model = "tiny"\n')
    text = (f'preset = "{preset}"\n[input]\nsong = "a.wav"\nseparation = false\n[voice]\nstrength = 0.6\n'
            '[settings]\nstrength = 0.5\npitch_stride = 1\n')
    s = parse_recipe(text, "r.toml", tmp_path).settings(device="cpu")
    assert (s.strength, s.render, s.pitch_model, s.pitch_stride, s.separation, s.device) == \
        (0.6, "waveform", "tiny", 1, False, "cpu")
    s = parse_recipe(text, "r.toml", tmp_path, overrides=["voice.strength=0.9"]).settings()
    assert s.strength == 0.9


def _flags(command: str) -> set[str]:
    parser = get_parser()
    sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001
    if command == "voice":
        sub = sub._subparsers._group_actions[0].choices["enroll"]  # noqa: SLF001
    return {o for a in sub._actions for o in a.option_strings}  # noqa: SLF001


@pytest.mark.parametrize("command", ["cover", "separate", "stems", "pitch", "plan", "voice enroll", "eval", "run"])
def test_cli_flags_are_the_schemas(command):
    flags = _flags(command.split()[0])
    expected = {s.flag for s in SCHEMA.values() if s.flag and command in s.commands}
    assert expected and expected <= flags


def test_cli_flag_and_preset_precedence(tmp_path, capsys, monkeypatch):
    """A preset sets defaults; a flag given explicitly wins; a bad preset value fails with its file and line."""
    import singvc.cli as cli

    seen = {}

    def fake_cover_file(song, out, voice_path=None, engine=None, **kw):
        seen["settings"] = engine.settings
        raise UserInputError("stop here")

    monkeypatch.setattr(cli, "cover_file", fake_cover_file)
    preset = tmp_path / "p.toml"
    preset.write_text('[settings]\nstrength = 0.25\nrender = "waveform"\n')
    song = tmp_path / "s.wav"
    song.write_bytes(b"")
    assert main(["cover", str(song), "--preset", str(preset), "--strength", "0.5", "--no-cache",
                 "--device", "cpu", "-o", str(tmp_path / "o")]) == 2
    assert (seen["settings"].strength, seen["settings"].render, seen["settings"].preset) == (0.5, "waveform", str(preset))
    preset.write_text('[settings]\nrender = "waveform"\nstrength = 2\n')
    capsys.readouterr()
    assert main(["cover", str(song), "--preset", str(preset), "--no-cache", "-o", str(tmp_path / "o")]) == 2
    assert "p.toml:3: strength must be a finite number between 0 and 1 (got 2)" in capsys.readouterr().err


def test_cli_flag_error_is_one_line(capsys):
    assert main(["cover", "x.wav", "--strength", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["singvc: error: argument --strength: must be a finite number between 0 and 1 (got 2); "
                   "see 'singvc cover --help'"]
    assert main(["cover", "x.wav", "--converter", "rvc"]) == 2
    assert "must be one of" in capsys.readouterr().err
