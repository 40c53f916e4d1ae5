"""Held-out rate-distortion and radiometry of the hyperprior codec against JPEG 2000, JPEG
and average pooling + bilinear, by site (the evidence of docs/studies/sar).

The six development scenes are three channels (HH, HV, VV) of two sites; the unit of
replication is the site. Each fold trains one codec per lambda on one site's three scenes
(``skiplab train --task compress``) and is scored here on the other site's three scenes,
every scene normalised by its own 0.5-99.5 % log-intensity (the domain every codec codes):

- the codec: the scene written as a ``.sarl`` file (everything counted), decoded; PSNR and
  SSIM of its log-domain output (before the radiometric gain) against the input;
- JPEG 2000 (OpenJPEG) and JPEG (libjpeg) of the same 8-bit image, rate-matched per scene
  to the codec's measured bpp, and on their own at reference rates (their curves);
- average pooling + bilinear at pooling factors 4-16 (6-bit values, entropy-coded);
- radiometry of each output in intensity: the mean ratio (output / input mean), ENL on the
  input's most homogeneous windows, the ratio image input / output (mean, median).

Per site, the curves are the means over its three scenes at each setting; BD-rate and
BD-PSNR (:mod:`.bjontegaard`) are computed per site, and their interval over the sites is
:func:`skiplab.evidence.intervals.seed_interval` (t, n - 1 df: with two sites, 1 df).

    python -m skiplab.sar.rate_distortion.hyperprior_study --runs RUNS --out docs/studies/sar
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...atomic import write_text

from ...evidence.intervals import seed_interval
from ..codec.sarl import encode_scene, decode_bytes
from ..codec.shipped import Codec, load_codec
from ..training.compress_task import normalised_scene
from ..training.metrics import enl, homogeneous_windows, psnr, ratio_statistics, ssim_per_image
from .bjontegaard import bd_psnr, bd_rate
from .codecs import avgpool_codec, jpeg2000_at, jpeg_at

REFERENCE_RATES = (0.04, 0.07, 0.1, 0.15, 0.22, 0.32, 0.45, 0.65)
JPEG_RATES = (0.25, 0.32, 0.45, 0.65, 0.9)
POOL_FACTORS = (16, 11, 8, 6, 4)
POOL_BITS = 6
SITES = {"sf": "tsukuba (PiSAR)", "tsukuba": "san francisco (AIRSAR)"}


def _score(out_n: np.ndarray, n: np.ndarray) -> dict:
    o = torch.from_numpy(np.asarray(out_n, np.float32))[None, None]
    x = torch.from_numpy(np.asarray(n, np.float32))[None, None]
    return {"psnr": float(psnr(o, x)[0]), "ssim": float(ssim_per_image(o, x)[0])}


def _radiometry(intensity: np.ndarray, scene: np.ndarray, windows) -> dict:
    out = torch.from_numpy(np.asarray(intensity, np.float64))
    stats = ratio_statistics(torch.from_numpy(scene)[None, None], out[None, None])
    return {
        "mean_ratio": float(out.mean() / scene.mean()),
        "enl": enl(out, windows).enl,
        "ratio_mean": float(stats.mean[0]),
        "ratio_median": float(stats.median[0]),
    }


def score_scene(path: Path, codecs: Sequence[tuple[str, Codec]]) -> dict:
    """Every method on one held-out scene (see the module documentation)."""
    scene = np.load(path).astype(np.float64)
    n, radiometry = normalised_scene(path)
    n = n.astype(np.float64)
    windows = homogeneous_windows(torch.from_numpy(scene))
    result = {
        "scene": path.stem,
        "input_enl": enl(torch.from_numpy(scene), windows).enl,
        "codec": {},
        "jpeg2000": [],
        "jpeg": [],
        "avgpool": [],
    }
    for label, codec in codecs:
        t0 = time.perf_counter()
        encoded = encode_scene(codec, scene)
        t1 = time.perf_counter()
        decoded, header = decode_bytes(encoded.data, name=path.name, codec=codec)
        t2 = time.perf_counter()
        log_out = radiometry.forward(decoded / header["gain"]).astype(np.float64)
        row = {
            "bpp": encoded.bpp,
            "payload_bpp": encoded.payload_bpp,
            "gain": header["gain"],
            "encode_s": t1 - t0,
            "decode_s": t2 - t1,
            **_score(log_out, n),
            **_radiometry(decoded, scene, windows),
        }
        for family, fn in (("jpeg2000", jpeg2000_at), ("jpeg", jpeg_at)):
            match = fn(n, encoded.bpp)
            row[family] = {
                "bpp": match.coded.bpp(),
                "matched": bool(match.matched),
                **_score(match.coded.image, n),
                **_radiometry(radiometry.inverse_intensity(match.coded.image), scene, windows),
            }
        result["codec"][label] = row
    for family, fn, rates in (("jpeg2000", jpeg2000_at, REFERENCE_RATES), ("jpeg", jpeg_at, JPEG_RATES)):
        for rate in rates:
            coded = fn(n, rate).coded
            result[family].append({"bpp": coded.bpp(), **_score(coded.image, n)})
    for factor in POOL_FACTORS:
        coded = avgpool_codec(n, factor, POOL_BITS)
        result["avgpool"].append({"bpp": coded.bpp(), "factor": factor, **_score(coded.image, n)})
    return result


def _site_curve(scenes: list[dict], pick) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bpp, psnr, ssim) of a method over a site's scenes: means per setting."""
    rows = [pick(s) for s in scenes]
    return tuple(np.mean([[r[k] for r in row] for row in rows], axis=0) for k in ("bpp", "psnr", "ssim"))


