"""The CIFAR ResNet family: He 2015 ResNets and plain twins, He 2016 pre-activation,
Wide ResNets, ResNeXt-29 and the small teaching ResNet.

Big models are only constructed (parameter counts, structure); forwards run on small
depths at batch 2.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import torch
from torch import nn

from skiplab.blocks import Bottleneck, PreActBlock, PreActBottleneck
from skiplab.blocks.drop_path import DropPath
from skiplab.blocks.shortcut import ProjectionShortcut, ZeroPadShortcut
from skiplab.models import create_model, list_models
from skiplab.models.cifar_resnet import CifarResNet


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def published_tolerance(millions: str) -> int:
    """1 % of the figure, or half a unit of its last printed digit if that is larger
    ("1.7M" is a rounding: it cannot be checked closer than ±50,000)."""
    value = Decimal(millions)
    half_unit = Decimal(10) ** value.as_tuple().exponent / 2
    return int(max(value * Decimal("0.01"), half_unit) * 1_000_000)


# name, our exact count (10 classes), published figure in millions
COUNTS = [
    ("cifar_resnet20", 269_722, "0.27"),  # He 2015 Table 6
    ("cifar_resnet32", 464_154, "0.46"),
    ("cifar_resnet44", 658_586, "0.66"),
    ("cifar_resnet56", 853_018, "0.85"),
    ("cifar_resnet110", 1_727_962, "1.7"),
    ("cifar_resnet1202", 19_421_274, "19.4"),
    ("cifar_preact_resnet110", 1_730_522, "1.7"),  # He 2016 Table 2
    ("cifar_preact_resnet164", 1_703_258, "1.7"),  # He 2016 Table 4
    ("cifar_wrn_28_10", 36_479_194, "36.5"),  # Zagoruyko 2016 Table 1
    ("cifar_wrn_16_8", 10_961_370, "11.0"),
    ("cifar_wrn_40_4", 8_949_210, "8.9"),
    ("cifar_resnext29_8x64d", 34_426_698, "34.4"),  # Xie 2017 Table 7
    ("cifar_resnext29_16x64d", 68_155_210, "68.1"),
]


@pytest.mark.parametrize("name,exact,published", COUNTS, ids=[c[0] for c in COUNTS])
def test_parameter_counts_match_the_papers(name, exact, published):
    with torch.device("meta"):
        count = num_params(create_model(name))
    assert count == exact
    assert abs(count - int(Decimal(published) * 1_000_000)) <= published_tolerance(published)


def test_preact_resnet1001_count():
    """10,327,706 parameters; the published 10.2M is the count without BatchNorm
    (10,178,490): with BN it is 1.25 % above the figure."""
    with torch.device("meta"):
        model = create_model("cifar_preact_resnet1001")
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert num_params(model) == 10_327_706
    assert abs(num_params(model) - bn - 10_200_000) <= published_tolerance("10.2")


def test_small_resnet_count_and_depth():
    assert num_params(create_model("small_resnet")) == 308_650
    model = create_model("small_resnet", blocks_per_stage=2)
    assert [len(s) for s in model.stages] == [2, 2, 2]
    assert [f["num_chs"] for f in model.feature_info] == [32, 64, 128]
    with pytest.raises(ValueError, match="at least one block"):
        create_model("small_resnet", blocks_per_stage=0)


@pytest.mark.parametrize("depth", [20, 56])
def test_residual_and_plain_twins_have_the_same_parameters(depth):
    res, plain = create_model(f"cifar_resnet{depth}"), create_model(f"cifar_plain{depth}")
    assert [(n, p.shape) for n, p in res.named_parameters()] == [(n, p.shape) for n, p in plain.named_parameters()]
    assert {k: v.shape for k, v in res.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    plain.load_state_dict(res.state_dict())  # strict: the weights move between twins
    blocks = [b for s in plain.stages for b in s]
    assert len(blocks) == (depth - 2) // 2 and not any(b.has_shortcut for b in blocks)
    assert all(b.has_shortcut for s in res.stages for b in s)
    # same weights, different function: only the shortcut differs
    res.eval(), plain.eval()
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(res(x), plain(x))


def test_generic_depth_matches_the_named_models():
    assert num_params(create_model("cifar_resnet", depth=20)) == 269_722
    assert num_params(create_model("cifar_plain", depth=8)) == num_params(create_model("cifar_resnet", depth=8))
    assert num_params(create_model("cifar_wrn", depth=16, widen_factor=8)) == 10_961_370
    assert num_params(create_model("cifar_preact_resnet", depth=110, bottleneck=False)) == 1_730_522


@pytest.mark.parametrize(
    "name,kwargs,message",
    [
        ("cifar_resnet", dict(depth=21), r"depth must be 6n\+2 \(8, 14, 20, \.\.\.\), got 21"),
        ("cifar_plain", dict(depth=2), r"depth must be 6n\+2 \(8, 14, 20, \.\.\.\), got 2"),
        ("cifar_resnet", dict(depth=20.0), r"6n\+2 .*got 20\.0"),
        ("cifar_wrn", dict(depth=28.5), r"depth must be 6n\+4 \(10, 16, 22, \.\.\.\)"),
        ("cifar_wrn", dict(depth=27), r"depth must be 6n\+4 \(10, 16, 22, \.\.\.\), got 27"),
        ("cifar_preact_resnet", dict(depth=57), r"depth must be 9n\+2 \(11, 20, 29, \.\.\.\), got 57"),
        ("cifar_resnext", dict(depth=30), r"depth must be 9n\+2 .*got 30"),
        ("cifar_wrn", dict(depth=28, widen_factor=0), r"widen_factor must be an integer >= 1"),
        ("cifar_resnext", dict(depth=29, cardinality=0), r"groups=0 must divide"),
        ("cifar_plain20", dict(shortcut="A"), r"a plain net has no shortcut"),
    ],
)
def test_bad_configurations_say_what_was_expected(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_model(name, **kwargs)


def test_options_are_validated_per_model():
    create_model("cifar_wrn", depth=10, widen_factor=1, dropout=0.3)
    with pytest.raises(TypeError, match="dropout"):
        create_model("cifar_resnet20", dropout=0.3)
    with pytest.raises(TypeError, match="depth"):
        create_model("cifar_resnet20", depth=32)


# small members of every family, forwarded at batch 2
SMALL = {
    "he2015": ("cifar_resnet", dict(depth=8)),
    "plain": ("cifar_plain", dict(depth=8)),
    "preact_basic": ("cifar_preact_resnet", dict(depth=8, bottleneck=False)),
    "preact_bottleneck": ("cifar_preact_resnet", dict(depth=11)),
    "wrn": ("cifar_wrn", dict(depth=10, widen_factor=2, dropout=0.3)),
    "resnext": ("cifar_resnext", dict(depth=11, cardinality=4, base_width=4)),
    "small": ("small_resnet", dict()),
}


@pytest.mark.parametrize("name,kwargs", SMALL.values(), ids=list(SMALL))
def test_forward_backward_shapes_and_gradients(name, kwargs):
    model = create_model(name, num_classes=7, in_chans=1, zero_init_residual=False, **kwargs)
    assert model.default_image_size == 32 and model.default_input_size == (1, 32, 32)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert x.grad.shape == x.shape and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert model.forward_features(x).shape[1:] == (model.num_features, 8, 8)


@pytest.mark.parametrize("name,kwargs", SMALL.values(), ids=list(SMALL))
def test_features_only_maps(name, kwargs):
    model = create_model(name, features_only=True, **kwargs)
    maps = model(torch.randn(2, 3, 32, 32))
    assert [m.shape[1] for m in maps] == model.channels()
    assert [32 // m.shape[-1] for m in maps] == model.reductions() == [1, 2, 4]


def test_default_head_and_stem():
    model = create_model("cifar_resnet20")
    assert model.fc.out_features == 10 and model.num_features == 64
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 64]
    assert isinstance(model.layer2[0].downsample, ZeroPadShortcut)  # option A
    assert model.layer1[0].downsample is None


def test_preact_layout_follows_the_authors_code():
    model = create_model("cifar_preact_resnet164")
    assert not hasattr(model, "bn1")  # the stem is the convolution alone
    assert isinstance(model.bn_final, nn.BatchNorm2d) and model.feature_info[-1]["module"] == "relu_final"
    first = model.layer1[0]
    assert isinstance(first, PreActBottleneck) and first.conv1.out_channels == 16 and first.conv3.out_channels == 64
    assert isinstance(first.downsample, ProjectionShortcut) and len(first.downsample) == 1  # 1x1 conv, no BN
    assert [len(s) for s in model.stages] == [18, 18, 18]
    assert [s[-1].conv3.out_channels for s in model.stages] == [64, 128, 256]


def test_wrn_layout_and_dropout():
    model = create_model("cifar_wrn_28_10", dropout=0.3)
    assert [len(s) for s in model.stages] == [4, 4, 4]
    assert [s[0].conv2.out_channels for s in model.stages] == [160, 320, 640]
    assert all(
        isinstance(b, PreActBlock) and isinstance(b.dropout, nn.Dropout) and b.dropout.p == 0.3
        for s in model.stages
        for b in s
    )
    small = dict(depth=10, widen_factor=1, zero_init_residual=False)  # else conv2 = 0 hides dropout
    with_dropout, without = create_model("cifar_wrn", dropout=0.5, **small), create_model("cifar_wrn", **small)
    assert with_dropout.state_dict().keys() == without.state_dict().keys()
    assert without.layer1[0].downsample is None  # k=1: 16 -> 16, identity
    with_dropout.train()
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(with_dropout(x), with_dropout(x))
    with_dropout.eval()
    assert torch.equal(with_dropout(x), with_dropout(x))


def test_resnext_layout():
    model = create_model("cifar_resnext29_8x64d")
    assert model.conv1.out_channels == 64 and isinstance(model.bn1, nn.BatchNorm2d)
    widths = [s[0].conv2 for s in model.stages]
    assert [c.out_channels for c in widths] == [512, 1024, 2048] and {c.groups for c in widths} == {8}
    assert isinstance(model.layer1[0], Bottleneck) and model.layer1[0].conv3.out_channels == 256
    assert isinstance(model.layer1[0].downsample, ProjectionShortcut)  # 64 -> 256


def test_zero_init_residual_block_passes_its_input_through():
    model = create_model("cifar_resnet20", zero_init_residual=True).eval()
    x = torch.randn(2, 16, 32, 32)
    torch.testing.assert_close(model.layer1[0](x), torch.relu(x))  # post-activation: relu(x)
    down = model.layer2[0]  # option A: subsample and zero-pad to 32 channels
    torch.testing.assert_close(down(x), torch.relu(down.downsample(x)))
    preact = create_model("cifar_preact_resnet", depth=8, bottleneck=False).eval()
    x = torch.randn(2, 16, 32, 32)
    torch.testing.assert_close(preact.layer1[0](x), x)  # pre-activation: exactly x


def test_plain_nets_ignore_zero_init_residual():
    """Zeroing a plain block's last BN would make it output relu(0) = 0 everywhere."""
    plain = create_model("cifar_plain20", zero_init_residual=True)
    assert all(torch.equal(b.bn2.weight, torch.ones_like(b.bn2.weight)) for s in plain.stages for b in s)
    assert plain(torch.randn(2, 3, 32, 32)).std() > 0


