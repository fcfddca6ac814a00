"""The lead/backing split and dereverberation wired into the cover (settings backing, dereverb):
synthetic 3 s vocal stems at 22.05 kHz, crepe tiny, no separation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import harmonic_tone, vibrato_f0
from singvc.audio import DiskAudio, load_audio
from singvc.cache import Cache
from singvc.cli import get_parser, main
from singvc.cover import Singvc
from singvc.loudness import integrated_loudness
from singvc.room import add_room
from singvc.settings import CoverSettings

RATE = 22050
SECONDS = 3.0
SPLIT = ("vocals_lead.wav", "vocals_backing.wav")


@pytest.fixture(scope="module")
def stem() -> np.ndarray:
    """A centred lead (220 Hz, vibrato) and a harmony a major third up singing 0.8-2.4 s, panned
    left, 6 dB under the lead."""
    lead = harmonic_tone(vibrato_f0(220.0, 5.5, 40.0, SECONDS, RATE), SECONDS, RATE, n_harmonics=20, level=0.3)
    harm = harmonic_tone(vibrato_f0(220.0 * 2 ** (4 / 12), 5.0, 30.0, SECONDS, RATE), SECONDS, RATE,
                         n_harmonics=20, level=0.15)
    harm[: int(0.8 * RATE)] = 0.0
    harm[int(2.4 * RATE):] = 0.0
    return (np.stack([lead, lead]) + np.stack([0.9 * harm, 0.44 * harm])).astype(np.float32)


@pytest.fixture(scope="module")
def engine(tiny_crepe) -> Singvc:
    settings = CoverSettings(pitch_model="tiny", separation=False, converter="pitch", transpose=3.0,
                             plan_mode="free", device="cpu")
    return Singvc(settings, cache=Cache(enabled=False), pitch_model=tiny_crepe)


@pytest.fixture(scope="module")
def results(engine, stem, tmp_path_factory) -> dict:
    """One cover per backing mode, the split ones streaming through a scratch folder."""
    out = {}
    for mode in ("off", "keep", "mute", "convert"):
        scratch = tmp_path_factory.mktemp(f"scratch_{mode}")
        out[mode] = engine.with_settings(backing=mode).cover(stem, RATE, scratch=scratch)
    return out


def energy_db(x, ref) -> float:
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return 10 * np.log10(np.sum(x ** 2) / np.sum(ref ** 2) + 1e-30)


def test_off_splits_nothing(results):
    r = results["off"]
    assert r.extra_stems == {} and "backing" not in r.report
    assert set(r.stems()) == {"mix.wav", "vocals_converted.wav", "vocals_original.wav", "instrumental.wav"}


def test_split_stems_sum_to_the_stem_and_the_report_says_what_was_split(results, stem):
    for mode in ("keep", "mute", "convert"):
        r = results[mode]
        lead, backing = r.extra_stems["vocals_lead.wav"], r.extra_stems["vocals_backing.wav"]
        assert isinstance(lead, DiskAudio) and isinstance(backing, DiskAudio)  # streamed through scratch
        np.testing.assert_allclose(np.asarray(lead) + np.asarray(backing), stem, atol=1e-5)
        info = r.report["backing"]
        assert info["mode"] == mode and info["split"] is True and info["room"] is None
        assert 3.0 < info["interval_semitones"] < 5.0
        assert 1.0 < info["backing_seconds"] < 2.2  # the harmony sings 1.6 s
        assert info["backing_lufs"] < info["stem_lufs"] - 3.0
        assert "split" in r.report["seconds"]
    # the split takes the harmony: the backing stem is well under the lead before 0.7 s and after 2.5 s
    backing = np.asarray(results["keep"].extra_stems["vocals_backing.wav"])
    quiet = np.concatenate([backing[:, : int(0.7 * RATE)], backing[:, int(2.5 * RATE):]], axis=1)
    assert energy_db(quiet, stem) < -40


def test_keep_puts_the_original_backing_under_the_converted_lead(results):
    keep, mute = results["keep"], results["mute"]
    lead_only = np.asarray(mute.vocals_converted)
    backing = np.asarray(keep.extra_stems["vocals_backing.wav"])
    # keep: converted vocal - converted lead == the original backing
    np.testing.assert_allclose(np.asarray(keep.vocals_converted) - lead_only, backing, atol=1e-5)
    # mute: the converted lead at the original lead's loudness, no backing in it
    lead_lufs = mute.report["backing"]["lead_lufs"]
    assert integrated_loudness(lead_only, RATE) == pytest.approx(lead_lufs, abs=0.1)
    assert integrated_loudness(np.asarray(mute.extra_stems["vocals_lead.wav"]), RATE) == pytest.approx(
        lead_lufs, abs=0.01)
    # the converted lead moved: it is not the original lead
    assert energy_db(lead_only - np.asarray(mute.extra_stems["vocals_lead.wav"]), lead_only) > -3


def test_convert_converts_the_backing_at_its_own_loudness(results):
    conv, mute = results["convert"], results["mute"]
    info = conv.report["backing"]["converted_backing"]
    assert info["converted"] is True and info["semitones"] == 3.0
    converted_backing = np.asarray(conv.vocals_converted) - np.asarray(mute.vocals_converted)
    backing = np.asarray(conv.extra_stems["vocals_backing.wav"])
    # at the original backing's loudness, but not the original backing (moved 3 semitones)
    assert integrated_loudness(converted_backing, RATE) == pytest.approx(conv.report["backing"]["backing_lufs"],
                                                                         abs=0.3)
    assert energy_db(converted_backing - backing, backing) > -3
    assert np.all(np.isfinite(converted_backing))


def test_dereverb_reports_a_room_and_puts_one_back(engine, stem, tmp_path):
    wet = add_room(stem, RATE, rt60=0.8, wet_db=-4.0, seed=1)
    r = engine.with_settings(backing="mute", dereverb=True).cover(wet, RATE, scratch=tmp_path)
    room = r.report["backing"]["room"]
    assert room["wet_db"] is not None and room["wet_db"] > -20 and room["rt60"] is not None
    assert room["rt60"] > 0.1
    converted = np.asarray(r.vocals_converted)
    assert np.all(np.isfinite(converted))
    # the dereverbed lead, converted and given a room, is not what the plain path gives
    plain = engine.with_settings(backing="mute").cover(wet, RATE)
    assert plain.report["backing"]["room"] is None
    assert energy_db(converted - np.asarray(plain.vocals_converted), converted) > -30


def test_flags_parse():
    args = get_parser().parse_args(["cover", "x.wav", "--backing", "convert", "--dereverb"])
    assert args.backing == "convert" and args.dereverb is True
    args = get_parser().parse_args(["cover", "x.wav"])
    assert not hasattr(args, "backing") and not hasattr(args, "dereverb")  # defaults come from the schema
    with pytest.raises(Exception, match="--backing: must be one of off, keep, convert, mute"):
        get_parser().parse_args(["cover", "x.wav", "--backing", "loud"])
    assert CoverSettings().backing == "keep" and CoverSettings().dereverb is False


def test_cli_writes_the_stems_and_the_daw_session_lists_them(stem, tmp_path):
    vocal = tmp_path / "vocal.wav"
    sf.write(str(vocal), stem.T, RATE, subtype="FLOAT")
    common = ["--no-separation", "--converter", "pitch", "--transpose", "3", "--no-key-lock",
              "--pitch-model", "tiny", "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    out = tmp_path / "keep"
    assert main(["cover", str(vocal), "--backing", "keep", "--daw", "-o", str(out), *common]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(SPLIT) <= set(report["outputs"]) and report["backing"]["mode"] == "keep"
    assert sorted(p.name for p in out.iterdir()) == sorted(report["outputs"])
    lead, _ = load_audio(out / "vocals_lead.wav")
    backing, _ = load_audio(out / "vocals_backing.wav")
    original, _ = load_audio(out / "vocals_original.wav")
    assert energy_db(lead + backing - original, original) < -80  # same headroom group: they still add up
    manifest = json.loads((out / "session" / "session.json").read_text())
    roles = {s["role"]: s for s in manifest["stems"]}
    assert roles["vocals_lead"]["muted"] and roles["vocals_backing"]["muted"]
    assert not roles["vocals_converted"]["muted"]
    assert report["cache_hits"]["split"] is False
    # off: no split stems, and an earlier run's are moved aside
    assert main(["cover", str(vocal), "--backing", "off", "-o", str(out), *common]) == 0
    report = json.loads((out / "report.json").read_text())
    assert not set(SPLIT) & set(report["outputs"]) and "backing" not in report
    assert not (out / "vocals_lead.wav").exists() and not (out / "vocals_backing.wav").exists()
    assert any((p / "vocals_lead.wav").exists() for p in out.glob("previous-run-*"))
    # keep is the default; the second split of the same stem comes from the cache, with the same stems
    again = tmp_path / "again"
    assert main(["cover", str(vocal), "-o", str(again), *common]) == 0
    report = json.loads((again / "report.json").read_text())
    assert report["backing"]["mode"] == "keep" and report["cache_hits"]["split"] is True
    assert np.array_equal(load_audio(again / "vocals_lead.wav")[0], lead)
    assert np.array_equal(load_audio(again / "vocals_backing.wav")[0], backing)


def test_a_vocal_feature_converts_the_lead_and_keeps_the_backing(engine, stem):
    """Sections convert the split lead; the original lead fills between them and the backing goes
    back under the whole song (keep) or is dropped (mute)."""
    from singvc.feature import FeatureOptions, Section, VoiceSpec, render_feature
    from singvc.voice import load_profile

    spec = VoiceSpec(profile=load_profile("librispeech-198"), transpose=3.0)
    sections = [Section(voice="guest", time="0:00-0:01")]
    opts = FeatureOptions(snap_seconds=0.0)
    out = {}
    for mode in ("keep", "mute", "off"):
        out[mode] = render_feature(engine.with_settings(backing=mode), stem, RATE, sections, {"guest": spec},
                                   options=opts)
    keep, mute, off = out["keep"], out["mute"], out["off"]
    assert keep.report["backing"]["split"] and set(keep.extra_stems) == set(SPLIT)
    lead, backing = keep.extra_stems["vocals_lead.wav"], keep.extra_stems["vocals_backing.wav"]
    after = slice(int(1.2 * RATE), None)  # after the section: the original singer, lead + backing
    assert energy_db(keep.vocals_converted[:, after] - stem[:, after], stem[:, after]) < -60
    assert energy_db(mute.vocals_converted[:, after] - lead[:, after], lead[:, after]) < -60
    # inside the section: the converted lead with the original backing under it (keep), without (mute)
    inside = slice(int(0.85 * RATE), int(0.95 * RATE))
    assert energy_db(keep.vocals_converted[:, inside] - mute.vocals_converted[:, inside] - backing[:, inside],
                     backing[:, inside]) < -60
    assert "backing" not in off.report and not off.extra_stems
