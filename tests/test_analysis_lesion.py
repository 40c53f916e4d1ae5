"""skiplab.analysis lesions (Veit 2016) and path lengths: known answers and exact restoration."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skiplab.analysis import (
    delete_blocks,
    evaluate,
    find_units,
    lesion_random,
    lesion_reorder,
    lesion_single,
    lesion_study,
    path_gradients,
    path_length_counts,
    path_length_distribution,
    residual_blocks,
    swap_blocks,
)
from skiplab.analysis.paths import GatedBlocks
from skiplab.blocks import BasicBlock, PreActBlock

from test_analysis import batch, small_net


def snapshot(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def assert_restored(net, state, x, expected):
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    for m in net.modules():
        assert not {"forward", "residual", "residual_from_preact"} & set(vars(m)), "override left behind"
    with torch.no_grad():
        assert torch.equal(net(x), expected)


# -- deleting blocks -----------------------------------------------------------------
@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_deleting_an_identity_block_changes_nothing(block):
    net = small_net("A", block).eval()
    x, _ = batch()
    with torch.no_grad():
        identity = net[5]
        identity.zero_init_last()
        if block is BasicBlock:
            nn.init.zeros_(identity.bn2.bias)
        expected = net(x)
    units = find_units(net, x)
    with delete_blocks([units[2]]), torch.no_grad():
        assert torch.equal(net(x), expected)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_deleted_block_keeps_only_its_shortcut(block):
    net = small_net("A", block).eval()
    x, _ = batch()
    down = net[4]
    seen = {}
    down.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0], y=out))
    units = find_units(net, x)
    with delete_blocks([units[1]]), torch.no_grad():
        net(x)
    shortcut = down.downsample(seen["x"])
    expected = torch.relu(shortcut) if block is BasicBlock else shortcut  # relu(W_s x) / W_s x
    assert torch.equal(seen["y"], expected)


def test_lesion_restores_the_model_exactly_even_after_an_error():
    net = small_net("A").eval()
    x, _ = batch()
    with torch.no_grad():
        expected = net(x)
    state = snapshot(net)
    units = find_units(net, x)
    with delete_blocks(units), torch.no_grad():
        assert not torch.equal(net(x), expected)
    assert_restored(net, state, x, expected)
    with pytest.raises(RuntimeError, match="boom"):
        with delete_blocks(units[:2]), swap_blocks(units[0], find_units(net, x)[0]):
            raise RuntimeError("boom")
    assert_restored(net, state, x, expected)


def test_plain_units_become_the_identity_only_where_shapes_allow():
    net = small_net(None).eval()
    x, _ = batch()
    units = find_units(net, x)
    h = {}
    net[3].register_forward_pre_hook(lambda m, inp: h.update(x=inp[0]))
    net[3].register_forward_hook(lambda m, inp, out: h.update(y=out))
    with delete_blocks([units[0]]), torch.no_grad():
        net(x)
    assert torch.equal(h["x"], h["y"])
    with pytest.raises(ValueError, match="shape-preserving"):
        with delete_blocks([units[1]]):
            pass
    rows = lesion_single(net, [(x, torch.zeros(6, dtype=torch.long))])
    assert [r["block"] for r in rows] == ["3", "5"]


def test_swap_runs_adjacent_blocks_in_the_other_order():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), *[BasicBlock(8, 8, shortcut="A") for _ in range(3)])
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    units = find_units(net, x)
    with torch.no_grad():
        manual = net[3](net[1](net[2](net[0](x))))
        with swap_blocks(units[0], units[1]):
            swapped = net(x)
    assert torch.equal(swapped, manual)
    down = small_net("A")
    d_units = find_units(down, batch()[0])
    with pytest.raises(ValueError, match="keep the shape"):
        with swap_blocks(d_units[0], d_units[1]):
            pass


def test_lesion_rows_and_errors():
    net = small_net("A").eval()
    data = [batch(), batch()]
    base = evaluate(net, data)
    single = lesion_single(net, data)
    assert [r["block"] for r in single] == ["3", "4", "5"]
    assert [r["downsampling"] for r in single] == [False, True, False]
    for r in single:
        assert r["accuracy_drop"] == pytest.approx(base["accuracy"] - r["accuracy"])
    rnd = lesion_random(net, data, k_values=[1, 2], draws=3, seed=1)
    assert [(r["k"], r["draw"]) for r in rnd] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert all("4" not in r["deleted"].split() for r in rnd)  # downsampling block excluded
    assert rnd == lesion_random(net, data, k_values=[1, 2], draws=3, seed=1)  # seeded
    with pytest.raises(ValueError, match="k=3"):
        lesion_random(net, data, k_values=[3])
    with pytest.raises(ValueError, match="at least one"):
        evaluate(net, [])


def test_lesion_study_on_a_deeper_net():
    blocks = [BasicBlock(8, 8, shortcut="A") for _ in range(6)]
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        *blocks,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()
    data = [(torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,)))]
    study = lesion_study(net, data, max_deleted=3, draws=2, max_swapped=5)
    assert len(study.single) == 6
    assert sorted({r["k"] for r in study.random}) == [1, 2, 3]
    assert sorted({r["k"] for r in study.reorder}) == [1, 2]  # 5 adjacent pairs -> ceil(5/3)
    for r in study.reorder:
        pairs = [p.split("<->") for p in r["swapped"].split()]
        assert len(pairs) == r["k"] and len({b for p in pairs for b in p}) == 2 * r["k"]
    s = study.summary()
    assert s["deletable_units"] == 6 and 0 <= s["baseline_accuracy"] <= 1
    with pytest.raises(ValueError, match="disjoint"):
        lesion_reorder(net, data, k_values=[4], draws=1)


# -- path lengths -----------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 5, 27, 54])
def test_binomial_path_counts_sum_to_two_to_the_n(n):
    counts = path_length_counts(n)
    assert sum(counts) == 2**n and counts == counts[::-1]
    dist = path_length_distribution(n)
    assert math.isclose(sum(r["fraction"] for r in dist), 1.0)
    assert max(dist, key=lambda r: r["paths"])["length"] == n // 2


def test_path_counts_reject_bad_n():
    with pytest.raises(ValueError, match="number of blocks"):
        path_length_counts(-1)


@pytest.mark.parametrize("block", [BasicBlock, PreActBlock])
def test_path_gradients_over_all_subsets_add_up_to_the_full_gradient(block):
    """Backpropagation is linear once the forward pass is fixed: the gradients of the 2^n
    single paths sum to the true gradient, and gating leaves the forward values alone."""
    net = small_net("A", block).eval()
    x, y = batch()
    with torch.no_grad():
        expected = net(x)
    blocks = residual_blocks(net, x)
    with GatedBlocks(blocks) as gates:
        out = net(x)
        assert torch.equal(out, expected)
        loss = F.cross_entropy(out, y, reduction="sum")
        x0 = gates.first_input
        full = torch.autograd.grad(loss, x0, retain_graph=True)[0]
        total = torch.zeros_like(full)
        for k in range(len(blocks) + 1):
            for chosen in itertools.combinations(range(len(blocks)), k):
                gates.set_path(set(chosen))
                total += torch.autograd.grad(loss, x0, retain_graph=True)[0]
    torch.testing.assert_close(total, full, rtol=1e-4, atol=1e-6)
    assert not any("forward" in vars(u.module) for u in blocks)


def test_path_gradients_rows_and_zero_branches():
    x, y = batch()
    result = path_gradients(small_net("A"), [(x, y)], samples=2, seed=0)
    assert [r["length"] for r in result.rows] == [0, 1, 2, 3]
    assert [r["paths"] for r in result.rows] == [1, 3, 3, 1]
    assert math.isclose(sum(r["fraction"] for r in result.rows), 1.0)
    for r in result.rows:
        assert r["total_gradient"] == pytest.approx(r["paths"] * r["mean_grad_norm"])
    # zero branches pass no gradient: everything flows along the length-0 path
    zero = path_gradients(small_net("A", zero_branches=True), [(x, y)], samples=2)
    assert zero.rows[0]["fraction"] == 1.0 and all(r["mean_grad_norm"] == 0 for r in zero.rows[1:])
    assert zero.rows[0]["mean_grad_norm"] == pytest.approx(zero.full_grad_norm)
    s = zero.summary()
    assert (s["peak_length"], s["effective_min"], s["effective_max"]) == (0, 0, 0)
    with pytest.raises(ValueError, match="no residual blocks"):
        path_gradients(small_net(None), [(x, y)])
    with pytest.raises(ValueError, match="path lengths"):
        path_gradients(small_net("A"), [(x, y)], lengths=[4])
