"""Dense connectivity (Huang et al. 2017, "Densely Connected Convolutional Networks").

Layer l of a dense block receives the concatenation of the block input and every earlier
layer's output, x_l = H_l([x_0, x_1, ..., x_{l-1}]) (Eq. 2), and adds only k new channels
(the growth rate). In DenseNet-B (§3 "Bottleneck layers") H_l is BN-ReLU-conv1x1 to
``bn_size * k`` (4k) channels followed by BN-ReLU-conv3x3 to k; DenseNet-C ("Compression")
makes the transition between blocks BN-ReLU-conv1x1 to floor(θ·m) channels and a 2x2
average pool, with θ = 0.5 in DenseNet-BC.

**Shape contract -- different from the residual blocks.** A residual block is
``Block(in_channels, out_channels, stride)``; the dense modules fix the output width
instead of taking it:

* :class:`DenseLayer` ``(in_channels, growth_rate)``: ``[B, in, H, W]`` (or a list of
  tensors whose channels add up to ``in``) -> ``[B, growth_rate, H, W]``, only the new
  features;
* :class:`DenseBlock` ``(in_channels, num_layers, growth_rate)``: ``[B, in, H, W]`` ->
  ``[B, in + num_layers * growth_rate, H, W]`` (its ``out_channels``); never strided;
* :class:`Transition` ``(in_channels, out_channels)``: ``[B, in, H, W]`` ->
  ``[B, out, H // 2, W // 2]``, the only place where a DenseNet downsamples.

Parameter names are torchvision's (``denselayer1.norm1/conv1/norm2/conv2``,
``transition1.norm/conv``), so its state dicts load unchanged. Every module takes
``norm`` ("batch" default, "group", "layer", "none"; see :mod:`skiplab.blocks.norm`),
``act`` ("relu" default, "gelu", "silu"...) and ``norm_groups``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .conv import conv1x1, conv3x3
from .norm import ActLayer, Norm, make_act, make_norm

Features = Union[torch.Tensor, Sequence[torch.Tensor]]


def compressed_channels(channels: int, compression: float) -> int:
    """Output width of a DenseNet-C transition: floor(θ · channels) (Huang 2017, §3)."""
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression θ must be in (0, 1], got {compression}")
    return int(math.floor(compression * channels))


class DenseLayer(nn.Module):
    """H_l of DenseNet-B: BN-ReLU-conv1x1 (to ``bn_size * growth_rate``), BN-ReLU-conv3x3
    (to ``growth_rate``), then dropout of rate ``drop_rate`` on the new features (where
    torchvision puts it; the paper adds dropout after each conv when training without
    augmentation).

    ``memory_efficient=True`` recomputes the concatenation, BN, ReLU and 1x1 conv in the
    backward pass (``torch.utils.checkpoint``) instead of storing the concatenation, whose
    size grows quadratically with depth (Pleiss et al. 2017). Outputs, gradients and the
    BN running statistics are the same as in the normal mode: the recomputation
    normalises with the batch statistics without updating the running ones a second time.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if growth_rate < 1 or bn_size < 1:
            raise ValueError(f"growth_rate and bn_size must be >= 1, got {growth_rate} and {bn_size}")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.in_channels = in_channels
        self.out_channels = growth_rate
        self.norm1 = make_norm(norm, in_channels, norm_groups)
        self.relu1 = make_act(act, inplace=True)
        self.conv1 = conv1x1(in_channels, bn_size * growth_rate)
        self.norm2 = make_norm(norm, bn_size * growth_rate, norm_groups)
        self.relu2 = make_act(act, inplace=True)
        self.conv2 = conv3x3(bn_size * growth_rate, growth_rate)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient
        self._recomputing = False

    def _norm1(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.norm1
        if self._recomputing and bn.training and isinstance(bn, nn.BatchNorm2d):
            # Same output as bn(x) in training mode (batch statistics), but the running-stat
            # update goes to throwaway copies: the forward pass has already made it once.
            # (The copies also keep the saved-tensor count equal to the forward's.)
            return F.batch_norm(
                x, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias, True, 0.0, bn.eps
            )
        return bn(x)

    def bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        """conv1x1(relu(BN([x_0, ..., x_{l-1}]))): the part memory-efficient mode recomputes."""
        return self.conv1(self.relu1(self._norm1(torch.cat(inputs, 1))))

    @contextlib.contextmanager
    def _recomputation(self) -> Iterator[None]:
        self._recomputing = True
        try:
            yield
        finally:
            self._recomputing = False

    def forward(self, features: Features) -> torch.Tensor:
        inputs = [features] if isinstance(features, torch.Tensor) else list(features)
        channels = sum(t.shape[1] for t in inputs)
        tracing = any(isinstance(t, torch.fx.Proxy) for t in inputs)  # symbolic_trace: no check
        if not tracing and channels != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels in total, "
                f"got {channels} (from {len(inputs)} tensor(s))"
            )
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
            out = checkpoint(
                self.bottleneck,
                *inputs,
                use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(), self._recomputation()),
            )
        else:
            out = self.bottleneck(*inputs)
        new = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return new


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1`` ...); returns the concatenation of the
    input and all new features, ``in_channels + num_layers * growth_rate`` channels."""

    def __init__(
        self,
        in_channels: int,
        num_layers: int,
        growth_rate: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        norm: Norm = True,
        act: ActLayer = "relu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"a dense block needs at least one layer, got num_layers={num_layers}")
        self.in_channels = in_channels
        for i in range(num_layers):
            layer = DenseLayer(
                in_channels + i * growth_rate,
                growth_rate,
                bn_size,
                drop_rate,
                memory_efficient,
                norm=norm,
                act=act,
                norm_groups=norm_groups,
            )
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def set_memory_efficient(self, enable: bool = True) -> None:
        for layer in self.values():
            layer.memory_efficient = enable

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 to ``out_channels`` and a 2x2/2 average pool (Huang 2017, §3).

    For DenseNet-BC, ``out_channels = compressed_channels(in_channels, 0.5)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, norm: Norm = True, act: ActLayer = "relu", norm_groups: int = 32
    ) -> None:
        super().__init__()
        self.add_module("norm", make_norm(norm, in_channels, norm_groups))
        self.add_module("relu", make_act(act, inplace=True))
        self.add_module("conv", conv1x1(in_channels, out_channels))
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))
        self.in_channels = in_channels
        self.out_channels = out_channels
