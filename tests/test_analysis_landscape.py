"""skiplab.analysis loss landscape (Li 2018) and shattered gradients (Balduzzi 2017)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from skiplab.analysis import (
    evaluate,
    filter_normalized_direction,
    gradient_autocorrelation,
    input_gradients_along_line,
    landscape_1d,
    landscape_2d,
    plot_contour,
    plot_landscape_1d,
    plot_surface,
    shattered_gradients,
)
from skiplab.analysis.landscape import perturbed

from test_analysis import batch, small_net

PNG = b"\x89PNG\r\n\x1a\n"


# -- filter-normalised directions ---------------------------------------------------
def test_filter_normalised_directions_have_the_weights_filter_norms():
    net = small_net("B")
    direction = filter_normalized_direction(net, seed=3)
    params = list(net.parameters())
    assert len(direction) == len(params)
    checked = 0
    for d, p in zip(direction, params):
        assert d.shape == p.shape
        if p.dim() <= 1:  # biases and BN parameters: zero direction (Li 2018's default)
            assert torch.count_nonzero(d) == 0
        else:  # per output filter / output unit: ||d_j|| == ||w_j||
            torch.testing.assert_close(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
            checked += 1
    assert checked == 9  # stem, 2 per block, projection, fc
    again = filter_normalized_direction(net, seed=3)
    other = filter_normalized_direction(net, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(direction, again))
    assert not all(torch.equal(a, b) for a, b in zip(direction, other))
    with_bn = filter_normalized_direction(net, seed=3, ignore_bias_bn=False)
    assert torch.equal(with_bn[2], params[2].detach())  # the stem BN weight is copied


def test_perturbed_moves_the_weights_and_restores_them_bitwise():
    net = small_net("A")
    state = {k: v.clone() for k, v in net.state_dict().items()}
    d = filter_normalized_direction(net)
    with perturbed(net, [d]) as move:
        move(0.5)
        torch.testing.assert_close(net[0].weight, state["0.weight"] + 0.5 * d[0])
        move(0.0)
        assert torch.equal(net[0].weight, state["0.weight"])
        with pytest.raises(ValueError, match="coefficients"):
            move(1.0, 2.0)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="one tensor per parameter"):
        with perturbed(net, [d[:-1]]):
            pass


# -- landscapes ---------------------------------------------------------------------
def test_landscape_value_at_origin_is_the_models_loss_and_weights_come_back():
    net = small_net("A")
    data = [batch(), batch()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    loss = evaluate(net, data)["loss"]
    one = landscape_1d(net, data, alphas=[-0.5, 0.0, 0.5])
    assert one.value_at_origin() == loss
    two = landscape_2d(net, data, alphas=[-1.0, 0.0, 1.0], betas=[-0.5, 0.0])
    assert two.loss.shape == (2, 3) and two.accuracy.shape == (2, 3)
    assert two.value_at_origin() == loss
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert len(two.rows()) == 6 and {"alpha", "beta", "loss", "accuracy"} <= set(two.rows()[0])
    assert one.loss[0] != loss  # moving does change the loss
    with pytest.raises(ValueError, match="two coordinates"):
        landscape_1d(net, data, alphas=[0.0])


def test_kept_landscape_points_are_read_back_not_measured_again(tmp_path):
    """A 2-D slice cut short resumes from the points kept in its JSON-lines file."""
    from skiplab.studies.landscape import KeptPoints

    net = small_net("A")
    data = [batch()]
    grid = [-1.0, 0.0, 1.0]
    whole = landscape_2d(net, data, grid, grid)
    path = tmp_path / "points.jsonl"
    first = KeptPoints(path)
    landscape_2d(net, data, grid, grid[:2], cache=first)  # 6 of the 9 points
    with open(path, "a") as f:
        f.write('{"point": [9.0, ')  # a line cut short by a kill
    calls = []
    handle = net.register_forward_hook(lambda *_: calls.append(1))
    again = landscape_2d(net, data, grid, grid, cache=KeptPoints(path))
    handle.remove()
    assert len(calls) == 3 and len(KeptPoints(path)) == 9  # only the 3 missing points measured
    np.testing.assert_allclose(again.loss, whole.loss, rtol=1e-6)
    assert again.value_at_origin() == whole.value_at_origin()


def test_landscape_inside_bf16_autocast_follows_the_moved_weights():
    """Autocast caches each weight's bf16 copy for as long as its context is open; the
    landscape must not keep evaluating the first grid point (a bug the CIFAR study hit)."""
    net = small_net("A")
    data = [batch()]
    fp32 = landscape_1d(net, data, alphas=[-1.0, 0.0, 1.0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = landscape_1d(net, data, alphas=[-1.0, 0.0, 1.0])
        after = evaluate(net, data)["loss"]  # weights restored, cache too
    assert len(set(bf16.loss.tolist())) == 3
    assert bf16.loss == pytest.approx(fp32.loss, rel=0.05)
    assert after == pytest.approx(fp32.value_at_origin(), rel=0.05)


def test_landscape_along_a_known_direction_is_a_known_curve():
    """A linear model with squared loss: L(w + a d) along d = w is quadratic in a."""
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
    x = torch.randn(16, 3)
    y = torch.zeros(16, 1)
    mse = lambda out, target: ((out - target) ** 2).mean()  # noqa: E731
    from skiplab.analysis import landscape as land_mod

    d = [model.weight.detach().clone()]
    with perturbed(model, [d]) as move, torch.no_grad():
        values = []
        for a in (-1.0, 0.0, 1.0):
            move(a)
            values.append(float(mse(model(x), y)))
    with torch.no_grad():
        base = float(mse(model(x), y))
    assert values == pytest.approx([0.0, base, 4 * base], rel=1e-5)  # (1 + a)^2 * L(w)
    assert land_mod.filter_normalized_direction(model)[0].norm() == pytest.approx(float(model.weight.detach().norm()))


def test_landscape_plots_write_pngs(tmp_path):
    net = small_net("A")
    data = [batch()]
    one = landscape_1d(net, data, alphas=[-0.2, 0.0, 0.2])
    two = landscape_2d(net, data, alphas=[-0.2, 0.0, 0.2], betas=[-0.2, 0.0, 0.2])
    paths = [
        plot_landscape_1d({"resnet": one}, tmp_path / "one.png"),
        plot_contour(two, tmp_path / "contour.png", vmax=10.0),
        plot_surface(two, tmp_path / "sub" / "surface.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="2-D"):
        plot_contour(one, tmp_path / "x.png")


# -- shattered gradients ---------------------------------------------------------------
def test_autocorrelation_of_a_linear_model_is_one():
    model = nn.Linear(5, 3)
    result = shattered_gradients(model, torch.randn(5), n_points=64, max_lag=10, output_index=2)
    np.testing.assert_allclose(result.autocorrelation, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.gradients, model.weight[2].detach().double().expand(64, 5).numpy(), rtol=1e-6)
    assert result.summary() == {"lag1": pytest.approx(1.0), "correlation_length": 11}


def test_autocorrelation_known_sequences():
    rng = np.random.default_rng(0)
    white = rng.standard_normal(4000)
    r = gradient_autocorrelation(white, max_lag=5)
    assert r[0] == pytest.approx(1.0) and np.all(np.abs(r[1:]) < 0.06)
    alternating = np.array([1.0, -1.0] * 50)
    r = gradient_autocorrelation(alternating, max_lag=3)
    np.testing.assert_allclose(r, [1, -1, 1, -1])
    assert np.isnan(gradient_autocorrelation(np.ones(10), max_lag=2, centered=True)[1])
    with pytest.raises(ValueError, match="max_lag"):
        gradient_autocorrelation(white[:5], max_lag=5)


def test_input_gradients_of_a_quadratic_are_the_points_themselves():
    class HalfSquaredNorm(nn.Module):
        def forward(self, x):
            return 0.5 * x.flatten(1).pow(2).sum(1)

    x0 = torch.randn(2, 3, 3, dtype=torch.float64)
    direction = torch.randn(2, 3, 3, dtype=torch.float64)
    t, grads = input_gradients_along_line(HalfSquaredNorm(), x0, direction, n_points=9, radius=1.0)
    expected = (x0.flatten()[None] + torch.from_numpy(t)[:, None] * direction.flatten()[None]).numpy()
    np.testing.assert_allclose(grads, expected, rtol=1e-12)


def test_shattered_gradients_conv_net_and_buffers_restored():
    net = small_net("A")
    net.train()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    result = shattered_gradients(net, batch()[0][0], n_points=16, max_lag=4)
    assert result.gradients.shape == (16, 3 * 8 * 8) and result.autocorrelation.shape == (5,)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert net.training and net[1].momentum == 0.1
    with pytest.raises(ValueError, match="norm_stats"):
        shattered_gradients(net, batch()[0][0], norm_stats="batch")


@pytest.mark.slow
def test_residual_mlp_gradients_shatter_less_than_plain_ones():
    """Balduzzi 2017 Fig. 1: at depth 24 a plain net's input gradients are nearly white
    noise; the residual net's stay correlated."""
    from skiplab.models import create_model

    lag1 = {}
    for kind in ("plain", "residual"):
        torch.manual_seed(0)
        model = create_model(f"mlp_{kind}", depth=24, width=200, in_features=1, num_classes=1, zero_init_residual=False)
        lag1[kind] = shattered_gradients(model, torch.zeros(1), n_points=256, radius=2.0).summary()["lag1"]
    assert lag1["plain"] < 0.3 < 0.6 < lag1["residual"]


