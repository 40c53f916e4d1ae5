"""Highway layers (Srivastava, Greff & Schmidhuber 2015, "Training Very Deep Networks").

y = H(x) · T(x) + x · (1 - T(x))  (Eq. 3, with the carry gate C = 1 - T), where the
transform gate is T(x) = sigmoid(W_T x + b_T) (§2). The gate bias b_T starts
negative (the paper suggests values such as -1 to -3), so a fresh layer
mostly *carries* its input: T → 0 gives y → x, the gated counterpart of a residual
block's identity shortcut.

* :class:`HighwayLayer` -- fully connected: H(x) = act(W_H x + b_H) by default, or any
  width-preserving module given as ``transform``;
* :class:`ConvHighwayLayer` -- convolutional, with the same receptive field for H and T
  as in the paper: H(x) = relu(BN(conv(x))), T(x) = sigmoid(conv_T(x) + b_T).

Shape contract: a highway layer keeps its shape, ``[B, C, ...] -> [B, C, ...]`` (the
carry term x · (1 - T) needs it), so between stages of different width or resolution a
model puts a plain projection. ``ConvHighwayLayer`` takes the usual
``(in_channels, out_channels, stride)`` arguments and raises a ValueError unless they
keep the shape. b_T is its own parameter ``gate_bias`` (the gate conv / linear has no
bias), so generic weight initialisation, which zeroes conv biases, cannot reset it.

There is no ``zero_init_last``: zero-initialising H would not make the layer an identity
(T(x) ≈ sigmoid(b_T) still mixes in H); the negative gate bias is the highway net's way
of starting close to the identity.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from .norm import ActLayer, Norm, has_norm, make_act, norm_layer

DEFAULT_GATE_BIAS = -2.0


class GatedLayer(nn.Module):
    """y = H(x) · T(x) + x · (1 - T(x)) with T = sigmoid(gate(x) + b_T) (Eq. 2-3).

    Subclasses set ``transform`` (H), ``gate`` (W_T, without bias) and call
    ``_init_gate_bias``."""

    transform: nn.Module
    gate: nn.Module
    gate_bias: nn.Parameter

    def _init_gate_bias(self, channels: int, gate_bias: float) -> None:
        self.gate_bias_init = float(gate_bias)
        self.gate_bias = nn.Parameter(torch.full((channels,), float(gate_bias)))

    def _broadcast(self, bias: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return bias.view((1, -1) + (1,) * (like.dim() - 2))

    def reset_gate_bias(self) -> None:
        """Set b_T back to its initial value."""
        nn.init.constant_(self.gate_bias, self.gate_bias_init)

    def transform_gate(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = sigmoid(W_T x + b_T), in (0, 1), same shape as x."""
        return torch.sigmoid(self.gate(x) + self._broadcast(self.gate_bias, x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.transform_gate(x)
        h = self.transform(x)
        return h * t + x * (1.0 - t)


class HighwayLayer(GatedLayer):
    """Fully connected highway layer; ``[B, features] -> [B, features]``.

    Args:
        features: width of input and output.
        gate_bias: initial b_T (negative: the layer starts by carrying its input).
        transform: H, a module mapping ``[B, features]`` to ``[B, features]``; default
            ``act(Linear(features, features))`` as in the paper.
        act: activation of the default H.
    """

    def __init__(
        self,
        features: int,
        gate_bias: float = DEFAULT_GATE_BIAS,
        transform: Optional[nn.Module] = None,
        act: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.features = features
        self.transform = transform if transform is not None else nn.Sequential(nn.Linear(features, features), act())
        self.gate = nn.Linear(features, features, bias=False)
        self._init_gate_bias(features, gate_bias)

    def transform_gate(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.fx.Proxy) and (x.dim() != 2 or x.shape[1] != self.features):
            raise ValueError(f"{type(self).__name__} expects [B, {self.features}], got shape {tuple(x.shape)}")
        return super().transform_gate(x)


class ConvHighwayLayer(GatedLayer):
    """Convolutional highway layer; ``[B, C, H, W] -> [B, C, H, W]``.

    Args:
        in_channels, out_channels, stride: must keep the shape (``in == out``, stride 1).
        gate_bias: initial b_T.
        kernel_size: of both the transform and the gate convolutions (odd, 'same' padding).
        norm: the norm in H: "batch" (default, or ``True``), "group", "layer" or "none"
            (``False``: H = relu(conv(x) + b_H), the paper's pre-BN form); see
            :mod:`skiplab.blocks.norm`.
        act: the activation of H ("relu" default, "gelu", "silu", ...).
        norm_groups: most groups of a "group" norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        gate_bias: float = DEFAULT_GATE_BIAS,
        kernel_size: int = 3,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if in_channels != out_channels or stride != 1:
            raise ValueError(
                "a highway layer keeps its shape (y mixes H(x) with x): it needs "
                f"in_channels == out_channels and stride 1, got {in_channels} -> {out_channels} "
                f"at stride {stride}; put a projection between stages"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        channels, padding = in_channels, kernel_size // 2
        # b_H only without BN (a BN's shift replaces it)
        h_conv = nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=not has_norm(norm))
        self.transform = nn.Sequential(h_conv, norm_layer(norm, norm_groups)(channels), make_act(act, inplace=True))
        self.gate = nn.Conv2d(channels, channels, kernel_size, padding=padding, bias=False)
        self._init_gate_bias(channels, gate_bias)
