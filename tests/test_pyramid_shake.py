"""PyramidNet (Han et al. 2017) and Shake-Shake (Gastaldi 2017): blocks, widths, models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from skiplab import create_model
from skiplab.blocks.pyramid import PyramidBasicBlock, PyramidBottleneck, pyramid_widths
from skiplab.blocks.shake_shake import ShakeShakeBlock, ShiftedPoolShortcut, shake_shake
from skiplab.models.pyramidnet import PyramidNet
from skiplab.models.shake_shake import ShakeShakeNet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- PyramidNet widths
def test_pyramid_widths_follow_eq2_floor_and_the_authors_rounding():
    # D_k = 16 + floor(10 k / 4) = 16 + floor(2.5, 5, 7.5, 10)
    assert pyramid_widths(10, 4) == [18, 21, 23, 26]
    # the authors' code accumulates 2.5 and rounds half to even: 18.5 -> 18, 23.5 -> 24
    assert pyramid_widths(10, 4, rounding="round") == [18, 21, 24, 26]


def test_pyramid_widths_of_pyramidnet110_a48():
    widths = pyramid_widths(48, 54)
    assert len(widths) == 54
    assert widths == [16 + (48 * k) // 54 for k in range(1, 55)]
    assert widths[:10] == [16, 17, 18, 19, 20, 21, 22, 23, 24, 24]
    assert widths[-1] == 64  # 16 + alpha
    assert all(0 <= b - a <= 1 for a, b in zip(widths, widths[1:]))  # alpha/N < 1: steps of 0 or 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=48, num_blocks=0), "at least one unit"),
        (dict(alpha=-1, num_blocks=3), "alpha"),
        (dict(alpha=48, num_blocks=3, rounding="ceil"), "rounding"),
    ],
)
def test_pyramid_widths_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pyramid_widths(**kwargs)


def test_pyramidnet_units_get_the_widths_and_strides_of_the_paper():
    model = PyramidNet(depth=20, alpha=12)  # n = 3, N = 9 units, D_k = 16 + floor(4k/3)
    units = [u for stage in model.stages for u in stage]
    assert [u.conv2.out_channels for u in units] == [17, 18, 20, 21, 22, 24, 25, 26, 28]
    assert [u.conv1.stride[0] for u in units] == [1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert units[0].conv1.in_channels == 16 and model.num_features == 28
    assert [f["num_chs"] for f in model.feature_info] == [20, 24, 28]


# --------------------------------------------------------------------------- PyramidNet counts
def test_pyramidnet110_a48_parameter_count():
    model = create_model("cifar_pyramidnet110_a48")
    count = n_params(model)
    assert count == 1_739_730
    # Table 4 prints "1.7M" (two digits): our count rounds to it (+2.3% of 1.7M exactly)
    assert round(count / 1e6, 1) == 1.7
    assert model.num_features == 64


def test_pyramidnet272_a200_parameter_count():
    model = create_model("cifar_pyramidnet272_a200")
    count = n_params(model)
    assert count == 26_049_562
    assert abs(count / 26.0e6 - 1) < 0.01  # Table 4: 26.0M
    assert model.num_features == 4 * 216
    assert isinstance(model.layer1[0], PyramidBottleneck)


def test_pyramidnet_has_no_projection_parameters():
    model = PyramidNet(depth=20, alpha=12)
    assert not any("downsample" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize("depth, bottleneck", [(21, False), (21, True), (2, False)])
def test_pyramidnet_rejects_impossible_depths(depth, bottleneck):
    with pytest.raises(ValueError, match="depth must be"):
        PyramidNet(depth=depth, alpha=12, bottleneck=bottleneck)


# --------------------------------------------------------------------------- PyramidNet blocks
def test_pyramid_block_starts_as_pooled_zero_padded_identity():
    block = PyramidBasicBlock(6, 10, stride=2).eval()
    block.zero_init_last()
    x = torch.randn(2, 6, 8, 8)
    expected = F.pad(F.avg_pool2d(x, 2), (0, 0, 0, 0, 0, 4))
    assert torch.equal(block(x), expected)  # no ReLU after the addition: negatives survive
    assert (block(x) < 0).any()


def test_pyramid_block_branch_order_is_bn_conv_bn_relu_conv_bn():
    block = PyramidBasicBlock(4, 4).eval()
    with torch.no_grad():
        for bn in (block.bn1, block.bn2, block.bn3):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 6, 6)
    branch = block.bn3(block.conv2(F.relu(block.bn2(block.conv1(block.bn1(x))))))
    assert torch.allclose(block(x), branch + x, atol=1e-6)


def test_pyramid_bottleneck_widths_and_odd_inputs():
    block = PyramidBottleneck(16, 4 * 20, stride=2)
    assert (block.conv1.out_channels, block.conv3.out_channels) == (20, 80)
    assert block(torch.randn(2, 16, 9, 9)).shape == (2, 80, 5, 5)  # ceil pooling matches the strided conv
    with pytest.raises(ValueError, match="multiple of 4"):
        PyramidBottleneck(16, 42)


def test_pyramid_drop_path_keeps_the_zero_padded_shortcut():
    torch.manual_seed(0)
    block = PyramidBasicBlock(4, 6, stride=1, drop_path=0.5).train()
    x = torch.randn(64, 4, 4, 4)
    shortcut = F.pad(x, (0, 0, 0, 0, 0, 2))
    out = block(x)
    dropped = torch.tensor([torch.equal(o, s) for o, s in zip(out, shortcut)])
    assert 0 < dropped.sum() < 64  # some samples lose their branch, never their shortcut


def test_pyramidnet_forward_features_and_drop_path_rates():
    model = create_model("cifar_pyramidnet", depth=20, alpha=12, num_classes=7, drop_path_rate=0.3, in_chans=1)
    assert model.default_image_size == 32
    rates = [u.drop_path.p for s in model.stages for u in s]
    assert rates[-1] == pytest.approx(0.3) and rates == sorted(rates)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad.abs().sum() > 0
    feats = create_model("cifar_pyramidnet", depth=20, alpha=12, features_only=True).eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(20, 32, 32), (24, 16, 16), (28, 8, 8)]
    assert (feats[-1] >= 0).all()  # after the final BN-ReLU


# --------------------------------------------------------------------------- Shake-Shake mixing
def make_shake_block() -> ShakeShakeBlock:
    block = ShakeShakeBlock(8, 16, stride=2)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters everywhere
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
    return block


def test_shake_shake_eval_is_the_mean_of_the_branches_plus_shortcut():
    block = make_shake_block().eval()
    x = torch.randn(4, 8, 8, 8)
    expected = 0.5 * (block.branch1(x) + block.branch2(x)) + block.shortcut(x)
    assert torch.equal(block(x), expected)


def test_shake_shake_training_forward_mixes_with_one_alpha_per_sample():
    block = make_shake_block().train()
    x = torch.randn(6, 8, 8, 8)
    torch.manual_seed(123)
    out = block(x)
    b1, b2, s = block.branch1(x), block.branch2(x), block.shortcut(x)  # same batch statistics
    torch.manual_seed(123)
    alpha = torch.rand(6, 1, 1, 1)
    assert torch.allclose(out, alpha * b1 + (1 - alpha) * b2 + s, atol=1e-5)
    # the mix recovered from the output is constant within a sample, in [0, 1], and differs across samples
    ratio = ((out - s - b2) / (b1 - b2)).flatten(1)
    mask = (b1 - b2).flatten(1).abs() > 1e-2
    per_sample = torch.stack([r[m].median() for r, m in zip(ratio, mask)])
    assert torch.allclose(per_sample, alpha.flatten(), atol=1e-3)
    assert ((per_sample >= 0) & (per_sample <= 1)).all() and per_sample.std() > 0.05


def test_shake_shake_backward_uses_an_independent_beta():
    x1 = torch.randn(5, 3, 4, 4, requires_grad=True)
    x2 = torch.randn(5, 3, 4, 4, requires_grad=True)
    grad = torch.randn(5, 3, 4, 4)
    torch.manual_seed(7)
    y = shake_shake(x1, x2, training=True)
    y.backward(grad)
    torch.manual_seed(7)
    alpha, beta = torch.rand(5, 1, 1, 1), torch.rand(5, 1, 1, 1)
    assert not torch.allclose(alpha, beta)
    assert torch.allclose(y, alpha * x1 + (1 - alpha) * x2)
    assert torch.allclose(x1.grad, beta * grad) and torch.allclose(x2.grad, (1 - beta) * grad)


def test_shake_shake_block_gradients_reach_branches_with_beta():
    block = make_shake_block().train()
    x = torch.randn(4, 8, 8, 8)
    torch.manual_seed(11)
    block(x).sum().backward()
    torch.manual_seed(11)
    _alpha, beta = torch.rand(4), torch.rand(4)
    # d(sum y)/d(bias of a branch's last BN) = sum over samples and pixels of its coefficient
    pixels = 4 * 4
    assert torch.allclose(block.branch1.bn2.bias.grad, torch.full((16,), float(beta.sum()) * pixels))
    assert torch.allclose(block.branch2.bn2.bias.grad, torch.full((16,), float((1 - beta).sum()) * pixels))


@pytest.mark.parametrize("backward, expected", [("keep", "alpha"), ("even", "half")])
def test_shake_shake_backward_variants(backward, expected):
    x1 = torch.randn(3, 2, 2, 2, requires_grad=True)
    x2 = torch.randn(3, 2, 2, 2, requires_grad=True)
    torch.manual_seed(5)
    shake_shake(x1, x2, True, backward_mode=backward).sum().backward()
    torch.manual_seed(5)
    alpha = torch.rand(3, 1, 1, 1)
    coef = alpha if expected == "alpha" else torch.full_like(alpha, 0.5)
    assert torch.allclose(x1.grad, coef.expand_as(x1)) and torch.allclose(x2.grad, (1 - coef).expand_as(x2))


def test_shake_shake_batch_level_uses_one_alpha():
    x1, x2 = torch.ones(4, 1, 2, 2), torch.zeros(4, 1, 2, 2)
    y = shake_shake(x1, x2, True, level="batch")
    assert torch.allclose(y, y[0:1].expand_as(y))
    with pytest.raises(ValueError, match="level"):
        shake_shake(x1, x2, True, level="pixel")
    with pytest.raises(ValueError, match="same shape"):
        shake_shake(x1, x2[:2], True)


# --------------------------------------------------------------------------- Shake-Shake shortcut
def test_shifted_pool_shortcut_samples_even_and_shifted_odd_pixels():
    sc = ShiftedPoolShortcut(3, 6, stride=2, norm=False)
    with torch.no_grad():
        sc.conv1.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        sc.conv2.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    x = torch.randn(2, 3, 6, 6)
    out = sc(x)
    r = F.relu(x)
    assert out.shape == (2, 6, 3, 3)
    assert torch.equal(out[:, :3], r[:, :, ::2, ::2])
    # second flow: shifted one pixel right and down, so output (i, j) reads input (2i-1, 2j-1)
    assert torch.equal(out[:, 3:, 1:, 1:], r[:, :, 1:-1:2, 1:-1:2])
    assert (out[:, 3:, 0, :] == 0).all() and (out[:, 3:, :, 0] == 0).all()
    with pytest.raises(ValueError, match="even"):
        ShiftedPoolShortcut(3, 7, stride=2)


# --------------------------------------------------------------------------- Shake-Shake models
def test_shake_shake_26_2x96d_parameter_count():
    model = create_model("cifar_shake_shake_26_2x96d")
    count = n_params(model)
    assert count == 26_192_922
    assert abs(count / 26.2e6 - 1) < 0.01  # Gastaldi 2017, Table 1: 26.2M
    assert [len(s) for s in model.stages] == [4, 4, 4]
    assert [f["num_chs"] for f in model.feature_info] == [96, 192, 384]


def test_shake_shake_small_net_trains_and_extracts_features():
    model = create_model("cifar_shake_shake", depth=8, width=32, num_classes=3, drop_path_rate=0.1)
    assert model.default_image_size == 32
    assert model.conv1.out_channels == 16  # the stem is 16 wide, as the author's code:
    assert model.layer1[0].downsample.stride == 1  # so the first unit projects 16 -> 32 at stride 1
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, 3) and x.grad.abs().sum() > 0
    feats = create_model("cifar_shake_shake", depth=8, width=32, features_only=True).eval()(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]


def test_shake_shake_net_rejects_bad_options():
    with pytest.raises(ValueError, match="depth must be"):
        ShakeShakeNet(depth=27)
    with pytest.raises(ValueError, match="even"):
        ShakeShakeNet(depth=8, width=15)
    with pytest.raises(ValueError, match="shake_backward"):
        ShakeShakeNet(depth=8, width=16, shake_backward="random")
