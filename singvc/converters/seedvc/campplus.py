"""CAM++ speaker embedding (the style vector of Seed-VC).

Written for singvc from the architecture of 3D-Speaker's CAM++ (Apache-2.0; see
``docs/seedvc-architecture.md``); module names follow the published ``campplus_cn_common.bin``
so its ``state_dict`` loads as it is. Input: mean-normalised Kaldi fbank ``[B, T, 80]`` at 100
frames/s; output ``[B, embedding_size]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_matching


def _bn_relu(channels: int, affine: bool = True, relu: bool = True) -> nn.Sequential:
    seq = nn.Sequential()
    seq.add_module("batchnorm", nn.BatchNorm1d(channels, affine=affine))
    if relu:
        seq.add_module("relu", nn.ReLU())
    return seq


class ResBlock2d(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FrontEnd(nn.Module):
    """2-D convolutional front end over (frequency, time); ``out_channels`` = channels · bins/8."""

    def __init__(self, feat_dim: int = 80, channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1))
        self.layer2 = nn.Sequential(ResBlock2d(channels, channels, 2), ResBlock2d(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        b, c, f, t = out.shape
        return out.reshape(b, c * f, t)


class TDNN(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)
        self.nonlinear = _bn_relu(cout)

    def forward(self, x):
        return self.nonlinear(self.linear(x))


class ContextAwareMask(nn.Module):
    """A dilated conv whose output is gated by utterance- and segment-level context."""

    SEGMENT = 100

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, reduction: int = 2):
        super().__init__()
        self.linear_local = nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2 * dilation, dilation=dilation,
                                      bias=False)
        self.linear1 = nn.Conv1d(cin, cin // reduction, 1)
        self.linear2 = nn.Conv1d(cin // reduction, cout, 1)

    def forward(self, x):
        t = x.shape[-1]
        seg = F.avg_pool1d(x, self.SEGMENT, self.SEGMENT, ceil_mode=True)
        seg = seg.repeat_interleave(self.SEGMENT, dim=-1)[..., :t]
        context = F.relu(self.linear1(x.mean(-1, keepdim=True) + seg))
        return self.linear_local(x) * torch.sigmoid(self.linear2(context))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(cin)
        self.linear1 = nn.Conv1d(cin, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.cam_layer = ContextAwareMask(bottleneck, growth, kernel, dilation)

    def forward(self, x):
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, cin: int, growth: int, bottleneck: int, kernel: int, dilation: int):
        super().__init__({f"tdnnd{i + 1}": DenseLayer(cin + i * growth, growth, bottleneck, kernel, dilation)
                          for i in range(layers)})

    def forward(self, x):
        for layer in self.values():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class Transit(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.nonlinear = _bn_relu(cin)
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.linear(self.nonlinear(x))


class Dense(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Conv1d(cin, cout, 1, bias=False)
        self.nonlinear = _bn_relu(cout, affine=False, relu=False)

    def forward(self, x):
        return self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)


class CAMPPlus(nn.Module):
    """CAM++: fbank ``[B, T, feat_dim]`` → speaker embedding ``[B, embedding_size]`` (eval mode)."""

    BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))  # (layers, kernel, dilation)

    def __init__(self, feat_dim: int = 80, embedding_size: int = 192, growth_rate: int = 32, bn_size: int = 4,
                 init_channels: int = 128):
        super().__init__()
        self.head = FrontEnd(feat_dim)
        xvector = nn.Sequential()
        xvector.add_module("tdnn", TDNN(self.head.out_channels, init_channels, 5, stride=2))
        channels = init_channels
        for i, (layers, kernel, dilation) in enumerate(self.BLOCKS):
            xvector.add_module(f"block{i + 1}", DenseBlock(layers, channels, growth_rate, bn_size * growth_rate,
                                                           kernel, dilation))
            channels += layers * growth_rate
            xvector.add_module(f"transit{i + 1}", Transit(channels, channels // 2))
            channels //= 2
        xvector.add_module("out_nonlinear", _bn_relu(channels))
        self.xvector = xvector
        self.dense = Dense(2 * channels, embedding_size)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.xvector(self.head(fbank.transpose(1, 2)))
        stats = torch.cat([x.mean(-1), x.std(-1, unbiased=True)], dim=-1)
        return self.dense(stats)

    def load_published(self, state: dict) -> None:
        """Load a ``campplus_*.bin`` state dict (older files keep ``dense`` under ``xvector.``)."""
        renamed = {}
        for key, value in state.items():
            for old, new in (("xvector.dense.", "dense."), ("xvector.stats.", "stats.")):
                if key.startswith(old):
                    key = new + key[len(old):]
            renamed[key] = value
        load_matching(self, renamed, (), "CAM++")


def sizes_from_state(state: dict) -> dict:
    """Constructor arguments of :class:`CAMPPlus` read off a checkpoint's shapes (the published
    file is the default size; small test files differ)."""
    tdnn = state["xvector.tdnn.linear.weight"]
    dense = state.get("dense.linear.weight", state.get("xvector.dense.linear.weight"))
    lin1 = state["xvector.block1.tdnnd1.linear1.weight"]
    growth = state["xvector.block1.tdnnd1.cam_layer.linear_local.weight"].shape[0]
    return {"embedding_size": int(dense.shape[0]), "init_channels": int(tdnn.shape[0]),
            "growth_rate": int(growth), "bn_size": int(lin1.shape[0]) // int(growth),
            "feat_dim": int(tdnn.shape[1]) // 32 * 8}
