"""The Seed-VC f0-conditioned diffusion transformer, its length regulator and the flow-matching sampler.

Written for singvc from the architecture described in ``docs/seedvc-architecture.md``; the
module and parameter names follow the published checkpoint's keys so that its ``state_dict``
loads as it is. Shapes: mel ``[batch, n_mels, frames]``, content and conditioning
``[batch, frames, channels]``, style ``[batch, style_dim]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelLoadError
from .checkpoint import load_matching


@dataclass
class SeedVCConfig:
    """The sizes of the DiT and the length regulator, and the mel parameters (the ``.yml``)."""

    sample_rate: int = 44100
    n_fft: int = 2048
    win_length: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    hidden_dim: int = 768
    num_heads: int = 12
    depth: int = 17
    content_dim: int = 768
    content_codebook_size: int = 1024
    style_dim: int = 192
    uvit_skip_connection: bool = True
    lr_channels: int = 768
    lr_in_channels: int = 768
    lr_codebook_size: int = 2048
    lr_sampling_ratios: tuple[int, ...] = (1, 1, 1, 1)
    n_f0_bins: int = 256
    #: positions of the rotary table (the reference builds 16384)
    rope_positions: int = 16384
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_yaml_dict(cls, config: dict) -> "SeedVCConfig":
        """Read the published ``config_dit_mel_*.yml`` (already parsed)."""
        try:
            spect = config["preprocess_params"]["spect_params"]
            model = config["model_params"]
            dit, lr = model["DiT"], model["length_regulator"]
            unsupported = [
                name for name, value in (
                    ("DiT.final_layer_type", dit.get("final_layer_type", "mlp") != "mlp"),
                    ("DiT.style_condition", not dit.get("style_condition", True)),
                    ("DiT.time_as_token", dit.get("time_as_token", False)),
                    ("DiT.style_as_token", dit.get("style_as_token", False)),
                    ("DiT.long_skip_connection", dit.get("long_skip_connection", False)),
                    ("DiT.is_causal", dit.get("is_causal", False)),
                    ("DiT.zero_prompt_speech_token", dit.get("zero_prompt_speech_token", False)),
                    ("DiT.f0_condition", not dit.get("f0_condition", False)),
                    ("length_regulator.is_discrete", lr.get("is_discrete", False)),
                    ("length_regulator.vector_quantize", lr.get("vector_quantize", False)),
                    ("length_regulator.n_codebooks", lr.get("n_codebooks", 1) != 1),
                ) if value
            ]
            if unsupported:
                raise ModelLoadError(f"Seed-VC config: unsupported options {', '.join(unsupported)} "
                                     "(singvc implements the 44.1 kHz f0-conditioned DiT)")
            fmax = spect.get("fmax", "None")
            return cls(
                sample_rate=int(config["preprocess_params"]["sr"]),
                n_fft=int(spect["n_fft"]), win_length=int(spect["win_length"]),
                hop_length=int(spect["hop_length"]), n_mels=int(spect["n_mels"]),
                fmin=float(spect.get("fmin", 0)),
                # the reference reads any fmax but "None" as 8000
                fmax=None if fmax in (None, "None") else 8000.0,
                hidden_dim=int(dit["hidden_dim"]), num_heads=int(dit["num_heads"]), depth=int(dit["depth"]),
                content_dim=int(dit["content_dim"]), content_codebook_size=int(dit["content_codebook_size"]),
                style_dim=int(model["style_encoder"]["dim"]),
                uvit_skip_connection=bool(dit.get("uvit_skip_connection", False)),
                lr_channels=int(lr["channels"]), lr_in_channels=int(lr["in_channels"]),
                lr_codebook_size=int(lr["content_codebook_size"]),
                lr_sampling_ratios=tuple(int(r) for r in lr["sampling_ratios"]),
                n_f0_bins=int(lr.get("n_f0_bins", 512)),
                extra={"vocoder": dict(model.get("vocoder", {})),
                       "speech_tokenizer": dict(model.get("speech_tokenizer", {}))},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"Seed-VC config: missing or bad entry ({exc!r})") from exc

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


# -- length regulator -----------------------------------------------------------------------------

F0_MIN_HZ, F0_MAX_HZ = 50.0, 1100.0


def _hz_to_mel(f0):
    return 1127.0 * np.log(1.0 + f0 / 700.0)


def f0_to_bins(f0: torch.Tensor, n_bins: int) -> torch.Tensor:
    """F0 in Hz (0 = unvoiced) → integer bins on a mel scale between 50 and 1100 Hz, as the
    published model was trained: unvoiced and anything at or under 50 Hz → 1, 1100 Hz → n_bins − 1,
    and (as the reference computes it) a pitch that rounds past the last bin → 0."""
    mel = 1127.0 * torch.log(1.0 + f0 / 700.0)
    lo, hi = _hz_to_mel(F0_MIN_HZ), _hz_to_mel(F0_MAX_HZ)
    a = (n_bins - 2) / (hi - lo)
    b = lo * a - 1.0
    mel = torch.where(mel > 0, mel * a - b, mel)
    bins = torch.round(mel).long().clamp(min=1)
    return bins.masked_fill(bins >= n_bins, 0)


def sequence_mask(lengths: torch.Tensor, max_length: int | None = None) -> torch.Tensor:
    """``[batch, max_length]`` True where the frame index is below the item's length."""
    max_length = int(lengths.max()) if max_length is None else max_length
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


