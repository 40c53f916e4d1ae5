"""SAR scenes cut into tiles, the tile dataset and its batch loader.

    train = load_sar_tiles("scenes/", tile=256, stride=128)          # fits the radiometry
    test = load_sar_tiles("held_out/", radiometry=train.radiometry)   # reuses it
    loader = SARTileLoader(train, 16, augment=SARAugmentation())      # yields (x, target)

- :func:`tile_positions` covers a scene with ``tile x tile`` windows every ``stride`` pixels;
  the last row/column of windows is moved flush with the border so every pixel is covered
  (the grid that whole-scene reconstruction blends over). A scene smaller than one tile is a
  ``ValueError`` (the model's input size cannot be met); pad or crop it yourself.
- :func:`cut_tiles` drops tiles whose no-data fraction exceeds ``max_nodata_fraction``
  (counted in ``dropped``); a scene that is entirely no-data is a ``ValueError``.
- :class:`SARTileDataset` holds normalised log-intensity tiles ``[N, 1, T, T]`` float32 in
  [0, 1] with the :class:`~skiplab.sar.raster.radiometry.Radiometry` that maps them back to
  physical units (save ``radiometry.to_dict()`` with the model). No-data pixels of kept tiles
  are 0 and flagged in ``valid``.
- :class:`SARTileLoader` is the :class:`~skiplab.data.BatchLoader` (same deterministic order,
  sharding and resume) for float tiles; it yields ``(x, target)`` where the target is the
  input itself (autoencoding) or the clean scene of synthetic data (``target="clean"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ...data import BatchLoader, DihedralAugmentation
from ..raster.io import SUFFIXES, read_raster, valid_mask
from ..raster.radiometry import Radiometry, check_nonnegative
from ..raster.speckle import synthetic_scenes

# Crops and the 8 dihedral transforms only move pixels, so they keep speckle statistics and
# the calibrated level (see skiplab.data.dihedral): the SAR augmentation is that one.
SARAugmentation = DihedralAugmentation

PathLike = Union[str, Path]
TARGETS = ("input", "clean")


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one axis: every ``stride`` px, the last one flush with the end."""
    if tile < 1 or stride < 1:
        raise ValueError(f"tile and stride must be >= 1; found tile={tile}, stride={stride}")
    if length < tile:
        raise ValueError(
            f"the scene is {length} px along an axis, smaller than the {tile} px "
            f"tile (the model's input); pad the scene or use a smaller tile"
        )
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_positions(height: int, width: int, tile: int = 256, stride: Optional[int] = None) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the tiles covering a ``height x width`` scene, row-major."""
    stride = tile if stride is None else stride
    return [(y, x) for y in tile_origins(height, tile, stride) for x in tile_origins(width, tile, stride)]


@dataclass
class SceneTiles:
    """The kept tiles of one scene: ``tiles`` [N, T, T] (the raster's dtype), ``valid`` bool
    [N, T, T], their ``positions``, and how many tiles were ``dropped`` as mostly no-data."""

    tiles: np.ndarray
    valid: np.ndarray
    positions: list[tuple[int, int]]
    dropped: int


def cut_tiles(
    image: np.ndarray,
    tile: int = 256,
    stride: Optional[int] = None,
    *,
    valid: Optional[np.ndarray] = None,
    max_nodata_fraction: float = 0.5,
    name: str = "scene",
) -> SceneTiles:
    """Cut a 2-D scene into tiles, dropping those with more than ``max_nodata_fraction`` of
    no-data pixels (``valid`` False; default: non-finite pixels)."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D scene [H, W]; found shape {image.shape}")
    if not 0 <= max_nodata_fraction <= 1:
        raise ValueError(f"max_nodata_fraction must be in [0, 1]; found {max_nodata_fraction}")
    valid = valid_mask(image) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != image.shape:
        raise ValueError(f"{name}: valid mask {valid.shape} does not match the scene {image.shape}")
    if not valid.any():
        raise ValueError(f"{name}: every pixel is no-data (no-data fraction 100%); nothing to tile")
    try:
        positions = tile_positions(*image.shape, tile=tile, stride=stride)
    except ValueError as err:
        raise ValueError(f"{name} ({image.shape[0]}x{image.shape[1]}): {err}") from None
    keep = [(y, x) for y, x in positions if 1.0 - valid[y : y + tile, x : x + tile].mean() <= max_nodata_fraction]
    if not keep:
        raise ValueError(
            f"{name}: all {len(positions)} tiles are more than "
            f"{max_nodata_fraction:.0%} no-data (overall {1 - valid.mean():.1%}); "
            f"raise max_nodata_fraction to keep them"
        )
    tiles = np.stack([image[y : y + tile, x : x + tile] for y, x in keep])
    masks = np.stack([valid[y : y + tile, x : x + tile] for y, x in keep])
    return SceneTiles(tiles, masks, keep, len(positions) - len(keep))


