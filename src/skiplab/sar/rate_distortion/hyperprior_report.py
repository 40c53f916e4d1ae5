"""The report and figure of the held-out hyperprior study (:mod:`.hyperprior_study`): the
training state of every run (steps, wall-clock, validation plateau), the Bjøntegaard deltas
over the held-out sites with their interval, the curves and radiometry per site as tables
(numbers only: the reading is docs/studies/sar), and one figure -- PSNR and SSIM against
measured bpp per held-out site, every variant in its own colour, the references in grey.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .hyperprior_runs import RunState, describe_plateau, format_seconds
from .hyperprior_summary import BETWEEN, REFERENCES

#: one colour and marker per variant (distinct at a glance, also in grey print)
VARIANT_STYLES = {
    "gdn": ("o", "#1f77b4", "GDN"),
    "residual": ("s", "#d62728", "residual"),
    "plain": ("^", "#2ca02c", "plain"),
}
#: the references: grey, dashed or dotted
REFERENCE_STYLES = {
    "jpeg2000": ("D", "--", "#303030", "JPEG 2000 (OpenJPEG)"),
    "jpeg": ("v", ":", "#707070", "JPEG (libjpeg)"),
    "avgpool": ("x", "-.", "#a0a0a0", "avg pooling + bilinear"),
}
NAMES = {"jpeg2000": "JPEG 2000", "jpeg": "JPEG", "avgpool": "avg pooling + bilinear"}


def _short(site: str) -> str:
    return site.split(" ")[0]


def _delta_cell(entry: Optional[dict], key: str, sites: dict) -> str:
    """Mean (per site; 95 % t interval over sites) of one delta, in % or dB."""
    if entry is None:
        return "n/a"
    scale, unit = (100.0, " %") if key.startswith("bd_rate") else (1.0, " dB")
    per = ", ".join(
        f"{_short(sites[f]['held_out'])} {v * scale:+.2f}" for f, v in zip(entry["sites"], entry["per_site"])
    )
    lo, hi = entry["interval"]
    interval = "no interval (one site)" if lo is None else f"95 % t [{lo * scale:+.2f}, {hi * scale:+.2f}]"
    return f"**{entry['mean'] * scale:+.2f}{unit}** ({per}; {interval})"


def _site_delta(entry: dict, key: str) -> str:
    if key in entry:
        scale, unit = (100.0, " %") if key.startswith("bd_rate") else (1.0, " dB")
        return f"{entry[key] * scale:+.2f}{unit}"
    return f"undefined: {entry.get(f'{key}_undefined', 'not computed')}"


def _runs_table(runs: dict, sites: dict) -> list[str]:
    lines = [
        "| held-out site | variant | run | state | training wall-clock | validation plateau |",
        "|---|---|---|---|---|---|",
    ]
    for fold, by_variant in runs.items():
        for t, by_run in by_variant.items():
            for name, entry in by_run.items():
                state = RunState(**entry)
                if not state.has_checkpoint:
                    lines.append(f"| {sites[fold]['held_out']} | {t} | `{name}` | **{state.status}** | | |")
                    continue
                lines.append(
                    f"| {sites[fold]['held_out']} | {t} | `{name}` | {state.status}: step {state.step} of "
                    f"{state.steps} | {format_seconds(state.train_seconds)} | {describe_plateau(state.plateau)} |"
                )
    return lines


def _site_tables(site: dict, labels: Sequence[str], transforms: Sequence[str]) -> list[str]:
    lines = [
        "| variant | setting | bpp | PSNR | SSIM | JPEG 2000 bpp | JPEG 2000 PSNR | JPEG 2000 SSIM "
        "| JPEG bpp | JPEG PSNR | codec - JPEG 2000 (dB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in transforms:
        v = site["variants"][t]
        if not v["trained"]:
            lines.append(f"| {t} | **not trained** | | | | | | | | | |")
            continue
        c, j2, jp = v["curves"]["codec"], v["curves"]["jpeg2000@codec"], v["curves"]["jpeg@codec"]
        for i, label in enumerate(labels):
            lines.append(
                f"| {t} | {label} | {c['bpp'][i]:.4f} | {c['psnr'][i]:.2f} | {c['ssim'][i]:.3f} | "
                f"{j2['bpp'][i]:.4f} | {j2['psnr'][i]:.2f} | {j2['ssim'][i]:.3f} | {jp['bpp'][i]:.4f} | "
                f"{jp['psnr'][i]:.2f} | {v['psnr_minus_jpeg2000_matched'][i]:+.2f} |"
            )
    lines += ["", "| variant | against | BD-rate | BD-PSNR |", "|---|---|---|---|"]
    for t in transforms:
        v = site["variants"][t]
        for ref in REFERENCES if v["trained"] else ():
            lines.append(
                f"| {t} | {NAMES[ref]} | {_site_delta(v, f'bd_rate_vs_{ref}')} | {_site_delta(v, f'bd_psnr_vs_{ref}')} |"
            )
    for pair, found in site["between"].items():
        lines.append(
            f"| {pair.split('-')[0]} | {pair.split('-')[1]} | "
            f"{_site_delta(found, 'bd_rate')} | {_site_delta(found, 'bd_psnr')} |"
        )
    lines += ["", "| reference | bpp | PSNR | SSIM |", "|---|---|---|---|"]
    for family in REFERENCES:
        c = site["curves"][family]
        for b, p, s in zip(c["bpp"], c["psnr"], c["ssim"]):
            lines.append(f"| {NAMES[family]} | {b:.4f} | {p:.2f} | {s:.3f} |")
    lines += [
        "",
        f"Radiometry (input ENL {site['input_enl']:.2f}):",
        "",
        "| variant | setting | mean ratio codec | mean ratio JPEG 2000 | ENL codec | ENL JPEG 2000 "
        "| ratio-image mean codec / JPEG 2000 | ratio-image median codec / JPEG 2000 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in transforms:
        v = site["variants"][t]
        for label in labels if v["trained"] else ():
            r = v["radiometry"][label]
            lines.append(
                f"| {t} | {label} | {r['codec']['mean_ratio']:.3f} | {r['jpeg2000']['mean_ratio']:.3f} "
                f"| {r['codec']['enl']:.1f} | {r['jpeg2000']['enl']:.1f} | "
                f"{r['codec']['ratio_mean']:.3f} / {r['jpeg2000']['ratio_mean']:.3f} | "
                f"{r['codec']['ratio_median']:.3f} / {r['jpeg2000']['ratio_median']:.3f} |"
            )
    return lines


def report(summary: dict, document: dict, note: Optional[str] = None) -> str:
    """The markdown of the study: ``summary`` (:func:`.hyperprior_summary.summarise`) and
    ``document`` (``settings``, ``transforms``, ``runs``: each run's state)."""
    labels, transforms, sites = document["settings"], document["transforms"], summary["sites"]
    lines = ["# Hyperprior SAR codec: held-out rate-distortion and radiometry", ""]
    if note:
        lines += [note, ""]
    lines += [
        f"Variants: {', '.join(transforms)}; settings: {', '.join(labels)} "
        "(`vr:L`: level L of the variable-rate run `<fold>-<transform>-vr`; `LAMBDA@STEP`: the run "
        "`<fold>-<transform>-<LAMBDA>` at quantisation step STEP). Every rate is the measured file size.",
        "",
        "## Training runs",
        "",
        "Wall-clock: time in training steps summed over the epochs of `metrics.csv` (evaluations "
        "excluded). Plateau: the best validation PSNR of the last quarter of the evaluations beats the "
        "best before them by less than the threshold of `skiplab.evidence.thresholds` "
        "(`PLATEAU_FRACTION`, `PLATEAU_GAIN_DB`).",
        "",
        *_runs_table(document["runs"], sites),
        "",
        "## Bjøntegaard deltas over the held-out sites",
        "",
        "| variant | against | BD-rate (< 0: fewer bits) | BD-PSNR (> 0: better) |",
        "|---|---|---|---|",
    ]
    for t in transforms:
        over = summary["over_sites"].get(t, {})
        if not any(s["variants"][t]["trained"] for s in sites.values()):
            lines.append(f"| {t} | all | **not trained** | |")
            continue
        for ref in REFERENCES:
            lines.append(
                f"| {t} | {NAMES[ref]} | {_delta_cell(over.get(f'bd_rate_vs_{ref}'), 'bd_rate', sites)} "
                f"| {_delta_cell(over.get(f'bd_psnr_vs_{ref}'), 'bd_psnr', sites)} |"
            )
    for test, ref in [(a, b) for a, b in BETWEEN if a in transforms and b in transforms]:
        if not any(f"{test}-{ref}" in s["between"] for s in sites.values()):
            lines.append(f"| {test} | {ref} | not both trained on any site | |")
            continue
        over = summary["between_over_sites"].get(f"{test}-{ref}", {})
        lines.append(
            f"| {test} | {ref} | {_delta_cell(over.get('bd_rate'), 'bd_rate', sites)} "
            f"| {_delta_cell(over.get('bd_psnr'), 'bd_psnr', sites)} |"
        )
    lines += ["", "n/a: undefined on every site (see the per-site tables for why)."]
    for site in sites.values():
        lines += ["", f"## Held-out site: {site['held_out']} (trained on the other site)", ""]
        lines += _site_tables(site, labels, transforms)
    if document.get("speed"):
        lines += ["", *_speed_table(document["speed"])]
    return "\n".join(lines) + "\n"


def _speed_table(speed: dict) -> list[str]:
    measured = [v for v in speed.values() if v.get("trained")]
    lines = ["## Speed and memory beside OpenJPEG", ""]
    if measured:
        first = measured[0]
        lines += [
            f"A {first['size']} x {first['size']} mosaic of a held-out scene, {first['threads']} thread(s), each "
            "measurement in a fresh process (memory: growth of the peak resident set); times drift on a shared "
            "machine, so compare within a row.",
            "",
        ]
    lines += [
        "| variant | encode s/MP | decode s/MP | encode MB/MP | decode MB/MP | bpp "
        "| OpenJPEG encode s/MP | OpenJPEG decode s/MP | OpenJPEG bpp |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t, v in speed.items():
        if not v.get("trained"):
            lines.append(f"| {t} | **not trained** | | | | | | | |")
            continue
        r = {row["op"]: row for row in v["rows"]}
        enc, dec = r["hyperprior-encode"], r["hyperprior-decode"]
        jenc, jdec = r["openjpeg-encode"], r["openjpeg-decode"]
        lines.append(
            f"| {t} | {enc['seconds_per_mp']:.2f} | {dec['seconds_per_mp']:.2f} | "
            f"{enc['peak_growth_mb_per_mp']:.0f} | {dec['peak_growth_mb_per_mp']:.0f} | {enc['bpp']:.3f} | "
            f"{jenc['seconds_per_mp']:.2f} | {jdec['seconds_per_mp']:.2f} | {jenc['bpp']:.3f} |"
        )
    return lines


def _bd_box(site: dict) -> str:
    lines = ["BD-PSNR vs JPEG 2000:"]
    for t, v in site["variants"].items():
        name = VARIANT_STYLES.get(t, ("", "", t))[2]
        bd = v.get("bd_psnr_vs_jpeg2000")
        lines.append(
            f"{name}: " + ("not trained" if not v["trained"] else "undefined" if bd is None else f"{bd:+.2f} dB")
        )
    return "\n".join(lines)


def figure(summary: dict, path: Path) -> Path:
    """PSNR and SSIM against measured bpp per held-out site: every variant solid in its own
    colour, the references grey and dashed, one legend beside the panels and each site's
    BD-PSNR against JPEG 2000 in its PSNR panel."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    from ...evidence.figures import new_figure, save_figure

    sites = summary["sites"]
    transforms = list(next(iter(sites.values()))["variants"]) if sites else []
    fig = new_figure(4.8 * len(sites) + 3.0, 8.0)
    handles = [
        Line2D([], [], marker=marker, linestyle=line, color=colour, label=label, linewidth=1.4)
        for marker, line, colour, label in REFERENCE_STYLES.values()
    ]
    for t in transforms:
        marker, colour, name = VARIANT_STYLES.get(t, ("o", None, t))
        handles.append(Line2D([], [], marker=marker, color=colour, label=f"hyperprior, {name}", linewidth=2.2))
    for col, site in enumerate(sites.values()):
        for row, metric in enumerate(("psnr", "ssim")):
            ax = fig.add_subplot(2, len(sites), row * len(sites) + col + 1)
            for family, (marker, line, colour, _) in REFERENCE_STYLES.items():
                c = site["curves"][family]
                ax.plot(c["bpp"], c[metric], marker=marker, linestyle=line, color=colour, linewidth=1.4)
            for t, v in site["variants"].items():
                if v["trained"]:
                    marker, colour, _ = VARIANT_STYLES.get(t, ("o", None, t))
                    c = v["curves"]["codec"]
                    ax.plot(c["bpp"], c[metric], marker=marker, linestyle="-", color=colour, linewidth=2.2)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("measured bits per pixel (whole file)")
            ax.set_ylabel(f"{metric.upper()} (normalised log-intensity)")
            ax.set_title(f"held-out site: {site['held_out']}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if row == 0:
                box = dict(boxstyle="round", facecolor="white", alpha=0.85, edgecolor="#cccccc")
                ax.text(0.02, 0.98, _bd_box(site), transform=ax.transAxes, va="top", fontsize=8, bbox=box)
            if row == 0 and col == len(sites) - 1:
                ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.03, 1.0))
    return save_figure(fig, path)


__all__ = ["REFERENCE_STYLES", "VARIANT_STYLES", "figure", "report"]
