"""Residual convolutional autoencoders for single-channel (SAR) tiles, and the residual-
placement ablation family ``sar_ae_plain`` / ``sar_ae_bottleneck`` / ``sar_ae_all`` /
``sar_ae_bottleneck_cbam``.

The layout is the analysis/synthesis transform of learned image compression (Ballé et al.
2018, Fig. 4; Cheng et al. 2020, Fig. 2: residual blocks with stride and residual upsampling
blocks, :mod:`skiplab.blocks.updown`), without the entropy model::

    stem conv3x3 (in_chans -> w0, full resolution)
    enc1..encL   ResidualDownBlock(stride 2) + blocks_per_level stride-1 blocks  (1/2 .. 1/2^L)
    to_latent    conv3x3 (w_L -> latent_channels): the code z, [B, C, H/2^L, W/2^L]
    from_latent  conv3x3 (C -> w_L) + norm + act
    decL..dec1   blocks_per_level stride-1 blocks + ResidualUpBlock(scale 2)     (mirror)
    head         conv3x3 (w0 -> out_chans) + output mapping

With the default ``widths=(64, 128, 256, 512)`` a 256x256 tile becomes a 16x16xC latent.

**Residual placement** (``variant``), every variant built from the same layers:

* ``"plain"`` -- no shortcut anywhere (each block is act(F(x)), He et al. 2015 §4.1);
* ``"bottleneck"`` -- residual connections only in the stride-1 blocks at the coarsest
  level (16x16 for 256 tiles), in the encoder and the decoder; the resampling blocks stay plain;
* ``"all"`` -- every block residual, the resampling ones with projection shortcuts;
* ``"bottleneck_cbam"`` -- ``"bottleneck"`` with CBAM (Woo et al. 2018) on those residual
  branches.

The bottleneck blocks keep their width, so their shortcut is the identity: ``plain`` and
``bottleneck`` have exactly the same parameters, ``bottleneck_cbam`` adds the CBAM modules
and ``all`` adds the projection shortcuts of the down/up blocks -- nothing else differs.

**Normalisation** (``norm``, default ``"batch"``). The input is log-intensity normalised to
[0, 1] with fixed bounds, so its *absolute level* is the radar backscatter (calibrated dB):
a per-image normalisation (InstanceNorm, or GroupNorm, which also normalises each image
on its own) subtracts each tile's mean and divides by its spread in every layer, so a dark
water tile and a bright urban tile with the same texture map to the same features and the
decoder cannot restore their level. BatchNorm normalises with statistics shared by the
batch in training and with fixed running statistics at inference -- a fixed affine map per
channel -- so the level of each tile passes through. ``"none"`` (convolutions with bias)
keeps it too; ``"group"`` is available for tiny batches, with that caveat.

**Output** (``output``): ``"clamp"`` (default) -- the decoder is linear and the result is
clamped to [0, 1], the range of normalised log-intensity, with a straight-through gradient
(the clamp's gradient is taken as 1, so an output outside [0, 1] is still pulled back by
the loss); ``"sigmoid"`` -- smooth but slow to reach the exact 0 and 1 that percentile
bounds produce at clipped pixels; ``"linear"`` -- unbounded, for data not scaled to [0, 1].

**Output head initialisation.** The last convolution (no normalisation after it) starts at
small weights, N(0, 0.1² / fan_in), and the bias at the middle of the output range (0.5;
0 before a sigmoid), so a fresh model outputs ~0.5 ± 0.07 everywhere. He initialisation
(right for the hidden layers, which a norm follows) gives this layer an output spread of ~4:
nearly every pixel is clamped to 0 or 1 and the first hundreds of steps go into shrinking the
head -- measured on 64 px synthetic SAR tiles, the 4-level plain and ``all`` models stayed at
the PSNR of a constant image for 400 AdamW steps, and overfit 8 tiles to 20 dB in 150 steps
with this initialisation.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ..blocks import drop_path_rates, init_weights
from ..blocks.attention import AttnLayer
from ..blocks.updown import ActLayer, ResidualDownBlock, ResidualUpBlock, make_act, make_norm
from .image_to_image import ImageToImageModel, check_widths
from .registry import register_model

VARIANTS = ("plain", "bottleneck", "all", "bottleneck_cbam")
OUTPUTS = ("clamp", "sigmoid", "linear")
SizeLike = Union[int, Sequence[int], None]


def init_output_head(head: nn.Conv2d, level: float, scale: float = 0.1) -> None:
    """Weights N(0, scale² / fan_in) and bias ``level``: the output starts near ``level``
    with a small spread (see "Output head initialisation" in the module documentation)."""
    fan_in = head.weight[0].numel()
    nn.init.normal_(head.weight, std=scale / fan_in**0.5)
    nn.init.constant_(head.bias, level)


def clamp_straight_through(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """``x.clamp(low, high)`` in the forward pass, the identity's gradient in the backward."""
    return x + (x.clamp(low, high) - x).detach()


