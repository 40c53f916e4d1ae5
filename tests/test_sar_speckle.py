"""Speckle simulation statistics and the deterministic synthetic SAR scene generator."""

from __future__ import annotations

import math

import pytest
import torch

from skiplab.sar.raster.speckle import (
    add_amplitude_speckle,
    add_speckle,
    gamma_speckle,
    synthetic_scene,
    synthetic_scenes,
)
from skiplab.sar.training.metrics import enl


@pytest.mark.parametrize("looks", [1, 2, 2.7, 4])
def test_speckle_moments_and_enl_on_a_flat_field(looks):
    g = torch.Generator().manual_seed(3)
    flat = torch.full((512, 512), 0.05)
    speckled = add_speckle(flat, looks, g)
    # mean preserved, variance mu^2 / L (262k samples: sd of the mean ~0.2%/sqrt(L))
    assert speckled.mean().item() == pytest.approx(0.05, rel=0.01)
    assert (speckled.mean() ** 2 / speckled.var()).item() == pytest.approx(looks, rel=0.03)
    # the ENL estimator on automatically chosen windows finds L
    assert enl(speckled).enl == pytest.approx(looks, rel=0.08)


def test_gamma_speckle_is_deterministic_and_positive():
    a = gamma_speckle((64, 64), 2.7, torch.Generator().manual_seed(5))
    b = gamma_speckle((64, 64), 2.7, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.float32 and (a > 0).all()
    with pytest.raises(ValueError, match="looks must be"):
        gamma_speckle((2,), 0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        add_speckle(torch.tensor([1.0, -1.0]), 1)


def test_amplitude_speckle_is_sqrt_of_intensity_speckle():
    amplitude = torch.full((256, 256), 2.0, dtype=torch.float64)
    out = add_amplitude_speckle(amplitude, 1, torch.Generator().manual_seed(0))
    ref = add_speckle(amplitude.square(), 1, torch.Generator().manual_seed(0)).sqrt()
    torch.testing.assert_close(out, ref)
    # single-look amplitude is Rayleigh: E[A] = sqrt(pi * mu) / 2 with mu = E[A^2] = 4
    assert out.mean().item() == pytest.approx(math.sqrt(math.pi * 4) / 2, rel=0.01)


def test_synthetic_scene_is_deterministic_and_has_the_requested_properties():
    a = synthetic_scene(128, looks=2, seed=7)
    b = synthetic_scene(128, looks=2, seed=7)
    c = synthetic_scene(128, looks=5, seed=7)
    assert torch.equal(a.clean, b.clean) and torch.equal(a.speckled, b.speckled)
    assert torch.equal(a.clean, c.clean) and not torch.equal(a.speckled, c.speckled)
    assert not torch.equal(a.clean, synthetic_scene(128, seed=8).clean)
    assert a.clean.shape == (128, 128) and a.clean.dtype == torch.float32
    assert 60 <= a.dynamic_range_db <= 100
    measured = 10 * torch.log10(a.clean.max() / a.clean.min()).item()
    assert measured == pytest.approx(a.dynamic_range_db, abs=1e-3)
    assert synthetic_scene(64, dynamic_range_db=90.0).dynamic_range_db == 90.0
    with pytest.raises(ValueError, match="dynamic_range_db"):
        synthetic_scene(64, dynamic_range_db=10.0)


def test_synthetic_scene_structure():
    """Homogeneous fields (many exactly constant pixels), texture, dark lines at the floor and
    point scatterers whose peak stands far above everything else."""
    scene = synthetic_scene(256, looks=1, seed=0)
    db = 10 * torch.log10(scene.clean.double())
    levels, counts = torch.unique(db.round(decimals=6), return_counts=True)
    assert (counts > 500).sum() >= 5  # several flat fields
    assert len(levels) > 5000  # textured regions are not flat
    assert (db == db.min()).sum() > 100  # dark lines at the floor
    peak = db.max()
    assert peak.item() == pytest.approx(-40.0 + scene.dynamic_range_db, abs=1e-6)
    y, x = divmod(int(db.argmax()), db.shape[1])  # sinc-like first side lobes at -13.26 dB
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        assert db[y + dy, x + dx].item() >= peak.item() - 13.27
    assert (db > db.median() + 30).sum() < 100  # a few bright point targets only
    # speckle: ratio speckled / clean has mean ~1 and ENL ~L over the whole scene
    ratio = scene.speckled.double() / scene.clean.double()
    assert ratio.mean().item() == pytest.approx(1.0, abs=0.01)
    assert (1 / ratio.var()).item() == pytest.approx(1.0, rel=0.03)


def test_synthetic_scenes_batch():
    clean, speckled = synthetic_scenes(3, 64, looks=4, seed=1)
    assert clean.shape == speckled.shape == (3, 64, 64)
    assert not torch.equal(clean[0], clean[1])
    again, _ = synthetic_scenes(2, 64, looks=4, seed=1)
    assert torch.equal(again, clean[:2])
    other, _ = synthetic_scenes(2, 64, looks=4, seed=2)
    assert not torch.equal(other[0], clean[0])
