"""Find the residual blocks (or the plain layer pairs) of any model, generically.

A *residual block* is any module with a callable ``residual(x)`` (the branch F(x)) and a
``has_shortcut`` attribute (taken as true when absent), as every block of
:mod:`skiplab.blocks`. With ``has_shortcut=False`` the same module is a *plain* block (two or three layers with no
shortcut, the twin of a residual block in He et al. 2015's plain nets). Models with
neither (a plain MLP of bare ``nn.Linear`` layers, say) are described layer by layer:
every convolution / linear layer is then one *unit*.

Also here: the two ways the diagnostics touch a model without copying it --
:func:`override` (shadow one attribute of a module, usually ``forward`` or the branch
method, and restore it exactly) and :func:`eval_mode` (evaluation mode for a while,
then every module's own ``training`` flag back).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
from torch import nn

_MISSING = object()

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)


def is_block(module: nn.Module) -> bool:
    """A residual or plain block: it has a ``residual(x)`` method (and ``has_shortcut``,
    True when absent)."""
    return callable(getattr(module, "residual", None))


def branch_method(block: nn.Module) -> str:
    """Name of the method a block's ``forward`` calls to compute its branch.

    Post-activation blocks call ``residual(x)``; pre-activation blocks (He et al. 2016)
    compute ``relu(BN(x))`` once, share it with a projection shortcut, and call
    ``residual_from_preact(pre)``.
    """
    return "residual_from_preact" if callable(getattr(block, "residual_from_preact", None)) else "residual"


@dataclass
class Unit:
    """One block (or, for a model without blocks, one weight layer) of a model.

    ``kind`` is "residual" (a block with a shortcut), "plain" (a block without) or
    "layer". ``in_shape``/``out_shape`` (one sample, no batch dimension) are known when the
    units were found with an example input; ``index`` is the position in forward order.
    """

    name: str
    module: nn.Module = field(repr=False)
    index: int
    kind: str
    in_shape: Optional[tuple[int, ...]] = None
    out_shape: Optional[tuple[int, ...]] = None
    branch_in_forward: Optional[bool] = None

    def check_branch_in_forward(self, what: str) -> None:
        """Raise when probing showed that the block's forward bypasses its branch method
        (the diagnostics that alter the branch work by wrapping that method)."""
        if self.branch_in_forward is False:
            method = branch_method(self.module)
            raise ValueError(
                f"{what} needs the forward of {type(self.module).__name__} ({self.name!r}) to "
                f"compute its branch by calling self.{method}(...); it computes it otherwise"
            )

    @property
    def is_residual(self) -> bool:
        return self.kind == "residual"

    @property
    def has_projection(self) -> bool:
        """Whether the shortcut is a module (a projection or option-A zero padding)."""
        return getattr(self.module, "downsample", None) is not None

    @property
    def preserves_shape(self) -> Optional[bool]:
        """Whether the output has the input's shape (``None`` when shapes were not probed)."""
        if self.in_shape is None or self.out_shape is None:
            return None
        return self.in_shape == self.out_shape

    @property
    def downsampling(self) -> bool:
        """Whether the unit changes the shape (stride or channels): its shortcut, if any,
        is a projection rather than the identity."""
        if self.preserves_shape is not None:
            return not self.preserves_shape
        return self.has_projection

    def row(self) -> dict[str, Any]:
        return dict(block=self.name, index=self.index, kind=self.kind, downsampling=self.downsampling)


