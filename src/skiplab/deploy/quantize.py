"""Static post-training int8 quantisation, calibrated on N training images, with two
backends a user can deploy on a CPU:

* ``pt2e`` -- torchao's PT2E flow (``prepare_pt2e`` / ``convert_pt2e``) with the
  ``X86InductorQuantizer`` (per-channel symmetric int8 weights, affine uint8 activations
  observed by histograms), then ``torch.compile`` with inductor freezing, which lowers the
  quantize/dequantize pattern to oneDNN int8 convolutions. The model is captured with
  ``torch.export(strict=True)``: under non-strict export the quantizer fails with "Input
  partition has more than one output node" on blocks that call one ``nn.ReLU`` twice.
  Written as a ``torch.export`` program (``.pt2``) of the converted graph.
* ``onnx`` -- ONNX Runtime's ``quantize_static`` on the fp32 export: QDQ format, per-channel
  int8 weights, uint8 activations (U8S8, the fast path of VNNI CPUs). Activation ranges by
  default from the 99.999th percentile of a histogram of the calibration activations (Wu et
  al. 2020, "Integer quantization for deep learning inference", sec. 4.2 and Table 3:
  percentile calibration matches or beats max calibration on every CNN they test, because one
  outlier activation no longer stretches the whole int8 grid); ``minmax`` and ``entropy``
  (TensorRT's KL-divergence rule) on request. The rule was chosen on a trained fast_cifar net
  (2026-12-02; that comparison's raw result is not committed) and checked on held-out nets in
  docs/deploy-evidence.md (docs/evidence/int8/*.json).

``qat`` -- quantisation-aware training on the PT2E path (:func:`quantize_qat_pt2e`): the
model, BatchNorm unfolded, is exported in training mode, ``prepare_qat_pt2e`` inserts fake
quantisers (X86InductorQuantizer's QAT config: the same int8 scheme as ``pt2e``) and folds
each BN into its conv's fake-quantised weight, and N steps of fine-tuning on the training
split let the weights adapt to the int8 grid before ``convert_pt2e``. The artifact is the
same kind of ``.pt2`` program as ``pt2e``'s.

Both follow Jacob et al. 2018 (affine int8, BN folded into the convolutions first) and
Krishnamoorthi 2018 ("Quantizing deep convolutional networks for efficient inference",
per-channel weights). ``auto`` builds both and keeps the faster, measured in one run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .calibration import Calibration, calibration_data  # noqa: F401 (calibration_data: re-exported)
from .export import export_onnx, export_program, prepare
from .extras import import_torchao_pt2e, quiet, require
from .quantize_onnx import quantize_onnx
from .sidecar import write_sidecar
from .source import ModelSource

BACKENDS = ("pt2e", "onnx", "auto")
SUFFIX = {"pt2e": ".pt2", "onnx": ".onnx", "qat": ".pt2"}


def quantize_pt2e(source: ModelSource, calibration: Calibration, *, dynamic_hw: Optional[bool] = None) -> nn.Module:
    """The BN-folded model, exported strictly, observed on ``calibration`` and converted to
    a quantize/dequantize int8 graph (run it as is for the reference numerics, or through
    :func:`compile_int8` for speed)."""
    pt2e = import_torchao_pt2e()
    xiq = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "int8 quantisation (PT2E)")
    dynamic_hw = source.meta.dynamic_hw if dynamic_hw is None else dynamic_hw
    model, _ = prepare(source, fold=True)
    program = export_program(model, source, dynamic_hw, strict=True)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    with quiet("torchao"), torch.no_grad():
        prepared = pt2e.prepare_pt2e(program.module(), quantizer)
        for x in calibration.batches:
            prepared(x)
        return pt2e.convert_pt2e(prepared)


@dataclass
class QATOptions:
    """Fine-tuning of :func:`quantize_qat_pt2e`. The defaults: 300 steps of SGD (momentum 0.9,
    no weight decay) at batch 64 with the task's loss and training augmentation, the learning
    rate 1e-3 (the last rate of the He 2015 CIFAR schedule: a fine-tune, not a retraining)
    decayed by a cosine to 0; the activation ranges are frozen for the last 20 % of the steps
    (``freeze_observers``), so the weights settle on the grid they will be converted with."""

    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 0.0
    freeze_observers: float = 0.8  # fraction of the steps after which ranges stay fixed
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"--steps must be >= 1; found {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"--qat-lr must be > 0; found {self.lr}")
        if self.batch_size < 2:
            raise ValueError(f"QAT trains BatchNorm: --qat-batch-size must be >= 2; found {self.batch_size}")

    def describe(self) -> str:
        return (
            f"{self.steps} steps, SGD lr {self.lr:g} (cosine to 0), momentum {self.momentum:g}, "
            f"batch {self.batch_size}, ranges frozen after {self.freeze_observers:.0%}"
        )


@dataclass
class QATResult:
    module: nn.Module  # the converted int8 graph
    description: str  # what it was fine-tuned on, and how
    losses: list[float]  # training loss of every step


def _unzero_norm_scales(model: nn.Module, eps: float = 1e-6) -> int:
    """γ exactly 0 (zero_init_residual, never trained) gives a conv whose BN-folded weight is
    0 in every channel, which the fused fake quantiser rejects ("zero_point must be between
    quant_min and quant_max"); such γ become ``eps``. Returns how many channels changed."""
    changed = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                zero = m.weight == 0
                changed += int(zero.sum())
                m.weight[zero] = eps
    return changed


def quantize_qat_pt2e(
    source: ModelSource,
    options: Optional[QATOptions] = None,
    *,
    data: Optional[str] = None,
    dynamic_hw: Optional[bool] = None,
    progress=lambda s: None,
) -> QATResult:
    """Quantisation-aware training on torchao's PT2E flow: export the training-mode model,
    ``prepare_qat_pt2e`` with the X86 inductor quantizer's QAT config, fine-tune on the
    training split (``data`` or the recorded one) as :class:`QATOptions` says, then
    ``move_exported_model_to_eval`` and ``convert_pt2e``. The result runs and saves as
    :func:`quantize_pt2e`'s."""
    import copy
    import math

    options = options or QATOptions()
    pt2e = import_torchao_pt2e()
    xiq = require(
        "torchao.quantization.pt2e.quantizer.x86_inductor_quantizer", "int8 quantisation-aware training (PT2E)"
    )
    fq = require("torchao.quantization.pt2e", "int8 quantisation-aware training (PT2E)")
    recorded = dict(source.meta.config)
    if not (data or recorded.get("data")):
        raise ValueError(
            "quantisation-aware training needs training data: the source records "
            "none (a model name?); pass --data SPEC or a trained checkpoint"
        )
    from ..train.evaluation import evaluation_data

    task, dataset = evaluation_data(
        recorded or {"model": source.meta.model, "task": source.meta.task},
        data,
        "train",
        radiometry=source.meta.radiometry,
        channels_last=False,
    )
    criterion = task.criterion(dataset)
    dynamic_hw = source.meta.dynamic_hw if dynamic_hw is None else dynamic_hw
    model = copy.deepcopy(source.model).float().train()
    _unzero_norm_scales(model)
    example = source.example_input(max(2, min(options.batch_size, 4)))
    from .export import dynamic_shapes

    program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes(source, dynamic_hw), strict=True)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=True))
    torch.manual_seed(options.seed)  # the loader's order is its own seed's; this seeds the rest
    with quiet("torchao"):
        prepared = pt2e.prepare_qat_pt2e(program.module(), quantizer)
    fq.move_exported_model_to_train(prepared)
    params = [p for p in prepared.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=options.lr, momentum=options.momentum, weight_decay=options.weight_decay)
    loader = task.loader(dataset, options.batch_size, train=True, device=torch.device("cpu"))
    freeze_at = int(math.ceil(options.freeze_observers * options.steps))
    losses: list[float] = []
    step = 0
    while step < options.steps:
        for x, y in loader:
            if step >= options.steps:
                break
            if step == freeze_at:
                prepared.apply(fq.disable_observer)
            for group in opt.param_groups:
                group["lr"] = options.lr * 0.5 * (1 + math.cos(math.pi * step / options.steps))
            loss = criterion(prepared(x.contiguous().float()), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % max(1, options.steps // 10) == 0:
                progress(f"QAT step {step}/{options.steps}, loss {losses[-1]:.4f}")
        if not len(loader):
            raise ValueError(
                f"the training split of {dataset.name} has fewer than "
                f"{options.batch_size} images: lower --qat-batch-size"
            )
    fq.move_exported_model_to_eval(prepared)
    with quiet("torchao"), torch.no_grad():
        converted = pt2e.convert_pt2e(prepared)
    description = f"QAT on {len(dataset)} images of {dataset.name}: {options.describe()}"
    return QATResult(converted, description, losses)


def compile_int8(module: nn.Module) -> nn.Module:
    """``torch.compile`` with inductor freezing (constant weights, needed for the oneDNN int8
    kernels), as torchao's X86InductorQuantizer tutorial prescribes -- for this compile only
    (``options``: inductor applies them to this module's graphs and leaves the process-wide
    ``torch._inductor.config.freezing`` as it was, so a ``compiled_bf16`` timed beside it runs
    without freezing)."""
    return torch.compile(module, options={"freezing": True})


def save_pt2e(
    quantized: nn.Module, source: ModelSource, out: Union[str, Path], *, dynamic_hw: Optional[bool] = None
) -> Path:
    """The converted int8 graph as a ``torch.export`` program (``torch.export.save``)."""
    dynamic_hw = source.meta.dynamic_hw if dynamic_hw is None else dynamic_hw
    drop_unused_tensors(quantized)
    program = export_program(quantized, source, dynamic_hw, strict=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(out))
    return out


def drop_unused_tensors(gm: torch.fx.GraphModule) -> int:
    """Delete the parameters and buffers no ``get_attr`` node reads (after ``convert_pt2e`` the
    fp32 weights stay attributes beside their int8 copies, and ``torch.export`` would save
    both); the number deleted."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    dropped = 0
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        if name not in used:
            parent, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(parent) if parent else gm, attr)
            dropped += 1
    return dropped


@dataclass
class QuantizedArtifact:
    backend: str
    path: Path
    module: nn.Module  # what runs (compiled for pt2e)
    reference: nn.Module  # what the file holds, run eagerly / in ORT
    notes: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # QAT: the training loss of every step


def quantize_to(
    source: ModelSource,
    backend: str,
    out: Union[str, Path],
    calibration: Calibration,
    *,
    compile: bool = True,
    onnx_calibration: str = "percentile",
    qat: Optional[QATOptions] = None,
    data: Optional[str] = None,
    progress=lambda s: None,
) -> QuantizedArtifact:
    """Quantise with ``backend`` ("pt2e", "onnx" or "qat": PT2E after quantisation-aware
    training as ``qat`` says, on ``data``) and write ``out`` plus its sidecar."""
    from .runtime import OrtModule

    out = Path(out)
    info = dict(
        precision="int8", backend=backend, calibration=calibration.description, dynamic_hw=source.meta.dynamic_hw
    )
    if backend == "qat":
        result = quantize_qat_pt2e(source, qat, data=data, progress=progress)
        save_pt2e(result.module, source, out)
        info["calibration"] = result.description
        write_sidecar(
            out,
            source.meta,
            format="pt2",
            exporter="torch.export (torchao PT2E QAT)",
            quantizer="X86InductorQuantizer (is_qat=True)",
            **info,
        )
        artifact = QuantizedArtifact(
            backend, out, compile_int8(result.module) if compile else result.module, result.module
        )
        artifact.notes.append(result.description)
        artifact.losses = result.losses
        return artifact
    if backend == "pt2e":
        quantized = quantize_pt2e(source, calibration)
        save_pt2e(quantized, source, out)
        write_sidecar(
            out,
            source.meta,
            format="pt2",
            exporter="torch.export (torchao PT2E)",
            quantizer="X86InductorQuantizer",
            **info,
        )
        return QuantizedArtifact(backend, out, compile_int8(quantized) if compile else quantized, quantized)
    if backend == "onnx":
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(source, Path(tmp) / "fp32.onnx")
            quantize_onnx(fp32.path, out, calibration, method=onnx_calibration)
        write_sidecar(
            out,
            source.meta,
            format="onnx",
            exporter=fp32.exporter,
            quantizer=f"onnxruntime.quantize_static (QDQ, per-channel, U8S8, {onnx_calibration})",
            **info,
        )
        module = OrtModule(out)
        return QuantizedArtifact(backend, out, module, module)
    raise ValueError(f"backend must be one of {BACKENDS}; found {backend!r}")
