"""The rate-distortion report: ``rd.json`` (every number), ``rd.md`` (the table, and which
question each number answers) and ``rd.png`` (PSNR against measured bpp, codecs and models
on one plot; a second panel against the clean reflectivity when the tiles have it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ...atomic import write_json
from .codecs import RATE_TOLERANCE
from .measure import Point

QUESTIONS = """\
- **bpp**: measured -- bytes written (header, mask and entropy-coded symbols for a model;
  the whole JPEG / JPEG 2000 file; pooled values, range and shape for avgpool) x 8 / pixels.
  `entropy` is the empirical entropy of a model's symbols per pixel (no header).
- **PSNR, SSIM (vs input)**: compression -- how faithfully the method stores the tile it was
  given, speckle included (normalised log-intensity, data range 1; PSNR averaged over tiles
  in dB, `PSNR pooled` from the mean MSE).
- **PSNR, SSIM (vs clean)** (synthetic tiles): despeckling + compression -- distance to the
  true reflectivity; the oracle row is the speckled input itself.
- **ENL** (median over the input's most homogeneous 16 px windows, of the output): how
  smooth flat areas come out (the input's is its number of looks); **ratio median / of
  means** (input / output intensity): 1 = the mean level is kept.
- **matched**: fraction of tiles where the codec's bpp is within {tol:.0%} of the target
  (JPEG cannot go below ~0.1-0.2 bpp on 256 px tiles: its headers and DC terms cost that).
"""


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def table(rows: Sequence[dict]) -> str:
    """The markdown table of :meth:`Point.row` dicts."""
    clean = any("psnr_clean" in r for r in rows)
    cols = [
        ("method", "method", None),
        ("bpp", "bpp", 3),
        ("entropy_bpp", "entropy", 3),
        ("psnr", "PSNR", 2),
        ("psnr_pooled", "PSNR pooled", 2),
        ("ssim", "SSIM", 3),
    ]
    if clean:
        cols += [("psnr_clean", "PSNR clean", 2), ("ssim_clean", "SSIM clean", 3)]
    cols += [
        ("enl", "ENL", 2),
        ("ratio_median", "ratio med.", 3),
        ("ratio_of_means", "ratio of means", 3),
        ("matched", "matched", 2),
    ]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = [r["method"] if c[2] is None else _fmt(r.get(c[0]), c[2]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: Sequence[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["psnr"] + (["psnr_clean"] if any("psnr_clean" in r for r in rows) else [])
    fig, axes = plt.subplots(1, len(keys), figsize=(6.5 * len(keys), 4.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["family"] in ("oracle", "reference"):
                if math.isfinite(r[key]):
                    ax.axhline(r[key], color="grey" if r["family"] == "oracle" else "olive", ls=":", label=r["method"])
                continue
            name = r["family"] if r["family"] != "model" else r["method"].rsplit(" b=", 1)[0]
            groups.setdefault(name, []).append(r)
        for name, group in groups.items():
            group = sorted(group, key=lambda r: r["bpp"])
            style = dict(
                jpeg="s--", jpeg2000="^--", avgpool="x:", **{"jpeg-matched": "s", "jpeg2000-matched": "^"}
            ).get(name, "o-")
            ax.plot(
                [r["bpp"] for r in group],
                [r[key] for r in group],
                style,
                label=name,
                mfc="none" if name.endswith("matched") else None,
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("measured bits per pixel (file size)")
        ax.set_ylabel(
            "PSNR (dB), "
            + ("vs clean reflectivity" if key == "psnr_clean" else "vs input")
            + ", normalised log-intensity"
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    points: Sequence[Point], out: Path, *, command: str = "", tiles: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``rd.json``, ``rd.md`` and ``rd.png`` under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [p.row() for p in points]
    paths = dict(json=out / "rd.json", md=out / "rd.md", png=out / "rd.png")
    write_json(paths["json"], dict(command=command, tiles=list(tiles), rows=rows), indent=1, default=str)
    md = [
        "# Rate-distortion: SAR autoencoders vs JPEG, JPEG 2000, average pooling",
        "",
        f"`{command}`" if command else "",
        "",
        f"Tiles ({len(tiles)}): {', '.join(tiles)}",
        "",
        table(rows),
        "",
        "What each number answers:",
        "",
        QUESTIONS.format(tol=RATE_TOLERANCE),
        "",
        "![rate-distortion](rd.png)",
        "",
    ]
    paths["md"].write_text("\n".join(md))
    plot(rows, paths["png"])
    return paths


__all__ = ["plot", "table", "write_report"]
