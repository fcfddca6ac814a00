"""The ``seedvc`` converter in the pipeline: reference selection and its per-voice cache, the
profile keeping its clip, windows written as they are done, and covers through the CLI with the
small random model of ``tests/data/seedvc-small`` (the numerics are checked in test_seedvc.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")
pytest.importorskip("yaml")
pytest.importorskip("transformers")  # the 'neural' extra

from singvc.cli import main  # noqa: E402
from singvc.converters import get_converter  # noqa: E402
from singvc.converters.seedvc.converter import join_spans, select_reference, window_spans  # noqa: E402
from singvc.pitch import PitchTrack  # noqa: E402
from singvc.voice import VoiceProfile, reference_path  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "seedvc-small"
RATE = 44100


def _grid(pattern: list[tuple[float, bool]]) -> np.ndarray:
    """An F0 grid (100 frames/s) from ``[(seconds, voiced), ...]``."""
    return np.concatenate([np.full(int(round(s * 100)), 220.0 if v else 0.0, np.float32) for s, v in pattern])


def test_reference_selection_shortens_pauses_and_trims_silence():
    f0 = _grid([(2.0, False), (3.0, True), (4.0, False), (3.0, True), (0.1, False), (2.0, True), (5.0, False)])
    spans = select_reference(f0)
    kept = np.concatenate([np.arange(a, b) for a, b in spans])
    voiced = f0 > 0
    assert voiced[kept].sum() == voiced.sum()  # every sung frame is kept
    assert kept[0] == 200 - 10 and kept[-1] == 200 + 300 + 400 + 300 + 10 + 200 + 10 - 1  # 0.1 s edges
    assert (~voiced[kept]).sum() == 10 + 30 + 10 + 10  # the 4 s pause kept 0.3 s; the 0.1 s one whole
    assert all(b > a for a, b in spans) and all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))


def test_reference_selection_takes_the_most_voiced_25_seconds_ending_in_a_pause():
    # 10 s of sparse singing, then 30 s of dense singing (0.9 s notes, 0.1 s breaths)
    sparse = [(0.5, True), (1.5, False)] * 5
    dense = [(0.9, True), (0.1, False)] * 30
    f0 = _grid(sparse + dense)
    spans = select_reference(f0)
    kept = np.concatenate([np.arange(a, b) for a, b in spans])
    assert len(kept) <= 2500 and len(kept) > 2300
    assert kept[0] >= 1000 - 60  # from the dense part (the sparse part's pauses cost voiced frames)
    assert f0[kept[-1]] == 0  # ends in a breath, not inside a note


def test_reference_selection_without_singing_keeps_the_start():
    assert select_reference(np.zeros(4000, np.float32)) == [(0, 2500)]


def test_joined_pieces_fade_where_they_meet():
    audio = np.ones(1000, np.float32)
    out = join_spans(audio, [(0, 3), (5, 8)], hop=100, fade=20)
    assert out.size == 600 and out[0] == 1 and out[-1] == 1  # the outer ends untouched
    assert out[299] < 0.05 and out[300] < 0.05 and out[150] == 1


def _sung(seconds: float, f0: float, pause_every: float = 0.75) -> tuple[np.ndarray, PitchTrack]:
    t = np.arange(int(seconds * RATE)) / RATE
    voiced = (t % pause_every) < 0.6
    phase = 2 * np.pi * f0 * t
    wave = (sum((0.2 / k) * np.sin(k * phase) for k in range(1, 8)) * voiced).astype(np.float32)
    times = np.arange(0, seconds, 0.01)
    track = PitchTrack(times=times, f0=np.full(times.size, f0), periodicity=np.ones(times.size),
                       voiced=(times % pause_every) < 0.6, hop=0.01, model="tiny")
    return np.stack([wave, 0.5 * wave]), track


def test_windows_written_as_they_are_done_equal_the_whole_assembly(monkeypatch):
    """Each window's audio is written into the output as it is done; the result equals the
    windows assembled in memory with the same cross-fades (the reference implementation's way)."""
    import singvc.converters.seedvc.runtime as runtime

    conv = get_converter("seedvc", steps=1, cfg=0.5, seed=1, seedvc_dir=str(FIXTURE))
    ref, ref_track = _sung(1.2, 330.0)
    voice = conv.prepare_audio(ref, RATE, ref_track)
    vocals, track = _sung(2.3, 220.0)
    monkeypatch.setattr(runtime, "CONTEXT_SECONDS", 2)
    out = conv.convert(vocals, RATE, track, 1.0, voice=voice)
    stack = conv.stack()
    from singvc.converters.seedvc.features import f0_on_grid

    n = vocals.shape[-1]
    f0 = f0_on_grid(track.times, track.f0 * 2 ** (1 / 12), track.voiced, n, RATE)
    src = stack.source_features(torch.from_numpy(vocals.mean(0))[None], torch.from_numpy(f0)[None])
    hop = stack.config.hop_length
    at = np.minimum((np.arange(src.cond.shape[1]) * hop / RATE * 100).round().astype(int), f0.size - 1)
    window = RATE // hop * 2 - voice.features.mel.shape[-1]
    spans = window_spans(f0[at] > 0, window, 16)
    assert len(spans) >= 3
    fade = 16 * hop
    ramp = (np.cos(np.linspace(0, np.pi / 2, fade)) ** 2).astype(np.float32)
    whole = np.zeros(src.cond.shape[1] * hop, np.float32)
    for k, (a, b) in enumerate(spans):
        mel = stack.sample(torch.cat([voice.features.prompt_cond, src.cond[:, a:b]], dim=1), voice.features, 1, 0.5, 1 + k)
        wave = stack.vocode(mel)[0].numpy()
        if k:
            whole[a * hop:a * hop + fade] = whole[a * hop:a * hop + fade] * ramp + wave[:fade] * ramp[::-1]
            whole[a * hop + fade:b * hop] = wave[fade:]
        else:
            whole[:b * hop] = wave
    expected = np.pad(whole, (0, max(0, n - whole.size)))[:n]
    assert np.max(np.abs(out[0] - expected)) < 1e-6 and np.array_equal(out[0], out[1])
    # no click at the joins: the step between neighbouring samples there is no larger than elsewhere
    steps = np.abs(np.diff(out[0]))
    joins = [a * hop + fade // 2 for a, _ in spans[1:]]
    assert max(steps[j - fade // 2: j + fade // 2].max() for j in joins) <= 1.5 * steps.max() + 1e-9


def test_a_profile_keeps_its_reference_audio_beside_the_json(tmp_path, tiny_crepe):
    from singvc.pitch import track_pitch
    from singvc.voice import analyse_voice

    clip, _ = _sung(3.0, 262.0)
    track = track_pitch(clip, RATE, tiny_crepe)
    profile = analyse_voice([(clip, RATE)], [track], "alto", clip_names=["alto.wav"])
    assert profile.reference is not None and profile.reference.audio.shape == (1, clip.shape[-1])
    path = profile.save(tmp_path / "alto.json")
    assert reference_path(path).is_file() and "reference" not in json.loads(path.read_text())
    loaded = VoiceProfile.load(path)
    assert loaded == profile  # the statistics; the audio is compared below
    assert np.array_equal(loaded.reference.audio, profile.reference.audio)
    reference_path(path).unlink()
    assert VoiceProfile.load(path).reference is None  # a profile from before: loads, keeps no audio
    reference_path(path).write_bytes(b"not a wav")
    damaged = VoiceProfile.load(path)  # the statistics load (listing voices does not read the audio)
    with pytest.raises(Exception, match="reference audio"):
        damaged.reference.audio


@pytest.fixture()
def song_files(tmp_path):
    vocals, _ = _sung(2.0, 220.0)
    clip, _ = _sung(3.0, 330.0, pause_every=1.0)
    sf.write(tmp_path / "vocal.wav", vocals.T, RATE, subtype="FLOAT")
    sf.write(tmp_path / "clip.wav", clip.T, RATE, subtype="FLOAT")
    return tmp_path / "vocal.wav", tmp_path / "clip.wav"


def _cover(tmp_path, vocal, voice, out, *extra):
    return main(["cover", str(vocal), "--voice", str(voice), "--converter", "seedvc", "--seedvc-dir", str(FIXTURE),
                 "--steps", "2", "--no-separation", "--pitch-model", "tiny", "--cache-dir", str(tmp_path / "cache"),
                 "--quiet", "-o", str(out), *extra])


def test_a_cover_with_seedvc_names_its_models_and_reuses_the_voice(tmp_path, song_files, monkeypatch):
    monkeypatch.setenv("SINGVC_HOME", str(tmp_path / "home"))
    vocal, clip = song_files
    assert _cover(tmp_path, vocal, clip, tmp_path / "a", "--daw") == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    conv = report["converter"]
    assert (conv["name"], conv["steps"], conv["cfg"], conv["seed"]) == ("seedvc", 2, 0.7, 0)
    assert conv["model_folder"] == str(FIXTURE) and len(conv["model_files"]) == 8
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in conv["model_files"])
    (ref,) = conv["references"].values()
    assert ref["cached"] is False and 2.0 < ref["seconds"] <= 25
    session = json.loads((tmp_path / "a" / "session" / "session.json").read_text())
    assert session["converter"]["model_files"] == conv["model_files"]
    converted, rate = sf.read(tmp_path / "a" / "vocals_converted.wav", always_2d=True)
    original, _ = sf.read(vocal, always_2d=True)
    assert rate == RATE and converted.shape == original.shape and np.isfinite(converted).all()
    assert np.abs(converted).max() > 0
    # a second song with the same voice: what the model derived from the reference comes from the cache
    assert _cover(tmp_path, vocal, clip, tmp_path / "b") == 0
    again = json.loads((tmp_path / "b" / "report.json").read_text())
    (ref,) = again["converter"]["references"].values()
    assert ref["cached"] is True
    b, _ = sf.read(tmp_path / "b" / "vocals_converted.wav", always_2d=True)
    assert np.array_equal(b, converted)  # same seed, same features: the same vocal
    # a saved profile keeps its clip and gives the same features
    assert main(["voice", "enroll", str(clip), "--name", "alto", "--quiet"]) == 0
    assert _cover(tmp_path, vocal, "alto", tmp_path / "c") == 0
    (ref,) = json.loads((tmp_path / "c" / "report.json").read_text())["converter"]["references"].values()
    assert ref["cached"] is True


def test_a_profile_without_audio_stops_seedvc_with_one_line(tmp_path, song_files, capsys):
    vocal, _ = song_files
    shipped = Path(__file__).parents[1] / "presets" / "voices"
    profile = next(shipped.glob("*.json"), None)
    if profile is None:
        pytest.skip("no shipped voice profile")
    assert _cover(tmp_path, vocal, profile, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "keeps no reference audio" in err and "\n" not in err and not (tmp_path / "out").exists()
    assert not (tmp_path / "cache" / "pitch").exists()  # stopped before any audio work


def test_missing_weights_stop_a_cover_before_any_audio_work(tmp_path, song_files, capsys):
    vocal, clip = song_files
    code = main(["cover", str(vocal), "--voice", str(clip), "--converter", "seedvc", "--seedvc-dir",
                 str(tmp_path / "empty"), "--no-separation", "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 3 and "Seed-VC weights missing" in err and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "pitch").exists()


def test_a_vocal_feature_with_seedvc_converts_its_section(tmp_path, song_files):
    vocal, clip = song_files
    recipe = tmp_path / "feature.toml"
    recipe.write_text(f'''
[input]
vocals = "{vocal}"
[settings]
converter = "seedvc"
seedvc_dir = "{FIXTURE}"
steps = 2
separation = false
pitch_model = "tiny"
[voices.guest]
ref = "{clip}"
[[feature.sections]]
time = "0:00-0:01"
voice = "original"
[[feature.sections]]
time = "0:01-0:02"
voice = "guest"
[output]
dir = "{tmp_path / 'out'}"
''')
    assert main(["run", str(recipe), "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["converter"]["name"] == "seedvc" and len(report["converter"]["model_files"]) == 8
    converted, _ = sf.read(tmp_path / "out" / "vocals_converted.wav", always_2d=True)
    original, _ = sf.read(vocal, always_2d=True)
    assert converted.shape == original.shape
    # the original singer before the guest's section (placed in a pause; cross-fade 30 ms), the guest inside it
    start = report["sections"][1]["placed"][0]
    head = slice(0, int((start - 0.05) * RATE))
    assert 0.5 < start < 1.1 and np.abs(converted[head] - original[head]).max() < 1e-3
    assert np.abs(converted[int((start + 0.1) * RATE):] - original[int((start + 0.1) * RATE):]).max() > 0.01
