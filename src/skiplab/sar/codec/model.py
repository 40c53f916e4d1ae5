"""The SAR autoencoder as a codec: a quantiser in the loop and a rate it is trained against.

``sar_codec_<variant>`` (``plain``, ``bottleneck``, ``all``, ``bottleneck_cbam``, and
``sar_codec`` with any ``variant``) is the residual autoencoder of
:mod:`skiplab.models.autoencoder` with three additions, as learnt image codecs are built
(Ballé et al., ICLR 2017, sec. 2):

- a bounded latent: ``encode(x) = bound * tanh(a(x) / bound)``, so the quantiser's fixed
  range ``[-bound, bound]`` covers every value (nothing is clipped, and the network cannot
  escape the quantisation noise by inflating its latent);
- the quantiser in the loop (:class:`~skiplab.sar.codec.quantize.LatentQuantizer`): in ``train()``
  mode additive uniform noise of one quantisation step (Ballé 2017 eq. 5), in ``eval()``
  hard rounding. The step follows the bit depth, drawn per batch uniformly from
  ``train_bits`` (inclusive), so one model serves every bit depth in that range -- a
  variable-rate codec whose rate is chosen at encoding time (``skiplab encode --bits``),
  as quantisation-step scaling does in Choi et al. (ICCV 2019). ``eval_bits`` is the depth
  the model's own ``forward`` uses in ``eval()`` (validation, ``reconstruct``);
- a factorised Laplace prior (:class:`~skiplab.sar.codec.rate_model.LaplacePrior`) whose code
  length of the (relaxed) latent, in bits per pixel, ``forward(x, with_rate=True)`` returns
  beside the reconstruction; the ``reconstruct`` task passes it to the ``rate`` loss term:
  ``loss = D + lambda * R`` with ``{"mse": 1, "rate": lambda}``.

Encoding a scene to a latent file uses :meth:`encode` (the bounded latent before
quantisation) and re-fits a per-scene quantiser at the requested bits
(:mod:`skiplab.sar.codec.latent_file`): its range is the scene's min/max, inside ``[-bound,
bound]``, so its step is never coarser than the one the model was trained with.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch

from ...models.autoencoder import ResidualAutoencoder, build_variant
from ...models.registry import register_model
from .quantize import LatentQuantizer, check_bits
from .rate_model import LaplacePrior

CODEC_VARIANTS = ("plain", "bottleneck", "all", "bottleneck_cbam")


class QuantizedAutoencoder(ResidualAutoencoder):
    """:class:`ResidualAutoencoder` with a bounded latent, a quantiser and a prior (see the
    module documentation). Extra arguments: ``train_bits`` (lowest, highest) bit depth drawn
    per training batch, ``eval_bits`` (the depth of ``forward`` in eval mode) and ``bound``."""

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
        attn_layer: Any = None,
        act: Any = "relu",
        up_mode: str = "transpose",
        output: str = "clamp",
        drop_path_rate: float = 0.0,
        zero_init_residual: bool = True,
        *,
        train_bits: Sequence[int] = (2, 8),
        eval_bits: int = 6,
        bound: float = 1.0,
    ) -> None:
        super().__init__(
            latent_channels,
            widths,
            blocks_per_level,
            in_chans,
            out_chans,
            variant,
            norm,
            norm_groups,
            attn_layer,
            act,
            up_mode,
            output,
            drop_path_rate,
            zero_init_residual,
        )
        low, high = (check_bits(int(b)) for b in train_bits)
        if low > high:
            raise ValueError(f"train_bits must be (lowest, highest); found {tuple(train_bits)}")
        if not bound > 0:
            raise ValueError(f"bound must be > 0; found {bound}")
        self.train_bits, self.eval_bits, self.bound = (low, high), check_bits(int(eval_bits)), float(bound)
        self.quantizer = LatentQuantizer(
            self.latent_channels, self.eval_bits, mode="noise", init_range=(-self.bound, self.bound)
        )
        self.prior = LaplacePrior(self.latent_channels)

    def auxiliary_parameter_names(self) -> set[str]:
        """Parameters the output does not depend on, trained only by the ``rate`` loss term:
        the prior's (as CompressAI's ``aux_parameters``). A loss on the output alone leaves
        them without a gradient."""
        return {f"prior.{name}" for name, _ in self.prior.named_parameters()}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bounded latent ``bound * tanh(a(x) / bound)`` [B, C, H/r, W/r], unquantised."""
        z = super().encode(x)
        return self.bound * torch.tanh(z / self.bound)

    def draw_bits(self) -> int:
        """The bit depth of this forward: a uniform draw from ``train_bits`` while training
        (the global torch generator, so a seeded run is reproducible), else ``eval_bits``."""
        if not self.training:
            return self.eval_bits
        low, high = self.train_bits
        return low if low == high else int(torch.randint(low, high + 1, ()).item())

    def quantize(self, z: torch.Tensor, bits: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_hat, bits per pixel [B])``: ``z`` relaxed or rounded at ``bits`` and its code
        length under the prior per pixel of the input (``r * r`` pixels per latent value)."""
        bits = self.draw_bits() if bits is None else check_bits(bits)
        z_hat = self.quantizer(z, bits)
        pixels = z.shape[-2] * z.shape[-1] * self.reduction**2
        return z_hat, self.prior.bits(z_hat, self.quantizer.step(bits)) / pixels

    def forward(
        self, x: torch.Tensor, with_rate: bool = False
    ) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The reconstruction through the quantised latent; with ``with_rate`` the pair
        ``(reconstruction, bits per pixel [B])``, the rate of :meth:`quantize` (the prior's code
        length is computed only then: a reconstruction alone does not need it)."""
        z = self.encode(x)
        if not with_rate:
            return self.decode(self.quantizer(z, self.draw_bits()))
        z_hat, rate = self.quantize(z)
        return self.decode(z_hat), rate

    def extra_repr(self) -> str:
        return (
            super().extra_repr() + f", train_bits={self.train_bits}, eval_bits={self.eval_bits}, bound={self.bound:g}"
        )


def _codec(variant: Optional[str], kwargs: dict[str, Any]) -> QuantizedAutoencoder:
    return build_variant(QuantizedAutoencoder, "sar_codec", variant, kwargs)


@register_model
def sar_codec(**kwargs) -> QuantizedAutoencoder:
    """SAR codec (quantised, rate-trained autoencoder), any ``variant`` (default "all")."""
    return _codec(None, kwargs)


@register_model
def sar_codec_plain(**kwargs) -> QuantizedAutoencoder:
    """SAR codec with no residual connection."""
    return _codec("plain", kwargs)


@register_model
def sar_codec_bottleneck(**kwargs) -> QuantizedAutoencoder:
    """SAR codec with residual blocks only at the coarsest level."""
    return _codec("bottleneck", kwargs)


@register_model
def sar_codec_all(**kwargs) -> QuantizedAutoencoder:
    """SAR codec with residual connections in every block."""
    return _codec("all", kwargs)


@register_model
def sar_codec_bottleneck_cbam(**kwargs) -> QuantizedAutoencoder:
    """SAR codec with bottleneck residual blocks and CBAM on their branches."""
    return _codec("bottleneck_cbam", kwargs)


__all__ = [
    "CODEC_VARIANTS",
    "QuantizedAutoencoder",
    "sar_codec",
    "sar_codec_all",
    "sar_codec_bottleneck",
    "sar_codec_bottleneck_cbam",
    "sar_codec_plain",
]
