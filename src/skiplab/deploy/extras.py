"""The optional deployment stack (``pip install 'skiplab[deploy]'``): onnx, onnxruntime,
onnxscript, torchao. skiplab imports without it; a function that needs it calls
:func:`require` first, which names the extra to install in one line."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

EXTRA = "deploy"


class MissingExtraError(RuntimeError):
    """A package of the ``skiplab[deploy]`` extra is not installed."""


def has(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise a one-line :class:`MissingExtraError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'skiplab[{EXTRA}]' ({err})") from None


def import_torchao_pt2e() -> ModuleType:
    """torchao's PT2E quantisation module; importing it also registers the quantized ops a
    saved int8 ``.pt2`` program calls. torchao's loader warnings about CUDA-only kernels
    are silenced (this is a CPU build)."""
    import logging
    import warnings
    quiet = [logging.getLogger(n) for n in ("torchao", "root")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return require("torchao.quantization.pt2e.quantize_pt2e", "int8 quantisation (PT2E)")
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
