"""Channel and spatial attention for the residual branch.

* :class:`SEModule` -- squeeze-and-excitation (Hu et al. 2018, "Squeeze-and-Excitation
  Networks", Eq. 2-4): s = sigmoid(W2 relu(W1 GAP(u))), y = s * u, reduction r = 16.
* :class:`CBAM` -- convolutional block attention (Woo et al. 2018, Eq. 2-3): channel
  attention sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), then spatial attention
  sigmoid(conv7x7([AvgPool_c(F); MaxPool_c(F)])).

Both are placed on the residual branch before the addition (SE paper Fig. 3, CBAM Fig. 3).
Blocks take ``attn_layer``: a callable ``channels -> nn.Module``; :func:`get_attn`
turns the names ``"se"`` and ``"cbam"`` into one.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Optional, Union

import torch
from torch import nn

AttnLayer = Optional[Union[str, Callable[[int], nn.Module]]]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``divisor``), as timm."""
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


class SEModule(nn.Module):
    """Squeeze-and-excitation; the two FC layers are 1x1 convs named ``fc1``/``fc2`` (as timm)."""

    def __init__(self, channels: int, reduction: int = 16, divisor: int = 8) -> None:
        super().__init__()
        hidden = make_divisible(channels / reduction, divisor)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(self.act(self.fc1(s)))
        return x * s.sigmoid()


class ChannelAttention(nn.Module):
    """CBAM channel attention: a shared MLP over average- and max-pooled descriptors (Eq. 2).

    The MLP has biases, as the authors' code (``nn.Linear``): CBAM-ResNet-50 then has the
    paper's 28.09M parameters (timm's variant drops them: 16,048 fewer).
    """

    def __init__(self, channels: int, reduction: int = 16, divisor: int = 1) -> None:
        super().__init__()
        hidden = make_divisible(channels / reduction, divisor)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        mx = self.fc2(self.act(self.fc1(x.amax((2, 3), keepdim=True))))
        return x * (avg + mx).sigmoid()


class SpatialAttention(nn.Module):
    """CBAM spatial attention: 7x7 conv over channel-wise mean and max (Eq. 3)."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        return x * self.bn(self.conv(s)).sigmoid()


class CBAM(nn.Module):
    """Channel attention followed by spatial attention (Woo et al. 2018, Fig. 1)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


_ATTN = {"se": SEModule, "cbam": CBAM}


def get_attn(attn_layer: AttnLayer) -> Optional[Callable[[int], nn.Module]]:
    """Resolve ``None``, a name (``"se"``, ``"cbam"``) or a callable to a factory ``channels -> module``."""
    if attn_layer is None or callable(attn_layer):
        return attn_layer
    if isinstance(attn_layer, str) and attn_layer.lower() in _ATTN:
        return _ATTN[attn_layer.lower()]
    raise ValueError(f"unknown attention {attn_layer!r}; expected one of {sorted(_ATTN)}, a callable or None")


def make_attn(attn_layer: AttnLayer, channels: int, **kwargs) -> nn.Module:
    """The attention module for ``channels``, or ``nn.Identity()`` when there is none."""
    factory = get_attn(attn_layer)
    if factory is None:
        return nn.Identity()
    return partial(factory, **kwargs)(channels) if kwargs else factory(channels)
