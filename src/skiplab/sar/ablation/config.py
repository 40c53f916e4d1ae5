"""What ``skiplab ablate autoencoder`` runs: its configuration (checked up front), the tiles
every run sees, and its memory on disk (``ablation.json``).

See :mod:`skiplab.sar.ablation.experiment` for the design of the ablation.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ...studies.config import Budget

AE_VARIANTS = ("sar_ae_plain", "sar_ae_bottleneck", "sar_ae_all", "sar_ae_bottleneck_cbam")
CODEC_VARIANTS = ("sar_codec_plain", "sar_codec_bottleneck", "sar_codec_all", "sar_codec_bottleneck_cbam")
VARIANTS = CODEC_VARIANTS  # the default: the quantised, rate-trained codecs
KNOWN_VARIANTS = AE_VARIANTS + CODEC_VARIANTS
HOLDOUTS = ("site",)
STATE_FILE = "ablation.json"


@dataclass
class AblationConfig:
    """Everything the ablation needs (see the module documentation); :meth:`create` fills
    in the defaults of the default synthetic run, or of ``quick`` (seconds, for tests)."""

    data: Optional[list[str]] = None  # rasters or directories; None = synthetic
    eval_data: Optional[list[str]] = None  # also evaluate on these scenes
    looks: float = 2.0  # synthetic speckle looks
    latent: int = 16  # latent channels C
    widths: tuple[int, ...] = (16, 32, 64, 128)
    tile: int = 64  # training tile side
    eval_tile: Optional[int] = None  # eval_data tile side (default: tile)
    budget: str = "14"  # minutes for all runs (11.8 min wall measured), or "Nsteps"
    seeds: int = 3
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    train_tiles: int = 400  # synthetic
    test_tiles: int = 32  # synthetic
    val_tiles: int = 16  # synthetic
    precision: str = "auto"
    loss: dict = field(default_factory=lambda: {"mse": 1.0})  # {} = the reconstruct task's default
    variants: tuple[str, ...] = VARIANTS
    quick: bool = False
    # -- the codec (sar_codec_* variants) --
    train_bits: tuple[int, int] = (2, 6)  # bit depths drawn per training batch
    eval_bits: int = 4  # depth of validation (and of best.pt's choice)
    rate_weight: float = 0.002  # lambda of D + lambda * R (0: no rate term)
    rd_bits: tuple[int, ...] = (2, 4, 6)  # the rates of the evaluation: bits per latent value
    # -- held-out scenes --
    holdout: Optional[str] = None  # "site": leave-one-site-out folds over --data
    synthetic: int = 8  # synthetic training scenes per fold (holdout)

    @classmethod
    def create(cls, *, quick: bool = False, **given: Any) -> "AblationConfig":
        """Defaults, overridden by ``given``; ``quick``: 32 px tiles, tiny widths, 3 steps."""
        values: dict[str, Any] = {}
        if quick:
            values = dict(
                widths=(8, 8, 16, 16),
                latent=4,
                tile=32,
                budget="3steps",
                batch_size=4,
                train_tiles=16,
                test_tiles=4,
                val_tiles=4,
                seeds=2,
            )
        values.update({k: v for k, v in given.items() if v is not None})
        config = cls(quick=quick, **values)
        config.check()
        return config

    @classmethod
    def from_dict(cls, d: dict) -> "AblationConfig":
        d = dict(d)
        for key in ("widths", "variants", "train_bits", "rd_bits"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        self.parsed_budget  # parses
        if self.seeds < 2:
            raise ValueError(
                f"--seeds must be >= 2 (the seed-to-seed spread decides whether a "
                f"difference is real); found {self.seeds}"
            )
        unknown = [v for v in self.variants if v not in KNOWN_VARIANTS]
        if unknown or len(self.variants) < 2:
            raise ValueError(
                f"variants must be two or more of {', '.join(KNOWN_VARIANTS)}; found {list(self.variants)}"
            )
        if self.holdout is not None:
            if self.holdout not in HOLDOUTS:
                raise ValueError(f"--holdout must be one of {', '.join(HOLDOUTS)}; found {self.holdout!r}")
            if not self.data:
                raise ValueError("--holdout site needs --data (real scenes of two or more sites)")
            if any(v not in CODEC_VARIANTS for v in self.variants):
                raise ValueError("--holdout evaluates rate-distortion: use sar_codec_* variants")
        low, high = self.train_bits
        if not 1 <= low <= high <= 16 or not all(1 <= b <= 16 for b in self.rd_bits) or not self.rd_bits:
            raise ValueError(
                f"bits must be integers in 1..16 (train_bits low <= high); found "
                f"train_bits {self.train_bits}, rd_bits {self.rd_bits}"
            )
        if not (self.rate_weight >= 0 and math.isfinite(self.rate_weight)):
            raise ValueError(f"--rate-weight must be a finite number >= 0; found {self.rate_weight}")
        for name in ("latent", "tile", "batch_size", "train_tiles", "test_tiles", "val_tiles"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; found {getattr(self, name)}")
        stride = 2 ** len(self.widths)
        for name in ("tile", "eval_tile"):
            value = getattr(self, name)
            if value is not None and value % stride:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a multiple of the "
                    f"autoencoder's total stride {stride}; found {value}"
                )
        if not (self.looks > 0 and math.isfinite(self.looks)):
            raise ValueError(f"--looks must be a finite number > 0; found {self.looks}")

    @property
    def parsed_budget(self) -> Budget:
        budget = Budget.parse(self.budget)
        if budget.kind == "epochs":
            raise ValueError("--budget for the ablation is minutes (8, 8m) or steps per run (300steps)")
        return budget

    @property
    def model_kwargs(self) -> dict:
        return {"latent_channels": self.latent, "widths": list(self.widths)}

    def is_codec(self, variant: str) -> bool:
        return variant in CODEC_VARIANTS

    def kwargs_for(self, variant: str) -> dict:
        """``create_model`` keywords of ``variant`` (the codecs add their bit depths)."""
        if not self.is_codec(variant):
            return self.model_kwargs
        return dict(self.model_kwargs, train_bits=list(self.train_bits), eval_bits=self.eval_bits)

    def loss_for(self, variant: str) -> dict:
        """The loss terms of ``variant``: ``loss`` (or the task's default), plus the rate term
        ``rate_weight * R`` for a codec when ``rate_weight`` > 0."""
        terms = dict(self.loss)
        if self.is_codec(variant) and self.rate_weight > 0:
            terms = dict(terms or {"mse": 1.0}, rate=self.rate_weight)
        return terms

    @property
    def data_spec(self) -> str:
        """The trainer's ``data`` entry (a record of the source: tiles are passed in memory)."""
        if self.data is None:
            return f"synthetic-sar-{self.train_tiles},looks={self.looks:g}"
        return f"sar:{os.path.commonpath([str(Path(p).resolve()) for p in self.data])}"


# ---- data -------------------------------------------------------------------------------------
@dataclass
class AblationData:
    """The tiles every run sees: ``train``, ``val`` (picks best.pt) and ``test`` (the report)."""

    train: Any
    val: Any
    test: Any
    description: str
    extra: Any = None  # other scenes (eval_data), evaluated as well
    extra_description: str = ""


def load_data(config: AblationConfig) -> AblationData:
    """Training, validation and test tiles (deterministic; see the module documentation)."""
    from ..training.tiles import load_sar_tiles, synthetic_sar_tiles

    c = config
    if c.data is None:
        train = synthetic_sar_tiles(c.train_tiles, tile=c.tile, looks=c.looks, seed=0)
        val = synthetic_sar_tiles(c.val_tiles, tile=c.tile, looks=c.looks, seed=2, radiometry=train.radiometry)
        test = synthetic_sar_tiles(c.test_tiles, tile=c.tile, looks=c.looks, seed=1, radiometry=train.radiometry)
        what = (
            f"synthetic speckled scenes, {c.looks:g} look(s): {len(train)} training tiles "
            f"(seed 0), {len(val)} validation (seed 2), {len(test)} test tiles (seed 1)"
        )
    else:
        tiles = load_sar_tiles(c.data, tile=c.tile, name="data")
        n_test, n_val = max(1, len(tiles) // 10), max(1, len(tiles) // 20)
        if len(tiles) < n_test + n_val + 2:
            raise ValueError(
                f"{len(tiles)} tiles of {c.tile} px in {c.data}: too few to train and "
                f"hold out test and validation tiles (need >= {n_test + n_val + 2}); "
                f"use a smaller --tile or more scenes"
            )
        rest, test = tiles.split(n_test, seed=0)
        train, val = rest.split(n_val, seed=1)
        from ..raster.radiometry import Radiometry

        radiometry = Radiometry.fit(train.intensity(), masks=train.valid, source_dtype=tiles.radiometry.source_dtype)
        train, val, test = (_renormalise(d, radiometry) for d in (train, val, test))
        what = (
            f"{len(tiles)} tiles of {c.tile} px from {len(set(tiles.sources))} raster(s) "
            f"({', '.join(c.data)}): {len(train)} training, {len(val)} validation, "
            f"{len(test)} held-out test tiles"
        )
    data = AblationData(train, val, test, what)
    if c.eval_data is not None:
        tile = c.eval_tile or c.tile
        data.extra = load_sar_tiles(c.eval_data, tile=tile, radiometry=train.radiometry, name="eval")
        data.extra_description = (
            f"{len(data.extra)} tiles of {tile} px from {len(set(data.extra.sources))} other scene(s) "
            f"({', '.join(c.eval_data)}), normalised with the training radiometry "
            f"({train.radiometry.low_db:.1f} to {train.radiometry.high_db:.1f} dB; values outside clip)"
        )
    return data


def _renormalise(data, radiometry):
    from ..training.load import renormalise

    return renormalise(data, radiometry, data.name)
