"""BigVGAN v2 generator (inference only): mel ``[B, n_mels, frames]`` → waveform ``[B, 1, frames · hop]``.

Written for singvc from NVIDIA's BigVGAN v2 architecture (MIT licence, (c) 2024 NVIDIA CORPORATION;
see ``docs/seedvc-architecture.md``), because the ``bigvgan`` package pulls training and plotting
dependencies. Parameter names follow ``bigvgan_generator.pt`` (``{"generator": state_dict}``, with
weight-normed convolutions); the weight norm is folded when loading.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ModelLoadError
from .checkpoint import load_matching

#: the hub's ``nvidia/bigvgan_v2_44khz_128band_512x/config.json`` entries the generator reads
#: (the file itself is read when present; these are the defaults for a model built without it)
V2_44K_128_512X = {
    "num_mels": 128, "upsample_rates": [8, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "activation": "snakebeta",
    "snake_logscale": True, "use_tanh_at_final": False, "use_bias_at_final": False,
    "sampling_rate": 44100, "hop_size": 512, "n_fft": 2048, "win_size": 2048, "fmin": 0, "fmax": None,
}


def kaiser_sinc(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """A Kaiser-windowed sinc low-pass of ``taps`` taps (cutoff and transition half-width as a
    fraction of the sample rate), normalised to unit DC gain; ``[1, 1, taps]``."""
    half = taps // 2
    delta_f = 4 * half_width
    att = 2.285 * (half - 1) * math.pi * delta_f + 7.95
    if att > 50.0:
        beta = 0.1102 * (att - 8.7)
    elif att >= 21.0:
        beta = 0.5842 * (att - 21) ** 0.4 + 0.07886 * (att - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, beta=beta, periodic=False)
    time = (torch.arange(-half, half) + 0.5) if taps % 2 == 0 else (torch.arange(taps) - half)
    taps_ = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps_ / taps_.sum()).view(1, 1, taps)


class Upsample2(nn.Module):
    def __init__(self, ratio: int = 2, taps: int | None = None):
        super().__init__()
        self.ratio = ratio
        self.taps = taps or int(6 * ratio // 2) * 2
        self.pad = self.taps // ratio - 1
        self.crop_left = self.pad * ratio + (self.taps - ratio) // 2
        self.crop_right = self.pad * ratio + (self.taps - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc(0.5 / ratio, 0.6 / ratio, self.taps))

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=self.ratio, groups=c)
        return x[..., self.crop_left: -self.crop_right]


class LowPass(nn.Module):
    def __init__(self, cutoff: float, half_width: float, stride: int, taps: int):
        super().__init__()
        self.stride = stride
        self.pad_left = taps // 2 - int(taps % 2 == 0)
        self.pad_right = taps // 2
        self.register_buffer("filter", kaiser_sinc(cutoff, half_width, taps))

    def forward(self, x):
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class Downsample2(nn.Module):
    def __init__(self, ratio: int = 2, taps: int | None = None):
        super().__init__()
        taps = taps or int(6 * ratio // 2) * 2
        self.lowpass = LowPass(0.5 / ratio, 0.6 / ratio, ratio, taps)

    def forward(self, x):
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """``x + sin²(α x) / β`` per channel, α and β stored as logarithms (``snake_logscale``)."""

    def __init__(self, channels: int, logscale: bool = True):
        super().__init__()
        self.logscale = logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def forward(self, x):
        alpha, beta = self.alpha[None, :, None], self.beta[None, :, None]
        if self.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        return x + 1.0 / (beta + 1e-9) * torch.sin(x * alpha).pow(2)


def polyphase_kernels(up_filter: torch.Tensor, down_filter: torch.Tensor):
    """The 2× anti-aliased activation's two FIRs split into their even and odd phases.

    With ``x`` replicate-padded by ``pad_up = (left, right)`` samples, the up-sampled signal is
    ``y[2m + p] = conv1d(x_padded, up[p])[m]`` (``up``: ``[2, taps_up]``, the ratio 2 folded in),
    and the down-sampled output is ``Σ_p conv1d(y_p_padded, down[p])[m]`` where ``y_p`` is phase
    ``p`` of ``y`` padded by ``pad_down`` with ``y``'s own first and last samples (replicate padding
    of the interleaved signal). Both filters are those of :class:`Upsample2` (ratio 2, even taps)
    and :class:`LowPass` (stride 2); returns ``(up, pad_up, down, pad_down)``.
    """
    hu, hd = up_filter.reshape(-1), down_filter.reshape(-1)
    ku, kd = hu.numel(), hd.numel()
    # up: y[2m + p] = 2 Σ_q hu[p + (ku - 2)/2 - 2q] · x[m + q] (x clamped at its ends)
    taps = {(p, q): 2 * hu[p + (ku - 2) // 2 - 2 * q] for p in (0, 1) for q in range(-ku, ku)
            if 0 <= p + (ku - 2) // 2 - 2 * q < ku}
    up, pad_up = _phase_matrix(taps, hu)
    # down: z[m] = Σ_k hd[k] · y[2m + k - (kd/2 - 1)]; the index 2(m + q) + p gives phase p, offset q
    taps = {((k - kd // 2 + 1) % 2, (k - kd // 2 + 1 - (k - kd // 2 + 1) % 2) // 2): hd[k] for k in range(kd)}
    down, pad_down = _phase_matrix(taps, hd)
    return up, pad_up, down, pad_down


def _phase_matrix(taps: dict, like: torch.Tensor):
    lo = min(q for _, q in taps)
    hi = max(q for _, q in taps)
    out = like.new_zeros(2, hi - lo + 1)
    for (p, q), value in taps.items():
        out[p, q - lo] = value
    return out, (-lo, hi)


class AntiAliasedSnake(nn.Module):
    """Up-sample 2×, SnakeBeta, low-pass and down-sample 2×.

    ``forward`` runs the polyphase form (:func:`polyphase_kernels`): two depthwise FIRs on the
    input instead of a depthwise transposed convolution, SnakeBeta on each phase, and two
    depthwise FIRs back, without building or padding the interleaved 2× signal. It equals
    :meth:`reference_forward` (the published Upsample → SnakeBeta → Downsample) up to float
    rounding (summation order). Set ``polyphase = False`` to run the reference form.
    """

    polyphase = True

    def __init__(self, channels: int, logscale: bool = True):
        super().__init__()
        self.act = SnakeBeta(channels, logscale)
        self.upsample = Upsample2()
        self.downsample = Downsample2()

    def reference_forward(self, x):
        return self.downsample(self.act(self.upsample(x)))

    def _kernels(self, x: torch.Tensor):
        """:func:`polyphase_kernels` of this module's filter buffers, expanded per channel; kept
        until a buffer changes (``load_state_dict`` writes into them in place)."""
        up, low = self.upsample.filter, self.downsample.lowpass.filter
        key = (up.data_ptr(), up._version, low.data_ptr(), low._version, x.dtype, x.device, x.shape[1])
        cached = getattr(self, "_polyphase", None)
        if cached is None or cached[0] != key:
            k_up, pad_up, k_down, pad_down = polyphase_kernels(up.detach(), low.detach())
            c = x.shape[1]
            k_up = k_up.to(x.dtype)[:, None, None, :].expand(-1, c, -1, -1).contiguous()  # [2, C, 1, taps]
            k_down = k_down.to(x.dtype)[:, None, None, :].expand(-1, c, -1, -1).contiguous()
            cached = self._polyphase = (key, (k_up, pad_up, k_down, pad_down))
        return cached[1]

    def forward(self, x):
        up, low = self.upsample, self.downsample.lowpass
        if (not self.polyphase or up.ratio != 2 or up.taps % 2 or low.stride != 2 or low.filter.shape[-1] % 2
                or x.dim() != 3 or torch.is_grad_enabled()):
            return self.reference_forward(x)
        batch, c, t = x.shape
        k_up, (l_up, r_up), k_down, (l_down, r_down) = self._kernels(x)
        act = self.act
        alpha, beta = act.alpha[None, :, None], act.beta[None, :, None]
        if act.logscale:
            alpha, beta = alpha.exp(), beta.exp()
        inv_beta = 1.0 / (beta + 1e-9)
        padded = F.pad(x, (l_up, r_up), mode="replicate")
        # both phases of the SnakeBeta output, padded as the interleaved signal would be
        y = x.new_empty(2, batch, c, l_down + t + r_down)
        inner = y[..., l_down: l_down + t]
        phases = [F.conv1d(padded, k_up[p], groups=c) for p in (0, 1)]
        for p in (0, 1):
            torch.mul(phases[p], alpha, out=inner[p])
        inner.sin_().pow_(2).mul_(inv_beta)
        for p in (0, 1):
            inner[p].add_(phases[p])
        del phases
        y[..., :l_down] = y[0, ..., l_down: l_down + 1]
        y[..., l_down + t:] = y[1, ..., l_down + t - 1: l_down + t]
        out = F.conv1d(y[0], k_down[0], groups=c)
        return out.add_(F.conv1d(y[1], k_down[1], groups=c))


def set_polyphase(model: nn.Module, enabled: bool) -> None:
    """Switch every anti-aliased activation in ``model`` to the polyphase (default) or the
    reference form (for checks and benchmarks)."""
    for module in model.modules():
        if isinstance(module, AntiAliasedSnake):
            module.polyphase = enabled


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class AMPBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations, logscale: bool):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel, padding=_padding(kernel))
                                    for _ in dilations)
        self.activations = nn.ModuleList(AntiAliasedSnake(channels, logscale) for _ in range(2 * len(dilations)))

    def forward(self, x):
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            x = x + c2(self.activations[2 * i + 1](c1(self.activations[2 * i](x))))
        return x


class BigVGAN(nn.Module):
    """The generator, built from the hub's ``config.json`` dict."""

    def __init__(self, config: dict):
        super().__init__()
        cfg = {**V2_44K_128_512X, **config}
        if cfg["resblock"] != "1" or cfg["activation"] != "snakebeta":
            raise ModelLoadError(f"BigVGAN config: only resblock '1' with snakebeta is implemented "
                                 f"(got {cfg['resblock']!r}, {cfg['activation']!r})")
        self.config = cfg
        logscale = bool(cfg["snake_logscale"])
        ch = int(cfg["upsample_initial_channel"])
        self.n_kernels = len(cfg["resblock_kernel_sizes"])
        self.conv_pre = nn.Conv1d(int(cfg["num_mels"]), ch, 7, 1, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg["upsample_rates"], cfg["upsample_kernel_sizes"])):
            cin, cout = ch // 2 ** i, ch // 2 ** (i + 1)
            self.ups.append(nn.ModuleList([nn.ConvTranspose1d(cin, cout, kernel, rate, padding=(kernel - rate) // 2)]))
            for k, d in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]):
                self.resblocks.append(AMPBlock(cout, k, d, logscale))
        final = ch // 2 ** len(cfg["upsample_rates"])
        self.activation_post = AntiAliasedSnake(final, logscale)
        self.conv_post = nn.Conv1d(final, 1, 7, 1, padding=3, bias=bool(cfg["use_bias_at_final"]))
        self.use_tanh = bool(cfg["use_tanh_at_final"])
        self.hop = int(math.prod(cfg["upsample_rates"]))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            acc = None
            for j in range(self.n_kernels):
                y = self.resblocks[i * self.n_kernels + j](x)
                acc = y if acc is None else acc + y
            x = acc / self.n_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.use_tanh else x.clamp(-1.0, 1.0)

    def load_published(self, state: dict) -> None:
        """Load ``torch.load(bigvgan_generator.pt)`` (``{"generator": ...}``), folding weight norm."""
        state = state.get("generator", state) if isinstance(state, dict) else state
        load_matching(self, fold_weight_norm(state), (), "BigVGAN")


def fold_weight_norm(state: dict) -> dict:
    """Replace each ``X.weight_g`` / ``X.weight_v`` pair by ``X.weight = g · v / ‖v‖`` (norm over
    every axis but the first, as ``torch.nn.utils.weight_norm`` with ``dim=0``)."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            base = key[: -len("_v")]
            g = state[base + "_g"]
            dims = tuple(range(1, value.dim()))
            out[base] = value * (g / value.norm(dim=dims, keepdim=True))
        elif key.endswith(".weight_g"):
            continue
        else:
            out[key] = value
    return out
