"""Seed-VC numerics against the reference implementation, without the reference.

``tests/data/seedvc-small/`` was made by ``benchmarks/seedvc_reference.py make --size small`` in a
separate venv with the GPL ``seed-vc`` 0.4.3 package: random weights of small sizes written in the
published file formats, fixed synthetic inputs and F0, and the output of every stage of seed-vc's
own inference path (``stages.npz``). singvc loads the same files and must reproduce each stage
within 1e-4. ``published_layout.json`` (``... layout``) holds the keys and shapes of the
full-size published files (the DiT and length regulator built from the 44k yml, BigVGAN 44 kHz,
and the real ``campplus_cn_common.bin``).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("transformers")  # the 'neural' extra

from singvc.converters.seedvc.bigvgan import BigVGAN, fold_weight_norm  # noqa: E402
from singvc.converters.seedvc.campplus import CAMPPlus  # noqa: E402
from singvc.converters.seedvc.features import f0_on_grid  # noqa: E402
from singvc.converters.seedvc.model import DiT, LengthRegulator, SeedVCConfig, SeedVCModel, cfm_velocity, f0_to_bins  # noqa: E402
from singvc.converters.seedvc.runtime import DIT_CHECKPOINT, DIT_CONFIG, SeedVCStack, required_files  # noqa: E402
from singvc.errors import ModelLoadError, ModelNotFoundError  # noqa: E402

FIXTURE = Path(__file__).parent / "data" / "seedvc-small"
TOL = 1e-4


@pytest.fixture(scope="module")
def stack():
    torch.set_num_threads(1)
    return SeedVCStack.from_folder(FIXTURE)


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURE / "stages.npz"))


@pytest.fixture(scope="module")
def ours(stack, golden):
    """Every stage computed by singvc from the fixture's inputs."""
    seed, steps, cfg = int(golden["seed"]), int(golden["steps"]), float(golden["cfg_rate"])
    out = {}
    with torch.no_grad():
        r = stack.reference_features(torch.tensor(golden["reference"])[None], torch.tensor(golden["f0_reference"])[None])
        s = stack.source_features(torch.tensor(golden["source"])[None], torch.tensor(golden["f0_source"])[None])
        out.update(content_reference=r.content, mel_reference=r.mel, fbank=r.fbank, style=r.style,
                   prompt_cond=r.prompt_cond, content_source=s.content, mel_source=s.mel, cond=s.cond)
        cat = torch.cat([r.prompt_cond, s.cond], dim=1)
        p = r.mel.shape[-1]
        noise = stack.noise(cat.shape[1], seed)
        prompt_x = torch.zeros_like(noise)
        prompt_x[..., :p] = r.mel
        x0 = noise.clone()
        x0[..., :p] = 0
        out["velocity0"] = cfm_velocity(stack.model.dit, x0, prompt_x, torch.tensor([cat.shape[1]]), torch.tensor(0.0),
                                        r.style, cat, cfg)
        out["one_step"] = stack.sample(cat, r, 1, cfg, seed)
        out["mel_out"] = stack.sample(cat, r, steps, cfg, seed)
        out["wave_out"] = stack.vocode(out["mel_out"])
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("stage", ["content_source", "content_reference", "mel_source", "mel_reference", "fbank",
                                   "style", "cond", "prompt_cond", "velocity0", "one_step", "mel_out", "wave_out"])
def test_stage_matches_reference_implementation(ours, golden, stage):
    ref, mine = golden[stage], ours[stage]
    assert mine.shape == ref.shape
    assert np.abs(ref).max() > 1e-3  # a stage of zeros would match anything
    np.testing.assert_allclose(mine, ref, rtol=0, atol=TOL)


def test_the_comparison_can_fail(stack, golden):
    """A changed guidance rate or one step fewer moves the mel far beyond the tolerance."""
    with torch.no_grad():
        r = stack.reference_features(torch.tensor(golden["reference"])[None], torch.tensor(golden["f0_reference"])[None])
        s = stack.source_features(torch.tensor(golden["source"])[None], torch.tensor(golden["f0_source"])[None])
        cat = torch.cat([r.prompt_cond, s.cond], dim=1)
        other = stack.sample(cat, r, int(golden["steps"]), 0.5, int(golden["seed"])).numpy()
    assert np.abs(other - golden["mel_out"]).max() > 100 * TOL


def test_sampling_is_deterministic_for_a_seed(stack, golden):
    with torch.no_grad():
        r = stack.reference_features(torch.tensor(golden["reference"])[None], torch.tensor(golden["f0_reference"])[None])
        s = stack.source_features(torch.tensor(golden["source"])[None], torch.tensor(golden["f0_source"])[None])
        cat = torch.cat([r.prompt_cond, s.cond], dim=1)
        a = stack.sample(cat, r, 2, 0.7, 5)
        b = stack.sample(cat, r, 2, 0.7, 5)
        c = stack.sample(cat, r, 2, 0.7, 6)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2