def summarise(folds: dict) -> dict:
    """Per site: the curves of every method, BD-rate / BD-PSNR of the codec against each
    reference; over sites: their mean and t interval; the radiometry beside JPEG 2000."""
    per_site, deltas = {}, {}
    for fold, scenes in folds.items():
        labels = list(scenes[0]["codec"])
        curves = {"codec": _site_curve(scenes, lambda s: [s["codec"][k] for k in labels])}
        for family in ("jpeg2000", "jpeg", "avgpool"):
            curves[family] = _site_curve(scenes, lambda s, f=family: s[f])
        for family in ("jpeg2000", "jpeg"):
            curves[f"{family}@codec"] = _site_curve(scenes, lambda s, f=family: [s["codec"][k][f] for k in labels])
        site = {
            "held_out": SITES.get(fold, fold),
            "labels": labels,
            "curves": {k: {"bpp": list(v[0]), "psnr": list(v[1]), "ssim": list(v[2])} for k, v in curves.items()},
        }
        cb, cp = curves["codec"][0], curves["codec"][1]
        for ref in ("jpeg2000", "jpeg", "avgpool"):
            rb, rp = curves[ref][0], curves[ref][1]
            for name, fn in (("bd_rate", bd_rate), ("bd_psnr", bd_psnr)):
                try:
                    site[f"{name}_vs_{ref}"] = fn(rb, rp, cb, cp)
                except ValueError as err:  # e.g. no PSNR range in common: no BD-rate
                    site[f"{name}_vs_{ref}_undefined"] = str(err)
            for key in (f"bd_rate_vs_{ref}", f"bd_psnr_vs_{ref}"):
                if key in site:
                    deltas.setdefault(key, []).append(site[key])
        matched = [[s["codec"][k]["psnr"] - s["codec"][k]["jpeg2000"]["psnr"] for s in scenes] for k in labels]
        site["psnr_minus_jpeg2000_matched"] = [float(np.mean(m)) for m in matched]
        site["radiometry"] = {
            k: {
                name: {
                    m: float(np.mean([src(s)[m] for s in scenes]))
                    for m in ("mean_ratio", "enl", "ratio_mean", "ratio_median")
                }
                for name, src in (
                    ("codec", lambda s, k=k: s["codec"][k]),
                    ("jpeg2000", lambda s, k=k: s["codec"][k]["jpeg2000"]),
                )
            }
            for k in labels
        }
        site["input_enl"] = float(np.mean([s["input_enl"] for s in scenes]))
        per_site[fold] = site
    over = {
        k: {"per_site": v, "mean": float(np.mean(v)), "interval": list(seed_interval(v))} for k, v in deltas.items()
    }
    return {"sites": per_site, "over_sites": over}


STYLES = {
    "codec": ("o", "-", "#1f77b4", "hyperprior codec (GDN)"),
    "jpeg2000": ("s", "--", "#d62728", "JPEG 2000 (OpenJPEG)"),
    "jpeg": ("^", ":", "#2ca02c", "JPEG (libjpeg)"),
    "avgpool": ("D", "-.", "#7f7f7f", "avg pooling + bilinear"),
}


