"""The compressed scene: a versioned binary file of quantised, entropy-coded latents.

``skiplab encode SCENE --out SCENE.sarl`` writes (all integers little-endian)::

    b"SKLT"  u8 version (1)  u32 n                 magic, format version, header length
    n bytes   zlib(JSON header)                     model name + id, scene radiometry, grid,
                                                    latent shape, bits, coder, output dtype,
                                                    units, no-data, georeferencing tags
    4 C bytes float16 lo[C], hi[C]                  the quantiser's per-channel range
    u32 m, m bytes  zlib(packbits(valid))           the no-data mask (m = 0: all valid)
    u8 coder id, rest  the entropy-coded symbols    (:mod:`skiplab.sar.codec.entropy`)

Its size is the bit rate: :attr:`EncodedScene.bpp` = file bits / scene pixels, everything
included. The header names the model that wrote the file (``model_name``: the packaged
model's name or the checkpoint path; ``weights_sha256``) and its *model id*, a hash of the
architecture, keywords, weights and training radiometry: decoding with another checkpoint is
refused in one line naming the model expected, and without a checkpoint the packaged default
model decodes the files it wrote (:mod:`skiplab.sar.model.default`). The *radiometry* is the one the scene went through -- per scene by
default (:mod:`skiplab.sar.raster.scene_radiometry`) -- so the decoder maps back to the scene's own
units. Decoding is deterministic: the symbols come back bit-exactly, and
``decode(encode(scene))`` equals reconstructing the scene with the dequantised latent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ...atomic import write_bytes
from ..raster.io import Raster, read_raster, tags_from_json, tags_to_json
from ..raster.radiometry import Radiometry
from ..raster.sink import RasterSink, check_output, output_dtype
from ..model.checkpoint import PathLike, TrainedAutoencoder
from ..inference.grid import TileGrid, make_grid
from ..inference.scene import ArraySink, batched, blend_scene, encode_tiles, for_scene
from ..model.default import mismatch_message, model_for_latent, resolve_autoencoder, written_by
from .entropy import CODER_IDS, CODER_NAMES, decode_symbols, encode_symbols
from .quantize import UniformQuantizer, empirical_entropy

MAGIC = b"SKLT"
VERSION = 1
SUFFIX = ".sarl"


def model_id(ae: TrainedAutoencoder) -> str:
    """16 hex digits naming the model that can decode: name, keywords, weights, radiometry."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(
        json.dumps(
            [ae.model_name, ae.model_kwargs, ae.fingerprint, ae.radiometry.to_dict()], sort_keys=True, default=str
        ).encode()
    )
    return digest.hexdigest()


@dataclass
class EncodedScene:
    """A scene's latent file in memory, with its measured rates."""

    data: bytes
    pixels: int
    symbols: int
    payload_bytes: int
    entropy_bits_per_symbol: float
    coder: str
    bits: int
    path: Optional[Path] = None
    grid: Optional[TileGrid] = None
    note: Optional[str] = None

    @property
    def bpp(self) -> float:
        """Bits per scene pixel of the whole file (header and mask included)."""
        return 8 * len(self.data) / self.pixels

    @property
    def payload_bpp(self) -> float:
        """Bits per pixel of the entropy-coded symbols alone."""
        return 8 * self.payload_bytes / self.pixels

    @property
    def entropy_bpp(self) -> float:
        """Empirical entropy of the symbols (per-channel histograms) per scene pixel."""
        return self.entropy_bits_per_symbol * self.symbols / self.pixels

    def summary(self) -> str:
        return (
            f"{len(self.data)} bytes = {self.bpp:.4f} bpp ({self.bits}-bit symbols, coder "
            f"{self.coder}: payload {self.payload_bpp:.4f} bpp, empirical entropy "
            f"{self.entropy_bpp:.4f} bpp = {self.entropy_bits_per_symbol:.3f} bits/symbol)"
        )


def _pack(header: dict, quantizer: UniformQuantizer, valid: np.ndarray, coder: str, payload: bytes) -> bytes:
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    mask = b"" if valid.all() else zlib.compress(np.packbits(valid, axis=None).tobytes(), 9)
    return b"".join(
        [
            MAGIC,
            struct.pack("<BI", VERSION, len(head)),
            head,
            quantizer.to_bytes(),
            struct.pack("<I", len(mask)),
            mask,
            struct.pack("<B", CODER_IDS[coder]),
            payload,
        ]
    )


