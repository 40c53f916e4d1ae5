"""Image-folder datasets: ``ROOT/CLASS/**/*.jpg|png|...``, class order = sorted folder names.

Images are decoded once with Pillow (in threads: Pillow releases the GIL while decoding)
into a uint8 tensor stored in the cache under a key computed from every file's relative
path and bytes; any edited, added, removed or renamed file gives a new key. The key itself
is remembered under the files' (size, mtime, inode) fingerprint, so a second load of an
unchanged folder only lists and stats the files (CIFAR-10's 55k JPEGs: about a second)
instead of re-reading them; ``verify=True`` re-reads anyway.
All images must have the same size. They become RGB, or one channel when every image is
grayscale; greyscale images among colour ones and dropped alpha channels are said in a
:class:`~skiplab.errors.ConversionWarning` (one line from the ``skiplab`` command). Undecodable files fail with their name, or are skipped and counted.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..atomic import write_text
from ..errors import ConversionWarning
from .cache import cache_file, cache_root, load_cached, save_cached
from .dataset import RawData, channel_histogram

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F", "P;L")
ALPHA_MODES = ("LA", "La", "RGBA", "RGBa", "PA")
TEST_FOLDERS = ("test", "val")
_LOADED: dict[Path, "FolderImages"] = {}  # in-process memo: cache file -> decoded folder


@dataclass
class FolderImages:
    """One decoded image folder."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    classes: list[str]
    bad_files: list[str]  # relative paths that could not be decoded
    bad_reasons: list[str]
    hist: torch.Tensor  # per-channel histogram [C, 256] (channel_histogram)
    converted: str = ""  # what decoding changed (grey to RGB, alpha dropped), or ""


@dataclass
class FolderScan:
    """The image files of one folder and a fingerprint of their (size, mtime, inode)."""

    classes: list[str]
    files: list[tuple[str, int]]  # (relative path, label), sorted
    fingerprint: str  # changes when any file is edited, added, removed, renamed


def _walk_images(folder: str, rel: str, out: list, stat_hash) -> None:
    """Append (relative path, stat) of image files under ``folder`` in sorted order."""
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        name = f"{rel}/{entry.name}"
        if entry.is_dir():
            _walk_images(entry.path, name, out, stat_hash)
        elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
            st = entry.stat()
            stat_hash.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
            out.append(name)


