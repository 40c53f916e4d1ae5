"""Published parameter counts of the registered models, and how closely ours must match.

``PUBLISHED[name] = (count, tolerance, source)``: our model ``name`` (default options)
must have ``count ± tolerance`` parameters.

* torchvision's and timm's ImageNet models are counted exactly (tolerance 0): the
  architectures are the same and the state dicts load with ``strict=True``.
* The papers print rounded figures ("0.85M"). A figure is checked to 1 %, but a figure
  printed with two significant digits cannot be checked closer than its own rounding,
  so the tolerance is ``max(1 % of the figure, half a unit of its last printed digit)``:
  "0.27M" allows ±5,000 (the rounding), "19.4M" allows ±194,000 (the 1 %).

``tests/test_param_counts.py`` checks every entry; ``skiplab models`` and ``docs/models.md``
print them beside our counts.

``model_table.json`` (next to this file) holds :func:`model_row` of every model skiplab
registers, so that ``skiplab models`` answers without importing torch or building a model.
It is generated: ``python -m skiplab.models.published`` writes it again, and
``tests/test_param_counts.py`` rebuilds every model and fails when a row differs.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch
from torch import nn

TORCHVISION = "torchvision"
HE2015 = "He et al. 2015, Deep Residual Learning, Table 6"
HE2016 = "He et al. 2016, Identity Mappings, Tables 3-4"
WRN = "Zagoruyko & Komodakis 2016, Wide Residual Networks"
RESNEXT = "Xie et al. 2017, Aggregated Residual Transformations, Table 7"
DENSENET = "Huang et al. 2017, Densely Connected Networks, Table 2"
PYRAMIDNET = "Han et al. 2017, Deep Pyramidal Residual Networks"
SHAKE = "Gastaldi 2017, Shake-Shake Regularization"
CBAM_PAPER = "Woo et al. 2018, CBAM, Table 3"


def paper_figure(millions: str, source: str) -> tuple[int, int, str]:
    """``("0.85", src)`` -> ``(850000, tolerance, src)`` with the tolerance rule above."""
    value = Decimal(millions)
    count = int(value * 1_000_000)
    exponent = value.as_tuple().exponent  # -2 for "0.85": last digit is 0.01 M
    half_unit = int(Decimal(10) ** exponent * 1_000_000 / 2)
    return count, max(round(count * 0.01), half_unit), source


def exact(count: int, source: str = TORCHVISION) -> tuple[int, int, str]:
    return count, 0, source


PUBLISHED: dict[str, tuple[int, int, str]] = {
    # torchvision, exact
    "resnet18": exact(11_689_512),
    "resnet34": exact(21_797_672),
    "resnet50": exact(25_557_032),
    "resnet101": exact(44_549_160),
    "resnet152": exact(60_192_808),
    "wide_resnet50_2": exact(68_883_240),
    "wide_resnet101_2": exact(126_886_696),
    "resnext50_32x4d": exact(25_028_904),
    "resnext101_32x8d": exact(88_791_336),
    "resnext101_64x4d": exact(83_455_272),
    "densenet121": exact(7_978_856),
    "densenet161": exact(28_681_000),
    "densenet169": exact(14_149_480),
    "densenet201": exact(20_013_928),
    "mobilenet_v2": exact(3_504_872),
    # timm, exact (tests/fixtures/torchvision_reference.json.gz records them from timm 1.0)
    "seresnet50": exact(28_088_024, "timm seresnet50"),
    "cbam_resnet50": paper_figure("28.09", CBAM_PAPER),
    "preact_resnet18": exact(11_687_720, "timm resnetv2_18"),
    "preact_resnet34": exact(21_795_880, "timm resnetv2_34"),
    "preact_resnet50": exact(25_549_352, "timm resnetv2_50"),
    "preact_resnet101": exact(44_541_480, "timm resnetv2_101"),
    "preact_resnet152": exact(60_185_128, "timm resnetv2_152"),
    # not in the fixture: checked against timm itself by tests/test_zoo.py where timm imports
    "vit_tiny_patch16_224": exact(5_717_416, "timm vit_tiny_patch16_224"),
    # CIFAR, the papers' rounded figures
    "cifar_resnet20": paper_figure("0.27", HE2015),
    "cifar_resnet32": paper_figure("0.46", HE2015),
    "cifar_resnet44": paper_figure("0.66", HE2015),
    "cifar_resnet56": paper_figure("0.85", HE2015),
    "cifar_resnet110": paper_figure("1.7", HE2015),
    "cifar_resnet1202": paper_figure("19.4", HE2015),
    "cifar_preact_resnet110": paper_figure("1.7", HE2016),
    "cifar_preact_resnet164": paper_figure("1.7", HE2016),
    "cifar_preact_resnet1001": paper_figure("10.2", HE2016),
    "cifar_wrn_16_8": paper_figure("11.0", WRN),
    "cifar_wrn_28_10": paper_figure("36.5", WRN),
    "cifar_wrn_40_4": paper_figure("8.9", WRN),
    "cifar_resnext29_8x64d": paper_figure("34.4", RESNEXT),
    "cifar_densenet_bc_100_12": paper_figure("0.8", DENSENET),
    "cifar_densenet_bc_190_40": paper_figure("25.6", DENSENET),
    "cifar_pyramidnet110_a48": paper_figure("1.7", PYRAMIDNET),
    "cifar_pyramidnet272_a200": paper_figure("26.0", PYRAMIDNET),
    "cifar_shake_shake_26_2x96d": paper_figure("26.2", SHAKE),
}


# Independent exact counts of the same architectures (no rounding): osmr/imgclsmob's
# pytorchcv CIFAR-10 models (an independent implementation, trained by its author).
IMGCLSMOB = "osmr/imgclsmob (pytorchcv), CIFAR-10 table"
REFERENCE: dict[str, tuple[int, str]] = {
    "cifar_preact_resnet110": (1_730_522, IMGCLSMOB),
    "cifar_preact_resnet164": (1_703_258, IMGCLSMOB),
    "cifar_preact_resnet1001": (10_327_706, IMGCLSMOB),
    "cifar_wrn_28_10": (36_479_194, IMGCLSMOB),
    "cifar_densenet_bc_100_12": (769_162, IMGCLSMOB),
    "cifar_densenet_bc_190_40": (25_624_430, IMGCLSMOB),
}

# Where a paper's printed figure is further from its own architecture than the tolerance.
DEVIATIONS: dict[str, str] = {
    "cifar_preact_resnet1001": (
        "He et al. 2016 print 10.2M, but the 1001-layer bottleneck net (n = 111 blocks per "
        "stage, widths 16/32/64, expansion 4) has 10,327,706 parameters (+1.25 %), exactly "
        "the count of imgclsmob's independent implementation"
    ),
}


def published_entry(name: str) -> Optional[dict[str, Any]]:
    """``{"count", "tolerance", "source"}`` for ``name``, or None when nothing is published."""
    if name not in PUBLISHED:
        return None
    count, tolerance, source = PUBLISHED[name]
    return {"count": count, "tolerance": tolerance, "source": source}


def matches_published(name: str, ours: int) -> Optional[bool]:
    """Whether ``ours`` is within the published tolerance (None when nothing is published)."""
    entry = published_entry(name)
    return None if entry is None else abs(ours - entry["count"]) <= entry["tolerance"]


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """``torch.nn.init``'s in-place initialisers as no-ops inside the block (as transformers'
    ``no_init_weights``): a model built on the meta device only to be counted needs the shapes,
    and drawing its random weights there is most of the time of building it."""
    initialisers = {n: f for n, f in vars(nn.init).items() if n.endswith("_") and not n.startswith("_") and callable(f)}
    try:
        for name in initialisers:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, f in initialisers.items():
            setattr(nn.init, name, f)


def count_parameters(model_or_name: Union[str, nn.Module], **kwargs: Any) -> int:
    """Parameters of a model or of the registered model ``name`` (built on the meta device,
    its weights left uninitialised, so no memory is allocated: fast even for the giants)."""
    if isinstance(model_or_name, nn.Module):
        return sum(p.numel() for p in model_or_name.parameters())
    from .registry import create_model

    try:
        with torch.device("meta"), no_weight_init():
            model = create_model(model_or_name, **kwargs)
    except (NotImplementedError, RuntimeError):  # a model whose constructor needs real data
        model = create_model(model_or_name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def model_row(name: str) -> dict[str, Any]:
    """The row of the registered model ``name``: ``name``, ``params`` (default options),
    ``published``, ``tolerance``, ``source`` and ``check`` ("ok", "FAIL", "ref" or "")."""
    params = count_parameters(name)
    pub = published_entry(name) or {}
    check = "" if not pub else ("ok" if abs(params - pub["count"]) <= pub["tolerance"] else "FAIL")
    if check == "FAIL" and name in DEVIATIONS and params == REFERENCE.get(name, (None,))[0]:
        check = "ref"  # the paper's figure is off; ours equals the exact reference count
    return dict(
        name=name,
        params=params,
        published=pub.get("count"),
        tolerance=pub.get("tolerance"),
        source=pub.get("source"),
        check=check,
    )


MODEL_TABLE = Path(__file__).with_name("model_table.json")


def builtin_model_table() -> list[dict[str, Any]]:
    """:func:`model_row` of every model skiplab itself registers, its domain packages' included
    (a third-party plugin's models are counted when listed, never written into the table)."""
    from .registry import get_model_fn, list_models

    return [model_row(name) for name in list_models() if get_model_fn(name).__module__.split(".")[0] == "skiplab"]


def write_model_table(path: Union[str, Path] = MODEL_TABLE) -> Path:
    """Count every built-in model again and write the table ``skiplab models`` reads."""
    import json

    from ..atomic import write_text

    rows = builtin_model_table()
    lines = ",\n".join(json.dumps(row) for row in rows)  # one row a line: diffs read well
    return write_text(path, f'{{"generated_by": "python -m skiplab.models.published",\n "rows": [\n{lines}\n]}}\n')


def model_table_markdown(rows: list[dict[str, Any]]) -> str:
    """The Markdown page ``docs/models.md``: every model, our count beside the published one."""
    lines = [
        "# Models",
        "",
        "Every registered model with its parameter count (default options: 1000 classes for",
        "the ImageNet models, 10 for CIFAR) beside the published figure. Torchvision's and timm's",
        "counts must match exactly; the papers' rounded figures within max(1 %, half a unit of the",
        "last printed digit) -- see `skiplab/models/published.py`.",
        "",
        "Generated by `skiplab models --markdown > docs/models.md`; `skiplab summary NAME` shows",
        "a model's shape-flow table, MACs and memory.",
        "",
        "check: `ok` within tolerance; `ref` outside the paper's printed figure but equal to an",
        "independent exact count of the same architecture (see the notes below the table).",
        "",
        "| model | parameters | published | difference | check | source |",
        "|---|---:|---:|---:|:---:|---|",
    ]
    for r in rows:
        if r["published"] is None:
            lines.append(f"| `{r['name']}` | {r['params']:,} | | | | |")
            continue
        diff = r["params"] - r["published"]
        pct = f" ({100 * diff / r['published']:+.2f} %)" if diff else ""
        lines.append(
            f"| `{r['name']}` | {r['params']:,} | {r['published']:,} ± {r['tolerance']:,} | "
            f"{diff:+,}{pct} | {r['check']} | {r['source']} |"
        )
    notes = [f"* `{n}`: {why}." for n, why in DEVIATIONS.items() if any(r["name"] == n for r in rows)]
    exact_refs = [f"`{n}` {c:,}" for n, (c, _) in REFERENCE.items() if any(r["name"] == n for r in rows)]
    if exact_refs:
        notes.append(f"* Exact counts checked against {IMGCLSMOB}: " + ", ".join(exact_refs) + ".")
    if notes:
        lines += ["", "Notes:", ""] + notes
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(f"wrote {write_model_table()}")
