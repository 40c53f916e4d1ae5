"""skiplab.analysis: block discovery, gradient flow, residual ratio, activation statistics.

Small nets built from the library's blocks (8x8 inputs) keep every test fast; each
diagnostic is checked against a case with a known answer or a manual computation.
"""

from __future__ import annotations

import csv
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skiplab.analysis import activation_stats, find_units, gradient_flow, residual_ratio, weight_layers
from skiplab.studies import GradientFlowCallback, ResidualRatioCallback
from skiplab.blocks import BasicBlock, PreActBlock


def small_net(shortcut="A", block=BasicBlock, zero_branches=False, num_classes=5) -> nn.Sequential:
    """stem (conv, BN, ReLU) -> 8,8 -> 8,16/2 -> 16,16 blocks -> pool -> fc."""
    blocks = [
        block(8, 8, 1, shortcut=shortcut),
        block(8, 16, 2, shortcut=shortcut),
        block(16, 16, 1, shortcut=shortcut),
    ]
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        *blocks,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )
    for m in net.modules():  # non-trivial BN parameters and running statistics
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
    if zero_branches:  # as init_weights(zero_init_residual=True): last γ = 0 (and β = 0)
        for b in blocks:
            b.zero_init_last()
            if isinstance(getattr(b, "bn2", None), nn.BatchNorm2d) and block is BasicBlock:
                nn.init.zeros_(b.bn2.bias)
    return net


def batch(n=6, classes=5):
    return torch.randn(n, 3, 8, 8), torch.randint(0, classes, (n,))


# -- block discovery ----------------------------------------------------------------
def test_find_units_kinds_order_and_shapes():
    x, _ = batch()
    units = find_units(small_net("A"), x)
    assert [u.name for u in units] == ["3", "4", "5"]
    assert [u.kind for u in units] == ["residual"] * 3
    assert [u.in_shape for u in units] == [(8, 8, 8), (8, 8, 8), (16, 4, 4)]
    assert [u.out_shape for u in units] == [(8, 8, 8), (16, 4, 4), (16, 4, 4)]
    assert [u.downsampling for u in units] == [False, True, False]
    assert all(u.branch_in_forward for u in units)
    assert [u.kind for u in find_units(small_net(None), x)] == ["plain"] * 3


def test_find_units_falls_back_to_layers_and_keeps_blocks_outermost():
    mlp = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    units = find_units(mlp, torch.randn(3, 4))
    assert [(u.name, u.kind, u.in_shape, u.out_shape) for u in units] == [
        ("0", "layer", (4,), (6,)),
        ("2", "layer", (6,), (6,)),
        ("4", "layer", (6,), (2,)),
    ]
    assert find_units(mlp, fallback_layers=False) == []
    block = BasicBlock(8, 8, shortcut="A")
    assert [u.name for u in find_units(block)] == [""]  # a block alone is one unit


