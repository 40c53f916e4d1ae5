"""Structured (channel) pruning of residual networks on Torch-Pruning's DepGraph (Fang et
al. 2023, "DepGraph: Towards Any Structural Pruning"), to a target MAC reduction.

Every layer joined through a residual addition is pruned as one group: DepGraph traces the
network and removes the same channels from every convolution, BatchNorm and shortcut that
meet at an addition, so the pruned net still adds tensors of equal widths. Channels are
ranked by group importance -- the L2 norm of their weights (``"l2"``, Li et al. 2017) or
the first-order Taylor estimate |w * dL/dw| (``"taylor"``, Molchanov et al. 2019) -- and
removed in fine steps until the MACs are ``1 / target`` of the original, locally (the same
fraction in every group) or globally (``global_pruning``); ``round_to`` keeps every pruned
width a multiple of it (vector lanes: faster kernels).

Option A (He 2015's zero-padding shortcut) is not an element-wise operation: output channel
``j < in`` is input channel ``j`` and the rest are zeros. DepGraph would treat its padding
as element-wise and couple the two stages, and the pruned ResNet-56 breaks ("mat1 and mat2
shapes cannot be multiplied"). We use an *equivalent transform* rather than a custom index
mapping: :func:`skiplab.models.use_selection_shortcuts` rewrites each zero-pad shortcut as a
:class:`~skiplab.blocks.SelectionShortcut`, a fixed 0/1 strided 1x1 convolution with the
same outputs, registered here with a pruner (:class:`SelectionPruner`) that removes its
input columns with the stage before and its output rows with the stage after. Why: the
transform is exact, needs no change to DepGraph's rules (a DepGraph "customized" layer
can only be independent in/out like a convolution, or in=out coupled like BN; option A is
neither, a selection matrix is the first), keeps the two stages' widths independent, and
the result exports to ONNX and quantises as an ordinary convolution. Its buffer is not a
convolution weight, so it never roots a group, adds nothing to a channel's importance and
is never trained. Cost: ~0.26 M MACs in a ResNet-56 (0.2 %; counted as 0 like option A).

Pruned widths are saved as plain data (:func:`skiplab.models.model_structure`) beside the
weights, so ``skiplab eval``, fine-tuning (``init_from``) and the deploy loaders rebuild the
pruned network with ``weights_only=True`` loading.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..blocks.shortcut import SelectionShortcut
from ..models.structure import model_structure, use_selection_shortcuts

IMPORTANCES = ("l2", "taylor")


def require_torch_pruning():
    try:
        import torch_pruning as tp
    except ImportError:
        raise ImportError(
            "pruning needs Torch-Pruning: pip install 'skiplab[deploy]' (or torch-pruning>=1.6)"
        ) from None
    return tp


def selection_pruner():
    """A Torch-Pruning pruner of :class:`SelectionShortcut`: rows (outputs) and columns
    (inputs) of its 0/1 matrix are removed independently, as for a convolution."""
    tp = require_torch_pruning()

    class SelectionPruner(tp.pruner.BasePruningFunc):
        def _keep(self, n: int, idxs: Sequence[int]) -> torch.Tensor:
            drop = set(int(i) for i in idxs)
            return torch.tensor([i for i in range(n) if i not in drop], dtype=torch.long)

        def prune_out_channels(self, layer: SelectionShortcut, idxs: Sequence[int]) -> nn.Module:
            layer.weight = layer.weight[self._keep(layer.out_channels, idxs)]
            return layer

        def prune_in_channels(self, layer: SelectionShortcut, idxs: Sequence[int]) -> nn.Module:
            layer.weight = layer.weight[:, self._keep(layer.in_channels, idxs)]
            return layer

        def get_out_channels(self, layer: SelectionShortcut) -> int:
            return layer.out_channels

        def get_in_channels(self, layer: SelectionShortcut) -> int:
            return layer.in_channels

    return SelectionPruner()


def count_macs(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of one forward pass on ``example``
    (Torch-Pruning's counter: convolutions, linear layers, norms)."""
    tp = require_torch_pruning()
    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


def _importance(kind: str):
    tp = require_torch_pruning()
    if kind == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if kind == "taylor":
        return tp.importance.GroupTaylorImportance()
    raise ValueError(f"importance must be one of {IMPORTANCES}, got {kind!r}")


def classifier_of(model: nn.Module) -> list[nn.Module]:
    """The output layer (its outputs are the classes: never pruned)."""
    head = getattr(model, getattr(model, "classifier_name", "fc"), None)
    if isinstance(head, nn.Module):
        return [head]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


@torch.no_grad()
def _no_grad_step(pruner) -> None:
    pruner.step()


def prune_to_macs(
    model: nn.Module,
    example: torch.Tensor,
    speedup: float,
    *,
    importance: str = "l2",
    round_to: Optional[int] = None,
    global_pruning: bool = False,
    max_pruning_ratio: float = 0.9,
    resolution: int = 50,
    loss_fn: Optional[Callable[[nn.Module], torch.Tensor]] = None,
    ignored_layers: Sequence[nn.Module] = (),
) -> dict:
    """Prune ``model`` in place until its MACs are at most ``1 / speedup`` of what they are now.

    Channels are removed in up to ``resolution`` steps of ``max_pruning_ratio / resolution``
    of every group's channels (local) or of all channels ranked together (global); after
    each step the MACs are counted and pruning stops at the first step under the target.
    ``loss_fn(model)`` gives the loss whose gradients the Taylor importance needs (a few
    training batches). Option-A shortcuts become :class:`SelectionShortcut` first. Returns
    MACs and parameters before and after and the pruned widths (``structure``).
    """
    tp = require_torch_pruning()
    if not speedup > 1:
        raise ValueError(f"target MAC reduction must be > 1 (e.g. 2.0), got {speedup}")
    if importance == "taylor" and loss_fn is None:
        raise ValueError("importance 'taylor' needs loss_fn (training batches for the gradients)")
    was_training = model.training
    model.eval()
    macs0, params0 = count_macs(model, example)
    use_selection_shortcuts(model)
    pruner = tp.pruner.BasePruner(
        model,
        example,
        importance=_importance(importance),
        global_pruning=global_pruning,
        pruning_ratio=max_pruning_ratio,
        max_pruning_ratio=max_pruning_ratio,
        iterative_steps=resolution,
        round_to=round_to,
        ignored_layers=[*classifier_of(model), *ignored_layers],
        customized_pruners={SelectionShortcut: selection_pruner()},
    )
    target = macs0 / speedup
    macs, params, steps = macs0, params0, 0
    while macs > target:
        if steps >= resolution:
            raise ValueError(
                f"cannot reach {speedup:g}x fewer MACs with max_pruning_ratio "
                f"{max_pruning_ratio}: stopped at {macs0 / macs:.2f}x"
            )
        if importance == "taylor":
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss_fn(model).backward()
        _no_grad_step(pruner)
        steps += 1
        macs, params = count_macs(model, example)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {
        "macs_before": macs0,
        "macs_after": macs,
        "params_before": params0,
        "params_after": params,
        "mac_reduction": macs0 / macs,
        "pruning_steps": steps,
        "structure": model_structure(model),
    }
