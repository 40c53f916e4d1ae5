"""Batched data augmentation on the device where the model runs.

Random crop with padding, horizontal flip and cutout are applied to a whole batch with one
``gather`` (over the flattened H*W pixels) and one multiply -- no Python loop over samples:

- *crop*: the output pixel (i, j) of sample b reads input row ``i + oy[b] - p`` and column
  ``j + ox[b] - p`` with per-sample offsets ``oy, ox`` uniform in ``[0, 2p]``; rows/columns
  outside the image are zero (``pad_mode="zeros"``) or mirrored without repeating the edge
  (``pad_mode="reflect"``, as ``F.pad(mode="reflect")``). This equals padding by p and
  cropping back to H x W (He et al. 2015, Sec. 4.2: "4 pixels are padded on each side, and
  a 32x32 crop is randomly sampled from the padded image or its horizontal flip").
- *flip*: with probability 1/2 the column index is reversed, folded into the same gather.
- *cutout* (DeVries & Taylor 2017): a ``cutout x cutout`` square centred at a uniform pixel,
  clipped at the border, is set to zero.

The loader applies augmentation AFTER normalisation, so "zero" (padding and cutout) is the
dataset's mean colour. Random parameters are drawn on the CPU from the caller's
``torch.Generator``, so a batch's augmentation is the same on every device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

PAD_MODES = ("zeros", "reflect")


@dataclass
class AugmentParams:
    """Per-sample random choices of one batch (CPU tensors of length B)."""

    offset_y: torch.Tensor   # int64 in [0, 2 * crop_padding]
    offset_x: torch.Tensor
    flip: torch.Tensor       # bool
    cutout_y: torch.Tensor   # int64 centre row in [0, H)
    cutout_x: torch.Tensor

    def select(self, rows: torch.Tensor | slice) -> "AugmentParams":
        return AugmentParams(*(t[rows] for t in (self.offset_y, self.offset_x, self.flip,
                                                 self.cutout_y, self.cutout_x)))


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror indices in [-size+1, 2*size-2] into [0, size) without repeating the edge."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


@dataclass
class Augmentation:
    """``aug(x, generator)``: random crop (``crop_padding`` px, zero or reflect padding),
    horizontal flip and cutout on a float batch ``[B, C, H, W]``."""

    crop_padding: int = 4
    pad_mode: str = "zeros"
    flip: bool = True
    cutout: int = 0
    alternate_flip: bool = False   # with flip: BatchLoader mirrors by sample and epoch parity

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}; found {self.pad_mode!r}")
        if self.crop_padding < 0 or self.cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0; found "
                             f"{self.crop_padding} and {self.cutout}")

    @property
    def is_identity(self) -> bool:
        return self.crop_padding == 0 and not self.flip and self.cutout == 0

    def sample_params(self, batch: int, height: int, width: int,
                      generator: torch.Generator) -> AugmentParams:
        """Draw the random choices for ``batch`` samples (always the same number of draws,
        whatever is enabled, so toggling one option never changes the others' randomness)."""
        span = 2 * self.crop_padding + 1
        offsets = torch.randint(0, span, (2, batch), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        centre_y = torch.randint(0, height, (batch,), generator=generator)
        centre_x = torch.randint(0, width, (batch,), generator=generator)
        if not self.flip:
            flip = torch.zeros_like(flip)
        return AugmentParams(offsets[0], offsets[1], flip, centre_y, centre_x)

    def apply(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply the drawn choices to ``x`` [B, C, H, W] (float) on its own device."""
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(f"augmentation expects a float batch [B, C, H, W]; found "
                             f"{x.dtype} of shape {tuple(x.shape)}")
        if params.flip.shape[0] != x.shape[0]:
            raise ValueError(f"augmentation params are for {params.flip.shape[0]} samples; "
                             f"the batch has {x.shape[0]}")
        if self.is_identity:
            return x
        batch, channels, height, width = x.shape
        dev = x.device
        pad = self.crop_padding
        if self.pad_mode == "reflect" and pad >= min(height, width):
            raise ValueError(f"reflect padding of {pad} px needs images larger than {pad} px; "
                             f"found {height}x{width}")
        rows = torch.arange(height, device=dev) + (params.offset_y.to(dev) - pad)[:, None]
        cols = torch.arange(width, device=dev) + (params.offset_x.to(dev) - pad)[:, None]
        cols = torch.where(params.flip.to(dev)[:, None], cols.flip(1), cols)    # [B, W]
        keep = None
        if pad and self.pad_mode == "zeros":
            keep = (((rows >= 0) & (rows < height))[:, :, None]
                    & ((cols >= 0) & (cols < width))[:, None, :])
            rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
        elif pad:
            rows, cols = _reflect(rows, height), _reflect(cols, width)
        flat = (rows[:, :, None] * width + cols[:, None, :]).view(batch, 1, height * width)
        x = (x.reshape(batch, channels, height * width)
             .gather(2, flat.expand(batch, channels, height * width))
             .view(batch, channels, height, width))
        if self.cutout:
            half = self.cutout // 2
            cy, cx = params.cutout_y.to(dev)[:, None], params.cutout_x.to(dev)[:, None]
            ar_h, ar_w = torch.arange(height, device=dev), torch.arange(width, device=dev)
            hole = ((((ar_h >= cy - half) & (ar_h < cy - half + self.cutout))[:, :, None])
                    & (((ar_w >= cx - half) & (ar_w < cx - half + self.cutout))[:, None, :]))
            keep = ~hole if keep is None else keep & ~hole
        if keep is not None:
            x = x * keep[:, None].to(x.dtype)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample_params(x.shape[0], x.shape[2], x.shape[3], generator))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for x [B, C, H, W] in [0, 1] units."""
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"need one mean/std per channel ({x.shape[1]}); found "
                         f"{len(mean)} and {len(std)}")
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
