"""``cells`` -- a deterministic synthetic segmentation task: cell-like blobs and their masks.

Each image shows 3-12 cells on a dim, unevenly lit background, in the spirit of the
microscopy images U-Net was made for (Ronneberger et al. 2015, Fig. 2):

* **cells** -- ellipses (semi-axes 5-13 % of the side, aspect 0.6-1, any orientation) whose
  outline wobbles (two low harmonics), so no two are alike; four in ten are placed against
  the previous one, so cells touch and overlap (the later one in front);
* **appearance** -- per-cell brightness at least 0.15 above the background, a textured
  cytoplasm (random grating), a nucleus of its own brightness, a darker rim; then a 3x3
  blur, up to three unlabelled debris specks, and Gaussian noise (sigma 0.02-0.08);
* **masks** -- class 0 background, 1 cell; with ``boundary=True`` a class 2 marks the
  one-pixel outline of every cell, so that touching cells are separated (the paper's
  motivation for its border weighting, Eq. 2).

Images are uint8 ``[N, C, H, W]`` (C copies of the grey image with per-channel gains),
masks int64 ``[N, H, W]``. Generation is a pure function of (seed, split, index): images
come in fixed chunks of 64, each from its own random stream, so the first N images of a
split are the same whatever the number asked, and the splits are independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .dataset import ImageDataset, Stats, channel_stats
from .synthetic import _generator, _uniform

CLASSES = ("background", "cell", "boundary")
CHUNK = 64
MAX_CELLS = 12
MAX_AXIS = 0.13  # largest semi-axis, as a fraction of the side
WOBBLE = (0.08, 0.05)  # amplitudes of the outline's 3rd and 5th harmonics


@dataclass
class SegmentationDataset:
    """A whole segmentation split in memory: uint8 images ``[N, C, H, W]``, int64 masks
    ``[N, H, W]`` with values in ``range(len(classes))``, and the per-channel mean/std (in
    [0, 1] units) of the training split, as :class:`~skiplab.data.ImageDataset`."""

    images: torch.Tensor
    masks: torch.Tensor
    classes: list[str]
    mean: Stats
    std: Stats
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W]; found "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        n, c, h, w = self.images.shape
        if self.masks.dtype != torch.int64 or tuple(self.masks.shape) != (n, h, w):
            raise ValueError(
                f"masks must be int64 [{n}, {h}, {w}] (one label per pixel); found "
                f"{self.masks.dtype} of shape {tuple(self.masks.shape)}"
            )
        if len(self.mean) != c or len(self.std) != c:
            raise ValueError(f"mean/std need {c} values (one per channel); found {len(self.mean)} and {len(self.std)}")
        low, high = (int(self.masks.min()), int(self.masks.max())) if self.masks.numel() else (0, 0)
        if not 0 <= low <= high < len(self.classes):
            raise ValueError(f"mask labels must lie in [0, {len(self.classes)}); found [{low}, {high}]")

    # the image-side accessors are ImageDataset's own (they read images and classes only)
    __len__ = ImageDataset.__len__
    num_classes = ImageDataset.num_classes
    in_chans = ImageDataset.in_chans
    image_size = ImageDataset.image_size

    def class_pixel_counts(self) -> list[int]:
        """Pixels of each class over the whole split (for class weights)."""
        return torch.bincount(self.masks.flatten(), minlength=self.num_classes).tolist()

    def subset(self, indices: torch.Tensor, name: Optional[str] = None) -> "SegmentationDataset":
        return SegmentationDataset(
            self.images[indices], self.masks[indices], self.classes, self.mean, self.std, name or self.name
        )

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return f"SegmentationDataset({self.name!r}, {len(self)} images {c}x{h}x{w}, classes={self.classes})"


def _cell_parameters(n: int, size: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every random draw of the cells of ``n`` images, each ``[n, MAX_CELLS]``."""
    k = MAX_CELLS

    def draw(low: float, high: float) -> torch.Tensor:
        return _uniform(n * k, low, high, g).view(n, k)

    p = dict(
        present=torch.arange(k).view(1, k) < torch.randint(3, k + 1, (n, 1), generator=g),
        a=draw(0.05, MAX_AXIS) * size,
        aspect=draw(0.6, 1.0),
        angle=draw(0, math.pi),
        cx=draw(0.08, 0.92) * size,
        cy=draw(0.08, 0.92) * size,
        attach=draw(0, 1) < 0.4,
        direction=draw(0, 2 * math.pi),
        gap=draw(0.75, 1.0),
        phase3=draw(0, 2 * math.pi),
        phase5=draw(0, 2 * math.pi),
        level=draw(0.15, 0.6),
        fx=draw(0.3, 1.2),
        fy=draw(0.3, 1.2),
        sx=draw(0, 2 * math.pi),
        sy=draw(0, 2 * math.pi),
        nucleus_shift=draw(-0.2, 0.2),
        nucleus_gain=draw(0.7, 1.3),
    )
    p["b"] = p["a"] * p["aspect"]
    # four cells in ten are pushed against the previous one: touching and overlapping cells
    for j in range(1, k):
        dist = (p["a"][:, j - 1] + p["a"][:, j]) * p["gap"][:, j]
        for centre, trig in (("cx", torch.cos), ("cy", torch.sin)):
            moved = p[centre][:, j - 1] + dist * trig(p["direction"][:, j])
            p[centre][:, j] = torch.where(p["attach"][:, j], moved, p[centre][:, j])
    return p


