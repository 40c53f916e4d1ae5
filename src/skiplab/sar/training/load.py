"""SAR data for training: ``sar:PATH`` and ``synthetic:sar...`` specs as
:class:`~skiplab.sar.SARTileDataset` splits (the reconstruct task's loader), and the data kinds
they plug into :func:`skiplab.data.parse_data_spec`.

Splits follow :mod:`skiplab.data.load`: "val" is ``val_size`` tiles held out of the training
tiles by a permutation seeded with ``seed``, "test" the source's own test split.
"""

from __future__ import annotations

import torch

from ...data import DataSpec, parse_data_spec, register_data_kind, register_synthetic
from ...data.load import check_split, check_task, fingerprint, holdout, memo, pick_split, synthetic_counts
from ..raster.radiometry import Radiometry
from .tiles import SARTileDataset, load_sar_tiles, synthetic_sar_tiles

register_data_kind("sar", task="reconstruct", path=True, example="sar:PATH")
register_synthetic("sar", task="reconstruct", example="synthetic-sar", alias="synthetic-sar")


def _sar_sources(spec: DataSpec, tile: int, stride: int, skip_bad: bool) -> dict:
    """The train (and test) tiles of a SAR spec in a *lossless* normalisation (the exact
    min/max of each source, no clipping), to be renormalised once the training part is known."""
    if spec.kind == "synthetic":
        train, test, seed = synthetic_counts(spec, 200, ("looks",))
        looks = float(spec.options.get("looks", 1))
        lossless = Radiometry.fixed(-200.0, 200.0, clip=False, source_dtype="float32")
        return {
            "train": synthetic_sar_tiles(train, tile=tile, looks=looks, seed=seed, radiometry=lossless),
            "test": synthetic_sar_tiles(test, tile=tile, looks=looks, seed=seed + 1, radiometry=lossless),
        }
    split_dirs = (spec.path / "train").is_dir() and (spec.path / "test").is_dir()
    read = dict(tile=tile, stride=stride, percentiles=(0.0, 100.0), skip_bad=skip_bad)
    if not split_dirs:
        return {"train": load_sar_tiles(spec.path, **read), "test": None}
    return {"train": load_sar_tiles(spec.path / "train", **read), "test": load_sar_tiles(spec.path / "test", **read)}


def renormalise(data, radiometry, name: str):
    """``data`` (a :class:`SARTileDataset`) mapped to physical units and back with ``radiometry``."""

    def convert(tiles):
        if tiles is None:
            return None
        out = radiometry.forward(data.radiometry.inverse_intensity(tiles))
        return out if data.valid is None else out.masked_fill(~data.valid, 0.0)

    return SARTileDataset(
        convert(data.tiles),
        radiometry,
        name,
        data.valid,
        convert(data.clean),
        data.sources,
        data.positions,
        data.looks,
        data.skipped,
        data.skipped_files,
    )


def load_sar(
    spec: str,
    split: str = "train",
    *,
    val_size: int = 0,
    seed: int = 0,
    tile: int = 256,
    stride: int = 0,
    radiometry=None,
    skip_bad: bool = False,
    percentiles: tuple[float, float] = (0.5, 99.5),
):
    """One split of a SAR spec (``sar:PATH`` or ``synthetic:sar...``) as a
    :class:`~skiplab.sar.SARTileDataset` of ``tile`` px tiles cut every ``stride`` px
    (0: ``tile``, no overlap). The radiometry is ``radiometry`` (e.g. the one a model was
    trained with) or, by default, fitted at ``percentiles`` of the *training part* (without
    the held-out val tiles) and used for every split. An overlapping stride makes val tiles
    overlap training tiles of the same scene: keep the default for a clean hold-out."""
    check_split(split, val_size)
    parsed = parse_data_spec(spec)
    check_task(parsed, "reconstruct")
    stride = stride or tile
    key = ("sar", parsed.text, str(parsed.path), tile, stride, skip_bad, fingerprint(parsed.path))
    sources = memo(key, lambda: _sar_sources(parsed, tile, stride, skip_bad))
    train = sources["train"]
    train_idx = holdout(len(train), val_size, seed)[0] if val_size else torch.arange(len(train))
    if radiometry is not None:  # e.g. a trained model's: the data must be on its scale
        radiometry.check_compatible(train.radiometry.source_dtype, train.radiometry.quantity)
    else:
        part = train.subset(train_idx)
        radiometry = Radiometry.fit(
            part.intensity(), percentiles, masks=part.valid, source_dtype=train.radiometry.source_dtype
        )
    base = f"{train.name}-{tile}px" if parsed.kind == "sar" else f"{parsed.text}@{tile}px"
    parts = {
        "train": renormalise(train, radiometry, f"{base}/train"),
        "test": None if sources["test"] is None else renormalise(sources["test"], radiometry, f"{base}/test"),
    }
    return pick_split(parts, split, val_size, seed, parsed.text)
