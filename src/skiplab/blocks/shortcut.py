"""Shortcut connections (He et al. 2015, "Deep Residual Learning", §3.3 and Table 3).

A residual block computes y = F(x) + W_s x (Eq. 2). The three options of §4.1 for
W_s when the shape changes:

* **A** -- :class:`ZeroPadShortcut`: identity with strided subsampling and zero-padded
  extra channels; parameter-free, used for the CIFAR nets (§4.2).
* **B** -- :class:`ProjectionShortcut` (1x1 conv + BN) only where the shape changes,
  identity elsewhere; torchvision's ``downsample``.
* **C** -- projection on every block.

:class:`SelectionShortcut` is option A written as a fixed 0/1 strided 1x1 convolution
(the same function), the form channel pruning (:mod:`skiplab.deploy.prune`) can cut.

``make_shortcut`` returns ``None`` for the identity, as torchvision's ``downsample``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .conv import check_stride, conv1x1
from .norm import DEFAULT_NORM_GROUPS, Norm, has_norm, make_norm

SHORTCUT_KINDS = ("A", "B", "C")


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` with ``out - in`` zero channels appended.

    Parameter-free, so a residual net and its plain twin have the same parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        check_stride(stride)
        if out_channels < in_channels:
            raise ValueError(f"option-A shortcut can only add channels: in={in_channels} > out={out_channels}")
        self.stride = stride
        self.in_channels = in_channels
        self.pad = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, 0, self.pad))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad}"


class SelectionShortcut(nn.Module):
    """Option A as a fixed linear map: ``conv1x1(x, W, stride)`` with a 0/1 buffer ``W``.

    ``W[o, i] = 1`` where output channel ``o`` carries input channel ``i``, 0 elsewhere, so
    :meth:`from_zero_pad` gives exactly :class:`ZeroPadShortcut`'s output (identity on the
    first ``in`` channels, zeros after). Unlike the zero padding, rows and columns of ``W``
    can be removed independently, which is what channel pruning of the blocks on either
    side needs. ``W`` is a buffer: it is saved but never trained or decayed.
    """

    def __init__(self, weight: torch.Tensor, stride: int = 1) -> None:
        super().__init__()
        check_stride(stride)
        if weight.dim() != 4 or weight.shape[2:] != (1, 1):
            raise ValueError(f"selection weight must be [out, in, 1, 1], got {tuple(weight.shape)}")
        self.stride = stride
        self.register_buffer("weight", weight.detach().clone().float())

    @classmethod
    def from_zero_pad(cls, shortcut: ZeroPadShortcut) -> "SelectionShortcut":
        out_channels = shortcut.in_channels + shortcut.pad
        weight = torch.eye(out_channels, shortcut.in_channels).view(out_channels, -1, 1, 1)
        return cls(weight, shortcut.stride)

    @property
    def in_channels(self) -> int:
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), stride=self.stride)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class ProjectionShortcut(nn.Sequential):
    """Options B/C: W_s x as a strided 1x1 convolution followed by BatchNorm.

    A ``Sequential`` of (conv, bn), so parameters are named ``downsample.0.weight`` and
    ``downsample.1.*`` as in torchvision. ``norm=False`` (or "none") drops the BN (for
    pre-activation blocks, whose input is already normalised); "group"/"layer" put that
    norm in its place (see :mod:`skiplab.blocks.norm`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: Norm = True,
        norm_groups: int = DEFAULT_NORM_GROUPS,
    ) -> None:
        check_stride(stride)
        layers = [conv1x1(in_channels, out_channels, stride)]
        if has_norm(norm):
            layers.append(make_norm(norm, out_channels, norm_groups))
        super().__init__(*layers)


def make_shortcut(
    in_channels: int,
    out_channels: int,
    stride: int = 1,
    kind: str = "B",
    norm: Norm = True,
    norm_groups: int = DEFAULT_NORM_GROUPS,
) -> Optional[nn.Module]:
    """The shortcut W_s for a block mapping ``in_channels`` to ``out_channels`` at ``stride``.

    Returns ``None`` where W_s is the identity (shape unchanged and kind A or B).
    """
    if kind not in SHORTCUT_KINDS:
        raise ValueError(f"shortcut kind must be one of {SHORTCUT_KINDS}, got {kind!r}")
    check_stride(stride)
    same_shape = stride == 1 and in_channels == out_channels
    if kind == "C":
        return ProjectionShortcut(in_channels, out_channels, stride, norm, norm_groups)
    if same_shape:
        return None
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return ProjectionShortcut(in_channels, out_channels, stride, norm, norm_groups)
