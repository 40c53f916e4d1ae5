"""DenseNet: dense blocks, memory-efficient mode, exact torchvision layout, CIFAR DenseNet-BC."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from skiplab.blocks.dense import DenseBlock, DenseLayer, Transition, compressed_channels
from skiplab.models import create_model, list_models
from skiplab.models.densenet import DenseNet

from reference_weights import fill_state_dict, reference_input

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_reference.json.gz"


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def reference() -> dict:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as fh:
        return json.load(fh)


# -- blocks ---------------------------------------------------------------------------


def test_dense_layer_adds_growth_rate_channels_from_a_list_or_a_tensor():
    layer = DenseLayer(24, growth_rate=12, bn_size=4)
    x = torch.randn(2, 24, 8, 8)
    out = layer(x)
    assert out.shape == (2, 12, 8, 8)
    assert layer.conv1.out_channels == 48  # bottleneck 4k
    torch.testing.assert_close(layer([x[:, :10], x[:, 10:]]), out)


def test_dense_block_concatenates_input_and_every_new_feature():
    block = DenseBlock(16, num_layers=3, growth_rate=8)
    x = torch.randn(2, 16, 6, 6)
    out = block(x)
    assert block.out_channels == 16 + 3 * 8
    assert out.shape == (2, 40, 6, 6)
    torch.testing.assert_close(out[:, :16], x)  # the input is passed on unchanged
    assert [name for name, _ in block.named_children()] == ["denselayer1", "denselayer2", "denselayer3"]
    assert block["denselayer3"].in_channels == 16 + 2 * 8


def test_transition_compresses_and_halves():
    t = Transition(216, compressed_channels(216, 0.5))
    assert t(torch.randn(2, 216, 9, 9)).shape == (2, 108, 4, 4)
    assert compressed_channels(75, 0.5) == 37  # floor(θ m)
    with pytest.raises(ValueError, match="compression"):
        compressed_channels(64, 0.0)


def test_dense_layer_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expects 24 input channels in total, got 20"):
        DenseLayer(24, 12)(torch.randn(1, 20, 4, 4))


def test_memory_efficient_mode_matches_normal_mode_outputs_grads_and_running_stats():
    torch.manual_seed(0)
    normal = DenseBlock(8, num_layers=4, growth_rate=4)
    efficient = DenseBlock(8, num_layers=4, growth_rate=4, memory_efficient=True)
    efficient.load_state_dict(normal.state_dict())
    x = torch.randn(3, 8, 5, 5)
    grads, outs = [], []
    for block in (normal, efficient):
        block.train()
        xi = x.clone().requires_grad_(True)
        out = block(xi)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([xi.grad] + [p.grad for p in block.parameters()])
    torch.testing.assert_close(outs[0], outs[1])
    for g_normal, g_efficient in zip(*grads):
        torch.testing.assert_close(g_normal, g_efficient, rtol=1e-5, atol=1e-6)
    # the recomputation must not update the BN running statistics a second time
    for (name, a), b in zip(normal.state_dict().items(), efficient.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


# -- ImageNet DenseNets ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, count",
    [("densenet121", 7_978_856), ("densenet169", 14_149_480), ("densenet201", 20_013_928), ("densenet161", 28_681_000)],
)
def test_imagenet_parameter_counts_are_torchvision_s(name, count):
    assert num_params(create_model(name)) == count


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201"])
def test_state_dict_keys_and_shapes_equal_torchvision(name, reference):
    ref = reference["models"][name]
    model = create_model(name)
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == ref["state_dict"]
    assert num_params(model) == ref["num_params"]


def test_densenet121_logits_equal_torchvision_on_filled_weights(reference):
    ref = reference["models"]["densenet121"]
    model = create_model("densenet121")
    filled = fill_state_dict(model.state_dict())
    x = reference_input(tuple(reference["input_shape"]))
    checksum = float(sum(v.double().abs().sum() for v in filled.values() if v.is_floating_point()))
    if (
        abs(checksum - ref["fill_checksum"]) > 1e-6 * ref["fill_checksum"]
        or abs(float(x.double().sum()) - reference["input_sum"]) > 1e-6
    ):
        pytest.skip("torch's random streams differ from the fixture's torch: filled weights are not comparable")
    model.load_state_dict(filled, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(x).double()
    expected_first = torch.tensor(ref["logits_first"], dtype=torch.float64)
    torch.testing.assert_close(logits[:, : expected_first.shape[1]], expected_first, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        logits.norm(dim=1), torch.tensor(ref["logits_norm"], dtype=torch.float64), rtol=1e-4, atol=1e-4
    )


def test_densenet121_forward_features_and_head():
    model = create_model("densenet121", num_classes=7)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 1024, 2, 2)
        assert feats.min() >= 0  # BN-ReLU before the pool, as torchvision
        assert model.forward_head(feats).shape == (2, 7)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 1024)
    assert model.first_conv == "features.conv0" and model.classifier_name == "classifier"
    assert model.default_image_size == 224


def test_features_only_returns_stages_in_order():
    model = create_model("densenet121", features_only=True)
    model.eval()
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == [64, 256, 512, 1024, 1024] == model.channels()
    assert [64 // m.shape[-1] for m in maps] == [2, 4, 8, 16, 32] == model.reductions()


def test_single_channel_input_and_bad_input_errors():
    model = create_model("cifar_densenet_bc", depth=16, growth_rate=4, in_chans=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="in_chans=1"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="4-D batch"):
        model(torch.randn(1, 32, 32))
    with pytest.raises(ValueError, match="at least 4x4"):
        model(torch.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match="6n \\+ 4"):
        create_model("cifar_densenet_bc", depth=101)
    with pytest.raises(ValueError, match="stem"):
        DenseNet((2, 2), stem="tiny")


def test_grad_checkpointing_and_memory_efficient_give_the_same_gradients():
    torch.manual_seed(0)
    reference_model = create_model("cifar_densenet_bc", depth=22, growth_rate=4)
    x = torch.randn(4, 3, 16, 16)

    def grads(model: DenseNet) -> list[torch.Tensor]:
        model.train()
        model.zero_grad()
        model(x).logsumexp(1).sum().backward()
        return [p.grad.clone() for p in model.parameters()]

    expected = grads(reference_model)
    for configure in (lambda m: m.set_grad_checkpointing(True), lambda m: m.set_memory_efficient(True)):
        model = create_model("cifar_densenet_bc", depth=22, growth_rate=4)
        model.load_state_dict(reference_model.state_dict())  # running stats: same start
        configure(model)
        for g, e in zip(grads(model), expected):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


# -- CIFAR DenseNet-BC -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name, exact, published_millions",
    [
        ("cifar_densenet_bc_100_12", 769_162, 0.8),  # Table 2: 0.8M
        ("cifar_densenet_bc_190_40", 25_624_430, 25.6),  # Table 2: 25.6M
    ],
)
def test_cifar_densenet_bc_counts_match_table_2(name, exact, published_millions):
    count = num_params(create_model(name))
    assert count == exact
    # Table 2 gives one decimal: the count must round to the published figure
    assert round(count / 1e6, 1) == published_millions


def test_cifar_densenet_bc_layout():
    model = create_model("cifar_densenet_bc_100_12")
    assert model.default_image_size == 32 and model.num_classes == 10
    assert model.features.conv0.kernel_size == (3, 3) and model.features.conv0.out_channels == 24
    assert [len(getattr(model.features, f"denseblock{i}")) for i in (1, 2, 3)] == [16, 16, 16]
    assert [f["num_chs"] for f in model.feature_info] == [216, 300, 342]
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4]
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert "cifar_densenet_bc" in list_models("cifar_densenet*")


def test_generic_cifar_densenet_bc_matches_the_named_one():
    assert num_params(create_model("cifar_densenet_bc", depth=100, growth_rate=12)) == 769_162
