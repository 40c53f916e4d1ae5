"""Exponential moving average of the weights (Polyak & Juditsky 1992; as timm's ModelEma).

After every optimiser step ``ema = d * ema + (1 - d) * weights`` for parameters and
floating-point buffers (BN running statistics); integer buffers are copied. The decay
ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are
not dominated by the random initialisation. The averaged copy is what gets evaluated.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEMA:
    """An averaged copy of ``model`` (kept in eval mode, never trained directly)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        for name, avg in self.module.state_dict().items():
            value = current[name].detach()
            if avg.dtype.is_floating_point:
                avg.lerp_(value.to(avg.dtype), 1 - d)
            else:
                avg.copy_(value)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["module"])
