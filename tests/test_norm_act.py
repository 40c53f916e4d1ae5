"""norm (batch, group, layer, none) and act (relu, gelu, silu) on every block and model:
the shape contract holds for each choice, the choice is what gets built, the defaults keep
every registered model's state_dict names and shapes (a snapshot taken before the options
existed), and GroupNorm behaves at batch size 2 as BatchNorm cannot."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import skiplab
from skiplab import blocks as B
from skiplab.blocks.norm import group_count, make_act, make_norm

NORMS = ("batch", "group", "layer", "none")
ACTS = ("relu", "gelu", "silu")
ACT_TYPES = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}

# (factory(in, out, stride, **opts), in, out, stride): every convolutional block
BLOCKS = {
    "basic": (B.BasicBlock, 16, 32, 2),
    "basic_plain": (lambda i, o, s, **k: B.BasicBlock(i, o, s, shortcut=None, **k), 16, 32, 2),
    "bottleneck": (B.Bottleneck, 32, 64, 2),
    "resnext": (lambda i, o, s, **k: B.Bottleneck(i, o, s, groups=4, base_width=16, **k), 32, 64, 2),
    "preact": (B.PreActBlock, 16, 32, 2),
    "preact_bottleneck": (B.PreActBottleneck, 32, 64, 2),
    "pyramid": (B.PyramidBasicBlock, 16, 24, 2),
    "pyramid_bottleneck": (B.PyramidBottleneck, 16, 32, 2),
    "shake_shake": (B.ShakeShakeBlock, 16, 32, 2),
    "inverted_residual": (lambda i, o, s, **k: B.InvertedResidual(i, o, s, expand_ratio=2, **k), 16, 16, 1),
    "down": (B.ResidualDownBlock, 16, 32, 2),
    "up": (B.ResidualUpBlock, 32, 16, 2),
    "highway": (B.ConvHighwayLayer, 16, 16, 1),
    "transition": (lambda i, o, s, **k: B.Transition(i, o, **k), 32, 16, 2),
}


def _out_shape(name, out, stride, size=8):
    side = size * 2 if name == "up" else size // stride
    return (2, out, side, side)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_block_takes_every_norm_and_act(name, norm, act):
    factory, cin, cout, stride = BLOCKS[name]
    block = factory(cin, cout, stride, norm=norm, act=act)
    y = block(torch.randn(2, cin, 8, 8))
    assert y.shape == _out_shape(name, cout, stride)
    kinds = {type(m) for m in block.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch")
    assert (nn.GroupNorm in kinds) == (norm in ("group", "layer"))
    assert ACT_TYPES[act] in kinds
    if act != "relu" and name != "inverted_residual":  # (MobileNetV2's default is ReLU6)
        assert nn.ReLU not in kinds
    if hasattr(block, "zero_init_last") and norm != "none":
        block.zero_init_last()  # works for every affine norm, not only BatchNorm


def test_dense_layers_take_norm_and_act():
    block = B.DenseBlock(16, 2, 8, norm="group", act="silu")
    y = block(torch.randn(2, 16, 8, 8))
    assert y.shape == (2, 32, 8, 8)
    kinds = {type(m) for m in block.modules()}
    assert nn.GroupNorm in kinds and nn.SiLU in kinds and nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    # the memory-efficient (checkpointed) path gives the same output with GroupNorm too
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    ref = block(x)
    block.set_memory_efficient(True)
    assert torch.allclose(block(x), ref, atol=1e-6)


def test_group_count_rule_and_layer_norm():
    assert group_count(64) == 32 and group_count(256) == 32  # timm's GroupNorm(32, C)
    assert group_count(16) == 16 and group_count(24) == 24 and group_count(48) == 24
    assert group_count(40) == 20 and group_count(7) == 7 and group_count(64, 8) == 8
    gn = make_norm("group", 48)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 24
    ln = make_norm("layer", 48)
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1  # LayerNorm over (C, H, W)
    x = torch.randn(2, 48, 5, 5)
    ref = F.layer_norm(x, x.shape[1:])
    assert torch.allclose(ln(x), ref, atol=1e-5)
    assert make_norm(True, 8).__class__ is nn.BatchNorm2d and isinstance(make_norm(False, 8), nn.Identity)
    with pytest.raises(ValueError, match="norm must be one of"):
        make_norm("instance", 8)
    with pytest.raises(ValueError, match="unknown activation"):
        make_act("swish2")


@pytest.mark.parametrize(
    "name",
    [
        "cifar_resnet20",
        "cifar_preact_resnet110",
        "cifar_wrn_16_8",
        "cifar_pyramidnet",
        "cifar_shake_shake",
        "cifar_densenet_bc",
        "cifar_mobilenet_v2",
        "cifar_highway_20",
        "cifar_fast_resnet",
        "resnet18",
        "resnet50",
        "preact_resnet18",
        "densenet121",
        "mobilenet_v2",
        "unet_residual",
        "sar_ae",
    ],
)
def test_create_model_overrides_norm_and_act(name):
    with torch.device("meta"):  # structure only: no memory, no init cost
        model = skiplab.create_model(name, norm="group", act="silu")
    kinds = {type(m) for m in model.modules()}
    assert nn.GroupNorm in kinds and nn.SiLU in kinds
    assert nn.BatchNorm2d not in kinds
    assert not kinds & {nn.ReLU, nn.ReLU6, nn.GELU}


def test_create_model_group_norm_runs():
    model = skiplab.create_model("cifar_resnet20", norm="layer", act="gelu")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_default_state_dicts_are_unchanged():
    """Every registered model with its defaults has the names and shapes of the snapshot
    (tests/fixtures/make_state_dict_keys.py, run before the norm/act options existed), so
    torchvision/timm state dicts and old checkpoints keep loading strictly."""
    path = Path(__file__).parent / "fixtures" / "state_dict_keys.json.gz"
    reference = json.loads(gzip.decompress(path.read_bytes()))
    names = skiplab.list_models()
    assert set(reference) <= set(names)
    for name in reference:
        with torch.device("meta"):
            model = skiplab.create_model(name)
        got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        assert got == reference[name], name


def test_group_norm_output_does_not_depend_on_the_batch():
    """The mechanism: at batch 2 a training-mode BatchNorm net's output for an image depends
    on the other image of the batch, and its eval mode computes another function; a
    GroupNorm net's does neither."""
    torch.manual_seed(0)
    a, b, c = torch.randn(3, 1, 3, 32, 32).unbind(0)
    for norm, depends in (("batch", True), ("group", False), ("layer", False)):
        model = skiplab.create_model("cifar_resnet20", norm=norm, zero_init_residual=False).train()
        with torch.no_grad():
            with_b = model(torch.cat([a, b]))[0]
            with_c = model(torch.cat([a, c]))[0]
            alone = model.eval()(a)[0]
        assert (not torch.allclose(with_b, with_c, atol=1e-4)) == depends, norm
        assert (not torch.allclose(with_b, alone, atol=1e-4)) == depends, norm


