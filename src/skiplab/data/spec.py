"""The one ``--data`` argument: parse ``KIND[:ARG]`` strings into a :class:`DataSpec`.

Kinds:

- ``cifar10:PATH`` / ``cifar100:PATH`` -- PATH is a directory holding the official python
  batches (``cifar-10-batches-py``), the binary batches (``cifar-10-batches-bin``), the
  official ``.tar.gz`` itself, or an image-folder tree with ``train/`` and ``test/``.
- ``folder:PATH`` -- any image-folder tree ``PATH/CLASS/*.jpg|png`` (or ``PATH/train/CLASS``
  and ``PATH/test/CLASS``).
- ``synthetic`` or ``synthetic:NAME[,key=value...]`` -- a generated task, see
  :mod:`skiplab.data.synthetic` (e.g. ``synthetic:shapes-2k,seed=3``).
- ``synthetic:cells[-N][,test=M,seed=S,boundary=1,chans=C]`` -- segmentation: N images
  (default 1000) of cell-like blobs with their masks (:mod:`skiplab.data.segmentation`),
  M test images (default N/5); ``boundary=1`` adds a class for the cells' outlines.
- ``synthetic:sar[-N][,looks=L,test=M,seed=S]`` (or ``synthetic-sar[-N][,...]``) --
  reconstruction: N synthetic speckled SAR tiles (default 200) of L looks (default 1),
  M test tiles (default N/5) from a disjoint set of scenes.
- ``sar:PATH`` -- reconstruction: a raster file or a directory of rasters (GeoTIFF/TIFF,
  PNG, .npy; intensity) cut into tiles; ``PATH/train`` and ``PATH/test`` sub-directories,
  if present, are the train and test splits.

Counts take a ``k`` suffix (``cells-2k``). Image and tile sizes are not part of the spec:
they are the ``tile_size`` of the training config (SAR 256, cells 64 by default).
:attr:`DataSpec.task` says which training task the data is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PATH_KINDS = ("cifar10", "cifar100", "folder", "sar")
KINDS = ("cifar10", "cifar100", "folder", "synthetic", "sar")
TASKS = ("classify", "segment", "reconstruct")
SYNTHETIC_SAR_ALIAS = "synthetic-sar"   # synthetic-sar[-N][,...] is synthetic:sar[-N][,...]


class DataPathError(FileNotFoundError, ValueError):
    """A data path that does not exist (both a FileNotFoundError and a ValueError)."""


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` string."""

    kind: str                      # one of KINDS
    text: str                      # the string as given
    path: Optional[Path] = None    # for cifar10/cifar100/folder
    name: str = ""                 # for synthetic: the generator name, e.g. "shapes-10k"
    options: dict = field(default_factory=dict)  # for synthetic: key=value options

    @property
    def task(self) -> str:
        """The training task this data is for: "classify", "segment" or "reconstruct"."""
        if self.kind == "sar" or (self.kind == "synthetic" and _base_name(self.name) == "sar"):
            return "reconstruct"
        if self.kind == "synthetic" and _base_name(self.name) == "cells":
            return "segment"
        return "classify"


def _base_name(name: str) -> str:
    """``cells-2k`` -> ``cells``: a synthetic name without its size suffix."""
    return name.split("-", 1)[0].lower()


def _parse_options(parts: list[str], text: str) -> dict:
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"data spec {text!r}: expected options as key=value after the "
                             f"name, found {part!r}")
        options[key.strip()] = value.strip()
    return options


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a ``--data`` string; raise ValueError naming the known kinds on a bad one and
    :class:`DataPathError` when a path kind's PATH does not exist."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"data spec must be a non-empty string like 'cifar10:PATH', "
                         f"'folder:PATH' or 'synthetic'; found {spec!r}")
    text = spec.strip()
    if text.lower().startswith(SYNTHETIC_SAR_ALIAS):
        rest = text[len(SYNTHETIC_SAR_ALIAS):]
        text = "synthetic:sar" + ("," + rest[1:] if rest.startswith(":") else rest)
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r} in {text!r}; expected one of "
                         f"{', '.join(KINDS)} (e.g. cifar10:PATH, folder:PATH, "
                         f"synthetic or synthetic:shapes-10k, synthetic:cells, synthetic-sar, "
                         f"sar:PATH)")
    if kind == "synthetic":
        name, *opts = [p.strip() for p in arg.split(",")] if arg else [""]
        return DataSpec(kind, text, name=name or "shapes", options=_parse_options(opts, text))
    if not arg.strip():
        raise ValueError(f"data kind {kind!r} needs a path: '{kind}:PATH'; found {text!r}")
    path = Path(arg.strip()).expanduser()
    if not path.exists():
        raise DataPathError(f"data path for {kind!r} does not exist: {str(path)!r} "
                            f"(from {text!r})")
    return DataSpec(kind, text, path=path)
