"""Outputs checked before any work is done, and write failures said in one line.

    check_output_dir("runs/x", "--out")      # a directory that exists or can be created
    check_output_file("scene_ae.tif", "--out")  # a file whose directory can be written
    with output_errors("runs/x/checkpoints/last.pt", kept=True): save(...)

A command that trains for an hour or reconstructs a large scene first checks that its
output can be written at all -- not a file where a directory is meant, not inside a file,
not in a directory it cannot write (permission, read-only file system) -- and refuses in
one line (:class:`~skiplab.errors.OutputError`) before it starts. Nothing is created by the
check. What it cannot foresee (a disk that fills up during the run) is turned into the
same one-line error by :func:`output_errors`, naming the file and saying that the previous
version of it is kept (the writes themselves are atomic: :mod:`skiplab.atomic`).

This module imports only :mod:`skiplab.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator, Union

from .errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["WRITE_ERRNOS", "check_output_dir", "check_output_file", "output_errors", "describe_os_error"]

# errors of the file system, not of skiplab: said in one line instead of a traceback
WRITE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",
        "EDQUOT",
        "EFBIG",
        "EROFS",
        "EACCES",
        "EPERM",
        "ENOTDIR",
        "EISDIR",
        "ENAMETOOLONG",
        "EEXIST",
        "EIO",
    )
    if hasattr(errno, name)
)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_parent(path: Path, what: str, start: Path) -> None:
    """``start`` or its nearest existing ancestor must be a directory this process can write."""
    existing = _nearest_existing(start)
    if not existing.is_dir():
        raise OutputError(f"{what} {path}: {existing} is a file, not a directory; choose a path in a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(
            f"{what} {path}: cannot write in {existing} (permission denied or a "
            f"read-only file system); choose another place"
        )


def check_output_dir(path: PathLike, what: str = "--out") -> Path:
    """``path`` as a Path if it is a directory, or can be created as one, that this process
    can write in; else :class:`OutputError` in one line. Creates nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; expected a directory (a new one, or a run's own to continue)")
    _check_parent(path, what, path)
    return path


def check_output_file(path: PathLike, what: str = "--out") -> Path:
    """``path`` as a Path if a file can be written there (its directory exists or can be
    created, and can be written); else :class:`OutputError` in one line. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; expected a file name")
    _check_parent(path, what, path.parent)
    return path


def describe_os_error(err: OSError) -> str:
    """One line for a failed file operation: the file, and what the system said."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


@contextlib.contextmanager
def output_errors(path: PathLike, kept: bool = True) -> Iterator[None]:
    """Turn a failed write of ``path`` (a full disk, a read-only file system ...) into an
    :class:`OutputError` that names it; ``kept``: say that its previous version, if any, is
    still there (true of every write through :mod:`skiplab.atomic`)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        other = err.filename is not None and Path(os.fsdecode(err.filename)).parent != Path(path).parent
        if err.errno not in WRITE_ERRNOS or other:  # (another file's error says its own name)
            raise
        had = kept and os.path.exists(path)
        raise OutputError(
            f"cannot write {path}: {err.strerror or err}"
            + ("; its previous version is kept" if had else "; nothing was written")
        ) from err