class LengthRegulator(nn.Module):
    """Content features (any frame rate) + F0 → conditioning at the mel frame rate."""

    def __init__(self, config: SeedVCConfig):
        super().__init__()
        ch = config.lr_channels
        layers: list[nn.Module] = []
        for _ in config.lr_sampling_ratios:
            layers += [nn.Conv1d(ch, ch, 3, 1, 1), nn.GroupNorm(1, ch), nn.Mish()]
        layers.append(nn.Conv1d(ch, ch, 1, 1))
        self.model = nn.Sequential(*layers)
        self.content_in_proj = nn.Linear(config.lr_in_channels, ch)
        self.f0_embedding = nn.Embedding(config.n_f0_bins, ch)
        self.f0_mask = nn.Parameter(torch.zeros(1, ch))
        self.n_f0_bins = config.n_f0_bins

    #: checkpoint entries this configuration never uses (discrete content)
    UNUSED = ("embedding.weight", "mask_token")

    def forward(self, content: torch.Tensor, frames: torch.Tensor, f0: torch.Tensor | None) -> torch.Tensor:
        """``content [B, T_c, in]``, ``frames [B]`` (mel frames wanted), ``f0 [B, T_f]`` Hz →
        ``[B, frames.max(), channels]``."""
        n = int(frames.max())
        x = self.content_in_proj(content).transpose(1, 2)
        x = F.interpolate(x.contiguous(), size=n, mode="nearest")
        if f0 is None:
            x = x + self.f0_mask.unsqueeze(-1)
        else:
            emb = self.f0_embedding(f0_to_bins(f0, self.n_f0_bins)).transpose(1, 2)
            x = x + F.interpolate(emb.contiguous(), size=n, mode="nearest")
        out = self.model(x).transpose(1, 2)
        return out * sequence_mask(frames, n).unsqueeze(-1)


# -- DiT ------------------------------------------------------------------------------------------

def _multiple_of(n: int, k: int) -> int:
    return n if n % k == 0 else n + k - n % k


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class AdaptiveRMSNorm(nn.Module):
    """RMSNorm whose scale and shift come from a conditioning vector."""

    def __init__(self, dim: int):
        super().__init__()
        self.project_layer = nn.Linear(dim, 2 * dim)
        self.norm = RMSNorm(dim)
        self.dim = dim

    def forward(self, x, cond):
        scale, shift = self.project_layer(cond).split(self.dim, dim=-1)
        return scale * self.norm(x) + shift


