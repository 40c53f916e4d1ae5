"""skiplab: residual and skip-connection networks, built from verified blocks.

The public API is :data:`__all__`::

    import skiplab
    model = skiplab.create_model("cifar_resnet56", num_classes=10)
    skiplab.list_models("cifar_*")
    result = skiplab.fit(skiplab.TrainConfig(model="cifar_resnet20", data="synthetic", epochs=1))
    model, meta = skiplab.load_trained("runs/r20/checkpoints/best.pt")

Each name is imported on first use (PEP 562), so ``import skiplab`` -- and the ``skiplab``
command's ``--help`` -- do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "create_model": "skiplab.models",
    "list_models": "skiplab.models",
    "load_trained": "skiplab.trained",
    "Trained": "skiplab.trained",
    "TrainedMeta": "skiplab.trained",
    "fit": "skiplab.train",
    "TrainConfig": "skiplab.train",
    "FitResult": "skiplab.train",
    "evaluate_checkpoint": "skiplab.train",
    "SkiplabError": "skiplab.errors",
    "CheckpointError": "skiplab.errors",
    "CheckpointVersionError": "skiplab.errors",
    "CheckpointMismatchError": "skiplab.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .errors import CheckpointError, CheckpointMismatchError, CheckpointVersionError, SkiplabError
    from .models import create_model, list_models
    from .train import FitResult, TrainConfig, evaluate_checkpoint, fit
    from .trained import Trained, TrainedMeta, load_trained


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # once: later look-ups are plain attribute reads
        return value
    raise AttributeError(f"module 'skiplab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
