"""The ``compress`` task (registered with :func:`skiplab.train.register_task` when
:mod:`skiplab.sar` is imported): train a hyperprior codec (:mod:`skiplab.sar.codec.hyperprior`)
for the rate-distortion Lagrangian of Ballé et al. (ICLR 2018, eq. 4)

    loss = R + lambda * 255^2 * MSE(x, x^)      R = -(log2 P(y^|z^) + log2 P(z^)) / pixels

(CompressAI's ``RateDistortionLoss``; ``lambda`` is the model's ``lmbda`` keyword, so the
checkpoint says which trade-off it holds). A variable-rate model (``lmbdas: [...]``) draws a
level per image and each image's terms are weighed with its level's lambda (the loss is the
mean over images of R_i + lambda_i * 255^2 * MSE_i, which for one lambda is the formula above). :meth:`CompressTask.forward` returns the terms
``rate`` (bits per pixel) and ``distortion`` (MSE) in its dict, like every task.

Data: ``sar:PATH`` -- every raster under PATH normalised *per scene* as the codec codes a
scene (:func:`skiplab.sar.raster.scene_radiometry.scene_radiometry`: 0.5-99.5 % of its
log-intensity to [0, 1]) and cut into 128 px tiles every 32 px (:data:`TILE`, :data:`STRIDE`); the
"test" split is PATH/test when PATH has train/ and test/ folders (a held-out site), else
the non-overlapping tiles of the same scenes. Augmentation: the 8 dihedral transforms.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager

import numpy as np
import torch
from torch import nn

from ...data import parse_data_spec
from ...train.meters import Meter
from ...train.tasks import register_task
from ..codec.hyperprior import HyperpriorCodec
from ..raster.io import read_raster
from ..raster.radiometry import Radiometry
from ..raster.scene_radiometry import scene_radiometry
from .metrics import psnr
from .task import ReconstructTask
from .tiles import SARTileDataset, cut_tiles, list_rasters

#: the reference mapping whose bounds each scene replaces (only its percentiles matter)
REFERENCE = Radiometry.fixed(-100.0, 0.0)
#: training tiles and the step between them (the tile options belong to other tasks)
TILE, STRIDE = 128, 32
#: CompressAI's scale of lambda: the MSE of 8-bit images
MSE_SCALE = 255.0**2


def rate_bpp(likelihoods: dict, pixels: int) -> torch.Tensor:
    """Bits per pixel of a batch: the summed -log2 likelihoods over the batch's pixels."""
    return sum(-torch.log2(lik).sum() for lik in likelihoods.values()) / pixels


