"""The networks of a study: one family at one depth and one seed, same recipe and the same
number of steps for all (He et al. 2015 trained every depth for 64k iterations: equal
updates, not equal time), each an independent run of the experiment runner.

The recipe is He 2015 §4.2's: SGD momentum 0.9, weight decay 1e-4, lr 0.1, the lr
divided by 10 at 50 % and 75 % of the steps (He: at 32k and 48k of 64k), 4-pixel crops
and flips, He's initialisation with option-A (zero-padding) shortcuts and no zero-
initialised residual branches; no warm-up except He's own for ResNet-110 (lr 0.01 until the
training error falls below 80 %, :func:`he_warmup_lr`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..data import BatchLoader, ImageDataset
from ..evidence import thresholds as T
from ..evidence.stats import pack_correct
from ..models import create_model
from ..train import TrainConfig, evaluate
from ..trained import load_trained as read_model
from .config import FAMILIES, Family, StudyConfig
from .experiment import Run
from .worker import DIVERGED_FILE


@dataclass(frozen=True)
class RunSpec:
    """One network of the study: a family at a depth, with or without BatchNorm, one seed."""

    family: Family
    depth: int
    norm: bool = True
    seed: int = 0
    length: float = 1.0  # fraction of the study's steps (a shorter training length)

    @property
    def network(self) -> str:
        return f"{self.family.label}-{self.depth}" + ("" if self.norm else "-nobn")

    @property
    def key(self) -> str:
        return self.network + ("" if self.length == 1.0 else f"-L{round(100 * self.length)}")

    def steps(self, steps: int) -> int:
        return max(1, round(self.length * steps))

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def run(self) -> Run:
        return Run(self.key, self.seed)

    @property
    def model_kwargs(self) -> dict:
        # He 2015's initialisation: no zeroed last BN scale in the residual branches (Goyal
        # 2017's zero_init_residual would start every ResNet as a shallow net)
        return {
            "depth": self.depth,
            **self.family.kwargs,
            "zero_init_residual": False,
            **({} if self.norm else {"norm": False}),
        }

    def build(self, num_classes: int, in_chans: int) -> nn.Module:
        return create_model(self.family.model, num_classes=num_classes, in_chans=in_chans, **self.model_kwargs)

    @classmethod
    def from_run(cls, run: Run) -> "RunSpec":
        label, depth, *rest = run.key.split("-")
        family = next(f for f in FAMILIES.values() if f.label == label)
        length = next((int(r[1:]) / 100 for r in rest if r.startswith("L")), 1.0)
        return cls(family, int(depth), norm="nobn" not in rest, seed=run.seed, length=length)


def study_runs(config: StudyConfig) -> list[RunSpec]:
    """Every family at every depth and seed (only the deepest pair when the degradation
    part is not asked for), plus the deepest pair without BatchNorm when the gradients part
    trains it (``--without-bn trained``); seed-major, so an interrupted study has whole seeds."""
    if not config.needs_training:
        return []
    depths = config.depths if "degradation" in config.parts else (config.deepest,)
    lengths = config.lengths if "degradation" in config.parts else (1.0,)
    runs = []
    for seed in config.seed_list:
        runs += [RunSpec(f, d, seed=seed, length=x) for x in lengths for f in config.families for d in depths]
        if "gradients" in config.parts and config.without_bn == "trained":
            runs += [RunSpec(f, config.deepest, norm=False, seed=seed) for f in config.families]
    return runs


def subset(dataset: ImageDataset, n: int, seed: int, tag: str) -> ImageDataset:
    """A fixed random subset of ``n`` images (seeded; image folders are sorted by class) --
    the draw the trainer makes for ``train_subset``."""
    return dataset.random_subset(min(n, len(dataset)), seed, tag)


def snapshot_steps(steps: int) -> list[int]:
    """The steps at which a run of ``steps`` keeps a snapshot (``checkpoints/step-N.pt``) for
    the gradient measurements during training (``GRADIENT_SNAPSHOTS`` of the steps)."""
    return sorted({s for s in (round(f * steps) for f in T.GRADIENT_SNAPSHOTS) if 0 < s < steps})


def fixed_batches(
    dataset: ImageDataset, n: int, seed: int, tag: str, batch_size: int = 256
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same normalised, unaugmented ``(x, y)`` batches every time (for measurements)."""
    return list(BatchLoader(subset(dataset, n, seed, tag), batch_size, shuffle=False, drop_last=False))


