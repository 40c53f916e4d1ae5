"""U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", Fig. 1) and its residual and ResNet-encoder variants.

* ``unet`` -- the contracting path of double-conv stages (conv3x3-BN-ReLU twice, with
  'same' padding and BatchNorm as is now usual, where the paper used valid convolutions
  and no normalisation), 2x2 max-pooling between them and the channels doubling from
  ``base_width``; the expanding path up-samples with a 2x2/2 transposed convolution that
  halves the channels, concatenates the encoder map of the same resolution (the skip
  connection) and applies a double conv; a 1x1 conv gives the class scores.
* ``unet_residual`` -- the same network with each double conv a residual block
  (y = relu(F(x) + W_s x), He et al. 2015, Eq. 2; a 1x1 projection where the width
  changes), as in the residual U-Nets of Drozdzal et al. 2016 and Zhang et al. 2018: the
  plain and residual U-Nets differ only by those projections.
* ``unet_resnet18`` / ``unet_resnet34`` -- a zoo ResNet as the contracting path
  (``create_model(name, features_only=True)``: the stem at 1/2 and the four stages at
  1/4 .. 1/32) and the same expanding path; the last up-stage, at full resolution, has no
  skip.

Any input size works: inputs that the total stride does not divide are padded (reflect,
replicate or zeros) to the next multiple and the output is cropped back to the input size.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import drop_path_rates, init_weights
from ..blocks.norm import ActLayer, check_act
from ..blocks.updown import ResidualDownBlock, make_norm
from .image_to_image import ImageToImageModel, check_widths
from .registry import create_model, register_model

PAD_MODES = ("reflect", "replicate", "zeros")
UP_MODES = ("transpose", "bilinear")


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Pad ``x`` so that H and W are multiples of ``multiple``, about equally on both sides.

    Returns the padded tensor and the box ``(top, left, H, W)`` that :func:`crop_box` cuts
    back out. Reflection needs the padding to be smaller than the side; where it is not (tiny
    inputs), that side is padded by replication instead.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {mode!r}")
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    top, left = ph // 2, pw // 2
    box = (top, left, h, w)
    if ph == 0 and pw == 0:
        return x, box
    if mode == "zeros":
        return F.pad(x, (left, pw - left, top, ph - top)), box
    for dim, before, after in ((-1, left, pw - left), (-2, top, ph - top)):
        if before or after:
            side = x.shape[dim]
            use = "reflect" if mode == "reflect" and max(before, after) < side else "replicate"
            pad = (before, after, 0, 0) if dim == -1 else (0, 0, before, after)
            x = F.pad(x, pad, mode=use)
    return x, box


def crop_box(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Cut the ``(top, left, H, W)`` box out of ``x`` (the inverse of :func:`pad_to_multiple`)."""
    top, left, h, w = box
    return x[..., top : top + h, left : left + w]


# Leaves of a torch.fx.symbolic_trace graph (BN folding): their padding depends on the input size.
torch.fx.wrap("pad_to_multiple")
torch.fx.wrap("crop_box")


class UpStage(nn.Module):
    """Up-sample by 2 to ``out_channels``, concatenate the skip, then a double conv.

    ``up_mode="transpose"``: 2x2/2 transposed conv (the paper's "up-convolution");
    ``"bilinear"``: bilinear up-sampling and a 1x1 conv. The double conv is a
    :class:`ResidualDownBlock` of stride 1 (``residual=False``: the plain conv-BN-ReLU x2).
    """

    def __init__(
        self, in_channels: int, skip_channels: int, out_channels: int, up_mode: str = "transpose", **block_kwargs: Any
    ) -> None:
        super().__init__()
        if up_mode not in UP_MODES:
            raise ValueError(f"up_mode must be one of {UP_MODES}, got {up_mode!r}")
        if up_mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, out_channels, 1),
            )
        self.skip_channels = skip_channels
        self.block = ResidualDownBlock(out_channels + skip_channels, out_channels, stride=1, **block_kwargs)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.block(x)