def blob_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4 classes of noisy 16x16 images: a bright blob in one colour channel, or a dark one."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.5
    corners = torch.randint(0, 12, (n, 2), generator=g).tolist()
    for i, label in enumerate(y.tolist()):
        top, left = corners[i]
        if label < 3:
            x[i, label, top : top + 4, left : left + 4] += 2.0
        else:
            x[i, :, top : top + 4, left : left + 4] -= 2.0
    return x, y


def _train_batch2_one_class(norm: str, steps: int = 200, seed: int = 0) -> tuple[float, float]:
    """ResNet-8 trained at batch size 2 where each batch holds two images of one class (as
    when a batch is cut from one scene or one sorted shard); held-out accuracy in eval mode
    and in training mode at batch 2."""
    x, y = blob_task(512, 0)
    xt, yt = blob_task(256, 1)
    torch.manual_seed(seed)
    model = skiplab.create_model("cifar_resnet", depth=8, num_classes=4, norm=norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        pool = (y == step % 4).nonzero().squeeze(1)
        i = pool[torch.randint(0, len(pool), (2,), generator=g)]
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        eval_acc = float((model.eval()(xt).argmax(1) == yt).float().mean())
        model.train()
        train_acc = sum(int((model(xt[j : j + 2]).argmax(1) == yt[j : j + 2]).sum()) for j in range(0, 256, 2)) / 256
    return eval_acc, train_acc


@pytest.mark.slow
def test_group_norm_trains_at_batch_2_where_batch_norm_fails_in_eval():
    """At batch 2 with one class per batch, BatchNorm's batch statistics carry the label: its
    eval mode (running statistics) falls below its own training-mode accuracy, and below
    GroupNorm, whose two modes are one function. Measured (seeds 0, 1, 2; eval accuracy):
    BN 0.488 / 0.332 / 0.484, GN 0.590 / 0.547 / 0.645; BN in training mode 0.566 / 0.430 /
    0.566. This test runs seed 0. (With i.i.d. batches of 2 the same BN net reaches 0.97-0.99
    and GN 0.40-0.66 on this colour-coded task: GroupNorm is not better in general -- at
    width 16 it has one channel per group, an instance norm, which removes each channel's
    per-image mean.)"""
    bn_eval, bn_train = _train_batch2_one_class("batch")
    gn_eval, gn_train = _train_batch2_one_class("group")
    assert gn_eval == pytest.approx(gn_train)  # one function in both modes
    assert bn_eval < bn_train - 0.03  # BN's eval mode is worse than its training
    assert gn_eval > bn_eval + 0.05
