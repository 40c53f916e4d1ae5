"""Read and write single-channel SAR rasters: GeoTIFF/TIFF (tifffile), PNG (Pillow), ``.npy``.

:func:`read_raster` returns a :class:`Raster`: the 2-D pixel array, the stored sample type,
the GeoTIFF georeferencing tags and the no-data value. :func:`write_raster` writes an array
back, the format following the suffix, in the data type and with the georeferencing of a
reference raster (``like=``), so a processed scene lands on the map where the input was.

- TIFF: uint8 / uint16 / int16 / float32 / float64 amplitude or intensity, and complex SLC
  (complex64/complex128), read as amplitude ``|z|`` (float32; ``quantity="amplitude"``).
  Georeferencing tags kept verbatim: ModelPixelScale (33550), ModelTiepoint (33922),
  ModelTransformation (34264), GeoKeyDirectory (34735), GeoDoubleParams (34736),
  GeoAsciiParams (34737), GDAL_METADATA (42112), GDAL_NODATA (42113).
- PNG: 8- or 16-bit greyscale (modes L, I;16, I, 1). PNG cannot hold floats.
- ``.npy``: any real or complex 2-D array.

Singleton axes are squeezed ([1, H, W] and [H, W, 1] are single-band). A raster with more than
one band (RGB PNG, a multi-sample or multi-page TIFF, a [k, H, W] array) is a ``ValueError``:
pick the band first (for SLC stored as two I/Q bands, combine them into a complex array).
:func:`write_raster` refuses to replace an existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...atomic import atomic_path
from ...errors import ConversionWarning

PathLike = Union[str, Path]
TIFF_SUFFIXES = (".tif", ".tiff")
SUFFIXES = TIFF_SUFFIXES + (".png", ".npy")
GEO_TAGS = {
    33550: "ModelPixelScaleTag",
    33922: "ModelTiepointTag",
    34264: "ModelTransformationTag",
    34735: "GeoKeyDirectoryTag",
    34736: "GeoDoubleParamsTag",
    34737: "GeoAsciiParamsTag",
    42112: "GDAL_METADATA",
    42113: "GDAL_NODATA",
}
GDAL_NODATA = 42113
PNG_MODES = {"L": np.uint8, "1": np.uint8, "I;16": np.uint16, "I": np.uint16}


@dataclass
class Raster:
    """One single-channel raster in memory.

    ``data``: 2-D array [H, W] (float32 amplitude for complex input, else as stored);
    ``dtype``: the stored sample type (complex for an SLC); ``quantity``: "amplitude" when
    derived from complex data, else None (the file does not say -- the caller does);
    ``tags``: {TIFF tag code: (datatype, count, value)} georeferencing to write back;
    ``nodata``: the no-data value (from GDAL_NODATA), or None.
    """

    data: np.ndarray
    dtype: np.dtype
    format: str
    quantity: Optional[str] = None
    tags: dict = field(default_factory=dict)
    nodata: Optional[float] = None
    path: Optional[Path] = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[0]), int(self.data.shape[1])

    def valid_mask(self, nodata: Optional[float] = None) -> np.ndarray:
        """True where the pixel holds data: finite and not equal to ``nodata`` (default: the
        raster's own no-data value)."""
        return valid_mask(self.data, self.nodata if nodata is None else nodata)

    def values(self, quantity: str) -> np.ndarray:
        """The pixels in ``quantity`` units: an SLC's amplitude is squared when "intensity" is
        asked for; other rasters are returned as stored (the file does not say what they hold)."""
        if quantity not in ("intensity", "amplitude"):
            raise ValueError(f"quantity must be 'intensity' or 'amplitude'; found {quantity!r}")
        if self.quantity == "amplitude" and quantity == "intensity":
            return np.square(self.data, dtype=np.float32)
        return self.data

    @property
    def georeferenced(self) -> bool:
        return any(code in self.tags for code in (33550, 33922, 34264))


def valid_mask(data: np.ndarray, nodata: Optional[float] = None) -> np.ndarray:
    """Boolean [H, W]: finite pixels not equal to ``nodata`` (NaN no-data is always masked)."""
    valid = np.isfinite(data)
    if nodata is not None and np.isfinite(nodata):
        valid &= data != nodata
    return valid


def raster_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"unsupported raster format {path.suffix!r} for {path}; expected one of {', '.join(SUFFIXES)}")
    return suffix


