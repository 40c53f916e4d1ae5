"""Optimisers: SGD (momentum, Nesterov), AdamW and Muon (conv filters; SGD for the rest), with
no weight decay on norm weights and biases by default, and an optional larger learning rate for
the norm layers' biases.

Decaying BN's scale and shift only fights the normalisation (the next layer is invariant to
the scale), so, as in Goyal et al. 2017 §5.1 and timm, every 1-d parameter (norm weights,
biases) goes into a group with ``weight_decay = 0`` unless ``decay_norm_and_bias`` is set.

``norm_bias_lr_scale`` (airbench, Jordan 2024: 64) puts the norm layers' biases in a group of
their own whose ``lr_scale`` the training loop multiplies into the scheduled lr; their weight
decay is divided by the same factor, so the decay per step (lr x weight decay) is unchanged.

``layer_decay`` splits every group by layer and multiplies its ``lr_scale`` by the layer's
factor (:func:`skiplab.train.transfer.layer_decay_groups`); frozen parameters
(``freeze``) have ``requires_grad = False`` and are in no group.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .muon import Muon
from .transfer import layer_decay_groups

NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(
    model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False, norm_bias_lr_scale: float = 1.0
) -> list[dict]:
    """Trainable parameters split into a decayed group (weights), a no-decay group (1-d
    tensors) and, when ``norm_bias_lr_scale != 1``, a group of norm-layer biases whose
    ``lr_scale`` is that factor. Every group has an ``lr_scale`` (1 unless said)."""
    norm_biases = set()
    if norm_bias_lr_scale != 1:
        norm_biases = {
            id(m.bias) for m in model.modules() if isinstance(m, NORMS) and getattr(m, "bias", None) is not None
        }
    decay, no_decay, scaled = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in norm_biases:
            scaled.append(p)
        else:
            (decay if decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [dict(params=decay, weight_decay=weight_decay, lr_scale=1.0)]
    if no_decay:
        groups.append(dict(params=no_decay, weight_decay=0.0, lr_scale=1.0))
    if scaled:
        bias_decay = weight_decay / norm_bias_lr_scale if decay_norm_and_bias else 0.0
        groups.append(dict(params=scaled, weight_decay=bias_decay, lr_scale=norm_bias_lr_scale))
    return groups


def muon_groups(groups: list[dict], config: TrainConfig) -> list[dict]:
    """``groups`` with the conv filters (4-d weights) moved into a Muon group of their own."""
    filters = [p for g in groups for p in g["params"] if p.dim() == 4]
    ids = {id(p) for p in filters}
    rest = [dict(g, params=[p for p in g["params"] if id(p) not in ids]) for g in groups]
    rest = [g for g in rest if g["params"]]
    if not filters:
        return rest
    return rest + [
        dict(
            params=filters,
            use_muon=True,
            weight_decay=0.0,
            nesterov=True,
            momentum=config.muon_momentum,
            lr_scale=config.muon_lr / config.lr,
        )
    ]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over ``model``'s trainable parameters."""
    groups = param_groups(model, config.weight_decay, config.decay_norm_and_bias, config.norm_bias_lr_scale)
    if config.layer_decay != 1:
        groups = layer_decay_groups(groups, model, config.layer_decay)
    if not any(g["params"] for g in groups):
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    # fused: one kernel updates all parameters (CPU and CUDA); 3x cheaper than torch's
    # default per-parameter loop on CPU for ResNet-56 (1.5 vs 4.4 ms of CPU time per step)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0, fused=True
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=tuple(config.betas), fused=True)
    if config.optimizer == "muon":
        return Muon(
            muon_groups(groups, config),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
        )
    raise ValueError(f"optimizer must be 'sgd', 'adamw' or 'muon', got {config.optimizer!r}")
