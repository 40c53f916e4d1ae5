"""Kept results: what was measured before is read, never measured again.

A study's ``kept:`` directory may hold ``training.json`` (runs: variant, depth, warm-up,
seed, every step's loss, top-1) and ``gradients_at_init.json`` (per-layer gradient norms per
init, variant, depth and seed) -- the files this study writes into its own directory, in the
format the earlier benchmark scripts wrote. A kept run or cell is reused only where its file
describes the same recipe (:func:`~.config.same_recipe`: the model, width, steps, lr, batch,
optimiser, warm-up, data subsets; which depths and seeds a file holds does not matter).

A kept training run becomes a finished run directory -- ``steps.csv`` (its per-step losses)
and ``trained.json`` (its steps, time, top-1, and ``kept``: the file it came from) -- which
the runner folds in as trained elsewhere, so it is summarised like a run it trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Optional

from ...atomic import atomic_open, write_json
from ...train.steplog import COLUMNS
from ..experiment import Run
from ..worker import TRAINED_FILE
from .config import LayerNormConfig, gradient_setup, parse_key, same_recipe, training_setup

TRAINING_FILE = "training.json"
GRADIENTS_FILE = "gradients_at_init.json"


def _read(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        raise ValueError(f"kept file {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"kept file {path} holds a {type(data).__name__}, not a mapping")
    return data


def _differs(a: dict, b: dict) -> str:
    from .config import RECIPE_EXCLUDES

    keys = sorted(k for k in set(a) | set(b) if k not in RECIPE_EXCLUDES and a.get(k) != b.get(k))
    return ", ".join(f"{k}: {b.get(k)!r} kept, {a.get(k)!r} here" for k in keys)


def kept_training(config: LayerNormConfig, log: Callable[[str], None] = print) -> dict[str, dict]:
    """The kept training runs of the same recipe, by run name (empty without ``kept``)."""
    if not config.kept:
        return {}
    path = Path(config.kept) / TRAINING_FILE
    data = _read(path)
    if data is None:
        log(f"kept: no {path}")
        return {}
    setup = training_setup(config)
    if not same_recipe(setup, data.get("setup", {})):
        log(f"kept: {path} is another recipe ({_differs(setup, data.get('setup', {}))}); none of its runs is reused")
        return {}
    out = {}
    for r in data.get("runs", []):
        key = f"{r['variant']}-L{r['depth']}-{'warmup' if r['warmup'] else 'nowarmup'}"
        out[Run(key, int(r["seed"])).name] = dict(r, source=str(path))
    return out


def materialise(run: Run, record: dict, run_dir: Path, steps_per_epoch: int) -> None:
    """A kept run as a finished run directory: ``steps.csv`` and ``trained.json``."""
    variant, depth, warmup = parse_key(run.key)
    if (record["variant"], record["depth"], bool(record["warmup"]), record["seed"]) != (
        variant,
        depth,
        warmup,
        run.seed,
    ):
        raise ValueError(f"kept record {record['variant']} L={record['depth']} seed {record['seed']} is not {run.name}")
    run_dir.mkdir(parents=True, exist_ok=True)
    losses = [float(v) for v in record["losses"]]
    with atomic_open(run_dir / "steps.csv", "w", newline="") as f:
        f.write(",".join(COLUMNS) + "\n")
        for i, loss in enumerate(losses):
            f.write(f"{i + 1},{i // max(1, steps_per_epoch)},{loss!r},nan,nan\n")
    write_json(
        run_dir / TRAINED_FILE,
        dict(
            steps=len(losses),
            seconds=round(float(record.get("seconds", math.nan)), 1),
            diverged=None,
            metrics=dict(val_acc=float(record["val_acc"])),
            kept=record["source"],
        ),
        indent=1,
    )


def reuse_kept_runs(experiment, runner, log: Callable[[str], None] = print) -> int:
    """Write every kept run of the same recipe that the runner has not finished as a finished
    run directory (the runner then folds it in without training); returns how many."""
    kept = kept_training(experiment.config, log)
    n = 0
    for run in experiment.runs():
        run_dir = runner.run_dir(run)
        if run.name in kept and not runner.state.run_done(run.name) and not (run_dir / TRAINED_FILE).is_file():
            materialise(run, kept[run.name], run_dir, experiment.steps_per_epoch())
            n += 1
    if kept:
        log(f"kept: {n} run(s) of the same recipe reused from {experiment.config.kept}/{TRAINING_FILE}, not trained")
    return n


def kept_gradients(config: LayerNormConfig, log: Callable[[str], None] = print) -> dict:
    """Kept gradient norms of the same measurement, ``{init: {variant: {depth: {seed: [norms]}}}}``
    (str keys for depth and seed); empty without ``kept``."""
    if not config.kept:
        return {}
    path = Path(config.kept) / GRADIENTS_FILE
    data = _read(path)
    if data is None:
        log(f"kept: no {path}")
        return {}
    setup = gradient_setup(config)
    if not same_recipe(setup, {k: v for k, v in data.items() if k != "runs"}):
        log(f"kept: {path} is another measurement ({_differs(setup, data)}); none of its cells is reused")
        return {}
    seeds = data["seeds"]
    out: dict = {}
    for init, entry in data.get("runs", {}).items():
        for variant, by_depth in entry["gradients"].items():
            for depth, per_seed in by_depth.items():
                for seed, norms in zip(seeds, per_seed):
                    out.setdefault(init, {}).setdefault(variant, {}).setdefault(str(depth), {})[str(seed)] = norms
    return out