#: He 2015 §4.2: "for the 110-layer ResNet ... we use 0.01 to warm up the training until the
#: training error is below 80% (about 400 iterations), and then go back to 0.1" -- the only net
#: He warmed up; the study does the same for residual nets of 110 layers or more, and no other
HE_WARMUP_LR, HE_WARMUP_DEPTH = 0.01, 110


def he_warmup_lr(spec: RunSpec) -> float:
    """The error-gated warm-up lr of He's ResNet-110 (0: none) for ``spec``."""
    return HE_WARMUP_LR if spec.family.is_residual and spec.depth >= HE_WARMUP_DEPTH and spec.norm else 0.0


def train_config(
    spec: RunSpec, config: StudyConfig, steps: int, run_dir: Optional[Path], threads: int = 0
) -> TrainConfig:
    """The trainer's configuration of one run: the study's recipe, its share of ``steps``
    (a shorter length has its own schedule: the lr drops at 50 % and 75 % of *its* steps)."""
    r = config.recipe
    steps = spec.steps(steps)
    return TrainConfig.from_dict(
        dict(
            out=str(run_dir) if run_dir else None,
            seed=spec.seed,
            model=spec.family.model,
            model_kwargs=spec.model_kwargs,
            data=config.data,
            eval_split="none",
            batch_size=r.batch_size,
            crop_padding=r.crop_padding,
            flip=r.flip,
            lr=r.lr if spec.norm else r.no_bn_lr,
            momentum=r.momentum,
            weight_decay=r.weight_decay,
            schedule=r.schedule,
            milestones=r.milestones(steps),
            milestone_unit="step",
            warmup_steps=r.warmup_steps,
            steps=steps,
            error_warmup_lr=he_warmup_lr(spec),
            grad_clip=0.0 if spec.norm else r.no_bn_grad_clip,
            precision=config.precision,
            compile="off",
            checkpoint_every=max(steps // 10, 50),
            log_every=max(steps // 50, 1),
            num_threads=threads,
            keep_steps=snapshot_steps(steps),
            step_log=True,
            train_subset=config.train_images,
            train_subset_seed=config.seed,
            tensorboard=False,
            progress=False,
        )
    )


def measure_fit(model: nn.Module, train_probe: list, test_batches: list) -> dict:
    """He 2015 Fig. 6's two errors: training error in evaluation mode (fp32) on the fixed
    training subset, and test error on the whole test split; as fractions and per image
    (packed, :func:`~skiplab.evidence.stats.pack_correct`), so that intervals can resample
    the evaluation images."""
    train = evaluate(model, train_probe, per_image=True)["correct"]
    test = evaluate(model, test_batches, per_image=True)["correct"]
    return dict(
        train_error=1 - train.sum().item() / len(train),
        test_error=1 - test.sum().item() / len(test),
        train_correct=pack_correct(train),
        test_correct=pack_correct(test),
    )


def load_trained(
    spec: RunSpec,
    run_dir: Path,
    num_classes: int,
    in_chans: int,
    step: Optional[int] = None,
    path: Optional[Path] = None,
) -> nn.Module:
    """The final weights of a finished run (its last checkpoint, or its last finite
    weights when it diverged) -- or its snapshot at ``step``, or the checkpoint ``path`` of a
    reused run -- in evaluation mode, read by :func:`skiplab.load_trained` as ``spec``'s
    architecture (a checkpoint of another architecture fails to load)."""
    diverged = run_dir / DIVERGED_FILE
    if path is not None:
        pass
    elif step is not None:
        path = run_dir / "checkpoints" / f"step-{step}.pt"
    elif diverged.is_file():
        path = diverged  # a plain state dict: the architecture is the spec's
    else:
        path = run_dir / "checkpoints" / "last.pt"
    sizes = dict(num_classes=num_classes, in_chans=in_chans, **spec.model_kwargs)
    return read_model(path, model=spec.family.model, model_kwargs=sizes).model