def full_config() -> SeedVCConfig:
    return SeedVCConfig()  # the defaults are the published 44k f0 model's sizes


def test_full_size_model_has_the_published_checkpoint_layout():
    layout = json.loads((FIXTURE / "published_layout.json").read_text())
    with torch.device("meta"):
        model = SeedVCModel(full_config())
        vocoder = BigVGAN({})
        campplus = CAMPPlus()
    cfm = {k[len("estimator."):]: v for k, v in layout["cfm"].items()}
    ours = {k: list(v.shape) for k, v in model.dit.state_dict().items()}
    assert ours == {k: v for k, v in cfm.items() if not k.startswith(DiT.UNUSED_PREFIXES)}
    ours = {k: list(v.shape) for k, v in model.length_regulator.state_dict().items()}
    assert ours == {k: v for k, v in layout["length_regulator"].items() if k not in LengthRegulator.UNUSED}
    folded = fold_weight_norm({k: torch.empty(v, device="meta") for k, v in layout["bigvgan"].items()})
    assert {k: list(v.shape) for k, v in vocoder.state_dict().items()} == {k: list(v.shape) for k, v in folded.items()}
    renamed = {k.replace("xvector.dense.", "dense."): v for k, v in layout["campplus"].items()}
    assert {k: list(v.shape) for k, v in campplus.state_dict().items()} == renamed


def test_a_random_file_with_the_small_published_layout_loads(tmp_path):
    """Random values in the reference's container ({'net': {'cfm', 'length_regulator'}}, 'module.'
    prefixes as DDP leaves them) load; a wrong shape is refused naming the key."""
    state = torch.load(FIXTURE / DIT_CHECKPOINT, map_location="cpu", weights_only=True)
    net = {part: {"module." + k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
                  for k, v in sd.items()} for part, sd in state["net"].items()}
    config = SeedVCConfig.from_yaml_dict(yaml.safe_load((FIXTURE / DIT_CONFIG).read_text()))
    model = SeedVCModel(config)
    model.load_checkpoint_state({"net": net})
    key = "module.estimator.cond_x_merge_linear.weight"
    net["cfm"][key] = net["cfm"][key][:, :-1]
    with pytest.raises(ModelLoadError, match="cond_x_merge_linear"):
        SeedVCModel(config).load_checkpoint_state({"net": net})


def test_missing_files_are_named(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "m")
    (tmp_path / "m" / "campplus_cn_common.bin").unlink()
    (tmp_path / "m" / "whisper-small" / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"campplus_cn_common.bin, whisper-small/model.safetensors"):
        SeedVCStack.from_folder(tmp_path / "m")
    assert len(required_files(tmp_path)) == 8


def test_f0_bins_follow_the_published_quantiser():
    f0 = torch.tensor([0.0, 30.0, 50.0, 1100.0, 1200.0, 440.0])
    bins = f0_to_bins(f0, 256).tolist()
    assert bins[:4] == [1, 1, 1, 255]
    assert bins[4] == 0  # past the top: the reference's arithmetic gives 0
    mel = lambda f: 1127 * np.log(1 + f / 700)  # noqa: E731
    assert bins[5] == round((mel(440) - mel(50)) * 254 / (mel(1100) - mel(50)) + 1)


def test_f0_grid_keeps_unvoiced_frames_at_zero():
    times = np.arange(0, 1.0, 0.01)
    f0 = np.full(times.size, 220.0)
    voiced = times < 0.5
    grid = f0_on_grid(times, f0, voiced, 44100, 44100)
    assert grid.size == 16000 // 160 + 1
    assert np.allclose(grid[:45], 220.0, rtol=1e-5) and np.all(grid[55:] == 0)


# -- the converter ----------------------------------------------------------------------------------

def _sung(seconds: float, f0: float, rate: int = 44100) -> tuple:
    from singvc.pitch import PitchTrack

    t = np.arange(int(seconds * rate)) / rate
    voiced = (t % 0.75) < 0.6
    phase = 2 * np.pi * f0 * t
    wave = (sum((0.2 / k) * np.sin(k * phase) for k in range(1, 8)) * voiced).astype(np.float32)
    times = np.arange(0, seconds, 0.01)
    track = PitchTrack(times=times, f0=np.full(times.size, f0), periodicity=np.ones(times.size),
                       voiced=(times % 0.75) < 0.6, hop=0.01, model="tiny")
    return np.stack([wave, 0.5 * wave]), track


