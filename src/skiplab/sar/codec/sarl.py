"""The compressed scene of the hyperprior codec: the ``.sarl`` file, format version 2.

``skiplab encode SCENE --out F.sarl --quality Q`` writes (integers little-endian)::

    b"SKLT"  u8 version (2)               magic, format version
    u8 k, k bytes, 8 bytes, u8            codec name, codec id, quality level
    f32 low, high, eps, gain, step        the scene radiometry (dB bounds of the normalised
                                          log-intensity, eps), the radiometric gain and the
                                          quantisation step of y (1: the trained one)
    u32 H, u32 W, u16 tile                scene size, coding tile
    u16 j, j bytes  zlib(JSON)            what the decoded raster needs beyond a float32
                                          intensity .npy (dtype, units, no-data, tags) and the
                                          rate level of a variable-rate codec (j = 0: none)
    u32 m, m bytes  zlib(packbits(valid)) the no-data mask (m = 0: every pixel valid)
    4 k bytes  the ANS words              z and y of every coding tile (:mod:`.ans`)
    u32 CRC-32 of every byte before it

The fixed header is ~60 bytes (0.007 bpp on a 256 px scene). Its size is the rate: bits per pixel = 8 x file bytes / scene pixels, everything included.
A file that is empty, truncated, or altered in any byte fails the checksum (or the magic)
and is refused in one line that says so (:class:`CorruptSceneFileError`); version 1 files
(the quantised-autoencoder latent files, :mod:`.latent_file`) are still read.

The scene is coded in its normalised log-intensity (:func:`scene_radiometry`: its own 0.5 and
99.5 % log-intensity percentiles to 0 and 1, clipped), in tiles of up to ``tile`` px (a
multiple of 64; edges padded by replication), each tile's symbols independent. A model that
minimises squared error in the log domain returns the geometric mean of the speckle, below
the arithmetic mean intensity (by e^-gamma = 0.56 for single-look intensity), and the clipped
bright targets lose their energy too: the encoder decodes its own symbols, measures the
ratio of the scene's mean intensity to the reconstruction's over the valid pixels, and
stores it as ``gain``; the decoder multiplies its intensity by it, so each reconstruction
keeps the scene's mean intensity (the radiometric calibration a SAR user relies on).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ...atomic import write_bytes
from ...errors import SkiplabError
from ..raster.io import Raster, read_raster, tags_from_json, tags_to_json, valid_mask, write_raster
from ..raster.radiometry import Radiometry
from ..raster.scene_radiometry import scene_radiometry
from .ans import decode_tiles, encode_tiles
from .hyperprior import REDUCTION
from .shipped import Codec, codec_for_file

MAGIC = b"SKLT"
VERSION = 2
LEGACY_VERSIONS = (1,)
CODING_TILE = 512
REFERENCE = Radiometry.fixed(-100.0, 0.0)  # only its percentiles matter: bounds are per scene
PathLike = Union[str, Path]


class CorruptSceneFileError(SkiplabError, ValueError):
    """A ``.sarl`` file that is empty, truncated or altered."""


@dataclass
class EncodedScene:
    """A scene's ``.sarl`` bytes and its measured rate."""

    data: bytes
    height: int
    width: int
    payload_bytes: int
    gain: float
    path: Optional[Path] = None

    @property
    def bpp(self) -> float:
        """Bits per scene pixel of the whole file."""
        return 8 * len(self.data) / (self.height * self.width)

    @property
    def payload_bpp(self) -> float:
        """Bits per pixel of the ANS words alone."""
        return 8 * self.payload_bytes / (self.height * self.width)


