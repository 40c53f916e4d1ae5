"""Residual down/up blocks for encoders and decoders: shapes, residual vs plain, norms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skiplab.blocks import init_weights
from skiplab.blocks.updown import ResidualDownBlock, ResidualUpBlock, make_norm


def param_shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


# --------------------------------------------------------------------------- shape contracts
@pytest.mark.parametrize("stride, size, expected", [(2, 16, 8), (2, 15, 8), (1, 15, 15)])
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_down_block_shape(stride, size, expected, norm):
    block = ResidualDownBlock(3, 8, stride=stride, norm=norm)
    assert block(torch.randn(2, 3, size, size + 2)).shape == (2, 8, expected, (size + 2 + stride - 1) // stride)


@pytest.mark.parametrize(
    "mode, interpolation", [("transpose", "nearest"), ("upsample", "nearest"), ("upsample", "bilinear")]
)
@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("residual", [True, False])
def test_up_block_shape(mode, interpolation, scale, residual):
    block = ResidualUpBlock(8, 4, scale=scale, mode=mode, interpolation=interpolation, residual=residual)
    assert block(torch.randn(2, 8, 5, 7)).shape == (2, 4, 5 * scale, 7 * scale)


def test_down_then_up_restores_the_input_shape():
    down = ResidualDownBlock(1, 16)
    up = ResidualUpBlock(16, 1, norm="none", act="identity")
    x = torch.randn(2, 1, 32, 32)
    assert up(down(x)).shape == x.shape


# --------------------------------------------------------------------------- what the block computes
@pytest.mark.parametrize(
    "make",
    [
        lambda: ResidualDownBlock(4, 6, stride=2),
        lambda: ResidualUpBlock(4, 6, mode="transpose"),
        lambda: ResidualUpBlock(4, 6, mode="upsample"),
    ],
)
def test_residual_block_is_act_of_branch_plus_projection(make):
    block = make().eval()
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 6, 6)
    assert block.downsample is not None
    assert torch.equal(block(x), torch.relu(block.residual(x) + block.shortcut(x)))


def test_identity_shortcut_when_shape_is_unchanged():
    block = ResidualDownBlock(5, 5, stride=1).eval()
    assert block.downsample is None
    x = torch.randn(1, 5, 4, 4)
    assert torch.equal(block(x), torch.relu(block.residual(x) + x))


def test_transposed_shortcut_leaves_no_empty_pixels():
    up = ResidualUpBlock(3, 2, mode="transpose", norm="none")
    out = up.shortcut(torch.randn(1, 3, 4, 4))
    assert out.shape == (1, 2, 8, 8) and (out != 0).all()  # every output pixel sees an input pixel


# --------------------------------------------------------------------------- plain vs residual
@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (ResidualDownBlock, dict(stride=2)),
        (ResidualUpBlock, dict(mode="transpose")),
        (ResidualUpBlock, dict(mode="upsample")),
    ],
)
def test_plain_and_residual_differ_only_in_the_shortcut(cls, kwargs):
    residual = cls(4, 8, **kwargs)
    plain = cls(4, 8, residual=False, **kwargs)
    res_shapes, plain_shapes = param_shapes(residual), param_shapes(plain)
    extra = set(res_shapes) - set(plain_shapes)
    assert extra and all(name.startswith("downsample.") for name in extra)
    assert set(plain_shapes) <= set(res_shapes)
    assert all(res_shapes[n] == s for n, s in plain_shapes.items())
    assert plain.downsample is None and not plain.has_shortcut and residual.has_shortcut
    # the plain block is act(F(x)) with the same branch
    plain.load_state_dict({k: v for k, v in residual.state_dict().items() if not k.startswith("downsample.")})
    residual.eval(), plain.eval()
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(plain(x), torch.relu(residual.residual(x)))


@pytest.mark.parametrize(
    "block",
    [
        ResidualDownBlock(3, 6),
        ResidualUpBlock(3, 6),
        ResidualDownBlock(3, 6, residual=False),
        ResidualUpBlock(3, 6, mode="upsample", residual=False, norm="group"),
    ],
)
def test_gradients_reach_the_input(block):
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    block(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in block.parameters())


# --------------------------------------------------------------------------- zero init
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_zero_init_makes_the_residual_block_its_shortcut(norm):
    block = ResidualDownBlock(3, 6, norm=norm)
    init_weights(block, zero_init_residual=True)
    block.eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(block(x), torch.relu(block.shortcut(x)))


def test_zero_init_leaves_a_plain_block_alone():
    block = ResidualUpBlock(3, 6, residual=False)
    init_weights(block, zero_init_residual=True)
    assert (block.norm2.weight == 1).all()


# --------------------------------------------------------------------------- options
def test_norm_none_has_biases_and_keeps_samples_independent():
    block = ResidualDownBlock(1, 8, norm="none").train()
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in block.modules())
    assert block.conv1.bias is not None and block.conv2.bias is not None
    x = torch.randn(4, 1, 8, 8) * torch.tensor([1.0, 10.0, 100.0, 1000.0]).view(4, 1, 1, 1)
    # SAR intensities span decades: a sample's output must not depend on the rest of the batch
    assert torch.allclose(block(x)[:1], block(x[:1]), atol=1e-4, rtol=1e-5)


def test_group_norm_picks_a_divisor_of_the_channels():
    assert make_norm("group", 48).num_groups == 24
    assert make_norm("group", 64).num_groups == 32
    assert make_norm("group", 6, groups=4).num_groups == 3
    assert isinstance(ResidualUpBlock(4, 48, norm="group").norm1, nn.GroupNorm)


def test_attention_and_activation_options():
    plain = ResidualDownBlock(8, 32)
    se = ResidualDownBlock(8, 32, attn_layer="se", act="leaky_relu")
    assert sum(p.numel() for p in se.parameters()) > sum(p.numel() for p in plain.parameters())
    assert isinstance(se.act, nn.LeakyReLU) and isinstance(se.act1, nn.LeakyReLU) and se.act is not se.act1
    assert ResidualUpBlock(8, 4, act=nn.Mish)(torch.randn(1, 8, 4, 4)).shape == (1, 4, 8, 8)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ResidualDownBlock(3, 4, stride=3), "stride"),
        (lambda: ResidualDownBlock(3, 4, norm="instance"), "norm"),  # ("layer" is GroupNorm(1, C))
        (lambda: ResidualDownBlock(3, 4, act="swishy"), "activation"),
        (lambda: ResidualUpBlock(3, 4, scale=4), "scale"),
        (lambda: ResidualUpBlock(3, 4, mode="pixelshuffle"), "mode"),
        (lambda: ResidualUpBlock(3, 4, mode="upsample", interpolation="bicubic"), "interpolation"),
    ],
)
def test_bad_options_raise_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
