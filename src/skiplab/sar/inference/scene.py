"""A trained SAR autoencoder applied to whole scenes: tiled, blended, streamed in strips.

    ae = load_autoencoder("runs/ae/checkpoints/best.pt")
    reconstruct_scene(ae, "scene.tif", "scene_ae.tif")       # same units, dtype, GeoTIFF tags
    encode_scene(ae, "scene.tif", "scene.latent.npz")         # the code + what decoding needs
    decode_latent(ae, "scene.latent.npz", "scene_ae.tif")     # == reconstruct_scene's output

The tile grid and its blending are in :mod:`skiplab.sar.inference.grid`.

**No-data.** NaN pixels and pixels equal to the raster's GDAL_NODATA value enter the
network as 0 (as in training, :func:`skiplab.sar.load_sar_tiles`) and are written back as
the no-data value (NaN for float rasters without one). Infinite and negative intensities are
a ``ValueError`` naming how many; a scene that is entirely no-data too.

**Strips.** The scene is read memory-mapped (uncompressed TIFF, ``.npy``) one row of tiles
at a time; finished rows are blended and written at once through
:class:`~skiplab.sar.raster.sink.RasterSink`, so memory holds about ``tile`` rows of the
scene, never all of it. Batches never span two tile rows, so a run in strips gives exactly
the result of a run on the whole scene (``strip_tiles=None``), and decoding a latent file
gives exactly the reconstruction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np
import torch

from ..raster.io import Raster, read_raster, valid_mask
from ..model.checkpoint import PathLike, TrainedAutoencoder
from .grid import Blender, TileGrid, make_grid


@dataclass
class InferenceResult:
    """What a whole-scene command did: ``path`` written, the ``grid``, no-data pixels
    passed through, wall-clock ``seconds`` and an optional ``note``."""

    path: Path
    grid: TileGrid
    nodata_pixels: int
    seconds: float
    note: Optional[str] = None


class SceneReader:
    """Rows of tiles of a raster as normalised log-intensity (float32, no-data as 0)."""

    def __init__(self, raster: Raster, ae: TrainedAutoencoder) -> None:
        self.raster, self.ae = raster, ae
        stored = "float32" if raster.dtype.kind == "c" else raster.dtype.name
        ae.check_raster(stored, None)
        self.square = raster.quantity == "amplitude" and ae.radiometry.quantity == "intensity"
        self.nodata_pixels = 0

    def row(self, grid: TileGrid, y: int) -> tuple[torch.Tensor, np.ndarray]:
        """The tiles of the window row at ``y``: [n_x, 1, T, T] and the rows' valid mask."""
        block = np.asarray(self.raster.data[y : y + grid.tile])
        name = self.raster.path or "scene"
        infinite = np.isinf(block)
        if self.raster.nodata is not None:
            infinite &= block != self.raster.nodata
        if infinite.any():  # NaN and the no-data value are no-data; infinity is bad data
            raise ValueError(
                f"{name}, rows {y}-{y + grid.tile}: values must be finite and >= 0; "
                f"found {int(infinite.sum())} infinite pixel(s) (mark them as NaN or "
                f"the no-data value to pass them through)"
            )
        valid = valid_mask(block, self.raster.nodata)
        values = np.where(valid, block, 0)
        if self.square:
            values = np.square(values, dtype=np.float64)
        try:
            normalised = self.ae.radiometry.forward(np.asarray(values, dtype=np.float64))
        except ValueError as err:
            raise ValueError(f"{name}, rows {y}-{y + grid.tile}: {err}") from None
        normalised = np.where(valid, normalised, 0).astype(np.float32)
        tiles = np.stack([normalised[:, x : x + grid.tile] for x in grid.xs])[:, None]
        return torch.from_numpy(tiles), valid


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``fn`` over ``x`` in batches of ``batch_size`` (fp32, no gradients)."""
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _output_values(
    ae: TrainedAutoencoder,
    normalised: np.ndarray,
    valid: np.ndarray,
    amplitude_out: bool,
    nodata: Optional[float],
    integer: bool,
) -> np.ndarray:
    """Blended normalised rows -> physical units of the input (float64), no-data restored."""
    physical = ae.radiometry.inverse(normalised).astype(np.float64)
    if amplitude_out:
        physical = np.sqrt(physical)
    if not valid.all():
        fill = nodata if nodata is not None else (0 if integer else np.nan)
        physical = np.where(valid, physical, fill)
    return physical


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr when ``enabled`` and stderr is a terminal (redirected to a log,
    its redraws would be noise)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tile", disable=None if enabled else True, leave=False, dynamic_ncols=True)


def _as_autoencoder(ae: Union[TrainedAutoencoder, PathLike, None]) -> TrainedAutoencoder:
    """``ae`` itself, a checkpoint path's model, or (None) the packaged default model."""
    from ..model.default import resolve_autoencoder

    return ae if isinstance(ae, TrainedAutoencoder) else resolve_autoencoder(ae)


