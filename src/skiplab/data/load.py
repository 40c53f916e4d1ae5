"""One entry point per kind of data, for every ``--data`` spec:

- :func:`load_dataset` -- classification (:class:`ImageDataset`): cifar10/100, folder, shapes;
- :func:`load_segmentation` -- segmentation (:class:`SegmentationDataset`): synthetic:cells;
- other kinds are loaded by the package that registers them (:func:`register_data_kind`), e.g.
  ``skiplab.sar.load_sar`` for ``sar:PATH`` and ``synthetic:sar``, with the public helpers
  below (:func:`check_split`, :func:`holdout`, :func:`memo`, :func:`pick_split`...).

The source (CIFAR files, image folders, generator, rasters) is read once per process and
kept for the next call, so loading train, val and test of one run decodes nothing twice.
Every kind splits the same way: "val" is ``val_size`` samples held out of the training
data by a permutation seeded with ``seed``, "test" is the source's own test split.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Optional

import torch

from .dataset import ImageDataset, RawData, channel_histogram, channel_stats, split_indices, stats_from_histogram
from .spec import DataSpec, data_examples, parse_data_spec

SPLITS = ("train", "val", "test")
_MEMO: dict[tuple, RawData] = {}
_MEMO_SIZE = 2


def _read_source(spec: DataSpec, skip_bad: bool, cache_dir: Optional[str], with_test: bool = True) -> RawData:
    if spec.kind == "synthetic":
        from .synthetic import load_synthetic

        return load_synthetic(spec.name, spec.options)
    if spec.kind in ("cifar10", "cifar100"):
        from .cifar import load_cifar

        return load_cifar(spec.kind, spec.path, skip_bad=skip_bad, cache_dir=cache_dir, with_test=with_test)
    from .folder import load_folder_tree

    return load_folder_tree(spec.path, skip_bad=skip_bad, cache_dir=cache_dir, with_test=with_test)


def fingerprint(path: Optional[Path]) -> tuple:
    """Names, sizes and modification times of the files in ``path`` and its sub-folders
    (two levels: where the official CIFAR files live): cheap to take (no reads), and
    changes whenever one of them is replaced, edited, added or removed."""
    if path is None:
        return ()
    if path.is_file():
        st = path.stat()
        return (st.st_size, st.st_mtime_ns)
    entries = []
    for folder in [path] + sorted(p for p in path.iterdir() if p.is_dir()):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_file():
                st = entry.stat()
                entries.append((entry.path, st.st_size, st.st_mtime_ns))
    return (hash(tuple(entries)), len(entries))


def load_source(
    spec: DataSpec, skip_bad: bool = False, cache_dir: Optional[str] = None, with_test: bool = True
) -> RawData:
    """The stored splits of ``spec``, memoised per process (the last two sources; a memo
    entry is used only while the files' names, sizes and modification times are unchanged).
    Image-folder trees are memoised by :mod:`skiplab.data.folder` itself, by content key,
    and their test folder is only read ``with_test``."""
    if spec.path is not None and spec.path.is_dir() and (spec.kind == "folder" or (spec.path / "train").is_dir()):
        return _read_source(spec, skip_bad, cache_dir, with_test)
    key = (
        spec.kind,
        str(spec.path.resolve()) if spec.path else spec.text,
        spec.name,
        tuple(sorted(spec.options.items())),
        skip_bad,
        cache_dir,
        fingerprint(spec.path),
    )
    if key not in _MEMO:
        raw = _read_source(spec, skip_bad, cache_dir)
        while len(_MEMO) >= _MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = raw
    return _MEMO[key]


def clear_memo() -> None:
    """Forget the sources kept in memory."""
    from .folder import _LOADED

    _MEMO.clear()
    _LOADED.clear()


def load_dataset(
    spec: str,
    split: str = "train",
    *,
    val_size: int = 0,
    seed: int = 0,
    skip_bad: bool = False,
    cache_dir: Optional[str] = None,
) -> ImageDataset:
    """Load one split of a ``--data`` spec as an :class:`ImageDataset`.

    ``split`` is "train", "val" (``val_size`` images held out of the training split,
    stratified by class, chosen by a permutation seeded with ``seed``; "train" then
    excludes them) or "test". ``mean``/``std``
    are always those of the training part actually trained on. ``skip_bad`` leaves out
    images that cannot be decoded (counted in ``dataset.skipped``) instead of failing.
    ``cache_dir`` overrides where decoded image folders are cached (default
    ``$SKIPLAB_CACHE`` or ``~/.cache/skiplab``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; found {split!r}")
    if split == "val" and val_size <= 0:
        raise ValueError("split 'val' needs val_size > 0 (the number of training images to hold out)")
    parsed = parse_data_spec(spec)
    check_task(parsed, "classify")
    raw = load_source(parsed, skip_bad=skip_bad, cache_dir=cache_dir, with_test=split == "test")
    train_images, train_labels = raw.train
    if raw.train_hist is None:
        raw.train_hist = channel_histogram(train_images)
    hist = raw.train_hist
    train_idx = val_idx = None
    if val_size:
        train_idx, val_idx = split_indices(train_labels, val_size, seed)
        hist = hist - channel_histogram(train_images[val_idx])  # the part trained on
    mean, std = stats_from_histogram(hist)
    bad = list(raw.skipped_files.get("test" if split == "test" else "train", []))
    skipped = dict(skipped=len(bad), skipped_files=bad)
    if split == "test":
        if raw.test is None:
            raise ValueError(
                f"{raw.name} has no test split (an image folder needs a test/ "
                f"folder beside train/); hold out a validation split with "
                f"val_size instead"
            )
        images, labels = raw.test
        return ImageDataset(images, labels, raw.classes, mean, std, f"{raw.name}/test", **skipped)
    if split == "val":
        return ImageDataset(
            train_images[val_idx], train_labels[val_idx], raw.classes, mean, std, f"{raw.name}/val", **skipped
        )
    if train_idx is not None:
        train_images, train_labels = train_images[train_idx], train_labels[train_idx]
    return ImageDataset(train_images, train_labels, raw.classes, mean, std, f"{raw.name}/train", **skipped)


def check_task(spec: DataSpec, task: str) -> None:
    """A ValueError unless ``spec`` is data for ``task``, naming the specs that are."""
    if spec.task != task:
        raise ValueError(
            f"{spec.text!r} is {spec.task} data, not {task} data (task "
            f"{spec.task!r}); {task} needs {' or '.join(data_examples(task))}"
        )


def check_split(split: str, val_size: int) -> None:
    """A ValueError unless ``split`` is one of :data:`SPLITS` (val needs ``val_size`` > 0)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; found {split!r}")
    if split == "val" and val_size <= 0:
        raise ValueError("split 'val' needs val_size > 0 (the number of training samples to hold out)")


_COUNT = re.compile(r"^([a-z]+)(?:-(\d+)(k?))?$")


def synthetic_counts(spec: DataSpec, default: int, extra: tuple[str, ...]) -> tuple[int, int, int]:
    """(train count, test count, seed) of ``NAME[-N[k]]`` with options test=, seed=."""
    match = _COUNT.match(spec.name.lower())
    unknown = set(spec.options) - {"test", "seed", *extra}
    if not match or unknown:
        raise ValueError(
            f"data spec {spec.text!r}: expected {match.group(1) if match else 'NAME'}"
            f"[-N[k]] with options among test=, seed=, {'=, '.join(extra)}=; "
            f"found {'options ' + str(sorted(unknown)) if unknown else spec.name!r}"
        )
    train = int(match.group(2)) * (1000 if match.group(3) else 1) if match.group(2) else default
    try:
        test, seed = int(spec.options.get("test", max(train // 5, 1))), int(spec.options.get("seed", 0))
    except ValueError as err:
        raise ValueError(f"data spec {spec.text!r}: test= and seed= must be integers ({err})") from None
    if train <= 0 or test <= 0:
        raise ValueError(f"data spec {spec.text!r}: sizes must be positive; found train={train}, test={test}")
    return train, test, seed


def holdout(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices: ``val_size`` of ``range(n)`` drawn by a permutation seeded with
    ``seed``, both in stored order."""
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}) for a training split of {n} samples; found {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def memo(key: tuple, read: Callable[[], object]) -> object:
    """``read()``, kept for the next call with the same ``key`` (the last two sources)."""
    if key not in _MEMO:
        value = read()
        while len(_MEMO) >= _MEMO_SIZE:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = value
    return _MEMO[key]


def pick_split(parts: dict, split: str, val_size: int, seed: int, name: str):
    """The requested split from ``{"train": dataset, "test": dataset or None}``."""
    if split == "test":
        if parts.get("test") is None:
            raise ValueError(
                f"{name} has no test split; hold out a validation split with "
                f"val_size instead (or evaluate all of it as split 'train')"
            )
        return parts["test"]
    if not val_size:
        return parts["train"]
    train_idx, val_idx = holdout(len(parts["train"]), val_size, seed)
    return parts["train"].subset(
        val_idx if split == "val" else train_idx, f"{parts['train'].name.rsplit('/', 1)[0]}/{split}"
    )


def load_segmentation(spec: str, split: str = "train", *, val_size: int = 0, seed: int = 0, size: int = 64):
    """One split of a segmentation spec (``synthetic:cells...``) as a
    :class:`~skiplab.data.SegmentationDataset` of ``size`` px images; mean/std are those of
    the whole generated training split (the held-out val part included: they are fixed
    properties of the generator, not fitted)."""
    from .segmentation import SegmentationDataset, generate_cells
    from .segmentation import CLASSES as CELL_CLASSES

    check_split(split, val_size)
    parsed = parse_data_spec(spec)
    check_task(parsed, "segment")
    train, test, data_seed = synthetic_counts(parsed, 1000, ("boundary", "chans"))
    boundary = parsed.options.get("boundary", "0") not in ("0", "false", "no")
    chans = int(parsed.options.get("chans", 1))

    def read() -> dict:
        images, masks = generate_cells(train, size, data_seed, "train", boundary, chans)
        mean, std = channel_stats(images)
        classes = list(CELL_CLASSES[: 3 if boundary else 2])
        name = f"{parsed.text}@{size}px"
        test_images, test_masks = generate_cells(test, size, data_seed, "test", boundary, chans)
        return {
            "train": SegmentationDataset(images, masks, classes, mean, std, f"{name}/train"),
            "test": SegmentationDataset(test_images, test_masks, classes, mean, std, f"{name}/test"),
        }

    parts = memo(("cells", parsed.name, tuple(sorted(parsed.options.items())), size), read)
    return pick_split(parts, split, val_size, seed, parsed.text)


def default_cache_dir() -> Path:
    """``$SKIPLAB_CACHE`` or ``~/.cache/skiplab``."""
    return Path(os.environ.get("SKIPLAB_CACHE") or Path.home() / ".cache" / "skiplab")


__all__ = [
    "load_dataset",
    "load_segmentation",
    "load_source",
    "clear_memo",
    "default_cache_dir",
    "SPLITS",
    "check_split",
    "check_task",
    "fingerprint",
    "holdout",
    "memo",
    "pick_split",
    "synthetic_counts",
]
