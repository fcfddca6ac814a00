"""The loaded Seed-VC stack: DiT + length regulator, Whisper encoder, CAM++ and BigVGAN, and the
stages between audio and audio.

A model folder holds (as ``singvc models fetch seedvc`` lays it out, or as the user copies it)::

    DIR/DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth
    DIR/config_dit_mel_seed_uvit_whisper_base_f0_44k.yml
    DIR/campplus_cn_common.bin
    DIR/whisper-small/{config.json, model.safetensors, preprocessor_config.json}
    DIR/bigvgan_v2_44khz_128band_512x/{config.json, bigvgan_generator.pt}

Every stage is float32 and deterministic for a given noise seed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ...errors import ModelLoadError, ModelNotFoundError
from .bigvgan import BigVGAN
from .campplus import CAMPPlus, sizes_from_state
from .features import MelSpectrogram, campplus_fbank, to_16k, whisper_content
from .model import SeedVCConfig, SeedVCModel, sample

DIT_CHECKPOINT = "DiT_seed_v2_uvit_whisper_base_f0_44k_bigvgan_pruned_ft_ema_v2.pth"
DIT_CONFIG = "config_dit_mel_seed_uvit_whisper_base_f0_44k.yml"
CAMPPLUS_FILE = "campplus_cn_common.bin"
WHISPER_DIR = "whisper-small"
WHISPER_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
BIGVGAN_DIR = "bigvgan_v2_44khz_128band_512x"
BIGVGAN_FILES = ("config.json", "bigvgan_generator.pt")
#: the reference is cut to this many seconds (the model's in-context prompt)
MAX_REFERENCE_SECONDS = 25
#: the DiT's context: prompt + source window, in seconds
CONTEXT_SECONDS = 30


def required_files(root: Path) -> list[Path]:
    """Every file :meth:`SeedVCStack.from_folder` reads."""
    root = Path(root)
    return ([root / DIT_CHECKPOINT, root / DIT_CONFIG, root / CAMPPLUS_FILE]
            + [root / WHISPER_DIR / f for f in WHISPER_FILES] + [root / BIGVGAN_DIR / f for f in BIGVGAN_FILES])


def _load_torch(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: one line, exit 3
        raise ModelLoadError(f"cannot read {path} ({type(exc).__name__}: {exc})") from exc


@dataclass
class ReferenceFeatures:
    """What the model derives from the reference (cached per voice)."""

    content: torch.Tensor  # [1, T50, d_model]
    mel: torch.Tensor  # [1, n_mels, P] the in-context prompt
    fbank: torch.Tensor  # [1, T100, 80]
    style: torch.Tensor  # [1, 192]
    prompt_cond: torch.Tensor  # [1, P, channels]


@dataclass
class SourceFeatures:
    content: torch.Tensor
    mel: torch.Tensor
    cond: torch.Tensor  # [1, T, channels]


class SeedVCStack:
    """All four networks, loaded once; methods are the stages."""

    def __init__(self, model: SeedVCModel, whisper_encoder, whisper_extractor, campplus: CAMPPlus, vocoder: BigVGAN,
                 device: str = "cpu"):
        self.model = model.eval().to(device)
        self.config: SeedVCConfig = model.config
        self.whisper = whisper_encoder.eval().to(device)
        self.extractor = whisper_extractor
        self.campplus = campplus.eval().to(device)
        self.vocoder = vocoder.eval().to(device)
        c = self.config
        self.mel = MelSpectrogram(c.sample_rate, c.n_fft, c.win_length, c.hop_length, c.n_mels, c.fmin, c.fmax).to(device)
        self.device = device

    @classmethod
    def from_folder(cls, root: str | Path, device: str = "cpu") -> "SeedVCStack":
        """Load every network from ``root`` (layout in the module docstring).

        Raises:
            ModelNotFoundError: files missing (the message names them and the folder).
            ModelLoadError: a file that does not fit the model.
        """
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # library code: no bars on stderr

        root = Path(root)
        missing = [str(p.relative_to(root)) for p in required_files(root) if not p.is_file()]
        if missing:
            raise ModelNotFoundError(f"Seed-VC files missing in {root}: {', '.join(missing)}")
        try:
            config = SeedVCConfig.from_yaml_dict(yaml.safe_load((root / DIT_CONFIG).read_text()))
        except yaml.YAMLError as exc:
            raise ModelLoadError(f"cannot read {root / DIT_CONFIG} ({exc})") from exc
        model = SeedVCModel(config)
        model.load_checkpoint_state(_load_torch(root / DIT_CHECKPOINT))

        wdir = root / WHISPER_DIR
        try:
            wconfig = WhisperConfig.from_pretrained(wdir)
            whisper = WhisperModel.from_pretrained(wdir, config=wconfig, dtype=torch.float32).encoder
            extractor = WhisperFeatureExtractor.from_pretrained(wdir)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load Whisper from {wdir} ({exc})") from exc
        if whisper.config.d_model != config.lr_in_channels:
            raise ModelLoadError(f"Whisper d_model {whisper.config.d_model} != the length regulator's input "
                                 f"{config.lr_in_channels}")

        cstate = _load_torch(root / CAMPPLUS_FILE)
        try:
            campplus = CAMPPlus(**sizes_from_state(cstate))
        except (KeyError, AttributeError) as exc:
            raise ModelLoadError(f"{root / CAMPPLUS_FILE} is not a CAM++ state dict ({exc!r})") from exc
        campplus.load_published(cstate)

        vdir = root / BIGVGAN_DIR
        try:
            vconfig = json.loads((vdir / "config.json").read_text())
        except ValueError as exc:
            raise ModelLoadError(f"cannot read {vdir / 'config.json'} ({exc})") from exc
        vocoder = BigVGAN(vconfig)
        vocoder.load_published(_load_torch(vdir / "bigvgan_generator.pt"))
        if int(vconfig.get("num_mels", 128)) != config.n_mels or vocoder.hop != config.hop_length:
            raise ModelLoadError("BigVGAN config does not match the DiT's mel (bands or hop)")
        return cls(model, whisper, extractor, campplus, vocoder, device)

    # -- stages (inputs: mono float32 [1, samples] at the model's rate; f0 [1, frames] Hz at 100 frames/s)
    @torch.no_grad()
    def reference_features(self, audio: torch.Tensor, f0: torch.Tensor) -> ReferenceFeatures:
        audio = audio[:, : self.config.sample_rate * MAX_REFERENCE_SECONDS].to(self.device)
        audio16 = to_16k(audio, self.config.sample_rate)
        content = whisper_content(self.extractor, self.whisper, audio16)
        mel = self.mel(audio)
        fbank = campplus_fbank(audio16)
        style = self.campplus(fbank)
        frames = torch.tensor([mel.shape[-1]], device=self.device)
        prompt_cond = self.model.length_regulator(content, frames, f0.to(self.device))
        return ReferenceFeatures(content, mel, fbank, style, prompt_cond)

    @torch.no_grad()
    def source_features(self, audio: torch.Tensor, f0: torch.Tensor) -> SourceFeatures:
        audio = audio.to(self.device)
        audio16 = to_16k(audio, self.config.sample_rate)
        content = whisper_content(self.extractor, self.whisper, audio16)
        mel = self.mel(audio)
        frames = torch.tensor([mel.shape[-1]], device=self.device)
        cond = self.model.length_regulator(content, frames, f0.to(self.device))
        return SourceFeatures(content, mel, cond)

    def noise(self, frames: int, seed: int) -> torch.Tensor:
        """Standard normal ``[1, n_mels, frames]`` from ``seed`` (drawn on the CPU, so a seed gives
        the same noise on every device)."""
        gen = torch.Generator().manual_seed(int(seed))
        return torch.randn([1, self.config.n_mels, frames], generator=gen).to(self.device)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, reference: ReferenceFeatures, steps: int, cfg_rate: float, seed: int,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Mel ``[1, n_mels, T]`` for ``cond`` = prompt conditioning + source window ``[1, P + T, C]``."""
        noise = self.noise(cond.shape[1], seed) if noise is None else noise
        return sample(self.model.dit, cond, reference.mel, reference.style, steps, cfg_rate, noise)

    @torch.no_grad()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Waveform ``[1, frames · hop]`` in [-1, 1]."""
        return self.vocoder(mel).squeeze(1)
