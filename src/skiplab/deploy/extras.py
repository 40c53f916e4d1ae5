"""The optional deployment stack (``pip install 'skiplab[deploy]'``): onnx, onnxruntime,
onnxscript, torchao. skiplab imports without it; a function that needs it calls
:func:`require` first, which names the extra to install in one line."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import warnings
from types import ModuleType
from typing import Iterator

EXTRA = "deploy"


from ..errors import MissingExtraError  # noqa: E402,F401 (re-exported: it was defined here)


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
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: pip install 'skiplab[{EXTRA}]' ({err})"
        ) from None


@contextlib.contextmanager
def quiet(*loggers: str) -> Iterator[None]:
    """For the span of the block, the named loggers ("root" for the root logger) at ERROR
    and Python warnings ignored: the deployment libraries warn about what is not the
    user's concern (CUDA-only kernels on a CPU build, torchvision ops the exporter would
    register, deprecations inside their own code)."""
    chosen = [logging.getLogger(n) for n in loggers]
    levels = [lg.level for lg in chosen]
    for lg in chosen:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(chosen, levels):
            lg.setLevel(level)


def import_torchao_pt2e() -> ModuleType:
    """torchao's PT2E quantisation module; importing it also registers the quantized ops a
    saved int8 ``.pt2`` program calls (its loader's chatter silenced by :func:`quiet`)."""
    with quiet("torchao", "root", "torch"):
        return require("torchao.quantization.pt2e.quantize_pt2e", "int8 quantisation (PT2E)")
