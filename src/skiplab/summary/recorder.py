"""One forward of a model cut into the parts of its summary table (:mod:`skiplab.summary`):
forward hooks stamp, in execution order, when each module with parameters runs and when each
part (a ``feature_info`` module) starts and ends, with the running FLOP count
(:class:`~torch.utils.flop_counter.FlopCounterMode`) and the bytes autograd saves for backward
(:func:`torch.autograd.graph.saved_tensors_hooks`)."""

from __future__ import annotations

import contextlib
import itertools
from typing import Optional

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


class Recorder:
    """Forward hooks that stamp, in execution order, when each module with parameters
    runs and when each part starts and ends, with the running FLOP and saved-byte totals."""

    def __init__(self, model: nn.Module, part_modules: list[str], flop_mode: Optional[FlopCounterMode]) -> None:
        self.clock = itertools.count()
        self.flop_mode = flop_mode
        self.run_at: dict[str, int] = {}  # module name -> first time it returned
        self.part_start: dict[str, tuple] = {}  # feature module -> (time, input shape, flops, bytes), first call
        self.part_end: dict[str, tuple] = {}  # feature module -> (time, output shape, flops, bytes), last call
        self.saved: dict[tuple, int] = {}  # storage key -> bytes
        # parameters and buffers (BatchNorm statistics) are model state, not activations
        self.state_storages = {storage_key(t) for t in itertools.chain(model.parameters(), model.buffers())}
        self.handles = []
        modules = dict(model.named_modules())
        for name, module in modules.items():
            if any(True for _ in module.parameters(recurse=False)):
                self.handles.append(module.register_forward_hook(self._ran(name)))
        for name in part_modules:
            self.handles.append(modules[name].register_forward_pre_hook(self._started(name)))
            self.handles.append(modules[name].register_forward_hook(self._ended(name)))

    def flops(self) -> int:
        return sum(self.flop_mode.flop_counts["Global"].values()) if self.flop_mode else 0

    def saved_bytes(self) -> int:
        return sum(self.saved.values())

    def stamp(self) -> tuple[int, int, int]:
        return next(self.clock), self.flops(), self.saved_bytes()

    def _ran(self, name: str):
        def hook(_module, _inputs, _output):
            self.run_at.setdefault(name, next(self.clock))

        return hook

    def _started(self, name: str):
        def hook(_module, inputs):
            shape = list(inputs[0].shape) if inputs and torch.is_tensor(inputs[0]) else []
            t, f, b = self.stamp()
            self.part_start.setdefault(name, (t, shape, f, b))

        return hook

    def _ended(self, name: str):
        def hook(_module, _inputs, output):
            shape = list(output.shape) if torch.is_tensor(output) else []
            t, f, b = self.stamp()
            self.part_end[name] = (t, shape, f, b)

        return hook

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        key = storage_key(tensor)
        if key not in self.state_storages and key not in self.saved:
            self.saved[key] = tensor.untyped_storage().nbytes()
        return tensor

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def storage_key(t: torch.Tensor) -> tuple:
    s = t.untyped_storage()
    return (s.data_ptr(), s.nbytes(), t.device.type)


# A cut closes one row of the table: (label, module, time, output shape, flops, saved bytes).
Cut = tuple[str, str, float, list, int, int]


def run_parts(
    model: nn.Module, x: torch.Tensor, part_modules: list[str], *, train: bool, count_flops: bool
) -> tuple[Recorder, list[Cut], Optional[torch.Tensor]]:
    """One forward, cut into parts. ``count_flops``: under FlopCounterMode without autograd
    (fast); otherwise with autograd, recording the tensors saved for backward."""
    flop_mode = FlopCounterMode(display=False) if count_flops else None
    rec = Recorder(model, part_modules, flop_mode)
    model.train(train)
    try:
        with contextlib.ExitStack() as stack:
            if count_flops:
                stack.enter_context(torch.no_grad())
                stack.enter_context(flop_mode)
            else:
                stack.enter_context(torch.autograd.graph.saved_tensors_hooks(rec.pack, lambda t: t))
            if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
                feats = model.forward_features(x)
                t_feats = rec.stamp()
                out = model.forward_head(feats)
            else:
                feats, t_feats = None, None
                out = model(x)
        end = rec.stamp()
    finally:
        rec.remove()
    modules = dict(model.named_modules())
    cuts: list[Cut] = []
    ran = [m for m in part_modules if m in rec.part_end]
    if ran and any(True for _ in modules[ran[0]].parameters()):
        start = rec.part_start[ran[0]]
        if any(t < start[0] for t in rec.run_at.values()):  # layers ran before the first stage
            cuts.append(("stem", "", *start))
    for m in ran:
        last = m.split(".")[-1]
        closes_stem = not cuts and not any(True for _ in modules[m].parameters())  # ResNet's stem "relu"
        label = "stem" if closes_stem else (m if last.isdigit() else last)
        cuts.append((label, m, *rec.part_end[m]))
    if feats is not None:
        cuts.append(("features", "", t_feats[0], list(feats.shape), t_feats[1], t_feats[2]))
    head_module = ""
    if hasattr(model, "get_classifier") and not isinstance(model.get_classifier(), nn.Identity):
        head_module = getattr(model, "classifier_name", "")
    cuts.append(
        (
            "logits" if feats is not None else "output",
            head_module,
            end[0],
            list(out.shape) if torch.is_tensor(out) else [],
            end[1],
            end[2],
        )
    )
    return rec, cuts, feats
