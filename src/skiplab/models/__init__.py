"""Architectures assembled from :mod:`skiplab.blocks`, and the registry."""

from .base import Classifier, FeatureExtractor
from .registry import create_model, is_model, list_models, model_options, register_model
from .structure import apply_structure, model_structure, use_selection_shortcuts
from .weights import LoadReport, load_weights

# Importing a family registers its models.
from . import resnet  # noqa: E402,F401
from . import preact_resnet  # noqa: E402,F401
from . import cifar_resnet, cifar_preact, wide_resnet, cifar_resnext, small_resnet  # noqa: E402,F401
from . import densenet  # noqa: E402,F401
from . import fast_resnet  # noqa: E402,F401
from . import highway, mlp  # noqa: E402,F401
from . import pyramidnet, shake_shake  # noqa: E402,F401
from . import autoencoder, unet  # noqa: E402,F401
from . import mobilenet, vit  # noqa: E402,F401

__all__ = [
    "Classifier",
    "FeatureExtractor",
    "create_model",
    "is_model",
    "list_models",
    "model_options",
    "register_model",
    "LoadReport",
    "load_weights",
    "apply_structure",
    "model_structure",
    "use_selection_shortcuts",
]