def unpack(data: bytes, name: str = "latent file") -> tuple[dict, UniformQuantizer, np.ndarray, str, bytes]:
    """``(header, quantizer, valid [H, W], coder, payload)`` of a latent file's bytes."""
    if data[:4] != MAGIC:
        raise ValueError(f"{name} is not a skiplab latent file (no {MAGIC!r} magic)")
    version, n = struct.unpack_from("<BI", data, 4)
    if version != VERSION:
        raise ValueError(f"{name} has latent format version {version}; this skiplab reads version {VERSION}")
    pos = 9 + n
    header = json.loads(zlib.decompress(data[9:pos]))
    channels = header["shape"][1]
    size = UniformQuantizer.nbytes(channels)
    quantizer = UniformQuantizer.from_bytes(header["bits"], channels, data[pos : pos + size])
    pos += size
    (m,) = struct.unpack_from("<I", data, pos)
    pos += 4
    h, w = header["grid"]["height"], header["grid"]["width"]
    valid = (
        np.ones((h, w), dtype=bool)
        if m == 0
        else np.unpackbits(np.frombuffer(zlib.decompress(data[pos : pos + m]), np.uint8), count=h * w)
        .astype(bool)
        .reshape(h, w)
    )
    pos += m
    coder = CODER_NAMES[data[pos]]
    return header, quantizer, valid, coder, data[pos + 1 :]


def _radiometry_list(r: Radiometry) -> list:
    """The scene mapping as ``[low_db, high_db, eps, quantity, clip]`` (what decoding needs)."""
    return [r.low_db, r.high_db, r.eps, r.quantity, r.clip]


def header_radiometry(header: dict) -> Radiometry:
    """The :class:`Radiometry` a latent file's scene went through."""
    low, high, eps, quantity, clip = header["radiometry"]
    return Radiometry(low, high, quantity, eps, clip, method="scene")


def _as_raster(scene: Union[Raster, np.ndarray, PathLike]) -> Raster:
    if isinstance(scene, Raster):
        return scene
    if isinstance(scene, np.ndarray):
        return Raster(scene, scene.dtype, "npy")
    return read_raster(scene, mmap=True)


def encode_scene_bytes(
    ae: Union[TrainedAutoencoder, PathLike, None],
    scene: Union[Raster, np.ndarray, PathLike],
    *,
    bits: int = 8,
    coder: str = "auto",
    radiometry: str = "scene",
    tile: Optional[int] = None,
    overlap: Optional[int] = None,
    batch_size: int = 8,
    progress: bool = False,
) -> EncodedScene:
    """Encode a scene (file, :class:`Raster` or array) into latent-file bytes with ``ae`` (a
    model, a checkpoint path, or None: the packaged default model)."""
    ae = ae if isinstance(ae, TrainedAutoencoder) else resolve_autoencoder(ae)
    ident = model_id(ae)
    raster = _as_raster(scene)
    grid, note = make_grid(*raster.shape, ae.reduction, tile, overlap)
    scene_ae = for_scene(ae, raster, radiometry)
    latent, valid = encode_tiles(scene_ae, raster, grid, batch_size, progress=progress)
    latent = latent.numpy().astype(np.float32)
    if not valid.any():
        raise ValueError(
            f"every pixel is no-data (no-data fraction 100% of {grid.height}x{grid.width}): nothing to encode"
        )
    quantizer = UniformQuantizer.fit(latent, bits)
    symbols = quantizer.quantize(latent)
    used, payload = encode_symbols(symbols, quantizer.bits, coder)
    header = dict(
        model=ae.model_name,
        model_id=ident,
        **written_by(ae),
        radiometry=_radiometry_list(scene_ae.radiometry),
        grid=grid.to_dict(),
        shape=list(latent.shape),
        bits=quantizer.bits,
        dtype=output_dtype(raster).name,
        quantity=raster.quantity,
        nodata=raster.nodata,
        tags=tags_to_json(raster.tags),
    )
    data = _pack(header, quantizer, valid, used, payload)
    return EncodedScene(
        data,
        grid.height * grid.width,
        symbols.size,
        len(payload),
        empirical_entropy(symbols),
        used,
        quantizer.bits,
        grid=grid,
        note=note,
    )


