"""What a run learns: a :class:`Task` supplies the data, the loss, the metrics and what the
checkpoint holds beyond weights; the loop (:mod:`skiplab.train.loop`) is the same for all.

============  =========================  ==================  ========================  ==========
task          data (``--data``)          loss                metrics (metrics.csv)     best.pt by
============  =========================  ==================  ========================  ==========
classify      cifar10/100:PATH,          cross-entropy       loss, acc                 val_acc
              folder:PATH, synthetic     (label_smoothing)
segment       synthetic:cells            Dice + CE           loss, acc (pixels),       val_dice
                                         (Milletari 2016)    dice, iou (foreground)
reconstruct   sar:PATH, synthetic-sar    ``loss`` terms      loss, psnr (+ ssim on     val_loss
                                         (sar_losses)        val)
============  =========================  ==================  ========================  ==========

A training step's statistics (:meth:`Task.batch_sums`) are sums over the batch, all-reduced
over processes and added up over the epoch; the first is loss x samples and the last the
number of samples, so the loop reads the mean loss and throughput of any task from them.
Evaluation accumulates the task's :class:`~skiplab.train.meters.Meter` over a loader.

A reconstruct checkpoint also holds the SAR ``radiometry`` (``Radiometry.to_dict()``: the
mapping back to physical units), ``looks``, ``tile_size`` and the model's ``compression``
figures (latent shape, compression ratio, bits per pixel at the tile size).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from ..data import BatchLoader
from .config import TrainConfig
from .meters import (ClassificationMeter, Meter, ReconstructionMeter, SegmentationMeter,
                     segmentation_summary)

if TYPE_CHECKING:
    from .loop import Trainer

DEFAULT_TILE = {"segment": 64, "reconstruct": 256}


class Task:
    """The task-specific parts of a run (see the module documentation)."""

    name = ""                              # also what DataSpec.task says of its data
    default_best = "val_loss"
    metrics: tuple[str, ...] = ("loss",)   # evaluation metrics (val_ prefixed in metrics.csv)
    examples = ""                          # data specs of this task, for error messages

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.best_metric = self.default_best if config.best_metric == "auto" else config.best_metric
        allowed = [f"{p}_{m}" for p in ("val", "train") for m in self.metrics]
        if self.best_metric not in allowed:
            raise ValueError(f"best_metric {self.best_metric!r} is not a {self.name} metric; "
                             f"expected auto or one of {', '.join(allowed)}")
        self.higher_is_better = not self.best_metric.endswith("loss")

    # -- data --------------------------------------------------------------------------------
    def check_data(self, spec: str) -> None:
        from ..data import parse_data_spec
        found = parse_data_spec(spec).task
        if found != self.name:
            raise ValueError(f"task {self.name!r} cannot use {spec!r}: that is {found} data "
                             f"(use task {found!r}, or {self.name} data: {self.examples})")

    def load(self, split: str, *, like: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def loader(self, dataset: Any, batch_size: int, *, train: bool, device: torch.device,
               rank: int = 0, world_size: int = 1) -> BatchLoader:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    # -- model -------------------------------------------------------------------------------
    def create_model(self, dataset: Any, name: Optional[str] = None,
                     kwargs: Optional[dict] = None) -> nn.Module:
        """The registered model ``name`` (default ``config.model`` with ``config.model_kwargs``)
        sized for ``dataset``; a ValueError first if its kind does not fit the task."""
        import typing
        from ..models.registry import create_model, get_model_fn
        name = name or self.config.model
        kwargs = self.config.model_kwargs if kwargs is None else kwargs
        self.check_model_class(name, typing.get_type_hints(get_model_fn(name)).get("return"))
        return create_model(name, **self.model_kwargs(dataset), **kwargs)

    def model_kwargs(self, dataset: Any) -> dict:
        return {"num_classes": dataset.num_classes, "in_chans": dataset.in_chans}

    def check_model_class(self, name: str, cls: Optional[type]) -> None:
        pass

    def image_size(self, dataset: Any) -> int:
        """Side of the training images (decides ``compile: auto``)."""
        return dataset.image_size[-1]

    # -- loss and metrics ----------------------------------------------------------------------
    def criterion(self, dataset: Any) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def num_sums(self, dataset: Any) -> int:
        """Length of :meth:`batch_sums` (the epoch's running sums start as that many zeros)."""
        return 2

    def batch_sums(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor
                   ) -> torch.Tensor:
        """[loss x n, ..., n] of one batch (float32, on the loss's device)."""
        n = float(len(target))
        return torch.stack([loss.float() * n, torch.tensor(n, device=loss.device)])

    def train_metrics(self, sums: list[float]) -> dict:
        """``train_*`` columns from an epoch's summed :meth:`batch_sums`."""
        return {"train_loss": sums[0] / sums[-1]}

    def train_error(self, sums: list[float]) -> Optional[float]:
        """Training error of a batch, for He 2015's error-gated warm-up (None: no error rate)."""
        return None

    def meter(self, dataset: Any) -> Meter:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    # -- checkpoint ------------------------------------------------------------------------------
    def checkpoint_extras(self, trainer: "Trainer") -> dict:
        """What the checkpoint holds beyond weights and training state."""
        data = trainer.train_set
        return {"classes": list(data.classes), "mean": list(data.mean), "std": list(data.std)}


class ClassifyTask(Task):
    """Images -> one class: today's ``fit`` (BatchLoader with crop/flip/cutout, cross-entropy)."""

    name = "classify"
    default_best = "val_acc"
    metrics = ("loss", "acc")
    examples = "cifar10:PATH, folder:PATH, synthetic"

    def load(self, split: str, *, like: Any = None) -> Any:
        from ..data import load_dataset
        c = self.config
        return load_dataset(c.data, split, val_size=c.val_size, seed=c.seed, skip_bad=c.skip_bad,
                            cache_dir=c.cache_dir)

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        from ..data import Augmentation
        c = self.config
        augment = (Augmentation(crop_padding=c.crop_padding, pad_mode=c.pad_mode, flip=c.flip,
                                cutout=c.cutout, alternate_flip=c.alternate_flip,
                                crop_size=c.crop_size, crop_size_epochs=c.crop_size_epochs)
                   if train else None)
        return BatchLoader(dataset, batch_size, shuffle=train, drop_last=train, seed=c.seed,
                           augment=augment, device=device, channels_last=c.channels_last,
                           rank=rank, world_size=world_size)

    def check_model_class(self, name, cls):
        from ..models.image_to_image import ImageToImageModel
        if isinstance(cls, type) and issubclass(cls, ImageToImageModel):
            raise ValueError(f"task 'classify' needs a classifier; {name} maps images to "
                             f"images (use task 'segment' or 'reconstruct')")

    def criterion(self, dataset: Any) -> nn.Module:
        return nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)

    def num_sums(self, dataset):
        return 3

    def batch_sums(self, logits, y, loss):   # [loss x n, correct, n]
        return torch.stack([loss.float() * len(y), (logits.argmax(1) == y).sum().float(),
                            torch.tensor(float(len(y)), device=loss.device)])

    def train_metrics(self, sums):
        loss_sum, correct, seen = sums
        return {"train_loss": loss_sum / seen, "train_acc": correct / seen}

    def train_error(self, sums):
        return 1 - sums[1] / sums[2]

    def meter(self, dataset: Any) -> Meter:
        return ClassificationMeter()

    def checkpoint_extras(self, trainer: "Trainer") -> dict:
        return {**super().checkpoint_extras(trainer), "best_acc": trainer.best_value}


