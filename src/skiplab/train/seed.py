"""Seeding a run: every random-number generator, and deterministic kernels on request."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; ``deterministic`` switches torch's deterministic
    algorithms (warn-only) and cuDNN's deterministic mode on, benchmark mode off."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic != torch.are_deterministic_algorithms_enabled():  # (the call imports inductor)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
