"""Lesion study (Veit, Wilber & Belongie 2016, "Residual Networks Behave Like Ensembles of
Relatively Shallow Networks", §4-5): damage a trained network at test time and measure.

* Delete each block in turn (Veit Fig. 3): a residual net barely notices one missing
  block, while deleting a layer of a plain net (e.g. VGG) drops it to chance.
* Delete k random blocks, k = 1..K, several draws (Veit Fig. 5a): the error grows smoothly.
* Swap adjacent blocks (Veit Fig. 5b, reordering): again a smooth degradation.

Conventions (stated in every report that uses them):

* **Deleting a residual block** keeps only its shortcut: the branch F(x) outputs zero.
  A post-activation block y = relu(F(x) + W_s x) becomes y = relu(W_s x) -- equal to x
  when the shortcut is the identity and x comes out of a ReLU, as in every
  post-activation net -- and a pre-activation block y = F(x) + W_s x becomes W_s x.
  A downsampling block keeps its projection (or option-A zero padding), so the shapes
  still fit; Veit §4.1 reports these blocks separately (``downsampling`` in the rows).
* **Deleting a plain block** (a block with no shortcut, or a single layer of a model
  without blocks) replaces it by the identity, which only fits where the block keeps the
  shape of its input; blocks that change it cannot be deleted and are left out.

Everything happens on the model itself: :func:`delete_blocks` and :func:`swap_blocks`
shadow a method on the block instances (see :func:`~skiplab.analysis.blocks.override`)
and restore them exactly on exit; no parameter or buffer is touched or copied.
"""

from __future__ import annotations

import contextlib
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Unit, batches_of, branch_method, find_units, override


