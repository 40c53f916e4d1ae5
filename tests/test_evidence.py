"""skiplab.evidence: the t quantile against published values, the coverage of the seed
interval by simulation, the within-seed sampling term, Wilson's interval and the sign test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skiplab.evidence import (
    contrast,
    paired_item_interval,
    paired_seed_interval,
    seed_function,
    seed_interval,
    seed_interval_with_sampling,
    seeds_needed,
    sign_test_p,
    t_cdf,
    t_quantile,
    wilson_interval,
)

REPLICATIONS = 4000


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-4)
    assert t_cdf(t_quantile(0.975, df), df) == pytest.approx(0.975, abs=1e-10)


def test_t_quantile_other_levels_and_the_normal_limit():
    assert t_quantile(0.95, 3) == pytest.approx(2.353, abs=5e-4)  # one-sided 95 %, 3 df
    assert t_quantile(0.995, 5) == pytest.approx(4.032, abs=5e-4)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.95996, abs=1e-5)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.975, 3) < t_quantile(0.975, 2.5) < t_quantile(0.975, 2)  # any df > 0


def coverage(draw, n: int, truth: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(REPLICATIONS):
        low, high = seed_interval(draw(rng, n))
        hits += low <= truth <= high
    return hits / REPLICATIONS


@pytest.mark.parametrize("n", [3, 5, 10])
def test_seed_interval_covers_95_percent_of_normal_seed_effects(n):
    """Measured (4,000 replications, seed 1000 + n): 94.9 % at n = 3, 94.9 % at 5, 94.9 % at 10;
    a percentile bootstrap over the same seeds holds 75.7 %, 83.6 % and 90.0 % (2,000
    replications, docs/evidence.md)."""
    got = coverage(lambda rng, k: rng.normal(0.3, 0.05, k), n, 0.3, 1000 + n)
    assert got >= 0.93, f"coverage {got:.3f} at n = {n}"


@pytest.mark.parametrize("n", [3, 5, 10])
def test_seed_interval_coverage_of_skewed_exponential_seed_effects(n):
    """Exponential seed effects (skewness 2, far from normal): measured 88.5 % at n = 3,
    88.6 % at 5, 90.1 % at 10 (4,000 replications, seed 2000 + n). The t interval
    under-covers a strongly skewed effect; reports say so (docs/evidence.md)."""
    got = coverage(lambda rng, k: rng.exponential(1.0, k), n, 1.0, 2000 + n)
    assert got >= 0.85, f"coverage {got:.3f} at n = {n}"


def test_seed_interval_is_the_textbook_t_interval():
    low, high = seed_interval([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)
    assert (low, high) == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert all(math.isnan(v) for v in seed_interval([1.0]))
    assert paired_seed_interval([3.0, 4.0, 5.0], [2.0, 2.0, 2.0]) == pytest.approx(seed_interval([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError):
        paired_seed_interval([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    "seed_sd, image_sd, plain_cover, cover",
    [(0.01, 0.02, 0.646, 0.969), (0.02, 0.02, 0.839, 0.980), (0.05, 0.01, 0.948, 0.965), (0.001, 0.02, 0.092, 0.954)],
)
def test_shared_item_sampling_covers_when_all_seeds_see_the_same_images(seed_sd, image_sd, plain_cover, cover):
    """3 seeds scored on the same test images: the images' sampling error (sd ``image_sd``) is
    shared by every seed and the plain t interval over seeds does not see it; adding the
    within-seed standard errors restores the level. Measured over 2,000 replications (seed 7):
    ``plain_cover`` without, ``cover`` with -- never below 95 %, at most 98 %."""
    rng = np.random.default_rng(7)
    plain = combined = 0
    reps = 2000
    for _ in range(reps):
        values = 0.5 + rng.normal(0, image_sd) + rng.normal(0, seed_sd, 3)
        low, high = seed_interval(values)
        plain += low <= 0.5 <= high
        ci = seed_interval_with_sampling(values, [image_sd] * 3, items=1000)
        combined += ci["low"] <= 0.5 <= ci["high"]
    assert plain / reps == pytest.approx(plain_cover, abs=0.002)
    assert combined / reps == pytest.approx(cover, abs=0.002) and combined / reps >= 0.93


def test_independent_items_give_the_plain_t_interval():
    independent = seed_interval_with_sampling([1.0, 2.0, 3.0], [5.0] * 3, shared_items=False)
    assert (independent["low"], independent["high"]) == pytest.approx(seed_interval([1.0, 2.0, 3.0]))
    assert independent["per_seed"] == [1.0, 2.0, 3.0] and independent["df"] == 2


def test_contrast_keeps_per_seed_values_and_widens_with_image_noise():
    rng = np.random.default_rng(0)
    a = (rng.random((3, 500)) < 0.3).astype(float)
    b = (rng.random((3, 500)) < 0.1).astype(float)
    ci = contrast({"a": a, "b": b}, {"a": 1.0, "b": -1.0})
    assert ci["per_seed"] == pytest.approx(list(a.mean(1) - b.mean(1)))
    assert ci["seeds"] == 3 and ci["images"] == 500 and ci["low"] < ci["estimate"] < ci["high"]
    low, high = seed_interval(ci["per_seed"])
    assert ci["high"] - ci["low"] > high - low and ci["df"] == 2


def test_seed_function_jackknife_of_a_linear_statistic_is_its_standard_error():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 50))
    ci = seed_function({"x": x}, lambda m: 2 * m["x"])
    assert ci["per_seed"] == pytest.approx(list(2 * x.mean(1)))
    within = 2 * x.std(1, ddof=1) / math.sqrt(50)
    want = seed_interval_with_sampling(2 * x.mean(1), within)
    assert (ci["low"], ci["high"]) == pytest.approx((want["low"], want["high"]))


def test_paired_item_interval_over_images():
    before = np.array([1.0] * 8 + [0.0] * 2)
    after = np.array([1.0] * 6 + [0.0] * 4)
    low, high = paired_item_interval(before, after)
    d = before - after
    half = t_quantile(0.975, 9) * d.std(ddof=1) / math.sqrt(10)
    assert (low, high) == pytest.approx((0.2 - half, 0.2 + half))


def test_wilson_interval_known_values():
    # Wilson (1927) / Newcombe (1998) Table I: 81 of 263 -> 0.2553 to 0.3662
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_sign_test_says_what_three_seeds_can_show():
    assert sign_test_p(3, 3) == pytest.approx(0.125)
    assert sign_test_p(3, 3, two_sided=True) == pytest.approx(0.25)
    assert sign_test_p(5, 5) == pytest.approx(1 / 32)
    assert sign_test_p(4, 5) == pytest.approx(6 / 32)
    assert seeds_needed(0.05) == 5


def test_a_report_counts_its_intervals_and_names_its_headline():
    from skiplab.evidence import count_intervals, multiplicity_note

    results = {"a": {"low": 0, "high": 1, "nested": [{"low": 1, "high": 2}, {"low": 3}]}, "b": [1, 2]}
    assert count_intervals(results) == 2
    note = multiplicity_note(["the interaction"], 40)
    assert "the interaction" in note and "40 intervals" in note and "about 2.0 of them" in note
