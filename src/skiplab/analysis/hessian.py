"""Curvature at the trained weights: the extreme eigenvalues of the loss Hessian
(Li, Xu, Taylor, Studer & Goldstein 2018, §6 and Fig. 7: the ratio |λmin / λmax| says how
far a landscape is from convex around the minimum -- near 0 for the "convex-looking"
ResNet landscapes, large for the chaotic ones of deep plain nets).

The Hessian is never formed: it is touched only through Hessian-vector products (HVPs).
By default each product is *forward-over-reverse* (``torch.func.jvp`` of ``torch.func.grad``:
the directional derivative of the gradient, one forward-mode pass through the backward,
Pearlmutter 1994's R-operator); ``mode="reverse"`` is the double backward (grad of g·v with
``create_graph=True``), the same numbers. Both ends of the spectrum come from one Lanczos
run (Lanczos 1950; Golub & Van Loan §10.1) with full reorthogonalisation: after m products
the extreme eigenvalues of the m×m tridiagonal matrix (the Ritz values) approximate λmax and
λmin of H from inside, and each has a residual bound -- some eigenvalue of H lies within
|β_m s_m| of it (Parlett, *The Symmetric Eigenvalue Problem*, Thm 3.2.1) -- so a few tens of
products give both, where Li's recipe (power iteration on H, then on H − λmax I) spends that
many on each.

The loss is the mean over a fixed list of batches (split into ``chunk``-image chunks, the
products summed with each chunk's weight), in evaluation mode (BatchNorm with its running
statistics) and in fp32: λmin of a trained net is one to three orders of magnitude smaller
than λmax, and an HVP in bf16 (8 significant bits, a relative error near 4e-3 of |H v|, i.e.
of λmax) would put an error of the size of λmin itself into every product. The model's
weights and gradients are not changed.
"""

from __future__ import annotations

import math
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..atomic import torch_save
from .blocks import batches_of, eval_mode


