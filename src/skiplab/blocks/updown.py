"""Residual down- and up-sampling blocks for encoders and decoders (autoencoders, U-Nets).

The residual blocks of learned image-compression autoencoders (Cheng et al. 2020,
"Learned Image Compression with Discretized Gaussian Mixture Likelihoods and Attention
Modules", Fig. 2; CompressAI's ``ResidualBlockWithStride`` / ``ResidualBlockUpsample``)
change resolution inside the block and project the shortcut to match (He et al. 2015,
Eq. 2, y = F(x) + W_s x):

* :class:`ResidualDownBlock`: F = norm(conv3x3(act(norm(conv3x3_s(x))))), W_s = norm(conv1x1_s);
* :class:`ResidualUpBlock`: F = norm(conv3x3(act(norm(up(x))))), with ``up`` a 4x4/2
  transposed conv or an upsampling followed by a conv3x3; W_s a 2x2/2 transposed conv
  or an upsampling followed by a conv1x1 (+ norm);

and y = act(F(x) + W_s x). Unlike CompressAI there is no GDN; ``norm`` chooses BatchNorm,
GroupNorm, "layer" (GroupNorm with one group) or none -- single-image statistics (SAR
tiles) can avoid per-batch or per-image normalisation altogether, in which case the
convolutions carry a bias. See :mod:`skiplab.blocks.norm` for the choices.

``residual=False`` builds the *plain* block of the same branch layers, y = act(F(x)),
for ablations: it has no shortcut, hence none of the projection's parameters.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .attention import AttnLayer, make_attn
from .conv import check_stride
from .drop_path import maybe_drop_path
from .norm import NORMS, ActLayer, make_act
from .norm import make_norm as _make_norm
from .residual import ResidualBlock

UP_MODES = ("transpose", "upsample")
INTERPOLATIONS = ("nearest", "bilinear")


def make_norm(norm: str, channels: int, groups: int = 32) -> nn.Module:
    """``"batch"`` -> BatchNorm2d, ``"group"`` -> GroupNorm with the largest divisor of
    ``channels`` not above ``groups`` (Wu & He 2018 use 32), ``"layer"`` -> GroupNorm(1, C),
    ``"none"`` -> identity (:func:`skiplab.blocks.norm.make_norm`; names only here)."""
    if not isinstance(norm, str):  # True/False are the other blocks' spellings, not these
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")  # noqa: TRY004
    return _make_norm(norm, channels, groups)


def check_scale(scale: int) -> None:
    """Up blocks upsample by 1 or 2, mirroring the strides of the down blocks."""
    if scale not in (1, 2):
        raise ValueError(f"scale must be 1 or 2, got {scale!r}")


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


class ResampleResidualBlock(ResidualBlock):
    """Base of the down/up blocks: y = act(DropPath(F(x)) + W_s x), or act(F(x)) when plain.

    Subclasses build ``conv1`` (the resampling layer of the branch), then call
    :meth:`_build_branch` and set ``self.downsample`` to W_s (``None`` = identity or plain):
    the name every skiplab residual block uses, kept even where W_s upsamples.
    """

    def _build_branch(
        self,
        out_channels: int,
        norm: str,
        norm_groups: int,
        act: ActLayer,
        attn_layer: AttnLayer,
        drop_path: float,
        residual: bool,
    ) -> None:
        bias = norm == "none"
        self.norm1 = make_norm(norm, out_channels, norm_groups)
        self.act1 = make_act(act)
        self.conv2 = _conv(out_channels, out_channels, 3, 1, bias)
        self.norm2 = make_norm(norm, out_channels, norm_groups)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self.act = make_act(act)
        self.has_shortcut = residual

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x), the branch (before the addition and the last activation)."""
        out = self.act1(self.norm1(self.conv1(x)))
        return self.se(self.norm2(self.conv2(out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop_path(self.residual(x))
        return self.act(out + self.shortcut(x) if self.has_shortcut else out)

    def zero_init_last(self) -> None:
        """Zero the branch's last scale (its norm's γ, or its last conv without a norm), so a
        fresh residual block computes act(W_s x). A plain block is left alone: it would
        output a constant."""
        if not self.has_shortcut:
            return
        last = self.norm2 if getattr(self.norm2, "weight", None) is not None else self.conv2
        nn.init.zeros_(last.weight)
        if getattr(last, "bias", None) is not None:
            nn.init.zeros_(last.bias)


def _projection(resample: nn.Module, out_channels: int, norm: str, norm_groups: int) -> nn.Sequential:
    layers = [resample]
    if norm != "none":
        layers.append(make_norm(norm, out_channels, norm_groups))
    return nn.Sequential(*layers)


class ResidualDownBlock(ResampleResidualBlock):
    """conv3x3(stride)-norm-act-conv3x3-norm, plus a strided 1x1 conv (+ norm) shortcut;
    ``[B, in, H, W] -> [B, out, ceil(H/stride), ceil(W/stride)]``.

    Args:
        stride: 1 or 2 (default 2: the block halves the resolution).
        norm: "batch", "group" (``norm_groups`` groups at most) or "none" (convs get a bias).
        act: activation inside the branch and after the addition (name or factory).
        attn_layer: attention on the branch before the addition ("se", "cbam", a callable).
        drop_path: stochastic-depth probability of the branch.
        residual: ``False`` gives the plain block act(F(x)): same branch, no shortcut and
            no projection parameters.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 2,
        norm: str = "batch",
        act: ActLayer = "relu",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        residual: bool = True,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        make_norm(norm, 1)  # validate the name before building anything
        bias = norm == "none"
        self.conv1 = _conv(in_channels, out_channels, 3, stride, bias)
        self._build_branch(out_channels, norm, norm_groups, act, attn_layer, drop_path, residual)
        needs_projection = residual and (stride != 1 or in_channels != out_channels)
        self.downsample = (
            _projection(_conv(in_channels, out_channels, 1, stride, bias), out_channels, norm, norm_groups)
            if needs_projection
            else None
        )


class ResidualUpBlock(ResampleResidualBlock):
    """Upsampling-norm-act-conv3x3-norm, plus an upsampling shortcut;
    ``[B, in, H, W] -> [B, out, H*scale, W*scale]``.

    Args:
        scale: 1 or 2 (default 2: the block doubles the resolution).
        mode: "transpose" -- the branch starts with a 4x4 transposed conv of stride 2 and the
            shortcut is a 2x2 transposed conv of stride 2 (each input pixel feeds its own
            2x2 cell; a 1x1 transposed conv would leave 3 outputs in 4 at zero) -- or
            "upsample" -- ``interpolation`` upsampling followed by a conv3x3 on the branch
            and a conv1x1 on the shortcut (free of checkerboard artefacts, Odena et al. 2016).
        interpolation: "nearest" or "bilinear" (``mode="upsample"``).
        Other arguments as :class:`ResidualDownBlock`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 2,
        mode: str = "transpose",
        interpolation: str = "nearest",
        norm: str = "batch",
        act: ActLayer = "relu",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        residual: bool = True,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_scale(scale)
        if mode not in UP_MODES:
            raise ValueError(f"mode must be one of {UP_MODES}, got {mode!r}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        make_norm(norm, 1)
        self.scale, self.mode = scale, mode
        bias = norm == "none"
        if scale == 1:
            self.conv1 = _conv(in_channels, out_channels, 3, 1, bias)
        elif mode == "transpose":
            self.conv1 = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
        else:
            self.conv1 = nn.Sequential(self._upsample(interpolation), _conv(in_channels, out_channels, 3, 1, bias))
        self._build_branch(out_channels, norm, norm_groups, act, attn_layer, drop_path, residual)
        self.downsample: Optional[nn.Module] = None
        if residual and (scale != 1 or in_channels != out_channels):
            if scale == 1:
                resample: nn.Module = _conv(in_channels, out_channels, 1, 1, bias)
            elif mode == "transpose":
                resample = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=bias)
            else:
                resample = nn.Sequential(self._upsample(interpolation), _conv(in_channels, out_channels, 1, 1, bias))
            self.downsample = _projection(resample, out_channels, norm, norm_groups)

    def _upsample(self, interpolation: str) -> nn.Upsample:
        align = False if interpolation == "bilinear" else None
        return nn.Upsample(scale_factor=self.scale, mode=interpolation, align_corners=align)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, mode={self.mode!r}"
