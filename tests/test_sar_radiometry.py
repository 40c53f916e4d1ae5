"""Radiometry: amplitude <-> intensity, dB with epsilon, [0, 1] normalisation and its exact
inverse, serialisation, and refusal of bad data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from skiplab.sar.raster.radiometry import Radiometry, amplitude_to_intensity, from_db, intensity_to_amplitude, to_db


@pytest.fixture(scope="module")
def real_scenes(sar_real):
    return {p.name: np.load(p) for p in sorted(sar_real.glob("*.npy"))}


def test_amplitude_intensity_round_trip():
    a = np.array([0.0, 0.5, 2.0, 1e3], np.float32)
    np.testing.assert_array_equal(amplitude_to_intensity(a), [0, 0.25, 4, 1e6])
    np.testing.assert_allclose(intensity_to_amplitude(amplitude_to_intensity(a)), a)
    t = torch.tensor([4.0, 9.0])
    assert torch.equal(intensity_to_amplitude(t), torch.tensor([2.0, 3.0]))


def test_db_maps_zero_through_epsilon():
    x = np.array([0.0, 1.0, 10.0], np.float32)
    np.testing.assert_allclose(to_db(x), [-100.0, 0.0, 10.0], atol=1e-6)
    np.testing.assert_allclose(to_db(x, eps=1e-6), [-60.0, 0.0, 10.0], atol=1e-4)
    np.testing.assert_allclose(from_db(to_db(x)), x, atol=1e-12, rtol=1e-6)


@pytest.mark.parametrize("value", [np.nan, -1e-3, np.inf])
def test_nan_negative_infinite_intensity_is_a_clear_error(value):
    x = np.ones((4, 4), np.float32)
    x[1, 2] = value
    r = Radiometry.fixed(-40, 10)
    with pytest.raises(ValueError, match="must be finite and >= 0.*found"):
        r.forward(x)
    with pytest.raises(ValueError, match="finite and >= 0"):
        Radiometry.fit(x)


def test_real_scenes_exact_inverse_with_minmax_bounds(real_scenes):
    """Bounds at the min and max: every pixel (exact zeros included) comes back."""
    for name, scene in real_scenes.items():
        r = Radiometry.fit(scene, (0, 100), source_dtype="float32")
        n = r.forward(scene)
        assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
        back = r.inverse(n)
        np.testing.assert_allclose(back, scene, rtol=2e-6, atol=0, err_msg=name)
        assert np.array_equal(back == 0, scene == 0)


def test_real_scenes_percentile_bounds(real_scenes):
    """Percentile bounds: pixels inside invert exactly, outside clip to the bound (or, with
    clip=False, leave [0, 1] and still invert exactly)."""
    scenes = list(real_scenes.values())
    r = Radiometry.fit(scenes, (1, 99))
    db = np.concatenate([10 * np.log10(s.astype(np.float64).ravel() + 1e-10) for s in scenes])
    assert r.low_db == pytest.approx(np.percentile(db, 1), abs=1e-9)
    assert r.high_db == pytest.approx(np.percentile(db, 99), abs=1e-9)
    assert -40 < r.low_db < -35 and -3 < r.high_db < 0  # measured [-38.3, -1.4] dB
    scene = real_scenes["tsukaba_pisar_ch0.npy"]
    n = r.forward(scene)
    inside = (10 * np.log10(scene + 1e-10) > r.low_db) & (10 * np.log10(scene + 1e-10) < r.high_db)
    assert 0.9 < inside.mean() < 1.0
    np.testing.assert_allclose(r.inverse(n)[inside], scene[inside], rtol=2e-6)
    assert n.min() == 0 and n.max() == 1
    unclipped = Radiometry.from_dict({**r.to_dict(), "clip": False})
    m = unclipped.forward(scene)
    assert m.min() < 0 and m.max() > 1
    np.testing.assert_allclose(unclipped.inverse(m), scene, rtol=2e-6)


def test_amplitude_quantity_round_trip():
    rng = np.random.default_rng(1)
    amplitude = rng.rayleigh(3.0, (32, 32)).astype(np.float32)
    amplitude[0, 0] = 0
    r = Radiometry.fit(amplitude, (0, 100), quantity="amplitude")
    i = amplitude.astype(np.float64) ** 2
    assert r.low_db == pytest.approx(-100) and r.high_db == pytest.approx(10 * np.log10(i.max()))
    np.testing.assert_allclose(r.inverse(r.forward(amplitude)), amplitude, rtol=2e-6)
    np.testing.assert_allclose(r.inverse_intensity(r.forward(amplitude)), i, rtol=4e-6)


def test_tensor_input_keeps_device_and_gives_float32():
    r = Radiometry.fixed(-30, 20)
    x = torch.tensor([[0.0001, 1.0, 100.0, 1e6]], dtype=torch.float64)
    n = r.forward(x)
    assert isinstance(n, torch.Tensor) and n.dtype == torch.float64
    torch.testing.assert_close(n, torch.tensor([[0.0, 0.6, 1.0, 1.0]], dtype=torch.float64))
    assert r.forward(torch.ones(2, dtype=torch.int32)).dtype == torch.float32


def test_serialisation_round_trip_through_json():
    r = Radiometry.fit(np.array([1e-3, 1e-2, 1.0, 3.0]), (5, 95), source_dtype="uint16", quantity="amplitude")
    d = json.loads(json.dumps(r.to_dict()))
    assert Radiometry.from_dict(d) == r
    with pytest.raises(ValueError, match="unknown radiometry format"):
        Radiometry.from_dict({**d, "format": "other/9"})
    with pytest.raises(ValueError, match="bad radiometry dict"):
        Radiometry.from_dict({**d, "gain": 2})


def test_checkpoint_normalisation_must_match_the_data_type():
    r = Radiometry.fixed(-30, 20, source_dtype="float32")
    r.check_compatible("float64")
    r.check_compatible(np.complex64)  # SLC -> amplitude floats
    with pytest.raises(ValueError, match="fitted on float32 intensity.*uint8"):
        r.check_compatible("uint8")
    with pytest.raises(ValueError, match="fitted on intensity data; the input holds amplitude"):
        r.check_compatible("float32", quantity="amplitude")
    with pytest.raises(ValueError, match="uint16.*uint8"):
        Radiometry.fixed(0, 90, source_dtype="uint16").check_compatible("uint8")


def test_invalid_construction():
    with pytest.raises(ValueError, match="high_db > low_db"):
        Radiometry.fixed(10, 10)
    with pytest.raises(ValueError, match="quantity"):
        Radiometry.fixed(0, 1, quantity="power")
    with pytest.raises(ValueError, match="eps must be > 0"):
        Radiometry.fixed(0, 1, eps=0)
    with pytest.raises(ValueError, match="percentiles"):
        Radiometry.fit(np.ones(4), (50, 50))
    constant = Radiometry.fit(np.full(9, 10.0))
    assert constant.low_db == pytest.approx(9.5) and constant.high_db == pytest.approx(10.5)


def test_fit_ignores_masked_pixels():
    x = np.array([[1e-20, 1.0], [10.0, 100.0]])
    r = Radiometry.fit(x, (0, 100), masks=np.array([[False, True], [True, True]]))
    assert (r.low_db, r.high_db) == (pytest.approx(0.0, abs=1e-8), pytest.approx(20.0))
    assert math.isclose(r.span_db, 20.0, abs_tol=1e-9)