def _zero_branch(t: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """A zero 'branch output' that broadcasts against the shortcut: shape [B, 1, ..., 1].

    Adding it leaves the shortcut bit-for-bit unchanged, and it keeps the batch
    dimension so that stochastic depth (which masks per sample) still works."""
    return t.new_zeros((t.shape[0],) + (1,) * (t.dim() - 1))


def _identity(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return x


def is_deletable(unit: Unit) -> bool:
    """Residual blocks always (the shortcut remains); plain blocks and layers only when
    they keep the shape of their input (probe the units with an example to know)."""
    return unit.is_residual or unit.preserves_shape is True


@contextlib.contextmanager
def delete_blocks(units: Iterable[Unit]) -> Iterator[None]:
    """Inside the block, the given units are deleted (see the module's conventions)."""
    with contextlib.ExitStack() as stack:
        for u in units:
            if u.is_residual:
                u.check_branch_in_forward("deleting a residual block")
                stack.enter_context(override(u.module, branch_method(u.module), _zero_branch))
            elif u.preserves_shape:
                stack.enter_context(override(u.module, "forward", _identity))
            else:
                raise ValueError(
                    f"cannot delete {u.kind} unit {u.name!r}: it maps {u.in_shape} to "
                    f"{u.out_shape} and has no shortcut; only shape-preserving plain units "
                    f"(probed with find_units(model, example)) can become the identity"
                )
        yield


@contextlib.contextmanager
def swap_blocks(first: Unit, second: Unit) -> Iterator[None]:
    """Inside the block, ``first`` computes what ``second`` did and vice versa: the forward
    pass runs the two blocks in the opposite order. Both must map one shape to itself."""
    for u in (first, second):
        if u.preserves_shape is not True:
            raise ValueError(
                f"cannot swap {u.name!r}: swapping needs blocks that keep the shape of their "
                f"input (found {u.in_shape} -> {u.out_shape}; probe units with an example)"
            )
    if first.in_shape != second.in_shape:
        raise ValueError(
            f"cannot swap {first.name!r} {first.in_shape} with {second.name!r} {second.in_shape}: shapes differ"
        )
    forward_a, forward_b = first.module.forward, second.module.forward
    with override(first.module, "forward", forward_b), override(second.module, "forward", forward_a):
        yield


def evaluate(
    model: nn.Module, data: Any, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
) -> dict[str, float]:
    """Mean loss and accuracy (fraction in [0, 1]) of ``model`` on ``data`` (``(x, y)`` pairs),
    in evaluation mode without gradients: :func:`skiplab.train.evaluate`, the one evaluation
    loop, with ``loss_fn``'s batch means weighted by the batch sizes."""
    from ..train.evaluation import evaluate as evaluate_loop  # train's loop, loaded when first used
    from ..train.meters import ClassificationMeter

    scores = evaluate_loop(model, batches_of(data), meter=ClassificationMeter(loss_fn=loss_fn))
    return dict(loss=scores["loss"], accuracy=scores["acc"])


def lesion_units(model: nn.Module, data: Any) -> list[Unit]:
    """The units of ``model`` (blocks, or layers of a model without blocks), probed on the
    first batch of ``data`` so that their shapes are known."""
    x = batches_of(data)[0][0]
    return find_units(model, x[:2])


def lesion_single(model: nn.Module, data: Any, units: Optional[Sequence[Unit]] = None) -> list[dict[str, Any]]:
    """Delete each deletable unit alone; one row per unit with ``accuracy``, ``loss`` and
    ``accuracy_drop`` (baseline minus lesioned, in [0, 1] units)."""
    data = batches_of(data)
    units = list(units) if units is not None else lesion_units(model, data)
    base = evaluate(model, data)
    rows = []
    for u in units:
        if not is_deletable(u):
            continue
        with delete_blocks([u]):
            res = evaluate(model, data)
        rows.append(
            dict(u.row(), accuracy=res["accuracy"], loss=res["loss"], accuracy_drop=base["accuracy"] - res["accuracy"])
        )
    return rows


def lesion_random(
    model: nn.Module,
    data: Any,
    k_values: Iterable[int],
    draws: int = 5,
    seed: int = 0,
    include_downsampling: bool = False,
    units: Optional[Sequence[Unit]] = None,
    measure: Optional[Callable[[list[Unit]], dict[str, float]]] = None,
) -> list[dict[str, Any]]:
    """Delete ``k`` random deletable units at once, ``draws`` times for each k.

    ``measure(chosen)`` scores the model with ``chosen`` deleted (default: :func:`evaluate`
    on ``data`` inside :func:`delete_blocks`); a caller may keep or look up its results.

    Downsampling blocks are left out unless ``include_downsampling``: deleting one costs
    far more than deleting any other block (Veit 2016 §4.1), which would swamp the
    smooth degradation this measures. Rows: ``k, draw, deleted`` (names joined
    by spaces), ``accuracy, loss``. A k larger than the number of candidates is an error.
    """
    data = batches_of(data)
    units = list(units) if units is not None else lesion_units(model, data)
    pool = [u for u in units if is_deletable(u) and (include_downsampling or not u.downsampling)]
    rng = random.Random(seed)
    rows = []
    for k in k_values:
        if not 0 <= k <= len(pool):
            raise ValueError(f"cannot delete k={k} units: {len(pool)} are candidates")
        for draw in range(draws):
            chosen = sorted(rng.sample(pool, k), key=lambda u: u.index)
            if measure is not None:
                res = measure(chosen)
            else:
                with delete_blocks(chosen):
                    res = evaluate(model, data)
            rows.append(dict(k=k, draw=draw, deleted=" ".join(u.name for u in chosen), **res))
    return rows


def swappable_pairs(units: Sequence[Unit]) -> list[tuple[Unit, Unit]]:
    """Adjacent units (in forward order) that both keep one and the same shape."""
    ordered = sorted(units, key=lambda u: u.index)
    return [
        (a, b)
        for a, b in zip(ordered, ordered[1:])
        if a.preserves_shape and b.preserves_shape and a.in_shape == b.in_shape and b.index == a.index + 1
    ]


def lesion_reorder(
    model: nn.Module,
    data: Any,
    k_values: Iterable[int],
    draws: int = 5,
    seed: int = 0,
    units: Optional[Sequence[Unit]] = None,
) -> list[dict[str, Any]]:
    """Swap ``k`` random disjoint pairs of adjacent shape-compatible units, ``draws`` times
    for each k. Rows: ``k, draw, swapped`` ("a<->b" joined by spaces), ``accuracy, loss``."""
    data = batches_of(data)
    units = list(units) if units is not None else lesion_units(model, data)
    pairs = swappable_pairs(units)
    rng = random.Random(seed)
    rows = []
    for k in k_values:
        for draw in range(draws):
            chosen: list[tuple[Unit, Unit]] = []
            for pair in rng.sample(pairs, len(pairs)):
                if len(chosen) == k:
                    break
                if all({pair[0].index, pair[1].index}.isdisjoint({c[0].index, c[1].index}) for c in chosen):
                    chosen.append(pair)
            if len(chosen) < k:
                raise ValueError(
                    f"cannot swap k={k} disjoint adjacent pairs: found {len(chosen)} among {len(pairs)} swappable pairs"
                )
            with contextlib.ExitStack() as stack:
                for a, b in chosen:
                    stack.enter_context(swap_blocks(a, b))
                res = evaluate(model, data)
            rows.append(dict(k=k, draw=draw, swapped=" ".join(f"{a.name}<->{b.name}" for a, b in chosen), **res))
    return rows


@dataclass
class LesionStudy:
    """Everything :func:`lesion_study` measured, as rows; ``summary()`` gives the headline numbers."""

    baseline: dict[str, float]
    single: list[dict[str, Any]]
    random: list[dict[str, Any]] = field(default_factory=list)
    reorder: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        inner = [r["accuracy_drop"] for r in self.single if not r["downsampling"]]
        every = [r["accuracy_drop"] for r in self.single]
        mean = lambda v: sum(v) / len(v) if v else math.nan  # noqa: E731
        return dict(
            baseline_accuracy=self.baseline["accuracy"],
            mean_drop_single=mean(inner),
            max_drop_single=max(inner, default=math.nan),
            mean_drop_single_all=mean(every),
            deletable_units=len(every),
        )


def lesion_study(
    model: nn.Module, data: Any, max_deleted: int = 0, draws: int = 5, max_swapped: int = 0, seed: int = 0
) -> LesionStudy:
    """Single deletions always; ``k`` random deletions for k = 1..``max_deleted`` and
    ``k`` random adjacent swaps for k = 1..``max_swapped`` (both capped by what the model
    allows), ``draws`` draws each. ``data``: a list (or loader) of ``(x, y)`` batches --
    the same for every measurement, so the rows are comparable."""
    data = batches_of(data)
    units = lesion_units(model, data)
    baseline = evaluate(model, data)
    single = lesion_single(model, data, units)
    candidates = [u for u in units if is_deletable(u) and not u.downsampling]
    k_del = range(1, min(max_deleted, len(candidates)) + 1)
    # any maximal set of disjoint adjacent pairs of a chain of m pairs has >= ceil(m / 3)
    k_swap = range(1, min(max_swapped, (len(swappable_pairs(units)) + 2) // 3) + 1)
    return LesionStudy(
        baseline,
        single,
        lesion_random(model, data, k_del, draws, seed, units=units),
        lesion_reorder(model, data, k_swap, draws, seed, units=units),
    )
