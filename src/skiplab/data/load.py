"""``load_dataset(spec, split)``: one entry point for every ``--data`` kind.

The source (CIFAR files, image folders, generator) is read once per process and kept for
the next call, so loading train, val and test of one run decodes nothing twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .dataset import (ImageDataset, RawData, channel_histogram, split_indices,
                      stats_from_histogram)
from .spec import DataSpec, parse_data_spec

SPLITS = ("train", "val", "test")
_MEMO: dict[tuple, RawData] = {}
_MEMO_SIZE = 2


def _read_source(spec: DataSpec, skip_bad: bool, cache_dir: Optional[str],
                 with_test: bool = True) -> RawData:
    if spec.kind == "synthetic":
        from .synthetic import load_synthetic
        return load_synthetic(spec.name, spec.options)
    if spec.kind in ("cifar10", "cifar100"):
        from .cifar import load_cifar
        return load_cifar(spec.kind, spec.path, skip_bad=skip_bad, cache_dir=cache_dir,
                          with_test=with_test)
    from .folder import load_folder_tree
    return load_folder_tree(spec.path, skip_bad=skip_bad, cache_dir=cache_dir,
                            with_test=with_test)


def _fingerprint(path: Optional[Path]) -> tuple:
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


def load_source(spec: DataSpec, skip_bad: bool = False, cache_dir: Optional[str] = None,
                with_test: bool = True) -> RawData:
    """The stored splits of ``spec``, memoised per process (the last two sources; a memo
    entry is used only while the files' names, sizes and modification times are unchanged).
    Image-folder trees are memoised by :mod:`skiplab.data.folder` itself, by content key,
    and their test folder is only read ``with_test``."""
    if spec.path is not None and spec.path.is_dir() and (
            spec.kind == "folder" or (spec.path / "train").is_dir()):
        return _read_source(spec, skip_bad, cache_dir, with_test)
    key = (spec.kind, str(spec.path.resolve()) if spec.path else spec.text, spec.name,
           tuple(sorted(spec.options.items())), skip_bad, cache_dir, _fingerprint(spec.path))
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


def load_dataset(spec: str, split: str = "train", *, val_size: int = 0, seed: int = 0,
                 skip_bad: bool = False, cache_dir: Optional[str] = None) -> ImageDataset:
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
        raise ValueError("split 'val' needs val_size > 0 (the number of training images "
                         "to hold out)")
    parsed = parse_data_spec(spec)
    raw = load_source(parsed, skip_bad=skip_bad, cache_dir=cache_dir,
                      with_test=split == "test")
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
            raise ValueError(f"{raw.name} has no test split (an image folder needs a test/ "
                             f"folder beside train/); hold out a validation split with "
                             f"val_size instead")
        images, labels = raw.test
        return ImageDataset(images, labels, raw.classes, mean, std, f"{raw.name}/test",
                            **skipped)
    if split == "val":
        return ImageDataset(train_images[val_idx], train_labels[val_idx], raw.classes, mean,
                            std, f"{raw.name}/val", **skipped)
    if train_idx is not None:
        train_images, train_labels = train_images[train_idx], train_labels[train_idx]
    return ImageDataset(train_images, train_labels, raw.classes, mean, std,
                        f"{raw.name}/train", **skipped)


def default_cache_dir() -> Path:
    """``$SKIPLAB_CACHE`` or ``~/.cache/skiplab``."""
    return Path(os.environ.get("SKIPLAB_CACHE") or Path.home() / ".cache" / "skiplab")


__all__ = ["load_dataset", "load_source", "clear_memo", "default_cache_dir", "SPLITS"]