@dataclass
class SARTileDataset:
    """Normalised log-intensity tiles ``[N, 1, T, T]`` (float32, [0, 1]) and their mapping.

    ``radiometry`` maps tiles back to physical units (``radiometry.inverse``); ``valid`` (bool
    like ``tiles``, or None when every pixel is valid) flags no-data pixels (set to 0);
    ``clean`` holds the noise-free tiles of synthetic data (same normalisation) or None;
    ``sources``/``positions`` say where each tile came from; ``skipped`` counts tiles dropped
    as mostly no-data and ``skipped_files`` the rasters left out by ``skip_bad``.
    """

    tiles: torch.Tensor
    radiometry: Radiometry
    name: str = "sar"
    valid: Optional[torch.Tensor] = None
    clean: Optional[torch.Tensor] = None
    sources: list[str] = field(default_factory=list)
    positions: list[tuple[int, int]] = field(default_factory=list)
    looks: Optional[float] = None
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        t = self.tiles
        if t.dim() != 4 or t.shape[1] != 1 or t.dtype != torch.float32:
            raise ValueError(f"tiles must be float32 [N, 1, T, T]; found {t.dtype} of shape {tuple(t.shape)}")
        for what, other in (("valid", self.valid), ("clean", self.clean)):
            if other is not None and other.shape != t.shape:
                raise ValueError(f"{what} has shape {tuple(other.shape)}; tiles are {tuple(t.shape)}")

    def __len__(self) -> int:
        return int(self.tiles.shape[0])

    @property
    def tile_size(self) -> int:
        return int(self.tiles.shape[-1])

    @property
    def in_chans(self) -> int:
        return 1

    @property
    def mean(self) -> tuple[float]:
        return (float(self.tiles.mean()),)

    @property
    def std(self) -> tuple[float]:
        return (float(self.tiles.std()),)

    def check_input_size(self, size: int) -> None:
        """Raise ``ValueError`` if the tiles are smaller than a model input of ``size`` px."""
        if self.tile_size < size:
            raise ValueError(
                f"tiles are {self.tile_size}x{self.tile_size}, smaller than the model's {size}x{size} input"
            )

    def subset(self, indices: torch.Tensor, name: Optional[str] = None) -> "SARTileDataset":
        idx = indices.tolist()
        pick = lambda t: None if t is None else t[indices]
        return SARTileDataset(
            self.tiles[indices],
            self.radiometry,
            name or self.name,
            pick(self.valid),
            pick(self.clean),
            [self.sources[i] for i in idx] if self.sources else [],
            [self.positions[i] for i in idx] if self.positions else [],
            self.looks,
            self.skipped,
            list(self.skipped_files),
        )

    def split(self, val_size: int, seed: int = 0) -> tuple["SARTileDataset", "SARTileDataset"]:
        """Deterministic (train, held-out) split of the tiles (same radiometry in both):
        ``val_size`` tiles drawn by a permutation seeded with ``seed``, both parts in stored
        order."""
        if not 0 < val_size < len(self):
            raise ValueError(f"val_size must be in [1, {len(self)}) for {len(self)} tiles; found {val_size}")
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(int(seed)))
        train, val = perm[val_size:].sort().values, perm[:val_size].sort().values
        return self.subset(train, f"{self.name}/train"), self.subset(val, f"{self.name}/val")

    def intensity(self, which: str = "tiles") -> torch.Tensor:
        """Physical intensity of ``tiles`` or ``clean`` [N, 1, T, T]."""
        data = self.clean if which == "clean" else self.tiles
        if data is None:
            raise ValueError(f"this dataset has no {which!r} tiles")
        return self.radiometry.inverse_intensity(data)

    def __repr__(self) -> str:
        t = self.tile_size
        return f"SARTileDataset({self.name!r}, {len(self)} tiles {t}x{t}, {self.radiometry}, skipped={self.skipped})"


def list_rasters(source: Union[PathLike, Sequence[PathLike]]) -> list[Path]:
    """Raster files of a directory (recursively, sorted), a file, or a list of either."""
    if isinstance(source, (str, Path)):
        source = [source]
    files: list[Path] = []
    for item in source:
        path = Path(item)
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    if not files:
        raise ValueError(f"no rasters ({', '.join(SUFFIXES)}) found in {list(map(str, source))}")
    return files