class Autoencoder(ImageToImageModel):
    """Base of skiplab's autoencoders: ``forward(x) = decode(encode(x))``.

    Subclasses define :meth:`encode` and :meth:`decode` and set ``latent_channels`` and
    ``feature_info`` (whose deepest reduction is the encoder's total stride). Inputs whose
    height or width the stride does not divide are refused (tile them instead).
    """

    latent_channels: int = 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder (what ``features_only=True`` runs): the latent code."""
        return self.encode(x)

    def reset_classifier(self, num_classes: int) -> None:
        """Autoencoders have no classifier; ``0`` (what FeatureExtractor asks) is a no-op."""
        if num_classes != 0:
            raise ValueError(
                f"{type(self).__name__} is an autoencoder: it has no classifier to give {num_classes} classes"
            )

    @property
    def min_input_size(self) -> int:
        """Smallest side accepted: the encoder's total stride."""
        return self.reduction

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if isinstance(x, torch.fx.Proxy):  # symbolic tracing: no shape to check
            return
        self._check_divisible(tuple(x.shape[-2:]))

    def _check_divisible(self, size: tuple[int, int]) -> None:
        r = self.reduction
        fit = f"{max(r, size[0] // r * r)}x{max(r, size[1] // r * r)}"
        if size[0] % r or size[1] % r or min(size) < r:
            raise ValueError(
                f"{type(self).__name__} downsamples by {r}: height and width must be "
                f"multiples of {r}, at least {r}x{r}, got {size[0]}x{size[1]} (tile or "
                f"crop the image, e.g. to {fit})"
            )

    # -- rate -------------------------------------------------------------------------
    def _input_size(self, input_size: SizeLike) -> tuple[int, int, int]:
        if input_size is None:
            size: tuple[int, ...] = self.default_input_size
        elif isinstance(input_size, int):
            size = (self.in_chans, input_size, input_size)
        else:
            size = tuple(int(s) for s in input_size)
            size = (self.in_chans,) + size if len(size) == 2 else size
        if len(size) != 3 or size[0] != self.in_chans:
            raise ValueError(f"input_size must be H, (H, W) or ({self.in_chans}, H, W), got {input_size!r}")
        self._check_divisible((size[1], size[2]))
        return size  # type: ignore[return-value]

    def latent_shape(self, input_size: SizeLike = None) -> tuple[int, int, int]:
        """(C, H/r, W/r) of the code of an input of ``input_size`` (int, (H, W) or (C, H, W))."""
        _, h, w = self._input_size(input_size)
        return (self.latent_channels, h // self.reduction, w // self.reduction)

    def compression_ratio(self, input_size: SizeLike = None, latent_bits: int = 32, input_bits: int = 32) -> float:
        """Input bits over latent bits: a float32 ``1x256x256`` tile against a float32
        ``C x 16 x 16`` code gives ``65536 / (256 C) = 256 / C``."""
        c, h, w = self._input_size(input_size)
        latent = self.latent_shape((c, h, w))
        return (c * h * w * input_bits) / (latent[0] * latent[1] * latent[2] * latent_bits)

    def bits_per_pixel(self, input_size: SizeLike = None, latent_bits: int = 32) -> float:
        """Latent bits per input pixel (C x 16 x 16 x 32 bits over 256x256 pixels = C / 8)."""
        c, h, w = self._input_size(input_size)
        latent = self.latent_shape((c, h, w))
        return latent[0] * latent[1] * latent[2] * latent_bits / (h * w)


class ResidualAutoencoder(Autoencoder):
    """Stem, ``len(widths)`` down levels, a conv to the latent, and the mirror decoder.

    Args:
        latent_channels: C, channels of the code ``[B, C, H/16, W/16]`` (4 levels).
        widths: channels of the levels, finest first (default 64, 128, 256, 512); the stem
            has ``widths[0]``.
        blocks_per_level: stride-1 blocks after each down block (and before each up block).
        in_chans: input channels (1 for SAR); out_chans: output channels (default in_chans).
        variant: where the residual connections are -- "plain", "bottleneck", "all" or
            "bottleneck_cbam" (see the module documentation).
        norm: "batch" (default: keeps each tile's absolute level), "group" or "none".
        attn_layer: attention ("se", "cbam", a callable) on every residual branch of the
            variant ("bottleneck_cbam" means "cbam" here).
        act: activation (name or factory); up_mode: "transpose" (4x4/2 transposed conv,
            even overlap) or "upsample" (nearest + conv3x3), see :class:`ResidualUpBlock`.
        output: "clamp" (default), "sigmoid" or "linear" (see the module documentation).
        drop_path_rate: stochastic depth of the residual branches, growing linearly along
            the forward path (encoder, then decoder) to this rate (Huang et al. 2016, Eq. 4).
        zero_init_residual: zero each residual branch's last norm scale (Goyal et al. 2017).
    """

    def __init__(
        self,
        latent_channels: int = 32,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks_per_level: int = 1,
        in_chans: int = 1,
        out_chans: Optional[int] = None,
        variant: str = "all",
        norm: str = "batch",
        norm_groups: int = 32,
        attn_layer: AttnLayer = None,
        act: ActLayer = "relu",
        up_mode: str = "transpose",
        output: str = "clamp",
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        widths = check_widths(widths)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        for name, value in (
            ("latent_channels", latent_channels),
            ("in_chans", in_chans),
            ("blocks_per_level", blocks_per_level),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if variant == "bottleneck_cbam":
            if attn_layer not in (None, "cbam"):
                raise ValueError(
                    f"variant 'bottleneck_cbam' puts CBAM on the bottleneck blocks; "
                    f"got attn_layer={attn_layer!r} (use variant='bottleneck' for another)"
                )
            attn_layer = "cbam"
        if variant == "plain" and (attn_layer is not None or drop_path_rate > 0):
            raise ValueError(
                "variant 'plain' has no residual branch to carry attn_layer or "
                "drop_path_rate; use 'bottleneck' or 'all'"
            )
        make_norm(norm, 1)  # validate before building
        self.in_chans, self.out_chans = in_chans, out_chans or in_chans
        self.latent_channels, self.variant, self.output = latent_channels, variant, output
        self.widths, self.blocks_per_level = widths, blocks_per_level
        levels = len(widths)
        bias = norm == "none"
        common = dict(norm=norm, norm_groups=norm_groups, act=act)
        residual_blocks = {"plain": 0, "all": 2 * levels * (1 + blocks_per_level)}.get(
            variant, 2 * blocks_per_level
        )  # the bottleneck variants: the 16x16 level's blocks
        rates = iter(drop_path_rates(drop_path_rate, max(residual_blocks, 1)))

        def options(level: int, resamples: bool) -> dict[str, Any]:
            """Block options; called in forward order, so the drop-path rates grow along the path."""
            residual = variant == "all" or (not resamples and variant != "plain" and level == levels - 1)
            return dict(
                common,
                residual=residual,
                attn_layer=attn_layer if residual else None,
                drop_path=next(rates) if residual else 0.0,
            )

        self.stem = self._conv_norm_act(in_chans, widths[0], bias, norm, norm_groups, act)
        channels = widths[0]
        for i, width in enumerate(widths):
            blocks = [ResidualDownBlock(channels, width, stride=2, **options(i, True))]
            blocks += [ResidualDownBlock(width, width, stride=1, **options(i, False)) for _ in range(blocks_per_level)]
            self.add_module(f"enc{i + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=width, reduction=2 ** (i + 1), module=f"enc{i + 1}"))
            channels = width
        self.to_latent = nn.Conv2d(channels, latent_channels, 3, padding=1)
        self.feature_info.append(dict(num_chs=latent_channels, reduction=2**levels, module="to_latent"))
        self.from_latent = self._conv_norm_act(latent_channels, channels, bias, norm, norm_groups, act)
        for i in reversed(range(levels)):
            target = widths[i - 1] if i > 0 else widths[0]
            blocks = [
                ResidualUpBlock(widths[i], widths[i], scale=1, **options(i, False)) for _ in range(blocks_per_level)
            ]
            blocks.append(ResidualUpBlock(widths[i], target, scale=2, mode=up_mode, **options(i, True)))
            self.add_module(f"dec{i + 1}", nn.Sequential(*blocks))
        self.head = nn.Conv2d(widths[0], self.out_chans, 3, padding=1)
        init_weights(self, zero_init_residual)
        init_output_head(self.head, 0.0 if output == "sigmoid" else 0.5)

    @staticmethod
    def _conv_norm_act(
        in_channels: int, out_channels: int, bias: bool, norm: str, norm_groups: int, act: ActLayer
    ) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(norm, out_channels, norm_groups),
            make_act(act),
        )

    @property
    def encoder_levels(self) -> list[nn.Sequential]:
        return [getattr(self, f"enc{i + 1}") for i in range(len(self.widths))]

    @property
    def decoder_levels(self) -> list[nn.Sequential]:
        """``decL`` ... ``dec1``, in forward order (coarsest first)."""
        return [getattr(self, f"dec{i}") for i in range(len(self.widths), 0, -1)]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_chans, H, W]`` -> latent ``[B, latent_channels, H/16, W/16]`` (4 levels)."""
        self.check_input(x)
        x = self.stem(x)
        for level in self.encoder_levels:
            x = self.run_stage(level, x)
        return self.to_latent(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, latent_channels, h, w]`` -> ``[B, out_chans, 16 h, 16 w]`` (4 levels)."""
        if not isinstance(z, torch.fx.Proxy) and (z.dim() != 4 or z.shape[1] != self.latent_channels):
            raise ValueError(
                f"{type(self).__name__}.decode expects a latent [B, {self.latent_channels}, "
                f"h, w], got shape {tuple(z.shape)}"
            )
        x = self.from_latent(z)
        for level in self.decoder_levels:
            x = self.run_stage(level, x)
        x = self.head(x)
        if self.output == "clamp":
            return clamp_straight_through(x)
        return torch.sigmoid(x) if self.output == "sigmoid" else x

    def extra_repr(self) -> str:
        return (
            f"variant={self.variant!r}, latent_channels={self.latent_channels}, "
            f"widths={self.widths}, output={self.output!r}"
        )


def build_variant(cls: type, family: str, variant: Optional[str], kwargs: dict[str, Any]) -> nn.Module:
    """``cls(**kwargs)`` with ``variant`` pinned, as the registry's ``<family>_<variant>``
    functions build it: a conflicting ``variant=`` keyword is refused in one line."""
    if variant is not None:
        given = kwargs.pop("variant", variant)
        if given != variant:
            raise ValueError(
                f"{family}_{variant} is the {variant!r} variant, got variant={given!r}; "
                f"use {family} with variant={given!r}"
            )
        kwargs["variant"] = variant
    return cls(**kwargs)


def _sar_ae(variant: Optional[str], kwargs: dict[str, Any]) -> ResidualAutoencoder:
    return build_variant(ResidualAutoencoder, "sar_ae", variant, kwargs)


@register_model
def sar_ae(**kwargs) -> ResidualAutoencoder:
    """Residual SAR autoencoder, any ``variant`` (default "all"): 256x256x1 -> 16x16x32."""
    return _sar_ae(None, kwargs)


@register_model
def sar_ae_plain(**kwargs) -> ResidualAutoencoder:
    """Ablation: the SAR autoencoder with no residual connection."""
    return _sar_ae("plain", kwargs)


@register_model
def sar_ae_bottleneck(**kwargs) -> ResidualAutoencoder:
    """Ablation: residual blocks only at the coarsest (16x16) level."""
    return _sar_ae("bottleneck", kwargs)


@register_model
def sar_ae_all(**kwargs) -> ResidualAutoencoder:
    """Ablation: residual connections in every block (the design's autoencoder)."""
    return _sar_ae("all", kwargs)


@register_model
def sar_ae_bottleneck_cbam(**kwargs) -> ResidualAutoencoder:
    """Ablation: bottleneck residual blocks with CBAM attention on their branches."""
    return _sar_ae("bottleneck_cbam", kwargs)
