"""Lookahead on the weights (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step
back"), in the form airbench (Jordan 2024) uses for fast CIFAR-10 training.

Every ``every`` optimiser steps the slow copy moves toward the trained ("fast") weights,
``slow = rho * slow + (1 - rho) * fast``, and is copied back into the model, so training goes
on from the average. Floating-point buffers (BN running statistics) are averaged alike. The
decay ramps up over the run, ``rho = decay * (step / total_steps) ** 3``: early syncs barely
average (rho ~ 0, the model moves freely at a high lr), late ones average strongly -- an EMA
of the weights that the optimiser keeps training from. At the end of each epoch the model is
set to the slow weights (:meth:`sync`), so the evaluated weights are the averaged ones.
"""

from __future__ import annotations

import torch
from torch import nn


class Lookahead:
    """Slow weights of ``model``; :meth:`step` after every optimiser step."""

    def __init__(self, model: nn.Module, every: int, decay: float, total_steps: int) -> None:
        if every < 1:
            raise ValueError(f"lookahead every must be >= 1 step, got {every}")
        if not 0 <= decay < 1:
            raise ValueError(f"lookahead decay must be in [0, 1), got {decay}")
        self.every, self.decay, self.total_steps = every, decay, max(1, total_steps)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    def rho(self, step: int) -> float:
        """How much of the slow weights a sync at optimiser step ``step`` keeps."""
        return self.decay * min(1.0, step / self.total_steps) ** 3

    @torch.no_grad()
    def sync(self, model: nn.Module, rho: float = 1.0) -> None:
        """``slow = rho * slow + (1 - rho) * model``, then ``model = slow``."""
        current = model.state_dict()
        for name, slow in self.slow.items():
            slow.lerp_(current[name].detach().to(slow.dtype), 1 - rho)
            current[name].copy_(slow)

    def step(self, model: nn.Module, step: int) -> None:
        """Call after the optimiser step that made ``step`` steps in all (1-based)."""
        if step % self.every == 0:
            self.sync(model, self.rho(step))

    def state_dict(self) -> dict:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state["slow"].items():
            self.slow[name].copy_(value)
