"""Every published parameter count of skiplab/models/published.py, checked against our models.

A model the table names but the registry lacks fails with its name. A paper figure known to
be off (DEVIATIONS) is an expected failure, and the model is checked instead against an
independent exact count (REFERENCE). Counting builds the
model on the meta device (no weights are allocated), so the giants cost nothing; each
model is built once for the whole file, and the same counts check the generated table that
``skiplab models`` prints (skiplab/models/model_table.json).
"""

from __future__ import annotations

import json

import pytest
import torch

from skiplab.models import create_model, is_model
from skiplab.models.published import (
    DEVIATIONS,
    MODEL_TABLE,
    PUBLISHED,
    REFERENCE,
    builtin_model_table,
    count_parameters,
    matches_published,
    paper_figure,
)


@pytest.fixture(scope="module")
def rebuilt() -> dict[str, dict]:
    """The row of every built-in model, counted now by building it (once for this file)."""
    return {row["name"]: row for row in builtin_model_table()}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=DEVIATIONS[n])) if n in DEVIATIONS else n
        for n in sorted(PUBLISHED)
    ],
)
def test_published_parameter_count(name, rebuilt):
    count, tolerance, source = PUBLISHED[name]
    if not is_model(name):
        pytest.fail(f"{name} is not registered, but {source} publishes {count:,} parameters for it")
    ours = rebuilt[name]["params"]
    assert abs(ours - count) <= tolerance, (
        f"{name}: {ours:,} parameters, {source} publishes {count:,} (± {tolerance:,}); "
        f"off by {ours - count:+,} ({100 * (ours - count) / count:+.2f} %)"
    )
    assert matches_published(name, ours)


@pytest.mark.parametrize(
    "figure, count, tolerance",
    [
        ("0.27", 270_000, 5_000),  # two significant digits: the rounding (±0.005M) dominates
        ("0.85", 850_000, 8_500),  # 1 % > half a unit (0.005M)
        ("1.7", 1_700_000, 50_000),  # printed to 0.1M: ±0.05M
        ("19.4", 19_400_000, 194_000),  # 1 %
        ("36.5", 36_500_000, 365_000),
    ],
)
def test_tolerance_is_one_percent_or_the_printed_rounding(figure, count, tolerance):
    assert paper_figure(figure, "src") == (count, tolerance, "src")


def test_exact_entries_are_torchvision_with_zero_tolerance():
    exact = {n for n, (_, tol, _) in PUBLISHED.items() if tol == 0}
    assert {
        "resnet18",
        "resnet50",
        "resnet152",
        "wide_resnet50_2",
        "resnext50_32x4d",
        "densenet121",
        "densenet201",
    } <= exact
    assert all(PUBLISHED[n][2] == "torchvision" or PUBLISHED[n][2].startswith("timm ") for n in exact)


def test_meta_count_equals_a_real_model():
    real = create_model("resnet18")
    assert count_parameters("resnet18") == sum(p.numel() for p in real.parameters()) == 11_689_512
    assert count_parameters("resnet18", num_classes=10) == 11_689_512 - (512 * 1000 + 1000) + (512 * 10 + 10)
    assert count_parameters(real) == 11_689_512
    assert all(p.device.type == "cpu" for p in real.parameters())
    assert torch.get_default_device().type == "cpu"  # the meta device did not leak


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_exact_reference_count(name, rebuilt):
    count, source = REFERENCE[name]
    if not is_model(name):
        pytest.fail(f"{name} is not registered, but {source} counts {count:,} parameters for it")
    assert rebuilt[name]["params"] == count


def test_the_table_skiplab_models_prints_is_current(rebuilt):
    """The committed table holds exactly the rows that building every model gives now."""
    table = {row["name"]: row for row in json.loads(MODEL_TABLE.read_text())["rows"]}
    regenerate = "; write it again with: python -m skiplab.models.published"
    assert sorted(table) == sorted(rebuilt), (
        f"{MODEL_TABLE.name} lacks {sorted(set(rebuilt) - set(table))} and has "
        f"{sorted(set(table) - set(rebuilt))} no longer registered{regenerate}"
    )
    stale = {n: (table[n], rebuilt[n]) for n in rebuilt if table[n] != rebuilt[n]}
    assert not stale, f"{MODEL_TABLE.name} is stale (table, counted now): {stale}{regenerate}"
