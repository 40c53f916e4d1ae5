"""Highway layers and networks; deep plain / residual / highway MLPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skiplab.blocks.highway import ConvHighwayLayer, HighwayLayer
from skiplab.models import create_model, list_models
from skiplab.models.mlp import MLP


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- highway layers ----------------------------------------------------------------------


@pytest.mark.parametrize("layer", [HighwayLayer(8), ConvHighwayLayer(8, 8)], ids=["dense", "conv"])
def test_gate_bias_starts_at_minus_two(layer):
    torch.testing.assert_close(layer.gate_bias.detach(), torch.full((8,), -2.0))
    assert HighwayLayer(4, gate_bias=-3.0).gate_bias.detach().tolist() == [-3.0] * 4


def test_gate_bias_survives_model_initialisation():
    model = create_model("cifar_highway_20", gate_bias=-1.5)
    biases = [m.gate_bias for m in model.modules() if isinstance(m, ConvHighwayLayer)]
    assert len(biases) == 16
    assert all(torch.all(b == -1.5) for b in biases)


def test_dense_highway_output_is_h_t_plus_x_carry():
    layer = HighwayLayer(5)
    x = torch.randn(3, 5)
    t = torch.sigmoid(x @ layer.gate.weight.T + layer.gate_bias)
    h = torch.relu(layer.transform[0](x))
    torch.testing.assert_close(layer.transform_gate(x), t)
    torch.testing.assert_close(layer(x), h * t + x * (1 - t))


@pytest.mark.parametrize(
    "layer, shape", [(HighwayLayer(6), (4, 6)), (ConvHighwayLayer(6, 6), (2, 6, 5, 5))], ids=["dense", "conv"]
)
def test_closed_gate_carries_the_input(layer, shape):
    x = torch.randn(shape)
    with torch.no_grad():
        layer.gate_bias.fill_(-50.0)  # T -> 0
        torch.testing.assert_close(layer(x), x)
        layer.gate_bias.fill_(50.0)  # T -> 1: y = H(x)
        torch.testing.assert_close(layer(x), layer.transform(x))


def test_fresh_layer_mostly_carries():
    layer = ConvHighwayLayer(16, 16)
    layer.eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        t = layer.transform_gate(x)
    assert 0.05 < t.mean().item() < 0.3  # sigmoid(-2) = 0.12 on average


def test_conv_highway_layer_keeps_its_shape_and_says_so():
    assert ConvHighwayLayer(4, 4, kernel_size=5)(torch.randn(1, 4, 7, 7)).shape == (1, 4, 7, 7)
    with pytest.raises(ValueError, match="keeps its shape"):
        ConvHighwayLayer(4, 8)
    with pytest.raises(ValueError, match="keeps its shape"):
        ConvHighwayLayer(4, 4, stride=2)
    with pytest.raises(ValueError, match="expects \\[B, 6\\]"):
        HighwayLayer(6)(torch.randn(2, 5))


# -- CIFAR highway networks ----------------------------------------------------------------


def test_cifar_highway_layout_and_count():
    model = create_model("cifar_highway_20")
    assert model.default_image_size == 32
    assert [len(s) for s in model.stages] == [6, 6, 6]
    highway = [m for m in model.modules() if isinstance(m, ConvHighwayLayer)]
    assert len(highway) == 16  # the first layer of stages 2 and 3 is the strided projection
    # stem 464, stage 1 6 x 4,656, projections 4,672 + 18,560, stages 2-3 5 x 18,528 + 5 x 73,920, fc 650
    assert num_params(model) == 514_522
    assert [f["num_chs"] for f in model.feature_info] == [16, 32, 64]
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    maps = create_model("cifar_highway_20", features_only=True)(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_cifar_highway_depths_and_options():
    assert {"cifar_highway", "cifar_highway_20", "cifar_highway_56", "cifar_highway_110"} <= set(
        list_models("cifar_highway*")
    )
    m56 = create_model("cifar_highway", depth=56)
    assert [len(s) for s in m56.stages] == [18, 18, 18]
    assert num_params(m56) == num_params(create_model("cifar_highway_56"))
    with pytest.raises(ValueError, match="6n\\+2"):
        create_model("cifar_highway", depth=21)
    with pytest.raises(TypeError, match="drop_path_rate"):
        create_model("cifar_highway_20", drop_path_rate=0.1)
    one = create_model("cifar_highway_20", in_chans=1, norm=False, num_classes=3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in one.modules())
    assert one(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="in_chans=1"):
        one(torch.randn(2, 3, 32, 32))


# -- deep MLPs --------------------------------------------------------------------------

KINDS = ["plain", "residual", "highway"]


@pytest.mark.parametrize("kind", KINDS)
def test_mlp_depth_width_and_shapes(kind):
    model = create_model(f"mlp_{kind}", depth=50, width=32, in_features=20, num_classes=4)
    assert len(model.blocks) == 50 and len(model.feature_info) == 50
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 52 + (50 if kind == "highway" else 0)  # stem, 50 layers, fc (+ gates)
    x = torch.randn(8, 20)
    assert model(x).shape == (8, 4)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (8, 32)
    model.reset_classifier(0)
    assert model(x).shape == (8, 32)


def test_mlp_variants_share_their_layers():
    keys = {k: set(create_model(f"mlp_{k}", depth=3, width=8, in_features=5).state_dict()) for k in KINDS}
    assert keys["plain"] == keys["residual"]
    assert keys["highway"] - keys["plain"] == {
        f"blocks.{i}.{p}" for i in range(3) for p in ("gate.weight", "gate_bias")
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_gradient_reaches_the_first_layer_at_depth_50(kind, norm):
    model = create_model(f"mlp_{kind}", depth=50, width=16, in_features=8, norm=norm, zero_init_residual=False)
    model(torch.randn(8, 8)).logsumexp(1).mean().backward()
    grad = model.stem.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_zero_init_residual_makes_blocks_identities():
    model = create_model("mlp_residual", depth=10, width=16, in_features=16, norm="layer")
    x = torch.randn(4, 16)
    for block in model.blocks:
        torch.testing.assert_close(block(x), x)
    plain = create_model("mlp_plain", depth=10, width=16, in_features=16)  # ignored: nothing to zero
    assert plain.blocks[0].transform.linear.weight.abs().sum() > 0


def test_mlp_takes_images_and_checks_inputs():
    model = create_model("mlp_residual", depth=2, width=16)  # default: 3 x 32 x 32 images
    assert model.in_features == 3072
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.randn(2, 3072)).shape == (2, 10)
    with pytest.raises(ValueError, match="expects \\[B, 3072\\] or images \\[B, 3, 32, 32\\].*1024 values"):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="got shape \\(5,\\)"):
        model(torch.randn(5))
    grey = create_model("mlp_plain", depth=2, width=8, in_chans=1, img_size=28)
    assert grey.in_features == 784 and grey(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_bad_options():
    with pytest.raises(ValueError, match="norm must be one of"):
        create_model("mlp_plain", norm="group")
    with pytest.raises(ValueError, match="act must be one of"):
        create_model("mlp_plain", act="swish")
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        create_model("mlp_plain", depth=0)
    with pytest.raises(ValueError, match="residual blocks only"):
        create_model("mlp_highway", drop_path_rate=0.1)
    with pytest.raises(TypeError, match="kind"):
        create_model("mlp_plain", kind="residual")


def test_mlp_features_only_and_grad_checkpointing():
    model = create_model("mlp_highway", depth=4, width=8, in_features=6, features_only=True)
    maps = model(torch.randn(3, 6))
    assert len(maps) == 4 and all(m.shape == (3, 8) for m in maps)

    torch.manual_seed(0)
    a = create_model("mlp_residual", depth=6, width=8, in_features=6, zero_init_residual=False)
    b = create_model("mlp_residual", depth=6, width=8, in_features=6, zero_init_residual=False)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = torch.randn(5, 6)
    for m in (a, b):
        m(x).sum().backward()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    assert isinstance(a, MLP) and a.kind == "residual"
