"""Latent files: a whole scene encoded by a SAR autoencoder, and decoded back.

:func:`encode_scene` writes a ``.npz`` holding

- ``latent``: float32 ``[N, C, T/r, T/r]``, the code of each of the N windows of the tile
  grid, row-major (``r`` the encoder's total stride);
- ``valid``: the scene's valid-pixel mask, bit-packed (``numpy.packbits``), when it has
  no-data pixels;
- ``meta``: one JSON string -- the format tag, the tile grid (scene height and width, tile,
  overlap), the radiometry, the model (architecture, keywords, name, the SHA-256 of its
  weights and their short fingerprint),
  and the output raster's data type, quantity, no-data value and georeferencing tags.

:func:`decode_latent` decodes the windows and blends them exactly as
:func:`~skiplab.sar.inference.scene.reconstruct_scene` does, so ``decode(encode(scene))``
equals ``reconstruct(scene)`` bit for bit. Decoding with a checkpoint other than the one
that encoded (another model, other weights or another normalisation) is a ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import json
import time
import zipfile
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import torch

from ...atomic import atomic_path
from ..raster.io import Raster, tags_from_json, tags_to_json
from ..raster.radiometry import Radiometry
from ..raster.sink import RasterSink, check_output, output_dtype
from ..model.checkpoint import PathLike, TrainedAutoencoder
from ..model.default import mismatch_message, model_for_latent, resolve_autoencoder, written_by
from .grid import TileGrid
from .scene import InferenceResult, batched, blend_scene, check_some_valid, encode_tiles, prepare_scene

FORMAT = "skiplab.sar_latent/1"


def encode_scene(
    ae: Union[TrainedAutoencoder, PathLike, None],
    scene: Union[Raster, PathLike],
    out: PathLike,
    *,
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    radiometry: str = "scene",
) -> InferenceResult:
    """Encode every window of a scene into the float32 latent file ``out`` (``.npz``);
    the quantised, entropy-coded file is :func:`skiplab.sar.codec.latent_file.encode_scene_file`."""
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"a latent file is a .npz; found {out.name!r}")
    ae = ae if isinstance(ae, TrainedAutoencoder) else resolve_autoencoder(ae)
    model_radiometry = ae.radiometry
    ae, raster, grid, note = prepare_scene(ae, scene, tile, overlap, radiometry)
    check_output(out, overwrite, inputs=(raster.path,))
    latent, valid = encode_tiles(ae, raster, grid, batch_size, progress=progress)
    check_some_valid(int((~valid).sum()), grid)
    like = raster
    meta = dict(
        format=FORMAT,
        grid=grid.to_dict(),
        radiometry=ae.radiometry.to_dict(),
        model_radiometry=model_radiometry.to_dict(),
        model=ae.model_name,
        model_kwargs=ae.model_kwargs,
        weights=ae.fingerprint,
        **written_by(ae),
        dtype=output_dtype(like).name,
        quantity=like.quantity,
        nodata=like.nodata,
        tags=tags_to_json(like.tags),
        source=str(like.path) if like.path else None,
        latent_shape=list(latent.shape[1:]),
    )
    arrays = dict(latent=latent.numpy().astype(np.float32), meta=np.array(json.dumps(meta)))
    if not valid.all():
        arrays["valid"] = np.packbits(valid, axis=None)
    with atomic_path(out, ".npz") as tmp:
        np.savez(tmp, **arrays)
    return InferenceResult(out, grid, int((~valid).sum()), time.perf_counter() - start, note)


def _kind_of_file(path: Path) -> str:
    """What a file that is not a latent file looks like, by its first bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    kinds = {
        b"\x93NUMPY": "a NumPy array (.npy; a scene? reconstruct or encode it)",
        b"II*\x00": "a TIFF image (a scene? reconstruct or encode it)",
        b"MM\x00*": "a TIFF image (a scene? reconstruct or encode it)",
        b"\x89PNG": "a PNG image (a scene? reconstruct or encode it)",
    }
    found = next((kind for magic, kind in kinds.items() if head.startswith(magic)), None)
    return found or ("an empty file" if not head else "a file of another kind")


