"""The numbers of the held-out hyperprior study (:mod:`.hyperprior_study`) per site and over
sites.

Per held-out site: each method's curve is the mean over the site's scenes at each setting
(bpp, PSNR, SSIM); each trained variant's BD-rate and BD-PSNR (:mod:`.bjontegaard`,
Bjøntegaard 2001) against JPEG 2000, JPEG and average pooling + bilinear, its PSNR minus
JPEG 2000's at the same measured bpp, and its radiometry beside JPEG 2000's; between
variants, residual - GDN and residual - plain (the test curve first; BD-PSNR > 0: residual
better at equal rate). Over sites, each delta's mean and its t interval
(:func:`skiplab.evidence.intervals.seed_interval`, n - 1 df: with two sites, 1 df; one site
gives no interval). A delta that cannot be computed (curves without a common range, fewer
than 4 points) is recorded with its reason, never extrapolated.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from ...evidence.intervals import seed_interval
from .bjontegaard import bd_psnr, bd_rate

#: the held-out site of each fold (a fold is named by the site it trains on)
SITES = {"sf": "tsukuba (PiSAR)", "tsukuba": "san francisco (AIRSAR)"}
REFERENCES = ("jpeg2000", "jpeg", "avgpool")
#: (test, reference) pairs of variants compared directly
BETWEEN = (("residual", "gdn"), ("residual", "plain"))
RADIOMETRY = ("mean_ratio", "enl", "ratio_mean", "ratio_median")
DELTAS: tuple[tuple[str, Callable], ...] = (("bd_rate", bd_rate), ("bd_psnr", bd_psnr))


def mean_curve(points_per_scene: Sequence[Sequence[dict]]) -> dict:
    """``{"bpp", "psnr", "ssim"}``: the mean over scenes at each point of a method's curve."""
    return {
        k: [float(v) for v in np.mean([[p[k] for p in points] for points in points_per_scene], axis=0)]
        for k in ("bpp", "psnr", "ssim")
    }


def deltas(reference: dict, test: dict, suffix: str = "") -> dict:
    """``bd_rate<suffix>`` and ``bd_psnr<suffix>`` of ``test`` against ``reference``
    (``<key>_undefined``: why not)."""
    out = {}
    for name, fn in DELTAS:
        try:
            out[name + suffix] = fn(reference["bpp"], reference["psnr"], test["bpp"], test["psnr"])
        except ValueError as err:
            out[f"{name}{suffix}_undefined"] = str(err)
    return out


def _finite(value: float):
    return float(value) if math.isfinite(value) else None


def over_sites(per_site: dict) -> dict:
    """``{"sites", "per_site", "mean", "interval"}`` of one delta measured on each site (the
    interval is ``[None, None]`` with fewer than two sites)."""
    values = list(per_site.values())
    return {
        "sites": list(per_site),
        "per_site": values,
        "mean": float(np.mean(values)),
        "interval": [_finite(v) for v in seed_interval(values)],
    }


def variant_site(rows: list[dict], labels: Sequence[str], references: dict) -> dict:
    """One trained variant on one site: curves, deltas, matched PSNR gap and radiometry."""
    curves = {"codec": mean_curve([[s[k] for k in labels] for s in rows])}
    for family in ("jpeg2000", "jpeg"):
        curves[f"{family}@codec"] = mean_curve([[s[k][family] for k in labels] for s in rows])
    site: dict = {"trained": True, "curves": curves}
    for ref in REFERENCES:
        site.update(deltas(references[ref], curves["codec"], f"_vs_{ref}"))
    site["psnr_minus_jpeg2000_matched"] = [
        float(np.mean([s[k]["psnr"] - s[k]["jpeg2000"]["psnr"] for s in rows])) for k in labels
    ]
    site["radiometry"] = {
        k: {
            name: {m: float(np.mean([pick(s)[m] for s in rows])) for m in RADIOMETRY}
            for name, pick in (("codec", lambda s, k=k: s[k]), ("jpeg2000", lambda s, k=k: s[k]["jpeg2000"]))
        }
        for k in labels
    }
    return site


def summarise(scores: dict, labels: Sequence[str], transforms: Sequence[str]) -> dict:
    """``{"sites", "over_sites", "between_over_sites"}`` from the study's ``scores`` (per fold:
    ``references``, one entry per scene, and ``variants``, per transform one ``{label: row}``
    per scene or None when not trained)."""
    sites, per_variant, per_pair = {}, {t: {} for t in transforms}, {}
    for fold, fold_scores in scores.items():
        refs = fold_scores["references"]
        references = {f: mean_curve([s[f] for s in refs]) for f in REFERENCES}
        site = {
            "held_out": SITES.get(fold, fold),
            "input_enl": float(np.mean([s["input_enl"] for s in refs])),
            "curves": references,
            "variants": {},
            "between": {},
        }
        for t in transforms:
            rows = fold_scores["variants"].get(t)
            if rows is None:
                site["variants"][t] = {"trained": False}
                continue
            entry = site["variants"][t] = variant_site(rows, labels, references)
            for key in [k for k in entry if k.startswith("bd_") and not k.endswith("_undefined")]:
                per_variant[t].setdefault(key, {})[fold] = entry[key]
        for test, ref in BETWEEN:
            a, b = site["variants"].get(test, {}), site["variants"].get(ref, {})
            if not (a.get("trained") and b.get("trained")):
                continue
            pair = f"{test}-{ref}"
            site["between"][pair] = found = deltas(b["curves"]["codec"], a["curves"]["codec"])
            for key in [k for k in found if not k.endswith("_undefined")]:
                per_pair.setdefault(pair, {}).setdefault(key, {})[fold] = found[key]
        sites[fold] = site
    return {
        "sites": sites,
        "over_sites": {t: {k: over_sites(v) for k, v in d.items()} for t, d in per_variant.items()},
        "between_over_sites": {p: {k: over_sites(v) for k, v in d.items()} for p, d in per_pair.items()},
    }


__all__ = ["BETWEEN", "REFERENCES", "SITES", "deltas", "mean_curve", "over_sites", "summarise", "variant_site"]
