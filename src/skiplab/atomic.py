"""Atomic file writes: a file is either its previous complete version or the new complete one.

Every writer of a file that must survive a kill, a power cut or a full disk (checkpoints,
run logs, study state, caches, downloads, rasters, latent files) goes through this module:

    with atomic_path("runs/x/metrics.csv") as tmp:     # any writer that takes a path
        write_somehow(tmp)
    write_text(path, text); write_bytes(path, data); write_json(path, obj); torch_save(obj, path)
    with atomic_open(path, "wb") as f: ...              # streaming writes

The data goes to a temporary file in the target's directory (same file system, so the rename
is atomic on POSIX), which is flushed and fsynced, given the usual file mode (``0666 &
~umask``; ``mkstemp`` makes 0600), renamed over the target with :func:`os.replace`, and the
directory is fsynced so the rename itself survives a power cut. On an exception the
temporary file is removed and the target is left as it was. A :class:`PendingFile` does the
same for writers that keep a file open for a long time (memory-mapped rasters): create it,
write to ``.tmp``, then :meth:`~PendingFile.commit` or :meth:`~PendingFile.abort`.

This module imports nothing of skiplab (torch only inside :func:`torch_save`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "PendingFile",
    "atomic_path",
    "atomic_open",
    "write_bytes",
    "write_text",
    "write_json",
    "torch_save",
    "fsync_directory",
]


def _file_mode() -> int:
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: PathLike) -> None:
    """Make a rename or a new file in ``directory`` durable (no-op where directories cannot
    be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PendingFile:
    """A temporary file ``.tmp`` beside ``path`` that becomes ``path`` on :meth:`commit`.

    ``suffix`` ends the temporary name (writers such as ``tifffile`` or ``np.savez`` choose
    the format by it; default: the target's own suffix). As a context manager it commits on
    success and aborts on an exception.
    """

    def __init__(self, path: PathLike, suffix: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end = self.path.suffix if suffix is None else suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".partial{end}", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.done = False

    def commit(self) -> Path:
        """fsync the temporary file, give it the usual mode, rename it over ``path`` and
        fsync the directory. Returns ``path``."""
        if self.done:
            raise RuntimeError(f"{self.path}: already committed or aborted")
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(self.tmp, _file_mode())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self.done = True
        fsync_directory(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Remove the temporary file; ``path`` is left as it was."""
        self.done = True
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """A temporary path to write; it replaces ``path`` when the block ends without an error."""
    with PendingFile(path, suffix) as pending:
        yield pending.tmp


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """``open(tmp, mode)`` whose file replaces ``path`` when the block ends without an error."""
    if not mode.startswith(("w", "x")):
        raise ValueError(f"atomic_open writes a new file: mode must start with 'w', got {mode!r}")
    with PendingFile(path) as pending:
        try:
            with open(pending.tmp, mode.replace("x", "w"), **kwargs) as f:
                yield f
                f.flush()
        except OSError as err:  # a full disk: name the file the caller wrote
            if err.filename is not None or err.errno is None:
                raise
            raise OSError(err.errno, err.strerror, str(path)) from None


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def write_json(path: PathLike, data: Any, **dump_kwargs: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (``dump_kwargs`` go to :func:`json.dump`,
    default ``indent=2``)."""
    dump_kwargs.setdefault("indent", 2)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, **dump_kwargs)
    return Path(path)


def torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_open(path, "wb") as f:
        try:
            torch.save(obj, f)
        except RuntimeError as err:  # torch's zip writer reports a failed write (a full
            cause = err.__context__  # disk) as "unexpected pos": raise the write's OSError
            if isinstance(cause, OSError):
                raise OSError(cause.errno, cause.strerror, str(path)) from None
            raise
    return Path(path)
