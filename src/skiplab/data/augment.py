"""Batched data augmentation on the device where the model runs.

Random crop with padding, horizontal flip and cutout are applied to a whole batch with one
``gather`` (over the flattened H*W pixels) and one multiply -- no Python loop over samples:

- *crop*: the output pixel (i, j) of sample b reads input row ``i + oy[b] - p`` and column
  ``j + ox[b] - p`` with per-sample offsets ``oy, ox`` uniform in ``[0, 2p]``; rows/columns
  outside the image are zero (``pad_mode="zeros"``) or mirrored without repeating the edge
  (``pad_mode="reflect"``, as ``F.pad(mode="reflect")``). This equals padding by p and
  cropping back to H x W (He et al. 2015, Sec. 4.2: "4 pixels are padded on each side, and
  a 32x32 crop is randomly sampled from the padded image or its horizontal flip").
  ``crop_size`` < H gives smaller crops (offsets uniform in ``[0, H + 2p - crop_size]``):
  cheaper training steps, as in progressive resizing (fast.ai's DAWNBench runs, 2018), where
  the first epochs see small crops and the last ones full images.
- *flip*: with probability 1/2 the column index is reversed, folded into the same gather.
- *cutout* (DeVries & Taylor 2017): a ``cutout x cutout`` square centred at a uniform pixel,
  clipped at the border, is set to zero.

The loader applies augmentation AFTER normalisation, so "zero" (padding and cutout) is the
dataset's mean colour. Random parameters are drawn on the CPU from the caller's
``torch.Generator``, so a batch's augmentation is the same on every device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import torch

PAD_MODES = ("zeros", "reflect")


@dataclass
class AugmentParams:
    """Per-sample random choices of one batch (CPU tensors of length B)."""

    offset_y: torch.Tensor  # int64 in [0, H + 2 * crop_padding - crop side]
    offset_x: torch.Tensor
    flip: torch.Tensor  # bool
    cutout_y: torch.Tensor  # int64 centre row in [0, crop side)
    cutout_x: torch.Tensor

    def select(self, rows: torch.Tensor | slice) -> "AugmentParams":
        return AugmentParams(
            *(t[rows] for t in (self.offset_y, self.offset_x, self.flip, self.cutout_y, self.cutout_x))
        )


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror indices in [-size+1, 2*size-2] into [0, size) without repeating the edge."""
    index = index.abs()
    return torch.where(index >= size, 2 * (size - 1) - index, index)


@dataclass
class Augmentation:
    """``aug(x, generator)``: random crop (``crop_padding`` px, zero or reflect padding),
    horizontal flip and cutout on a float batch ``[B, C, H, W]``.

    ``crop_size`` (0: the image size) is the side of the crops, and so of the output;
    ``crop_size_epochs`` (0: every epoch) limits it to the first epochs, after which crops are
    full-size (progressive resizing; see :meth:`for_epoch`)."""

    crop_padding: int = 4
    pad_mode: str = "zeros"
    flip: bool = True
    cutout: int = 0
    alternate_flip: bool = False  # with flip: BatchLoader mirrors by sample and epoch parity
    crop_size: int = 0  # side of the crops (0: the image size)
    crop_size_epochs: int = 0  # crop_size only in the first N epochs (0: in every epoch)

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}; found {self.pad_mode!r}")
        for name in ("crop_padding", "cutout", "crop_size", "crop_size_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; found {getattr(self, name)}")

    @property
    def is_identity(self) -> bool:
        return self.crop_padding == 0 and not self.flip and self.cutout == 0 and not self.crop_size

    def for_epoch(self, epoch: int) -> "Augmentation":
        """The augmentation of (0-based) ``epoch``: full-size crops once ``crop_size_epochs``
        epochs have passed, this one before."""
        if self.crop_size and self.crop_size_epochs and epoch >= self.crop_size_epochs:
            return replace(self, crop_size=0, crop_size_epochs=0)
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the augmented images."""
        if not self.crop_size:
            return height, width
        if self.crop_size > min(height, width) + 2 * self.crop_padding:
            raise ValueError(
                f"crop_size {self.crop_size} does not fit in {height}x{width} images padded by {self.crop_padding}"
            )
        return self.crop_size, self.crop_size

    def sample_params(self, batch: int, height: int, width: int, generator: torch.Generator) -> AugmentParams:
        """Draw the random choices for ``batch`` samples of ``height`` x ``width`` images (always
        the same number of draws, whatever is enabled, so toggling one option never changes
        the others' randomness)."""
        out_h, out_w = self.output_size(height, width)
        offset_y = torch.randint(0, height - out_h + 2 * self.crop_padding + 1, (batch,), generator=generator)
        offset_x = torch.randint(0, width - out_w + 2 * self.crop_padding + 1, (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        centre_y = torch.randint(0, out_h, (batch,), generator=generator)
        centre_x = torch.randint(0, out_w, (batch,), generator=generator)
        if not self.flip:
            flip = torch.zeros_like(flip)
        return AugmentParams(offset_y, offset_x, flip, centre_y, centre_x)

    def apply(self, x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply the drawn choices to ``x`` [B, C, H, W] (float) on its own device."""
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(
                f"augmentation expects a float batch [B, C, H, W]; found {x.dtype} of shape {tuple(x.shape)}"
            )
        if params.flip.shape[0] != x.shape[0]:
            raise ValueError(f"augmentation params are for {params.flip.shape[0]} samples; the batch has {x.shape[0]}")
        if self.is_identity:
            return x
        batch, channels, height, width = x.shape
        dev = x.device
        pad = self.crop_padding
        if self.pad_mode == "reflect" and pad >= min(height, width):
            raise ValueError(f"reflect padding of {pad} px needs images larger than {pad} px; found {height}x{width}")
        out_h, out_w = self.output_size(height, width)
        rows = torch.arange(out_h, device=dev) + (params.offset_y.to(dev) - pad)[:, None]
        cols = torch.arange(out_w, device=dev) + (params.offset_x.to(dev) - pad)[:, None]
        cols = torch.where(params.flip.to(dev)[:, None], cols.flip(1), cols)  # [B, out_w]
        keep = None
        if pad and self.pad_mode == "zeros":
            keep = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
            rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
        elif pad:
            rows, cols = _reflect(rows, height), _reflect(cols, width)
        flat = (rows[:, :, None] * width + cols[:, None, :]).view(batch, 1, out_h * out_w)
        x = (
            x.reshape(batch, channels, height * width)
            .gather(2, flat.expand(batch, channels, out_h * out_w))
            .view(batch, channels, out_h, out_w)
        )
        if self.cutout:
            half = self.cutout // 2
            cy, cx = params.cutout_y.to(dev)[:, None], params.cutout_x.to(dev)[:, None]
            ar_h, ar_w = torch.arange(out_h, device=dev), torch.arange(out_w, device=dev)
            hole = (
                (((ar_h >= cy - half) & (ar_h < cy - half + self.cutout))[:, :, None])
                & (((ar_w >= cx - half) & (ar_w < cx - half + self.cutout))[:, None, :])
            )
            keep = ~hole if keep is None else keep & ~hole
        if keep is not None:
            x = x * keep[:, None].to(x.dtype)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(x, self.sample_params(x.shape[0], x.shape[2], x.shape[3], generator))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel, for x [B, C, H, W] in [0, 1] units."""
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"need one mean/std per channel ({x.shape[1]}); found {len(mean)} and {len(std)}")
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