def coding_tiles(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """(y, x, h, w) of each coding tile over the scene padded to a multiple of 64."""
    if tile % REDUCTION or tile <= 0:
        raise ValueError(f"tile must be a positive multiple of {REDUCTION}, got {tile}")
    ph, pw = -(-height // REDUCTION) * REDUCTION, -(-width // REDUCTION) * REDUCTION
    return [(y, x, min(tile, ph - y), min(tile, pw - x)) for y in range(0, ph, tile) for x in range(0, pw, tile)]


def z_shapes(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """The (h, w) of each coding tile's hyper-latent z."""
    return [(th // REDUCTION, tw // REDUCTION) for _, _, th, tw in boxes]


def _padded(n: np.ndarray) -> np.ndarray:
    h, w = n.shape
    return np.pad(n, ((0, -h % REDUCTION), (0, -w % REDUCTION)), mode="edge")


_FIXED = struct.Struct("<8sBfffffIIH")
#: the header fields kept in its JSON part, written only when they differ from these
_OPTIONAL = {"dtype": "float32", "quantity": None, "nodata": None, "tags": {}, "level": None}


def _f32(x: float) -> float:
    return float(np.float32(x))


def _pack_header(header: dict) -> bytes:
    name = header["codec"].encode()
    if len(name) > 255:
        raise ValueError(f"codec name longer than 255 bytes: {header['codec']}")
    low, high, eps = header["radiometry"]
    extra = {k: header[k] for k, v in _OPTIONAL.items() if header[k] != v}
    extra_bytes = zlib.compress(json.dumps(extra, separators=(",", ":")).encode(), 9) if extra else b""
    return b"".join(
        [
            struct.pack("<B", len(name)),
            name,
            _FIXED.pack(
                bytes.fromhex(header["codec_id"]),
                header["quality"],
                low,
                high,
                eps,
                header["gain"],
                header["step"],
                header["height"],
                header["width"],
                header["tile"],
            ),
            struct.pack("<H", len(extra_bytes)),
            extra_bytes,
        ]
    )


def _unpack_header(data: bytes, pos: int) -> tuple[dict, int]:
    (k,) = struct.unpack_from("<B", data, pos)
    name = data[pos + 1 : pos + 1 + k].decode()
    pos += 1 + k
    ident, quality, low, high, eps, gain, step, h, w, tile = _FIXED.unpack_from(data, pos)
    pos += _FIXED.size
    (j,) = struct.unpack_from("<H", data, pos)
    extra = json.loads(zlib.decompress(data[pos + 2 : pos + 2 + j])) if j else {}
    header = dict(
        codec=name,
        codec_id=ident.hex(),
        quality=quality,
        radiometry=[low, high, eps],
        gain=gain,
        step=step,
        height=h,
        width=w,
        tile=tile,
        **{**_OPTIONAL, **extra},
    )
    return header, pos + 2 + j


def _radiometry(values: list) -> Radiometry:
    low, high, eps = values
    return Radiometry(low, high, "intensity", eps, True, method="scene")


def _intensity(
    codec: Codec, y_tiles: list, boxes: list, radiometry: Radiometry, shape: tuple[int, int], step: float
) -> np.ndarray:
    """The decoded scene's intensity (before the gain) from each tile's y symbols."""
    h, w = shape
    n = np.zeros((-(-h // REDUCTION) * REDUCTION, -(-w // REDUCTION) * REDUCTION), np.float32)
    for y_sym, (ty, tx, th, tw) in zip(y_tiles, boxes):
        n[ty : ty + th, tx : tx + tw] = codec.model.decompress(y_sym, step=step)[0, 0].numpy()
    return radiometry.inverse_intensity(np.clip(n[:h, :w].astype(np.float64), 0.0, 1.0))


def encode_scene(codec: Codec, scene: Union[Raster, np.ndarray, PathLike], *, tile: int = CODING_TILE) -> EncodedScene:
    """A scene (intensity or amplitude raster, array or path) as ``.sarl`` bytes."""
    raster = (
        scene
        if isinstance(scene, Raster)
        else (Raster(scene, scene.dtype, "npy") if isinstance(scene, np.ndarray) else read_raster(scene))
    )
    data = np.asarray(raster.values("intensity"), dtype=np.float64)
    if data.ndim != 2 or min(data.shape) < 1:
        raise ValueError(f"expected a 2-D scene; found shape {data.shape}")
    valid = valid_mask(data, raster.nodata)
    if not valid.any():
        raise ValueError("every pixel is no-data: nothing to encode")
    fitted = scene_radiometry(REFERENCE, data, nodata=raster.nodata)  # as the file stores it:
    radiometry = _radiometry([_f32(fitted.low_db), _f32(fitted.high_db), _f32(fitted.eps)])
    n = radiometry.forward(np.where(valid, data, np.median(data[valid]))).astype(np.float32)
    n[~valid] = float(np.mean(n[valid]))
    padded, boxes, step = _padded(n), coding_tiles(*data.shape, tile), _f32(codec.step)
    symbols = [
        codec.model.compress(
            torch.from_numpy(np.ascontiguousarray(padded[ty : ty + th, tx : tx + tw]))[None, None], step
        )
        for ty, tx, th, tw in boxes
    ]
    words = encode_tiles(symbols, codec.model.z_density.pmf_table())
    out = _intensity(codec, [s.y for s in symbols], boxes, radiometry, data.shape, step)
    gain = _f32(np.mean(data[valid]) / max(np.mean(out[valid]), 1e-300))
    header = dict(
        codec=codec.name,
        codec_id=codec.ident,
        quality=codec.quality,
        radiometry=[radiometry.low_db, radiometry.high_db, radiometry.eps],
        height=data.shape[0],
        width=data.shape[1],
        tile=tile,
        gain=gain,
        step=step,
        dtype=np.dtype(raster.dtype).name,
        quantity=raster.quantity,
        nodata=raster.nodata,
        tags=tags_to_json(raster.tags),
        level=codec.level if codec.model.lmbdas else None,
    )
    mask = b"" if valid.all() else zlib.compress(np.packbits(valid, axis=None).tobytes(), 9)
    payload = np.asarray(words, dtype="<u4").tobytes()
    body = b"".join(
        [MAGIC, struct.pack("<B", VERSION), _pack_header(header), struct.pack("<I", len(mask)), mask, payload]
    )
    return EncodedScene(body + struct.pack("<I", zlib.crc32(body)), data.shape[0], data.shape[1], len(payload), gain)


def file_version(data: bytes, name: str = "the file") -> int:
    """The format version of ``.sarl`` bytes; one-line errors for empty or foreign bytes."""
    if not data:
        raise CorruptSceneFileError(f"{name} is empty: expected a .sarl compressed scene")
    if data[:4] != MAGIC[: len(data[:4])] or len(data) < 5:
        if data[:4] == MAGIC[: len(data[:4])]:
            raise CorruptSceneFileError(f"{name} is truncated: {len(data)} bytes, shorter than a .sarl header")
        raise CorruptSceneFileError(f"{name} is not a .sarl compressed scene (no {MAGIC!r} magic)")
    version = data[4]
    if version not in (VERSION, *LEGACY_VERSIONS):
        raise CorruptSceneFileError(
            f"{name} has .sarl format version {version}; this skiplab "
            f"reads versions {', '.join(map(str, (*LEGACY_VERSIONS, VERSION)))}"
        )
    return version


def unpack(data: bytes, name: str = "the file") -> tuple[dict, np.ndarray, np.ndarray]:
    """``(header, valid [H, W], ANS words)`` of version-2 bytes, checksum verified."""
    file_version(data, name)
    (stored,) = struct.unpack("<I", data[-4:]) if len(data) >= 13 else (None,)
    if stored is None or zlib.crc32(data[:-4]) != stored:
        raise CorruptSceneFileError(
            f"{name} is corrupt: its CRC-32 checksum does not match ({len(data)} bytes; truncated or altered)"
        )
    try:
        header, pos = _unpack_header(data, 5)
        (m,) = struct.unpack_from("<I", data, pos)
        pos += 4
        h, w = header["height"], header["width"]
        valid = (
            np.ones((h, w), dtype=bool)
            if m == 0
            else np.unpackbits(np.frombuffer(zlib.decompress(data[pos : pos + m]), np.uint8), count=h * w)
            .astype(bool)
            .reshape(h, w)
        )
        words = np.frombuffer(data[pos + m : -4], dtype="<u4").astype(np.uint32)
    except (struct.error, zlib.error, ValueError, KeyError, UnicodeDecodeError) as err:
        raise CorruptSceneFileError(f"{name} is corrupt: {err}") from None
    return header, valid, words


def decode_bytes(
    data: bytes, checkpoint: Optional[PathLike] = None, name: str = "the file", *, codec: Optional[Codec] = None
) -> tuple[np.ndarray, dict]:
    """The decoded scene (intensity, float64, gain applied; no-data as NaN) and the header;
    the codec is ``codec`` (in memory), else ``checkpoint``'s, else the shipped one the file
    names -- refused in one line when its id is not the file's."""
    header, valid, words = unpack(data, name)
    if codec is not None and codec.ident != header["codec_id"]:
        raise ValueError(
            f"{name} was written by the codec {header['codec']} (id "
            f"{header['codec_id']}), not by {codec.name} (id {codec.ident})"
        )
    codec = codec or codec_for_file(header["codec"], header["codec_id"], checkpoint, name, header["level"])
    radiometry = _radiometry(header["radiometry"])
    h, w = header["height"], header["width"]
    boxes = coding_tiles(h, w, header["tile"])
    try:
        tiles = decode_tiles(
            words,
            codec.model.z_density.pmf_table(),
            z_shapes(boxes),
            codec.model.m,
            lambda z: codec.model.scale_index(z, header["step"])[0],
        )
    except (RuntimeError, ValueError, AssertionError) as err:
        raise CorruptSceneFileError(f"{name} is corrupt: the entropy-coded stream does not decode ({err})") from None
    out = _intensity(codec, [t.y for t in tiles], boxes, radiometry, (h, w), header["step"]) * header["gain"]
    return np.where(valid, out, np.nan), header


def encode_file(
    codec: Codec, scene: PathLike, out: PathLike, *, tile: int = CODING_TILE, overwrite: bool = False
) -> EncodedScene:
    """:func:`encode_scene` written atomically to ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    encoded = encode_scene(codec, scene, tile=tile)
    write_bytes(out, encoded.data)
    encoded.path = out
    return encoded


def decode_file(
    path: PathLike, out: PathLike, *, checkpoint: Optional[PathLike] = None, overwrite: bool = False
) -> tuple[Path, dict]:
    """Decode a version-2 ``.sarl`` file into the raster ``out`` in the scene's data type,
    units, no-data value and tags."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"compressed scene {path} does not exist")
    intensity, header = decode_bytes(path.read_bytes(), checkpoint, str(path))
    values = np.sqrt(intensity) if header["quantity"] == "amplitude" else intensity
    nodata = header["nodata"]
    values = np.where(np.isnan(values), np.nan if nodata is None else nodata, values)
    dtype = np.dtype(header["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    written = write_raster(
        out, values.astype(dtype), tags=tags_from_json(header["tags"]), nodata=nodata, overwrite=overwrite
    )
    return written, header


__all__ = [
    "CODING_TILE",
    "CorruptSceneFileError",
    "EncodedScene",
    "MAGIC",
    "VERSION",
    "coding_tiles",
    "z_shapes",
    "decode_bytes",
    "decode_file",
    "encode_file",
    "encode_scene",
    "file_version",
    "unpack",
]
