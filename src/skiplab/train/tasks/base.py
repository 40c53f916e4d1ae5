"""What a run learns: a :class:`Task` supplies the data, the loss, the metrics and what the
checkpoint holds beyond weights; the loop (:mod:`skiplab.train.loop`) is the same for all.
Tasks register themselves by name (:func:`register_task`); :func:`get_task` finds them,
loading the domain plugins (:mod:`skiplab.plugins`) on a miss, so ``reconstruct``, which
:mod:`skiplab.sar` registers, is found without train/ knowing it.

============  =========================  ==================  ========================  ==========
task          data (``--data``)          loss                metrics (metrics.csv)     best.pt by
============  =========================  ==================  ========================  ==========
classify      cifar10/100:PATH,          cross-entropy       loss, acc                 val_acc
              folder:PATH, synthetic     (label_smoothing)
segment       synthetic:cells            Dice + CE           loss, acc (pixels),       val_dice
                                         (Milletari 2016)    dice, iou (foreground)
reconstruct   sar:PATH, synthetic-sar    ``loss`` terms      loss, psnr (+ ssim on     val_loss
(skiplab.sar)                            (sar.losses)        val)
============  =========================  ==================  ========================  ==========

A task owns the training step's computation: :meth:`Task.forward` ``(model, batch, autocast)``
returns a dict -- ``loss`` (the total to backpropagate), ``terms`` (named loss terms, e.g.
``ce``, ``kd``, ``rate``, ``distortion``: 0-d tensors) and the outputs its metrics need
(``output``, ``target``) -- and the loop only runs autocast, backward, the optimiser step,
schedule, EMA and accumulation. The default :meth:`Task.forward` is the model under autocast
and :meth:`Task.criterion` on its float32 output, so a task that defines only ``criterion``
and ``batch_sums`` (like ``reconstruct``) trains as it always did. A wrapper task
(:class:`TaskWrapper`; distillation: :class:`skiplab.train.distill.DistillTask`) adds terms
to the dict of the task it wraps.

A training step's statistics (:meth:`Task.step_sums`, by default :meth:`Task.batch_sums`)
are sums over the batch, all-reduced over processes and added up over the epoch on the
device (:mod:`skiplab.train.stepsums`; the host reads them only when it logs); the first is
loss x samples and the last the number of samples, so the loop reads the mean loss and
throughput of any task from them. When a task returns more than one term, the epoch's mean
of each is a ``train_<term>`` column too.
Evaluation accumulates the task's :class:`~skiplab.train.meters.Meter` over a loader.

A task adds what its checkpoint needs (:meth:`Task.checkpoint_extras`): the classes and
normalisation by default, the radiometry and compression figures for ``reconstruct``.
"""

from __future__ import annotations

import contextlib
import typing
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional

import torch
from torch import nn

from ...data import BatchLoader, parse_data_spec
from ...models.registry import create_model, get_model_fn
from ...plugins import load_plugins
from ..config import TrainConfig, foreign_options, option_owners
from ..meters import Meter

if TYPE_CHECKING:  # the loop imports the tasks: its type for hints only
    from ..loop import Trainer