def test_probe_leaves_model_untouched():
    net = small_net()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    find_units(net, batch()[0])
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# -- gradient flow --------------------------------------------------------------------
def test_gradient_flow_matches_manual_autograd():
    net = small_net("B")
    x, y = batch()
    net.eval()  # deterministic: the same forward for the manual computation
    flow = gradient_flow(net, x, y)
    assert all(p.grad is None for p in net.parameters())  # .grad untouched

    captured = {}
    hooks = [
        net[i].register_forward_pre_hook(lambda m, inp, i=i: captured.__setitem__(str(i), inp[0])) for i in (3, 4, 5)
    ]
    loss = F.cross_entropy(net(x), y)
    for h in hooks:
        h.remove()
    layers = dict(net.named_modules())
    names = [r["layer"] for r in flow.layers]
    grads = torch.autograd.grad(loss, [layers[n].weight for n in names] + [captured[k] for k in ("3", "4", "5")])
    for row, g in zip(flow.layers, grads):
        assert row["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-5)
        assert row["weight_norm"] == pytest.approx(float(layers[row["layer"]].weight.detach().norm()), rel=1e-6)
    for row, g in zip(flow.blocks, grads[len(names) :]):
        assert row["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-5)
    assert flow.loss == pytest.approx(float(loss.detach()))
    assert flow.first_last_ratio == pytest.approx(flow.layers[0]["grad_norm"] / flow.layers[-1]["grad_norm"])


def test_weight_layers_forward_order_depth_and_shortcuts():
    net = small_net("B")
    flow = gradient_flow(net, *batch())
    got = [(r["layer"], r["depth"], r["shortcut"]) for r in flow.layers]
    assert got == [
        ("0", 1, False),
        ("3.conv1", 2, False),
        ("3.conv2", 3, False),
        ("4.conv1", 4, False),
        ("4.conv2", 5, False),
        ("4.downsample.0", 5, True),
        ("5.conv1", 6, False),
        ("5.conv2", 7, False),
        ("8", 8, False),
    ]
    with_norm = weight_layers(net, include_norm=True)
    assert sum(l.kind == "norm" for l in with_norm) == 8  # stem + 2 per block + projection BN


def fake_trainer(model, run_dir=None):
    logged = []
    return SimpleNamespace(
        model=model, step=0, epoch=0, run_dir=run_dir, is_main=True, log=logged.append, logged=logged
    )


def test_gradient_flow_callback_records_every_k_steps(tmp_path):
    net = small_net("A")
    trainer = fake_trainer(net, tmp_path)
    cb = GradientFlowCallback(every=2)
    cb.on_fit_start(trainer)
    expected = {}
    for step in range(5):
        x, y = batch()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        trainer.step = step
        cb.on_after_backward(trainer)
        expected[step] = float(net[0].weight.grad.norm())
        with torch.no_grad():  # an SGD step
            for p in net.parameters():
                p -= 0.1 * p.grad
                p.grad = None
        cb.on_step_end(trainer)
    cb.on_fit_end(trainer)
    weights = [r for r in cb.rows if r["quantity"] == "weight"]
    blocks = [r for r in cb.rows if r["quantity"] == "block_input"]
    assert sorted({r["step"] for r in weights}) == [0, 2, 4]
    assert sorted({r["step"] for r in blocks}) == [0, 2, 4]
    assert len(blocks) == 3 * 3
    for r in weights:
        if r["name"] == "0":
            assert r["grad_norm"] == pytest.approx(expected[r["step"]], rel=1e-6)
    assert [r["depth"] for r in weights if r["step"] == 0][:3] == [1, 2, 3]
    assert len(trainer.logged) == 3 and "grad_first_last_ratio" in trainer.logged[0]
    with open(tmp_path / "gradient_flow.csv") as f:
        assert len(list(csv.DictReader(f))) == len(cb.rows)
    assert not net[3]._forward_pre_hooks  # hooks removed at the end


def test_gradient_flow_callback_rejects_bad_interval():
    with pytest.raises(ValueError, match="every"):
        GradientFlowCallback(every=0)


# -- residual ratio -------------------------------------------------------------------
@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_zero_initialised_blocks_have_ratio_zero(block):
    rows = residual_ratio(small_net("A", block, zero_branches=True), batch()[0])
    assert len(rows) == 3
    assert all(r["ratio"] == 0.0 and r["branch_norm"] == 0.0 for r in rows)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_residual_ratio_matches_manual_norms(block):
    net = small_net("A", block).eval()
    x, _ = batch()
    rows = residual_ratio(net, x)
    with torch.no_grad():
        h = net[2](net[1](net[0](x)))
        first = net[3]
        manual = (first.residual(h).flatten(1).norm(dim=1) / h.flatten(1).norm(dim=1)).mean()
        h2 = first(h)
        f2 = net[4].residual(h2)
        pad = net[4].downsample(h2 if block is BasicBlock else h2)
        to_shortcut = (f2.flatten(1).norm(dim=1) / pad.flatten(1).norm(dim=1)).mean()
    assert rows[0]["ratio"] == pytest.approx(float(manual), rel=1e-5)
    assert rows[0]["ratio"] == rows[0]["ratio_to_shortcut"]
    assert rows[1]["ratio_to_shortcut"] == pytest.approx(float(to_shortcut), rel=1e-5)
    assert rows[1]["downsampling"] and rows[0]["ratio"] > 0


def test_residual_ratio_needs_residual_blocks():
    with pytest.raises(ValueError, match="no residual blocks"):
        residual_ratio(small_net(None), batch()[0])
    assert len(residual_ratio(small_net(None), batch()[0], include_plain=True)) == 3


def test_residual_ratio_callback_tracks_epochs_and_keeps_mode(tmp_path):
    net = small_net("A").train()
    probe, _ = batch()
    trainer = fake_trainer(net, tmp_path)
    cb = ResidualRatioCallback(probe)
    cb.on_fit_start(trainer)
    with torch.no_grad():
        for b in (net[3], net[4], net[5]):
            b.bn2.weight.mul_(3.0)  # "training" makes every branch larger
    cb.on_epoch_end(trainer, {})
    assert net.training and net[3].bn1.training
    assert [r["epoch"] for r in cb.rows] == [0, 0, 0, 1, 1, 1]
    assert all(cb.rows[i + 3]["ratio"] > cb.rows[i]["ratio"] for i in range(3))
    assert "residual_ratio_mean" in trainer.logged[0]
    assert (tmp_path / "residual_ratio.csv").is_file()
    with pytest.raises(ValueError, match="probe"):
        ResidualRatioCallback([1, 2])


# -- activation statistics --------------------------------------------------------------
def test_activation_stats_counts_dead_relus():
    block = BasicBlock(4, 4, shortcut=None).eval()
    with torch.no_grad():
        block.bn1.bias.fill_(-1e4)  # first ReLU never fires: 4 dead units
        block.bn2.bias.fill_(1.0)  # conv2 sees zeros -> output relu(0 + 1) = 1
    net = nn.Sequential(block)
    x = torch.randn(5, 4, 6, 6)
    (row,) = activation_stats(net, x)
    assert (row["relu_units"], row["dead_units"], row["dead_fraction"]) == (8, 4, 0.5)
    assert row["mean"] == pytest.approx(1.0) and row["std"] == pytest.approx(0.0, abs=1e-6)


def test_activation_stats_mean_std_over_several_batches():
    net = small_net("A").eval()
    batches = [batch(), batch()]
    rows = activation_stats(net, batches)
    with torch.no_grad():
        outs = [net[3](net[2](net[1](net[0](x)))) for x, _ in batches]
    allout = torch.cat(outs).double()
    assert rows[0]["mean"] == pytest.approx(float(allout.mean()), rel=1e-6)
    assert rows[0]["std"] == pytest.approx(float(allout.std(unbiased=False)), rel=1e-5)
    assert 0.0 <= rows[1]["dead_fraction"] <= 1.0
    with pytest.raises(ValueError, match="batches"):
        activation_stats(net, ["not a batch"])


@pytest.mark.slow
def test_callbacks_inside_a_real_training_run(tmp_path):
    from skiplab.train import TrainConfig, fit

    flow, ratio = GradientFlowCallback(every=2), ResidualRatioCallback(torch.randn(4, 3, 32, 32))
    result = fit(
        TrainConfig(
            out=str(tmp_path / "run"),
            model="cifar_resnet",
            model_kwargs={"depth": 8},
            data="synthetic:shapes-256",
            epochs=1,
            steps=4,
            batch_size=16,
            progress=False,
            compile="off",
            num_threads=1,
        ),
        callbacks=[flow, ratio],
    )
    assert {"grad_first_last_ratio", "residual_ratio_mean"} <= set(result.metrics)
    with open(tmp_path / "run" / "gradient_flow.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted({int(r["step"]) for r in rows}) == [0, 2]
    assert {r["quantity"] for r in rows} == {"weight", "block_input"}
    with open(tmp_path / "run" / "residual_ratio.csv") as f:
        assert sorted({int(r["epoch"]) for r in csv.DictReader(f)}) == [0, 1]
