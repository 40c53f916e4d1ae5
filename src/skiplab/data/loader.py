"""BatchLoader: deterministic, sharded, resumable batches from an in-memory dataset.

- The sample order of epoch e is a permutation seeded by (seed, e) -- nothing else.
- With ``world_size > 1`` rank r takes positions ``r, r + W, r + 2W, ...`` of that order
  (``batch_size`` is per rank), so rank batches are disjoint, cover the epoch, and the union
  of the W ranks' batch i is exactly batch i of a single process with batch ``W * batch_size``.
  Every rank gets the same number of batches (``drop_last`` drops the tail; otherwise the
  order is padded by wrapping around, as torch's DistributedSampler does).
- Augmentation randomness of batch i of epoch e comes from a generator seeded by
  (seed, e, i); it is drawn for the global batch and sliced per rank, so DDP and a single
  process see the same crops and flips. Resuming therefore needs no RNG state:
  ``state_dict()`` is ``{"epoch", "batch"}`` (the next batch to yield).

Batches are gathered as uint8, moved to ``device``, converted to float, normalised with the
dataset's mean/std, then augmented there.
"""

from __future__ import annotations

import hashlib
import math
from typing import Iterator, Optional

import torch

from .augment import Augmentation, normalize
from .dataset import ImageDataset


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class BatchLoader:
    """Iterate ``(x, y)``: x float32 normalised [B, C, H, W] on ``device``, y int64."""

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        augment: Optional[Augmentation] = None,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive; found {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size; found rank={rank}, world_size={world_size}")
        if len(dataset) < world_size:
            raise ValueError(f"dataset of {len(dataset)} samples cannot be sharded over {world_size} ranks")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed = int(seed)
        self.augment = augment
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.rank, self.world_size = rank, world_size
        per_rank = len(dataset) // world_size if drop_last else math.ceil(len(dataset) / world_size)
        self.samples_per_rank = per_rank
        self.num_batches = per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)
        if self.num_batches == 0:
            raise ValueError(
                f"{len(dataset)} samples over {world_size} rank(s) give no full "
                f"batch of {batch_size} with drop_last=True"
            )
        self.epoch = 0
        self._next_batch = 0
        self._mean, self._std = dataset.mean, dataset.std
        self._flip_half: Optional[torch.Tensor] = None  # built on first use

    def __len__(self) -> int:
        return self.num_batches

    # ---- order -------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Indices of the whole epoch for ALL ranks (length ``world_size * samples_per_rank``)."""
        n = len(self.dataset)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed("order", self.seed, epoch)))
        else:
            order = torch.arange(n)
        total = self.world_size * self.samples_per_rank
        if total > n:  # pad by wrapping around so every rank has the same count
            order = torch.cat([order, order[: total - n]])
        return order[:total]

    def rank_order(self, epoch: int) -> torch.Tensor:
        """This rank's indices of ``epoch``, in the order its batches are cut."""
        return self.epoch_order(epoch)[self.rank :: self.world_size]

    # ---- epochs and resume -----------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select ``epoch``. If it differs from the current epoch, or the current epoch has
        been fully iterated, the next iteration starts at batch 0; otherwise (right after
        :meth:`load_state_dict`) it continues at the saved batch."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; found {epoch}")
        if epoch != self.epoch or self._next_batch >= self.num_batches:
            self.epoch, self._next_batch = int(epoch), 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self._next_batch}

    def load_state_dict(self, state: dict) -> None:
        try:
            epoch, batch = int(state["epoch"]), int(state["batch"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"loader state must be {{'epoch': int, 'batch': int}}; found {state!r}") from None
        if epoch < 0 or not 0 <= batch <= self.num_batches:
            raise ValueError(
                f"loader state out of range: epoch {epoch}, batch {batch} "
                f"(this loader has {self.num_batches} batches per epoch)"
            )
        self.epoch, self._next_batch = epoch, batch

    @property
    def flip_half(self) -> torch.Tensor:
        """Alternating flips (airbench): sample i is mirrored in even epochs iff this bool is
        set, and in odd epochs iff not, so every image is seen both ways every two epochs."""
        if self._flip_half is None:
            generator = torch.Generator().manual_seed(_seed("flip", self.seed))
            self._flip_half = torch.rand(len(self.dataset), generator=generator) < 0.5
        return self._flip_half

    # ---- batches ---------------------------------------------------------------------------
    def batch_generator(self, epoch: int, batch: int) -> torch.Generator:
        """The CPU generator that drives augmentation of batch ``batch`` of ``epoch``."""
        return torch.Generator().manual_seed(_seed("augment", self.seed, epoch, batch))

    def make_batch(self, indices: torch.Tensor, epoch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``batch`` of ``epoch``: the dataset's ``indices`` (this rank's share) on the
        device, normalised and augmented with :meth:`batch_generator` ``(epoch, batch)``.
        The hook that loaders of other data override (SAR tiles, segmentation masks);
        iteration, sharding and resume stay here."""
        images = self.dataset.images[indices]
        labels = self.dataset.labels[indices]
        non_blocking = self.device.type == "cuda"
        if non_blocking:
            images, labels = images.pin_memory(), labels.pin_memory()
        x = images.to(self.device, non_blocking=non_blocking).float().div_(255)
        x = normalize(x, self._mean, self._std)
        augment = self.augment.for_epoch(epoch) if self.augment is not None else None
        if augment is not None and not augment.is_identity:
            _, _, height, width = x.shape
            params = augment.sample_params(
                len(indices) * self.world_size, height, width, self.batch_generator(epoch, batch)
            )
            params = params.select(slice(self.rank, None, self.world_size))
            if augment.flip and augment.alternate_flip:
                params.flip = self.flip_half[indices] ^ bool(epoch % 2)
            x = augment.apply(x, params)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, labels.to(self.device, non_blocking=non_blocking)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._next_batch >= self.num_batches:  # a finished epoch: go on to the next one
            self.epoch, self._next_batch = self.epoch + 1, 0
        epoch = self.epoch
        order = self.rank_order(epoch)
        bs = self.batch_size
        while self._next_batch < self.num_batches and self.epoch == epoch:
            i = self._next_batch
            batch = self.make_batch(order[i * bs : (i + 1) * bs], epoch, i)
            self._next_batch = i + 1
            yield batch

    def __repr__(self) -> str:
        return (
            f"BatchLoader({self.dataset.name!r}, batch_size={self.batch_size}, "
            f"batches={self.num_batches}, rank={self.rank}/{self.world_size}, "
            f"epoch={self.epoch})"
        )
