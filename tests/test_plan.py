import numpy as np
import pytest

from singvc.errors import PlanError
from singvc.pitch import PitchTrack
from singvc.plan import measure_register, out_of_range_share, parse_range, plan_transposition


def track_from_midi(midi: np.ndarray, voiced_share: float = 1.0) -> PitchTrack:
    n = len(midi)
    voiced = np.zeros(n, bool)
    voiced[: int(n * voiced_share)] = True
    f0 = 440 * 2 ** ((midi - 69) / 12)
    return PitchTrack(times=np.arange(n) * 0.01, f0=f0, periodicity=np.ones(n, np.float32), voiced=voiced, hop=0.01)


def test_parse_range_notes_and_hz():
    r = parse_range("C3-A4")
    assert (r.low, r.high) == (48, 69)
    r = parse_range("Eb3 - G#4")
    assert (r.low, r.high) == (51, 68)
    r = parse_range("110-440")
    assert r.low == pytest.approx(45) and r.high == pytest.approx(69)
    for bad in ("A4-C3", "hello", "C3", "H3-A4"):
        with pytest.raises(PlanError):
            parse_range(bad)


def test_key_lock_picks_whole_octaves():
    rng = np.random.default_rng(0)
    source = track_from_midi(rng.uniform(55, 67, 2000))  # G3..G4 (a tenor line)
    plan = plan_transposition(source, parse_range("G4-G5"))
    assert plan.semitones == 12 and plan.mode == "key-lock" and plan.keeps_key
    assert plan.out_of_range_after < 0.05 < plan.out_of_range_before
    plan = plan_transposition(source, parse_range("G2-G3"))
    assert plan.semitones == -12


def test_free_mode_and_manual_override():
    source = track_from_midi(np.full(500, 60.0))
    target = parse_range("E4-A4")  # median 66.5
    free = plan_transposition(source, target, mode="free")
    assert free.semitones in (6, 7) and not free.keeps_key
    manual = plan_transposition(source, target, transpose=-5)
    assert manual.semitones == -5 and manual.mode == "manual"
    assert plan_transposition(source, None).semitones == 0


def test_out_of_range_share_and_report():
    source = track_from_midi(np.repeat([50.0, 60.0, 70.0, 80.0], 25))
    target = parse_range("C4-C5")  # 60-72
    assert out_of_range_share(source, target, 0) == pytest.approx(0.5)
    desc = plan_transposition(source, target, transpose=0).describe()
    assert desc["source"]["median"]["hz"] > 0 and "note" in desc["target"]["low"]


def test_no_voiced_frames_is_an_error():
    with pytest.raises(PlanError):
        measure_register(track_from_midi(np.full(100, 60.0), voiced_share=0.0))
