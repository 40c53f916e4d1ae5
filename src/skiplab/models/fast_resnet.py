"""A fast CIFAR ResNet for the ``fast_cifar`` recipe: best accuracy per CPU-minute.

The layout follows Keller Jordan's airbench (2024) and David Page's DAWNBench ResNet-9
(2018), with a residual block in every stage:

* a 2x2 patch-whitening stem (Coates & Ng 2011; airbench): a fixed convolution whose
  filters are the eigenvectors of the 2x2-patch covariance of the training images scaled by
  1/sqrt(eigenvalue), with their negatives (so the following GELU keeps both signs), set by
  :meth:`FastResNet.init_whitening` from training images; only its bias is learnt;
* three stages of ``conv3x3 -> max-pool 2 -> BN -> GELU`` followed by residual blocks
  ``y = x + GELU(BN(conv3x3(x)))`` (He et al. 2015, Eq. 1 with an identity shortcut);
* a global max pool and a linear classifier whose logits are scaled by ``logit_scale``
  (airbench: 1/9), which keeps the early softmax soft at the high learning rates used.

Convolutions keep PyTorch's default initialisation (uniform, std 1/sqrt(3 fan_in)), as in
airbench, not He's (std sqrt(2 / fan_out)). With BatchNorm after every convolution the weight
scale only sets the effective learning rate (lr / |w|^2); the recipe's lr was tuned for it.
(On CIFAR-10, 3 epochs of fast_cifar gave 82.4% with it and 82.3% with He's.)

Three options follow airbench further: ``bn_momentum`` (airbench: 0.4 in PyTorch's convention:
fast running statistics that follow the weights of a short run, or Lookahead's averages),
``dirac_init``, which starts each stage's first convolution as the identity on its first
input-many channels (an "implicit residual"), and ``learn_bn_scale=False``, which fixes every
BN scale at 1 so that only the shifts learn
(on CIFAR-10, 3 epochs of fast_cifar gave 85.2% with fixed scales against 82.4% with learnt ones).

``shortcut=False`` is the plain twin: the blocks become ``GELU(BN(conv3x3(x)))``, which with
``dirac_init`` is exactly airbench's ``ConvGroup`` (its second conv starts as the identity).
On CIFAR-10, 3 epochs of fast_cifar gave 85.34% plain against 85.54% residual.

The input side shrinks 32 -> 31 (2x2 stem) -> 15 -> 7 -> 3.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..blocks import conv3x3, init_weights
from ..blocks.norm import (
    ActLayer,
    Norm,
    check_act,
    is_norm,
    make_act,
    make_norm,
    zero_norm_,
)
from .base import Classifier
from .registry import register_model


class GELUResidual(nn.Module):
    """``y = x + GELU(BN(conv3x3(x)))``: the identity-shortcut block of :class:`FastResNet`
    (``shortcut=False``: ``y = GELU(BN(conv3x3(x)))``, its plain twin).

    ``zero_init_last`` zeroes the BN's γ and β, so GELU(0) = 0 and the block starts as the
    identity (Goyal et al. 2017's zero-γ init for this branch shape).
    """

    downsample = None

    def __init__(
        self, channels: int, shortcut: bool = True, norm: Norm = "batch", act: ActLayer = "gelu", norm_groups: int = 32
    ) -> None:
        super().__init__()
        self.has_shortcut = shortcut
        self.conv = conv3x3(channels, channels)
        self.bn = make_norm(norm, channels, norm_groups)
        self.act = make_act(act, inplace=False)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def zero_init_last(self) -> None:
        zero_norm_(self.bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x) if self.has_shortcut else self.residual(x)


class FastResNet(Classifier):
    """Whitening stem, three conv-pool stages with ``blocks`` residual blocks each, max-pool head.

    Args:
        widths: output channels of the three stages.
        blocks: residual blocks per stage.
        num_classes, in_chans: as every classifier.
        logit_scale: multiplier of the logits (airbench uses 1/9).
        zero_init_residual: start every residual block as the identity.
        bn_momentum: momentum of every BatchNorm's running statistics (PyTorch's 0.1 default).
        dirac_init: identity-initialise the first ``in`` filters of each stage's first conv.
        learn_bn_scale: ``False`` fixes every BN scale at 1 (airbench); the residual blocks then
            cannot start at zero, so ``zero_init_residual`` is ignored.
        shortcut: ``False`` drops the blocks' identity shortcuts (the plain twin).
        norm: "batch" (default), "group", "layer" or "none" (see :mod:`skiplab.blocks.norm`);
            ``bn_momentum`` applies to BatchNorm, ``learn_bn_scale`` to any affine norm.
        act: "gelu" (default, airbench's), "relu", "silu"...
        norm_groups: most groups of a "group" norm.
    """

    default_image_size = 32

    def __init__(
        self,
        widths: Sequence[int] = (64, 256, 256),
        blocks: int = 1,
        num_classes: int = 10,
        in_chans: int = 3,
        logit_scale: float = 1 / 9,
        zero_init_residual: bool = True,
        bn_momentum: float = 0.1,
        dirac_init: bool = False,
        learn_bn_scale: bool = True,
        shortcut: bool = True,
        norm: Norm = "batch",
        act: ActLayer = "gelu",
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        check_act(act)
        if len(widths) != 3 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be three positive channel counts, got {tuple(widths)}")
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        if not 0 < bn_momentum <= 1:
            raise ValueError(f"bn_momentum must be in (0, 1], got {bn_momentum}")
        self.in_chans = in_chans
        self.logit_scale = logit_scale
        whiten_width = 2 * in_chans * 4
        self.conv1 = nn.Conv2d(in_chans, whiten_width, kernel_size=2, padding=0, bias=True)
        self.conv1.weight.requires_grad_(False)  # fixed by init_whitening
        self.act1 = make_act(act, inplace=False)
        channels = whiten_width
        for i, width in enumerate(widths):
            stage = nn.Sequential(
                conv3x3(channels, width),
                nn.MaxPool2d(2),
                make_norm(norm, width, norm_groups),
                make_act(act, inplace=False),
                *[GELUResidual(width, shortcut, norm, act, norm_groups) for _ in range(blocks)],
            )
            self.add_module(f"layer{i + 1}", stage)
            self.feature_info.append(dict(num_chs=width, reduction=2 ** (i + 1), module=f"layer{i + 1}"))
            channels = width
        self.feature_info.insert(0, dict(num_chs=whiten_width, reduction=1, module="act1"))
        self.num_features = channels
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual and learn_bn_scale)
        for module in self.modules():
            if is_norm(module) and module.weight is not None:
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = bn_momentum
                module.weight.requires_grad_(learn_bn_scale)
            elif isinstance(module, nn.Conv2d) and module is not self.conv1:
                module.reset_parameters()  # PyTorch's default (see the module docstring)
        if dirac_init:
            convs = [stage[0] for stage in self.stages]
            if not shortcut:  # the plain blocks' convs start as the identity instead
                convs += [m.conv for m in self.modules() if isinstance(m, GELUResidual)]
            for conv in convs:
                weight = conv.weight.data
                nn.init.dirac_(weight[: min(weight.shape[:2])])
        self.init_whitening(None)

    @property
    def min_input_size(self) -> int:
        return 16  # 16 -> 15 -> 7 -> 3 -> 1

    @property
    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3]

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor | None, eps: float = 5e-4) -> None:
        """Set the stem to whiten 2x2 patches of ``images`` (normalised [N, C, H, W]);
        ``None`` sets an orthonormal basis (the identity up to a rotation)."""
        dim = self.in_chans * 4
        if images is None:
            eigvals, eigvecs = torch.ones(dim), torch.eye(dim)
        else:
            if images.dim() != 4 or images.shape[1] != self.in_chans:
                raise ValueError(f"init_whitening expects images [N, {self.in_chans}, H, W], got {tuple(images.shape)}")
            patches = images.float().unfold(2, 2, 1).unfold(3, 2, 1)  # N C H' W' 2 2
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, dim).double()
            patches = patches - patches.mean(0)
            eigvals, eigvecs = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigvecs.T / torch.sqrt(eigvals.clamp_min(0) + eps)[:, None]).float()
        filters = filters.reshape(dim, self.in_chans, 2, 2)
        self.conv1.weight.copy_(torch.cat([filters, -filters]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.act1(self.conv1(x))
        for stage in self.stages:
            x = self.run_stage(stage, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global max pool, then the scaled linear classifier."""
        x = torch.flatten(nn.functional.adaptive_max_pool2d(x, 1), 1)
        return x if pre_logits else self.get_classifier()(x) * self.logit_scale


@register_model
def cifar_fast_resnet(**kwargs) -> FastResNet:
    """Fast CIFAR ResNet, widths 64/256/256, one residual block per stage (airbench94's width)."""
    return FastResNet(**kwargs)


@register_model
def cifar_fast_resnet_s(**kwargs) -> FastResNet:
    """Fast CIFAR ResNet at 3/4 width (48/192/192): about half the compute, for 2-core CPUs."""
    kwargs.setdefault("widths", (48, 192, 192))
    return FastResNet(**kwargs)
