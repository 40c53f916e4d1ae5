"""What a network is made of: the per-stage shape-flow table, parameters, MACs and memory.

``summarize("resnet50")`` runs one training-mode forward on a batch of the model's
default input size and returns a :class:`ModelSummary`: the table textbooks print (He et
al. 2015, Table 1 -- input, stem, each stage of ``feature_info``, pool, logits, with the
output shape and the parameters of each part), the parameter count, the multiply-
accumulates (MACs) of that forward and the activation memory a training step keeps for
the backward pass.

How each figure is measured:

* **Parts.** Each module that owns parameters is put in the part during which it runs:
  part *i* ends when the module named by ``feature_info[i]`` returns, so a stage's row
  also holds what runs between the previous stage and it (ResNet's max-pool and the
  DenseNet transitions belong to the following stage, as in the papers' tables).
* **MACs / FLOPs.** :class:`torch.utils.flop_counter.FlopCounterMode` counts convolutions
  and matrix products (2 FLOPs per multiply-accumulate); normalisation, activations,
  pooling and additions are not counted, as in the papers and fvcore.
* **Activation memory.** Every tensor autograd saves for the backward pass is seen by
  :func:`torch.autograd.graph.saved_tensors_hooks`; the bytes of their storages, counted
  once per storage and without the parameters and buffers, are what a training step holds at the
  end of its forward (gradient buffers and optimizer state excluded).

The model is left as it was: its mode, buffers (BatchNorm statistics) and the global
random state are restored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ..models.published import count_parameters  # noqa: F401  (re-exported)
from .recorder import Cut, Recorder, run_parts


@dataclass
class SummaryRow:
    """One part of the network: its name, the module that ends it, output shape, cost."""

    name: str
    module: str
    output_shape: list[int]
    params: int = 0
    macs: int = 0
    activation_bytes: int = 0


@dataclass
class ModelSummary:
    """The result of :func:`summarize`; ``to_text()`` prints it, ``to_dict()`` serialises it."""

    model: str
    input_size: list[int]
    batch: int
    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    param_bytes: int
    flops: int
    macs: int
    activation_bytes: int
    activation_mode: str = "train"
    published: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)
    compression: Optional[dict[str, float]] = None  # autoencoders: ratio and bits per pixel

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        header = ["part", "module", "output shape", "params", "MACs", "saved act."]
        body = [
            [
                r.name,
                r.module or "-",
                _shape(r.output_shape),
                f"{r.params:,}",
                _si(r.macs) if r.macs else "-",
                _bytes(r.activation_bytes) if r.activation_bytes else "-",
            ]
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        left = {0, 1, 2}

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(
                c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        rule = "-" * len(fmt(header))
        lines = [f"{self.model}: input {_shape([self.batch] + self.input_size)}", rule, fmt(header), rule]
        lines += [fmt(row) for row in body] + [rule]
        lines.append(
            f"parameters:        {self.total_params:,} ({self.trainable_params:,} trainable, "
            f"{_bytes(self.param_bytes)})"
        )
        if self.published:
            p = self.published
            lines.append(
                f"published:         {p['count']:,} ({p['source']}; ours differs by "
                f"{self.total_params - p['count']:+,}, tolerance {p['tolerance']:,})"
            )
        lines.append(f"MACs (one forward): {_si(self.macs)} ({_si(self.flops)} FLOPs) at batch {self.batch}")
        lines.append(
            f"activation memory: {_bytes(self.activation_bytes)} saved for backward by one "
            f"{'training' if self.activation_mode == 'train' else 'eval-mode'} step at batch {self.batch}"
        )
        if self.compression:
            lines.append(
                f"compression:       {self.compression['ratio']:.4g}:1 against the float32 input, "
                f"{self.compression['bits_per_pixel']:.4g} bits per pixel (float32 latent); "
                f"{self.compression['bits_per_pixel'] / 4:.4g} bpp at 8 bits per value before "
                f"entropy coding (measured: --checkpoint, skiplab encode, skiplab sar-rd)"
            )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _check_input_size(input_size: Any) -> tuple[int, int, int]:
    size = tuple(input_size)
    if len(size) != 3 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"input_size must be three positive integers (C, H, W), got {input_size!r}")
    return size  # type: ignore[return-value]


def summarize(
    model_or_name: Union[str, nn.Module],
    input_size: Optional[Sequence[int]] = None,
    batch: int = 1,
    **model_kwargs: Any,
) -> ModelSummary:
    """Summarise a model (or the registered model ``name``, built with ``model_kwargs``).

    Args:
        input_size: ``(C, H, W)``; default ``model.default_input_size`` (224 for the
            ImageNet models, 32 for CIFAR). A model given by name is built with
            ``in_chans=C`` unless ``in_chans`` is among ``model_kwargs``.
        batch: batch of the measured forward / training step.

    Raises ValueError when the input cannot go through the model (wrong channels, too
    small) with the model's own explanation.
    """
    from ..models import create_model
    from ..models.published import published_entry

    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if isinstance(model_or_name, str):
        if input_size is not None and "in_chans" not in model_kwargs:
            model_kwargs["in_chans"] = int(input_size[0])  # built for the input it is given
        name, model = model_or_name, create_model(model_or_name, **model_kwargs)
    elif model_kwargs:
        raise ValueError(f"model options {sorted(model_kwargs)} only apply when the model is given by name")
    else:
        name, model = type(model_or_name).__name__, model_or_name
    if input_size is None:
        if not hasattr(model, "default_input_size"):
            raise ValueError(f"{type(model).__name__} has no default_input_size: pass input_size=(C, H, W)")
        input_size = model.default_input_size
    size = _check_input_size(input_size)
    if hasattr(model, "check_input"):
        model.check_input(torch.empty(batch, *size, device="meta"))

    feature_info = list(getattr(model, "feature_info", []) or [])
    part_modules = [f["module"] for f in feature_info]
    param = next(model.parameters(), None)
    x = torch.randn(batch, *size, generator=torch.Generator().manual_seed(0)).to(  # global RNG untouched
        device=param.device if param is not None else "cpu",
        dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32,
    )

    # pass 1: shapes, parameters per part and MACs (eval mode, no autograd: fast)
    was_training = model.training
    try:
        rec, cuts, feats = run_parts(model, x, part_modules, train=False, count_flops=True)
    finally:
        model.train(was_training)
    rows = _rows(model, rec, cuts, feats, [batch, *size])
    # pass 2: what a training step saves for backward (model state restored afterwards)
    notes: list[str] = []
    mode = "train"
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    try:
        with torch.random.fork_rng(devices=[]):
            try:
                _, mem_cuts, _ = run_parts(model, x, part_modules, train=True, count_flops=False)
            except ValueError as err:
                if "more than 1 value per channel" not in str(err):
                    raise
                mode = "eval"
                notes.append(
                    "a training step at this batch and input size would fail (BatchNorm needs "
                    "more than one value per channel); activations were measured in eval mode"
                )
                _, mem_cuts, _ = run_parts(model, x, part_modules, train=False, count_flops=False)
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers:
                    b.copy_(buffers[k])
        model.train(was_training)
    _add_activation_bytes(rows, mem_cuts)
    flops = cuts[-1][4]
    activation_bytes = mem_cuts[-1][5]

    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    # the published count describes the default options only
    pub = published_entry(model_or_name) if isinstance(model_or_name, str) and not model_kwargs else None
    assigned = sum(r.params for r in rows)
    if assigned != total:
        notes.append(f"{total - assigned:,} parameters belong to modules that did not run in this forward")
    return ModelSummary(
        model=name,
        input_size=list(size),
        batch=batch,
        rows=rows,
        total_params=total,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        flops=int(flops),
        macs=int(flops) // 2,
        activation_bytes=activation_bytes,
        activation_mode=mode,
        published=pub,
        notes=notes,
        compression=_compression(model, size),
    )


def _compression(model: nn.Module, size: tuple[int, int, int]) -> Optional[dict[str, float]]:
    """Models that compress (autoencoders: ``compression_ratio`` and ``bits_per_pixel`` methods
    taking the input size) report both for this input size."""
    if not all(callable(getattr(model, name, None)) for name in ("compression_ratio", "bits_per_pixel")):
        return None
    return dict(ratio=float(model.compression_ratio(size)), bits_per_pixel=float(model.bits_per_pixel(size)))


def _rows(
    model: nn.Module, rec: Recorder, cuts: list[Cut], feats: Optional[torch.Tensor], input_shape: list[int]
) -> list[SummaryRow]:
    """Cut the recorded run into the table's rows (see the module docstring)."""
    modules = dict(model.named_modules())
    owned = {n: sum(p.numel() for p in modules[n].parameters(recurse=False)) for n in rec.run_at}
    rows = [SummaryRow("input", "", input_shape)]
    prev_t, prev_f = -1, 0
    for i, (label, module, t, shape, f, _) in enumerate(cuts):
        params = sum(c for n, c in owned.items() if prev_t < rec.run_at[n] <= t)
        if label == "features" and params == 0 and f == prev_f and rows[-1].output_shape == shape:
            continue  # forward_features ends with the last stage: no extra row
        if label == "logits" and feats is not None:
            pooled = model.forward_head(feats[:1], pre_logits=True)
            rows.append(SummaryRow("pool", "", [input_shape[0]] + list(pooled.shape[1:])))
        rows.append(SummaryRow(label, module, shape, params, (f - prev_f) // 2))
        prev_t, prev_f = t, f
    return rows


def _add_activation_bytes(rows: list[SummaryRow], mem_cuts: list[Cut]) -> None:
    """Fill each row's saved bytes from the training pass, matched by part name."""
    prev_b, per_part = 0, {}
    for label, module, _, _, _, b in mem_cuts:
        per_part[(label, module)] = b - prev_b
        prev_b = b
    for row in rows:
        row.activation_bytes = per_part.get((row.name, row.module), 0)