def test_missing_weights_fail_at_once_without_loading_torch(tmp_path):
    """One line naming the files and the folder, in well under 5 s, torch never imported."""
    import subprocess
    import sys
    import time

    code = ("import sys; from singvc.converters import get_converter; from singvc.errors import WeightsUnavailableError\n"
            f"c = get_converter('seedvc', seedvc_dir={str(tmp_path)!r})\n"
            "try:\n    c.check_ready()\nexcept WeightsUnavailableError as e:\n"
            "    print(e.exit_code, 'torch' in sys.modules, str(e))")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert time.monotonic() - start < 5
    code_, torch_loaded, message = done.stdout.strip().split(" ", 2)
    assert (code_, torch_loaded) == ("3", "False")
    assert "\n" not in message and str(tmp_path) in message and "campplus_cn_common.bin" in message
    assert "whisper-small/model.safetensors" in message and "bigvgan_v2_44khz_128band_512x/config.json" in message


def test_converter_output_is_aligned_and_deterministic():
    from singvc.converters import get_converter

    conv = get_converter("seedvc", steps=2, cfg=0.7, seed=3, seedvc_dir=str(FIXTURE))
    ref, ref_track = _sung(1.2, 330.0)
    voice = conv.prepare_audio(ref, 44100, ref_track)
    vocals, track = _sung(1.7, 220.0)
    a = conv.convert(vocals, 44100, track, 2.0, voice=voice)
    b = conv.convert(vocals, 44100, track, 2.0, voice=voice)
    assert a.shape == vocals.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)
    other = get_converter("seedvc", steps=2, cfg=0.7, seed=4, seedvc_dir=str(FIXTURE))
    other._stack = conv._stack
    assert not np.array_equal(a, other.convert(vocals, 44100, track, 2.0, voice=voice))
    info = conv.describe()
    assert {k: info[k] for k in ("name", "steps", "cfg", "seed", "model_folder")} == {
        "name": "seedvc", "steps": 2, "cfg": 0.7, "seed": 3, "model_folder": str(FIXTURE)}
    files = {f["file"]: f for f in info["model_files"]}
    assert len(files) == 8 and files["campplus_cn_common.bin"]["bytes"] == (FIXTURE / "campplus_cn_common.bin").stat().st_size
    assert all(len(f["sha256"]) == 64 for f in files.values())


def test_weights_table_matches_the_folder_layout_the_runtime_reads(tmp_path):
    from singvc import weights

    specs = weights.members("seedvc")
    assert [s.name for s in specs] == ["seedvc-dit", "seedvc-campplus", "seedvc-whisper-small", "seedvc-bigvgan"]
    root = weights.models_dir() / weights.SEEDVC_FOLDER
    listed = sorted(str((s.default_folder() / f.name).relative_to(root)) for s in specs for f in s.files)
    assert listed == sorted(str(p.relative_to(tmp_path)) for p in required_files(tmp_path))
    assert all(f.url.startswith("https://huggingface.co/") for s in specs for f in s.files)
    assert weights.seedvc_missing(FIXTURE) is None


def test_windows_cut_in_pauses_and_cover_every_frame():
    from singvc.converters.seedvc.converter import window_spans

    voiced = np.ones(1000, bool)
    voiced[250:270] = False  # a pause inside the search zone of the first window
    spans = window_spans(voiced, 300, 16)
    assert spans[0][0] == 0 and spans[-1][1] == 1000
    assert all(b - a <= 300 for a, b in spans)
    assert all(spans[i][1] - spans[i + 1][0] == 16 for i in range(len(spans) - 1))  # the cross-fades
    join = spans[0][1] - 8  # the centre of the first cross-fade
    assert 250 <= join < 270 and not voiced[spans[1][0]:spans[0][1]].any()
    assert window_spans(np.ones(100, bool), 300, 16) == [(0, 100)]


def test_a_vocal_longer_than_the_context_is_converted_in_cross_faded_windows(monkeypatch):
    import singvc.converters.seedvc.runtime as runtime
    from singvc.converters import get_converter

    conv = get_converter("seedvc", steps=1, cfg=0.0, seed=0, seedvc_dir=str(FIXTURE))
    ref, ref_track = _sung(1.2, 330.0)
    voice = conv.prepare_audio(ref, 44100, ref_track)
    vocals, track = _sung(1.7, 220.0)
    calls = []
    monkeypatch.setattr(runtime, "CONTEXT_SECONDS", 2)  # 172 frames of context, 69 after the prompt
    out = conv.convert(vocals, 44100, track, 0.0, voice=voice, callback=calls.append)
    assert out.shape == vocals.shape and np.isfinite(out).all()
    assert len(calls) >= 2 and calls[-1]["seconds_done"] == pytest.approx(146 * 512 / 44100)