def _as_raster(scene: Union[Raster, PathLike]) -> Raster:
    return scene if isinstance(scene, Raster) else read_raster(scene, mmap=True)


def run_tiles(
    ae: TrainedAutoencoder,
    raster: Raster,
    grid: TileGrid,
    step: Callable[[int, torch.Tensor, np.ndarray], None],
    *,
    desc: str,
    progress: bool = True,
) -> SceneReader:
    """Call ``step(y, tiles, valid)`` for each window row of the scene, with a progress bar."""
    reader = SceneReader(raster, ae)
    with progress_bar(grid.count, desc, progress) as bar:
        for y in grid.ys:
            tiles, valid = reader.row(grid, y)
            step(y, tiles, valid)
            bar.update(len(tiles))
    return reader


def encode_tiles(
    ae: TrainedAutoencoder, raster: Raster, grid: TileGrid, batch_size: int, *, progress: bool = True
) -> tuple[torch.Tensor, np.ndarray]:
    """The latents of every window of the scene, in grid order ([n, C, h, w]), and the
    scene's valid-pixel mask (rows as the windows cover them, cropped to the scene)."""
    latents: list[torch.Tensor] = []
    valid_rows: list[np.ndarray] = []

    def step(y: int, tiles: torch.Tensor, valid: np.ndarray) -> None:
        latents.append(batched(ae.encode, tiles, batch_size))
        keep = grid.ys[grid.ys.index(y) + 1] - y if y != grid.ys[-1] else grid.height - y
        valid_rows.append(valid[:keep])

    run_tiles(ae, raster, grid, step, desc="encode", progress=progress)
    return torch.cat(latents), np.concatenate(valid_rows)


def blend_scene(
    ae: TrainedAutoencoder,
    raster: Raster,
    grid: TileGrid,
    rows: Iterator[tuple[int, np.ndarray, np.ndarray]],
    sink,
    *,
    strip_tiles: Optional[int] = 1,
    nodata: Optional[float] = None,
    amplitude_out: bool = False,
    integer: bool = False,
) -> int:
    """Blend ``rows`` (window row ``y``, reconstructions [n_x, T, T], valid rows) into
    ``sink.write``; returns the number of no-data pixels passed through."""
    invalid = 0

    def emit(normalised: np.ndarray, valid: np.ndarray) -> None:
        nonlocal invalid
        invalid += int((~valid).sum())
        sink.write(_output_values(ae, normalised, valid, amplitude_out, nodata, integer))

    blender = Blender(grid, emit, strip_tiles)
    for y, tiles, valid in rows:
        blender.add_row(y, tiles, valid)
    check_some_valid(invalid, grid)
    return invalid


def check_some_valid(invalid: int, grid: TileGrid) -> None:
    """``ValueError`` for a scene whose no-data fraction is total."""
    if invalid >= grid.height * grid.width:
        raise ValueError(
            f"every pixel is no-data (no-data fraction 100% of {grid.height}x{grid.width}): nothing to reconstruct"
        )


class ArraySink:
    """A sink that keeps the rows in memory (:func:`reconstruct_array`)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def write(self, rows: np.ndarray) -> None:
        self.blocks.append(rows)

    def result(self) -> np.ndarray:
        return np.concatenate(self.blocks)


def reconstruct_rows(
    ae: TrainedAutoencoder, raster: Raster, grid: TileGrid, batch_size: int, progress: bool, desc: str = "reconstruct"
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Window rows of the scene through encode and decode (lazily, one row at a time)."""
    reader = SceneReader(raster, ae)
    with progress_bar(grid.count, desc, progress) as bar:
        for y in grid.ys:
            tiles, valid = reader.row(grid, y)
            z = batched(ae.encode, tiles, batch_size)
            out = batched(ae.decode, z, batch_size)[:, 0].double().numpy()
            bar.update(len(tiles))
            yield y, out, valid