def read_latent(path: PathLike) -> tuple[np.ndarray, dict, np.ndarray]:
    """``(latent [N, C, h, w], meta, valid [H, W])`` of a latent file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latent file {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a latent file: expected a .sarl or .npz written by "
            f"skiplab encode; found {_kind_of_file(path)}"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            latent, meta = f["latent"], json.loads(str(f["meta"]))
            packed = f["valid"] if "valid" in f.files else None
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a skiplab latent file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} has format {meta.get('format')!r}; expected {FORMAT!r}")
    g = meta["grid"]
    shape = (g["height"], g["width"])
    valid = (
        np.ones(shape, dtype=bool)
        if packed is None
        else np.unpackbits(packed, count=shape[0] * shape[1]).astype(bool).reshape(shape)
    )
    return latent, meta, valid


def check_same_model(ae: TrainedAutoencoder, meta: dict, path: Path) -> None:
    """``ValueError`` unless ``ae`` is the model, weights and normalisation that encoded."""
    found = dict(
        model=ae.model_name, model_kwargs=ae.model_kwargs, weights=ae.fingerprint, radiometry=ae.radiometry.to_dict()
    )
    want = {k: meta[k] for k in found if k != "radiometry"}
    want["radiometry"] = Radiometry.from_dict(meta.get("model_radiometry", meta["radiometry"])).to_dict()
    differ = [
        k
        for k in found
        if json.dumps(found[k], sort_keys=True, default=str) != json.dumps(want[k], sort_keys=True, default=str)
    ]
    if differ:
        raise ValueError(f"{mismatch_message(meta, ae, str(path))} (it differs in {', '.join(differ)})")


def decode_latent(
    ae: Union[TrainedAutoencoder, PathLike, None],
    latent_file: PathLike,
    out: PathLike,
    *,
    batch_size: int = 8,
    strip_tiles: Optional[int] = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> InferenceResult:
    """Decode a latent file into the raster ``out`` (format by suffix), in the data type,
    units, no-data value and georeferencing tags of the scene that was encoded; ``ae`` None:
    the packaged default model, when it wrote the file."""
    from .scene import progress_bar

    start = time.perf_counter()
    latent_file = Path(latent_file)
    latent, meta, valid = read_latent(latent_file)
    ae = model_for_latent(meta, ae, str(latent_file))
    check_same_model(ae, meta, latent_file)
    ae = dataclasses.replace(ae, radiometry=Radiometry.from_dict(meta["radiometry"]))  # the scene's
    grid = TileGrid(**meta["grid"])
    if latent.shape[0] != grid.count:
        raise ValueError(f"{latent_file}: {latent.shape[0]} latents for a grid of {grid.count} tiles")
    like = Raster(
        np.empty((0, 0)),
        np.dtype(meta["dtype"]),
        "npy",
        meta["quantity"],
        tags_from_json(meta["tags"]),
        meta["nodata"],
        None,
    )
    n_x = len(grid.xs)

    def rows() -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        with progress_bar(grid.count, "decode", progress) as bar:
            for i, y in enumerate(grid.ys):
                z = torch.from_numpy(latent[i * n_x : (i + 1) * n_x])
                out_tiles = batched(ae.decode, z, batch_size)[:, 0].double().numpy()
                bar.update(len(z))
                yield y, out_tiles, valid[y : y + grid.tile]

    amplitude_out = like.quantity == "amplitude" and ae.radiometry.quantity == "intensity"
    with RasterSink(out, grid.height, grid.width, like, overwrite=overwrite) as sink:
        invalid = blend_scene(
            ae,
            like,
            grid,
            rows(),
            sink,
            strip_tiles=strip_tiles,
            nodata=like.nodata,
            amplitude_out=amplitude_out,
            integer=sink.dtype.kind in "iu",
        )
        path = sink.close()
    return InferenceResult(path, grid, invalid, time.perf_counter() - start)


__all__ = ["FORMAT", "check_same_model", "decode_latent", "encode_scene", "read_latent"]