@pytest.mark.parametrize("name,kwargs", SMALL.values(), ids=list(SMALL))
def test_norm_false_builds_without_batchnorm(name, kwargs):
    model = create_model(name, norm=False, **kwargs)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_zero_init_is_a_no_op_without_norm_in_post_activation_nets():
    """Post-activation blocks zero their last BN's γ: with norm=False there is none."""
    torch.manual_seed(1)
    a = create_model("cifar_resnet", depth=8, norm=False, zero_init_residual=True)
    torch.manual_seed(1)
    b = create_model("cifar_resnet", depth=8, norm=False, zero_init_residual=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kind,projection_blocks", [("A", 0), ("B", 2), ("C", 9)])
def test_shortcut_option(kind, projection_blocks):
    model = create_model("cifar_resnet20", shortcut=kind)
    found = [isinstance(b.downsample, ProjectionShortcut) for s in model.stages for b in s]
    assert sum(found) == projection_blocks
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("attn", ["se", "cbam"])
def test_attention_on_every_block(attn):
    model = create_model("cifar_resnet", depth=8, attn_layer=attn)
    assert all(not isinstance(b.se, nn.Identity) for s in model.stages for b in s)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_drop_path_rates_decay_linearly():
    model = create_model("cifar_resnet20", drop_path_rate=0.2)
    rates = [b.drop_path.p for s in model.stages for b in s]
    assert len(rates) == 9 and rates[-1] == pytest.approx(0.2) and rates[0] == pytest.approx(0.2 / 9)
    assert all(isinstance(b.drop_path, DropPath) for s in model.stages for b in s)


def test_grad_checkpointing_gives_the_same_gradients():
    model = create_model("cifar_resnet", depth=8, zero_init_residual=False)
    x = torch.randn(2, 3, 32, 32)
    model.eval()  # BN in eval: the recomputed forward is identical
    model(x).sum().backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model.training = True  # checkpointing is active in training mode only
    model(x).sum().backward()
    for g, ref in zip((p.grad for p in model.parameters()), reference):
        torch.testing.assert_close(g, ref)


def test_input_checks():
    model = create_model("cifar_resnet20")
    with pytest.raises(ValueError, match="in_chans=3"):
        model(torch.randn(2, 1, 32, 32))


def test_every_family_is_registered():
    names = set(list_models("cifar_*")) | set(list_models("small_resnet"))
    for depth in (20, 32, 44, 56, 110):
        assert {f"cifar_resnet{depth}", f"cifar_plain{depth}"} <= names
    assert {
        "cifar_resnet1202",
        "cifar_resnet",
        "cifar_plain",
        "cifar_preact_resnet110",
        "cifar_preact_resnet164",
        "cifar_preact_resnet1001",
        "cifar_wrn",
        "cifar_wrn_28_10",
        "cifar_wrn_16_8",
        "cifar_wrn_40_4",
        "cifar_resnext29_8x64d",
        "small_resnet",
    } <= names
    assert isinstance(create_model("small_resnet"), CifarResNet)


def test_fast_resnet_airbench_options():
    model = create_model("cifar_fast_resnet_s", dirac_init=True, bn_momentum=0.4)
    first = model.layer1[0].weight  # 24 -> 48 channels
    assert torch.equal(first[:24, :, 1, 1], torch.eye(24)) and first[:24].abs().sum() == 24
    assert first[24:].abs().sum() > 0  # the rest keep their random init
    assert all(m.momentum == 0.4 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="bn_momentum"):
        create_model("cifar_fast_resnet_s", bn_momentum=0.0)
    fixed = create_model("cifar_fast_resnet_s", learn_bn_scale=False)  # airbench's BN
    scales = [m.weight for m in fixed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not w.requires_grad and torch.equal(w, torch.ones_like(w)) for w in scales)


def test_fast_resnet_plain_twin_is_airbench_conv_groups():
    """``shortcut=False``: the blocks lose their identity path and, with dirac_init, their
    convs start as the identity (airbench's "implicit residual"); same parameters."""
    residual = create_model("cifar_fast_resnet_s", dirac_init=True)
    plain = create_model("cifar_fast_resnet_s", dirac_init=True, shortcut=False)
    assert [(k, v.shape) for k, v in residual.state_dict().items()] == [
        (k, v.shape) for k, v in plain.state_dict().items()
    ]
    block = plain.layer2[4]
    assert not block.has_shortcut and residual.layer2[4].has_shortcut
    weight = block.conv.weight
    assert torch.equal(weight[:, :, 1, 1], torch.eye(192)) and weight.abs().sum() == 192
    assert not torch.equal(residual.layer2[4].conv.weight[:, :, 1, 1], torch.eye(192))
    block.eval()
    x = torch.randn(2, 192, 7, 7)
    torch.testing.assert_close(block(x), block.residual(x))
    residual.layer2[4].load_state_dict(block.state_dict())
    residual.layer2[4].eval()
    torch.testing.assert_close(residual.layer2[4](x), x + block.residual(x))
