"""MobileNetV2 (Sandler et al. 2018) and Vision Transformers (Dosovitskiy et al. 2021):
their blocks' contracts, the no-skip twins, pre- vs post-norm, the published parameter
counts, torchvision's / timm's names, and (where torchvision / timm import) the same
outputs as the references with the same weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from skiplab.blocks import InvertedResidual, PlainInvertedResidual, PlainTransformerBlock, TransformerBlock
from skiplab.models import create_model, list_models, load_weights

from reference_weights import fill_state_dict

SETTINGS = settings(max_examples=20, deadline=None)


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def shapes(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


# -- the inverted residual block ---------------------------------------------------------


@SETTINGS
@given(
    st.integers(1, 16),
    st.integers(1, 16),
    st.sampled_from((1, 2)),
    st.sampled_from((1, 2, 6)),
    st.booleans(),
    st.integers(1, 9),
    st.integers(1, 9),
)
def test_inverted_residual_shape_contract_and_twin(cin, cout, stride, t, skip, h, w):
    block = InvertedResidual(cin, cout, stride, expand_ratio=t, skip=skip).train()
    x = torch.randn(2, cin, h, w, requires_grad=True)
    out = block(x)
    assert tuple(out.shape) == (2, cout, math.ceil(h / stride), math.ceil(w / stride))
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())
    assert block.use_res_connect == (skip and stride == 1 and cin == cout)
    twin = PlainInvertedResidual(cin, cout, stride, expand_ratio=t)
    assert shapes(twin) == shapes(block) and not twin.use_res_connect


def test_inverted_residual_layout_is_torchvisions():
    """t = 1: conv.0 depthwise ConvBNReLU6, conv.1 pw-linear, conv.2 BN; else conv.0 expand."""
    first = InvertedResidual(32, 16, 1, expand_ratio=1)
    assert list(shapes(first)) == [
        "conv.0.0.weight",
        "conv.0.1.weight",
        "conv.0.1.bias",
        "conv.0.1.running_mean",
        "conv.0.1.running_var",
        "conv.0.1.num_batches_tracked",
        "conv.1.weight",
        "conv.2.weight",
        "conv.2.bias",
        "conv.2.running_mean",
        "conv.2.running_var",
        "conv.2.num_batches_tracked",
    ]
    block = InvertedResidual(24, 24, 1, expand_ratio=6)
    assert shapes(block)["conv.0.0.weight"] == (144, 24, 1, 1)  # expand
    assert shapes(block)["conv.1.0.weight"] == (144, 1, 3, 3)  # depthwise
    assert shapes(block)["conv.2.weight"] == (24, 144, 1, 1)  # linear bottleneck
    assert shapes(block)["conv.3.weight"] == (24,)
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)) for m in list(block.conv)[2:])


def test_inverted_residual_adds_its_input_only_with_a_skip():
    torch.manual_seed(0)
    block, twin = InvertedResidual(8, 8).eval(), PlainInvertedResidual(8, 8).eval()
    twin.load_state_dict(block.state_dict(), strict=True)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.conv(x))
        torch.testing.assert_close(twin(x), block.conv(x))
        block.zero_init_last()
        torch.testing.assert_close(block(x), x)  # Goyal 2017: starts as the identity


@pytest.mark.parametrize("bad", [dict(stride=3), dict(expand_ratio=0)])
def test_inverted_residual_bad_arguments(bad):
    with pytest.raises(ValueError):
        InvertedResidual(8, 8, **bad)


# -- the transformer block ---------------------------------------------------------------


def tokens(n: int = 5, c: int = 12) -> torch.Tensor:
    return torch.randn(2, n, c, generator=torch.Generator().manual_seed(3))


@SETTINGS
@given(
    st.sampled_from((4, 8, 12)),
    st.sampled_from((1, 2, 4)),
    st.integers(1, 9),
    st.sampled_from(("pre", "post")),
    st.booleans(),
)
def test_transformer_block_token_contract(c, heads, n, norm_position, skip):
    block = TransformerBlock(c, c, num_heads=heads, norm_position=norm_position, skip=skip).train()
    x = torch.randn(2, n, c, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())


def test_transformer_block_equations():
    """pre: x + MSA(LN1(x)), then + MLP(LN2(.)); post: LN1(x + MSA(x)), then LN2(. + MLP(.));
    no-skip: the same without the additions. One state dict serves all four."""
    torch.manual_seed(0)
    pre = TransformerBlock(12, 12, num_heads=3).eval()
    post = TransformerBlock(12, 12, num_heads=3, norm_position="post").eval()
    plain_pre = PlainTransformerBlock(12, 12, num_heads=3).eval()
    plain_post = PlainTransformerBlock(12, 12, num_heads=3, norm_position="post").eval()
    for other in (post, plain_pre, plain_post):
        other.load_state_dict(pre.state_dict(), strict=True)
    a, m, n1, n2 = pre.attn, pre.mlp, pre.norm1, pre.norm2
    x = tokens()
    with torch.no_grad():
        y = x + a(n1(x))
        torch.testing.assert_close(pre(x), y + m(n2(y)))
        y = n1(x + a(x))
        torch.testing.assert_close(post(x), n2(y + m(y)))
        torch.testing.assert_close(plain_pre(x), m(n2(a(n1(x)))))
        torch.testing.assert_close(plain_post(x), n2(m(n1(a(x)))))
        assert (pre(x) - post(x)).abs().max() > 1e-2  # pre and post differ


def test_post_norm_outputs_are_normalised_and_pre_norm_outputs_are_not():
    torch.manual_seed(0)
    x = 5.0 + 3.0 * tokens(7, 16)
    with torch.no_grad():
        post = TransformerBlock(16, 16, num_heads=4, norm_position="post").eval()(x)
        pre = TransformerBlock(16, 16, num_heads=4).eval()(x)
    torch.testing.assert_close(post.mean(-1), torch.zeros(2, 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(post.var(-1, unbiased=False), torch.ones(2, 7), atol=1e-3, rtol=0)
    assert pre.mean().item() > 3.0  # the skip carries the raw stream


def test_transformer_block_zero_init_is_the_identity_with_pre_norm():
    block = TransformerBlock(12, 12, num_heads=3).eval()
    block.zero_init_last()
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(out_channels=8), "out_channels"),
        (dict(stride=2), "stride"),
        (dict(norm_position="sandwich"), "norm_position"),
        (dict(num_heads=5), "num_heads"),
    ],
)
def test_transformer_block_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        TransformerBlock(**{**dict(in_channels=12, out_channels=12, num_heads=3), **bad})


# -- the models ----------------------------------------------------------------------------


def test_registered_with_published_counts():
    assert {
        "mobilenet_v2",
        "cifar_mobilenet_v2",
        "cifar_mobilenet_v2_noskip",
        "vit_tiny_patch16_224",
        "cifar_vit",
        "cifar_vit_noskip",
    } <= set(list_models())
    assert num_params(create_model("mobilenet_v2")) == 3_504_872  # torchvision
    assert num_params(create_model("vit_tiny_patch16_224")) == 5_717_416  # timm
    assert num_params(create_model("mobilenet_v2", num_classes=10)) == 3_504_872 - 1281 * 990


@pytest.mark.parametrize(
    "skip_name, twin_name, options",
    [
        ("cifar_mobilenet_v2", "cifar_mobilenet_v2_noskip", {}),
        ("cifar_vit", "cifar_vit_noskip", {}),
        ("cifar_vit", "cifar_vit", dict(norm_position="post")),
    ],
)
def test_twins_have_the_same_parameters_and_compute_differently(skip_name, twin_name, options):
    torch.manual_seed(0)
    model, twin = create_model(skip_name).eval(), create_model(twin_name, **options).eval()
    assert shapes(model) == shapes(twin) and num_params(model) == num_params(twin)
    state = fill_state_dict(model.state_dict())  # BN statistics away from 0 / 1
    model.load_state_dict(state, strict=True)
    twin.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), twin(x)
    assert (a - b).abs().max() > 0.01 * a.abs().max()


def test_mobilenet_v2_layout_features_and_init():
    model = create_model("mobilenet_v2")
    keys = list(model.state_dict())
    assert keys[0] == "features.0.0.weight" and keys[-2:] == ["classifier.1.weight", "classifier.1.bias"]
    assert "features.17.conv.3.weight" in keys and "features.18.1.running_var" in keys
    assert isinstance(model.classifier[0], torch.nn.Dropout) and model.classifier[0].p == 0.2
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [
        (16, 2),
        (24, 4),
        (32, 8),
        (96, 16),
        (1280, 32),
    ]
    skips = [b.use_res_connect for b in model.stages]
    assert sum(skips) == 10 and len(skips) == 17  # Table 2: 17 bottlenecks
    assert model.classifier[1].weight.std().item() == pytest.approx(0.01, rel=0.05)
    conv = model.features[18][0].weight  # He fan-out: sqrt(2 / 1280)
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 1280), rel=0.05)
    assert all(m.weight.eq(1).all() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_cifar_mobilenet_v2_strides():
    model = create_model("cifar_mobilenet_v2").eval()
    assert model.features[0][0].stride == (1, 1) and model.features[2].stride == 1
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == [(24, 1), (32, 2), (96, 4), (1280, 8)]
    with torch.no_grad():
        assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 1280, 4, 4)
    zeroed = create_model("cifar_mobilenet_v2", zero_init_residual=True)
    assert all(b.conv[-1].weight.eq(0).all() == b.use_res_connect for b in zeroed.stages)


def test_vit_forward_order_and_options():
    model = create_model("cifar_vit", depth=3, norm_position="post").eval()
    assert len(model.blocks) == 3 and all(b.norm_position == "post" for b in model.blocks)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        t = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([model.cls_token.expand(2, -1, -1), t], 1) + model.pos_embed
        for block in model.blocks:
            t = block(t)
        t = model.norm(t)
        torch.testing.assert_close(model.forward_features(x), t)
        torch.testing.assert_close(model(x), model.head(t[:, 0]))
    assert model.forward_head(t, pre_logits=True).shape == (2, 128)
    with pytest.raises(ValueError, match="32x32"):
        model(torch.randn(2, 3, 48, 48))
    with pytest.raises(TypeError, match="fixes 'skip'.*'cifar_vit'"):
        create_model("cifar_vit_noskip", skip=True)
    with pytest.raises(ValueError, match="drop_path"):
        create_model("cifar_vit_noskip", drop_path_rate=0.1)


@pytest.mark.parametrize(
    "name, stem", [("cifar_mobilenet_v2", "features.0.0.weight"), ("cifar_vit", "patch_embed.proj.weight")]
)
def test_rgb_weights_load_into_a_single_channel_model(name, stem):
    rgb = create_model(name).eval()
    grey = create_model(name, in_chans=1).eval()
    report = load_weights(grey, rgb.state_dict())
    assert report.adapted == [stem]
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), atol=1e-5, rtol=1e-4)


# -- the references (only where torchvision / timm import) --------------------------------


def assert_same_outputs(reference: torch.nn.Module, ours: torch.nn.Module, size: int) -> None:
    """Fill the reference's state dict (BN statistics included), load it strictly into ours
    and compare eval outputs on the same input."""
    state = fill_state_dict(reference.state_dict())
    reference.load_state_dict(state, strict=True)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference.eval()(x), ours.eval()(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_torchvision_mobilenet_v2_gives_the_same_outputs():
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.mobilenet_v2()
    assert num_params(reference) == 3_504_872
    assert_same_outputs(reference, create_model("mobilenet_v2"), 224)


def test_timm_vit_tiny_gives_the_same_outputs():
    timm = pytest.importorskip("timm")
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    assert num_params(reference) == 5_717_416
    assert_same_outputs(reference, create_model("vit_tiny_patch16_224"), 224)


def test_sdpa_matches_the_explicit_softmax():
    """The fused attention is softmax(QKᵀ/sqrt(d)) V (timm's non-fused path)."""
    attn = TransformerBlock(12, 12, num_heads=3).attn.eval()
    x = tokens()
    b, n, c = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, 3, 4).permute(2, 0, 3, 1, 4)
    weights = F.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(b, n, c))
    torch.testing.assert_close(attn(x), expected)


@pytest.mark.parametrize("name, residual", [("cifar_mobilenet_v2", 10), ("cifar_mobilenet_v2_noskip", 0)])
def test_analysis_finds_the_inverted_residuals(name, residual):
    """The diagnostics (lesions, residual ratios) see each block, and which ones add their input."""
    from skiplab.analysis.blocks import find_units

    units = find_units(create_model(name), torch.randn(1, 3, 32, 32))
    assert len(units) == 17 and all(isinstance(u.module, InvertedResidual) for u in units)
    assert sum(u.kind == "residual" for u in units) == residual