def rotary_table(positions: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """``[positions, head_dim // 2, 2]`` (cos, sin) of the rotary angles."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim)
    angles = torch.outer(torch.arange(positions).float(), inv)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def apply_rotary(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of ``x [B, T, H, D]`` by ``table [T, D/2, 2]``."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    cos, sin = table[None, :, None, :, 0], table[None, :, None, :, 1]
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.wqkv = nn.Linear(dim, 3 * dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, table, mask):
        b, t, d = x.shape
        q, k, v = self.wqkv(x).split(d, dim=-1)
        q = apply_rotary(q.view(b, t, self.heads, self.head_dim), table).transpose(1, 2)
        k = apply_rotary(k.view(b, t, self.heads, self.head_dim), table).transpose(1, 2)
        v = v.view(b, t, self.heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.wo(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        hidden = _multiple_of(int(2 * 4 * dim / 3), 256)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, skip: bool):
        super().__init__()
        self.attention = Attention(dim, heads)
        self.feed_forward = FeedForward(dim)
        self.attention_norm = AdaptiveRMSNorm(dim)
        self.ffn_norm = AdaptiveRMSNorm(dim)
        if skip:
            self.skip_in_linear = nn.Linear(2 * dim, dim)

    def forward(self, x, cond, table, mask, skip=None):
        if skip is not None:
            x = self.skip_in_linear(torch.cat([x, skip], dim=-1))
        h = x + self.attention(self.attention_norm(x, cond), table, mask)
        return h + self.feed_forward(self.ffn_norm(h, cond))


class Transformer(nn.Module):
    def __init__(self, config: SeedVCConfig):
        super().__init__()
        dim = config.hidden_dim
        self.layers = nn.ModuleList(Block(dim, config.num_heads, config.uvit_skip_connection)
                                    for _ in range(config.depth))
        self.norm = AdaptiveRMSNorm(dim)
        half = config.depth // 2
        self.emit = set(range(half)) if config.uvit_skip_connection else set()
        self.receive = set(range(half + 1, config.depth)) if config.uvit_skip_connection else set()
        self.register_buffer("rotary", rotary_table(config.rope_positions, dim // config.num_heads),
                             persistent=False)

    def forward(self, x, cond, mask):
        table = self.rotary[: x.shape[1]]
        stack = []
        for i, layer in enumerate(self.layers):
            x = layer(x, cond, table, mask, stack.pop() if i in self.receive else None)
            if i in self.emit:
                stack.append(x)
        return self.norm(x, cond)


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, n_freq: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_freq, dim), nn.SiLU(), nn.Linear(dim, dim))
        half = n_freq // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half))

    def forward(self, t):
        args = 1000.0 * t[:, None].float() * self.freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class DiT(nn.Module):
    """The velocity estimator: ``(x, prompt_x, lengths, t, style, cond) -> [B, n_mels, T]``."""

    #: checkpoint entries this configuration never uses (kept by the reference, not needed here)
    UNUSED_PREFIXES = ("x_embedder.", "cond_embedder.", "content_mask_embedder.", "skip_linear.", "input_pos")

    def __init__(self, config: SeedVCConfig):
        super().__init__()
        dim, mels = config.hidden_dim, config.n_mels
        self.n_mels = mels
        self.transformer = Transformer(config)
        self.t_embedder = TimestepEmbedder(dim)
        self.cond_projection = nn.Linear(config.content_dim, dim)
        self.cond_x_merge_linear = nn.Linear(dim + 2 * mels + config.style_dim, dim)
        self.final_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, mels))

    def forward(self, x, prompt_x, lengths, t, style, cond):
        frames = x.shape[-1]
        t_emb = self.t_embedder(t)
        merged = torch.cat([x.transpose(1, 2), prompt_x.transpose(1, 2), self.cond_projection(cond),
                            style[:, None, :].expand(-1, frames, -1)], dim=-1)
        h = self.cond_x_merge_linear(merged)
        mask = None
        if bool((lengths < frames).any()):
            mask = sequence_mask(lengths, frames)[:, None, None, :]
        h = self.transformer(h, t_emb.unsqueeze(1), mask)
        return self.final_mlp(h).transpose(1, 2)


def cfm_velocity(dit: DiT, x, prompt_x, lengths, t, style, cond, cfg_rate: float) -> torch.Tensor:
    """The guided velocity at time ``t`` (a 0-d tensor): the conditional and the null
    (zero prompt, style and conditioning) branch in one batch, ``(1 + r)·v − r·v_null``."""
    if cfg_rate <= 0:
        return dit(x, prompt_x, lengths, t.reshape(1).expand(x.shape[0]), style, cond)
    b = x.shape[0]
    both = dit(torch.cat([x, x]), torch.cat([prompt_x, torch.zeros_like(prompt_x)]), torch.cat([lengths, lengths]),
               t.reshape(1).expand(2 * b), torch.cat([style, torch.zeros_like(style)]),
               torch.cat([cond, torch.zeros_like(cond)]))
    v, v_null = both[:b], both[b:]
    return (1.0 + cfg_rate) * v - cfg_rate * v_null


def sample(
    dit: DiT,
    cond: torch.Tensor,
    prompt: torch.Tensor,
    style: torch.Tensor,
    steps: int,
    cfg_rate: float,
    noise: torch.Tensor,
    on_step: Callable[[int, torch.Tensor], Any] | None = None,
) -> torch.Tensor:
    """Euler integration of the flow from ``noise`` (t = 0) to a mel (t = 1).

    Args:
        cond: ``[B, P + T, C]`` conditioning of prompt and source, from :class:`LengthRegulator`.
        prompt: ``[B, n_mels, P]`` the reference's mel (the in-context prompt).
        style: ``[B, style_dim]``.
        noise: ``[B, n_mels, P + T]`` standard normal.
        on_step: called after each step with (step, x).

    Returns:
        ``[B, n_mels, T]`` the mel after the prompt.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    b, _, total = noise.shape
    p = prompt.shape[-1]
    lengths = torch.full((b,), total, dtype=torch.long, device=noise.device)
    prompt_x = torch.zeros_like(noise)
    prompt_x[..., :p] = prompt
    x = noise.clone()
    x[..., :p] = 0
    t_span = torch.linspace(0, 1, steps + 1, device=noise.device)
    t = t_span[0]
    for k in range(1, steps + 1):
        dt = t_span[k] - t_span[k - 1]
        x = x + dt * cfm_velocity(dit, x, prompt_x, lengths, t, style, cond, cfg_rate)
        t = t + dt
        x[..., :p] = 0
        if on_step is not None:
            on_step(k, x)
    return x[..., p:]


# -- checkpoint -----------------------------------------------------------------------------------

def _strip(state: dict, prefix: str = "module.") -> dict:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


class SeedVCModel(nn.Module):
    """The DiT (``cfm.estimator``) and the length regulator, as in the published checkpoint."""

    def __init__(self, config: SeedVCConfig):
        super().__init__()
        self.config = config
        self.dit = DiT(config)
        self.length_regulator = LengthRegulator(config)

    def load_checkpoint_state(self, state: dict) -> None:
        """Load the ``torch.load``-ed checkpoint (``{"net": {"cfm": ..., "length_regulator": ...}}``)."""
        net = state.get("net") if isinstance(state, dict) else None
        if not isinstance(net, dict) or "cfm" not in net or "length_regulator" not in net:
            raise ModelLoadError("Seed-VC checkpoint: expected {'net': {'cfm': ..., 'length_regulator': ...}}")
        cfm = _strip(net["cfm"])
        estimator = {k[len("estimator."):]: v for k, v in cfm.items() if k.startswith("estimator.")}
        load_matching(self.dit, estimator, DiT.UNUSED_PREFIXES, "Seed-VC DiT")
        load_matching(self.length_regulator, _strip(net["length_regulator"]), LengthRegulator.UNUSED,
                      "Seed-VC length regulator")
