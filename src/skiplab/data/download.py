"""``skiplab data download cifar10|cifar100 DIR``: fetch the official archive, verify its MD5
and extract it safely.

The source is the official URL by default, or any URL urllib opens (``file://`` included)
or a local path. The archive is streamed to a temporary file beside ``DIR/NAME`` while its MD5 is
computed and renamed into place only if the MD5 matches; a mismatch fails naming the expected and the
found digest. Extraction first checks every member and refuses the whole archive if any is
not a regular file or folder (links of either kind, devices, FIFOs: CIFAR archives hold
none, and a chain of links inside DIR can still lead out of it) or would land outside DIR
(absolute paths, ``..``) -- nothing is written before all members pass.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..atomic import atomic_open

ARCHIVE_BASE_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class Archive:
    filename: str
    md5: str
    folder: str  # the top-level folder the archive extracts to


ARCHIVES = {
    ("cifar10", "python"): Archive("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),
    ("cifar10", "binary"): Archive(
        "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", "cifar-10-batches-bin"
    ),
    ("cifar100", "python"): Archive("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),
    ("cifar100", "binary"): Archive("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", "cifar-100-binary"),
}
DATASETS = ("cifar10", "cifar100")
FORMATS = ("python", "binary")


def file_md5(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _open_source(source: str):
    """A readable binary stream and its length (or None) for a URL or a local path."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https", "ftp", "file"):
        try:
            response = urllib.request.urlopen(source, timeout=60)  # noqa: S310 - scheme checked
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot fetch {source}: {err}") from None
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ValueError(
            f"unsupported URL scheme {parsed.scheme!r} in {source!r}; use http(s)://, file:// or a local path"
        )
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"archive source {source!r} is not a file")
    return open(path, "rb"), path.stat().st_size


def fetch(source: str, dest: Path, md5: str, progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
    """Stream ``source`` to ``dest`` verifying its MD5; the file appears only if it matches
    (written through :func:`skiplab.atomic.atomic_open`)."""
    h = hashlib.md5()
    stream, total = _open_source(source)
    done = 0
    with stream, atomic_open(dest, "wb") as out:
        for block in iter(lambda: stream.read(1 << 20), b""):
            out.write(block)
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
        found = h.hexdigest()
        if found != md5.lower():
            raise ValueError(
                f"MD5 mismatch for {source}: expected {md5.lower()}, found {found} "
                f"({done} bytes); the archive is corrupt or not the official one"
            )
    return dest


def _inside(base: Path, target: Path) -> bool:
    try:
        target.relative_to(base)
        return True
    except ValueError:
        return False


def _kind(member: tarfile.TarInfo) -> str:
    return (
        "a symbolic link"
        if member.issym()
        else "a hard link"
        if member.islnk()
        else "a device"
        if member.isdev()
        else "a FIFO"
        if member.isfifo()
        else f"an entry of type {member.type!r}"
    )


def check_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Every member of ``tar`` after checking all of them, or a ValueError naming the first
    that is refused: a link (symbolic or hard -- even one pointing inside ``dest``, since a
    chain of links can lead out and CIFAR archives hold none), a device or FIFO, or a path
    that is absolute, holds ``..`` or would land outside ``dest`` (also through a link already
    on disk). Nothing is written here."""
    base = dest.resolve()
    members = tar.getmembers()
    for m in members:
        if not (m.isfile() or m.isdir()):
            raise ValueError(
                f"refusing to extract the archive: {m.name!r} is {_kind(m)} "
                f"(only regular files and folders are extracted)"
            )
        if os.path.isabs(m.name) or ".." in Path(m.name).parts:
            raise ValueError(f"refusing to extract the archive: {m.name!r} would be written outside {str(dest)!r}")
        if not _inside(base, (base / m.name).resolve()):
            raise ValueError(
                f"refusing to extract the archive: {m.name!r} would be written "
                f"outside {str(dest)!r} (through a link on disk)"
            )
    return members


def extract_members(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """Write checked regular files and folders under ``dest`` (never following a link at
    the final component; modes: folders 0755, files 0644 or 0755 when executable). Used
    where ``tarfile`` has no ``data`` filter; a second guard beside :func:`check_members`."""
    base = dest.resolve()
    for m in members:
        target = base / m.name
        if not _inside(base, target.parent.resolve()):
            raise ValueError(f"refusing to extract {m.name!r}: outside {str(dest)!r}")
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o755 if m.mode & 0o100 else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
        with os.fdopen(fd, "wb") as out, tar.extractfile(m) as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract ``archive`` into ``dest`` after :func:`check_members` has accepted every
    member; returns member names. Uses tarfile's ``data`` filter where the Python has it
    (3.12+, and security releases of 3.8-3.11), else :func:`extract_members` -- never the
    ``fully_trusted`` behaviour."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = check_members(tar, dest)
            dest.mkdir(parents=True, exist_ok=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # a Python without extraction filters
                extract_members(tar, members, dest)
    except tarfile.TarError as err:
        raise ValueError(f"cannot read archive {str(archive)!r}: {err}") from None
    return [m.name for m in members]


def download(
    dataset: str,
    dest: str | os.PathLike,
    *,
    source: Optional[str] = None,
    fmt: str = "python",
    md5: Optional[str] = None,
    extract: bool = True,
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
) -> Path:
    """Fetch, verify and extract CIFAR ``dataset`` into ``dest``; returns the folder of
    batches (e.g. ``DEST/cifar-10-batches-py``), or the archive if ``extract=False``.

    ``source`` (default: the official URL) may be a URL or a local path; ``md5`` overrides
    the official digest (for mirrors of other builds). An archive already in ``dest`` with
    the right MD5 is not fetched again."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    info = ARCHIVES[(dataset, fmt)]
    expected = (md5 or info.md5).lower()
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / info.filename
    if not (archive.is_file() and file_md5(archive) == expected):
        fetch(source or ARCHIVE_BASE_URL + info.filename, archive, expected, progress)
    if not extract:
        return archive
    safe_extract(archive, dest)
    folder = dest / info.folder
    if not folder.is_dir():
        raise ValueError(f"archive {archive.name} did not contain {info.folder}/")
    return folder


def copy_progress_bar(desc: str) -> Callable[[int, Optional[int]], None]:
    """A tqdm progress callback for :func:`download`."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: Optional[int]) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, leave=True, disable=None)  # a terminal only
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return update


__all__ = [
    "download",
    "fetch",
    "safe_extract",
    "check_members",
    "extract_members",
    "file_md5",
    "ARCHIVES",
    "copy_progress_bar",
]