def _chunks(data: Any, chunk: Optional[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = batches_of(data)
    if not chunk:
        return batches
    return [(x[i : i + chunk], y[i : i + chunk]) for x, y in batches for i in range(0, len(y), chunk)]


def hessian_vector_product(
    model: nn.Module,
    data: Any,
    vector: list[torch.Tensor],
    loss_fn: Callable = F.cross_entropy,
    mode: str = "forward",
    chunk: Optional[int] = None,
) -> list[torch.Tensor]:
    """H v of the mean loss over ``data`` (``(x, y)`` batches) at the model's weights, one
    tensor per trainable parameter. ``mode``: ``"forward"`` (forward-over-reverse) or
    ``"reverse"`` (double backward); ``chunk``: at most this many images per pass."""
    if mode not in ("forward", "reverse"):
        raise ValueError(f"mode must be 'forward' or 'reverse', found {mode!r}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if len(vector) != len(params):
        raise ValueError(f"a vector needs one tensor per trainable parameter ({len(params)}), found {len(vector)}")
    batches = _chunks(data, chunk)
    total = sum(len(y) for _, y in batches)
    out = [torch.zeros_like(p) for p in params]
    with eval_mode(model):
        if mode == "reverse":
            for x, y in batches:
                loss = loss_fn(model(x).float(), y) * (len(y) / total)
                grads = torch.autograd.grad(loss, params, create_graph=True)
                dot = sum((g * v).sum() for g, v in zip(grads, vector))
                for acc, h in zip(out, torch.autograd.grad(dot, params)):
                    acc += h.detach()
            return out
        from torch.func import functional_call, grad, jvp

        names = [n for n, _ in named]
        frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
        buffers = dict(model.named_buffers())
        primals = {n: p.detach() for n, p in named}
        tangents = {n: v.to(p) for (n, p), v in zip(named, vector)}
        for x, y in batches:
            weight = len(y) / total

            def loss_of(ps: dict, x=x, y=y, weight=weight) -> torch.Tensor:
                return loss_fn(functional_call(model, ({**ps, **frozen}, buffers), (x,)).float(), y) * weight

            _, hv = jvp(grad(loss_of), (primals,), (tangents,))
            for acc, n in zip(out, names):
                acc += hv[n].detach()
    return out


def lanczos(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    steps: int,
    tol: float = 1e-3,
    state: Optional[PathLike] = None,
    min_steps: int = 0,
) -> dict[str, Any]:
    """Lanczos with full reorthogonalisation on a symmetric operator given by ``matvec`` (a
    flat vector in, a flat vector out), from ``start``. Stops after ``steps`` products, or --
    once ``min_steps`` products are done -- when both extreme Ritz values have a residual bound
    within ``tol`` × the largest |Ritz value|, or when the Krylov space is exhausted (then the
    Ritz values are exact eigenvalues). A small residual says *an* eigenvalue lies near the
    Ritz value, not that none lies beyond it: an end of the spectrum the Krylov space has not
    reached yet goes unseen, which is why :func:`hessian_extremes` spends its whole budget.

    ``state``: a file that keeps the basis and the tridiagonal matrix after every product
    (written atomically), so that an interrupted run continues from its last product instead of
    starting over; it is read back only when it began from the same ``start``. Its size is the
    basis: products × the operator's dimension in fp32.

    Returns ``ritz`` (ascending), ``residuals`` (|β_m s_m| per Ritz value), ``products``."""
    q = start / start.norm()
    basis, alphas, betas = [q], [], []
    kept = _read_state(state, q)
    if kept is not None:
        basis, alphas, betas = list(kept["basis"].to(q)), kept["alphas"], kept["betas"]
    ritz = residuals = torch.zeros(0, dtype=torch.float64)
    for _ in range(len(alphas) + 1, steps + 1):
        w = matvec(basis[-1]).to(start)
        alphas.append(float(w @ basis[-1]))
        for _ in range(2):  # classical Gram-Schmidt twice against the whole basis
            Q = torch.stack(basis)
            w = w - Q.T @ (Q @ w)
        beta = float(w.norm())
        ritz, residuals = _ritz(alphas, betas, beta)
        scale = float(ritz.abs().max())
        exhausted = beta <= 1e-10 * max(scale, 1e-30)
        settled = len(alphas) >= max(min_steps, 2) and max(float(residuals[0]), float(residuals[-1])) <= tol * scale
        if exhausted or settled:
            break
        betas.append(beta)
        basis.append(w / beta)
        if state is not None:
            torch_save(dict(basis=torch.stack(basis), alphas=alphas, betas=betas), state)
    else:
        if alphas and not len(ritz):  # resumed at the budget: the kept matrix alone
            ritz, residuals = _ritz(alphas, betas[:-1], betas[-1])
    return dict(ritz=ritz.tolist(), residuals=residuals.tolist(), products=len(alphas))


def _ritz(alphas: list[float], betas: list[float], beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values (ascending) of the Lanczos tridiagonal matrix (diagonal ``alphas``,
    off-diagonal ``betas``) and their residual bounds |``beta`` s_m|."""
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    ritz, vectors = torch.linalg.eigh(T)
    return ritz, (beta * vectors[-1]).abs()


def _read_state(state: Optional[PathLike], q: torch.Tensor) -> Optional[dict]:
    """The kept Lanczos state in ``state`` when it started from ``q``, else None."""
    if state is None or not Path(state).is_file():
        return None
    kept = torch.load(state, map_location="cpu", weights_only=True)
    first = kept["basis"][0]
    if first.shape != q.shape or not torch.allclose(first.to(q), q, rtol=0, atol=1e-7):
        return None
    return kept


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def channels_last_copy(model: nn.Module, data: Any) -> tuple[nn.Module, list]:
    """A copy of ``model`` and of ``data``'s images in the channels-last memory format (the
    caller's model is not touched). On CPU the channels-last convolution kernels give an HVP of
    a CIFAR ResNet-56 ~2x faster in CPU time and, measured against fp64, a relative error of
    6e-7 where the default layout's double backward gives 1.2e-3 (benchmarks/hessian_speed.py)."""
    import copy

    fmt = torch.channels_last
    moved = copy.deepcopy(model).to(memory_format=fmt)
    return moved, [(x.contiguous(memory_format=fmt) if x.dim() == 4 else x, y) for x, y in batches_of(data)]


def hessian_extremes(
    model: nn.Module,
    data: Any,
    steps: int = 40,
    seed: int = 0,
    tol: float = 1e-3,
    mode: str = "forward",
    chunk: Optional[int] = None,
    channels_last: bool = True,
    state: Optional[PathLike] = None,
) -> dict[str, Any]:
    """``lambda_max``, ``lambda_min`` (the largest and smallest eigenvalue, Li 2018 §6) and
    ``ratio`` = |λmin / λmax| of the loss Hessian on
    ``data``: the extreme Ritz values of one Lanczos run of ``steps`` Hessian-vector products
    from a seeded Gaussian start -- all of them: the residual test cannot tell a converged end
    from one not yet reached (a trained net's spectrum is a huge cluster near 0 with a few
    outliers; on plain-56 the smallest Ritz value after 6 products was +2.6e-4 with a residual
    bound of 0.047, within 1e-3 × λmax, while the most negative eigenvalue was still unseen). With them: ``products`` used, each value's residual
    bound (an eigenvalue of H lies within it) and whether both bounds are within ``tol`` × the
    larger of |λmax|, |λmin| (``converged``; an estimate that did not converge lies inside the spectrum: λmax
    from below, λmin from above). ``channels_last``: the products run on a channels-last copy
    (:func:`channels_last_copy`). ``state``: :func:`lanczos`'s resume file."""
    if channels_last:
        model, data = channels_last_copy(model, data)
    params = [p for p in model.parameters() if p.requires_grad]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(sum(sizes), generator=g, dtype=torch.float32).to(params[0])

    def matvec(flat: torch.Tensor) -> torch.Tensor:
        vector = [t.view(s) for t, s in zip(flat.split(sizes), shapes)]
        return _flat(hessian_vector_product(model, data, vector, mode=mode, chunk=chunk))

    found = lanczos(matvec, start, steps, tol, state=state, min_steps=steps)
    low, top = found["ritz"][0], found["ritz"][-1]
    low_res, top_res = found["residuals"][0], found["residuals"][-1]
    scale = max(abs(low), abs(top))
    return dict(
        lambda_max=top,
        lambda_min=low,
        ratio=abs(low / top) if top else math.nan,
        products=found["products"],
        lambda_max_residual=top_res,
        lambda_min_residual=low_res,
        converged=bool(max(low_res, top_res) <= tol * scale),
        tol=tol,
        method="lanczos",
        mode=mode,
        channels_last=channels_last,
        images=sum(len(y) for _, y in batches_of(data)),
    )
