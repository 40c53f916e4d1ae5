"""BN folding (skiplab.deploy.fold) is exact, and every model family traces with torch.fx."""

from __future__ import annotations

import pytest
import torch
import torch.fx as fx
from torch import nn

import skiplab
from skiplab.deploy import fold_batchnorm
from skiplab.deploy.fold import count_batchnorms

# one per family; small configurations keep the suite fast
FAMILIES = {
    "cifar_resnet20": {},
    "resnet18": {},
    "cifar_preact_resnet": {"depth": 20},
    "cifar_densenet_bc": {"depth": 10, "growth_rate": 6},
    "cifar_wrn": {"depth": 10},
    "cifar_pyramidnet": {"depth": 20},
    "cifar_shake_shake": {"depth": 8},
    "cifar_highway_20": {},
    "cifar_fast_resnet_s": {},
    "mlp_residual": {},
    "unet": {"base_width": 8, "depth": 2},
    "unet_resnet18": {},
    "sar_ae": {"widths": (8, 8, 16, 16), "latent_channels": 4},
    "sar_ae_bottleneck_cbam": {"widths": (8, 8, 16, 16), "latent_channels": 4},
}


def build(name: str) -> nn.Module:
    model = skiplab.create_model(name, **FAMILIES[name])
    for m in model.modules():  # trained-looking statistics, so folding has work to do
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def example(model: nn.Module) -> torch.Tensor:
    c, h, w = model.default_input_size
    side = min(h, 64)
    return torch.randn(2, c, side, side)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fold_batchnorm_is_exact(name):
    model = build(name)
    x = example(model)
    folded, report = fold_batchnorm(model)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-4
    assert report.remaining == count_batchnorms(folded)
    assert report.folded + report.remaining == count_batchnorms(model)
    assert count_batchnorms(model) > 0  # the original is untouched


def test_fold_removes_every_conv_bn_pair_of_a_post_activation_resnet():
    model = build("cifar_resnet20")
    folded, report = fold_batchnorm(model)
    assert report.folded == 19 and report.remaining == 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


def test_fold_needs_eval_mode():
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(skiplab.create_model("cifar_resnet20").train())


@pytest.mark.parametrize("name", [n for n in sorted(FAMILIES) if n != "unet_resnet18"])
def test_models_trace_with_torch_fx(name):
    model = build(name)
    graph = fx.symbolic_trace(model)
    x = example(model)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))


def test_input_checks_still_apply_outside_tracing():
    with pytest.raises(ValueError, match="4-D"):
        skiplab.create_model("cifar_resnet20")(torch.randn(3, 32, 32))
