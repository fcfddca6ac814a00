"""The converter interface as the engine uses it: built once and reused across sections and
songs, prepared once per voice, given the progress callback, resampled to its own rate, and
reachable from the CLI and recipes through the registry alone."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from conftest import harmonic_tone, vibrato_f0
from singvc import CoverSettings, Singvc
from singvc.cache import Cache
from singvc.cli import get_parser
from singvc.converters import CONVERTERS, Converter, register
from singvc.converters.base import copy_into_like
from singvc.feature import Section, VoiceSpec, render_feature
from singvc.voice import analyse_voice

RATE = 22050


class Recorder(Converter):
    """A test backend: a gain, and a log of what the engine did with it."""

    name: ClassVar[str] = "test-recorder"
    summary: ClassVar[str] = "test"
    uses_voice: ClassVar[bool] = True
    built: ClassVar[int] = 0
    prepared: ClassVar[list] = []
    calls: ClassVar[list] = []

    def __init__(self, strength: float = 1.0) -> None:
        type(self).built += 1
        self.strength = strength

    settings: ClassVar[tuple[str, ...]] = ("strength",)

    def prepare(self, voice):
        type(self).prepared.append(voice.name)
        return ("prepared", voice.name)

    def convert(self, vocals, sample_rate, pitch, semitones, voice=None, progress=False, callback=None, out=None):
        type(self).calls.append((sample_rate, voice, callback is not None))
        if callback:
            callback({"stage": "convert", "seconds_done": vocals.shape[-1] / sample_rate,
                      "seconds_total": vocals.shape[-1] / sample_rate})
        return copy_into_like(vocals, out, gain=0.5)


class SixteenK(Recorder):
    name: ClassVar[str] = "test-16k"
    sample_rate: ClassVar[int] = 16000


@pytest.fixture
def registered(monkeypatch):
    for cls in (Recorder, SixteenK):
        cls.built, cls.prepared, cls.calls = 0, [], []
        monkeypatch.setitem(CONVERTERS, cls.name, cls)
    from singvc.settings import SCHEMA

    monkeypatch.setattr(SCHEMA["converter"], "choices", tuple(CONVERTERS))
    yield


def vocal(seconds=3.0, hz=220.0):
    x = harmonic_tone(vibrato_f0(hz, 5.5, 30, seconds, RATE), seconds, RATE)
    x[int(1.4 * RATE):int(1.6 * RATE)] = 0
    return np.stack([x, x])


def test_registered_converter_is_a_cli_and_recipe_choice(registered):
    parser = get_parser()
    args = parser.parse_args(["cover", "s.wav", "--converter", "test-recorder"])
    assert args.converter == "test-recorder"
    assert "test-recorder" in parser._subparsers._group_actions[0].choices["cover"].format_help()  # noqa: SLF001
    from singvc.recipe import parse_recipe

    parse_recipe('[settings]\nconverter = "test-recorder"\n')


def test_engine_builds_once_prepares_once_per_voice_and_passes_callback(registered, tiny_crepe):
    events = []
    engine = Singvc(CoverSettings(converter="test-recorder", separation=False, pitch_model="tiny", device="cpu"),
                    cache=Cache(enabled=False), pitch_model=tiny_crepe, callback=events.append)
    engine._pitch_models["tiny"] = tiny_crepe  # noqa: SLF001
    x = vocal()
    ref_track = engine.track(vocal(2.0, 440.0), RATE)[0]
    profile = analyse_voice([(vocal(2.0, 440.0), RATE)], [ref_track], "alice")
    for _ in range(2):  # two songs with one engine
        result = engine.cover(x, RATE, voice=profile, vocals=x)
        np.testing.assert_allclose(np.asarray(result.vocals_converted), np.asarray(result.vocals_converted))
    assert Recorder.built == 1 and Recorder.prepared == ["alice"]
    assert all(call == (RATE, ("prepared", "alice"), True) for call in Recorder.calls) and len(Recorder.calls) == 2
    assert any(e["stage"] == "convert" for e in events)
    assert result.report["converter"] == {"name": "test-recorder", "strength": 1.0}
    # a vocal feature: sections reuse the engine's converter (one per strength), the voice prepared once
    sections = [Section(voice="a", time="0:00-0:01.4"), Section(voice="a", time="0:01.6-0:03", strength=0.5)]
    render_feature(engine, None, RATE, sections, {"a": VoiceSpec(profile=profile, transpose=0)}, vocals=x)
    assert Recorder.built == 2  # strength 1 (shared with the covers) and 0.5
    assert Recorder.prepared == ["alice", "alice"]  # once per converter


def test_converter_at_its_own_rate_gets_resampled_audio_back_aligned(registered, tiny_crepe):
    engine = Singvc(CoverSettings(converter="test-16k", separation=False, pitch_model="tiny", transpose=0,
                                  device="cpu"), cache=Cache(enabled=False), pitch_model=tiny_crepe)
    x = vocal()
    result = engine.cover(x, RATE, vocals=x)
    assert SixteenK.calls[0][0] == 16000
    out = np.asarray(result.vocals_converted)
    assert out.shape == x.shape
    # the loudness match restores the level; the tone is band-limited below 8 kHz: nearly the input
    corr = np.corrcoef(out[0, 2000:-2000], x[0, 2000:-2000])[0, 1]
    assert corr > 0.99
