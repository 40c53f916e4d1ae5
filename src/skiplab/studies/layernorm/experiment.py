"""The training half of the study as an experiment of the one runner: every (variant, depth,
warm-up on/off, seed) is one :class:`~skiplab.train.Trainer` run of the declared recipe
(:mod:`.config`) in ``<out>/runs/<variant>-L<depth>-<warmup|nowarmup>-s<seed>/``.

Xiong et al. 2020 §3.3 / Fig. 2: post-LN needs the learning-rate warm-up, pre-LN trains
without it. A run is summarised by its final training loss (the mean over the last 20 % of
the steps, from its ``steps.csv``) and its top-1 on the fixed test subset (evaluated once,
after the last step).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from ...data import ImageDataset, load_dataset
from ..config import Budget
from ..curves import STEPS_FILE, read_steps
from ..experiment import Experiment, Run
from .config import (
    BETAS,
    STATE_FILE,
    WARMUP_FRACTION,
    WARMUP_START_FACTOR,
    WEIGHT_DECAY,
    LayerNormConfig,
    parse_key,
    run_key,
)


def training_runs(c: LayerNormConfig) -> list[Run]:
    """The judged comparisons first (pre and post, each depth, every seed, warm-up off then
    on), the no-skip nets last: an experiment cut short holds whole sets of seeds."""
    if "training" not in c.measure:
        return []
    groups = [[v for v in ("pre", "post") if v in c.variants], [v for v in ("noskip",) if v in c.variants]]
    return [
        Run(run_key(v, d, w), s)
        for group in groups
        for d in c.depths
        for s in c.seed_list
        for v in group
        for w in (False, True)
    ]


def final_loss(losses: list[float], tail: int) -> float:
    """The mean training loss over the last ``tail`` steps (NaN without them)."""
    return float(sum(losses[-tail:]) / len(losses[-tail:])) if losses else math.nan


class LayerNormExperiment(Experiment):
    """Pre-LN vs post-LN vs no skip, with and without warm-up (see the module documentation)."""

    state_file = STATE_FILE
    what = "a study"

    def __init__(self, config: LayerNormConfig) -> None:
        self.config = config
        self._data: dict[str, ImageDataset] = {}

    def to_dict(self) -> dict:
        return self.config.to_dict()

    @classmethod
    def from_dict(cls, config: dict) -> "LayerNormExperiment":
        return cls(LayerNormConfig.from_dict(config))

    # -- data -----------------------------------------------------------------------------
    def full_train(self) -> ImageDataset:
        if "full" not in self._data:
            self._data["full"] = load_dataset(self.config.data, "train")
        return self._data["full"]

    def dataset(self, split: str) -> ImageDataset:
        """The declared fixed subsets: ``train_images`` training images and ``test_images``
        test images, each a permutation seeded with 0 (all of a split when 0)."""
        if split not in self._data:
            c = self.config
            data = self.full_train() if split == "train" else load_dataset(c.data, "test")
            n = c.train_images if split == "train" else c.test_images
            self._data[split] = data.random_subset(n, 0) if n else data
        return self._data[split]

    @property
    def image_size(self) -> int:
        return int(self.full_train().images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.full_train().classes)

    def validate(self) -> None:
        c = self.config
        if c.kept is not None and not Path(c.kept).is_dir():
            raise ValueError(f"kept: {c.kept} is not a directory (of kept training.json / gradients_at_init.json)")
        train = self.full_train()
        h, w = train.images.shape[-2:]
        if h != w or h % 4:
            raise ValueError(
                f"cifar_vit needs square images whose side is a multiple of its 4-pixel patches; "
                f"{train.name} has {h}x{w}"
            )
        for split, n in (("train", c.train_images), ("test", c.test_images)):
            whole = train if split == "train" else load_dataset(c.data, "test")
            if n > len(whole):
                raise ValueError(f"{split}_images {n} is more than the {len(whole)} images of {whole.name}")
        if c.gradient_images > len(train):
            raise ValueError(f"gradient_images {c.gradient_images} is more than the {len(train)} training images")
        if "training" in c.measure and len(self.dataset("train")) < c.batch_size:
            raise ValueError(
                f"the training subset ({len(self.dataset('train'))} images) is smaller than one batch of {c.batch_size}"
            )

    def datasets(self, run: Run):
        """The fixed training and test subsets, in memory (the same as ``train_subset`` in
        the run's ``train.yaml``)."""
        return self.dataset("train"), self.dataset("test")

    # -- runs -------------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        return training_runs(self.config)

    @property
    def budget(self) -> Budget:
        return Budget("steps", self.config.steps)

    def steps_per_epoch(self) -> int:
        return max(1, len(self.dataset("train")) // self.config.batch_size)

    def train_config(self, run: Run, steps: int, run_dir: Optional[Path], threads: int):
        """The declared recipe (:mod:`.config`) for ``run``: AdamW (0.9, 0.98), cosine, the
        warm-up over the first quarter of the steps when on; Xavier init (``weight_init``)."""
        from ...train import TrainConfig

        c = self.config
        variant, depth, warmup = parse_key(run.key)
        return TrainConfig.from_dict(
            dict(
                model="cifar_vit",
                model_kwargs=c.model_kwargs(variant, depth, "xavier", self.image_size),
                out=str(run_dir) if run_dir else None,
                save=run_dir is not None,
                progress=False,
                tensorboard=False,
                compile="off",
                num_threads=threads,
                seed=run.seed,
                steps=steps,
                data=c.data,
                train_subset=c.train_images,
                train_subset_seed=0,
                batch_size=c.batch_size,
                eval_batch_size=500,
                optimizer="adamw",
                betas=list(BETAS),
                lr=c.lr,
                weight_decay=WEIGHT_DECAY,
                schedule="cosine",
                warmup_steps=int(steps * WARMUP_FRACTION) if warmup else 0,
                warmup_start_factor=WARMUP_START_FACTOR,
                eval_every=10_000,
                log_every=10,
                step_log=True,
                precision=c.precision,
                checkpoint_every=max(10, steps // 4),
            )
        )

    def top1(self, checkpoint: Path) -> float:
        """Top-1 of a checkpoint on the fixed test subset, through the one evaluation loop at
        the study's precision (as the trainer evaluates after its last step)."""
        import torch

        from ...data import BatchLoader
        from ...trained import load_trained
        from ...train.evaluation import evaluate
        from ...train.precision import Precision, resolve_precision

        cpu = torch.device("cpu")
        model = load_trained(checkpoint).model
        loader = BatchLoader(self.dataset("test"), 500, shuffle=False, drop_last=False)
        return float(evaluate(model, loader, Precision(resolve_precision(self.config.precision, cpu), cpu))["acc"])

    def summarise(self, run: Run, run_dir: Path, trained: dict) -> dict:
        """Final training loss (last 20 % of the steps), top-1 on the test subset, steps, time.
        A run trained elsewhere (``skiplab train --config runs/<name>/train.yaml``, which
        evaluates on its data's whole test split) is evaluated here on the fixed subset."""
        variant, depth, warmup = parse_key(run.key)
        losses = [r["loss"] for r in read_steps(run_dir / STEPS_FILE)]
        diverged = trained.get("diverged")
        top1 = trained.get("metrics", {}).get("val_acc")
        last = run_dir / "checkpoints" / "last.pt"
        if (top1 is None or trained.get("trained_by")) and not diverged and last.is_file():
            top1 = self.top1(last)
        return dict(
            variant=variant,
            depth=depth,
            warmup=warmup,
            seed=run.seed,
            steps=trained["steps"],
            final_loss=math.nan if diverged else final_loss(losses, self.config.tail_steps),
            val_acc=math.nan if top1 is None else top1,
            seconds=trained["seconds"],
            diverged=diverged,
            kept=trained.get("kept"),
        )
