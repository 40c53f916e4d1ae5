"""Held-out scenes for the codec evidence: leave-one-site-out folds over real SAR scenes.

The six scenes of ``../shared/data/sar-real`` are the three polarisation channels (HH, HV,
VV) of two sites (AIRSAR San Francisco, PiSAR Tsukuba): channels of one site share their
geometry, so holding out *channels* would test on scenes whose streets and fields the model
has seen. A fold therefore holds out a whole **site** (:func:`site_of`: the file name without
its channel suffix): the model trains on the other sites' scenes plus synthetic scenes and
is tested on every channel of the site it never saw -- each real scene is a test scene
exactly once. With two sites that is 2-fold cross-validation across sensors.

Every scene, real or synthetic, training or test, is normalised **per scene**
(:func:`skiplab.sar.raster.scene_radiometry.scene_radiometry`: 0.5-99.5 % of its log-intensity to
[0, 1]) -- the mapping the latent file applies at encoding time, so training sees the
domain the codec is scored in. Training tiles (``tile`` px, stride ``tile / 2``) come from
the top of each real training scene; its bottom ``tile`` rows give non-overlapping
validation tiles (they pick ``best.pt`` and measure the plateau; test scenes are never
seen before the evaluation). Synthetic training scenes add tiles of the same kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..raster.io import read_raster
from ..raster.radiometry import Radiometry
from ..rate_distortion.measure import RDTile
from ..raster.scene_radiometry import scene_radiometry
from ..raster.speckle import synthetic_scenes
from ..training.tiles import SARTileDataset, cut_tiles, list_rasters

_CHANNEL = re.compile(r"[_-](ch\d+|hh|hv|vh|vv)$", re.IGNORECASE)
REFERENCE = Radiometry.fixed(-100.0, 0.0)  # only its quantity and percentiles matter per scene


def site_of(path: Path) -> str:
    """The site a scene belongs to: its file stem without a channel/polarisation suffix."""
    return _CHANNEL.sub("", Path(path).stem)


def normalise_scene(intensity: np.ndarray) -> np.ndarray:
    """The scene in [0, 1] through its own radiometry (no-data and zeros go to 0)."""
    data = np.asarray(intensity, dtype=np.float64)
    r = scene_radiometry(REFERENCE, data)
    return np.where(np.isfinite(data), r.forward(np.nan_to_num(data)), 0.0).astype(np.float32)


def _tiles(scenes: Sequence[np.ndarray], tile: int, stride: int) -> np.ndarray:
    return np.concatenate([cut_tiles(s, tile, stride).tiles for s in scenes])


@dataclass
class Fold:
    """One fold: training and validation tiles, and the held-out test scenes."""

    index: int
    test_site: str
    train: SARTileDataset
    val: SARTileDataset
    test: list[RDTile]
    train_sites: list[str]

    @property
    def description(self) -> str:
        return (
            f"fold {self.index}: test on {self.test_site} ({len(self.test)} scenes), train on "
            f"{', '.join(self.train_sites)} + synthetic ({len(self.train)} training, "
            f"{len(self.val)} validation tiles)"
        )


def _read(data: Sequence[str], tile: int) -> dict:
    files = list_rasters(list(data))
    scenes = {p: np.asarray(read_raster(p).values("intensity"), dtype=np.float32) for p in files}
    for p, s in scenes.items():
        if s.ndim != 2 or min(s.shape) < 2 * tile:
            raise ValueError(
                f"{p}: need a 2-D scene of at least {2 * tile} px a side for "
                f"{tile} px training and validation tiles; found {s.shape}"
            )
    return scenes


def training_sets(
    scenes: dict, *, tile: int, synthetic: int, looks: float, seed: int, name: str
) -> tuple[SARTileDataset, SARTileDataset]:
    """(train, val) tiles of ``scenes`` ({path: intensity}) plus ``synthetic`` scenes (see the
    module documentation), each scene normalised by its own radiometry."""
    synth = (
        [normalise_scene(s.numpy()) for s in synthetic_scenes(synthetic, 4 * tile, looks=looks, seed=seed)[1]]
        if synthetic
        else []
    )
    normal = [normalise_scene(s) for s in scenes.values()]
    train = [_tiles([n[:-tile]], tile, tile // 2) for n in normal] + ([_tiles(synth, tile, tile // 2)] if synth else [])
    val = [_tiles([n[-tile:]], tile, tile) for n in normal]
    pooled = Radiometry.fit(list(scenes.values()), source_dtype="float32")
    return (
        _dataset(np.concatenate(train), pooled, f"{name}/train", looks),
        _dataset(np.concatenate(val), pooled, f"{name}/val", looks),
    )


def make_folds(
    data: Sequence[str], *, tile: int = 64, synthetic: int = 8, looks: float = 2.0, seed: int = 0
) -> list[Fold]:
    """One :class:`Fold` per site of the rasters in ``data`` (at least two sites)."""
    scenes = _read(data, tile)
    files = list(scenes)
    sites = sorted({site_of(p) for p in files})
    if len(sites) < 2:
        raise ValueError(
            f"leave-one-site-out needs scenes of at least two sites; found "
            f"{len(files)} scene(s) of {len(sites)} site ({', '.join(sites)})"
        )
    folds = []
    for k, site in enumerate(sites):
        train_files = [p for p in files if site_of(p) != site]
        train, val = training_sets(
            {p: scenes[p] for p in train_files}, tile=tile, synthetic=synthetic, looks=looks, seed=seed, name=f"fold{k}"
        )
        test = [RDTile(p.stem, scenes[p]) for p in files if site_of(p) == site]
        folds.append(Fold(k, site, train, val, test, sorted({site_of(p) for p in train_files})))
    return folds


def all_scenes(
    data: Sequence[str], *, tile: int = 64, synthetic: int = 8, looks: float = 2.0, seed: int = 0
) -> tuple[SARTileDataset, SARTileDataset]:
    """(train, val) over *every* scene of ``data`` (no test site): the training set of a
    model to ship once the held-out evidence has been measured with :func:`make_folds`."""
    return training_sets(_read(data, tile), tile=tile, synthetic=synthetic, looks=looks, seed=seed, name="all")


def _dataset(tiles: np.ndarray, pooled: Radiometry, name: str, looks: float) -> SARTileDataset:
    """Per-scene normalised tiles. The radiometry recorded (in the checkpoint) is the pooled
    0.5-99.5 % fit of the real training scenes: what ``--radiometry model`` would apply; the
    tiles themselves went through each scene's own bounds, as the latent file does."""
    t = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))[:, None]
    return SARTileDataset(t, pooled, name, looks=looks)


__all__ = ["Fold", "all_scenes", "make_folds", "normalise_scene", "site_of", "training_sets"]
