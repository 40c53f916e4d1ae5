"""The ``reconstruct`` task (registered with :func:`skiplab.train.register_task` when
:mod:`skiplab.sar` is imported): SAR tiles -> the same tiles through an autoencoder, and its
meter (mean loss, PSNR and SSIM per image).

A reconstruct checkpoint also holds the SAR ``radiometry`` (``Radiometry.to_dict()``: the
mapping back to physical units), ``looks``, ``tile_size`` and the model's ``compression``
figures (latent shape, compression ratio, bits per pixel at the tile size).
"""

from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, ContextManager

import torch
from torch import nn

from ...models.autoencoder import Autoencoder
from ...train.config import TrainConfig
from ...train.meters import Meter
from ...train.tasks import Task, register_task
from ..codec.model import QuantizedAutoencoder
from .load import load_sar
from .losses import WeightedLoss, build_loss
from .metrics import psnr, ssim_per_image
from ..raster.radiometry import Radiometry
from .tiles import SARAugmentation, SARTileLoader

if TYPE_CHECKING:  # the loop imports the tasks: its type for hints only
    from ...train.loop import Trainer


class ReconstructionMeter(Meter):
    """Mean loss, PSNR and SSIM per image (normalised domain, data range 1).

    A loss with a ``rate`` term takes the codec's rate of the batch, which :meth:`predict` asks
    the codec for (``model(x, with_rate=True)``) and keeps for the :meth:`update` that follows;
    with test-time flips, the mean of the image's and its mirror's rate. A model that has no
    prior to give a rate (an exported graph of a codec) is scored on the other terms (rate 0)."""

    dense = True

    def __init__(self, criterion: WeightedLoss) -> None:
        super().__init__()
        self.criterion, self.psnr_sum, self.ssim_sum = criterion, 0.0, 0.0
        self.rates: list[torch.Tensor] = []  # of the batch the next update scores

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if not (self.criterion.needs_rate and isinstance(model, QuantizedAutoencoder)):
            return model(x)
        output, rate = model(x, with_rate=True)
        self.rates.append(rate.float())
        return output

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        rate = None
        if self.criterion.needs_rate:
            rates, self.rates = self.rates, []
            rate = torch.stack(rates).mean(0) if rates else output.new_zeros(len(output))
        self.loss_sum += self.criterion(output, target, rate).item() * len(target)
        self.psnr_sum += psnr(output, target).sum().item()
        self.ssim_sum += ssim_per_image(output, target).sum().item()
        self.count += len(target)

    def scores(self) -> dict:
        return {"psnr": self.psnr_sum / self.count, "ssim": self.ssim_sum / self.count}