def _outermost(model: nn.Module, predicate) -> list[tuple[str, nn.Module]]:
    """Modules satisfying ``predicate``, skipping those nested inside an earlier match."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if module is model and not is_block(model):
            continue
        if any(prefix == "" or name.startswith(prefix + ".") for prefix, _ in found):
            continue
        if predicate(module):
            found.append((name, module))
    return found


def find_units(model: nn.Module, example: Optional[torch.Tensor] = None, fallback_layers: bool = True) -> list[Unit]:
    """The blocks of ``model`` (outermost ones; a block inside a block is part of it).

    Without blocks and with ``fallback_layers``, every conv / linear layer is a unit.
    Given an ``example`` batch, the units are put in the order the forward pass runs them
    (registration order otherwise) and their input/output shapes are recorded; the
    probe runs in evaluation mode without gradients, so BatchNorm statistics are untouched.
    """
    found = _outermost(model, is_block)
    kind_of = {id(m): ("residual" if bool(getattr(m, "has_shortcut", True)) else "plain") for _, m in found}
    if not found and fallback_layers:
        found = _outermost(model, lambda m: isinstance(m, WEIGHT_LAYERS))
        kind_of = {id(m): "layer" for _, m in found}
    units = [Unit(name, m, i, kind_of[id(m)]) for i, (name, m) in enumerate(found)]
    if example is not None and units:
        units = _probe(model, units, example)
    return units


def find_blocks(model: nn.Module, example: Optional[torch.Tensor] = None) -> list[Unit]:
    """The residual and plain blocks of ``model`` (no fallback to single layers)."""
    return find_units(model, example, fallback_layers=False)


def residual_blocks(model: nn.Module, example: Optional[torch.Tensor] = None) -> list[Unit]:
    """Only the blocks that have a shortcut, in forward order, re-indexed from 0."""
    blocks = [u for u in find_blocks(model, example) if u.is_residual]
    for i, u in enumerate(blocks):
        u.index = i
    return blocks


def _probe(model: nn.Module, units: list[Unit], example: torch.Tensor) -> list[Unit]:
    order: list[int] = []

    def hook_for(position: int):
        def hook(_module, inputs, output):
            unit = units[position]
            if unit.in_shape is None and inputs and torch.is_tensor(inputs[0]):
                unit.in_shape = tuple(inputs[0].shape[1:])
                unit.out_shape = tuple(output.shape[1:]) if torch.is_tensor(output) else None
                order.append(position)

        return hook

    called: set[int] = set()

    def counting(position: int, original):
        def wrapped(*args, **kwargs):
            called.add(position)
            return original(*args, **kwargs)

        return wrapped

    with contextlib.ExitStack() as stack:
        for position, unit in enumerate(units):
            handle = unit.module.register_forward_hook(hook_for(position))
            stack.callback(handle.remove)
            if unit.kind != "layer":
                method = branch_method(unit.module)
                stack.enter_context(override(unit.module, method, counting(position, getattr(unit.module, method))))
        stack.enter_context(eval_mode(model))
        stack.enter_context(torch.no_grad())
        model(example)
    for position, unit in enumerate(units):
        if unit.kind != "layer" and unit.in_shape is not None:
            unit.branch_in_forward = position in called
    ran = [units[p] for p in order] + [u for p, u in enumerate(units) if p not in set(order)]
    for i, u in enumerate(ran):
        u.index = i
    return ran


@contextlib.contextmanager
def override(module: nn.Module, attr: str, value: Any) -> Iterator[None]:
    """Shadow ``module.attr`` by ``value`` on this instance only; restore it exactly.

    Used to replace a block's ``forward`` or branch method for a moment (lesions, gradient
    gating) without copying the model: parameters and buffers are never touched.
    """
    previous = module.__dict__.get(attr, _MISSING)
    object.__setattr__(module, attr, value)
    try:
        yield
    finally:
        if previous is _MISSING:
            object.__delattr__(module, attr)
        else:
            object.__setattr__(module, attr, previous)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluation mode inside the block; afterwards every module's own flag comes back."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def batches_of(data: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)``, a list of such pairs, or a loader of them -> a list of pairs."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and torch.is_tensor(data[0]):
        return [(data[0], data[1])]
    batches = list(data)
    for b in batches:
        if not (isinstance(b, (tuple, list)) and len(b) == 2 and torch.is_tensor(b[0])):
            raise ValueError(f"expected (x, y) batches, found an item of type {type(b).__name__}")
    if not batches:
        raise ValueError("expected at least one (x, y) batch, found none")
    return [(b[0], b[1]) for b in batches]
