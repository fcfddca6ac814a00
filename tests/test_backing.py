"""Lead / backing split (singvc.backing) and room (singvc.room) on synthetic signals."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import fftconvolve

from conftest import harmonic_tone, vibrato_f0
from singvc.audio import DiskAudio
from singvc.backing import (SplitOptions, backing_presence, describe_split, lead_residual, pan_direction,
                            spatial_wiener, split_lead, track_backing)
from singvc.errors import InvalidAudioError, UserInputError
from singvc.pitch import PitchTrack
from singvc.room import (add_room, convolve_stream, dereverb, estimate_room, pilot_rt60, room_impulse, schroeder_rt60,
                         taps_for)

RATE = 22050
SECONDS = 3.0


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    est = np.asarray(estimate, np.float64).ravel()
    ref = np.asarray(reference, np.float64).ravel()
    scale = est @ ref / (ref @ ref)
    err = est - scale * ref
    return 10.0 * math.log10((scale * scale * (ref @ ref)) / max(err @ err, 1e-30))


def track_of(f0_per_sample: np.ndarray, voiced: np.ndarray | None = None, hop: float = 0.01) -> PitchTrack:
    t = np.arange(int(len(f0_per_sample) / RATE / hop) + 1) * hop
    f0 = np.interp(t, np.arange(len(f0_per_sample)) / RATE, f0_per_sample)
    v = np.ones(len(t), bool) if voiced is None else voiced(t)
    return PitchTrack(times=t, f0=f0, periodicity=v.astype(np.float32), voiced=v, hop=hop)


@pytest.fixture(scope="module")
def mixture():
    """A centred lead (220 Hz, vibrato) and a harmony a major third up, 40 ms late, singing from
    0.8 s to 2.4 s, panned left, 6 dB under the lead; a little breath noise on the lead."""
    rng = np.random.default_rng(0)
    f_lead = vibrato_f0(220.0, 5.5, 40.0, SECONDS, RATE)
    lead = harmonic_tone(f_lead, SECONDS, RATE, n_harmonics=20, level=0.3)
    lead = lead + 0.002 * rng.standard_normal(len(lead)).astype(np.float32)
    harm = harmonic_tone(vibrato_f0(220.0 * 2 ** (4 / 12), 5.0, 30.0, SECONDS, RATE), SECONDS, RATE,
                         n_harmonics=20, level=0.15)
    harm[: int(0.8 * RATE)] = 0.0
    harm[int(2.4 * RATE):] = 0.0
    lead2 = np.stack([lead, lead])
    back2 = np.stack([0.9 * harm, 0.44 * harm])
    return lead2.astype(np.float32), back2.astype(np.float32), track_of(f_lead)


def test_split_lead_beats_the_unsplit_stem_and_parts_sum_to_the_stem(mixture):
    lead, back, track = mixture
    stem = lead + back
    lead_e, back_e, report = split_lead(stem, RATE, track)
    before = si_sdr(stem, lead)
    after = si_sdr(lead_e, lead)
    assert after > before + 8.0, (before, after)
    assert si_sdr(back_e, back) > 6.0
    np.testing.assert_allclose(lead_e + back_e, stem, atol=1e-6)
    assert report.split and 3.0 < report.interval_semitones < 5.0
    # the harmony sings 1.6 s of 3 s
    assert 1.1 < report.backing_seconds < 2.1
    true_db = 10 * math.log10(np.sum(back.astype(np.float64) ** 2) / np.sum(stem.astype(np.float64) ** 2))
    assert abs(report.backing_db - true_db) < 2.0
    info = describe_split(report, stem, back_e, RATE)
    assert info["split"] and info["backing_lufs"] < info["stem_lufs"] - 5.0
    assert abs(info["backing_db"] - report.backing_db) < 0.01 and "track" not in info
    # where the harmony is silent (before 0.7 s) nothing is taken from the lead
    assert np.all(back_e[:, : int(0.6 * RATE)] == 0.0)
    np.testing.assert_array_equal(lead_e[:, : int(0.6 * RATE)], stem[:, : int(0.6 * RATE)])


def test_lead_alone_comes_back_unchanged(mixture):
    lead, _, track = mixture
    lead_e, back_e, report = split_lead(lead, RATE, track)
    assert not report.split
    assert not np.any(back_e)
    np.testing.assert_array_equal(lead_e, lead)


def test_stereo_cue_helps_and_can_be_switched_off(mixture):
    lead, back, track = mixture
    stem = lead + back
    with_pan = si_sdr(split_lead(stem, RATE, track)[0], lead)
    without = si_sdr(split_lead(stem, RATE, track, SplitOptions(stereo_weight=0.0))[0], lead)
    assert with_pan >= without - 0.1
    mono = split_lead(stem.mean(axis=0, keepdims=True), RATE, track)[0]
    assert si_sdr(mono, lead[:1]) > si_sdr(stem.mean(axis=0, keepdims=True), lead[:1]) + 6.0


def test_blockwise_equals_whole_and_disk_buffers(mixture, tmp_path):
    lead, back, track = mixture
    stem = lead + back
    whole_l, whole_b, _ = split_lead(stem, RATE, track)
    for block in (7001, 30000):
        l, b, _ = split_lead(stem, RATE, track, block=block)
        np.testing.assert_allclose(l, whole_l, atol=1e-7)
        np.testing.assert_allclose(b, whole_b, atol=1e-7)
    src = DiskAudio(tmp_path / "stem.npy", shape=stem.shape)
    src[:, :] = stem
    lo = DiskAudio(tmp_path / "lead.npy", shape=stem.shape)
    bo = DiskAudio(tmp_path / "back.npy", shape=stem.shape)
    l, b, _ = split_lead(src, RATE, track, lead_out=lo, backing_out=bo, block=20000)
    assert l is lo and b is bo
    np.testing.assert_allclose(np.asarray(lo), whole_l, atol=1e-7)


def test_given_backing_track_is_used(mixture):
    lead, back, track = mixture
    stem = lead + back
    f_back = vibrato_f0(220.0 * 2 ** (4 / 12), 5.0, 30.0, SECONDS, RATE)
    bt = track_of(f_back, voiced=lambda t: (t >= 0.8) & (t < 2.4))
    lead_e, back_e, report = split_lead(stem, RATE, track, backing_track=bt)
    assert si_sdr(lead_e, lead) > si_sdr(stem, lead) + 8.0
    # the harmony is found where it sings, and the stem is left whole outside that region
    assert report.decision.startswith("backing found") and len(report.regions) == 1
    a, b = report.regions[0]
    assert 0.4 < a < 0.8 and 2.4 < b
    outside = np.r_[0:int((a - 0.05) * RATE), int((b + 0.05) * RATE):stem.shape[1]]
    assert len(outside) > 0.4 * RATE and not np.any(back_e[:, outside])
    np.testing.assert_array_equal(lead_e[:, outside], stem[:, outside])
    # a backing track voiced nowhere: nothing is split
    none = PitchTrack(times=bt.times, f0=bt.f0, periodicity=bt.periodicity * 0, voiced=np.zeros(len(bt), bool),
                      hop=bt.hop)
    assert not np.any(split_lead(stem, RATE, track, backing_track=none)[1])


def test_a_second_track_on_the_leads_past_notes_is_no_backing():
    """The lead's reverberation rings at the notes it sang before, and crepe finds them in the
    residual: a backing track that only follows the lead's pitch of 0.3 s earlier is no backing.
    The stem comes back whole, and the report says why."""
    notes = np.repeat([220.0, 262.0, 294.0, 330.0, 262.0, 247.0], int(0.5 * RATE))
    notes = notes[: int(SECONDS * RATE)]
    lead = harmonic_tone(notes, SECONDS, RATE, n_harmonics=20, level=0.3)
    h = room_impulse(RATE, 1.0, -6.0, channels=2, predelay=0.0, seed=1)
    h[:, 0] += 1.0
    stem = np.stack([fftconvolve(lead, h[c])[: len(lead)] for c in range(2)]).astype(np.float32)
    track = track_of(notes)
    echo = track_of(np.concatenate([np.full(int(0.3 * RATE), 220.0), notes[: len(notes) - int(0.3 * RATE)]]))
    lead_e, back_e, report = split_lead(stem, RATE, track, backing_track=echo)
    assert not report.split and report.regions == []
    assert report.decision.startswith("no backing found")
    np.testing.assert_array_equal(lead_e, stem)
    assert not np.any(back_e)
    assert "no backing found" in describe_split(report, stem, back_e, RATE)["decision"]
    # without the look at the lead's past notes the same track carves the lead
    blind = SplitOptions(presence_history_seconds=0.0)
    assert backing_presence(track, echo, blind).regions
    assert np.any(split_lead(stem, RATE, track, options=blind, backing_track=echo)[1])


def test_room_model_is_blockwise_exact_and_keeps_the_tails_with_their_voice(mixture):
    lead, back, track = mixture
    h = room_impulse(RATE, 1.0, -6.0, channels=2, predelay=0.0, seed=2)
    h[:, 0] += 1.0
    wet = lambda x: np.stack([fftconvolve(x[c], h[c])[: x.shape[1]] for c in range(2)]).astype(np.float32)
    lead_t, back_t = wet(lead), wet(back)
    stem = lead_t + back_t
    f_back = vibrato_f0(220.0 * 2 ** (4 / 12), 5.0, 30.0, SECONDS, RATE)
    bt = track_of(f_back, voiced=lambda t: (t >= 0.8) & (t < 2.4))
    room = SplitOptions(room_rt60=1.0, room_wet_db=-6.0)
    whole_l, whole_b, _ = split_lead(stem, RATE, track, options=room, backing_track=bt)
    part_l, part_b, _ = split_lead(stem, RATE, track, options=room, backing_track=bt, block=7001)
    np.testing.assert_allclose(part_b, whole_b, atol=1e-7)
    np.testing.assert_allclose(part_l, whole_l, atol=1e-7)
    np.testing.assert_allclose(lead_residual(stem, RATE, track, room, block=7001),
                               lead_residual(stem, RATE, track, room), atol=1e-7)
    # the backing's tail after it stops (2.4 s on) goes with the backing, not the lead
    dry_masks = SplitOptions(room_rt60=0.0, spatial=False)
    dry_l, dry_b, _ = split_lead(stem, RATE, track, options=dry_masks, backing_track=bt)
    tail = slice(int(2.45 * RATE), int(2.9 * RATE))
    assert not np.any(dry_b[:, tail])  # the dry model has no backing once its track stops
    assert si_sdr(whole_b[:, tail], back_t[:, tail]) > 0.0
    assert si_sdr(whole_l, lead_t) > si_sdr(dry_l, lead_t)


def test_track_backing_follows_the_harmony(mixture, tiny_crepe):
    lead, back, track = mixture
    stem = lead + back
    residual = lead_residual(stem, RATE, track)
    # the lead's harmonics are gone from the residual: it is mostly the harmony
    assert si_sdr(residual, back) > 3.0
    bt = track_backing(stem, RATE, track, tiny_crepe)
    on = (bt.times > 1.0) & (bt.times < 2.2)
    assert np.mean(bt.voiced[on]) > 0.8
    cents = 1200 * np.log2(bt.f0[on & bt.voiced] / (220.0 * 2 ** (4 / 12)))
    assert np.median(np.abs(cents)) < 50.0
    off = bt.times < 0.6
    assert np.mean(bt.voiced[off]) < 0.1
    lead_e, _, _ = split_lead(stem, RATE, track, backing_track=bt)
    assert si_sdr(lead_e, lead) > si_sdr(stem, lead) + 8.0


def test_bad_input_is_refused(mixture):
    lead, _, track = mixture
    with pytest.raises(InvalidAudioError):
        split_lead(np.zeros((2, 3, 4), np.float32), RATE, track)
    with pytest.raises(UserInputError):
        split_lead(lead, RATE, track, SplitOptions(harmonicity=(3.0, 2.0)))
    with pytest.raises(UserInputError):
        split_lead(lead, RATE, "not a track")  # type: ignore[arg-type]
    with pytest.raises(UserInputError):
        split_lead(lead, RATE, track, lead_out=np.zeros((1, 5), np.float32))


# -- room ------------------------------------------------------------------------------------------

def melody(seconds: float, rate: int) -> np.ndarray:
    """Sung-like notes of 0.12-0.35 s (harmonic tones under a sine envelope, some with a noise
    onset like a consonant) with short gaps: the reverberation shows in the gaps and at changes."""
    rng = np.random.default_rng(3)
    out = np.zeros(int(seconds * rate), np.float32)
    pos = 0
    while pos < len(out):
        dur = int(rng.uniform(0.12, 0.35) * rate)
        f = 180.0 * 2 ** (rng.integers(0, 12) / 12)
        note = harmonic_tone(f, dur / rate, rate, n_harmonics=12, level=0.3)[: len(out) - pos]
        note *= np.sin(np.pi * np.arange(len(note)) / len(note))
        if rng.uniform() < 0.5:
            k = min(len(note), int(0.04 * rate))
            note[:k] += 0.1 * rng.standard_normal(k)
        out[pos:pos + len(note)] = note
        pos += dur + int(rng.uniform(0.03, 0.15) * rate)
    return out


def test_dereverb_improves_a_reverberant_melody():
    rate = 16000
    dry_m = melody(6.0, rate)
    dry = np.stack([dry_m, dry_m])
    h = room_impulse(rate, 1.0, -6.0, channels=2, predelay=0.0, seed=4)
    h[:, 0] += 1.0
    wet = np.stack([fftconvolve(dry[c], h[c])[: dry.shape[1]] for c in range(2)]).astype(np.float32)
    out, est = dereverb(wet, rate)
    assert out.shape == wet.shape and out.dtype == np.float32
    before, after = si_sdr(wet, dry), si_sdr(out, dry)
    assert after > before + 2.0, (before, after)  # measured +3.1 dB
    assert est.rt60 is not None and 0.5 < est.rt60 < 2.0
    assert -15.0 < est.wet_db < -3.0
    # a dry signal: next to nothing removed, no room reported
    out_dry, est_dry = dereverb(dry, rate)
    assert si_sdr(out_dry, dry) > 25.0
    assert est_dry.rt60 is None


def test_dereverb_taps_follow_the_room():
    rate = 16000
    dry_m = melody(8.0, rate)
    rts = []
    for rt in (0.5, 2.0):
        h = room_impulse(rate, rt, -6.0, channels=1, predelay=0.0, seed=6)
        h[:, 0] += 1.0
        wet = fftconvolve(dry_m, h[0])[: len(dry_m)].astype(np.float32)[None].repeat(2, 0)
        rts.append(pilot_rt60(wet, rate))
    assert rts[0] is not None and rts[1] is not None and rts[1] > 1.5 * rts[0]
    assert taps_for(rts[1]) > taps_for(rts[0]) and taps_for(None) == 10 and taps_for(5.0) == 40
    _, est = dereverb(wet, rate)  # the 2 s room
    assert est.taps == taps_for(rts[1]) and est.as_dict()["taps"] == est.taps
    assert pilot_rt60(np.stack([dry_m, dry_m]), rate) is None


def test_dereverb_blocks_are_bounded_and_close_to_whole():
    rate = 16000
    dry_m = melody(8.0, rate)
    h = room_impulse(rate, 0.6, -3.0, channels=2, predelay=0.0, seed=5)
    h[:, 0] += 1.0
    wet = np.stack([fftconvolve(dry_m, h[c])[: len(dry_m)] for c in range(2)]).astype(np.float32)
    whole, _ = dereverb(wet, rate, block_seconds=10.0)
    parts, _ = dereverb(wet, rate, block_seconds=3.0, context_seconds=1.0)
    # each block estimates its own filter: not the same samples, but as good, and no seam
    assert si_sdr(parts, dry_m[None].repeat(2, 0)) > si_sdr(whole, dry_m[None].repeat(2, 0)) - 1.0
    jump = np.abs(np.diff(parts, axis=1))
    for b in (3 * rate, 6 * rate):
        assert jump[:, b - 5:b + 5].max() <= 1.5 * jump.max(axis=1).min()


def test_room_impulse_has_the_asked_decay_and_level():
    rate = 22050
    for rt60 in (0.5, 1.0, 2.0):
        h = room_impulse(rate, rt60, -6.0, channels=2, seed=1)
        assert abs(schroeder_rt60(h[0], rate) / rt60 - 1.0) < 0.1
        np.testing.assert_allclose(np.sum(h ** 2, axis=1), 10 ** (-6.0 / 10.0), rtol=1e-6)
        assert np.corrcoef(h[0], h[1])[0, 1] < 0.1  # wide: channels independent
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((2, rate * 3))).astype(np.float32)
    y = add_room(x, rate, 1.0, -6.0)
    wet = y.astype(np.float64) - x
    level = 10 * math.log10(np.sum(wet[:, rate:] ** 2) / np.sum(x[:, rate:].astype(np.float64) ** 2))
    assert abs(level + 6.0) < 1.0


def test_convolve_stream_equals_fftconvolve(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 50_000)).astype(np.float32)
    h = rng.standard_normal((2, 9000))
    ref = np.stack([fftconvolve(x[c], h[c])[: x.shape[1]] for c in range(2)])
    for block in (4096, 10_000, 1 << 18):
        np.testing.assert_allclose(convolve_stream(x, h, block=block), ref, atol=2e-4)
    out = DiskAudio(tmp_path / "o.npy", shape=x.shape)
    convolve_stream(x, h, out=out, block=7000)
    np.testing.assert_allclose(np.asarray(out), ref, atol=2e-4)


def test_estimate_room_recovers_a_known_decay():
    hop = 0.01
    rng = np.random.default_rng(2)
    e_dry = rng.uniform(0.0, 1.0, 3000) * (rng.uniform(size=3000) > 0.5)
    a = 10 ** (-6 * hop / 0.8)
    from scipy.signal import lfilter

    fed = np.concatenate([np.zeros(3), e_dry[:-3]])
    e_rem = 0.05 * lfilter([1.0], [1.0, -a], fed)
    est = estimate_room(e_dry, e_rem, hop, 3)
    assert abs(est.rt60 / 0.8 - 1.0) < 0.05
    assert est.fit_db < 0.5


def test_convert_backing_converts_the_monophonic_part_and_transposes_the_rest():
    from singvc.backing import convert_backing
    from singvc.converters import get_converter

    rate = RATE
    f = np.full(int(2.0 * rate), 330.0)
    tone = harmonic_tone(f, 2.0, rate, n_harmonics=10, level=0.2)
    back = np.stack([tone, tone]).astype(np.float32)
    # crepe says: monophonic in the first second only
    track = track_of(f, voiced=lambda t: t < 1.0)
    conv = get_converter("pitch")
    out, info = convert_backing(back, rate, track, conv, 0.0)
    np.testing.assert_array_equal(out, back)  # no shift: the converter's 0-semitone copy, the rest kept
    assert not info["transposed"]
    out, info = convert_backing(back, rate, track, conv, 3.0)
    assert info["transposed"] and 0.9 < info["converted_seconds"] < 1.1

    def pitch_of(x):
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return np.argmax(spec) * rate / len(x)

    target = 330.0 * 2 ** (3 / 12)
    for a, b in ((0.2, 0.8), (1.2, 1.8)):  # the converted part, then the phase-vocoder part
        seg = out[0, int(a * rate):int(b * rate)]
        assert abs(1200 * np.log2(pitch_of(seg) / target)) < 30.0


def test_add_estimated_room_puts_back_what_was_estimated():
    from singvc.room import RoomEstimate, add_estimated_room

    rate = 16000
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal((2, rate * 2))).astype(np.float32)
    same = add_estimated_room(x, rate, RoomEstimate(rt60=None, wet_db=-40.0, predelay=0.05))
    np.testing.assert_array_equal(same, x)
    y = add_estimated_room(x, rate, RoomEstimate(rt60=0.8, wet_db=-10.0, predelay=0.05))
    wet = y.astype(np.float64) - x
    assert not np.any(wet[:, : int(0.04 * rate)])  # nothing before the pre-delay
    level = 10 * math.log10(np.sum(wet[:, rate:] ** 2) / np.sum(x[:, rate:].astype(np.float64) ** 2))
    assert abs(level + 10.0) < 1.0


def test_spatial_wiener_unmixes_coincident_sources_by_direction():
    """Two sources in the same bins, one centred and one panned left: the multichannel Wiener
    filter gives the panned one back exactly (a mask cannot); from one direction it is the
    single-channel Wiener mask."""
    rng = np.random.default_rng(3)
    shape = (64, 50)
    s_l = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    s_b = 0.5 * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
    d_l = pan_direction(np.zeros(shape[1]))
    d_b = pan_direction(np.full(shape[1], -0.7))
    np.testing.assert_allclose(d_l, 1.0, atol=1e-12)
    np.testing.assert_allclose(np.sum(d_b ** 2, axis=0), 2.0, atol=1e-12)
    assert d_b[0, 0] > d_b[1, 0]  # left
    X = d_l[:, None, :] * s_l + d_b[:, None, :] * s_b
    v_l, v_b, zero = np.abs(s_l) ** 2, np.abs(s_b) ** 2, np.zeros(shape)
    back = spatial_wiener(X, v_l, v_b, zero, zero, d_l, d_b, diffuse_floor=1e-12)
    np.testing.assert_allclose(back, d_b[:, None, :] * s_b, atol=1e-4)
    # one direction for both: the Wiener mask v_B / (v_L + v_B) on each channel
    Xc = d_l[:, None, :] * (s_l + s_b)
    back_c = spatial_wiener(Xc, v_l, v_b, zero, zero, d_l, d_l)
    np.testing.assert_allclose(back_c, Xc * (v_b / (v_l + v_b))[None], atol=1e-4)
    # no backing power: exactly nothing
    assert not np.any(spatial_wiener(X, v_l, zero, zero, zero, d_l, d_b))
    with pytest.raises(UserInputError):
        SplitOptions(spatial_min_coherence=1.5).check()


def test_dry_stereo_stem_is_unmixed_by_direction():
    """A harmony a fifth up (every 2nd of its harmonics on every 3rd of the lead's), panned left,
    in a dry stem: unmixing by direction beats the masks by far, blockwise equals whole, a mono
    stem takes the masks as before, and in a wet room it is no worse than the masks."""
    f_lead = vibrato_f0(220.0, 5.5, 40.0, SECONDS, RATE)
    lead = harmonic_tone(f_lead, SECONDS, RATE, n_harmonics=20, level=0.3)
    harm = harmonic_tone(f_lead * 1.5, SECONDS, RATE, n_harmonics=20, level=0.15)
    harm[: int(0.8 * RATE)] = 0.0
    harm[int(2.4 * RATE):] = 0.0
    lead2 = np.stack([lead, lead]).astype(np.float32)
    back2 = np.stack([0.9 * harm, 0.44 * harm]).astype(np.float32)
    stem = lead2 + back2
    track = track_of(f_lead)
    bt = track_of(f_lead * 1.5, voiced=lambda t: (t >= 0.8) & (t < 2.4))
    dry = SplitOptions(room_rt60=0.0)
    masks = SplitOptions(room_rt60=0.0, spatial=False)
    lead_s, back_s, rep_s = split_lead(stem, RATE, track, options=dry, backing_track=bt)
    lead_m, back_m, rep_m = split_lead(stem, RATE, track, options=masks, backing_track=bt)
    assert 1.0 < rep_s.spatial_seconds <= 1.8 and rep_m.spatial_seconds == 0.0
    gain_s, gain_m = si_sdr(lead_s, lead2) - si_sdr(stem, lead2), si_sdr(lead_m, lead2) - si_sdr(stem, lead2)
    assert gain_s > gain_m + 6.0, (gain_s, gain_m)
    assert si_sdr(back_s, back2) > si_sdr(back_m, back2) + 6.0
    np.testing.assert_allclose(lead_s + back_s, stem, atol=1e-6)
    assert not np.any(back_s[:, : int(0.6 * RATE)])
    part_l, part_b, _ = split_lead(stem, RATE, track, options=dry, backing_track=bt, block=7001)
    np.testing.assert_allclose(part_b, back_s, atol=1e-7)
    mono = stem.mean(axis=0, keepdims=True)
    np.testing.assert_array_equal(split_lead(mono, RATE, track, options=dry, backing_track=bt)[0],
                                  split_lead(mono, RATE, track, options=masks, backing_track=bt)[0])
    # in a room whose tails differ between the channels, the frames lose their coherence and
    # mostly take the masks: no worse than the masks
    h = room_impulse(RATE, 1.0, -6.0, channels=2, predelay=0.0, seed=4)
    h[:, 0] += 1.0
    wet = lambda x: np.stack([fftconvolve(x[c], h[c])[: x.shape[1]] for c in range(2)]).astype(np.float32)
    lead_w, stem_w = wet(lead2), wet(lead2) + wet(back2)
    room = SplitOptions(room_rt60=1.0, room_wet_db=-6.0)
    lead_rs, _, rep_rs = split_lead(stem_w, RATE, track, options=room, backing_track=bt)
    lead_rm, _, _ = split_lead(stem_w, RATE, track, options=replace(room, spatial=False), backing_track=bt)
    assert si_sdr(lead_rs, lead_w) > si_sdr(lead_rm, lead_w) - 0.3
    assert rep_rs.spatial_seconds < rep_s.spatial_seconds


def test_a_backing_not_from_one_direction_takes_the_masks():
    """A double: two takes of the harmony, one on each side (or one centred like the lead). The
    unmixing by direction would model it wrongly (and a near-singular unmixing blows up); those
    frames take the masks, so the result is the masks' one."""
    f_lead = vibrato_f0(220.0, 5.5, 40.0, SECONDS, RATE)
    lead = harmonic_tone(f_lead, SECONDS, RATE, n_harmonics=20, level=0.3)
    f_b = vibrato_f0(220.0 * 2 ** (4 / 12), 5.0, 30.0, SECONDS, RATE)
    takes = [harmonic_tone(f, SECONDS, RATE, n_harmonics=20, level=0.1)
             for f in (f_b, vibrato_f0(220.0 * 2 ** (4 / 12) * 1.003, 4.6, 25.0, SECONDS, RATE))]
    for take in takes:
        take[: int(0.8 * RATE)] = 0.0
        take[int(2.4 * RATE):] = 0.0
    lead2 = np.stack([lead, lead]).astype(np.float32)
    track = track_of(f_lead)
    bt = track_of(f_b, voiced=lambda t: (t >= 0.8) & (t < 2.4))
    dry = SplitOptions(room_rt60=0.0)
    for back in (np.stack(takes), np.stack([takes[0] + 0.5 * takes[1], 0.5 * takes[0] + takes[1]]),
                 np.stack([takes[0], takes[0]])):
        stem = lead2 + back.astype(np.float32)
        lead_s, back_s, rep = split_lead(stem, RATE, track, options=dry, backing_track=bt)
        lead_m, _, _ = split_lead(stem, RATE, track, options=replace(dry, spatial=False),
                                  backing_track=bt)
        assert rep.spatial_seconds < 0.1
        assert si_sdr(lead_s, lead2) > si_sdr(lead_m, lead2) - 0.5
        assert si_sdr(lead_s, lead2) > si_sdr(stem, lead2) + 6.0


def test_benchmark_references(monkeypatch):
    """The two references bench_backing reports beside the split: the ideal mask gives the stem back
    where there is no backing and nothing of a part that is all backing, and beats the unsplit stem
    on a two-voice mixture; the backing's true track is the lead's, later and shifted, voiced only
    in the sections where the backing sings."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_backing import ideal_mask_lead, true_backing_track

    n = int(RATE * SECONDS)
    lead = np.stack([harmonic_tone(220.0, SECONDS, RATE)] * 2).astype(np.float32)
    back = 0.5 * np.stack([harmonic_tone(330.0, SECONDS, RATE)] * 2).astype(np.float32)
    alone = ideal_mask_lead(lead, lead, np.zeros_like(lead), RATE)
    assert np.max(np.abs(alone - lead)) < 1e-4
    assert np.max(np.abs(ideal_mask_lead(back, np.zeros_like(back), back, RATE))) < 1e-6
    stem = lead + back
    assert si_sdr(ideal_mask_lead(stem, lead, back, RATE), lead) > si_sdr(stem, lead) + 10.0

    truth = track_of(np.full(n, 220.0))
    bt = true_backing_track(truth, 7.0, 60.0, 1.0)
    times = np.asarray(bt.times)
    assert np.allclose(bt.f0[times > 0.1], 220.0 * 2 ** (7 / 12))
    assert not np.any(bt.voiced[times < 1.0]) and np.all(bt.voiced[(times >= 1.0) & (times < 2.0)])
    assert not np.any(bt.voiced[(times >= 2.0) & (times < 3.0)])
