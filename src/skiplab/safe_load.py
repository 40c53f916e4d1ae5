"""Read a PyTorch file with ``weights_only=True`` and say in words why a file is refused.

``torch.load(weights_only=True)`` unpickles only tensors, containers and plain values, so no
code in the file runs. Its errors are written for PyTorch developers ("101", "failed finding
central directory", advice to retry with ``weights_only=False``, which would run whatever
the file holds). :func:`safe_torch_load` turns each into one sentence a user can act on:
the file is empty, text, a NumPy array, truncated, or holds objects that are not tensors
(naming the first such global) -- and it never retries with ``weights_only=False``.

This module imports nothing of skiplab, so every package may use it.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Union

import torch

__all__ = ["safe_torch_load", "describe_load_error"]

NEVER_UNSAFE = "skiplab never loads such a file with weights_only=False, which would run code from it"


def _sniff(path: Path) -> str:
    """What the first bytes of ``path`` look like, for files torch cannot read at all."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "is empty (0 bytes)"
    if head.startswith(b"\x93NUMPY"):
        return "is a NumPy array file, not a PyTorch file"
    if head.startswith(b"PK\x03\x04"):
        return ""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"is a text file ({head[:20].decode('utf-8', 'replace').strip()!r}...), not a PyTorch file"
    return ""


def _first_reason(message: str) -> str:
    found = re.search(r"(Unsupported operand \d+|Unsupported global[^.]*)", message)
    return found.group(1) if found else "unrecognised content"


def describe_load_error(path: Union[str, os.PathLike], err: BaseException, what: str = "checkpoint") -> str:
    """One sentence on why ``torch.load(path, weights_only=True)`` raised ``err``."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    sniffed = _sniff(path) if path.is_file() else ""
    if sniffed:
        return f"{path} {sniffed}: not a {what}"
    message = " ".join(str(err).split())
    found = re.findall(r"GLOBAL ([\w.]+)", message)
    if isinstance(err, pickle.UnpicklingError) and found:
        return f"{path} holds objects that are not tensors (a pickled {found[0]}): not a {what}; {NEVER_UNSAFE}"
    if isinstance(err, pickle.UnpicklingError) and "weights only load failed" in message.lower():
        return (
            f"{path} was not written by torch.save (a plain pickle or other data: "
            f"{_first_reason(message)}): not a {what}; {NEVER_UNSAFE}"
        )
    if isinstance(err, EOFError) or any(
        s in message for s in ("central directory", "unexpected EOF", "file might be corrupted", "failed reading")
    ):
        return f"{path} is truncated or damaged ({size} bytes; an interrupted write or copy?): not a readable {what}"
    if isinstance(err, pickle.UnpicklingError) or isinstance(err, KeyError):
        return f"{path} is not a PyTorch file ({type(err).__name__}: {message[:80]}): not a {what}"
    return f"cannot read {what} {path}: {type(err).__name__}: {message[:200]}"


def safe_torch_load(
    path: Union[str, os.PathLike],
    map_location: Union[str, torch.device] = "cpu",
    what: str = "checkpoint",
    **kwargs: Any,
) -> Any:
    """``torch.load(path, weights_only=True)``; a FileNotFoundError when there is no file and a
    one-line ValueError (:func:`describe_load_error`) when it cannot be read safely."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with warnings.catch_warnings(record=True) as caught:  # (shown again if the load succeeds)
        warnings.simplefilter("always")
        try:
            state = torch.load(path, map_location=map_location, weights_only=True, **kwargs)
        except Exception as err:  # torch raises many types for a bad file
            raise ValueError(describe_load_error(path, err, what)) from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return state
