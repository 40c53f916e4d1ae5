"""The on-disk tensor cache: decoded datasets stored under ``$SKIPLAB_CACHE`` (default
``~/.cache/skiplab``) by a key derived from the source's content, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..atomic import torch_save

CACHE_VERSION = 2  # bump when the stored layout or decoding changes


def cache_root(cache_dir: Optional[str | os.PathLike] = None) -> Path:
    """``cache_dir``, else ``$SKIPLAB_CACHE``, else ``~/.cache/skiplab``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("SKIPLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "skiplab"


def cache_file(kind: str, key: str, cache_dir: Optional[str | os.PathLike] = None) -> Path:
    return cache_root(cache_dir) / kind / f"{key}.pt"


def load_cached(path: Path) -> Optional[dict]:
    """The stored dict, or None if absent or unreadable (a broken entry is just a miss)."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable cache entry is rebuilt
        return None
    if not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION:
        return None
    return entry


def save_cached(path: Path, entry: dict) -> bool:
    """Write ``entry`` atomically (:func:`skiplab.atomic.torch_save`). Returns False (and
    leaves no partial file) when the cache directory is not writable: caching is an
    optimisation."""
    try:
        torch_save(dict(entry, version=CACHE_VERSION), path)
        return True
    except OSError:
        return False


def cache_entries(cache_dir: Optional[str | os.PathLike] = None) -> list[tuple[Path, int]]:
    """Every cache file with its size in bytes."""
    root = cache_root(cache_dir)
    if not root.is_dir():
        return []
    return [(p, p.stat().st_size) for p in sorted(root.rglob("*.pt")) if p.is_file()]


def clear_cache(cache_dir: Optional[str | os.PathLike] = None) -> int:
    """Delete every cached dataset (and the remembered content keys); returns how many
    datasets were removed."""
    entries = cache_entries(cache_dir)
    for path, _ in entries:
        path.unlink(missing_ok=True)
    root = cache_root(cache_dir)
    if root.is_dir():
        for key in root.rglob("*.key"):
            key.unlink(missing_ok=True)
    return len(entries)
