"""The ImageNet ResNet family against real torchvision / timm (recorded in
tests/fixtures/torchvision_reference.json.gz by make_torchvision_reference.py).

Counts and key/shape checks build the models on the meta device (no memory, no init
cost); the logit checks load the deterministic filled weights of reference_weights.py.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from torch import nn

from skiplab.models import create_model
from skiplab.models.preact_resnet import PreActResNet
from skiplab.models.resnet import ResNet, add_stages
from skiplab.models.weights import load_weights

from reference_weights import checksum, fill_state_dict, reference_input

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_reference.json.gz"

# measured here; torchvision's and timm's counts are in the fixture and checked below too
COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "seresnet50": 28_088_024,  # timm seresnet50
    "cbam_resnet50": 28_089_624,  # paper (Woo 2018 Table 3): 28.09M; channel MLP with biases
    "preact_resnet18": 11_687_720,
    "preact_resnet34": 21_795_880,
    "preact_resnet50": 25_549_352,
    "preact_resnet101": 44_541_480,
    "preact_resnet152": 60_185_128,  # = timm resnetv2_*
}
TORCHVISION = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
]


@lru_cache(maxsize=1)
def reference() -> dict:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def reference_entry(name: str) -> dict:
    ref = reference()
    return ref["models"][name] if name in ref["models"] else ref["timm"]["models"][name]


def meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_count(name):
    assert num_params(meta_model(name)) == COUNTS[name]


@pytest.mark.parametrize("name", TORCHVISION)
def test_count_equals_torchvision(name):
    assert COUNTS[name] == reference()["models"][name]["num_params"]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_preact_count_equals_timm_resnetv2(depth):
    assert COUNTS[f"preact_resnet{depth}"] == reference()["timm"]["num_params"][f"resnetv2_{depth}"]


@pytest.mark.parametrize("name", TORCHVISION + ["seresnet50"])
def test_state_dict_keys_and_shapes_equal_reference(name):
    ours = [[k, list(v.shape)] for k, v in meta_model(name).state_dict().items()]
    assert ours == reference_entry(name)["state_dict"]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "seresnet50"])
def test_logits_equal_reference_with_filled_weights(name):
    entry = reference_entry(name)
    model = create_model(name)
    filled = fill_state_dict(model.state_dict())
    assert checksum(filled) == pytest.approx(entry["fill_checksum"], rel=1e-9), (
        "fill_state_dict changed (torch random streams?): regenerate the fixture"
    )
    load_weights(model, filled, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(reference_input()).double()
    expected = torch.tensor(entry["logits_first"], dtype=torch.float64)
    torch.testing.assert_close(logits[:, : expected.shape[1]], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        logits.norm(dim=1), torch.tensor(entry["logits_norm"], dtype=torch.float64), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("name", ["seresnet50", "cbam_resnet50"])
def test_zero_initialised_attention_block_is_identity_before_relu(name):
    model = create_model(name, zero_init_residual=True).eval()
    x = torch.randn(2, 256, 8, 8)
    with torch.no_grad():
        for block in (model.layer1[1], model.layer2[0]):
            assert not isinstance(block.se, nn.Identity)
            assert not block.residual(x).any()  # bn3's γ = 0 makes the attention's input 0
            torch.testing.assert_close(block(x), torch.relu(block.shortcut(x)))
    with torch.no_grad():  # a non-negative input through an identity-shortcut block is unchanged
        x = torch.rand(2, 256, 8, 8)
        torch.testing.assert_close(model.layer1[1](x), x)


def test_cbam_attention_has_channel_and_spatial_parts():
    block = meta_model("cbam_resnet50").layer4[0]
    names = {k for k, _ in block.se.named_parameters()}
    assert names == {
        "channel.fc1.weight",
        "channel.fc1.bias",
        "channel.fc2.weight",
        "channel.fc2.bias",
        "spatial.conv.weight",
        "spatial.bn.weight",
        "spatial.bn.bias",
    }
    assert block.se.channel.fc1.weight.shape == (128, 2048, 1, 1)  # r = 16


def test_resnext_and_wide_widths():
    rx = meta_model("resnext101_64x4d").layer1[0].conv2
    assert (rx.groups, rx.in_channels) == (64, 256)
    wide = meta_model("wide_resnet50_2").layer1[0].conv2
    assert (wide.groups, wide.in_channels) == (1, 128)


def test_constructor_keyword_overrides_the_variant_default():
    assert num_params(meta_model("wide_resnet50_2", width_per_group=64)) == COUNTS["resnet50"]


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet50"])
def test_forward_other_in_chans_and_classes(name):
    model = create_model(name, num_classes=7, in_chans=1)
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "name, channels",
    [
        ("preact_resnet18", [64, 64, 128, 256, 512]),
        ("preact_resnet50", [64, 256, 512, 1024, 2048]),
        ("wide_resnet50_2", [64, 256, 512, 1024, 2048]),
    ],
)
def test_features_only(name, channels):
    with torch.device("meta"):  # shapes only
        extractor = create_model(name, features_only=True)
        maps = extractor(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == channels == extractor.channels()
    assert [64 // m.shape[-1] for m in maps] == extractor.reductions() == [2, 4, 8, 16, 32]


def test_preact_final_bn_relu_and_stem_without_norm():
    model = create_model("preact_resnet18").eval()
    assert isinstance(model, PreActResNet) and not hasattr(model, "bn1")
    keys = list(model.state_dict())
    assert keys[0] == "conv1.weight" and keys[-7:-2] == [
        "final_bn.weight",
        "final_bn.bias",
        "final_bn.running_mean",
        "final_bn.running_var",
        "final_bn.num_batches_tracked",
    ]
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, 64, 64))
    assert features.min() >= 0  # the final ReLU


def test_preact_zero_init_blocks_are_identities():
    model = create_model("preact_resnet18", zero_init_residual=True).eval()
    x = torch.randn(2, 64, 8, 8)  # pre-activation: no ReLU after the addition, any sign passes
    with torch.no_grad():
        torch.testing.assert_close(model.layer1[0](x), x)
        torch.testing.assert_close(model.layer1[1](x), x)


def test_drop_path_and_grad_checkpointing_keep_outputs():
    model = create_model("preact_resnet18", num_classes=3, drop_path_rate=0.1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), ref)


def test_bad_configurations_raise_value_errors():
    with pytest.raises(ValueError, match="bottleneck blocks only"):
        create_model("resnet18", groups=32)
    with pytest.raises(ValueError, match="at least one block per stage"):
        ResNet(nn.Identity, (2, 0, 2, 2))
    with pytest.raises(ValueError, match="depth must be one of"):
        from skiplab.models.resnet import stage_depths

        stage_depths(20)
    with pytest.raises(ValueError, match="in_chans=1"):
        create_model("preact_resnet18", in_chans=1)(torch.randn(1, 3, 64, 64))


def test_add_stages_appends_feature_info_in_forward_order():
    from skiplab.blocks import BasicBlock
    from skiplab.models.base import Classifier

    host = Classifier()
    out = add_stages(host, BasicBlock, (1, 1, 1), in_channels=64)
    assert out == 256
    assert [f["module"] for f in host.feature_info] == ["layer1", "layer2", "layer3"]
    assert [f["reduction"] for f in host.feature_info] == [4, 8, 16]