@pytest.mark.slow
def test_diagnostic_plots_write_pngs(tmp_path):
    from skiplab.analysis import (
        gradient_flow,
        lesion_random,
        lesion_single,
        path_gradients,
        plot_autocorrelation,
        plot_gradient_flow,
        plot_lesion,
        plot_path_lengths,
    )

    nets = {"plain": small_net(None).eval(), "resnet": small_net("A").eval()}
    data = [batch()]
    flows = {k: gradient_flow(n, *data[0]).layers for k, n in nets.items()}
    singles = {k: lesion_single(n, data) for k, n in nets.items()}
    randoms = {"resnet": lesion_random(nets["resnet"], data, k_values=[1, 2], draws=2)}
    paths = [
        plot_gradient_flow(flows, tmp_path / "flow.png"),
        plot_lesion(singles, tmp_path / "lesion.png", randoms, baselines={"resnet": 0.5}),
        plot_path_lengths(path_gradients(nets["resnet"], data, samples=1).rows, tmp_path / "paths.png"),
        plot_autocorrelation({"linear": [1.0, 1.0, 1.0]}, tmp_path / "auto.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG


def _tiny_hessian():
    """A small tanh net, its data and its full Hessian (torch.autograd.functional.hessian)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    params = [p.detach().clone() for p in model.parameters()]

    def loss(*ps):
        h = torch.tanh(x @ ps[0].T + ps[1])
        return F.cross_entropy(h @ ps[2].T + ps[3], y)

    blocks = torch.autograd.functional.hessian(loss, tuple(params))
    n = [p.numel() for p in params]
    full = torch.cat([torch.cat([blocks[i][j].reshape(n[i], n[j]) for j in range(4)], 1) for i in range(4)], 0)
    return model, x, y, params, full


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_hessian_vector_products_equal_the_explicit_hessian_times_the_vector(mode):
    from skiplab.analysis.hessian import hessian_vector_product

    model, x, y, params, full = _tiny_hessian()
    v = [torch.randn(p.shape) for p in params]
    flat = torch.cat([t.reshape(-1) for t in v])
    for chunk in (None, 5):  # chunks of 5 images (the last one shorter) weigh each image equally
        hv = hessian_vector_product(model, [(x[:20], y[:20]), (x[20:], y[20:])], v, mode=mode, chunk=chunk)
        assert torch.allclose(torch.cat([h.reshape(-1) for h in hv]), full @ flat, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))


def test_hessian_extremes_of_a_conv_net_in_channels_last_match_the_explicit_hessian():
    from torch.func import functional_call, hessian
    from skiplab.analysis.hessian import hessian_extremes

    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)).eval()
    model[1].running_mean.uniform_(-0.5, 0.5)
    x, y = torch.randn(6, 2, 4, 4), torch.randint(0, 3, (6,))
    named = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    flat0 = torch.cat([p.detach().reshape(-1) for p in named.values()])
    shapes = [(n, p.shape, p.numel()) for n, p in named.items()]

    def loss(flat):
        ps, i = {}, 0
        for n, s, k in shapes:
            ps[n], i = flat[i : i + k].view(s), i + k
        return torch.nn.functional.cross_entropy(functional_call(model, (ps, buffers), (x,)), y)

    ev = torch.linalg.eigvalsh(hessian(loss)(flat0))
    found = hessian_extremes(model, [(x, y)], steps=len(ev), tol=1e-6)
    assert found["channels_last"] and found["lambda_max"] == pytest.approx(ev.max().item(), rel=1e-4)
    assert found["lambda_min"] == pytest.approx(ev.min().item(), abs=1e-4 * ev.abs().max().item())
    assert next(model.parameters()).is_contiguous()  # the caller's model is not converted


def test_hessian_extremes_match_the_explicit_hessian():
    """Lanczos on Hessian-vector products against torch's full Hessian of a small model: both
    ends of the spectrum from one run, its residual bounds true, non-convergence said."""
    from skiplab.analysis.hessian import hessian_extremes

    model, x, y, params, full = _tiny_hessian()
    ev = torch.linalg.eigvalsh(full)
    top = ev.max().item()
    assert ev.min() < 0 < ev.max()  # indefinite: λmin needs the spectrum's lower end
    found = hessian_extremes(model, [(x, y)], steps=40, tol=1e-6)
    assert found["lambda_max"] == pytest.approx(top, rel=1e-4)
    assert found["lambda_min"] == pytest.approx(ev.min().item(), abs=1e-4 * abs(top))
    assert found["converged"] and found["products"] <= len(ev) and found["images"] == 32
    early = hessian_extremes(model, [(x, y)], steps=4, tol=1e-10)
    assert not early["converged"] and early["products"] == 4  # said, not hidden
    # Ritz values lie inside the spectrum and within their residual bound of an eigenvalue
    assert ev.min().item() - 1e-6 <= early["lambda_min"] and early["lambda_max"] <= ev.max().item() + 1e-6
    for value, bound in (
        (early["lambda_max"], early["lambda_max_residual"]),
        (early["lambda_min"], early["lambda_min_residual"]),
    ):
        assert (ev - value).abs().min().item() <= bound + 1e-6
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters()))


def test_lanczos_resumes_from_its_kept_state_with_the_same_result(tmp_path):
    from skiplab.analysis.hessian import lanczos

    g = torch.Generator().manual_seed(3)
    a = torch.randn(30, 30, generator=g, dtype=torch.float64)
    H = (a + a.T).float()
    start = torch.randn(30, generator=g)
    whole = lanczos(lambda v: H @ v, start, steps=12, tol=0.0)
    state = tmp_path / "h.lanczos.pt"
    calls = []

    def stopping(v):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return H @ v

    with pytest.raises(KeyboardInterrupt):
        lanczos(stopping, start, steps=12, tol=0.0, state=state)
    resumed_calls = []
    resumed = lanczos(lambda v: resumed_calls.append(1) or H @ v, start, steps=12, tol=0.0, state=state)
    assert len(resumed_calls) == 12 - 5  # the five kept products are not made again
    assert resumed["products"] == whole["products"] == 12
    assert resumed["ritz"] == pytest.approx(whole["ritz"], rel=1e-6, abs=1e-6)
    # a kept state of another start vector is not read
    other = lanczos(lambda v: H @ v, torch.randn(30, generator=g), steps=3, tol=0.0, state=state)
    assert other["products"] == 3


def test_a_small_residual_does_not_stop_the_hessian_before_an_unseen_end_is_reached():
    """A spectrum like a trained net's: two large eigenvalues, a cluster at ~0, one negative
    outlier the start vector barely touches. Stopping on the residual bound finds the cluster's
    edge; spending the budget (what hessian_extremes does) finds the outlier."""
    from skiplab.analysis.hessian import lanczos

    g = torch.Generator().manual_seed(0)
    eig = torch.cat(
        [
            torch.tensor([100.0, 50.0, -0.5], dtype=torch.float64),
            1e-4 * torch.randn(17, generator=g, dtype=torch.float64),
        ]
    )
    Q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    H = Q @ torch.diag(eig) @ Q.T
    start = Q @ torch.cat(
        [
            torch.ones(2, dtype=torch.float64),
            torch.tensor([1e-6], dtype=torch.float64),
            torch.ones(17, dtype=torch.float64),
        ]
    )
    early = lanczos(lambda v: H @ v, start, steps=20, tol=1e-2)
    full = lanczos(lambda v: H @ v, start, steps=20, tol=1e-2, min_steps=20)
    assert early["products"] < 20 and early["ritz"][0] > -0.1  # stopped at the cluster
    assert full["ritz"][0] == pytest.approx(-0.5, abs=1e-6) and full["ritz"][-1] == pytest.approx(100.0)
