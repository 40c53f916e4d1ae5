"""The channel widths of a model whose layers were resized (channel pruning), as plain data,
so that a pruned checkpoint rebuilds its architecture without pickled modules.

A registered model is described by its name and keywords; a pruned one by those *plus* the
widths of every convolution, BatchNorm, linear layer and option-A selection shortcut
(:func:`model_structure`). A checkpoint stores that mapping under ``"structure"``; loading
is ``create_model(name, **kwargs)``, then :func:`apply_structure` (which resizes the layers
in place: empty tensors of the recorded shapes, filled by ``load_state_dict``), then the
weights. Only ints and strings are stored, so ``torch.load(weights_only=True)`` reads it.

    structure = model_structure(pruned)                  # after skiplab.deploy.prune
    net = create_model(name, **kwargs)
    apply_structure(net, structure)
    net.load_state_dict(pruned.state_dict())             # strict: every shape fits
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn

from ..blocks.shortcut import SelectionShortcut, ZeroPadShortcut

STRUCTURE_FORMAT = "skiplab.structure/1"


def use_selection_shortcuts(model: nn.Module) -> int:
    """Replace every option-A :class:`ZeroPadShortcut` by the equivalent
    :class:`SelectionShortcut` (same outputs); returns how many were replaced."""
    found = [(name, m) for name, m in model.named_modules() if isinstance(m, ZeroPadShortcut)]
    for name, shortcut in found:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        replacement = SelectionShortcut.from_zero_pad(shortcut)
        if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
            parent[int(attr)] = replacement
        else:
            setattr(parent, attr, replacement)
    return len(found)


def _describe(module: nn.Module) -> Optional[dict]:
    if isinstance(module, nn.Conv2d):
        return {
            "type": "Conv2d",
            "in_channels": module.in_channels,
            "out_channels": module.out_channels,
            "groups": module.groups,
        }
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return {"type": "BatchNorm", "num_features": module.num_features}
    if isinstance(module, nn.Linear):
        return {"type": "Linear", "in_features": module.in_features, "out_features": module.out_features}
    if isinstance(module, SelectionShortcut):
        return {"type": "SelectionShortcut", "in_channels": module.in_channels, "out_channels": module.out_channels}
    return None


def model_structure(model: nn.Module) -> dict:
    """``{"format", "selection_shortcuts", "modules": {name: widths}}`` of ``model``."""
    modules = {name: spec for name, m in model.named_modules() if (spec := _describe(m))}
    selection = any(isinstance(m, SelectionShortcut) for m in model.modules())
    return {"format": STRUCTURE_FORMAT, "selection_shortcuts": selection, "modules": modules}


def _empty(param: Optional[torch.Tensor], shape: tuple, fill: float = 0.0) -> Optional[nn.Parameter]:
    if param is None:
        return None
    data = torch.full(shape, fill, dtype=param.dtype, device=param.device)
    return nn.Parameter(data, requires_grad=param.requires_grad) if isinstance(param, nn.Parameter) else data


def _resize(module: nn.Module, spec: Mapping[str, Any], name: str) -> None:
    kind = _describe(module)
    if kind is None or kind["type"] != spec.get("type"):
        raise ValueError(
            f"structure: {name} is a {type(module).__name__}, the checkpoint "
            f"records a {spec.get('type')} (another architecture?)"
        )
    if spec["type"] == "Conv2d":
        cin, cout, groups = int(spec["in_channels"]), int(spec["out_channels"]), int(spec["groups"])
        module.in_channels, module.out_channels, module.groups = cin, cout, groups
        module.weight = _empty(module.weight, (cout, cin // groups, *module.kernel_size))
        module.bias = _empty(module.bias, (cout,))
    elif spec["type"] == "BatchNorm":
        n = int(spec["num_features"])
        module.num_features = n
        module.weight, module.bias = _empty(module.weight, (n,), 1.0), _empty(module.bias, (n,))
        if module.running_mean is not None:
            module.running_mean = _empty(module.running_mean, (n,))
            module.running_var = _empty(module.running_var, (n,), 1.0)
    elif spec["type"] == "Linear":
        cin, cout = int(spec["in_features"]), int(spec["out_features"])
        module.in_features, module.out_features = cin, cout
        module.weight, module.bias = _empty(module.weight, (cout, cin)), _empty(module.bias, (cout,))
    else:
        module.weight = torch.zeros(int(spec["out_channels"]), int(spec["in_channels"]), 1, 1)


def apply_structure(model: nn.Module, structure: Optional[Mapping[str, Any]]) -> nn.Module:
    """Resize ``model`` (built by ``create_model`` with the recorded name and keywords) to the
    widths in ``structure`` (:func:`model_structure`); ``None`` leaves it as it is. The new
    tensors are placeholders: load the checkpoint's weights next."""
    if structure is None:
        return model
    if structure.get("format") != STRUCTURE_FORMAT:
        raise ValueError(f"structure format {structure.get('format')!r} is not {STRUCTURE_FORMAT!r}")
    if structure.get("selection_shortcuts"):
        use_selection_shortcuts(model)
    for name, spec in structure["modules"].items():
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"structure: the model has no module {name!r} (another architecture?)") from None
        _resize(module, spec, name)
    refresh_widths(model)
    return model


def refresh_widths(model: nn.Module) -> None:
    """Keep a classifier's ``num_features`` and ``feature_info`` channel counts true after
    its layers were resized: the classifier's input width, and for each ``feature_info``
    entry the width of the last BatchNorm (else convolution) inside its module."""
    head = getattr(model, getattr(model, "classifier_name", "fc"), None)
    if isinstance(head, nn.Linear) and hasattr(model, "num_features"):
        model.num_features = head.in_features
    for info in getattr(model, "feature_info", []) or []:
        try:
            module = model.get_submodule(info["module"])
        except (AttributeError, KeyError):
            continue
        widths = [
            m.num_features if isinstance(m, nn.modules.batchnorm._BatchNorm) else m.out_channels
            for m in module.modules()
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Conv2d))
        ]
        if widths:
            info["num_chs"] = widths[-1]
