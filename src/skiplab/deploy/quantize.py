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

import contextlib
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .export import export_onnx, export_program, prepare
from .extras import import_torchao_pt2e, quiet, require
from .qat import QATOptions, QATResult, quantize_qat_pt2e
from .sidecar import write_sidecar
from .source import ModelSource

BACKENDS = ("pt2e", "onnx", "auto")
#: ONNX Runtime's activation calibration rules (``--onnx-calibration``)
ONNX_CALIBRATIONS = ("percentile", "minmax", "entropy")
SUFFIX = {"pt2e": ".pt2", "onnx": ".onnx", "qat": ".pt2"}
#: random calibration inputs of a source without data: they only set speed, more change nothing
MAX_NOISE_INPUTS = 4096


@dataclass
class Calibration:
    """The calibration batches and where they came from."""

    batches: list[torch.Tensor]
    description: str

    @property
    def images(self) -> int:
        return sum(len(b) for b in self.batches)


def calibration_data(source: ModelSource, n: int, *, data: Optional[str] = None,
                     batch_size: int = 64, seed: int = 0, cap: bool = False) -> Calibration:
    """``n`` training images chosen at random (seeded), normalised as in training, from
    ``data`` or the data the checkpoint recorded; standard-normal noise of the input shape
    when the source records no data (a registered model with random weights: fine for
    speed, meaningless for accuracy -- the description says so). More images than the
    training split holds are refused in one line (``cap=True``: all of them are used), more
    than :data:`MAX_NOISE_INPUTS` random inputs always."""
    if n < 1:
        raise ValueError(f"--calib needs at least 1 image; found {n}")
    recorded = dict(source.meta.config)
    if data or recorded.get("data"):
        from ..train.evaluation import evaluation_data
        task, dataset = evaluation_data(recorded or {"model": source.meta.model,
                                                     "task": source.meta.task}, data, "train",
                                        radiometry=source.meta.radiometry, channels_last=False)
        if n > len(dataset) and not cap:
            raise ValueError(f"--calib {n}: {dataset.name} has {len(dataset)} training images; "
                             f"pass at most {len(dataset)}")
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(dataset), generator=g)[:n]
        subset = dataset.subset(pick)
        loader = task.loader(subset, batch_size, train=False, device=torch.device("cpu"))
        batches = [x.contiguous() for x, _ in loader]
        return Calibration(batches, f"{len(pick)} images of {dataset.name}")
    if n > MAX_NOISE_INPUTS:
        raise ValueError(f"--calib {n}: {source.meta.model} records no data, so it is calibrated "
                         f"on random inputs (for speed only), at most {MAX_NOISE_INPUTS}; pass "
                         f"--data to calibrate on images")
    batches = [source.example_input(min(batch_size, n - i), seed=seed + i)
               for i in range(0, n, batch_size)]
    return Calibration(batches, f"{n} standard-normal inputs (no data recorded: speed only)")


def quantize_pt2e(source: ModelSource, calibration: Calibration, *,
                  dynamic_hw: Optional[bool] = None) -> nn.Module:
    """The BN-folded model, exported strictly, observed on ``calibration`` and converted to
    a quantize/dequantize int8 graph (run it as is for the reference numerics, or through
    :func:`compile_int8` for speed)."""
    pt2e = import_torchao_pt2e()
    xiq = require("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer",
                  "int8 quantisation (PT2E)")
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


def save_pt2e(quantized: nn.Module, source: ModelSource, out: Union[str, Path], *,
              dynamic_hw: Optional[bool] = None) -> Path:
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


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the calibration batches."""

    def __init__(self, name: str, batches: list[torch.Tensor]) -> None:
        self._items = iter([{name: b.contiguous().numpy()} for b in batches])

    def get_next(self) -> Optional[dict]:
        return next(self._items, None)

    def rewind(self) -> None:  # pragma: no cover - unused by MinMax
        pass


def quantize_onnx(fp32_path: Union[str, Path], out: Union[str, Path],
                  calibration: Calibration, *, per_channel: bool = True,
                  method: str = "percentile") -> Path:
    """ONNX Runtime ``quantize_static`` of an fp32 ``.onnx`` (QDQ, U8S8, activation ranges
    by ``method``: percentile 99.999, minmax or entropy), after ORT's pre-processing (graph
    optimisation)."""
    require("onnxruntime", "int8 quantisation (ONNX Runtime)")
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)
    if method not in ONNX_CALIBRATIONS:
        raise ValueError(f"ONNX calibration must be one of {', '.join(ONNX_CALIBRATIONS)}; found {method!r}")
    rule = {"percentile": dict(calibrate_method=CalibrationMethod.Percentile,
                               extra_options={"CalibPercentile": 99.999}),
            "minmax": dict(calibrate_method=CalibrationMethod.MinMax),
            "entropy": dict(calibrate_method=CalibrationMethod.Entropy)}[method]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        # ORT prints its histogram steps to stdout and warns on the root logger for every
        # rank-1 weight it leaves per-tensor (BN after a pool): neither is the user's concern
        with quiet("root"), contextlib.redirect_stdout(io.StringIO()):
            quantize_static(str(pre), str(out), _Reader("x", calibration.batches),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            **rule)
    return out


@dataclass
class QuantizedArtifact:
    backend: str
    path: Path
    module: nn.Module                 # what runs (compiled for pt2e)
    reference: nn.Module              # what the file holds, run eagerly / in ORT
    qat: Optional[QATResult] = None   # the fine-tune, for backend "qat"


def quantize_to(source: ModelSource, backend: str, out: Union[str, Path],
                calibration: Calibration, *, compile: bool = True,
                onnx_calibration: str = "percentile", qat: Optional[QATOptions] = None,
                data: Optional[str] = None, progress=lambda s: None) -> QuantizedArtifact:
    """Quantise with ``backend`` ("pt2e", "onnx" or "qat": PT2E after quantisation-aware
    training as ``qat`` says, on ``data``) and write ``out`` plus its sidecar."""
    from .runtime import OrtModule
    out = Path(out)
    info = dict(precision="int8", backend=backend, calibration=calibration.description,
                dynamic_hw=source.meta.dynamic_hw)
    if backend == "qat":
        result = quantize_qat_pt2e(source, qat, data=data, progress=progress)
        save_pt2e(result.module, source, out)
        info["calibration"] = result.description
        write_sidecar(out, source.meta, format="pt2", exporter="torch.export (torchao PT2E QAT)",
                      quantizer="X86InductorQuantizer (is_qat=True)", **info)
        return QuantizedArtifact(backend, out, compile_int8(result.module) if compile else result.module,
                                 result.module, qat=result)
    if backend == "pt2e":
        quantized = quantize_pt2e(source, calibration)
        save_pt2e(quantized, source, out)
        write_sidecar(out, source.meta, format="pt2", exporter="torch.export (torchao PT2E)",
                      quantizer="X86InductorQuantizer", **info)
        return QuantizedArtifact(backend, out, compile_int8(quantized) if compile else quantized,
                                 quantized)
    if backend == "onnx":
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_onnx(source, Path(tmp) / "fp32.onnx")
            quantize_onnx(fp32.path, out, calibration, method=onnx_calibration)
        write_sidecar(out, source.meta, format="onnx", exporter=fp32.exporter,
                      quantizer=f"onnxruntime.quantize_static (QDQ, per-channel, U8S8, {onnx_calibration})",
                      **info)
        module = OrtModule(out)
        return QuantizedArtifact(backend, out, module, module)
    raise ValueError(f"backend must be one of {BACKENDS}; found {backend!r}")
