"""The configuration of the pre-LN / post-LN / no-skip study (Xiong et al. 2020) and its
declared recipe.

Defaults are the declared budget of the CIFAR-10 evidence run (docs/evidence/xiong2020):
``cifar_vit`` of width 64 (2 heads, MLP ratio 4), Xavier init (Theorem 1's assumption);
the gradients at initialisation at depths 6, 12 and 24 over 5 seeds and 64 fixed training
images; training at depths 4 and 8 over 3 seeds, AdamW (betas 0.9 / 0.98, as Xiong's Adam),
lr 1e-3, weight decay 1e-4, batch 32, 120 steps on a fixed 5,000-image training subset
(crop + flip), cosine schedule, the warm-up (when on) linear from 1 % of lr over the first
25 % of the steps; top-1 on a fixed 1,000-image test subset.

:func:`training_setup` and :func:`gradient_setup` describe a configuration in the words of
the kept result files (``training.json``, ``gradients_at_init.json``): a kept run or cell is
reused only where its file describes the same recipe (see :mod:`.kept`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from ...evidence import thresholds as T

STATE_FILE = "layernorm.json"
PART = "layernorm"
VARIANTS = {
    "pre": dict(norm_position="pre"),
    "post": dict(norm_position="post"),
    "noskip": dict(norm_position="pre", skip=False),
}
INITS = ("xavier", "timm")
MEASUREMENTS = ("gradients", "training")
WEIGHT_DECAY = 1e-4
BETAS = (0.9, 0.98)
WARMUP_FRACTION = 0.25  # of the steps
WARMUP_START_FACTOR = 0.01  # of lr
FINAL_LOSS_FRACTION = 0.2  # the final loss: mean over the last 20 % of the steps
DEFAULT_DATA = "synthetic:shapes-500"  # 32x32, 10 classes: no download


def run_key(variant: str, depth: int, warmup: bool) -> str:
    """``post-L8-warmup`` / ``pre-L4-nowarmup``: what one training run compares."""
    return f"{variant}-L{depth}-{'warmup' if warmup else 'nowarmup'}"


def parse_key(key: str) -> tuple[str, int, bool]:
    """(variant, depth, warm-up) of :func:`run_key`."""
    variant, depth, warmup = key.split("-")
    return variant, int(depth[1:]), warmup == "warmup"


def _ints(value: Any, what: str) -> tuple[int, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a list of integers, got {value!r}") from None
    if not out or any(v < 1 for v in out):
        raise ValueError(f"{what} must be positive integers, got {value!r}")
    return tuple(sorted(set(out)))


def _names(value: Any, known: Sequence[str], what: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items if str(v).strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise ValueError(f"{what}: expected some of {', '.join(known)}, got {value!r}")
    return tuple(k for k in known if k in items)


@dataclass(frozen=True)
class LayerNormConfig:
    """Every option of the study (see the module documentation for the defaults)."""

    data: str = DEFAULT_DATA
    measure: tuple = MEASUREMENTS
    variants: tuple = tuple(VARIANTS)
    depths: tuple = (4, 8)  # trained
    gradient_depths: tuple = (6, 12, 24)  # measured at initialisation
    seeds: int = 3
    gradient_seeds: int = 5
    seed: int = 0
    inits: tuple = INITS
    width: int = 64
    steps: int = 120
    lr: float = 1e-3
    batch_size: int = 32
    train_images: int = 5000  # 0: all
    test_images: int = 1000  # 0: all
    gradient_images: int = 64
    precision: str = "auto"
    kept: Optional[str] = None  # a directory of kept training.json / gradients_at_init.json
    quick: bool = False

    @classmethod
    def create(cls, *, quick: bool = False, **given: Any) -> "LayerNormConfig":
        """The defaults (or the ``quick`` smoke run's), overridden by ``given`` and checked."""
        base = (
            dict(
                data=DEFAULT_DATA,
                depths=(2,),
                gradient_depths=(1, 2),
                seeds=2,
                gradient_seeds=2,
                width=16,
                steps=4,
                batch_size=16,
                train_images=0,
                test_images=0,
                gradient_images=8,
            )
            if quick
            else {}
        )
        given = {k: v for k, v in given.items() if v is not None}
        if not quick and not str(given.get("data", DEFAULT_DATA)).startswith("cifar"):
            base.update(train_images=0, test_images=0)  # the declared subsets are CIFAR's; else all
        unknown = sorted(set(given) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown option(s) of the layernorm part: {', '.join(unknown)}")
        values = {**base, **given, "quick": quick}
        values["measure"] = _names(values.get("measure", MEASUREMENTS), MEASUREMENTS, "measure")
        values["variants"] = _names(values.get("variants", tuple(VARIANTS)), tuple(VARIANTS), "variants")
        values["inits"] = _names(values.get("inits", INITS), INITS, "inits")
        for key in ("depths", "gradient_depths"):
            if key in values:
                values[key] = _ints(values[key], key)
        try:
            for key in (
                "seeds",
                "gradient_seeds",
                "seed",
                "width",
                "steps",
                "batch_size",
                "train_images",
                "test_images",
                "gradient_images",
            ):
                if key in values:
                    values[key] = int(values[key])
            values["lr"] = float(values.get("lr", cls.lr))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"the layernorm part's options must be numbers where numbers are expected: {err}"
            ) from None
        if values.get("kept") is not None:
            values["kept"] = str(Path(values["kept"]).resolve())  # a resume from elsewhere finds it
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        for name in ("seeds", "gradient_seeds", "width", "steps", "batch_size", "gradient_images"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.seeds < 2:
            raise ValueError(f"seeds must be >= 2 (paired seed intervals), got {self.seeds}")
        if "gradients" in self.measure and len(self.gradient_depths) < 2:
            raise ValueError(f"gradient_depths needs >= 2 depths (a slope against L), got {self.gradient_depths}")
        if self.train_images < 0 or self.test_images < 0 or self.seed < 0:
            raise ValueError("train_images, test_images and seed must be >= 0")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict) -> "LayerNormConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    # -- derived --------------------------------------------------------------------------
    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def gradient_seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.gradient_seeds))

    @property
    def num_heads(self) -> int:
        return max(1, self.width // 32)

    @property
    def warmup_steps(self) -> int:
        return int(self.steps * WARMUP_FRACTION)

    @property
    def tail_steps(self) -> int:
        """The steps whose mean training loss is the final loss."""
        return max(1, int(self.steps * FINAL_LOSS_FRACTION))

    def model_kwargs(self, variant: str, depth: int, init: str = "xavier", img_size: int = 32) -> dict:
        kwargs = dict(depth=depth, embed_dim=self.width, num_heads=self.num_heads, **VARIANTS[variant])
        if img_size != 32:
            kwargs["img_size"] = img_size
        if init != "timm":
            kwargs["weight_init"] = init
        return kwargs


def data_label(spec: str) -> str:
    """``CIFAR-10`` for ``cifar10:PATH`` (the words of the kept files), else the spec."""
    kind = spec.split(":", 1)[0]
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(kind, spec)


def _count(n: int) -> str:
    return f"fixed {n:,}" if n else "all"


def training_setup(c: LayerNormConfig) -> dict:
    """The training recipe in the words of ``training.json``'s ``setup``."""
    return dict(
        paper="Xiong et al. 2020 §3.3",
        model="cifar_vit",
        width=c.width,
        depths=list(c.depths),
        seeds=c.seed_list,
        steps=c.steps,
        lr=c.lr,
        batch_size=c.batch_size,
        optimizer=f"adamw ({BETAS[0]}, {BETAS[1]})",
        warmup=f"linear from {100 * WARMUP_START_FACTOR:g} % over the first {100 * WARMUP_FRACTION:g} % of the steps",
        train=f"{data_label(c.data)} train, {_count(c.train_images)} (crop + flip)",
        eval=f"{data_label(c.data)} test, {_count(c.test_images)}",
        thresholds=dict(XIONG_LOSS_MARGIN=T.XIONG_LOSS_MARGIN, XIONG_TRAINED_MIN_ACC=T.XIONG_TRAINED_MIN_ACC),
    )


def gradient_setup(c: LayerNormConfig) -> dict:
    """The measurement at initialisation in the words of ``gradients_at_init.json``."""
    return dict(
        paper="Xiong et al. 2020, Theorem 1 and Fig. 3",
        model="cifar_vit",
        width=c.width,
        depths=list(c.gradient_depths),
        seeds=c.gradient_seed_list,
        images=c.gradient_images,
        data=f"{data_label(c.data)} train, fixed subset",
        thresholds=dict(
            XIONG_SLOPE_MARGIN=T.XIONG_SLOPE_MARGIN,
            XIONG_LAYER_RATIO=T.XIONG_LAYER_RATIO,
            MIN_SEEDS_FOR_VERDICT=T.MIN_SEEDS_FOR_VERDICT,
        ),
    )


#: the keys of a setup that are one run's (or one cell's) recipe: which depths and seeds an
#: experiment holds, and the thresholds its verdicts use, do not change a run
RECIPE_EXCLUDES = ("depths", "seeds", "thresholds")


def same_recipe(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in RECIPE_EXCLUDES} == {
        k: v for k, v in b.items() if k not in RECIPE_EXCLUDES
    }