def _window(centre: torch.Tensor, size: int, width: int) -> torch.Tensor:
    """Pixel indices ``[n, width]`` of a window around each ``centre``, kept inside the image."""
    start = (centre - width / 2).round().clamp(0, size - width).long()
    return start.unsqueeze(1) + torch.arange(width)


def _draw_cell(
    p: dict[str, torch.Tensor], j: int, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inside, value) of cell ``j`` on its window ``rows x cols``, each ``[n, h, w]``."""

    def cell(name: str) -> torch.Tensor:
        return p[name][:, j].view(-1, 1, 1)

    y, x = rows.unsqueeze(2) + 0.5, cols.unsqueeze(1) + 0.5
    dx, dy = x - cell("cx"), y - cell("cy")
    cos, sin = cell("angle").cos(), cell("angle").sin()
    u, v = (dx * cos + dy * sin) / cell("a"), (dy * cos - dx * sin) / cell("b")
    rho = torch.sqrt(u * u + v * v)
    # a wobbling outline: rho < 1 + 0.08 sin(3 theta + phi3) + 0.05 sin(5 theta + phi5), with
    # cos/sin(n theta) as polynomials of c = cos(theta) = u / rho, s = sin(theta) = v / rho
    c, s = u / rho.clamp_min(1e-6), v / rho.clamp_min(1e-6)
    c2, s2 = c * c, s * s
    sin3, cos3 = s * (3 - 4 * s2), c * (4 * c2 - 3)
    sin5, cos5 = s * (16 * s2 * s2 - 20 * s2 + 5), c * (16 * c2 * c2 - 20 * c2 + 5)
    outline = (
        1
        + WOBBLE[0] * (sin3 * cell("phase3").cos() + cos3 * cell("phase3").sin())
        + WOBBLE[1] * (sin5 * cell("phase5").cos() + cos5 * cell("phase5").sin())
    )
    inside = (rho < outline) & cell("present")
    texture = 1 + 0.12 * torch.sin(x * cell("fx") + cell("sx")) * torch.sin(y * cell("fy") + cell("sy"))
    nu = u - cell("nucleus_shift")
    nucleus = torch.where(nu * nu + v * v < 0.45**2, cell("nucleus_gain"), 1.0)
    rim = 1 - 0.3 * (rho / outline).clamp(max=1) ** 4
    return inside, cell("level") * texture * nucleus * rim


def _render_cells(n: int, size: int, in_chans: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Float images [n, C, size, size] in [0, 1] and instance maps [n, size, size] (0 = none).
    Each cell is drawn on a window just larger than the biggest cell, not the whole image."""
    p = _cell_parameters(n, size, g)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    background = _uniform(n, 0.05, 0.35, g).view(n, 1, 1)
    tilt = _uniform(n, 0, 2 * math.pi, g).view(n, 1, 1)
    slope = _uniform(n, -0.1, 0.1, g).view(n, 1, 1)
    image = background + slope * ((x[0] - size / 2) * tilt.cos() + (y[0] - size / 2) * tilt.sin()) / size
    p["level"] = p["level"] + background.view(n, 1)
    instances = torch.zeros(n, size, size, dtype=torch.int64)
    width = min(size, 2 * math.ceil(MAX_AXIS * (1 + sum(WOBBLE)) * size) + 3)
    batch = torch.arange(n).view(n, 1, 1)
    for j in range(MAX_CELLS):  # later cells in front
        rows, cols = _window(p["cy"][:, j], size, width), _window(p["cx"][:, j], size, width)
        index = (batch, rows.unsqueeze(2), cols.unsqueeze(1))
        inside, value = _draw_cell(p, j, rows, cols)
        instances[index] = torch.where(inside, j + 1, instances[index])
        image[index] = torch.where(inside, value, image[index])

    image = F.avg_pool2d(F.pad(image.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    for _ in range(3):  # unlabelled debris specks, each present two times in three
        sx, sy = (_uniform(n, 0, size, g).view(n, 1, 1, 1) for _ in range(2))
        radius = _uniform(n, 0.8, 2.0, g).view(n, 1, 1, 1)
        speck = ((x - sx) ** 2 + (y - sy) ** 2 < radius**2) & (torch.rand(n, 1, 1, 1, generator=g) < 2 / 3)
        image = torch.where(speck, _uniform(n, 0.0, 1.0, g).view(n, 1, 1, 1), image)
    gains = _uniform(n * in_chans, 0.8, 1.2, g).view(n, in_chans, 1, 1) if in_chans > 1 else 1.0
    sigma = _uniform(n, 0.02, 0.08, g).view(n, 1, 1, 1)
    image = image * gains + torch.randn(n, in_chans, size, size, generator=g) * sigma
    return image.clamp(0, 1), instances


def instance_boundaries(instances: torch.Tensor) -> torch.Tensor:
    """Pixels of an instance ``[N, H, W]`` (> 0) with a differently labelled 8-neighbour
    (another cell or the background; the image border does not count)."""
    inst = instances.unsqueeze(1).float()
    highest = F.max_pool2d(inst, 3, stride=1, padding=1)
    lowest = -F.max_pool2d(-inst, 3, stride=1, padding=1)
    return (((highest != inst) | (lowest != inst)) & (inst > 0)).squeeze(1)


def generate_cells(
    num: int, size: int = 64, seed: int = 0, split: str = "train", boundary: bool = False, in_chans: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` images uint8 ``[num, in_chans, size, size]`` and masks int64 ``[num, size, size]``:
    0 background, 1 cell, and with ``boundary`` 2 the cells' outlines."""
    if num <= 0:
        raise ValueError(f"number of synthetic cell images must be positive; found {num}")
    if size < 16:
        raise ValueError(f"cell images must be at least 16x16 pixels; found size={size}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1; found {in_chans}")
    images = torch.empty(num, in_chans, size, size, dtype=torch.uint8)
    masks = torch.empty(num, size, size, dtype=torch.int64)
    for index, start in enumerate(range(0, num, CHUNK)):
        n = min(CHUNK, num - start)
        g = _generator(seed, f"cells:{split}:{size}:{in_chans}:{index}")
        image, instances = _render_cells(CHUNK, size, in_chans, g)
        mask = (instances > 0).long()
        if boundary:
            mask[instance_boundaries(instances)] = 2
        images[start : start + n] = (image[:n] * 255).round().to(torch.uint8)
        masks[start : start + n] = mask[:n]
    return images, masks


def cells_splits(
    train: int = 1000,
    val: int = 200,
    test: int = 200,
    size: int = 64,
    seed: int = 0,
    boundary: bool = False,
    in_chans: int = 1,
) -> dict[str, SegmentationDataset]:
    """The ``cells`` task's splits (``val=0`` or ``test=0`` leaves that split out), each from
    its own stream; mean/std are those of the training split."""
    classes = list(CLASSES[: 3 if boundary else 2])
    sizes = {"train": train, "val": val, "test": test}
    parts = {
        name: generate_cells(num, size, seed, name, boundary, in_chans)
        for name, num in sizes.items()
        if num > 0 or name == "train"
    }
    mean, std = channel_stats(parts["train"][0])
    return {
        name: SegmentationDataset(images, masks, classes, mean, std, f"cells-{size}/{name}")
        for name, (images, masks) in parts.items()
    }
