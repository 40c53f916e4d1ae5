"""Deterministic stand-in weights for comparing skiplab models with torchvision.

No pretrained weights can be downloaded here, so the reference fixture
(``tests/fixtures/torchvision_reference.json.gz``) records what torchvision's models
compute with *filled* weights: every tensor is a function of its state-dict key and
shape only (a ``torch.Generator`` seeded with ``zlib.crc32(key)``). Loading the same
filled state dict into a skiplab model must then give the same logits, which checks
names, shapes, layer order, strides and the forward computation all at once.

The scales keep activations O(1) through 150 layers in eval mode:

* conv / linear weights: normal with std = 1/sqrt(fan_in);
* norm weights (γ): 1 + 0.1·N(0, 1); every bias: 0.1·N(0, 1);
* BN running_mean: 0.1·N(0, 1); running_var: uniform in [0.5, 1.5] (positive);
* ``num_batches_tracked`` is copied unchanged.

This module imports only torch and the standard library: the fixture generator
(``tests/fixtures/make_torchvision_reference.py``) runs it in a venv with torchvision.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping

import torch

INPUT_SHAPE = (2, 3, 64, 64)
INPUT_SEED = 20240601


def _generator(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))


def fill_tensor(key: str, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """The float32 tensor for state-dict entry ``key`` of ``shape`` (see the module doc)."""
    shape = tuple(shape)
    gen = _generator(key)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        return 0.5 + torch.rand(shape, generator=gen)
    noise = torch.randn(shape, generator=gen)
    if leaf == "running_mean" or leaf == "bias":
        return 0.1 * noise
    if leaf == "weight" and len(shape) == 1:  # a norm layer's γ
        return 1.0 + 0.1 * noise
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    return noise / math.sqrt(fan_in)


def fill_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new state dict with every floating tensor replaced by :func:`fill_tensor`;
    integer buffers (``num_batches_tracked``) are copied as they are."""
    out = {}
    for key, value in state_dict.items():
        if value.is_floating_point():
            out[key] = fill_tensor(key, value.shape).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def reference_input(shape: tuple[int, ...] = INPUT_SHAPE) -> torch.Tensor:
    """The deterministic input batch of the fixture: N(0, 1) from a fixed seed."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(INPUT_SEED))


def checksum(filled: Mapping[str, torch.Tensor]) -> float:
    """Sum of |x| over the floating tensors (float64) of a filled state dict: detects a
    change of the random streams between torch versions, which would invalidate the fixture."""
    return float(sum(v.double().abs().sum() for v in filled.values() if v.is_floating_point()))


def fill_checksum(state_dict: Mapping[str, torch.Tensor]) -> float:
    """:func:`checksum` of :func:`fill_state_dict` of ``state_dict``."""
    return checksum(fill_state_dict(state_dict))
