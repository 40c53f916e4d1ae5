"""The JSON sidecar beside every exported or quantised file (``model.onnx`` ->
``model.onnx.json``): what a runtime needs to feed the model and read its output -- input
layout and shape (``"batch"``, ``"height"``, ``"width"`` where dynamic), channels,
normalisation (the mean/std the inputs are standardised with, on the 0..1 scale), classes,
task, the SAR radiometry of a reconstruct checkpoint -- and how the file was made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from ..atomic import write_json
from .source import SourceMeta, to_jsonable

SUFFIX = ".json"


def sidecar_path(path: Union[str, Path]) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def input_spec(meta: SourceMeta, dynamic_hw: bool) -> dict:
    c, h, w = meta.input_size
    return {
        "name": "x",
        "dtype": "float32",
        "layout": "NCHW",
        "shape": ["batch", c, "height" if dynamic_hw else h, "width" if dynamic_hw else w],
        "example_shape": [1, c, h, w],
    }


def write_sidecar(path: Union[str, Path], meta: SourceMeta, **info: Any) -> Path:
    """Write ``<path>.json`` atomically: the model's metadata plus ``info`` (format,
    exporter, precision, parity...)."""
    import importlib.metadata

    import torch

    try:
        version = importlib.metadata.version("skiplab")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        version = "unknown"
    record = {
        "file": Path(path).name,
        **to_jsonable(info),
        "input": input_spec(meta, bool(info.get("dynamic_hw", meta.dynamic_hw))),
        "normalization": {"mean": meta.mean, "std": meta.std, "scale": "0..1"},
        "classes": meta.classes,
        "task": meta.task,
        "meta": to_jsonable(meta.to_dict()),
        "skiplab": version,
        "torch": torch.__version__,
    }
    if meta.radiometry is not None:
        record["radiometry"] = to_jsonable(meta.radiometry)
    return write_json(sidecar_path(path), record)


def read_sidecar(path: Union[str, Path]) -> Optional[dict]:
    """The sidecar of ``path``, or None when there is none."""
    target = sidecar_path(path)
    if not target.is_file():
        return None
    try:
        return json.loads(target.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{target}: not a skiplab sidecar ({err})") from None
