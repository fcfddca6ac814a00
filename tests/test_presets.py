import pytest

from singvc.cli import main
from singvc.config import list_presets, load_preset
from singvc.errors import UserInputError


def test_shipped_presets_load():
    assert {"quality", "fast"} <= set(list_presets())
    assert load_preset("fast")["pitch_model"] == "tiny"
    assert load_preset("quality")["pitch_model"] == "full"


def test_bad_presets(tmp_path):
    with pytest.raises(UserInputError, match="unknown preset"):
        load_preset("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('[settings]\npitch_model = 3\n')
    with pytest.raises(UserInputError, match="pitch_model"):
        load_preset(bad)
    bad.write_text('[settings]\nwarp = 1.0\n')
    with pytest.raises(UserInputError, match="warp"):
        load_preset(bad)


def test_preset_sets_defaults_and_flags_win(tmp_path, capsys, monkeypatch):
    seen = {}

    def fake_track(self, audio, sample_rate):
        seen["pitch_model"] = self.settings.pitch_model
        seen["preset"] = self.settings.preset
        raise UserInputError("stop here")

    from singvc import Singvc

    monkeypatch.setattr(Singvc, "track", fake_track)
    import numpy as np
    import soundfile as sf

    song = tmp_path / "v.wav"
    sf.write(str(song), np.zeros(44100, np.float32) + 0.1, 44100)
    main(["pitch", str(song), "--preset", "fast", "--quiet"])
    assert seen == {"pitch_model": "tiny", "preset": "fast"}
    main(["pitch", str(song), "--preset", "fast", "--pitch-model", "full", "--quiet"])
    assert seen["pitch_model"] == "full"
    assert main(["pitch", str(song), "--preset", "nope", "--quiet"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_preset_values_outside_their_choices_fail_at_load(tmp_path):
    # checked against the recipes' CHOICES when the preset is read, not when the stage runs
    from singvc.errors import UserInputError

    bad = tmp_path / "bad.toml"
    bad.write_text('[settings]\nrender = "psola"\n')
    with pytest.raises(UserInputError, match="bad.toml:2: render must be one of world, waveform"):
        load_preset(bad)
    bad.write_text('[settings]\npitch_model = "huge"\n')
    with pytest.raises(UserInputError, match="bad.toml:2: pitch_model must be one of full, tiny"):
        load_preset(bad)
