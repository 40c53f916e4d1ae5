"""Batched augmentation that only moves pixels: random crops and the 8 dihedral
transforms (identity, rotations by 90/180/270 degrees, and the same after a transpose).
Used for segmentation (exact on masks) and, as ``skiplab.sar.SARAugmentation``, for SAR.

These only *move* pixels: every output pixel is one input pixel, so the speckle's marginal
distribution (Gamma(L, 1/L) in intensity), its spatial correlation up to the symmetry, and
the absolute radiometric level are untouched. Resampling, blurring, arbitrary rotations,
scaling or brightness changes would interpolate speckle (raising its apparent number of
looks) or shift the calibrated level, and are deliberately absent.

Random choices are drawn on the CPU from the caller's ``torch.Generator``
(:meth:`DihedralAugmentation.sample_params`) and applied to a whole batch on its device
(:meth:`DihedralAugmentation.apply`), the protocol of :class:`skiplab.data.Augmentation`, so a
loader reproduces a batch's augmentation from (seed, epoch, batch) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

NUM_DIHEDRAL = 8


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Dihedral transform ``k`` in 0..7 of ``x`` [..., H, W]: ``rot90`` by ``k % 4`` quarter
    turns (counter-clockwise), preceded by a transpose of the last two axes when ``k >= 4``.
    ``k`` 1 and 3 (and 4..7 on non-square input) swap H and W."""
    if not 0 <= k < NUM_DIHEDRAL:
        raise ValueError(f"dihedral index must be in 0..7; found {k}")
    if k >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def inverse_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo :func:`dihedral` ``k`` (test-time augmentation: average the 8 back-transformed
    outputs)."""
    if not 0 <= k < NUM_DIHEDRAL:
        raise ValueError(f"dihedral index must be in 0..7; found {k}")
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.transpose(-2, -1) if k >= 4 else x


def batched_dihedral(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """Apply transform ``ks[b]`` to sample ``b`` of a square batch [B, C, S, S] (one
    ``index_copy`` per distinct transform, no loop over samples)."""
    if x.dim() != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"batched dihedral transforms need a square batch [B, C, S, S]; found shape {tuple(x.shape)}")
    if ks.shape != (x.shape[0],):
        raise ValueError(f"need one transform per sample ({x.shape[0]}); found {tuple(ks.shape)}")
    out = torch.empty_like(x)
    ks = ks.to(x.device)
    for k in torch.unique(ks).tolist():
        rows = torch.nonzero(ks == k).flatten()
        out.index_copy_(0, rows, dihedral(x.index_select(0, rows), int(k)))
    return out


def batched_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``size x size`` windows at per-sample offsets ``(top[b], left[b])`` from
    [B, C, H, W] with one gather (no resampling)."""
    batch, channels, height, width = x.shape
    dev = x.device
    rows = top.to(dev)[:, None] + torch.arange(size, device=dev)  # [B, size]
    cols = left.to(dev)[:, None] + torch.arange(size, device=dev)
    if int(rows.max()) >= height or int(cols.max()) >= width or int(top.min()) < 0 or int(left.min()) < 0:
        raise ValueError(f"crop windows of {size} px fall outside the {height}x{width} images")
    index = rows[:, None, :, None].expand(batch, channels, size, width)
    x = torch.gather(x, 2, index)
    index = cols[:, None, None, :].expand(batch, channels, size, size)
    return torch.gather(x, 3, index)


@dataclass
class DihedralParams:
    """Per-sample random choices of one batch (CPU tensors of length B)."""

    top: torch.Tensor  # int64 crop offsets
    left: torch.Tensor
    transform: torch.Tensor  # int64 dihedral index in 0..7

    def select(self, rows: torch.Tensor | slice) -> "DihedralParams":
        return DihedralParams(self.top[rows], self.left[rows], self.transform[rows])


@dataclass
class DihedralAugmentation:
    """``aug(x, generator)`` on a float batch [B, C, H, W]: a random ``crop x crop`` window
    (None = no crop) then one of the 8 dihedral transforms, uniformly (``dihedral=True``).
    Channels are transformed together, so stack input and target along C to keep them
    aligned."""

    crop: Optional[int] = None
    dihedral: bool = True

    def __post_init__(self) -> None:
        if self.crop is not None and self.crop < 1:
            raise ValueError(f"crop must be a positive size or None; found {self.crop}")

    @property
    def is_identity(self) -> bool:
        return self.crop is None and not self.dihedral

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return (self.crop, self.crop) if self.crop is not None else (height, width)

    def sample_params(self, batch: int, height: int, width: int, generator: torch.Generator) -> DihedralParams:
        """Draw the choices for ``batch`` samples (always the same draws whatever is enabled)."""
        size = self.crop if self.crop is not None else min(height, width)
        if size > height or size > width:
            raise ValueError(f"crop {size} is larger than the {height}x{width} tiles")
        top = torch.randint(0, height - size + 1, (batch,), generator=generator)
        left = torch.randint(0, width - size + 1, (batch,), generator=generator)
        transform = torch.randint(0, NUM_DIHEDRAL, (batch,), generator=generator)
        if self.crop is None:
            top, left = torch.zeros_like(top), torch.zeros_like(left)
        if not self.dihedral:
            transform = torch.zeros_like(transform)
        return DihedralParams(top, left, transform)

    def apply(self, x: torch.Tensor, params: DihedralParams) -> torch.Tensor:
        if x.dim() != 4 or not x.is_floating_point():
            raise ValueError(
                f"augmentation expects a float batch [B, C, H, W]; found {x.dtype} of shape {tuple(x.shape)}"
            )
        if params.transform.shape[0] != x.shape[0]:
            raise ValueError(
                f"augmentation params are for {params.transform.shape[0]} samples; the batch has {x.shape[0]}"
            )
        if self.crop is not None:
            x = batched_crop(x, params.top, params.left, self.crop)
        if self.dihedral:
            x = batched_dihedral(x, params.transform)
        return x

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        params = self.sample_params(x.shape[0], x.shape[2], x.shape[3], generator)
        return self.apply(x, params)
