"""Batch-norm folding: every ``conv -> BatchNorm`` pair of an eval-mode model becomes one
convolution with ``W' = W * g / sqrt(v + eps)`` and ``b' = (b - m) * g / sqrt(v + eps) + beta``
(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", Sec. 3.2), the arithmetic done by torch's own
``torch.nn.utils.fusion.fuse_conv_bn_eval``.

The pairs are found on the ``torch.fx.symbolic_trace`` graph (so a conv whose output feeds
a BN is found wherever the model's forward puts it, not only in ``nn.Sequential``); a conv
whose output has other users, or that is called twice, is left alone. A model that cannot be
traced as a whole (the U-Nets on a ResNet encoder capture stage outputs with forward hooks,
which fx does not run) is folded part by part: each largest submodule that traces and
carries no hooks. BNs that follow an addition or precede their conv (pre-activation
ResNets, DenseNet) have no conv to fold into and stay: :class:`FoldReport` counts them.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass
class FoldReport:
    """How many BN layers were folded, and how many remain (with the reason)."""

    folded: int
    remaining: int
    untraced: list[str]  # submodules that could not be traced as a whole (folded inside)

    def __str__(self) -> str:
        text = f"folded {self.folded} BatchNorm layer(s) into their convolutions"
        if self.remaining:
            text += f"; {self.remaining} stay (no conv directly before them, or in untraceable parts)"
        return text


def count_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, NORMS) for m in model.modules())


def _has_hooks(module: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def _fold_graph(gm: fx.GraphModule) -> int:
    """Fold the conv -> BN pairs of ``gm`` in place; the number folded."""
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folded = 0
    for node in list(gm.graph.nodes):
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, NORMS) or bn.running_mean is None or len(node.args) != 1:
            continue
        prev = node.args[0]
        conv = modules.get(prev.target) if isinstance(prev, fx.Node) and prev.op == "call_module" else None
        if (
            not isinstance(conv, CONVS + TRANSPOSED)
            or len(prev.users) != 1
            or calls[prev.target] != 1
            or calls[node.target] != 1
        ):
            continue
        fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, TRANSPOSED))
        parent, _, name = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, name, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        folded += 1
    if folded:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return folded


def _one_input(module: nn.Module) -> bool:
    """A forward of one argument: a module with optional inputs (a U-Net up-stage's skip)
    would be traced for one call pattern only."""
    return len(inspect.signature(module.forward).parameters) == 1


def _fold(module: nn.Module, path: str, untraced: list[str]) -> tuple[nn.Module, int]:
    if not _has_hooks(module) and _one_input(module) and not isinstance(module, NORMS + CONVS + TRANSPOSED):
        try:
            gm = fx.symbolic_trace(module)
        except Exception:  # a TraceError, or any failure inside a forward under tracing
            untraced.append(path or type(module).__name__)
        else:
            return gm, _fold_graph(gm)
    folded = 0
    for name, child in list(module.named_children()):
        new, n = _fold(child, f"{path}.{name}" if path else name, untraced)
        if new is not child:
            setattr(module, name, new)
        folded += n
    return module, folded


@torch.no_grad()
def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> tuple[nn.Module, FoldReport]:
    """``model`` (eval mode) with every conv -> BN pair folded into one convolution, and a
    :class:`FoldReport`. The result computes the same function (fp32: within ~1e-5 relative);
    it is a ``torch.fx.GraphModule`` when the whole model traces, else the model with its
    traceable parts replaced. ``model`` itself is left untouched unless ``inplace``."""
    if model.training:
        raise ValueError(
            "fold_batchnorm needs an eval-mode model (call model.eval()): a "
            "training-mode BN normalises with batch statistics, which cannot be folded"
        )
    work = model if inplace else copy.deepcopy(model)
    untraced: list[str] = []
    folded_model, folded = _fold(work, "", untraced)
    folded_model.eval()
    return folded_model, FoldReport(folded, count_batchnorms(folded_model), untraced)