def encode_scene_file(
    ae: Union[TrainedAutoencoder, PathLike, None],
    scene: Union[Raster, PathLike],
    out: PathLike,
    *,
    overwrite: bool = False,
    **kwargs,
) -> EncodedScene:
    """:func:`encode_scene_bytes` written atomically to ``out`` (``.sarl``)."""
    out = Path(out)
    raster = _as_raster(scene)
    check_output(out, overwrite, inputs=(raster.path,))
    encoded = encode_scene_bytes(ae, raster, **kwargs)
    write_bytes(out, encoded.data)
    encoded.path = out
    return encoded


def _decoder(ae: Union[TrainedAutoencoder, PathLike, None], data: bytes, name: str):
    header, quantizer, valid, coder, payload = unpack(data, name)
    ae = model_for_latent(header, ae, name)
    if header["model_id"] != model_id(ae):
        raise ValueError(mismatch_message(header, ae, name))
    symbols = decode_symbols(coder, payload, tuple(header["shape"]), header["bits"])
    latent = torch.from_numpy(quantizer.dequantize(symbols))
    scene_ae = dataclasses.replace(ae, radiometry=header_radiometry(header))
    like = Raster(
        np.empty((0, 0)),
        np.dtype(header["dtype"]),
        "npy",
        header["quantity"],
        tags_from_json(header["tags"]),
        header["nodata"],
        None,
    )
    return scene_ae, TileGrid(**header["grid"]), latent, valid, like


def _decode_into(scene_ae, grid, latent, valid, like, sink, batch_size, strip_tiles) -> int:
    n_x = len(grid.xs)

    def rows():
        for i, y in enumerate(grid.ys):
            out = batched(scene_ae.decode, latent[i * n_x : (i + 1) * n_x], batch_size)
            yield y, out[:, 0].double().numpy(), valid[y : y + grid.tile]

    amplitude_out = like.quantity == "amplitude" and scene_ae.radiometry.quantity == "intensity"
    return blend_scene(
        scene_ae,
        like,
        grid,
        rows(),
        sink,
        strip_tiles=strip_tiles,
        nodata=like.nodata,
        amplitude_out=amplitude_out,
        integer=getattr(sink, "dtype", np.dtype(np.float64)).kind in "iu",
    )


def decode_scene_bytes(
    ae: Union[TrainedAutoencoder, PathLike, None], data: bytes, *, batch_size: int = 8
) -> np.ndarray:
    """The decoded scene (physical units, float64) of latent-file bytes; ``ae`` None: the
    packaged default model, when it wrote them (:func:`~skiplab.sar.model.default.model_for_latent`)."""
    scene_ae, grid, latent, valid, like = _decoder(ae, data, "latent data")
    sink = ArraySink()
    _decode_into(scene_ae, grid, latent, valid, like, sink, batch_size, 1)
    return sink.result()


def decode_scene_file(
    ae: Union[TrainedAutoencoder, PathLike, None],
    latent_file: PathLike,
    out: PathLike,
    *,
    batch_size: int = 8,
    strip_tiles: int = 1,
    overwrite: bool = False,
) -> tuple[Path, TileGrid]:
    """Decode a ``.sarl`` file into the raster ``out`` (format by suffix), in the data type,
    units, no-data value and georeferencing tags of the scene that was encoded; ``ae`` None:
    the packaged default model, when it wrote the file."""
    latent_file = Path(latent_file)
    if not latent_file.is_file():
        raise FileNotFoundError(f"latent file {latent_file} does not exist")
    scene_ae, grid, latent, valid, like = _decoder(ae, latent_file.read_bytes(), str(latent_file))
    with RasterSink(out, grid.height, grid.width, like, overwrite=overwrite) as sink:
        _decode_into(scene_ae, grid, latent, valid, like, sink, batch_size, strip_tiles)
        path = sink.close()
    return path, grid


def is_latent_file(path: PathLike) -> bool:
    """True when ``path`` starts with the binary latent file's magic."""
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


__all__ = [
    "EncodedScene",
    "MAGIC",
    "SUFFIX",
    "VERSION",
    "decode_scene_bytes",
    "header_radiometry",
    "decode_scene_file",
    "encode_scene_bytes",
    "encode_scene_file",
    "is_latent_file",
    "model_id",
    "unpack",
]
