"""In-memory image classification datasets: uint8 images, int64 labels, class names and the
per-channel statistics of the training split, plus the deterministic train/val split."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

Stats = tuple[float, ...]


@dataclass
class ImageDataset:
    """A whole split held in memory.

    ``images`` is uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]`` in ``range(len(classes))``.
    ``mean``/``std`` are per-channel, in [0, 1] units, of the TRAIN split the model is trained
    on (so train, val and test of one run normalise identically). ``skipped`` counts images
    that could not be decoded and were left out (``skip_bad=True``); ``skipped_files`` names them.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: Stats
    std: Stats
    name: str
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor [N, C, H, W]; found "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [{self.images.shape[0]}]; found "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean/std need {channels} values (one per channel); found {len(self.mean)} and {len(self.std)}"
            )
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}); found "
                f"[{int(self.labels.min())}, {int(self.labels.max())}]"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: torch.Tensor, name: str | None = None) -> "ImageDataset":
        """The samples at ``indices`` (same classes and statistics)."""
        return ImageDataset(
            self.images[indices],
            self.labels[indices],
            self.classes,
            self.mean,
            self.std,
            name or self.name,
            self.skipped,
            self.skipped_files,
        )

    def random_subset(self, n: int, seed: int, tag: str = "subset") -> "ImageDataset":
        """A fixed random subset of ``n`` samples (a permutation seeded with ``seed``; image
        folders are sorted by class, so the first ``n`` would not do), named ``name[tag n]``."""
        if not 0 < n <= len(self):
            raise ValueError(f"a subset needs between 1 and the {len(self)} images of {self.name}; got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return self.subset(idx, f"{self.name}[{tag} {n}]")

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        return (
            f"ImageDataset({self.name!r}, {len(self)} images {c}x{h}x{w}, "
            f"{self.num_classes} classes, skipped={self.skipped})"
        )


@dataclass
class RawData:
    """What a source (CIFAR files, an image folder, a generator) provides before splitting:
    the stored train and test splits as (uint8 images, int64 labels), and per split the
    files left out by ``skip_bad``. ``train_hist`` is the per-channel histogram of the whole
    train split (:func:`channel_histogram`) when the source has it cached."""

    name: str
    classes: list[str]
    train: tuple[torch.Tensor, torch.Tensor]
    test: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    skipped_files: dict[str, list[str]] = field(default_factory=dict)  # "train"/"test" -> files
    train_hist: Optional[torch.Tensor] = None


def channel_histogram(images: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Per-channel histogram of uint8 images ``[N, C, H, W]``: int64 ``[C, 256]``. Exact
    statistics of any subset follow from histograms (and differences of them)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"need a non-empty uint8 [N, C, H, W] image tensor; found {images.dtype} of shape {tuple(images.shape)}"
        )
    channels = images.shape[1]
    hist = torch.zeros(channels, 256, dtype=torch.int64)
    for start in range(0, images.shape[0], chunk):
        part = images[start : start + chunk]
        for c in range(channels):
            hist[c] += torch.bincount(part[:, c].reshape(-1), minlength=256)
    return hist


def stats_from_histogram(hist: torch.Tensor) -> tuple[Stats, Stats]:
    """Per-channel mean and population std in [0, 1] units from a ``[C, 256]`` histogram."""
    values = torch.arange(256, dtype=torch.float64) / 255
    count = hist.sum(1).double()
    if bool((count == 0).any()):
        raise ValueError("cannot take statistics of an empty set of images")
    mean = (hist.double() * values).sum(1) / count
    var = (hist.double() * values.square()).sum(1) / count - mean.square()
    return tuple(mean.tolist()), tuple(var.clamp_min(0).sqrt().tolist())


def channel_stats(images: torch.Tensor) -> tuple[Stats, Stats]:
    """Per-channel mean and (population) std of uint8 images ``[N, C, H, W]``, in [0, 1]
    units, computed exactly from integer histograms."""
    return stats_from_histogram(channel_histogram(images))


def split_indices(labels: torch.Tensor, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic, class-stratified train/val split of ``range(len(labels))``.

    A permutation seeded with ``seed`` orders the samples; each sample's key is its rank
    within its class (in that order) divided by the class size, and the ``val_size``
    smallest keys form the validation split -- so every class gives its share (500 of each
    CIFAR-10 class for the 45k/5k split of He et al. 2015) and the choice within a class is
    random. Both index tensors are sorted, so the data keeps its stored order."""
    n = len(labels)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}) for a training split of {n} images; found {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).numpy()
    shuffled = labels.numpy()[perm]  # numpy: single-threaded sorts of 50k are faster here
    by_class = np.argsort(shuffled, kind="stable")
    counts = np.bincount(shuffled)
    starts = np.cumsum(counts) - counts
    rank = np.empty(n, dtype=np.float64)
    rank[by_class] = np.arange(n) - starts[shuffled[by_class]]
    key = (rank + 0.5) / counts[shuffled]
    order = perm[np.argsort(key, kind="stable")]
    return torch.from_numpy(np.sort(order[val_size:])), torch.from_numpy(np.sort(order[:val_size]))
