"""How a training recipe's values are read and checked, for :class:`~skiplab.train.config.TrainConfig`:
a field's documentation and constraints (:func:`config_field`), each value against its field's
type and range (:func:`check_value`), the checks across fields (:func:`check_combination`),
grouped task options (:func:`flatten_task_options`), YAML errors in one line
(:func:`parse_yaml`) and suggestions for an unknown key (:func:`suggest_keys`).
"""

from __future__ import annotations

import difflib
import math
import typing
from dataclasses import field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Union

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig


def config_field(
    default: Any,
    doc: str,
    *,
    choices: tuple = (),
    minimum: float | None = None,
    positive: bool = False,
    owner: str = "",
) -> Any:
    """A config field with its documentation and constraints (read by validation, --help);
    ``owner``: the task(s) whose option it is (comma-separated; "" = a general field)."""
    meta = dict(
        doc=doc, choices=choices, minimum=minimum, positive=positive, owner=tuple(o for o in owner.split(",") if o)
    )
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def check_value(key: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> Any:
    """Coerce ``value`` to the field's type (ints are accepted as floats) and check its range."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is Union:  # Optional[X]
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
    ok = (
        isinstance(value, bool)
        if tp is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is float
        else isinstance(value, int) and not isinstance(value, bool)
        if tp is int
        else isinstance(value, (list, tuple))
        if tp is list
        else isinstance(value, tp)
    )
    if not ok:
        raise ValueError(
            f"config key {key!r} must be {_type_name(tp)}, got {value!r} ({type(value).__name__}): {meta['doc']}"
        )
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"config key {key!r} must be finite, got {value}")
    if tp is list:
        value = list(value)
    if meta["choices"] and value not in meta["choices"]:
        raise ValueError(f"config key {key!r} must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}")
    if meta["positive"] and not value > 0:
        raise ValueError(f"config key {key!r} must be > 0, got {value!r}: {meta['doc']}")
    if meta["minimum"] is not None and value < meta["minimum"]:
        raise ValueError(f"config key {key!r} must be >= {meta['minimum']}, got {value!r}: {meta['doc']}")
    return value


def check_combination(config: "TrainConfig") -> None:
    """The checks that involve more than one field of ``config``, and that its ``task`` is
    registered (:meth:`TrainConfig.check`)."""
    # function-level: train.tasks imports train.config (and so this module) at its top
    from .tasks import get_task

    get_task(config.task)
    if config.schedule == "multistep" and not config.milestones:
        raise ValueError(
            "schedule 'multistep' needs milestones (e.g. milestones: [32000, 48000] with milestone_unit: step)"
        )
    if any(not isinstance(m, int) or m <= 0 for m in config.keep_steps):
        raise ValueError(f"keep_steps must be positive integers, got {config.keep_steps}")
    if any(not isinstance(m, int) or m <= 0 for m in config.milestones):
        raise ValueError(f"milestones must be positive integers, got {config.milestones}")
    if list(config.milestones) != sorted(config.milestones):
        raise ValueError(f"milestones must be increasing, got {config.milestones}")
    if len(config.betas) != 2 or not all(0 <= b < 1 for b in config.betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {config.betas}")
    for key in ("label_smoothing", "ema_decay", "error_warmup_until", "lookahead_decay"):
        if not getattr(config, key) < 1:
            raise ValueError(f"{key} must be in [0, 1), got {getattr(config, key)}")
    if any(not isinstance(m, str) or not m for m in config.freeze) or config.layer_decay > 1:
        raise ValueError(
            f"freeze must be names (stem, stage1, backbone, patterns) and layer_decay "
            f"in (0, 1], got {config.freeze} and {config.layer_decay}"
        )
    if config.layer_decay != 1 and config.optimizer == "muon":
        raise ValueError("layer_decay does not combine with optimizer 'muon': use sgd or adamw")
    if config.kd_alpha > 1:
        raise ValueError(f"kd_alpha must be in [0, 1], got {config.kd_alpha}")
    if config.teacher is not None and config.task != "classify":
        raise ValueError(f"teacher: distillation is for task 'classify', not {config.task!r}")
    if config.resume and config.out is None:
        raise ValueError("resume needs out: the run directory holding checkpoints/last.pt")
    if config.out is not None and not config.save:
        raise ValueError(
            f"out {config.out!r} with save false: a run that saves nothing has no run directory (drop one of them)"
        )


def flatten_task_options(
    values: Mapping[str, Any], known: Mapping[str, Any], owners: Mapping[str, tuple[str, ...]]
) -> dict:
    """``values`` with a ``task_options`` mapping merged into its flat keys (``known``: the
    config's fields; ``owners``: task option -> its tasks, :func:`~skiplab.train.config.option_owners`)."""
    values = dict(values)
    grouped = values.pop("task_options", None)
    if grouped is None:
        return values
    if not isinstance(grouped, Mapping):
        raise ValueError(f"task_options must be a mapping of task options, got {grouped!r}")
    for key, value in grouped.items():
        if key not in owners:
            what = "a general key: put it at the top level" if key in known else "unknown"
            raise ValueError(f"task_options key {key!r} is {what} (task options: {', '.join(owners)})")
        if key in values and values[key] != value:
            raise ValueError(f"{key} is given twice, {values[key]!r} and task_options {value!r}")
        values[key] = value
    return values


# names other tools use for a field, for the suggestions of an unknown key
ALIASES = {
    "learning_rate": "lr",
    "base_lr": "lr",
    "lr_rate": "lr",
    "num_epochs": "epochs",
    "n_epochs": "epochs",
    "max_epochs": "epochs",
    "epoch": "epochs",
    "max_steps": "steps",
    "num_steps": "steps",
    "iterations": "steps",
    "iters": "steps",
    "max_iters": "steps",
    "wd": "weight_decay",
    "l2": "weight_decay",
    "bs": "batch_size",
    "batch": "batch_size",
    "optim": "optimizer",
    "optimiser": "optimizer",
    "scheduler": "schedule",
    "lr_schedule": "schedule",
    "lr_scheduler": "schedule",
    "arch": "model",
    "network": "model",
    "dataset": "data",
    "data_dir": "data",
    "output_dir": "out",
    "output": "out",
    "outdir": "out",
    "run_dir": "out",
    "log_dir": "out",
    "threads": "num_threads",
    "amp": "precision",
    "dtype": "precision",
    "mixed_precision": "precision",
    "warmup": "warmup_epochs",
    "clip_grad": "grad_clip",
    "max_grad_norm": "grad_clip",
    "clip_grad_norm": "grad_clip",
    "ema": "ema_decay",
    "smoothing": "label_smoothing",
    "lr_milestones": "milestones",
    "lr_steps": "milestones",
    "lr_decay": "gamma",
    "image_size": "tile_size",
    "checkpoint_interval": "checkpoint_every",
    "save_every": "checkpoint_every",
    "eval_interval": "eval_every",
    "val_every": "eval_every",
    "workers": "num_threads",
}


def suggest_keys(key: str, names: Iterable[str], n: int = 3) -> list[str]:
    """Field names close to ``key``, by spelling or through :data:`ALIASES`
    (``lerning_rate`` -> ``lr``)."""
    names = list(names)
    norm = key.lower().replace("-", "_")
    candidates = {name: name for name in names}
    candidates.update({alias: name for alias, name in ALIASES.items() if name in names})
    found: list[str] = []
    for match in difflib.get_close_matches(norm, candidates, n=2 * n, cutoff=0.6):
        if candidates[match] not in found:
            found.append(candidates[match])
    return found[:n]


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load(text)``, or a one-line ValueError naming ``source`` (a file or a
    flag), the line and column (1-based) and what the parser expected there."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f" ({err.context})" if err.context else ""
        raise ValueError(f"{source} is not valid YAML{where}: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{source} is not valid YAML: {' '.join(str(err).split())}") from None