def figure(summary: dict, path: Path) -> Path:
    """PSNR and SSIM against measured bpp per held-out site, every codec on the same axes."""
    from ...evidence.figures import new_figure, save_figure

    sites = summary["sites"]
    fig = new_figure(5.0 * len(sites), 7.6)
    for col, (fold, site) in enumerate(sites.items()):
        for row, metric in enumerate(("psnr", "ssim")):
            ax = fig.add_subplot(2, len(sites), row * len(sites) + col + 1)
            for key, (marker, line, colour, label) in STYLES.items():
                c = site["curves"][key]
                ax.plot(
                    c["bpp"],
                    c[metric],
                    marker=marker,
                    linestyle=line,
                    color=colour,
                    label=label,
                    markersize=6,
                    linewidth=1.6,
                )
            ax.set_xscale("log")
            ax.set_xlabel("measured bits per pixel (whole file)")
            ax.set_ylabel(f"{metric.upper()} (normalised log-intensity)")
            ax.set_title(f"held-out site: {site['held_out']}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def _fmt_interval(entry: dict, scale: float = 1.0, unit: str = "") -> str:
    lo, hi = entry["interval"]
    per = ", ".join(f"{v * scale:+.2f}" for v in entry["per_site"])
    return (
        f"{entry['mean'] * scale:+.2f}{unit} (per site {per}; 95 % t interval over "
        f"{len(entry['per_site'])} sites [{lo * scale:+.2f}, {hi * scale:+.2f}])"
    )


def report(summary: dict, settings: Sequence[str]) -> str:
    """The markdown tables of ``summary`` (numbers only; the reading is docs/studies/sar)."""
    lines = ["# Hyperprior SAR codec: held-out rate-distortion and radiometry", ""]
    for key, entry in sorted(summary["over_sites"].items()):
        scale, unit = (100.0, " %") if key.startswith("bd_rate") else (1.0, " dB")
        lines.append(f"- **{key.replace('_', ' ')}**: {_fmt_interval(entry, scale, unit)}")
    for fold, site in summary["sites"].items():
        c = site["curves"]
        lines += [
            "",
            f"## Held-out site: {site['held_out']} (trained on the other site)",
            "",
            "| lambda@step | bpp | PSNR | SSIM | JPEG 2000 bpp | JPEG 2000 PSNR | JPEG 2000 SSIM "
            "| JPEG bpp | JPEG PSNR | codec - JPEG 2000 (dB) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, lam in enumerate(settings):
            j2, jp = c["jpeg2000@codec"], c["jpeg@codec"]
            lines.append(
                f"| {lam} | {c['codec']['bpp'][i]:.4f} | {c['codec']['psnr'][i]:.2f} | "
                f"{c['codec']['ssim'][i]:.3f} | {j2['bpp'][i]:.4f} | {j2['psnr'][i]:.2f} | "
                f"{j2['ssim'][i]:.3f} | {jp['bpp'][i]:.4f} | {jp['psnr'][i]:.2f} | "
                f"{site['psnr_minus_jpeg2000_matched'][i]:+.2f} |"
            )
        lines += ["", "| reference | bpp | PSNR | SSIM |", "|---|---|---|---|"]
        for family in ("jpeg2000", "jpeg", "avgpool"):
            for b, p, s in zip(c[family]["bpp"], c[family]["psnr"], c[family]["ssim"]):
                lines.append(f"| {family} | {b:.4f} | {p:.2f} | {s:.3f} |")
        lines += [
            "",
            f"Radiometry (input ENL {site['input_enl']:.2f}):",
            "",
            "| lambda@step | mean ratio codec | mean ratio JPEG 2000 | ENL codec | ENL JPEG 2000 "
            "| ratio-image mean codec / JPEG 2000 | ratio-image median codec / JPEG 2000 |",
            "|---|---|---|---|---|---|---|",
        ]
        for lam, label in zip(settings, site["labels"]):
            r = site["radiometry"][label]
            lines.append(
                f"| {lam} | {r['codec']['mean_ratio']:.3f} | {r['jpeg2000']['mean_ratio']:.3f} "
                f"| {r['codec']['enl']:.1f} | {r['jpeg2000']['enl']:.1f} | "
                f"{r['codec']['ratio_mean']:.3f} / {r['jpeg2000']['ratio_mean']:.3f} | "
                f"{r['codec']['ratio_median']:.3f} / {r['jpeg2000']['ratio_median']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def run_study(
    runs: Path,
    data: Path,
    out: Path,
    settings: Sequence[str],
    folds: Sequence[str] = ("sf", "tsukuba"),
    transform: str = "gdn",
) -> dict:
    """Score every fold's codecs on that fold's held-out scenes (``DATA/<fold>/test``); a
    setting ``LAMBDA@STEP`` is the codec ``RUNS/<fold>-<transform>-<LAMBDA>/checkpoints/last.pt``
    coding with quantisation step STEP; write JSON, report and figure."""
    scores = {}
    for fold in folds:
        codecs = []
        for setting in settings:
            lam, _, step = setting.partition("@")
            codec = load_codec(runs / f"{fold}-{transform}-{lam}" / "checkpoints" / "last.pt")
            codec.step = float(step or 1.0)
            codecs.append((setting, codec))
        scenes = sorted((data / fold / "test").glob("*.npy"))
        scores[fold] = [score_scene(p, codecs) for p in scenes]
        print(f"fold {fold}: scored {len(scenes)} held-out scenes", flush=True)
    summary = summarise(scores)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "rd.json", json.dumps({"settings": list(settings), "scenes": scores, **summary}, indent=1))
    write_text(out / "report.md", report(summary, settings))
    figure(summary, out / "rd.png")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="folder of the training runs")
    p.add_argument("--data", type=Path, required=True, help="folder of <fold>/test scenes")
    p.add_argument("--out", type=Path, required=True, help="where rd.json, report.md, rd.png go")
    p.add_argument(
        "--settings",
        default="0.000125,0.00025,0.0005,0.001",
        help="comma-separated LAMBDA or LAMBDA@STEP (quantisation step of y)",
    )
    args = p.parse_args(argv)
    run_study(args.runs, args.data, args.out, args.settings.split(","))
    print(f"outputs in {args.out}: rd.json, report.md, rd.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