def load_sar_tiles(
    source: Union[PathLike, Sequence[PathLike]],
    *,
    tile: int = 256,
    stride: Optional[int] = None,
    quantity: str = "intensity",
    radiometry: Optional[Radiometry] = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
    max_nodata_fraction: float = 0.5,
    nodata: Optional[float] = None,
    looks: Optional[float] = None,
    skip_bad: bool = False,
    name: Optional[str] = None,
) -> SARTileDataset:
    """Read rasters holding ``quantity`` ("intensity" or "amplitude"; complex SLC is read as
    amplitude and squared for intensity), tile them, and normalise with ``radiometry`` -- or,
    for a training set, with a new one at ``percentiles`` of the kept tiles' valid pixels.

    No-data: non-finite pixels, pixels equal to the raster's GDAL_NODATA value, or to
    ``nodata`` if given. With ``skip_bad=True`` rasters that fail (multi-band, negative
    values, entirely no-data, wrong data type for ``radiometry``) are left out and listed in
    ``skipped_files``; otherwise the first one raises its ``ValueError``."""
    files = list_rasters(source)
    tiles, masks, sources, positions, bad = [], [], [], [], []
    dropped, dtype = 0, None
    for path in files:
        try:
            raster = read_raster(path)
            data = raster.values(quantity)
            stored = "float32" if raster.dtype.kind == "c" else raster.dtype.name
            if radiometry is not None:
                radiometry.check_compatible(stored, quantity)
            elif dtype is not None and np.dtype(stored).kind != np.dtype(dtype).kind:
                raise ValueError(f"{path}: {stored} data mixed with {dtype} rasters")
            scene = cut_tiles(
                data,
                tile,
                stride,
                valid=raster.valid_mask(nodata),
                max_nodata_fraction=max_nodata_fraction,
                name=str(path),
            )
            filled = np.where(scene.valid, scene.tiles, 0).astype(np.float32)
            check_nonnegative(filled, f"{path}: {quantity}")
        except ValueError:
            if not skip_bad:
                raise
            bad.append(str(path))
            continue
        dtype = dtype or stored
        tiles.append(filled)
        masks.append(scene.valid)
        sources += [str(path)] * len(scene.positions)
        positions += scene.positions
        dropped += scene.dropped
    if not tiles:
        raise ValueError(f"no usable raster among {len(files)} file(s); skipped: {bad}")
    if radiometry is None:
        radiometry = Radiometry.fit(tiles, percentiles, quantity=quantity, masks=masks, source_dtype=dtype)
    normalised = torch.from_numpy(np.concatenate([radiometry.forward(t) for t in tiles])[:, None])
    valid_t = torch.from_numpy(np.concatenate(masks)[:, None])
    normalised = normalised.masked_fill(~valid_t, 0.0)
    return SARTileDataset(
        normalised,
        radiometry,
        name or Path(files[0]).parent.name or "sar",
        None if bool(valid_t.all()) else valid_t,
        None,
        sources,
        positions,
        looks,
        dropped,
        bad,
    )


def synthetic_sar_tiles(
    count: int,
    *,
    tile: int = 256,
    looks: float = 1.0,
    seed: int = 0,
    radiometry: Optional[Radiometry] = None,
    percentiles: tuple[float, float] = (0.5, 99.5),
) -> SARTileDataset:
    """``count`` synthetic speckled intensity scenes of ``tile`` px (see
    :func:`skiplab.sar.raster.speckle.synthetic_scene`) with their clean versions, normalised with
    ``radiometry`` or one fitted at ``percentiles`` of the speckled tiles. Different seeds give
    disjoint scene sets (train on seed s, evaluate on seed s + 1)."""
    clean, speckled = synthetic_scenes(count, tile, looks=looks, seed=seed)
    clean, speckled = clean[:, None], speckled[:, None]
    if radiometry is None:
        radiometry = Radiometry.fit(speckled, percentiles, source_dtype="float32")
    return SARTileDataset(
        radiometry.forward(speckled),
        radiometry,
        f"synthetic-sar-L{looks:g}",
        None,
        radiometry.forward(clean),
        ["synthetic"] * count,
        [(0, 0)] * count,
        float(looks),
    )


class SARTileLoader(BatchLoader):
    """:class:`~skiplab.data.BatchLoader` over a :class:`SARTileDataset`: iterating yields
    ``(x, target)`` float32 [B, 1, T, T] on ``device``; ``target`` is ``x`` itself
    (``target="input"``) or the clean tiles (``"clean"``, synthetic data), augmented with
    the same crop and dihedral transform. Order, sharding and resume as BatchLoader."""

    def __init__(
        self,
        dataset: SARTileDataset,
        batch_size: int,
        *,
        target: str = "input",
        augment: Optional[SARAugmentation] = None,
        **kwargs,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}; found {target!r}")
        if target == "clean" and dataset.clean is None:
            raise ValueError(f"target='clean' needs clean tiles; {dataset.name} has none (only synthetic data does)")
        if augment is not None and augment.crop is not None:
            dataset.check_input_size(augment.crop)
        super().__init__(dataset, batch_size, augment=augment, **kwargs)
        self.target = target

    def make_batch(self, indices: torch.Tensor, epoch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dataset.tiles[indices]
        if self.target == "clean":
            x = torch.cat([x, self.dataset.clean[indices]], dim=1)
        x = x.to(self.device, non_blocking=self.device.type == "cuda")
        if self.augment is not None and not self.augment.is_identity:
            params = self.augment.sample_params(
                len(indices) * self.world_size, x.shape[2], x.shape[3], self.batch_generator(epoch, batch)
            )
            x = self.augment.apply(x, params.select(slice(self.rank, None, self.world_size)))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs, target = (x[:, :1], x[:, 1:]) if self.target == "clean" else (x, x)
        return inputs, target