@register_task("reconstruct")
class ReconstructTask(Task):
    """Tiles -> the same tiles through an autoencoder: ``loss`` terms of
    :func:`skiplab.sar.training.losses.build_loss` on normalised log-intensity; PSNR and SSIM.
    Augmentation: the 8 dihedral transforms (``flip``), which keep speckle statistics."""

    default_best = "val_loss"
    metrics = ("loss", "psnr", "ssim")
    examples = "sar:PATH, synthetic-sar"
    default_tile = 256

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        if self.best_metric == "train_ssim":
            raise ValueError("best_metric train_ssim is not measured (SSIM is a val metric)")

    @property
    def tile_size(self) -> int:
        return self.config.tile_size or self.default_tile

    def load(self, split: str, *, like: Any = None) -> Any:
        c = self.config
        return load_sar(
            c.data,
            split,
            val_size=c.val_size,
            seed=c.seed,
            tile=self.tile_size,
            stride=c.tile_stride,
            skip_bad=c.skip_bad,
            radiometry=None if like is None else like.radiometry,
        )

    def data_reference(self, checkpoint: dict) -> Any:
        """The radiometry the checkpoint's model was trained with, for :meth:`load`."""
        if "radiometry" not in checkpoint:
            return None
        return SimpleNamespace(radiometry=Radiometry.from_dict(checkpoint["radiometry"]))

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        c = self.config
        augment = SARAugmentation(dihedral=True) if train and c.flip else None
        return SARTileLoader(
            dataset,
            batch_size,
            augment=augment,
            shuffle=train,
            drop_last=train,
            seed=c.seed,
            device=device,
            channels_last=c.channels_last,
            rank=rank,
            world_size=world_size,
        )

    def model_kwargs(self, dataset: Any) -> dict:
        return {"in_chans": dataset.in_chans}

    def image_size(self, dataset: Any) -> int:
        return dataset.tile_size

    def check_model_class(self, name, cls):
        if not (isinstance(cls, type) and issubclass(cls, Autoencoder)):
            raise ValueError(
                f"task 'reconstruct' needs an autoencoder (sar_ae, sar_ae_plain, "
                f"sar_ae_bottleneck, sar_ae_all, sar_ae_bottleneck_cbam, "
                f"sar_codec_*); "
                f"{name} is a {getattr(cls, '__name__', cls)}"
            )

    def create_model(self, dataset, name=None, kwargs=None):
        model = super().create_model(dataset, name, kwargs)
        model.latent_shape(dataset.tile_size)  # the tile must be a multiple of its stride
        rate = (self.config.loss or {}).get("rate", 0)
        if rate and not isinstance(model, QuantizedAutoencoder):
            raise ValueError(
                f"loss term 'rate' needs a codec model with a quantiser and a prior "
                f"(sar_codec_*); {name or self.config.model} has none"
            )
        return model

    def default_loss(self) -> dict:
        """``{l1: 1.0, ms_ssim: 0.2}``, MS-SSIM with as many scales as the tile allows
        (5 at 256 px, 3 at 64 px: an 11 px window at the coarsest scale)."""
        scales = min(5, 1 + int(math.log2((self.tile_size - 1) / 10)))
        return {"l1": 1.0, "ms_ssim": {"weight": 0.2, "scales": scales}}

    def criterion(self, dataset: Any) -> nn.Module:
        terms = self.config.loss or self.default_loss()
        loss = build_loss(terms, radiometry=dataset.radiometry, looks=dataset.looks)
        tile = torch.full((1, 1, dataset.tile_size, dataset.tile_size), 0.5)
        try:  # fail now, not at the first step, on a term the tiles cannot take
            loss(tile, tile, torch.zeros(1))
        except ValueError as err:
            raise ValueError(
                f"loss {terms} on {dataset.tile_size} px tiles: {err} (e.g. ms_ssim: {self.default_loss()['ms_ssim']})"
            ) from None
        return loss

    def forward(
        self, model: nn.Module, batch: Any, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> dict:
        """The tiles through the autoencoder under ``autocast``, the loss terms on its float32
        output: a codec trained with a ``rate`` term returns its rate with the reconstruction
        (``model(x, with_rate=True)``), which goes to that term. ``terms``: every loss term
        before its weight (a ``train_<term>`` column each when there are several)."""
        x, target = batch
        criterion = self.train_criterion
        with autocast():
            output = model(x, with_rate=True) if criterion.needs_rate else model(x)
        output, rate = output if criterion.needs_rate else (output, None)
        terms = criterion.unweighted(output.float(), target, rate)
        return {"loss": criterion.total(terms), "terms": terms, "output": output, "target": target}

    def num_sums(self, dataset):
        return 3

    def batch_sums(self, output, target, loss):  # [loss x n, PSNR sum, n]
        n = float(len(target))
        return torch.stack([loss.float() * n, psnr(output.detach(), target).sum(), torch.tensor(n, device=loss.device)])

    def train_metrics(self, sums):
        return {"train_loss": sums[0] / sums[-1], "train_psnr": sums[1] / sums[-1]}

    def meter(self, dataset: Any) -> Meter:
        return ReconstructionMeter(self.criterion(dataset))

    def checkpoint_extras(self, trainer: "Trainer") -> dict:
        data, model, tile = trainer.train_set, trainer.model, trainer.train_set.tile_size
        return {
            "radiometry": data.radiometry.to_dict(),
            "looks": data.looks,
            "tile_size": tile,
            "compression": {
                "latent_shape": list(model.latent_shape(tile)),
                "compression_ratio": model.compression_ratio(tile),
                "bits_per_pixel": model.bits_per_pixel(tile),
                **(
                    {"latent_bits": model.eval_bits, "train_bits": list(model.train_bits)}
                    if isinstance(model, QuantizedAutoencoder)
                    else {}
                ),
            },
        }