def _single_band(array: np.ndarray, path: Path) -> np.ndarray:
    squeezed = array.squeeze() if array.ndim > 2 else array
    if squeezed.ndim != 2:
        hint = (
            " (two bands may be an SLC's I/Q: combine them as I + 1j*Q)" if array.ndim == 3 and 2 in array.shape else ""
        )
        raise ValueError(
            f"{path}: expected a single-band raster [H, W]; found shape "
            f"{tuple(array.shape)} -- select one band first{hint}"
        )
    return squeezed


def _from_complex(array: np.ndarray) -> tuple[np.ndarray, Optional[str]]:
    if np.iscomplexobj(array):
        return np.abs(array).astype(np.float32), "amplitude"
    return array, None


def _read_tiff(path: Path, mmap: bool) -> tuple[np.ndarray, dict, Optional[float]]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]  # the image; overviews (pyramid levels) are not read
        page = series.pages[0]
        if page.samplesperpixel > 1:
            raise ValueError(
                f"{path}: expected a single-band raster; found "
                f"{page.samplesperpixel} samples per pixel (shape {series.shape})"
            )
        array = None
        if mmap:
            try:
                array = tifffile.memmap(path, series=0, mode="r")
            except ValueError:  # compressed or tiled: not memory-mappable, read it
                array = None
        if array is None:
            array = series.asarray()
        tags = {}
        for code in GEO_TAGS:
            tag = page.tags.get(code)
            if tag is not None:
                tags[code] = (int(tag.dtype), int(tag.count), tag.value)
    nodata = None
    if GDAL_NODATA in tags:
        text = str(tags[GDAL_NODATA][2]).strip().strip("\x00")
        try:
            nodata = float(text)
        except ValueError:
            raise ValueError(f"{path}: GDAL_NODATA tag {text!r} is not a number") from None
    return array, tags, nodata


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        mode = image.mode
        if mode not in PNG_MODES:
            raise ValueError(
                f"{path}: expected a single-band greyscale PNG (modes "
                f"{', '.join(PNG_MODES)}); found mode {mode!r} with "
                f"{len(image.getbands())} band(s) {image.getbands()}"
            )
        array = np.asarray(image)
    if mode == "I":  # Pillow may open 16-bit greyscale as 32-bit "I"
        if array.size and (array.min() < 0 or array.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"{path}: 32-bit PNG values outside the 16-bit range")
    return array.astype(PNG_MODES[mode], copy=False)


def read_raster(path: PathLike, *, mmap: bool = False) -> Raster:
    """Read a single-band raster (.tif/.tiff, .png, .npy); complex data becomes amplitude.

    ``mmap=True`` maps uncompressed TIFF and ``.npy`` pixels read-only from disk instead of
    loading them (for scenes larger than memory, processed in strips); compressed TIFF, PNG
    and complex data are read into memory."""
    path = Path(path)
    suffix = raster_suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"raster {path} does not exist")
    tags: dict = {}
    nodata = None
    if suffix in TIFF_SUFFIXES:
        array, tags, nodata = _read_tiff(path, mmap)
        fmt = "tiff"
    elif suffix == ".png":
        array, fmt = _read_png(path), "png"
    else:
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except ValueError as err:
            raise ValueError(f"{path}: not a plain numeric .npy array ({err})") from None
        fmt = "npy"
    if array.dtype.kind not in "biufc":
        raise ValueError(f"{path}: expected numeric pixels; found dtype {array.dtype}")
    array = _single_band(array, path)
    stored = array.dtype
    array, quantity = _from_complex(array)
    if stored.kind == "c":
        warnings.warn(
            ConversionWarning(
                f"{path}: a complex SLC ({stored}) read as amplitude |z|; "
                f"phase dropped, the output is float32 amplitude"
            ),
            stacklevel=2,
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not mmap:
        array = np.ascontiguousarray(array)
    return Raster(array, np.dtype(stored), fmt, quantity, tags, nodata, path)


def cast_to(data: np.ndarray, dtype: Union[str, np.dtype]) -> np.ndarray:
    """``data`` in ``dtype``: integers are rounded and clipped to the type's range; complex
    targets get the real values (phase cannot be recovered from amplitude)."""
    dtype = np.dtype(dtype)
    data = np.asarray(data)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(data), info.min, info.max).astype(dtype)
    return data.astype(dtype)


