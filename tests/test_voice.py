"""Voice profiles and evaluation figures on synthetic signals (no downloads)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from singvc import evaluate as ev
from singvc.errors import InvalidReferenceError, UserInputError
from singvc.pitch import PitchTrack
from singvc.voice import (
    GRID_HZ,
    PROFILE_VERSION,
    VoiceProfile,
    analyse_voice,
    is_profile_ref,
    list_profiles,
    load_profile,
)

RATE = 16_000
HOP = 0.01


def vowel(seconds: float, f0: float, formants=(700.0, 1200.0, 2600.0), scale: float = 1.0, rate: int = RATE,
          vib_cents: float = 0.0, vib_hz: float = 5.5):
    """A harmonic tone through fixed resonances (scaled by ``scale``) and its exact pitch track."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f = f0 * 2.0 ** (vib_cents / 1200.0 * np.sin(2 * np.pi * vib_hz * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = np.zeros(n)
    for h in range(1, int(rate / 2 / f0)):
        fh = h * f
        amp = sum(np.exp(-(((fh - scale * fm) / (90.0 * scale)) ** 2)) for fm in formants) + 0.02
        x += np.where(fh < rate / 2 - 200, amp / h**0.5, 0.0) * np.sin(h * phase)
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)[None]
    times = np.arange(int(seconds / HOP) + 1) * HOP
    ft = f0 * 2.0 ** (vib_cents / 1200.0 * np.sin(2 * np.pi * vib_hz * times))
    track = PitchTrack(times=times, f0=ft, periodicity=np.ones_like(times), voiced=np.ones(len(times), bool), hop=HOP)
    return x, track


@pytest.fixture(scope="module")
def profile():
    x, track = vowel(3.5, 220.0)
    return analyse_voice([(x, RATE)], [track], "synth", clip_names=["synth.wav"])


def test_profile_register_and_fields(profile):
    assert profile.version == PROFILE_VERSION
    assert profile.register["median"]["midi"] == pytest.approx(57.0, abs=0.05)  # A3 = 220 Hz
    assert profile.register["median"]["note"] == "A3"
    assert len(profile.mean_shape_db) == len(GRID_HZ)
    assert len(profile.class_shapes_db) == len(profile.class_weights) > 0
    assert sum(profile.class_weights) == pytest.approx(1.0, abs=1e-3)
    assert profile.voiced_seconds == pytest.approx(3.5, abs=0.05) and not profile.warnings
    assert profile.to_register().median == pytest.approx(57.0, abs=0.05)
    # the envelope peaks near the first resonance
    peak = GRID_HZ[int(np.argmax(profile.mean_shape_db))]
    assert 550 < peak < 850


def test_profile_json_round_trip_and_version_check(profile, tmp_path):
    path = profile.save(tmp_path / "synth.json")
    data = json.loads(path.read_text())
    assert data["version"] == PROFILE_VERSION and data["name"] == "synth"
    assert VoiceProfile.load(path) == profile
    data["version"] = PROFILE_VERSION + 1
    (tmp_path / "future.json").write_text(json.dumps(data))
    with pytest.raises(UserInputError, match="version"):
        VoiceProfile.load(tmp_path / "future.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(UserInputError, match="not a singvc voice profile"):
        VoiceProfile.load(tmp_path / "bad.json")


def test_profile_lookup_by_name(profile, tmp_path, monkeypatch):
    monkeypatch.setenv("SINGVC_HOME", str(tmp_path))
    profile.save(tmp_path / "voices" / "alice.json")
    assert "alice" in list_profiles()
    assert is_profile_ref("alice") and is_profile_ref(tmp_path / "voices" / "alice.json")
    assert load_profile("alice").name == "synth"
    with pytest.raises(UserInputError, match="no voice profile 'bob'"):
        load_profile("bob")


def test_short_reference_warns_and_unvoiced_fails():
    x, track = vowel(1.5, 300.0)
    p = analyse_voice([(x, RATE)], [track], "short")
    assert p.warnings and "recommended" in p.warnings[0]
    silent = PitchTrack(times=track.times, f0=track.f0, periodicity=track.periodicity,
                        voiced=np.zeros(len(track), bool), hop=HOP)
    with pytest.raises(InvalidReferenceError):
        analyse_voice([(x, RATE)], [silent], "none")


def test_several_clips_pool_their_frames():
    a, ta = vowel(2.0, 220.0)
    b, tb = vowel(2.0, 440.0)
    p = analyse_voice([(a, RATE), (b, RATE)], [ta, tb], "two")
    assert p.voiced_seconds == pytest.approx(4.0, abs=0.05)
    assert 57.0 <= p.register["median"]["midi"] <= 69.0


# -- evaluation figures -------------------------------------------------------------------------

def test_toward_formula():
    assert ev.toward(0.8, 0.5, 0.8) == pytest.approx(1.0)
    assert ev.toward(0.5, 0.5, 0.8) == pytest.approx(0.0)
    assert ev.toward(0.4, 0.5, 0.7) == pytest.approx(-0.5)


def test_contour_vibrato_and_voicing_figures():
    _, src = vowel(2.0, 220.0, vib_cents=50.0)
    _, out = vowel(2.0, 440.0, vib_cents=50.0)
    err = ev.contour_error(src, out, 12.0)
    assert err["median_cents"] < 0.5 and err["frames"] == len(src)
    vib = ev.vibrato(src, out)
    assert vib["rate_source_hz"] == pytest.approx(5.5, abs=0.3)
    assert vib["extent_source_cents"] == pytest.approx(50.0, rel=0.15)
    assert vib["extent_ratio"] == pytest.approx(1.0, abs=0.02)
    _, half = vowel(2.0, 440.0, vib_cents=25.0)
    assert ev.vibrato(src, half)["extent_ratio"] == pytest.approx(0.5, abs=0.05)
    gappy = PitchTrack(times=out.times, f0=out.f0, periodicity=out.periodicity,
                       voiced=np.arange(len(out)) % 10 != 0, hop=HOP)
    v = ev.voicing(src, gappy)
    assert v["voiced_kept"] == pytest.approx(0.9, abs=0.01) and v["agreement"] == pytest.approx(0.9, abs=0.01)


def test_eval_needs_resemblyzer_hint(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "resemblyzer", None)
    with pytest.raises(UserInputError, match=r"pip install 'singvc\[eval\]'"):
        ev.load_encoder()


def test_cli_voice_enroll_list_show(tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from singvc.cli import main

    monkeypatch.setenv("SINGVC_HOME", str(tmp_path / "home"))
    x, _ = vowel(3.5, 220.0)
    clip = tmp_path / "alice.wav"
    sf.write(str(clip), x[0], RATE)
    args = ["--pitch-model", "tiny", "--no-cache", "--device", "cpu", "--quiet"]
    assert main(["voice", "enroll", str(clip), "--name", "alice", *args]) == 0
    assert (tmp_path / "home" / "voices" / "alice.json").is_file()
    assert main(["voice", "enroll", str(clip), "--name", "alice", *args]) == 2  # exists without --force
    capsys.readouterr()
    assert main(["voice", "list"]) == 0
    assert "alice" in capsys.readouterr().out
    assert main(["voice", "show", "alice"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "alice" and shown["version"] == 1 and shown["register"]["median"]["note"]
