"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in every form they come in.

``cifar10:PATH`` / ``cifar100:PATH`` accept, in this order of preference:

1. an image-folder tree ``PATH/train/CLASS`` + ``PATH/test/CLASS`` (e.g. cifar10-jpg);
2. the official python batches: ``PATH/cifar-10-batches-py`` (or PATH itself) holding
   ``data_batch_1..5``, ``test_batch``, ``batches.meta``; for CIFAR-100
   ``cifar-100-python`` with ``train``, ``test``, ``meta`` (fine labels);
3. the official binary batches: ``cifar-10-batches-bin`` (``data_batch_N.bin``: records of
   1 label byte + 3072 pixel bytes) or ``cifar-100-binary`` (``train.bin``/``test.bin``:
   coarse byte, fine byte, 3072 pixel bytes);
4. the official archive ``cifar-10-python.tar.gz`` etc., as PATH or inside PATH, read
   in memory without extracting.

Pickles are read with an unpickler that only admits the numpy types the official files use,
so a tampered file cannot run code.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from .dataset import RawData

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """Where the files of one official CIFAR format live and how to read them."""

    python_dir: str
    python_train: tuple[str, ...]
    python_test: str
    python_meta: str
    meta_key: str
    label_key: str
    binary_dir: str
    binary_train: tuple[str, ...]
    binary_test: str
    binary_meta: str
    label_bytes: int  # bytes before the pixels in a binary record; the label is the last one
    num_classes: int
    archives: tuple[str, ...]


LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        "label_names",
        "labels",
        "cifar-10-batches-bin",
        tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        "test_batch.bin",
        "batches.meta.txt",
        1,
        10,
        ("cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"),
    ),
    "cifar100": CifarLayout(
        "cifar-100-python",
        ("train",),
        "test",
        "meta",
        "fine_label_names",
        "fine_labels",
        "cifar-100-binary",
        ("train.bin",),
        "test.bin",
        "fine_label_names.txt",
        2,
        100,
        ("cifar-100-python.tar.gz", "cifar-100-binary.tar.gz"),
    ),
}

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Admits only the numpy array reconstruction the CIFAR batches need."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return getattr(importlib.import_module(module), name)


def _unpickle(data: bytes, what: str) -> dict:
    try:
        obj = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - any failure is a broken file
        raise ValueError(f"cannot read CIFAR python batch {what}: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR python batch {what} holds {type(obj).__name__}, not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


Reader = Callable[[str], bytes]  # file name inside the format's folder -> bytes


def _python_split(read: Reader, names: tuple[str, ...], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        batch = _unpickle(read(name), name)
        if "data" not in batch or label_key not in batch:
            raise ValueError(f"CIFAR python batch {name} lacks 'data' or {label_key!r}; found keys {sorted(batch)}")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != PIXELS or len(batch[label_key]) != len(data):
            raise ValueError(
                f"CIFAR python batch {name}: expected data [N, {PIXELS}] and N "
                f"labels; found {data.shape} and {len(batch[label_key])} labels"
            )
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(batch[label_key], dtype=np.int64)))
    return torch.cat(images), torch.cat(labels)


def _binary_split(read: Reader, names: tuple[str, ...], label_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    record = label_bytes + PIXELS
    images, labels = [], []
    for name in names:
        data = np.frombuffer(read(name), dtype=np.uint8)
        if data.size == 0 or data.size % record:
            raise ValueError(
                f"CIFAR binary batch {name} has {data.size} bytes, not a multiple of the {record}-byte record"
            )
        rows = data.reshape(-1, record)
        images.append(torch.from_numpy(rows[:, label_bytes:].reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.from_numpy(rows[:, label_bytes - 1].astype(np.int64)))
    return torch.cat(images), torch.cat(labels)


def _dir_reader(folder: Path) -> Reader:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"CIFAR file {str(path)!r} is missing")
        return path.read_bytes()

    return read


def _tar_reader(archive: Path) -> tuple[Reader, list[str]]:
    """Read members by path from a tar archive (no extraction); also its member names."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ValueError(f"cannot read archive {str(archive)!r}: {err}") from None

    def read(name: str) -> bytes:
        if name not in members:
            raise ValueError(f"archive {str(archive)!r} lacks {name!r}")
        return members[name]

    return read, list(members)


def _from_reader(kind: str, layout: CifarLayout, read: Reader, binary: bool, name: str) -> RawData:
    if binary:
        train = _binary_split(read, layout.binary_train, layout.label_bytes)
        test = _binary_split(read, (layout.binary_test,), layout.label_bytes)
        classes = [c for c in read(layout.binary_meta).decode().splitlines() if c.strip()]
    else:
        train = _python_split(read, layout.python_train, layout.label_key)
        test = _python_split(read, (layout.python_test,), layout.label_key)
        meta = _unpickle(read(layout.python_meta), layout.python_meta)
        classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[layout.meta_key]]
    if len(classes) != layout.num_classes:
        raise ValueError(f"{kind} metadata lists {len(classes)} classes; expected {layout.num_classes}")
    for split, (_, labels) in (("train", train), ("test", test)):
        if int(labels.min()) < 0 or int(labels.max()) >= layout.num_classes:
            raise ValueError(f"{kind} {split} labels outside [0, {layout.num_classes})")
    return RawData(name, classes, train, test)


def _load_archive(kind: str, layout: CifarLayout, archive: Path, name: str) -> RawData:
    read, members = _tar_reader(archive)
    for folder, binary in ((layout.python_dir, False), (layout.binary_dir, True)):
        if any(m.startswith(folder + "/") for m in members):
            return _from_reader(kind, layout, lambda n, f=folder: read(f"{f}/{n}"), binary, name)
    raise ValueError(
        f"archive {str(archive)!r} holds neither {layout.python_dir}/ nor "
        f"{layout.binary_dir}/ (is it a {kind} archive?)"
    )


def load_cifar(
    kind: str, path: Path, *, skip_bad: bool = False, cache_dir: Optional[str] = None, with_test: bool = True
) -> RawData:
    """CIFAR-10/100 from any of the forms listed in the module docstring (``with_test=False``
    may leave out the test split of an image-folder tree)."""
    layout = LAYOUTS[kind]
    path = Path(path)
    name = f"{kind}:{path}"
    if path.is_file():
        return _load_archive(kind, layout, path, name)
    if (path / "train").is_dir():
        from .folder import load_folder_tree

        raw = load_folder_tree(path, skip_bad=skip_bad, cache_dir=cache_dir, name=name, with_test=with_test)
        if len(raw.classes) != layout.num_classes:
            raise ValueError(
                f"{kind} image folder {str(path / 'train')!r} has "
                f"{len(raw.classes)} class folders; expected {layout.num_classes}"
            )
        return raw
    for folder in (path / layout.python_dir, path):
        if (folder / layout.python_train[0]).is_file():
            return _from_reader(kind, layout, _dir_reader(folder), False, name)
    for folder in (path / layout.binary_dir, path):
        if (folder / layout.binary_train[0]).is_file():
            return _from_reader(kind, layout, _dir_reader(folder), True, name)
    for archive in layout.archives:
        if (path / archive).is_file():
            return _load_archive(kind, layout, path / archive, name)
    raise ValueError(
        f"no {kind} data found in {str(path)!r}; expected one of: train/ and test/ image "
        f"folders, {layout.python_dir}/, {layout.binary_dir}/, or "
        f"{' / '.join(layout.archives)} (fetch it with 'skiplab data download {kind} DIR')"
    )
