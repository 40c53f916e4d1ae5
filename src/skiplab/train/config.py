"""The training configuration: one dataclass, every field documented.

General fields (run, model, data, optimisation, schedule, precision, outputs) belong to every
run; a task's own options -- ``classify``'s augmentation, label smoothing, error-gated
warm-up, whitening and test-time shifts, ``segment``/``reconstruct``'s tiles and loss terms,
and ``distill``'s teacher, temperature and weight -- say so in their field's ``owner``
(:func:`option_owners`; :meth:`TrainConfig.task_options`, ``Task.options``). A recipe may
give them flat (as older recipes do) or grouped under ``task_options:``; an option of
another task than the run's is refused (``make_task``).

A recipe is a YAML file of these fields (``configs/*.yaml``); command-line flags of the
same names override it (``--epochs 30 --lr 0.2``). :func:`TrainConfig.from_dict` checks
everything before any training starts and names the bad key with what it accepts (the
checks: :mod:`skiplab.train.config_checks`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from .config_checks import (
    check_combination,
    check_value,
    config_field as _f,
    flatten_task_options,
    parse_yaml,
    suggest_keys,
)


@dataclass
class TrainConfig:
    """Everything a training run needs; ``TrainConfig()`` is a small valid run on synthetic data."""

    # -- run ---------------------------------------------------------------------------
    out: Optional[str] = _f(None, "run directory; None: runs/<model>-<timestamp>/ (unless save is false)")
    save: bool = _f(
        True,
        "write the run directory (config.yaml, metrics.csv, TensorBoard, "
        "checkpoints); false keeps the run in memory only",
    )
    seed: int = _f(0, "seed of model init, data order and augmentation", minimum=0)
    deterministic: bool = _f(False, "bit-reproducible run: deterministic kernels, no compile")
    resume: bool = _f(False, "continue from OUT/checkpoints/last.pt if it exists")
    device: str = _f("auto", "where to train: auto (cuda when present), cpu, cuda", choices=("auto", "cpu", "cuda"))
    num_threads: int = _f(0, "CPU threads for torch (0 = torch's default)", minimum=0)
    progress: bool = _f(True, "show a tqdm progress bar (rank 0 only)")
    task: str = _f(
        "classify",
        "what is learnt, a registered task (skiplab.train.list_tasks()): "
        "classify (images -> class), segment (pixels -> class: Dice/IoU), "
        "reconstruct (skiplab.sar autoencoder: PSNR/SSIM)",
    )
    # -- model -------------------------------------------------------------------------
    model: str = _f("cifar_resnet20", "registered model name (skiplab.list_models())")
    model_kwargs: dict = _f({}, "extra keywords for create_model, e.g. {drop_path_rate: 0.1}")
    init_from: Optional[str] = _f(
        None,
        "start from these weights (fine-tuning): a skiplab checkpoint "
        "(its pruned widths too) or a torchvision/timm state dict; stem "
        "channels adapted, a head of other classes started afresh",
    )
    # -- transfer learning (skiplab.train.transfer) ------------------------------------
    freeze: list = _f(
        [],
        "parameters kept fixed: stem, stageN (model.stages, 1-based), backbone "
        "(all but the classifier: feature extraction) or name patterns "
        "('layer1', 'blocks.[0-5].*'); frozen BatchNorm stays in eval mode",
    )
    layer_decay: float = _f(
        1.0,
        "layer-wise lr decay (BEiT, timm): lr x layer_decay^(L+1-id), id 0 "
        "the stem, 1..L the blocks, L+1 the head; 1 = off (e.g. 0.75)",
        positive=True,
    )
    # -- knowledge distillation (Hinton et al. 2015; skiplab.train.distill) --------------
    teacher: Optional[str] = _f(
        None,
        "classify: checkpoint of a teacher whose softened outputs the model also learns (None = no distillation)",
        owner="distill",
    )
    kd_temperature: float = _f(4.0, "distillation temperature T: softmax(logits / T)", positive=True, owner="distill")
    kd_alpha: float = _f(
        0.9,
        "weight of the distillation term: alpha * T^2 * KL + (1 - alpha) * cross-entropy, alpha in [0, 1]",
        minimum=0.0,
        owner="distill",
    )
    # -- data --------------------------------------------------------------------------
    data: str = _f(
        "synthetic",
        "dataset spec: cifar10:PATH, cifar100:PATH, folder:PATH, "
        "synthetic[:NAME] (classify); synthetic:cells[-N] (segment); "
        "sar:PATH, synthetic-sar[-N][,looks=L] (reconstruct)",
    )
    tile_size: int = _f(
        0,
        "segment/reconstruct: image side in px -- SAR scenes are cut into "
        "tiles of it, synthetic images made at it (0 = 256 SAR, 64 cells)",
        minimum=0,
        owner="segment,reconstruct",
    )
    tile_stride: int = _f(
        0,
        "reconstruct: step between tiles cut from a SAR scene (0 = tile_size, no overlap)",
        minimum=0,
        owner="reconstruct",
    )
    val_size: int = _f(0, "images held out of train for validation (He 2015: 5000); 0 = none", minimum=0)
    eval_split: str = _f(
        "auto",
        "split evaluated each epoch: auto (val if val_size > 0 else test), val, test, none",
        choices=("auto", "val", "test", "none"),
    )
    train_subset: int = _f(
        0,
        "classify: train on a fixed random subset of this many training "
        "images, drawn with train_subset_seed (0 = all); normalised with the "
        "whole split's statistics",
        minimum=0,
        owner="classify",
    )
    train_subset_seed: int = _f(0, "seed of the train_subset draw", minimum=0, owner="classify")
    skip_bad: bool = _f(False, "skip (and count) unreadable images instead of failing")
    cache_dir: Optional[str] = _f(None, "where decoded image tensors are cached (None: data default)")
    batch_size: int = _f(128, "global batch size (split evenly over processes)", positive=True)
    eval_batch_size: int = _f(512, "batch size of evaluation", positive=True)
    crop_padding: int = _f(4, "random-crop padding in pixels (0 = no crop)", minimum=0, owner="classify")
    pad_mode: str = _f("zeros", "padding of the random crop", choices=("zeros", "reflect"), owner="classify")
    flip: bool = _f(True, "random horizontal flips")
    alternate_flip: bool = _f(
        False,
        "flips: a fixed random half of the images is mirrored in even "
        "epochs, the other half in odd ones, so each image is seen both "
        "ways every two epochs (airbench) -- instead of coin flips",
        owner="classify",
    )
    cutout: int = _f(0, "side of the cutout square in pixels (0 = none)", minimum=0, owner="classify")
    crop_size: int = _f(
        0,
        "side of the random training crops in pixels (0 = the image size); smaller crops make cheaper steps",
        minimum=0,
        owner="classify",
    )
    crop_size_epochs: int = _f(
        0,
        "use crop_size only in the first N epochs, full-size crops after (progressive resizing; 0 = every epoch)",
        minimum=0,
        owner="classify",
    )
    # -- optimisation ------------------------------------------------------------------
    optimizer: str = _f(
        "sgd",
        "sgd (with momentum/Nesterov), adamw, or muon (Muon on the conv "
        "filters, for nets with a norm layer after every conv; SGD with "
        "momentum/nesterov on the rest)",
        choices=("sgd", "adamw", "muon"),
    )
    lr: float = _f(0.1, "peak learning rate (for batch_size as given; no automatic scaling)", positive=True)
    momentum: float = _f(0.9, "SGD momentum", minimum=0.0)
    nesterov: bool = _f(False, "Nesterov momentum (SGD)")
    betas: list = _f([0.9, 0.999], "AdamW (beta1, beta2)")
    muon_lr: float = _f(
        0.24,
        "muon: peak step of the conv filters relative to their norm, scheduled like lr (airbench94_muon: 0.24)",
        positive=True,
    )
    muon_momentum: float = _f(0.6, "muon: Nesterov momentum of the conv filters (airbench: 0.6)", minimum=0.0)
    weight_decay: float = _f(1e-4, "L2 (SGD) or decoupled (AdamW) weight decay", minimum=0.0)
    decay_norm_and_bias: bool = _f(False, "also decay norm weights and biases (1-d parameters)")
    norm_bias_lr_scale: float = _f(
        1.0,
        "lr multiplier of the norm layers' biases (airbench: 64); "
        "their weight decay is divided by it, so the decay per step "
        "stays that of the other parameters",
        positive=True,
    )
    label_smoothing: float = _f(0.0, "label smoothing of the cross-entropy, in [0, 1)", minimum=0.0, owner="classify")
    loss: dict = _f(
        {},
        "segment/reconstruct: loss terms and weights; {} = the task's default: "
        "segment {ce: 1.0, dice: 1.0}, reconstruct {l1: 1.0, ms_ssim: 0.2} "
        "(terms: mse, l1, ssim, ms_ssim, gamma_nll; see skiplab.sar.training.losses)",
        owner="segment,reconstruct",
    )
    grad_clip: float = _f(0.0, "clip the global gradient norm to this (0 = no clipping)", minimum=0.0)
    ema_decay: float = _f(
        0.0,
        "decay of an exponential moving average of the weights, evaluated "
        "instead of the raw weights (0 = no EMA; e.g. 0.999)",
        minimum=0.0,
    )
    lookahead_every: int = _f(
        0,
        "Lookahead (Zhang et al. 2019, airbench's form): every N steps "
        "the slow weights move toward the trained ones and are copied back "
        "into the model; 0 = off",
        minimum=0,
    )
    lookahead_decay: float = _f(
        0.77,
        "Lookahead: the slow weights keep this fraction of themselves at "
        "each sync, ramped up as (step / total steps)^3 (airbench: "
        "0.95^5)",
        minimum=0.0,
    )
    # -- length and schedule -----------------------------------------------------------
    epochs: int = _f(10, "passes over the training set (ignored when steps > 0)", positive=True)
    steps: int = _f(0, "total optimiser steps (He 2015: 64000); 0 = epochs decide", minimum=0)
    schedule: str = _f("cosine", "lr schedule after warm-up", choices=("constant", "multistep", "cosine", "onecycle"))
    milestones: list = _f([], "multistep: where lr is multiplied by gamma (see milestone_unit)")
    milestone_unit: str = _f("epoch", "unit of milestones", choices=("epoch", "step"))
    gamma: float = _f(0.1, "multistep: factor at each milestone", positive=True)
    min_lr_factor: float = _f(0.0, "cosine/onecycle: final lr as a fraction of lr", minimum=0.0)
    warmup_epochs: float = _f(0.0, "linear warm-up length in epochs (onecycle: the rising part)", minimum=0.0)
    warmup_steps: int = _f(0, "warm-up length in steps; overrides warmup_epochs when > 0", minimum=0)
    warmup_start_factor: float = _f(0.1, "lr at the start of the warm-up, as a fraction of lr", minimum=0.0)
    warmup_mode: str = _f(
        "linear",
        "linear: rise from warmup_start_factor to 1; constant: hold "
        "warmup_start_factor (He 2016: 0.01 for 400 iterations)",
        choices=("linear", "constant"),
    )
    error_warmup_lr: float = _f(
        0.0,
        "He 2015 (ResNet-110): use this lr until the running training error falls below error_warmup_until (0 = off)",
        minimum=0.0,
        owner="classify",
    )
    error_warmup_until: float = _f(
        0.8, "training error that ends the error-gated warm-up", minimum=0.0, owner="classify"
    )
    # -- precision and speed -----------------------------------------------------------
    precision: str = _f(
        "auto",
        "auto (bf16 where supported, else fp16+scaler on CUDA, fp32 on CPU), bf16, fp16, fp32",
        choices=("auto", "bf16", "fp16", "fp32"),
    )
    channels_last: bool = _f(True, "NHWC memory format for model and inputs")
    compile: str = _f(
        "auto", "torch.compile: auto (where it pays, see docs/training.md), on, off", choices=("auto", "on", "off")
    )
    retain_memory: Optional[bool] = _f(
        None,
        "keep freed memory in the process (glibc malloc) "
        "instead of returning it to the OS: no page faults "
        "every step, ~20 % faster CPU steps; the process "
        "keeps its peak memory. None: on under the skiplab "
        "command, off for fit() from Python (process-wide)",
    )
    grad_checkpointing: bool = _f(False, "recompute stage activations in backward (less memory)")
    whiten_init: bool = _f(
        False,
        "initialise a model's patch-whitening stem from training images (models with init_whitening(images))",
        owner="classify",
    )
    tta_flip: bool = _f(False, "evaluate on the mean of the image's and its mirror's logits")
    tta_translate: bool = _f(
        False,
        "classify: also average over the image shifted by one pixel "
        "up-left and down-right (weights 1/2, 1/4, 1/4; airbench's level 2)",
        owner="classify",
    )
    # -- outputs -----------------------------------------------------------------------
    checkpoint_every: int = _f(0, "also write last.pt every N steps (0 = off)", minimum=0)
    keep_steps: list = _f([], "also keep the checkpoint of these steps as checkpoints/step-N.pt")
    step_log: bool = _f(False, "write every step's loss, batch error and lr to steps.csv")
    checkpoint_minutes: float = _f(
        10.0,
        "also write last.pt when this many minutes of training "
        "passed since it was last written, so a kill loses at "
        "most that (0 = off; last.pt is always written at epoch "
        "ends and on SIGINT/SIGTERM/SIGHUP)",
        minimum=0.0,
    )
    eval_every: int = _f(1, "evaluate every N epochs (and always after the last)", positive=True)
    best_metric: str = _f(
        "auto",
        "metrics.csv column that picks best.pt (higher is better, "
        "*loss lower); auto = val_acc (classify), val_dice (segment), "
        "val_loss (reconstruct)",
    )
    log_every: int = _f(50, "write step scalars to TensorBoard every N steps", positive=True)
    tensorboard: bool = _f(True, "write TensorBoard event files into the run directory")

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrainConfig":
        """Build and validate; unknown keys, wrong types and out-of-range values raise a
        ValueError that names the key and what it accepts. A task's options may also be
        given grouped, ``task_options: {kd_alpha: 0.5, label_smoothing: 0.1}`` (the flat
        keys of older recipes are the same options)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = flatten_task_options(values, known, option_owners())
        for key in values:
            if key not in known:
                close = suggest_keys(str(key), known)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"unknown config key {key!r}{hint} (every key with its meaning: skiplab train --help)")
        hints = typing.get_type_hints(cls)
        checked = {k: check_value(k, v, hints[k], known[k].metadata) for k, v in values.items()}
        config = cls(**checked)
        config.check()
        return config

    @classmethod
    def from_yaml(cls, path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> "TrainConfig":
        """Load a recipe and apply ``overrides`` (e.g. parsed command-line flags)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        values = parse_yaml(path.read_text(), f"config file {path}") or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of config keys, found {type(values).__name__}")
        values = flatten_task_options(values, {f.name: f for f in dataclasses.fields(cls)}, option_owners())
        return cls.from_dict({**values, **(overrides or {})})  # flags override grouped keys too

    def replace(self, **changes: Any) -> "TrainConfig":
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def task_options(self, task: Optional[str] = None) -> dict[str, Any]:
        """The options ``task`` (default ``self.task``) owns, with their values; a run with
        a teacher also has the ``distill`` task's (:func:`option_owners`)."""
        task = task or self.task
        owners = {task} | ({"distill"} if self.teacher and task == self.task else set())
        return {k: getattr(self, k) for k, own in option_owners().items() if owners & set(own)}

    def check(self) -> None:
        """Checks that involve more than one field, and that ``task`` is registered."""
        check_combination(self)


def option_owners() -> dict[str, tuple[str, ...]]:
    """Task option -> the tasks that own it (``distill``: the task around a classifier that a
    ``teacher`` adds); every other field is general."""
    return {f.name: f.metadata["owner"] for f in dataclasses.fields(TrainConfig) if f.metadata["owner"]}


def foreign_options(config: "TrainConfig") -> list[str]:
    """Options set (from an off default) that belong to other tasks than ``config.task``."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    return [
        k
        for k, own in option_owners().items()
        if config.task not in own and "distill" not in own and getattr(config, k) and not fields[k].default
    ]


def field_docs() -> dict[str, str]:
    """Field name -> documentation (used for --help and the commented YAML recipes)."""
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(TrainConfig)}
