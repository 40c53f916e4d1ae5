"""The figures of the ``skiplab ablate autoencoder`` report (:mod:`skiplab.sar.ablation.report`):
the training curves of every variant and the grid of reconstructions with their error maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...evidence.figures import new_figure, save_figure, smooth

COLOURS = {
    "sar_codec_plain": "#d62728",
    "sar_codec_bottleneck": "#1f77b4",
    "sar_codec_all": "#2ca02c",
    "sar_codec_bottleneck_cbam": "#9467bd",
    "sar_ae_plain": "#d62728",
    "sar_ae_bottleneck": "#1f77b4",
    "sar_ae_all": "#2ca02c",
    "sar_ae_bottleneck_cbam": "#9467bd",
}


def plot_curves(curves: dict[str, dict[int, dict]], path: Path) -> Path:
    """Training loss per step (smoothed, log scale; line: mean over seeds, band: their range)
    and validation PSNR per epoch (line: mean over seeds, band: their range)."""
    fig = new_figure(11.0, 4.0)
    ax_loss, ax_psnr = fig.subplots(1, 2)
    for variant, seeds in curves.items():
        colour = COLOURS.get(variant, "#7f7f7f")
        runs = [c for _, c in sorted(seeds.items())]
        label = f"{variant} ({len(runs)} seeds)"
        losses = [np.asarray([v for _, v in c["steps"]]) for c in runs if c["steps"]]
        if losses:
            n = min(len(v) for v in losses)
            steps = [s for s, _ in runs[0]["steps"]][:n]
            sm = np.stack([smooth(v[:n], max(1, n // 20)) for v in losses])
            ax_loss.plot(steps, sm.mean(0), color=colour, label=label)
            ax_loss.fill_between(steps, sm.min(0), sm.max(0), color=colour, alpha=0.15, linewidth=0)
        vals = [c["val"] for c in runs if c["val"]]
        if vals:
            n = min(len(v) for v in vals)
            steps = [s for s, _ in vals[0][:n]]
            ps = np.asarray([[p for _, p in v[:n]] for v in vals])
            ax_psnr.plot(steps, ps.mean(0), marker="o", markersize=3, color=colour, label=label)
            ax_psnr.fill_between(steps, ps.min(0), ps.max(0), color=colour, alpha=0.15, linewidth=0)
    ax_loss.set(xlabel="step", ylabel="training loss (smoothed, log scale)", title="training loss", yscale="log")
    ax_psnr.set(xlabel="step", ylabel="PSNR (dB)", title="validation PSNR (picks best.pt)")
    for ax in (ax_loss, ax_psnr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_grid(inputs: torch.Tensor, recons: dict[str, torch.Tensor], path: Path) -> Path:
    """Rows: test tiles; columns: the input, then each variant's reconstruction and its
    absolute error map (normalised log-intensity; one error scale for all)."""
    k = len(inputs)
    errors = {v: (r - inputs).abs() for v, r in recons.items()}
    vmax = max(float(torch.quantile(e.flatten().float(), 0.99)) for e in errors.values()) or 1.0
    cols = 1 + 2 * len(recons)
    fig = new_figure(1.6 * cols, 1.7 * k + 0.3)
    axes = np.atleast_2d(fig.subplots(k, cols))
    for i in range(k):
        panels = [("input", inputs[i, 0], "gray", 0.0, 1.0)]
        for v, r in recons.items():
            short = v.removeprefix("sar_ae_")
            panels += [(short, r[i, 0], "gray", 0.0, 1.0), (f"|error| {short}", errors[v][i, 0], "magma", 0.0, vmax)]
        for j, (title, image, cmap, lo, hi) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(image.float().numpy(), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
    return save_figure(fig, path)
