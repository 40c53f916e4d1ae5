"""Curvature at the trained weights: the extreme eigenvalues of the loss Hessian
(Li, Xu, Taylor, Studer & Goldstein 2018, §6 and Fig. 7: the ratio |λmin / λmax| says how
far a landscape is from convex around the minimum -- near 0 for the "convex-looking"
ResNet landscapes, large for the chaotic ones of deep plain nets).

Both eigenvalues come from Hessian-vector products (Pearlmutter 1994: the gradient of
g·v, one extra backward pass, never the Hessian itself) by power iteration: first on H,
giving the eigenvalue of largest magnitude λmax, then on H − λmax I, whose dominant
eigenvalue is λmin − λmax (Li 2018's recipe). The loss is the mean over a fixed list of
batches, in evaluation mode (BatchNorm with its running statistics) and fp32; the model's
weights and gradients are not changed.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import batches_of, eval_mode


def hessian_vector_product(model: nn.Module, data: Any, vector: list[torch.Tensor],
                           loss_fn: Callable = F.cross_entropy) -> list[torch.Tensor]:
    """H v of the mean loss over ``data`` (``(x, y)`` batches) at the model's weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    batches = batches_of(data)
    total = sum(len(y) for _, y in batches)
    out = [torch.zeros_like(p) for p in params]
    with eval_mode(model):
        for x, y in batches:
            loss = loss_fn(model(x).float(), y) * (len(y) / total)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            dot = sum((g * v).sum() for g, v in zip(grads, vector))
            for acc, h in zip(out, torch.autograd.grad(dot, params)):
                acc += h.detach()
    return out


def _normalise(v: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = math.sqrt(sum(float((t * t).sum()) for t in v))
    return [t / norm for t in v] if norm > 0 else v


def _power(model, data, iters: int, shift: float, seed: int, tol: float) -> tuple[float, int, float]:
    """(eigenvalue, Hessian-vector products used, last relative change of the estimate)."""
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    v = _normalise([torch.randn(p.shape, generator=g).to(p) for p in params])
    value, change, used = 0.0, math.inf, 0
    for _ in range(iters):
        hv = hessian_vector_product(model, data, v)
        used += 1
        hv = [h - shift * t for h, t in zip(hv, v)]
        new = sum(float((h * t).sum()) for h, t in zip(hv, v))     # Rayleigh quotient
        v = _normalise(hv)
        change = abs(new - value) / max(abs(new), 1e-12)
        value = new
        if change <= tol:
            break
    return value + shift, used, change


def hessian_extremes(model: nn.Module, data: Any, iters: int = 20, seed: int = 0, tol: float = 1e-3,
                     lambda_max: Optional[float] = None) -> dict[str, float]:
    """``lambda_max``, ``lambda_min`` and ``ratio`` = |λmin / λmax| of the loss Hessian on
    ``data`` (power iteration, at most ``iters`` Hessian-vector products each), with each
    estimate's products used, its last relative change and whether that is within ``tol``
    (an estimate that did not converge is a bound, not the eigenvalue)."""
    if lambda_max is None:
        top, top_used, top_change = _power(model, data, iters, 0.0, seed, tol)
    else:
        top, top_used, top_change = lambda_max, 0, 0.0
    low, low_used, low_change = _power(model, data, iters, top, seed + 1, tol)
    return dict(lambda_max=top, lambda_min=low, ratio=abs(low / top) if top else math.nan,
                lambda_max_products=top_used, lambda_min_products=low_used,
                lambda_max_change=top_change, lambda_min_change=low_change,
                converged=bool(top_change <= tol and low_change <= tol), tol=tol)
