"""The calibration images of post-training int8 quantisation (:mod:`skiplab.deploy.quantize`):
N training images, seeded, normalised as in training, or random inputs for a source that
records no data (speed only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .source import ModelSource

#: random calibration inputs of a source without data: they only set speed, more change nothing
MAX_NOISE_INPUTS = 4096


@dataclass
class Calibration:
    """The calibration batches and where they came from."""

    batches: list[torch.Tensor]
    description: str

    @property
    def images(self) -> int:
        return sum(len(b) for b in self.batches)


def calibration_data(
    source: ModelSource, n: int, *, data: Optional[str] = None, batch_size: int = 64, seed: int = 0, cap: bool = False
) -> Calibration:
    """``n`` training images chosen at random (seeded), normalised as in training, from
    ``data`` or the data the checkpoint recorded; standard-normal noise of the input shape
    when the source records no data (a registered model with random weights: fine for
    speed, meaningless for accuracy -- the description says so). More images than the
    training split holds are refused in one line (``cap=True``: all of them are used), more
    than :data:`MAX_NOISE_INPUTS` random inputs always."""
    if n < 1:
        raise ValueError(f"--calib needs at least 1 image; found {n}")
    recorded = dict(source.meta.config)
    if data or recorded.get("data"):
        from ..train.evaluation import evaluation_data

        task, dataset = evaluation_data(
            recorded or {"model": source.meta.model, "task": source.meta.task},
            data,
            "train",
            radiometry=source.meta.radiometry,
            channels_last=False,
        )
        if n > len(dataset) and not cap:
            raise ValueError(
                f"--calib {n}: {dataset.name} has {len(dataset)} training images; pass at most {len(dataset)}"
            )
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(dataset), generator=g)[:n]
        subset = dataset.subset(pick)
        loader = task.loader(subset, batch_size, train=False, device=torch.device("cpu"))
        batches = [x.contiguous() for x, _ in loader]
        return Calibration(batches, f"{len(pick)} images of {dataset.name}")
    if n > MAX_NOISE_INPUTS:
        raise ValueError(
            f"--calib {n}: {source.meta.model} records no data, so it is calibrated "
            f"on random inputs (for speed only), at most {MAX_NOISE_INPUTS}; pass "
            f"--data to calibrate on images"
        )
    batches = [source.example_input(min(batch_size, n - i), seed=seed + i) for i in range(0, n, batch_size)]
    return Calibration(batches, f"{n} standard-normal inputs (no data recorded: speed only)")