class SegmentTask(Task):
    """Images -> a class per pixel (U-Nets): Dice + cross-entropy; Dice, IoU, pixel accuracy.
    Augmentation: the 8 dihedral transforms of image and mask together (``flip``)."""

    name = "segment"
    default_best = "val_dice"
    metrics = ("loss", "acc", "dice", "iou")
    examples = "synthetic:cells"
    LOSS_TERMS = ("ce", "dice")

    def load(self, split: str, *, like: Any = None) -> Any:
        from ..data.load import load_segmentation
        c = self.config
        return load_segmentation(c.data, split, val_size=c.val_size, seed=c.seed,
                                 size=c.tile_size or DEFAULT_TILE["segment"])

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        from ..data import SARAugmentation
        c = self.config
        augment = SARAugmentation(dihedral=True) if train and c.flip else None
        return SegmentationLoader(dataset, batch_size, shuffle=train, drop_last=train,
                                  seed=c.seed, augment=augment, device=device,
                                  channels_last=c.channels_last, rank=rank, world_size=world_size)

    def check_model_class(self, name, cls):
        from ..models.unet import SegmentationNet
        if not (isinstance(cls, type) and issubclass(cls, SegmentationNet)):
            raise ValueError(f"task 'segment' needs a segmentation model (unet, unet_residual, "
                             f"unet_resnet18, unet_resnet34); {name} is a "
                             f"{getattr(cls, '__name__', cls)}")

    def criterion(self, dataset: Any) -> nn.Module:
        from .seg_losses import DiceCELoss
        terms = self.config.loss or {"ce": 1.0, "dice": 1.0}
        unknown = set(terms) - set(self.LOSS_TERMS)
        if unknown:
            raise ValueError(f"segment loss terms must be among {self.LOSS_TERMS} (e.g. "
                             f"{{ce: 1.0, dice: 1.0}}); found {sorted(unknown)}")
        return DiceCELoss(ce_weight=float(terms.get("ce", 0.0)),
                          dice_weight=float(terms.get("dice", 0.0)))

    def num_sums(self, dataset):
        return 2 + 3 * dataset.num_classes

    def batch_sums(self, logits, masks, loss):   # [loss x n, tp per class, fp..., fn..., n]
        from .seg_losses import confusion_counts
        counts = confusion_counts(logits.detach(), masks, logits.shape[1])   # [K, 3]
        n = torch.tensor([float(len(masks))], device=loss.device)
        return torch.cat([(loss.float() * len(masks)).view(1), counts.T.reshape(-1).float(), n])

    def train_metrics(self, sums):
        from .seg_losses import SegmentationScores
        scores = SegmentationScores((len(sums) - 2) // 3)
        scores.counts = torch.tensor(sums[1:-1], dtype=torch.float64).view(3, -1).T.round().long()
        return {"train_loss": sums[0] / sums[-1],
                **{f"train_{k}": v for k, v in segmentation_summary(scores).items()}}

    def train_error(self, sums):
        return 1 - self.train_metrics(sums)["train_acc"]

    def meter(self, dataset: Any) -> Meter:
        return SegmentationMeter(self.criterion(dataset), dataset.num_classes)


class ReconstructTask(Task):
    """Tiles -> the same tiles through an autoencoder: ``loss`` terms of
    :func:`skiplab.train.sar_losses.build_loss` on normalised log-intensity; PSNR and SSIM.
    Augmentation: the 8 dihedral transforms (``flip``), which keep speckle statistics."""

    name = "reconstruct"
    default_best = "val_loss"
    metrics = ("loss", "psnr", "ssim")
    examples = "sar:PATH, synthetic-sar"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        if self.best_metric == "train_ssim":
            raise ValueError("best_metric train_ssim is not measured (SSIM is a val metric)")

    @property
    def tile_size(self) -> int:
        return self.config.tile_size or DEFAULT_TILE["reconstruct"]

    def load(self, split: str, *, like: Any = None) -> Any:
        from ..data.load import load_sar
        c = self.config
        return load_sar(c.data, split, val_size=c.val_size, seed=c.seed, tile=self.tile_size,
                        stride=c.tile_stride, skip_bad=c.skip_bad,
                        radiometry=None if like is None else like.radiometry)

    def loader(self, dataset, batch_size, *, train, device, rank=0, world_size=1):
        from ..data import SARAugmentation, SARTileLoader
        c = self.config
        augment = SARAugmentation(dihedral=True) if train and c.flip else None
        return SARTileLoader(dataset, batch_size, augment=augment, shuffle=train, drop_last=train,
                             seed=c.seed, device=device, channels_last=c.channels_last,
                             rank=rank, world_size=world_size)

    def model_kwargs(self, dataset: Any) -> dict:
        return {"in_chans": dataset.in_chans}

    def image_size(self, dataset: Any) -> int:
        return dataset.tile_size

    def check_model_class(self, name, cls):
        from ..models.autoencoder import Autoencoder
        if not (isinstance(cls, type) and issubclass(cls, Autoencoder)):
            raise ValueError(f"task 'reconstruct' needs an autoencoder (sar_ae, sar_ae_plain, "
                             f"sar_ae_bottleneck, sar_ae_all, sar_ae_bottleneck_cbam); "
                             f"{name} is a {getattr(cls, '__name__', cls)}")

    def create_model(self, dataset, name=None, kwargs=None):
        model = super().create_model(dataset, name, kwargs)
        model.latent_shape(dataset.tile_size)   # the tile must be a multiple of its stride
        return model

    def default_loss(self) -> dict:
        """``{l1: 1.0, ms_ssim: 0.2}``, MS-SSIM with as many scales as the tile allows
        (5 at 256 px, 3 at 64 px: an 11 px window at the coarsest scale)."""
        scales = min(5, 1 + int(math.log2((self.tile_size - 1) / 10)))
        return {"l1": 1.0, "ms_ssim": {"weight": 0.2, "scales": scales}}

    def criterion(self, dataset: Any) -> nn.Module:
        from .sar_losses import build_loss
        terms = self.config.loss or self.default_loss()
        loss = build_loss(terms, radiometry=dataset.radiometry, looks=dataset.looks)
        tile = torch.full((1, 1, dataset.tile_size, dataset.tile_size), 0.5)
        try:                # fail now, not at the first step, on a term the tiles cannot take
            loss(tile, tile)
        except ValueError as err:
            raise ValueError(f"loss {terms} on {dataset.tile_size} px tiles: {err} (e.g. "
                             f"ms_ssim: {self.default_loss()['ms_ssim']})") from None
        return loss

    def num_sums(self, dataset):
        return 3

    def batch_sums(self, output, target, loss):   # [loss x n, PSNR sum, n]
        from ..analysis.image_metrics import psnr
        n = float(len(target))
        return torch.stack([loss.float() * n, psnr(output.detach(), target).sum(),
                            torch.tensor(n, device=loss.device)])

    def train_metrics(self, sums):
        return {"train_loss": sums[0] / sums[-1], "train_psnr": sums[1] / sums[-1]}

    def meter(self, dataset: Any) -> Meter:
        return ReconstructionMeter(self.criterion(dataset))

    def checkpoint_extras(self, trainer: "Trainer") -> dict:
        data, model, tile = trainer.train_set, trainer.model, trainer.train_set.tile_size
        return {"radiometry": data.radiometry.to_dict(), "looks": data.looks, "tile_size": tile,
                "compression": {"latent_shape": list(model.latent_shape(tile)),
                                "compression_ratio": model.compression_ratio(tile),
                                "bits_per_pixel": model.bits_per_pixel(tile)}}


TASKS = {task.name: task for task in (ClassifyTask, SegmentTask, ReconstructTask)}


def make_task(config: TrainConfig, *, check_data: bool = True) -> Task:
    """The :class:`Task` of ``config.task``, checked against ``config`` (options, and the
    kind of ``config.data`` unless ``check_data`` is False: data given in memory)."""
    task = TASKS[config.task](config)
    if check_data:
        task.check_data(config.data)
    if config.task != "classify":
        used = [k for k in ("label_smoothing", "cutout", "whiten_init", "error_warmup_lr")
                if getattr(config, k)]
        if used:
            raise ValueError(f"{', '.join(used)}: classification options, not for task "
                             f"{config.task!r}")
    elif config.loss:
        raise ValueError("loss: classification uses cross-entropy (set label_smoothing); "
                         "loss terms are for task segment or reconstruct")
    return task


class SegmentationLoader(BatchLoader):
    """:class:`~skiplab.data.BatchLoader` over a :class:`~skiplab.data.SegmentationDataset`:
    yields ``(x, masks)`` -- x normalised float32 [B, C, H, W], masks int64 [B, H, W] -- with
    the same augmentation (a :class:`~skiplab.data.SARAugmentation`: crops and dihedral
    transforms, exact on labels) applied to both. Order, sharding and resume as BatchLoader."""

    def make_batch(self, indices: torch.Tensor, epoch: int, batch: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        from ..data import normalize
        x = self.dataset.images[indices].to(self.device).float().div_(255)
        x = normalize(x, self._mean, self._std)
        masks = self.dataset.masks[indices].to(self.device)
        if self.augment is not None and not self.augment.is_identity:
            stacked = torch.cat([x, masks.unsqueeze(1).float()], dim=1)
            params = self.augment.sample_params(len(indices) * self.world_size, x.shape[2],
                                                x.shape[3], self.batch_generator(epoch, batch))
            stacked = self.augment.apply(stacked, params.select(slice(self.rank, None,
                                                                      self.world_size)))
            x, masks = stacked[:, :-1], stacked[:, -1].long()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, masks