def scan_folder(root: Path) -> FolderScan:
    """Sorted class names, (relative path, label) of every image file under ``root``, and
    the stat fingerprint of those files (no file is opened)."""
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} is not a directory")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(
            f"image folder {str(root)!r} has no class folders; expected {root}/CLASS/IMAGE (e.g. {root}/cat/0001.jpg)"
        )
    stat_hash = hashlib.blake2b(digest_size=20)
    stat_hash.update(repr(("skiplab.folder.stat", str(root.resolve()), classes)).encode())
    files: list[tuple[str, int]] = []
    for label, name in enumerate(classes):
        found: list[str] = []
        _walk_images(os.path.join(root, name), name, found, stat_hash)
        if not found:
            raise ValueError(
                f"class folder {str(root / name)!r} contains no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        files.extend((f, label) for f in found)
    return FolderScan(classes, files, stat_hash.hexdigest())


def content_key(root: Path, files: list[tuple[str, int]], classes: list[str]) -> str:
    """Hash of the class list and every file's relative path, label and bytes."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(("skiplab.folder", classes)).encode())
    base = str(root)
    for rel, label in files:
        with open(os.path.join(base, rel), "rb") as fh:
            data = fh.read()
        h.update(f"\0{rel}\0{label}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def resolve_content_key(root: Path, scan: FolderScan, cache_dir: Optional[str] = None, verify: bool = False) -> str:
    """The content key of a folder. Reading and hashing every file is the slow part of a
    warm load, so the key is remembered under the folder's stat fingerprint (the way git's
    index avoids re-reading unchanged files); ``verify=True`` always re-reads."""
    memo = cache_root(cache_dir) / "folders" / "stat" / f"{scan.fingerprint}.key"
    if not verify:
        try:
            key = memo.read_text().strip()
            if len(key) == 40:
                return key
        except OSError:
            pass
    key = content_key(root, scan.files, scan.classes)
    try:
        write_text(memo, key)
    except OSError:
        pass  # an unwritable cache only costs the re-hash next time
    return key


def _decode(path: Path) -> tuple[np.ndarray, bool, bool]:
    """RGB array [H, W, 3], whether the file is grayscale and whether it had an alpha channel
    (dropped). Raises on a bad file."""
    with open(path, "rb") as fh:
        data = fh.read()
    with Image.open(io.BytesIO(data)) as img:
        alpha = img.mode in ALPHA_MODES or "transparency" in img.info
        return np.asarray(img.convert("RGB")), img.mode in GRAY_MODES, alpha


def conversion_note(gray: int, alpha: int, total: int, channels: int) -> str:
    """What decoding changed, in words ("" when nothing): greyscale images repeated to RGB
    in a folder of colour images, alpha channels dropped."""
    done = []
    if gray and channels == 3:
        done.append(f"{gray} greyscale image(s) repeated to 3 channels")
    if alpha:
        done.append(f"{alpha} image(s) with transparency had it dropped")
    return f"{' and '.join(done)} (of {total})" if done else ""


def decode_folder(
    root: Path, files: list[tuple[str, int]], workers: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor, list[int], list[str], str]:
    """Decode every file: (images [N_ok, C, H, W], labels, indices of bad files, reasons,
    what was converted: :func:`conversion_note`)."""
    workers = workers or min(8, os.cpu_count() or 1)

    def work(i: int):
        try:
            return _decode(root / files[i][0])
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            return err

    results: list = [None] * len(files)
    with ThreadPoolExecutor(workers) as pool:
        for i, result in enumerate(pool.map(work, range(len(files)), chunksize=256)):
            results[i] = result
    good = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
    bad = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    reasons = [f"{type(results[i]).__name__}: {results[i]}" for i in bad]
    if not good:
        return (torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), bad, reasons, "")
    shape = results[good[0]][0].shape
    for i in good:
        if results[i][0].shape != shape:
            raise ValueError(
                f"images in {str(root)!r} differ in size: {files[good[0]][0]} is "
                f"{shape[1]}x{shape[0]} but {files[i][0]} is "
                f"{results[i][0].shape[1]}x{results[i][0].shape[0]} (resize them to one size)"
            )
    array = np.stack([results[i][0] for i in good])
    images = torch.from_numpy(array).permute(0, 3, 1, 2)
    if all(results[i][1] for i in good):
        images = images[:, :1]
    labels = torch.tensor([files[i][1] for i in good], dtype=torch.int64)
    converted = conversion_note(
        sum(results[i][1] for i in good), sum(results[i][2] for i in good), len(good), images.shape[1]
    )
    return images.contiguous(), labels, bad, reasons, converted


def _check_bad(result: FolderImages, root: Path, skip_bad: bool) -> FolderImages:
    """``result``, or the error naming the first undecodable file unless ``skip_bad``."""
    bad = result.bad_files
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(
            f"cannot decode image {str(root / bad[0])!r}: {result.bad_reasons[0]}"
            f"{more}; fix or remove it, or pass skip_bad=True / --skip-bad to "
            f"skip bad images"
        )
    return result


def load_image_folder(
    root: Path, *, skip_bad: bool = False, cache_dir: Optional[str] = None, use_cache: bool = True, verify: bool = False
) -> FolderImages:
    """Decode (or fetch from the cache) one image folder ``root/CLASS/*``. ``verify=True``
    re-reads every file to compute the content key even when no file's size or
    modification time changed."""
    root = Path(root)
    scan = scan_folder(root)
    classes, files = scan.classes, scan.files
    entry = path = None
    if use_cache:
        path = cache_file("folders", resolve_content_key(root, scan, cache_dir, verify), cache_dir)
        if path in _LOADED:
            return _check_bad(_LOADED[path], root, skip_bad)
        entry = load_cached(path)
    if entry is None:
        images, labels, bad, reasons, converted = decode_folder(root, files)
        bad_files = [files[i][0] for i in bad]
        if len(labels):
            entry = dict(
                images=images,
                labels=labels,
                classes=classes,
                bad_files=bad_files,
                bad_reasons=reasons,
                hist=channel_histogram(images),
                converted=converted,
            )
            if path is not None:
                save_cached(path, entry)
        else:
            raise ValueError(
                f"none of the {len(files)} images in {str(root)!r} could be "
                f"decoded; first: {bad_files[0]!r} ({reasons[0]})"
            )
    result = FolderImages(
        entry["images"],
        entry["labels"],
        list(entry["classes"]),
        list(entry["bad_files"]),
        list(entry["bad_reasons"]),
        entry["hist"],
        str(entry.get("converted", "")),
    )
    if result.converted:
        warnings.warn(ConversionWarning(f"{root}: {result.converted}"), stacklevel=2)
    if path is not None:  # keep the last few in memory: train, val and test of one run
        while len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[path] = result
    return _check_bad(result, root, skip_bad)


def find_split_folders(path: Path) -> tuple[Path, Optional[Path]]:
    """(train folder, test folder or None): ``path/train`` + ``path/test`` (or ``val``) when
    there is a ``train/`` folder, else ``path`` itself with no test split."""
    if (path / "train").is_dir():
        test = next((path / t for t in TEST_FOLDERS if (path / t).is_dir()), None)
        return path / "train", test
    return path, None


def load_folder_tree(
    path: Path,
    *,
    skip_bad: bool = False,
    cache_dir: Optional[str] = None,
    name: Optional[str] = None,
    with_test: bool = True,
) -> RawData:
    """An image-folder tree as :class:`RawData`: train and, if present and ``with_test``,
    test."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"image folder {str(path)!r} is not a directory")
    train_dir, test_dir = find_split_folders(path)
    train = load_image_folder(train_dir, skip_bad=skip_bad, cache_dir=cache_dir)
    raw = RawData(
        name or f"folder:{path}",
        train.classes,
        (train.images, train.labels),
        skipped_files={"train": train.bad_files},
        train_hist=train.hist,
    )
    if test_dir is not None and with_test:
        test = load_image_folder(test_dir, skip_bad=skip_bad, cache_dir=cache_dir)
        if test.classes != train.classes:
            raise ValueError(
                f"class folders differ between {str(train_dir)!r} "
                f"({len(train.classes)} classes) and {str(test_dir)!r} "
                f"({len(test.classes)}): "
                f"{sorted(set(train.classes) ^ set(test.classes))}"
            )
        if test.images.shape[1:] != train.images.shape[1:]:
            raise ValueError(
                f"test images are {tuple(test.images.shape[1:])} but train images are {tuple(train.images.shape[1:])}"
            )
        raw.test = (test.images, test.labels)
        raw.skipped_files["test"] = test.bad_files
    return raw