class SegmentationNet(ImageToImageModel):
    """Base of the U-Nets: an encoder given by ``feature_info`` (reductions powers of 2), the
    expanding path built by :meth:`build_decoder`, and the 1x1 ``head``.

    Subclasses set ``feature_info``, define :meth:`encoder_features` (padded input -> one map
    per ``feature_info`` entry) and call :meth:`build_decoder`.
    """

    default_image_size = 64  # the synthetic cells task's tiles

    def __init__(self, num_classes: int, in_chans: int, pad_mode: str) -> None:
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
        self.in_chans, self.pad_mode = in_chans, pad_mode
        self.num_classes = num_classes
        self.decoder_width = 0
        self.skip_reductions: list[Optional[int]] = []

    def build_decoder(self, widths: Sequence[int], up_mode: str, block_kwargs: Sequence[dict[str, Any]]) -> None:
        """``dec{n}`` ... ``dec1``: stage j up-samples to reduction R / 2^(j+1) (R the deepest)
        and concatenates the last encoder map of that reduction, if there is one."""
        deepest = self.reduction
        if 2 ** len(widths) != deepest:
            raise ValueError(
                f"the encoder downsamples by {deepest}: the decoder needs "
                f"{int(math.log2(deepest))} widths to return to full resolution, "
                f"got {tuple(widths)}"
            )
        channels_at = {f["reduction"]: f["num_chs"] for f in self.feature_info}
        channels = self.feature_info[-1]["num_chs"]
        for j, (width, kwargs) in enumerate(zip(widths, block_kwargs)):
            reduction = deepest // 2 ** (j + 1)
            skip = channels_at.get(reduction, 0)
            self.skip_reductions.append(reduction if skip else None)
            self.add_module(f"dec{len(widths) - j}", UpStage(channels, skip, width, up_mode, **kwargs))
            channels = width
        self.decoder_width = channels

    @property
    def decoder_stages(self) -> list[UpStage]:
        """The up-stages in forward order (coarsest first)."""
        return [getattr(self, f"dec{i}") for i in range(len(self.skip_reductions), 0, -1)]

    @property
    def out_chans(self) -> int:
        """Channels of the output: the class scores (the decoder's width without a head)."""
        return self.num_classes or self.decoder_width

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh 1x1 ``head`` with ``num_classes`` outputs (0: none, the decoder's features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        self.head = nn.Conv2d(self.decoder_width, num_classes, 1) if num_classes else nn.Identity()

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        """The contracting path's feature maps, shallowest first (UNet and ResNetUNet define it)."""
        raise NotImplementedError(f"{type(self).__name__} must define encoder_features (abstract)")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The contracting path on the padded input: its deepest feature map."""
        self.check_input(x)
        return self.encoder_features(pad_to_multiple(x, self.reduction, self.pad_mode)[0])[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_chans, H, W]`` -> class scores ``[B, num_classes, H, W]``, any H, W."""
        self.check_input(x)
        padding = pad_to_multiple(x, self.reduction, self.pad_mode)  # indexed, not unpacked: fx traces it
        features = self.encoder_features(padding[0])
        by_reduction = {f["reduction"]: out for f, out in zip(self.feature_info, features)}
        y = features[-1]
        for stage, reduction in zip(self.decoder_stages, self.skip_reductions):
            skips = () if reduction is None else (by_reduction[reduction],)
            y = self.run_stage(stage, y, *skips)
        return crop_box(self.head(y), padding[1])


class UNet(SegmentationNet):
    """Ronneberger et al.'s U-Net, plain or residual.

    Args:
        num_classes: output channels (class scores); in_chans: input channels.
        depth: number of 2x2 poolings (4 in the paper: total stride 16).
        base_width: channels of the first stage (64), doubled at each pooling.
        residual: each double conv a residual block (``unet_residual``).
        norm: "batch", "group", "layer" or "none" (see :mod:`skiplab.blocks.norm`);
        act: "relu" (default), "gelu", "silu"...; up_mode: "transpose" or "bilinear".
        pad_mode: "reflect", "replicate" or "zeros", for inputs the stride does not divide.
        drop_path_rate: stochastic depth of the residual blocks, growing linearly along the
            forward path (Huang et al. 2016, Eq. 4).
        zero_init_residual: zero each residual branch's last norm scale (Goyal et al. 2017),
            except in the first block, which reads the image.
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_chans: int = 1,
        depth: int = 4,
        base_width: int = 64,
        residual: bool = False,
        norm: str = "batch",
        up_mode: str = "transpose",
        pad_mode: str = "reflect",
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        act: ActLayer = "relu",
    ) -> None:
        super().__init__(num_classes, in_chans, pad_mode)
        check_act(act)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer (number of poolings), got {depth!r}")
        widths = check_widths([base_width * 2**i for i in range(depth + 1)], "base_width")
        if drop_path_rate > 0 and not residual:
            raise ValueError("drop_path_rate needs residual blocks: use unet_residual (residual=True)")
        make_norm(norm, 1)
        self.residual = residual
        # forward order: depth + 1 encoder blocks, then depth decoder blocks
        rates = drop_path_rates(drop_path_rate, 2 * depth + 1)
        kwargs = [dict(norm=norm, act=act, residual=residual, drop_path=rate) for rate in rates]
        channels = in_chans
        for i, width in enumerate(widths):
            block = ResidualDownBlock(channels, width, stride=1, **kwargs[i])
            stage = block if i == 0 else nn.Sequential(nn.MaxPool2d(2), block)
            self.add_module(f"enc{i + 1}", stage)
            self.feature_info.append(dict(num_chs=width, reduction=2**i, module=f"enc{i + 1}"))
            channels = width
        self.build_decoder(widths[-2::-1], up_mode, kwargs[depth + 1 :])
        self.reset_classifier(num_classes)
        init_weights(self, zero_init_residual)
        if zero_init_residual and residual:
            # the first block reads the image itself: zeroing its branch would leave a 1x1
            # projection of the pixels as the whole first stage, so it keeps its init
            init_weights(self.enc1, zero_init_residual=False)

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i in range(len(self.feature_info)):
            x = self.run_stage(getattr(self, f"enc{i + 1}"), x)
            features.append(x)
        return features


class ResNetUNet(SegmentationNet):
    """U-Net whose contracting path is a zoo model (``features_only=True``).

    Args:
        encoder: registered model name (default "resnet18"); its ``feature_info``
            reductions must be powers of two.
        decoder_widths: channels of the up-stages, coarsest first; as many as the
            poolings of the encoder (5 for a ResNet's stride 32).
        residual_decoder: the decoder's double convs as residual blocks.
        drop_path_rate, zero_init_residual: passed to the encoder; so are ``norm`` and
            ``act`` where they are not the defaults ("batch", "relu").
        Other arguments as :class:`UNet`.
    """

    def __init__(
        self,
        encoder: str = "resnet18",
        num_classes: int = 2,
        in_chans: int = 1,
        decoder_widths: Sequence[int] = (256, 128, 64, 32, 16),
        residual_decoder: bool = False,
        norm: str = "batch",
        up_mode: str = "transpose",
        pad_mode: str = "reflect",
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        act: ActLayer = "relu",
    ) -> None:
        super().__init__(num_classes, in_chans, pad_mode)
        check_act(act)
        widths = check_widths(decoder_widths, "decoder_widths")
        make_norm(norm, 1)
        kwargs = dict(in_chans=in_chans, zero_init_residual=zero_init_residual)
        if drop_path_rate:
            kwargs["drop_path_rate"] = drop_path_rate
        if norm != "batch":
            kwargs["norm"] = norm
        if act != "relu":
            kwargs["act"] = act
        self.encoder = create_model(encoder, features_only=True, **kwargs)
        for info in self.encoder.feature_info:
            r = info["reduction"]
            if r < 1 or r & (r - 1):
                raise ValueError(f"{encoder}'s feature reductions must be powers of 2, got {r}")
            self.feature_info.append(dict(info, module=f"encoder.model.{info['module']}"))
        block_kwargs = [dict(norm=norm, act=act, residual=residual_decoder)] * len(widths)
        self.build_decoder(widths, up_mode, block_kwargs)
        self.reset_classifier(num_classes)
        decoder = [m for name, m in self.named_children() if name.startswith("dec") or name == "head"]
        for module in decoder:
            init_weights(module, zero_init_residual)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        super().set_grad_checkpointing(enable)
        self.encoder.model.set_grad_checkpointing(enable)

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(x)


def _unet(cls: type, fixed: dict[str, Any], kwargs: dict[str, Any]) -> SegmentationNet:
    for key, value in fixed.items():
        if kwargs.setdefault(key, value) != value:
            raise ValueError(f"this model fixes {key}={value!r}, got {key}={kwargs[key]!r}")
    return cls(**kwargs)


@register_model
def unet(**kwargs) -> UNet:
    """U-Net (Ronneberger 2015) with BN and padded convs: 31,037,698 parameters for
    in_chans=3, num_classes=2 (as milesial/Pytorch-UNet with transposed convs)."""
    return _unet(UNet, dict(residual=False), kwargs)


@register_model
def unet_residual(**kwargs) -> UNet:
    """U-Net whose double convs are residual blocks (1x1 projection where the width changes)."""
    return _unet(UNet, dict(residual=True), kwargs)


@register_model
def unet_resnet18(**kwargs) -> ResNetUNet:
    """U-Net with a ResNet-18 encoder (stride 32) and a five-stage decoder."""
    return _unet(ResNetUNet, dict(encoder="resnet18"), kwargs)


@register_model
def unet_resnet34(**kwargs) -> ResNetUNet:
    """U-Net with a ResNet-34 encoder (stride 32) and a five-stage decoder."""
    return _unet(ResNetUNet, dict(encoder="resnet34"), kwargs)