def tiff_extratags(tags: dict, nodata: Optional[float]) -> list:
    tags = dict(tags)
    if nodata is not None:
        tags[GDAL_NODATA] = (2, 0, _nodata_text(nodata))
    out = []
    for code, (datatype, count, value) in sorted(tags.items()):
        if isinstance(value, str):
            out.append((code, "s", 0, value, True))
        else:
            out.append((code, datatype, count, value, True))
    return out


def tags_to_json(tags: dict) -> dict:
    """GeoTIFF tags ``{code: (datatype, count, value)}`` as JSON types (bytes as base64)."""
    out = {}
    for code, (datatype, count, value) in tags.items():
        if isinstance(value, bytes):
            value = {"base64": base64.b64encode(value).decode("ascii")}
        elif isinstance(value, (tuple, list)):
            value = list(value)
        out[str(code)] = [int(datatype), int(count), value]
    return out


def tags_from_json(tags: dict) -> dict:
    """The tags back from :func:`tags_to_json`."""
    out = {}
    for code, (datatype, count, value) in tags.items():
        if isinstance(value, dict) and "base64" in value:
            value = base64.b64decode(value["base64"])
        elif isinstance(value, list):
            value = tuple(value)
        out[int(code)] = (datatype, count, value)
    return out


def _nodata_text(value: float) -> str:
    return "nan" if np.isnan(value) else repr(float(value)).removesuffix(".0")


def write_raster(
    path: PathLike,
    data: np.ndarray,
    *,
    like: Optional[Raster] = None,
    dtype: Union[str, np.dtype, None] = None,
    tags: Optional[dict] = None,
    nodata: Optional[float] = None,
    overwrite: bool = False,
) -> Path:
    """Write a 2-D array as .tif/.tiff, .png or .npy (by suffix).

    The data type is ``dtype``, else that of ``like`` (a raster read by :func:`read_raster`;
    complex SLC input is written back as float32 amplitude), else ``data``'s own. TIFF output
    carries ``tags`` (default: ``like``'s georeferencing) and ``nodata`` (default: ``like``'s).
    Refuses to replace an existing file unless ``overwrite=True``.
    """
    path = Path(path)
    suffix = raster_suffix(path)
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"expected a single-band [H, W] array to write; found shape {data.shape}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    if dtype is None and like is not None:
        dtype = np.float32 if like.dtype.kind == "c" else like.dtype
    out = cast_to(data, dtype if dtype is not None else data.dtype)
    tags = like.tags if (tags is None and like is not None) else (tags or {})
    nodata = like.nodata if (nodata is None and like is not None) else nodata
    if suffix == ".png" and out.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"PNG holds only uint8 or uint16 pixels; found {out.dtype} -- write "
            f".tif or .npy to keep floating-point values"
        )
    with atomic_path(path, suffix) as tmp:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, out, photometric="minisblack", extratags=tiff_extratags(tags, nodata))
        elif suffix == ".png":
            from PIL import Image

            Image.fromarray(out).save(tmp, format="PNG")
        else:
            with open(tmp, "wb") as fh:
                np.save(fh, out, allow_pickle=False)
    return path
