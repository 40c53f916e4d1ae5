"""Shake-Shake regularisation (Gastaldi 2017, "Shake-Shake regularization", Eq. 1 and §2).

A 3-branch residual block, x_{i+1} = x_i + alpha_i F(x_i, W1) + (1 - alpha_i) F(x_i, W2)
(Eq. 1 with the shake of §2.1): during training alpha ~ U(0, 1) is drawn anew for every
forward pass, and the backward pass uses an *independent* beta ~ U(0, 1) in its place
(gradients beta * g and (1 - beta) * g); at test time alpha = 0.5. The coefficients are
drawn per sample ("Image" level, §2.1.1) by default, or once per batch ("Batch").
The paper's variants (Table 1) are reachable: forward "shake" or "even" (0.5), backward
"shake", "keep" (beta = alpha) or "even".

Each branch is ReLU-conv3x3-BN-ReLU-conv3x3-BN (§2.2). Where the shape changes the
shortcut is the paper's (§2.2): two flows, each a 1x1 average pooling with step 2 (a
subsampling) followed by a 1x1 conv with half the output channels, the second flow's
input shifted by one pixel right and one pixel down so that it samples other pixels;
the flows are concatenated and batch-normalised (:class:`ShiftedPoolShortcut`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttnLayer, make_attn
from .conv import check_stride, conv1x1, conv3x3
from .drop_path import maybe_drop_path
from .norm import ActLayer, Norm, make_act, norm_layer, zero_norm_

FORWARD_MODES = ("shake", "even")
BACKWARD_MODES = ("shake", "keep", "even")
LEVELS = ("image", "batch")


class ShakeShakeFunction(torch.autograd.Function):
    """y = alpha * x1 + (1 - alpha) * x2 forward; dx1 = beta * g, dx2 = (1 - beta) * g backward.

    ``alpha`` and ``beta`` are given (broadcastable to ``x1``) and receive no gradient.
    """

    @staticmethod
    def forward(ctx: Any, x1: torch.Tensor, x2: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(beta)
        return alpha * x1 + (1 - alpha) * x2

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        (beta,) = ctx.saved_tensors
        grad1 = grad * beta if ctx.needs_input_grad[0] else None
        grad2 = grad * (1 - beta) if ctx.needs_input_grad[1] else None
        return grad1, grad2, None, None


def _check_mode(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {allowed}, got {value!r}")


def shake_shake(
    x1: torch.Tensor,
    x2: torch.Tensor,
    training: bool,
    forward_mode: str = "shake",
    backward_mode: str = "shake",
    level: str = "image",
) -> torch.Tensor:
    """Mix two branch outputs as Shake-Shake (Eq. 1): random in training, 0.5 * (x1 + x2) else.

    In training, alpha and then beta are drawn with ``torch.rand`` of shape ``[B, 1, 1, 1]``
    (``level="image"``) or ``[1, 1, 1, 1]`` (``"batch"``) from the global generator, in that
    order, so that a seeded run can recompute them.
    """
    _check_mode(forward_mode, FORWARD_MODES, "forward_mode")
    _check_mode(backward_mode, BACKWARD_MODES, "backward_mode")
    _check_mode(level, LEVELS, "level")
    if not isinstance(x1, torch.fx.Proxy) and x1.shape != x2.shape:  # (fx: shape unknown)
        raise ValueError(
            f"shake-shake mixes two branches of the same shape, got {tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    if not training:
        return 0.5 * (x1 + x2)
    shape = (x1.shape[0] if level == "image" else 1,) + (1,) * (x1.dim() - 1)
    half = torch.full(shape, 0.5, dtype=x1.dtype, device=x1.device)
    alpha = torch.rand(shape, dtype=x1.dtype, device=x1.device) if forward_mode == "shake" else half
    beta = {
        "shake": lambda: torch.rand(shape, dtype=x1.dtype, device=x1.device),
        "keep": lambda: alpha,
        "even": lambda: half,
    }[backward_mode]()
    return ShakeShakeFunction.apply(x1, x2, alpha, beta)


class ShiftedPoolShortcut(nn.Module):
    """The downsampling shortcut of §2.2: relu, then [conv1x1(x[::s, ::s]), conv1x1(shift(x)[::s, ::s])]
    concatenated on channels, then BN. ``shift`` moves the map one pixel right and down (zero fill),
    as the author's code, so that with ``stride=2`` the second flow sees the odd pixels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        if out_channels % 2:
            raise ValueError(
                f"the two-flow shortcut splits out_channels in halves: it must be even, got {out_channels}"
            )
        self.stride = stride
        self.conv1 = conv1x1(in_channels, out_channels // 2)
        self.conv2 = conv1x1(in_channels, out_channels // 2)
        self.bn = norm_layer(norm, norm_groups)(out_channels)
        self.relu = make_act(act, inplace=False)  # x is also the input of both branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        s = self.stride
        shifted = F.pad(x, (1, -1, 1, -1))  # right and down by one pixel, same size
        return self.bn(torch.cat([self.conv1(x[:, :, ::s, ::s]), self.conv2(shifted[:, :, ::s, ::s])], 1))

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def shake_branch(
    in_channels: int, out_channels: int, stride: int, norm: Norm, act: ActLayer = "relu", norm_groups: int = 32
) -> nn.Sequential:
    """One residual branch of §2.2: ReLU-conv3x3(stride)-BN-ReLU-conv3x3-BN."""
    bn = norm_layer(norm, norm_groups)
    return nn.Sequential(
        OrderedDict(
            [
                ("relu1", make_act(act, inplace=False)),  # the input is shared with the other branch and the shortcut
                ("conv1", conv3x3(in_channels, out_channels, stride)),
                ("bn1", bn(out_channels)),
                ("relu2", make_act(act, inplace=True)),
                ("conv2", conv3x3(out_channels, out_channels)),
                ("bn2", bn(out_channels)),
            ]
        )
    )


class ShakeShakeBlock(nn.Module):
    """Two branches mixed by :func:`shake_shake`, plus the shortcut; ``[B, in, H, W] -> [B, out, H/s, W/s]``.

    y = W_s x + DropPath(attn(shake(F1(x), F2(x)))), with no ReLU after the addition (each
    branch starts with one). W_s is the identity when the shape is unchanged, else
    :class:`ShiftedPoolShortcut`.

    Args:
        shake_forward, shake_backward, shake_level: the variant (see :func:`shake_shake`); the paper's
            best CIFAR-10 setting, "Shake-Shake-Image", is the default.
        attn_layer: attention on the mixed branch before the addition.
        drop_path: stochastic-depth probability of the mixed branch.
        norm: "batch" (default, or ``True``), "group", "layer" or "none" (``False``); see
            :mod:`skiplab.blocks.norm`.
        act: activation of the branches and the shortcut ("relu" default, "gelu", "silu"...).
        norm_groups: most groups of a "group" norm.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        shake_forward: str = "shake",
        shake_backward: str = "shake",
        shake_level: str = "image",
        attn_layer: AttnLayer = None,
        drop_path: float = 0.0,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_stride(stride)
        _check_mode(shake_forward, FORWARD_MODES, "shake_forward")
        _check_mode(shake_backward, BACKWARD_MODES, "shake_backward")
        _check_mode(shake_level, LEVELS, "shake_level")
        self.forward_mode, self.backward_mode, self.level = shake_forward, shake_backward, shake_level
        self.branch1 = shake_branch(in_channels, out_channels, stride, norm, act, norm_groups)
        self.branch2 = shake_branch(in_channels, out_channels, stride, norm, act, norm_groups)
        self.se = make_attn(attn_layer, out_channels)
        self.drop_path = maybe_drop_path(drop_path)
        self.has_shortcut = True
        self.downsample: Optional[nn.Module] = (
            None
            if stride == 1 and in_channels == out_channels
            else ShiftedPoolShortcut(in_channels, out_channels, stride, norm, act, norm_groups)
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The mixed branch alpha F1(x) + (1 - alpha) F2(x) (0.5 each in eval mode)."""
        mixed = shake_shake(
            self.branch1(x), self.branch2(x), self.training, self.forward_mode, self.backward_mode, self.level
        )
        return self.se(mixed)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """W_s x: the identity or the two-flow projection."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.residual(x)) + self.shortcut(x)

    def zero_init_last(self) -> None:
        """γ = 0 on both branches' last norm: a fresh block is its shortcut."""
        for branch in (self.branch1, self.branch2):
            zero_norm_(branch.bn2)

    def extra_repr(self) -> str:
        return f"forward={self.forward_mode!r}, backward={self.backward_mode!r}, level={self.level!r}"
