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

``qat`` -- quantisation-aware training on the PT2E path (:mod:`skiplab.deploy.qat`): the same
int8 scheme, the weights fine-tuned with fake quantisation before ``convert_pt2e``, saved as
the same kind of ``.pt2`` program as ``pt2e``'s.

Both follow Jacob et al. 2018 (affine int8, BN folded into the convolutions first) and
Krishnamoorthi 2018 ("Quantizing deep convolutional networks for efficient inference",
per-channel weights). ``auto`` builds both and keeps the faster, measured in one run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .calibration import Calibration, calibration_data  # noqa: F401 (calibration_data: re-exported)
from .export import export_onnx, export_program, prepare
from .extras import import_torchao_pt2e, quiet, require
from .qat import QATOptions, QATResult, quantize_qat_pt2e
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


class FrozenCompiled(nn.Module):
    """``torch.compile`` of ``module`` whose calls -- the first traces and compiles -- run with
    inductor freezing on (``torch._inductor.config.patch``), and only they. Passing
    ``options={"freezing": True}`` to ``torch.compile`` is not enough in torch 2.13: dynamo reads
    the process-wide flag when it traces, lifts the int8 weights as graph inputs, and
    inductor's oneDNN ``qconv_prepack`` then fails on fake tensors."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.compiled = torch.compile(module)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(*args)


def compile_int8(module: nn.Module) -> nn.Module:
    """``torch.compile`` with inductor freezing (constant weights, needed for the oneDNN int8
    kernels), as torchao's X86InductorQuantizer tutorial prescribes -- for this module only
    (:class:`FrozenCompiled`: the process-wide ``torch._inductor.config.freezing`` is as it was
    between its calls, so a ``compiled_bf16`` timed beside it runs without freezing)."""
    return FrozenCompiled(module)


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
    qat: Optional[QATResult] = None  # the fine-tune, for backend "qat"


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
        return QuantizedArtifact(
            backend, out, compile_int8(result.module) if compile else result.module, result.module, qat=result
        )
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