def image_terms(output: dict, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits per pixel and MSE of each image of a batch ([B] each)."""
    pixels = target[0].numel()
    bits = sum(-torch.log2(lik).flatten(1).sum(1) for lik in output["likelihoods"].values())
    mse = (output["x_hat"].float() - target).pow(2).flatten(1).mean(1)
    return bits / pixels, mse


def normalised_scene(path) -> tuple[np.ndarray, Radiometry]:
    """A raster's intensity in the codec's domain: per-scene normalised log-intensity."""
    data = np.asarray(read_raster(path).values("intensity"), dtype=np.float64)
    radiometry = scene_radiometry(REFERENCE, data)
    return radiometry.forward(data).astype(np.float32), radiometry


def scene_tiles(source, tile: int, stride: int, name: str) -> SARTileDataset:
    """Per-scene normalised tiles of every raster in ``source``."""
    tiles, sources, positions = [], [], []
    for path in list_rasters(source):
        n, _ = normalised_scene(path)
        cut = cut_tiles(n, tile, stride, name=path.name)
        tiles.append(cut.tiles)
        sources += [path.name] * len(cut.tiles)
        positions += list(cut.positions)
    stacked = torch.from_numpy(np.concatenate(tiles)[:, None].astype(np.float32))
    return SARTileDataset(stacked, REFERENCE, name, sources=sources, positions=positions)


class RateDistortionMeter(Meter):
    """Mean loss, bits per pixel (estimated from the likelihoods) and PSNR per image."""

    dense = True

    def __init__(self) -> None:
        super().__init__()
        self.bpp_sum, self.psnr_sum = 0.0, 0.0

    def update(self, output: dict, target: torch.Tensor) -> None:
        x_hat = output["x_hat"].float().clamp(0, 1)
        bpp, mse = image_terms({**output, "x_hat": x_hat}, target)
        lmbda = output["lmbda"].double()  # each image's own trade-off (its level's)
        self.loss_sum += float((bpp.double() + lmbda * MSE_SCALE * mse.double()).sum())
        self.bpp_sum += float(bpp.sum())
        self.psnr_sum += psnr(x_hat, target).sum().item()
        self.count += len(target)

    def scores(self) -> dict:
        return {"bpp": self.bpp_sum / self.count, "psnr": self.psnr_sum / self.count}


@register_task("compress")
class CompressTask(ReconstructTask):
    """SAR tiles -> a hyperprior codec trained for R + lambda D (see the module)."""

    metrics = ("loss", "bpp", "psnr")
    examples = "sar:PATH"
    default_tile = TILE

    def check_data(self, spec: str) -> None:
        if parse_data_spec(spec).kind != "sar":
            raise ValueError(f"task 'compress' trains on SAR rasters (sar:PATH), not {spec!r}")

    def load(self, split: str, *, like: Any = None) -> Any:
        path = parse_data_spec(self.config.data).path
        tile = TILE
        held_out = (path / "train").is_dir() and (path / "test").is_dir()
        if split == "train":
            return scene_tiles(path / "train" if held_out else path, tile, STRIDE, f"{path.name}/train")
        return scene_tiles(path / "test" if held_out else path, tile, tile, f"{path.name}/test")

    @property
    def tile_size(self) -> int:
        return TILE

    def check_model_class(self, name, cls):
        if not (isinstance(cls, type) and issubclass(cls, HyperpriorCodec)):
            raise ValueError(
                f"task 'compress' needs a hyperprior codec (sar_hyperprior_*); "
                f"{name} is a {getattr(cls, '__name__', cls)}"
            )

    def create_model(self, dataset, name=None, kwargs=None):
        model = super(ReconstructTask, self).create_model(dataset, name, kwargs)
        model.latent_shape(dataset.tile_size)
        if model.lmbda is None and not model.lmbdas:
            raise ValueError(
                "task 'compress' needs the model's lambda: model_kwargs: {lmbda: 0.002} "
                "(or {lmbdas: [0.001, 0.002, 0.004, 0.008]} for one variable-rate model)"
            )
        return model

    def model_kwargs(self, dataset: Any) -> dict:
        return {"in_chans": 1}

    def forward(
        self, model: nn.Module, batch: Any, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> dict:
        x, target = batch
        with autocast():
            out = model(x)
        x_hat = out["x_hat"].float()
        bpp, mse = image_terms(out, target)
        loss = (bpp + out["lmbda"] * MSE_SCALE * mse).mean()
        terms = {"rate": bpp.mean(), "distortion": mse.mean()}
        return {"loss": loss, "terms": terms, "output": x_hat, "target": target}

    def criterion(self, dataset: Any) -> nn.Module:
        return nn.MSELoss()

    def step_sums(self, out: dict) -> torch.Tensor:
        return self.batch_sums(out["output"], out["target"], out["loss"].detach())

    def meter(self, dataset: Any) -> Meter:
        return RateDistortionMeter()

    def checkpoint_extras(self, trainer) -> dict:
        trainer.model.update()  # the z coding table travels with the weights
        model = trainer.model
        return {
            "radiometry": REFERENCE.to_dict(),
            "tile_size": trainer.train_set.tile_size,
            "codec": {
                "lmbda": model.lmbda,
                "lmbdas": model.lmbdas,
                "transform": model.transform,
                "n": model.n,
                "m": model.m,
                "mean_scale": model.mean_scale,
            },
        }


__all__ = [
    "CompressTask",
    "MSE_SCALE",
    "RateDistortionMeter",
    "image_terms",
    "normalised_scene",
    "rate_bpp",
    "scene_tiles",
]