class Task:
    """The task-specific parts of a run (see the module documentation)."""

    name = ""  # also what DataSpec.task says of its data
    default_best = "val_loss"
    metrics: tuple[str, ...] = ("loss",)  # evaluation metrics (val_ prefixed in metrics.csv)
    examples = ""  # data specs of this task, for error messages
    default_tile = 0  # tile_size when the config says 0 (image tasks)

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.best_metric = self.default_best if config.best_metric == "auto" else config.best_metric
        allowed = [f"{p}_{m}" for p in ("val", "train") for m in self.metrics]
        if self.best_metric not in allowed:
            raise ValueError(
                f"best_metric {self.best_metric!r} is not a {self.name} metric; "
                f"expected auto or one of {', '.join(allowed)}"
            )
        self.higher_is_better = not self.best_metric.endswith("loss")

    @property
    def options(self) -> dict:
        """The config options this task owns, with their values (:meth:`TrainConfig.task_options`)."""
        return self.config.task_options(self.name)

    # -- data --------------------------------------------------------------------------------
    def check_data(self, spec: str) -> None:
        found = parse_data_spec(spec).task
        if found != self.name:
            raise ValueError(
                f"task {self.name!r} cannot use {spec!r}: that is {found} data "
                f"(use task {found!r}, or {self.name} data: {self.examples})"
            )

    def load(self, split: str, *, like: Any = None) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def data_reference(self, checkpoint: dict) -> Any:
        """What :meth:`load` takes as ``like`` to load data as ``checkpoint``'s model was
        trained on it (e.g. its SAR radiometry); None: nothing beyond the config."""
        return None

    def loader(
        self, dataset: Any, batch_size: int, *, train: bool, device: torch.device, rank: int = 0, world_size: int = 1
    ) -> BatchLoader:  # pragma: no cover
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    # -- model -------------------------------------------------------------------------------
    def create_model(self, dataset: Any, name: Optional[str] = None, kwargs: Optional[dict] = None) -> nn.Module:
        """The registered model ``name`` (default ``config.model`` with ``config.model_kwargs``)
        sized for ``dataset``; a ValueError first if its kind does not fit the task."""
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

    # -- the training step ----------------------------------------------------------------------
    def prepare(self, trainer: "Trainer") -> None:
        """Once, before the first step, with the trainer's data, model, device and precision
        built: build what :meth:`forward` needs (by default the criterion of the training set)."""
        self.train_criterion = self.criterion(trainer.train_set)

    def forward(
        self, model: nn.Module, batch: Any, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> dict:
        """One training batch through ``model``: ``{"loss", "terms", "output", "target"}``
        (see the module documentation). The default: the model under ``autocast``, then
        :meth:`criterion` on its float32 output; ``terms`` is empty (the loss is one term)."""
        x, target = batch
        with autocast():
            output = model(x)
        loss = self.train_criterion(output.float(), target)
        return {"loss": loss, "terms": {}, "output": output, "target": target}

    def step_sums(self, out: dict) -> torch.Tensor:
        """The statistics of one step's :meth:`forward` dict (float32, 1-d, on the device; no
        host sync): :meth:`batch_sums` of its output, target and detached loss."""
        return self.batch_sums(out["output"], out["target"], out["loss"].detach())

    # -- loss and metrics ----------------------------------------------------------------------
    def criterion(self, dataset: Any) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define this method (abstract)")

    def num_sums(self, dataset: Any) -> int:
        """Length of :meth:`batch_sums` (the epoch's running sums start as that many zeros)."""
        return 2

    def batch_sums(self, output: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
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


class TaskWrapper:
    """A task around another (``inner``): every attribute is the inner task's unless the
    wrapper defines it; by default :meth:`forward` and :meth:`prepare` are the inner's too.
    A wrapper changes the step by adding terms to the inner task's dict (e.g. distillation)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def prepare(self, trainer: "Trainer") -> None:
        self.inner.prepare(trainer)

    def forward(
        self, model: nn.Module, batch: Any, autocast: Callable[[], ContextManager] = contextlib.nullcontext
    ) -> dict:
        return self.inner.forward(model, batch, autocast)

    def step_sums(self, out: dict) -> torch.Tensor:
        return self.inner.step_sums(out)


_TASKS: dict[str, type[Task]] = {}


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: register a :class:`Task` subclass as ``config.task == name``."""

    def add(cls: type[Task]) -> type[Task]:
        if name in _TASKS and _TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is already registered ({_TASKS[name].__qualname__})")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return add


def list_tasks() -> list[str]:
    """Names of the registered tasks (after loading the domain plugins)."""
    load_plugins()
    return list(_TASKS)


def get_task(name: str) -> type[Task]:
    """The :class:`Task` class registered as ``name``; a ValueError listing the known ones."""
    if name not in _TASKS:
        load_plugins()
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(_TASKS)}")
    return _TASKS[name]


def make_task(config: TrainConfig, *, check_data: bool = True) -> Task:
    """The :class:`Task` of ``config.task``, checked against ``config`` (options, and the
    kind of ``config.data`` unless ``check_data`` is False: data given in memory)."""
    task = get_task(config.task)(config)
    if check_data:
        task.check_data(config.data)
    if config.task == "classify" and config.loss:
        raise ValueError(
            "loss: classification uses cross-entropy (set label_smoothing); "
            "loss terms are for task segment or reconstruct"
        )
    used = foreign_options(config)  # set options that other tasks own (config.option_owners)
    if used:
        owners = sorted({o for k in used for o in option_owners()[k]})
        what = "classification options" if owners == ["classify"] else f"options of task {' / '.join(owners)}"
        raise ValueError(f"{', '.join(used)}: {what}, not for task {config.task!r}")
    return task
