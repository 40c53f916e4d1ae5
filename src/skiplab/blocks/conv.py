"""Small convolution helpers, as torchvision's ``models/resnet.py``."""

from __future__ import annotations

from torch import nn


def check_stride(stride: int) -> None:
    """Residual blocks downsample by 1 or 2; anything else is a mistake, said clearly."""
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


def check_groups(channels: int, groups: int, what: str = "channels") -> None:
    if groups < 1 or channels % groups:
        raise ValueError(
            f"groups={groups} must divide the {what} ({channels}); choose groups among the divisors of {channels}"
        )


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding and no bias (a BatchNorm follows)."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
