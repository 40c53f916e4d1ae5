"""Export to ONNX (``torch.onnx.export``: the dynamo exporter, the TorchScript one as
fallback) and to ``torch.export`` programs (``.pt2``), with dynamic batch -- and dynamic
height and width for the image-to-image models -- a JSON sidecar, ``onnx.checker`` and a
parity check against the eager fp32 model (ONNX Runtime for ``.onnx``, the reloaded program
for ``.pt2``) on a batch size, and for image-to-image models an image size, other than the
traced one.

Parity is the normwise relative error ``max|y - y_ref| / max|y_ref|`` (the largest error
relative to the largest output magnitude, so that near-zero logits do not blow it up); the
bar is 1e-5 in fp32.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import nn

from .extras import quiet, require
from .fold import FoldReport, fold_batchnorm
from .sidecar import write_sidecar
from .source import ModelSource

FORMATS = ("onnx", "pt2")
PARITY_FP32 = 1e-5
MAX_BATCH = 4096


@dataclass
class ExportResult:
    path: Path
    format: str
    exporter: str
    parity: float  # max relative error vs eager fp32
    seconds: float
    sidecar: Optional[Path] = None
    fold: Optional[FoldReport] = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.parity <= PARITY_FP32

    def summary(self) -> str:
        return (
            f"{self.path} ({self.format}, {self.exporter} exporter, "
            f"{self.path.stat().st_size / 1e6:.1f} MB): parity max relative error "
            f"{self.parity:.2e} ({'ok' if self.ok else 'ABOVE'} {PARITY_FP32:g}), "
            f"{self.seconds:.1f} s"
        )


def relative_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|y - ref| / max|ref|`` (see the module documentation)."""
    y, ref = y.detach().float(), ref.detach().float()
    return float((y - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def spatial_step(model: nn.Module) -> int:
    """The multiple H and W must be of an image-to-image model (its total stride)."""
    return int(getattr(model, "reduction", getattr(model, "min_input_size", 1)))


def dynamic_shapes(source: ModelSource, dynamic_hw: bool) -> tuple[dict, ...]:
    """``torch.export`` dynamic shapes: batch, and H, W as multiples of the model's stride."""
    dims = {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    if dynamic_hw:
        step = spatial_step(source.model)
        dims[2] = step * torch.export.Dim("h_blocks", min=1, max=8192 // step)
        dims[3] = step * torch.export.Dim("w_blocks", min=1, max=8192 // step)
    return (dims,)


def check_inputs(source: ModelSource, dynamic_hw: bool, batch: int = 3) -> torch.Tensor:
    """A batch other than the traced one (and, image-to-image, a larger image) for parity."""
    c, h, w = source.meta.input_size
    if dynamic_hw:
        step = spatial_step(source.model)
        h, w = h + step, w + 2 * step
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, c, h, w, generator=g)


def prepare(source: ModelSource, fold: bool) -> tuple[nn.Module, Optional[FoldReport]]:
    """The eval-mode model, BN-folded when ``fold``."""
    if not fold:
        return source.model.eval(), None
    folded, report = fold_batchnorm(source.model)
    return folded, report


def _ort_runner(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    from .runtime import ort_session

    session = ort_session(path)
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.contiguous().numpy()})[0])


def export_onnx(
    source: ModelSource,
    out: Union[str, Path],
    *,
    fold: bool = True,
    dynamic_hw: Optional[bool] = None,
    opset: Optional[int] = None,
    exporter: str = "auto",
    batch_size: int = 2,
) -> ExportResult:
    """Write ``out`` (.onnx) and its sidecar; check it with ``onnx.checker`` and ONNX Runtime.

    ``exporter``: "dynamo" (``torch.onnx.export(dynamo=True)``), "torchscript" (the legacy
    exporter) or "auto" (dynamo, then torchscript if it fails; the result says which)."""
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export (dynamo exporter)")
    require("onnxruntime", "the ONNX Runtime parity check")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic_hw = source.meta.dynamic_hw if dynamic_hw is None else dynamic_hw
    model, report = prepare(source, fold)
    x = source.example_input(batch_size)
    start = time.perf_counter()
    notes: list[str] = []
    used = None
    for name in ("dynamo", "torchscript") if exporter == "auto" else (exporter,):
        try:
            _onnx_export(model, x, out, name, source, dynamic_hw, opset)
            used = name
            break
        except Exception as err:  # an exporter's failure is reported, the next one tried
            notes.append(
                f"{name} exporter failed: {type(err).__name__}: "
                f"{str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
            )
            if exporter != "auto":
                raise ValueError(notes[-1]) from err
    if used is None:
        raise ValueError("; ".join(notes))
    onnx.checker.check_model(str(out), full_check=True)
    xc = check_inputs(source, dynamic_hw)
    with torch.no_grad():
        parity = relative_error(_ort_runner(out)(xc), source.model(xc))
    seconds = time.perf_counter() - start
    sidecar = write_sidecar(
        out,
        source.meta,
        format="onnx",
        exporter=used,
        precision="fp32",
        dynamic_hw=dynamic_hw,
        parity=parity,
        bn_folded=report.folded if report else 0,
        opset=_opset(onnx, out),
    )
    return ExportResult(out, "onnx", used, parity, seconds, sidecar, report, notes)


def _opset(onnx, path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _onnx_export(
    model: nn.Module,
    x: torch.Tensor,
    out: Path,
    exporter: str,
    source: ModelSource,
    dynamic_hw: bool,
    opset: Optional[int],
) -> None:
    with quiet("torch.onnx"), torch.no_grad():
        if exporter == "dynamo":
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                opset_version=opset,
                dynamic_shapes=dynamic_shapes(source, dynamic_hw),
                external_data=False,
                verbose=False,
            )
            program.save(str(out))
        elif exporter == "torchscript":
            axes = {0: "batch", **({2: "height", 3: "width"} if dynamic_hw else {})}
            torch.onnx.export(
                model,
                (x,),
                str(out),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                opset_version=opset or 17,
                dynamic_axes={"x": axes, "y": {0: "batch", **({2: "height", 3: "width"} if dynamic_hw else {})}},
            )
        else:
            raise ValueError(f"exporter must be auto, dynamo or torchscript; found {exporter!r}")


def export_program(
    model: nn.Module, source: ModelSource, dynamic_hw: bool, *, strict: bool = False, batch_size: int = 2
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` with the dynamic shapes of :func:`dynamic_shapes`."""
    with torch.no_grad():
        return torch.export.export(
            model, (source.example_input(batch_size),), dynamic_shapes=dynamic_shapes(source, dynamic_hw), strict=strict
        )


def export_pt2(
    source: ModelSource,
    out: Union[str, Path],
    *,
    fold: bool = True,
    dynamic_hw: Optional[bool] = None,
    batch_size: int = 2,
) -> ExportResult:
    """Write a ``torch.export`` program (``torch.export.save``) and its sidecar; parity of the
    reloaded program against the eager model."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic_hw = source.meta.dynamic_hw if dynamic_hw is None else dynamic_hw
    model, report = prepare(source, fold)
    start = time.perf_counter()
    program = export_program(model, source, dynamic_hw, batch_size=batch_size)
    torch.export.save(program, str(out))
    xc = check_inputs(source, dynamic_hw)
    with torch.no_grad():
        parity = relative_error(torch.export.load(str(out)).module()(xc), source.model(xc))
    seconds = time.perf_counter() - start
    sidecar = write_sidecar(
        out,
        source.meta,
        format="pt2",
        exporter="torch.export",
        precision="fp32",
        dynamic_hw=dynamic_hw,
        parity=parity,
        bn_folded=report.folded if report else 0,
    )
    return ExportResult(out, "pt2", "torch.export", parity, seconds, sidecar, report)


def export_format(out: Union[str, Path], fmt: Optional[str] = None) -> str:
    """The format to write ``out`` in: ``fmt``, or the suffix of ``out``; a ValueError when
    the two disagree (``skiplab eval`` and ``bench`` choose the runtime by the suffix, so a
    ``.pt2`` program named ``.onnx`` could not be read back)."""
    suffix = Path(out).suffix.lstrip(".")
    fmt = fmt or suffix
    if fmt not in FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(FORMATS)} (or an --out ending in .onnx/.pt2); found {fmt!r}"
        )
    if suffix != fmt:
        raise ValueError(
            f"--out {out} must end in .{fmt} for format {fmt} (found "
            f"{'.' + suffix if suffix else 'no suffix'}): skiplab eval and bench read a "
            f"file by its suffix; name it {Path(out).with_suffix('.' + fmt)}"
        )
    return fmt


def export(source: ModelSource, out: Union[str, Path], fmt: Optional[str] = None, **kwargs) -> ExportResult:
    """:func:`export_onnx` or :func:`export_pt2`, by ``fmt`` or the suffix of ``out`` (which
    must agree, :func:`export_format`)."""
    fmt = export_format(out, fmt)
    return export_onnx(source, out, **kwargs) if fmt == "onnx" else export_pt2(source, out, **kwargs)
