"""Write a single-band raster row block by row block, for scenes larger than memory.

:class:`RasterSink` creates the output in the data type, georeferencing tags and no-data
value of a reference raster (the same rules as :func:`skiplab.sar.write_raster` with
``like=``) and accepts rows in order:

- ``.npy``: a memory-mapped array (``numpy.lib.format.open_memmap``);
- ``.tif``/``.tiff``: an uncompressed TIFF memory-mapped with tifffile (BigTIFF above 2 GB),
  carrying the reference's GeoTIFF tags;
- ``.png``: rows are collected in memory and written by ``write_raster`` at the end (PNG
  cannot be written incrementally; it holds 8/16-bit scenes, which are small).

The file is built under a temporary name beside the target, its disk space allocated at
once (a full disk is an ``OSError`` when the sink opens, not a SIGBUS of the memory map
later), and renamed over it only by :meth:`RasterSink.close`, so an interrupted or failed run
leaves no half-written output, and an
existing file is refused unless ``overwrite=True`` -- checked when the sink is opened,
before any work is done.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...atomic import PendingFile
from .io import TIFF_SUFFIXES, Raster, cast_to, raster_suffix, tiff_extratags, write_raster

BIGTIFF_BYTES = 2**31


def check_output(path: Union[str, Path], overwrite: bool, *, inputs: tuple = ()) -> Path:
    """``path`` as a Path if it may be written: a supported suffix, not one of ``inputs``,
    and not an existing file unless ``overwrite`` (``FileExistsError``)."""
    path = Path(path)
    for source in inputs:
        if source is not None and path.exists() and path.resolve() == Path(source).resolve():
            raise ValueError(f"the output {path} is the input file; write somewhere else")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite (overwrite=True) to replace it")
    return path


def reserve(path: Union[str, Path]) -> None:
    """Allocate the disk blocks of the (sparse) file at ``path`` now: a memory-mapped file
    whose pages find the disk full dies of SIGBUS, an allocation fails with ENOSPC."""
    if not hasattr(os, "posix_fallocate"):  # (not on macOS or Windows)
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise  # (a file system without fallocate keeps its sparse file)
    finally:
        os.close(fd)


def output_dtype(like: Raster) -> np.dtype:
    """The data type written back: the reference's, float32 amplitude for a complex SLC."""
    return np.dtype(np.float32) if like.dtype.kind == "c" else np.dtype(like.dtype)


class RasterSink:
    """Rows ``[y0, y1)`` of an ``height x width`` raster written in order (see the module)."""

    def __init__(
        self, path: Union[str, Path], height: int, width: int, like: Raster, *, overwrite: bool = False
    ) -> None:
        self.path = check_output(path, overwrite, inputs=(like.path,))
        self.suffix = raster_suffix(self.path)
        self.height, self.width, self.like = int(height), int(width), like
        self.dtype = output_dtype(like)
        self.overwrite = overwrite
        self.rows_written = 0
        self.array: Optional[np.ndarray] = None
        self.pending: Optional[PendingFile] = None  # the file that becomes path at close()
        shape = (self.height, self.width)
        if self.suffix == ".png":
            self.array = np.zeros(shape, dtype=self.dtype)  # PNG: written at close
            return
        self.pending = PendingFile(self.path, self.suffix)
        self.tmp = self.pending.tmp
        try:
            if self.suffix == ".npy":
                self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=shape)
            elif self.suffix in TIFF_SUFFIXES:
                import tifffile

                big = self.height * self.width * self.dtype.itemsize >= BIGTIFF_BYTES
                self.array = tifffile.memmap(
                    self.tmp,
                    shape=shape,
                    dtype=self.dtype,
                    photometric="minisblack",
                    bigtiff=big,
                    extratags=tiff_extratags(like.tags, like.nodata),
                )
            reserve(self.tmp)
        except OSError as err:  # a full disk: said now, in one line, before any work
            self.abort()
            raise OSError(err.errno, err.strerror, str(self.path)) from None

    def write(self, rows: np.ndarray) -> None:
        """Append ``rows`` [h, width] (any float type; cast to the output type: integers
        rounded and clipped to their range)."""
        rows = np.asarray(rows)
        y0 = self.rows_written
        if rows.ndim != 2 or rows.shape[1] != self.width or y0 + rows.shape[0] > self.height:
            raise ValueError(
                f"rows of shape {rows.shape} do not fit at row {y0} of a {self.height}x{self.width} raster"
            )
        self.array[y0 : y0 + rows.shape[0]] = cast_to(rows, self.dtype)
        self.rows_written += rows.shape[0]

    def close(self) -> Path:
        """Finish the file (all rows must have been written) and move it into place."""
        if self.rows_written != self.height:
            self.abort()
            raise ValueError(f"{self.path}: {self.rows_written} of {self.height} rows written")
        if self.pending is None:  # PNG
            write_raster(self.path, self.array, like=self.like, overwrite=self.overwrite)
        else:
            self.array.flush()
            self.array = None
            self.pending.commit()
        return self.path

    def abort(self) -> None:
        """Drop the partial file (the target is left as it was)."""
        self.array = None
        if self.pending is not None:
            self.pending.abort()

    def __enter__(self) -> "RasterSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
