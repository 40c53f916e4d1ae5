"""SAR losses: log-domain speckle bias and its correction, SSIM / MS-SSIM against
torchmetrics, the Gamma likelihood, weighted sums from a config."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

from skiplab.sar.raster.radiometry import Radiometry
from skiplab.sar.raster.speckle import gamma_speckle
from skiplab.sar.training.losses import (
    MS_SSIM_WEIGHTS,
    GammaNLLLoss,
    build_loss,
    debias_log_prediction,
    gamma_nll,
    log_speckle_bias,
    log_speckle_bias_db,
    ms_ssim,
    ssim,
)


def _smooth_pair(size: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.avg_pool2d(torch.rand(2, 1, size + 4, size + 4, generator=g), 5, 1)
    b = (a + noise * torch.randn(a.shape, generator=g)).clamp(0, 1)
    return a, b


@pytest.mark.parametrize("looks", [1, 2, 2.7, 5])
def test_log_bias_matches_simulated_speckle(looks):
    n = gamma_speckle((400_000,), looks, torch.Generator().manual_seed(1), torch.float64)
    assert n.log().mean().item() == pytest.approx(log_speckle_bias(looks), abs=5e-3)
    assert n.log().median().item() == pytest.approx(log_speckle_bias(looks, "median"), abs=5e-3)


def test_log_bias_closed_form_values():
    assert log_speckle_bias(1) == pytest.approx(-0.5772156649, abs=1e-9)  # -Euler's gamma
    assert log_speckle_bias_db(1) == pytest.approx(-2.5068, abs=1e-4)
    assert log_speckle_bias(1, "median") == pytest.approx(math.log(math.log(2)), abs=1e-9)
    assert abs(log_speckle_bias_db(100)) < 0.022  # -> 0 as L grows
    with pytest.raises(ValueError, match="estimator"):
        log_speckle_bias(1, "mode")


def test_mse_optimum_in_log_domain_is_biased_and_the_correction_removes_it():
    """Fitting a constant to log-speckled data of a flat field with MSE lands psi(L) - ln L
    below ln mu; debias_log_prediction puts it back on mu."""
    looks, mu = 2.0, 0.04
    r = Radiometry.fixed(-40, 10)
    speckled = mu * gamma_speckle((200_000,), looks, torch.Generator().manual_seed(2), torch.float64)
    target = r.forward(speckled)
    constant = target.mean()  # the MSE minimiser
    assert r.inverse_intensity(constant).item() == pytest.approx(mu * math.exp(log_speckle_bias(looks)), rel=0.01)
    fixed = debias_log_prediction(constant, looks, r.span_db)
    assert r.inverse_intensity(fixed).item() == pytest.approx(mu, rel=0.01)


def test_ssim_and_ms_ssim_agree_with_torchmetrics():
    """Same formula; torchmetrics averages the SSIM map over the reflect-padded image, ours
    over valid windows (Wang's reference code), so padding our input reproduces theirs."""
    a, b = _smooth_pair(176, 0.05)
    ref = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    pad = lambda t: torch.nn.functional.pad(t, (5, 5, 5, 5), mode="reflect")
    torch.testing.assert_close(ssim(pad(a), pad(b)), ref, atol=2e-5, rtol=0)
    assert (ssim(a, b) - ref).abs().max() < 3e-3  # border convention only
    ours = ms_ssim(a, b)
    ref = multiscale_structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    torch.testing.assert_close(ours, ref, atol=3e-4, rtol=0)
    assert torch.allclose(ssim(a, a), torch.ones(2)) and torch.allclose(ms_ssim(a, a), torch.ones(2))


def test_ms_ssim_size_limits_and_fewer_scales():
    a, b = _smooth_pair(128, 0.05)
    with pytest.raises(ValueError, match="at least 161x161"):
        ms_ssim(a, b)
    value = ms_ssim(a, b, weights=MS_SSIM_WEIGHTS[:4])
    assert value.shape == (2,) and (value > 0.5).all() and (value < 1).all()
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, b[:1])


def test_ssim_losses_have_finite_gradients_even_for_anticorrelated_images():
    a, _ = _smooth_pair(176, 0.0)
    pred = (1 - a).clone().requires_grad_(True)  # negative structure term
    loss = build_loss({"ms_ssim": 1.0, "ssim": 1.0})(pred, a)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_gamma_nll_is_minimised_by_the_arithmetic_mean():
    looks = 3.0
    y = 0.2 * gamma_speckle((50_000,), looks, torch.Generator().manual_seed(0), torch.float64)
    log_mu = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_mu], max_iter=50)

    def closure():
        opt.zero_grad()
        loss = gamma_nll(log_mu.expand_as(y), y, looks)
        loss.backward()
        return loss

    opt.step(closure)
    assert math.exp(log_mu.item()) == pytest.approx(y.mean().item(), rel=1e-6)


def test_gamma_nll_full_is_the_exact_log_density():
    looks, mu, y = 2.5, 0.3, torch.tensor([0.05, 0.3, 1.2], dtype=torch.float64)
    dist = torch.distributions.Gamma(torch.tensor(looks, dtype=torch.float64), looks / mu)
    expected = -dist.log_prob(y).mean()
    got = gamma_nll(torch.full_like(y, math.log(mu)), y, looks, full=True)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_gamma_nll_loss_on_normalised_tiles():
    r = Radiometry.fixed(-40, 10)
    target = torch.rand(2, 1, 8, 8)
    loss = GammaNLLLoss(2.0, r)
    at_target = loss(target, target)
    assert loss(target + 0.05, target) > at_target and loss(target - 0.05, target) > at_target


def test_weighted_loss_from_config():
    a, b = _smooth_pair(176, 0.1)
    loss = build_loss({"l1": 1.0, "ms_ssim": 0.2, "mse": 0})
    total = loss(b, a)
    assert set(loss.unweighted(b, a)) == {"l1", "ms_ssim"}
    expected = (b - a).abs().mean() + 0.2 * (1 - ms_ssim(b, a).mean())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    small = build_loss({"ms_ssim": {"weight": 1.0, "scales": 3}})
    assert small(b[..., :64, :64], a[..., :64, :64]) > 0
    r = Radiometry.fixed(-40, 10)
    nll = build_loss({"gamma_nll": 1.0, "l1": 0.5}, looks=2, radiometry=r)
    assert torch.isfinite(nll(b, a))
    assert "0.5 * l1" in repr(nll)


@pytest.mark.parametrize(
    "config, message",
    [
        ({}, "non-empty dict"),
        ({"l2": 1.0}, "unknown loss 'l2'"),
        ({"l2": 0}, "unknown loss"),
        ({"l1": -1.0}, "finite number >= 0"),
        ({"l1": 0.0}, "every loss weight"),
        ({"gamma_nll": 1.0}, "number of looks"),
        ({"mse": {"weight": 1, "scales": 2}}, "no options"),
        ({"ms_ssim": {"scales": 9}}, "scales must be in 1..5"),
    ],
)
def test_bad_loss_configs(config, message):
    with pytest.raises(ValueError, match=message):
        build_loss(config)
