"""BigVGAN's polyphase anti-aliased activation equals the straightforward form.

The straightforward form is written out here as the published code runs it (replicate padding,
a depthwise transposed convolution up-sampling by 2, SnakeBeta, replicate padding, a depthwise
strided low-pass), independent of the module's own fallback, and compared on random input.
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from singvc.converters.seedvc.bigvgan import (  # noqa: E402
    V2_44K_128_512X, AntiAliasedSnake, BigVGAN, SnakeBeta, kaiser_sinc, polyphase_kernels, set_polyphase)

TOL = 1e-5


def slow_activation(x, log_alpha, log_beta, up_filter, down_filter):
    c = x.shape[1]
    taps = up_filter.shape[-1]
    pad = taps // 2 - 1
    y = F.pad(x, (pad, pad), mode="replicate")
    y = 2 * F.conv_transpose1d(y, up_filter.expand(c, -1, -1), stride=2, groups=c)
    y = y[..., 2 * pad + (taps - 2) // 2: -(2 * pad + (taps - 1) // 2)]
    alpha, beta = log_alpha.exp()[None, :, None], log_beta.exp()[None, :, None]
    y = y + 1.0 / (beta + 1e-9) * torch.sin(y * alpha) ** 2
    taps = down_filter.shape[-1]
    y = F.pad(y, (taps // 2 - 1, taps // 2), mode="replicate")
    return F.conv1d(y, down_filter.expand(c, -1, -1), stride=2, groups=c)


def random_activation(channels: int, seed: int) -> AntiAliasedSnake:
    gen = torch.Generator().manual_seed(seed)
    act = AntiAliasedSnake(channels).eval()
    with torch.no_grad():
        act.act.alpha.copy_(0.5 * torch.randn(channels, generator=gen))
        act.act.beta.copy_(0.5 * torch.randn(channels, generator=gen))
    return act


@pytest.mark.parametrize("batch,channels,frames", [(1, 1, 1), (1, 3, 2), (2, 5, 7), (1, 24, 333), (2, 48, 1000)])
def test_polyphase_activation_equals_the_straightforward_form(batch, channels, frames):
    act = random_activation(channels, frames)
    x = 0.8 * torch.randn(batch, channels, frames, generator=torch.Generator().manual_seed(channels))
    with torch.no_grad():
        fast = act(x)
        slow = slow_activation(x, act.act.alpha, act.act.beta, act.upsample.filter, act.downsample.lowpass.filter)
        other = act.reference_forward(x)
    assert fast.shape == slow.shape == (batch, channels, frames)
    assert slow.abs().max() > 0.1
    assert torch.equal(other, slow)  # the module's fallback is the straightforward form
    assert (fast - slow).abs().max() <= TOL


def test_the_comparison_sees_a_wrong_filter_or_edge():
    """A filter one tap off misses by far more than the tolerance, and so does a change of the
    first input sample at the output's first samples (the edges are compared, not only the middle)."""
    act = random_activation(8, 0)
    x = torch.randn(1, 8, 50, generator=torch.Generator().manual_seed(3))
    h = act.upsample.filter
    with torch.no_grad():
        fast = act(x)
        shifted = slow_activation(x, act.act.alpha, act.act.beta, torch.roll(h, 1, -1), h)
        y = x.clone()
        y[..., 0] += 1.0
        moved = act(y)
    assert (fast - shifted).abs().max() > 100 * TOL
    assert (moved - fast)[..., :3].abs().max() > 100 * TOL


def test_polyphase_kernels_reproduce_the_filters():
    h = kaiser_sinc(0.25, 0.3, 12)
    up, pad_up, down, pad_down = polyphase_kernels(h, h)
    assert pad_up == pad_down == (3, 3) and up.shape == down.shape == (2, 7)
    taps = h.reshape(-1)
    for phases, scale in ((up, 2), (down, 1)):
        assert (phases == 0).sum() == 2  # one unused tap per phase
        nonzero = phases.reshape(-1)[phases.reshape(-1) != 0]
        assert torch.equal(torch.sort(nonzero).values, torch.sort(scale * taps).values)


def test_kernels_follow_a_loaded_filter():
    act = random_activation(4, 1)
    x = torch.randn(1, 4, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        act(x)  # fills the cache
        state = act.state_dict()
        state["upsample.filter"] = state["upsample.filter"].flip(-1).roll(1, -1)
        act.load_state_dict(state)
        fast = act(x)
        slow = act.reference_forward(x)
    assert (fast - slow).abs().max() <= TOL


def test_small_generator_is_the_same_either_way():
    cfg = {**V2_44K_128_512X, "upsample_initial_channel": 64, "num_mels": 16}
    torch.manual_seed(0)
    model = BigVGAN(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SnakeBeta):
                m.alpha.normal_(0, 0.5)
                m.beta.normal_(0, 0.5)
        mel = torch.randn(1, 16, 9) - 3
        set_polyphase(model, False)
        slow = model(mel)
        set_polyphase(model, True)
        fast = model(mel)
    assert fast.shape == (1, 1, 9 * 512) and slow.abs().max() > 1e-3
    assert (fast - slow).abs().max() <= TOL
