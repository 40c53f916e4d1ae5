"""The four transforms of a hyperprior codec (Ballé et al., ICLR 2018, fig. 4), for one
channel of normalised SAR log-intensity, in three families for the ablation:

- ``gdn`` -- Ballé's: 5x5 stride-2 convolutions with GDN between them (IGDN in synthesis);
- ``residual`` -- skiplab's residual down/up blocks (:mod:`skiplab.blocks.updown`; Cheng et
  al. 2020's ``ResidualBlockWithStride``/``ResidualBlockUpsample``), no normalisation layer;
- ``plain`` -- the same blocks without their shortcuts (``residual=False``).

Analysis ``g_a``: [B, 1, H, W] -> [B, M, H/16, W/16]; synthesis ``g_s`` back. The
hyper-transforms ``h_a``: |y| -> z [B, N, H/64, W/64] and ``h_s``: z -> the scales of y
(or, for a mean-scale model, 2M channels: means and scales) are the paper's, in every family.
"""

from __future__ import annotations

from torch import nn

from ...blocks.updown import ResidualDownBlock, ResidualUpBlock
from .gdn import GDN

TRANSFORMS = ("gdn", "residual", "plain")


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def analysis(transform: str, n: int, m: int, in_chans: int = 1) -> nn.Sequential:
    """``g_a``: four stride-2 stages, ``in_chans`` -> ``m`` channels at 1/16 resolution."""
    if transform == "gdn":
        return nn.Sequential(conv(in_chans, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m))
    residual = _check(transform)
    block = dict(norm="none", act="leaky_relu", residual=residual)
    return nn.Sequential(
        ResidualDownBlock(in_chans, n, **block),
        ResidualDownBlock(n, n, **block),
        ResidualDownBlock(n, n, **block),
        conv(n, m, 3),
    )


def synthesis(transform: str, n: int, m: int, out_chans: int = 1) -> nn.Sequential:
    """``g_s``: four stride-2 stages back, ``m`` -> ``out_chans`` channels."""
    if transform == "gdn":
        return nn.Sequential(
            deconv(m, n),
            GDN(n, inverse=True),
            deconv(n, n),
            GDN(n, inverse=True),
            deconv(n, n),
            GDN(n, inverse=True),
            deconv(n, out_chans),
        )
    residual = _check(transform)
    block = dict(norm="none", act="leaky_relu", residual=residual)
    return nn.Sequential(
        ResidualUpBlock(m, n, **block),
        ResidualUpBlock(n, n, **block),
        ResidualUpBlock(n, n, **block),
        deconv(n, out_chans, 3),
    )


def hyper_analysis(n: int, m: int) -> nn.Sequential:
    """``h_a``: |y| -> z, two stride-2 stages (Ballé 2018: conv3x3, 5x5/2, 5x5/2, ReLU)."""
    return nn.Sequential(conv(m, n, 3, 1), nn.ReLU(inplace=True), conv(n, n), nn.ReLU(inplace=True), conv(n, n))


def hyper_synthesis(n: int, m: int, outputs: int = 1) -> nn.Sequential:
    """``h_s``: z -> ``outputs`` x ``m`` channels: the scales (ending in a ReLU, as Ballé
    2018), or means and scales (no final ReLU: the means are signed; Minnen et al. 2018)."""
    layers = [deconv(n, n), nn.ReLU(inplace=True), deconv(n, n), nn.ReLU(inplace=True), conv(n, outputs * m, 3, 1)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if outputs == 1 else []))


def _check(transform: str) -> bool:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    return transform == "residual"


__all__ = ["TRANSFORMS", "analysis", "hyper_analysis", "hyper_synthesis", "synthesis"]
