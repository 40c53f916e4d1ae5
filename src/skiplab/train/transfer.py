"""Transfer learning: freezing parts of a net and layer-wise learning-rate decay.

``freeze`` (``TrainConfig.freeze``) fixes parameters, named as

* ``stem`` -- every parameter before the first block (the stem convolution and its norm);
* ``stageK`` -- the K-th of ``model.stages`` (1-based: ``layer1`` of a CIFAR ResNet, the
  K-th block of a ViT or MobileNetV2, whose ``stages`` are their blocks);
* ``backbone`` -- everything but the classifier: *feature extraction*, only the head learns
  (Yosinski et al. 2014, "How transferable are features in deep neural networks?");
* a pattern (:mod:`fnmatch`) matched against each parameter's name and the names of the
  modules holding it: ``layer1`` or ``layer1.*`` (a module), ``blocks.[0-5].*``, ``*.bn*``.

A frozen parameter gets ``requires_grad = False`` and no optimiser state. A BatchNorm whose
parameters are all frozen (or that sits in a frozen module) is kept in eval mode while the
rest trains (:func:`frozen_norms`), so its running mean and variance stay those of the
pretrained net too: the frozen part computes exactly what it computed before.

``layer_decay`` (BEiT, Bao et al. 2022 §3 "layer-wise learning rate decay"; timm's
``param_groups_layer_decay``) gives every parameter a layer id -- 0 for the stem, ``i`` for
the i-th block (the blocks of ``model.stages``, in order; a stage that is a plain
``nn.Sequential``/``nn.ModuleList`` contributes each of its children), and ``L + 1`` for the
head and anything after the last block (a final norm) -- and scales its learning rate by
``layer_decay ** (L + 1 - layer_id)``: the head learns at the base rate, the last block at
``base * decay``, the stem at ``base * decay ** (L + 1)``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Sequence

from torch import nn

BACKBONE = "backbone"
STEM = "stem"
STAGE = re.compile(r"stage(\d+)$")
NORMS_WITH_STATS = nn.modules.batchnorm._NormBase  # BatchNorm (and InstanceNorm with stats)


def _stages(model: nn.Module) -> list[nn.Module]:
    stages = getattr(model, "stages", None)
    if stages is None:
        modules = dict(model.named_modules())
        stages = [modules[f["module"]] for f in getattr(model, "feature_info", []) if f["module"] in modules]
    if not stages:
        raise ValueError(
            f"{type(model).__name__} has no stages (model.stages or feature_info): "
            f"name its modules with patterns instead"
        )
    return list(stages)


def block_names(model: nn.Module) -> list[str]:
    """Dotted names of the model's blocks, input to output (the units of :func:`layer_ids`)."""
    names = {id(m): n for n, m in model.named_modules()}
    blocks = []
    for stage in _stages(model):
        children = list(stage.children()) if type(stage) in (nn.Sequential, nn.ModuleList) else [stage]
        blocks += [names[id(b)] for b in children]
    return blocks


def _inside(name: str, module: str) -> bool:
    return name.startswith(module + ".")


def layer_ids(model: nn.Module) -> tuple[dict[str, int], int]:
    """Parameter name -> layer id (stem 0, blocks 1..L, head and what follows the blocks
    L + 1), and ``L + 1``, the head's id (see the module documentation)."""
    blocks = block_names(model)
    head = len(blocks) + 1
    ids, after_blocks = {}, False
    for name, _ in model.named_parameters():
        block = next((i for i, b in enumerate(blocks) if _inside(name, b)), None)
        if block is not None:
            ids[name], after_blocks = block + 1, True
        else:
            ids[name] = head if after_blocks or _inside(name, _classifier(model) or "\0") else 0
    return ids, head


def _classifier(model: nn.Module) -> str:
    return getattr(model, "classifier_name", "") or ""


def layer_decay_groups(groups: list[dict], model: nn.Module, decay: float) -> list[dict]:
    """``groups`` (optimiser parameter groups) split by layer: each part keeps its group's
    settings, gets ``layer_id`` and has its ``lr_scale`` multiplied by
    ``decay ** (L + 1 - layer_id)`` (BEiT / timm layer-wise decay)."""
    if not 0 < decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {decay}")
    names = {id(p): n for n, p in model.named_parameters()}
    ids, top = layer_ids(model)
    out = []
    for group in groups:
        by_layer: dict[int, list] = {}
        for p in group["params"]:
            by_layer.setdefault(ids[names[id(p)]], []).append(p)
        for layer in sorted(by_layer):
            out.append(
                dict(
                    group,
                    params=by_layer[layer],
                    layer_id=layer,
                    lr_scale=group.get("lr_scale", 1.0) * decay ** (top - layer),
                )
            )
    return out


def _matches(name: str, pattern: str) -> bool:
    parts = name.split(".")
    return any(fnmatch.fnmatchcase(".".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def freeze(model: nn.Module, spec: Sequence[str]) -> list[str]:
    """Set ``requires_grad = False`` on the parameters ``spec`` names (see the module
    documentation) and return their names; an item that names nothing is a ValueError
    listing the model's top-level modules."""
    names = [n for n, _ in model.named_parameters()]
    chosen: set[str] = set()
    for item in spec:
        stage = STAGE.match(item)
        if item == BACKBONE:
            head = _classifier(model)
            hit = [n for n in names if not (head and _inside(n, head))]
        elif item == STEM:
            ids, _ = layer_ids(model)
            hit = [n for n in names if ids[n] == 0]
        elif stage:
            stages, k = _stages(model), int(stage.group(1))
            if not 1 <= k <= len(stages):
                raise ValueError(f"freeze: {item!r}, but {type(model).__name__} has stages 1..{len(stages)}")
            own = {id(p) for p in stages[k - 1].parameters()}
            hit = [n for n, p in model.named_parameters() if id(p) in own]
        else:
            hit = [n for n in names if _matches(n, item)]
        if not hit:
            top = ", ".join(n for n, _ in model.named_children())
            raise ValueError(
                f"freeze: {item!r} names no parameter of {type(model).__name__} (expected "
                f"stem, stage1.., backbone or a name pattern; its modules: {top})"
            )
        chosen.update(hit)
    for name, p in model.named_parameters():
        if name in chosen:
            p.requires_grad_(False)
    return [n for n in names if n in chosen]


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm-like modules (running statistics) to keep in eval mode: those whose
    parameters are all frozen, or without parameters inside a module whose are."""
    frozen = {
        name
        for name, m in model.named_modules()
        if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())
    }
    out = []
    for name, m in model.named_modules():
        if not isinstance(m, NORMS_WITH_STATS):
            continue
        own = list(m.parameters())
        parent = name.rpartition(".")[0]
        if name in frozen or (not own and parent in frozen):
            out.append(m)
    return out


def keep_frozen_norms_eval(norms: Sequence[nn.Module]) -> None:
    """Put ``norms`` back in eval mode (after ``model.train()``)."""
    for m in norms:
        m.eval()
