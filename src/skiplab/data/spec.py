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
- kinds registered by domain packages (:func:`register_data_kind`,
  :func:`register_synthetic`), e.g. :mod:`skiplab.sar`'s ``sar:PATH`` (a raster file or a
  directory of rasters cut into tiles; ``PATH/train`` and ``PATH/test`` sub-directories, if
  present, are the splits) and ``synthetic:sar[-N][,looks=L,test=M,seed=S]`` (alias
  ``synthetic-sar[-N][,...]``: N synthetic speckled tiles of L looks) for ``reconstruct``.
  A kind not registered yet loads the built-in plugins first (:mod:`skiplab.plugins`).

Counts take a ``k`` suffix (``cells-2k``). Image and tile sizes are not part of the spec:
they are the ``tile_size`` of the training config (SAR 256, cells 64 by default).
:attr:`DataSpec.task` says which training task the data is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..plugins import load_plugins


@dataclass(frozen=True)
class DataKind:
    """A registered ``--data`` kind (``KIND:PATH``, or a ``synthetic:NAME`` generator)."""

    name: str  # "cifar10", "sar", or the synthetic generator "cells"
    task: str  # the training task its data is for
    path: bool  # KIND:PATH (True) or a generator without a path
    example: str  # shown in error messages, e.g. "sar:PATH"


_KINDS: dict[str, DataKind] = {}
_SYNTHETIC: dict[str, DataKind] = {}
_ALIASES: dict[str, str] = {}  # "synthetic-sar" -> "synthetic:sar"


def register_data_kind(name: str, *, task: str, path: bool = True, example: str = "") -> None:
    """Add the ``--data`` kind ``name`` (``name:PATH`` when ``path``), data for ``task``."""
    _KINDS[name.lower()] = DataKind(name.lower(), task, path, example or f"{name}:PATH")


def register_synthetic(name: str, *, task: str, example: str = "", alias: Optional[str] = None) -> None:
    """Add the generator ``synthetic:name[-N][,key=value...]`` (data for ``task``);
    ``alias``, if given, is a prefix that stands for ``synthetic:name`` (``synthetic-sar``)."""
    _SYNTHETIC[name.lower()] = DataKind(name.lower(), task, False, example or f"synthetic:{name}")
    if alias:
        _ALIASES[alias.lower()] = f"synthetic:{name.lower()}"


def data_kinds() -> list[str]:
    """The registered kinds (after loading the plugins)."""
    load_plugins()
    return list(_KINDS)


def data_examples(task: str) -> list[str]:
    """Example specs of the data for ``task`` (after loading the plugins)."""
    load_plugins()
    return [k.example for k in (*_KINDS.values(), *_SYNTHETIC.values()) if k.task == task and k.example]


for _name in ("cifar10", "cifar100", "folder"):
    register_data_kind(_name, task="classify")
register_data_kind("synthetic", task="classify", path=False, example="synthetic")
register_synthetic("shapes", task="classify", example="synthetic:shapes")
register_synthetic("patterns", task="classify")
register_synthetic("cells", task="segment")


class DataPathError(FileNotFoundError, ValueError):
    """A data path that does not exist (both a FileNotFoundError and a ValueError)."""


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` string."""

    kind: str  # a registered kind (data_kinds())
    text: str  # the string as given
    path: Optional[Path] = None  # for cifar10/cifar100/folder
    name: str = ""  # for synthetic: the generator name, e.g. "shapes-10k"
    options: dict = field(default_factory=dict)  # for synthetic: key=value options

    @property
    def task(self) -> str:
        """The training task this data is for, e.g. "classify", "segment", "reconstruct"."""
        if self.kind != "synthetic":
            return _KINDS[self.kind].task
        name = _base_name(self.name)
        if name not in _SYNTHETIC:
            load_plugins()
        return _SYNTHETIC[name].task if name in _SYNTHETIC else "classify"


def _base_name(name: str) -> str:
    """``cells-2k`` -> ``cells``: a synthetic name without its size suffix."""
    return name.split("-", 1)[0].lower()


def _parse_options(parts: list[str], text: str) -> dict:
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f"data spec {text!r}: expected options as key=value after the name, found {part!r}")
        options[key.strip()] = value.strip()
    return options


def parse_data_spec(spec: str) -> DataSpec:
    """Parse a ``--data`` string; raise ValueError naming the known kinds on a bad one and
    :class:`DataPathError` when a path kind's PATH does not exist."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"data spec must be a non-empty string like 'cifar10:PATH', 'folder:PATH' or 'synthetic'; found {spec!r}"
        )
    text = spec.strip()
    if text.partition(":")[0].strip().lower() not in _KINDS:
        load_plugins()  # a kind (or alias) a domain package registers
    for alias, target in _ALIASES.items():
        if text.lower().startswith(alias):
            rest = text[len(alias) :]
            text = target + ("," + rest[1:] if rest.startswith(":") else rest)
            break
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS:
        examples = [k.example for k in (*_KINDS.values(), *_SYNTHETIC.values())]
        raise ValueError(
            f"unknown data kind {kind!r} in {text!r}; expected one of {', '.join(_KINDS)} (e.g. {', '.join(examples)})"
        )
    if not _KINDS[kind].path:
        name, *opts = [p.strip() for p in arg.split(",")] if arg else [""]
        return DataSpec(kind, text, name=name or "shapes", options=_parse_options(opts, text))
    if not arg.strip():
        raise ValueError(f"data kind {kind!r} needs a path: '{kind}:PATH'; found {text!r}")
    path = Path(arg.strip()).expanduser()
    if not path.exists():
        raise DataPathError(f"data path for {kind!r} does not exist: {str(path)!r} (from {text!r})")
    return DataSpec(kind, text, path=path)
