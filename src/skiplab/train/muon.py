"""Muon for convolution filters, Nesterov SGD for everything else, in one optimiser.

Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers"; airbench94_muon) takes the
Nesterov-momentum update of a weight matrix and replaces it by its nearest semi-orthogonal
matrix ``U V^T`` (from the SVD ``U S V^T``), computed approximately by a few steps of the quintic
Newton-Schulz iteration ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``. Every direction of
the update then moves by the same amount, whatever its gradient's size. A convolution filter
bank ``[out, in, k, k]`` is the matrix ``[out, in k k]``.

As airbench does, each Muon-updated weight is first rescaled to Frobenius norm ``sqrt(out)``,
which keeps its size fixed (so no weight decay) and makes ``lr`` a relative step. That
rescaling leaves the network's function unchanged only when a normalisation layer follows the
convolution, as in every BN ResNet; use ``optimizer: muon`` for those.

The other parameters (1-d norm parameters and biases, the linear classifier) take PyTorch's
``torch.optim.SGD`` step with Nesterov momentum and L2 weight decay, so one optimiser object
holds all the state and checkpoints like any other (Jordan's ``MuonWithAuxAdam`` does the same
with a per-group ``use_muon`` flag).
"""

from __future__ import annotations

from typing import Iterable

import torch

# the quintic's coefficients (Jordan 2024): the steepest slope at zero that still converges
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(update: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Approximately ``U V^T`` for the 2-d ``update = U S V^T``: its singular values become
    roughly uniform in (0.5, 1.5) after 3 steps, which trains as well as exactly 1 (Jordan)."""
    if update.dim() != 2:
        raise ValueError(f"orthogonalize expects a matrix, got shape {tuple(update.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = update.bfloat16()
    x = x / (x.norm() + eps)  # every singular value <= 1
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x.T if tall else x).to(update.dtype)


class Muon(torch.optim.Optimizer):
    """One optimiser: Muon on the groups with ``use_muon=True``, Nesterov SGD on the others.

    Args:
        params: parameters or groups; a group sets ``use_muon`` (default False) and may set
            any default below.
        lr: step size (Muon: the step relative to the weight's norm).
        momentum, nesterov: heavy-ball momentum of both kinds of group.
        weight_decay: L2 decay of the SGD groups (Muon groups keep a fixed norm instead).
        ns_steps: Newton-Schulz iterations per Muon update (airbench: 3).
    """

    def __init__(
        self,
        params: Iterable,
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 3,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0 or ns_steps < 1:
            raise ValueError(
                f"Muon needs lr, momentum, weight_decay >= 0 and ns_steps >= 1, got "
                f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}, "
                f"ns_steps={ns_steps}"
            )
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, ns_steps=ns_steps, use_muon=False
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.dim() < 2 for p in group["params"]):
                raise ValueError(
                    "Muon groups take weight matrices or filter banks (>= 2-d); "
                    "put 1-d parameters in a group with use_muon=False"
                )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, muon = group["lr"], group["momentum"], group["use_muon"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not muon and group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"].mul_(momentum).add_(grad)
                update = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                if muon:
                    p.mul_(p.shape[0] ** 0.5 / p.norm().clamp_min(1e-12))
                    update = orthogonalize(update.reshape(len(update), -1), group["ns_steps"]).view_as(p)
                p.add_(update, alpha=-lr)
        return loss
