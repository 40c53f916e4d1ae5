"""Property-based checks of the residual blocks' shared contract (hypothesis).

Every block ``Block(in_channels, out_channels, stride, ...)`` maps ``[B, in, H, W]`` to
``[B, out, ceil(H/stride), ceil(W/stride)]`` for any channels, stride in {1, 2}, groups,
shortcut kind and input size; gradients are finite; with the last scale of the residual
branch zeroed (Goyal et al. 2017) a block is its shortcut (He 2015 post-activation blocks:
the ReLU of it; He 2016 pre-activation blocks: the shortcut itself). Also: bad strides and
groups are ValueErrors, the parameter cost of shortcut options A/B/C (He 2015 §3.3), and
stochastic depth (Huang et al. 2016).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from skiplab.blocks import (
    BasicBlock,
    Bottleneck,
    DropPath,
    PreActBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    drop_path_rates,
)
from skiplab.blocks.conv import check_groups

SETTINGS = settings(max_examples=25, deadline=None)
POST = (BasicBlock, Bottleneck)
PRE = (PreActBlock, PreActBottleneck)
BOTTLENECKS = (Bottleneck, PreActBottleneck)
KINDS = ("A", "B", "C", None)


@st.composite
def block_configs(draw, block=st.sampled_from(POST + PRE), kinds=st.sampled_from(KINDS)):
    """(block class, constructor kwargs, input [B, C, H, W]) for a valid block."""
    cls = draw(block)
    in_channels = draw(st.integers(1, 24))
    out_channels = draw(st.integers(1, 8)) * 4 if cls in BOTTLENECKS else draw(st.integers(1, 24))
    kwargs = dict(stride=draw(st.sampled_from((1, 2))), shortcut=draw(kinds))
    if kwargs["shortcut"] == "A":
        assume(out_channels >= in_channels)  # option A only pads channels
    if cls in BOTTLENECKS:
        groups, base_width = draw(st.sampled_from((1, 2, 4))), draw(st.sampled_from((4, 16, 64)))
        assume(int(out_channels // 4 * base_width / 64) >= 1)
        kwargs.update(groups=groups, base_width=base_width)
    if draw(st.booleans()):
        kwargs["attn_layer"] = draw(st.sampled_from(("se", "cbam")))
    shape = (2, in_channels, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return cls, dict(in_channels=in_channels, out_channels=out_channels, **kwargs), shape


@SETTINGS
@given(block_configs())
def test_shape_contract_and_finite_gradients(config):
    cls, kwargs, shape = config
    block = cls(**kwargs).train()
    x = torch.randn(shape, requires_grad=True)
    out = block(x)
    s = kwargs["stride"]
    assert tuple(out.shape) == (shape[0], kwargs["out_channels"], math.ceil(shape[2] / s), math.ceil(shape[3] / s))
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def expected_shortcut(block, x: torch.Tensor, kind, stride: int, out_channels: int) -> torch.Tensor:
    """W_s x computed here: identity / option A independently of the block, projections
    through the block's own layers (on the pre-activation for pre-activation blocks)."""
    if kind is None:
        return torch.zeros_like(block(x))
    if block.downsample is None or isinstance(block.downsample, ZeroPadShortcut):
        sub = x[:, :, ::stride, ::stride]
        return F.pad(sub, (0, 0, 0, 0, 0, out_channels - x.shape[1]))
    if isinstance(block, PRE):
        return block.downsample(F.relu(block.bn1(x)))
    return block.downsample(x)


@SETTINGS
@given(block_configs())
def test_zero_init_block_is_its_shortcut(config):
    cls, kwargs, shape = config
    block = cls(**kwargs).eval()
    block.zero_init_last()
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(block.residual(x), torch.zeros_like(block.residual(x)))
        expected = expected_shortcut(block, x, kwargs["shortcut"], kwargs["stride"], kwargs["out_channels"])
        if isinstance(block, POST):
            expected = F.relu(expected)
        torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls", POST + PRE)
@pytest.mark.parametrize("stride", [0, 3, -1])
def test_stride_outside_1_2_is_a_value_error(cls, stride):
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        cls(8, 8, stride)


@SETTINGS
@given(st.integers(1, 64), st.integers(1, 64))
def test_groups_must_divide_the_channels(channels, groups):
    if channels % groups:
        with pytest.raises(ValueError, match=f"groups={groups} must divide"):
            check_groups(channels, groups)
    else:
        check_groups(channels, groups)


@pytest.mark.parametrize("cls", BOTTLENECKS)
def test_bad_bottleneck_arguments_are_value_errors(cls):
    with pytest.raises(ValueError, match="groups=0"):
        cls(16, 16, groups=0)
    with pytest.raises(ValueError, match="multiple of its expansion"):
        cls(16, 18)


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@SETTINGS
@given(st.sampled_from(POST + PRE), st.integers(1, 8), st.integers(1, 8), st.sampled_from((1, 2)))
def test_shortcut_option_parameter_costs(cls, cin, cout_units, stride):
    """He 2015 §3.3: A is parameter-free, B adds a projection where the shape changes, C
    everywhere. A projection is a 1x1 conv (in*out) plus, after post-activation blocks, BN (2*out)."""
    cin = cin * 4 if cls in BOTTLENECKS else cin
    cout = cout_units * 4
    assume(cout >= cin)
    n = {kind: count(cls(cin, cout, stride, shortcut=kind)) for kind in KINDS}
    projection = cin * cout + (2 * cout if cls in POST else 0)
    changes_shape = stride != 1 or cin != cout
    assert n["A"] == n[None]
    assert n["B"] - n["A"] == (projection if changes_shape else 0)
    assert n["C"] - n["B"] == (0 if changes_shape else projection)


def test_drop_path_is_the_identity_in_eval():
    x = torch.randn(16, 3, 4, 4)
    assert DropPath(0.5).eval()(x) is x


@SETTINGS
@given(st.floats(0.05, 0.9))
def test_drop_path_drops_whole_samples_at_its_rate_and_keeps_the_expectation(p):
    n = 4000
    x = torch.rand(n, 3, 2, 2) + 0.5
    out = DropPath(p).train()(x)
    dropped = (out == 0).flatten(1).all(1)
    kept = ~dropped
    assert ((out == 0).flatten(1).any(1) == dropped).all(), "a sample is dropped whole or not at all"
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.float().mean().item() - p) < 5 * sigma
    ones = DropPath(p).train()(torch.ones(n, 1))
    assert abs(ones.mean().item() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_drop_path_rate_outside_0_1_is_a_value_error(p):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        DropPath(p)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        drop_path_rates(p, 4)


@SETTINGS
@given(st.floats(0.0, 0.95), st.integers(1, 60))
def test_drop_path_rates_decay_linearly(rate, blocks):
    rates = drop_path_rates(rate, blocks)
    assert len(rates) == blocks and rates[-1] == pytest.approx(rate)
    for i, r in enumerate(rates):  # Huang 2016 Eq. 4: p_l = (l / L) p_L
        assert r == pytest.approx(rate * (i + 1) / blocks)
