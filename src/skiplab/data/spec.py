"""The one ``--data`` argument: parse ``KIND[:ARG]`` strings into a :class:`DataSpec`.

Kinds:

- ``cifar10:PATH`` / ``cifar100:PATH`` -- PATH is a directory holding the official python
  batches (``cifar-10-batches-py``), the binary batches (``cifar-10-batches-bin``), the
  official ``.tar.gz`` itself, or an image-folder tree with ``train/`` and ``test/``.
- ``folder:PATH`` -- any image-folder tree ``PATH/CLASS/*.jpg|png`` (or ``PATH/train/CLASS``
  and ``PATH/test/CLASS``).
- ``synthetic`` or ``synthetic:NAME[,key=value...]`` -- a generated task, see
  :mod:`skiplab.data.synthetic` (e.g. ``synthetic:shapes-2k,seed=3``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PATH_KINDS = ("cifar10", "cifar100", "folder")
KINDS = PATH_KINDS + ("synthetic",)


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
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"unknown data kind {kind!r} in {text!r}; expected one of "
                         f"{', '.join(KINDS)} (e.g. cifar10:PATH, folder:PATH, "
                         f"synthetic or synthetic:shapes-10k)")
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