def for_scene(ae: TrainedAutoencoder, raster: Raster, radiometry: str = "scene") -> TrainedAutoencoder:
    """``ae`` with the mapping the scene goes through: per-scene bounds
    (``"scene"``) or the checkpoint's fixed ones (``"model"``, refused in one line when most
    of the scene lies outside them); see :mod:`skiplab.sar.raster.scene_radiometry`."""
    import dataclasses

    from ..raster.scene_radiometry import resolve_radiometry

    if radiometry == "model":  # the data type first: the more specific message
        ae.check_raster("float32" if raster.dtype.kind == "c" else raster.dtype.name, None)
    mapping = resolve_radiometry(
        ae.radiometry,
        raster.data,
        radiometry,
        quantity=raster.quantity or ae.radiometry.quantity,
        nodata=raster.nodata,
        name=str(raster.path or "the scene"),
    )
    return ae if mapping is ae.radiometry else dataclasses.replace(ae, radiometry=mapping)


def prepare_scene(
    ae, scene, tile, overlap, radiometry: str = "scene"
) -> tuple[TrainedAutoencoder, Raster, TileGrid, Optional[str]]:
    ae = _as_autoencoder(ae)
    raster = _as_raster(scene)
    ae = for_scene(ae, raster, radiometry)
    grid, note = make_grid(*raster.shape, ae.reduction, tile, overlap)
    return ae, raster, grid, note


def reconstruct_array(
    ae: Union[TrainedAutoencoder, PathLike],
    scene: Union[np.ndarray, Raster],
    *,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 8,
    strip_tiles: Optional[int] = 1,
    progress: bool = False,
    radiometry: str = "scene",
) -> np.ndarray:
    """The blended reconstruction of an in-memory scene (physical units, float64);
    ``radiometry``: "scene" (per-scene normalisation) or "model" (the checkpoint's)."""
    raster = scene if isinstance(scene, Raster) else Raster(np.asarray(scene), np.asarray(scene).dtype, "npy")
    ae, raster, grid, _ = prepare_scene(ae, raster, tile, overlap, radiometry)
    sink = ArraySink()
    rows = reconstruct_rows(ae, raster, grid, batch_size, progress)
    blend_scene(
        ae,
        raster,
        grid,
        rows,
        sink,
        strip_tiles=strip_tiles,
        nodata=raster.nodata,
        amplitude_out=raster.quantity == "amplitude" and ae.radiometry.quantity == "intensity",
    )
    return sink.result()


def reconstruct_scene(
    ae: Union[TrainedAutoencoder, PathLike],
    scene: Union[Raster, PathLike],
    out: PathLike,
    *,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 8,
    strip_tiles: Optional[int] = 1,
    overwrite: bool = False,
    progress: bool = True,
    radiometry: str = "scene",
) -> InferenceResult:
    """Reconstruct a whole scene file into ``out`` (format by suffix) in the input's units,
    data type, georeferencing tags and no-data value, streaming strips of ``strip_tiles``
    window rows (None: the whole scene at once); ``radiometry`` as :func:`for_scene`."""
    from ..raster.sink import RasterSink

    start = time.perf_counter()
    ae, raster, grid, note = prepare_scene(ae, scene, tile, overlap, radiometry)
    with RasterSink(out, grid.height, grid.width, raster, overwrite=overwrite) as sink:
        rows = reconstruct_rows(ae, raster, grid, batch_size, progress)
        invalid = blend_scene(
            ae,
            raster,
            grid,
            rows,
            sink,
            strip_tiles=strip_tiles,
            nodata=raster.nodata,
            integer=sink.dtype.kind in "iu",
            amplitude_out=raster.quantity == "amplitude" and ae.radiometry.quantity == "intensity",
        )
        path = sink.close()
    return InferenceResult(path, grid, invalid, time.perf_counter() - start, note)


def scene_summary(result: InferenceResult) -> str:
    """One line: what was written, from how many tiles, how long it took."""
    g = result.grid
    nodata = f", {result.nodata_pixels} no-data px passed through" if result.nodata_pixels else ""
    return (
        f"{result.path}: {g.height}x{g.width} px from {g.count} tiles of {g.tile} px "
        f"(overlap {g.overlap}){nodata}, {result.seconds:.1f} s "
        f"({g.count / max(result.seconds, 1e-9):.2f} tiles/s)"
    )


__all__ = [
    "ArraySink",
    "InferenceResult",
    "SceneReader",
    "batched",
    "blend_scene",
    "encode_tiles",
    "for_scene",
    "prepare_scene",
    "progress_bar",
    "reconstruct_array",
    "reconstruct_scene",
    "run_tiles",
    "scene_summary",
]
