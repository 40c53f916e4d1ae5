"""``skiplab bench``: inference throughput and p50/p90 latency of every way skiplab can
deploy one model, measured in one run with the variants interleaved over rounds
(:mod:`skiplab.deploy.timing`), each as a ratio to eager fp32 NCHW measured in the same
rounds, with its output difference against eager fp32 (max relative error, as in export
parity), its size on disk and the load average (a run where it exceeds the core count is
flagged: other jobs shared the cores).

Variants: ``eager_fp32``, ``channels_last`` (fp32), ``bf16`` (autocast + channels_last),
``compiled_bf16`` (``torch.compile`` of that), ``bn_folded`` (fp32, :func:`fold_batchnorm`),
``ort_fp32`` and ``ort_int8`` (ONNX Runtime), ``pt2e_int8`` (torchao PT2E + compile) and, when
bench is given an ``.onnx``/``.pt2`` file, ``artifact`` (that file, int8 programs compiled).
A pruned or distilled model is a checkpoint or an exported file like any other.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .calibration import calibration_data
from .export import export_onnx, relative_error
from .fold import fold_batchnorm
from .quantize import compile_int8, quantize_pt2e, save_pt2e
from .quantize_onnx import quantize_onnx
from .runtime import OrtModule, ProgramModule, is_artifact, load_artifact
from .source import ModelSource, describe, load_source
from .timing import Runner, load_average, load_note, speed_ratio, time_interleaved

VARIANTS = (
    "eager_fp32",
    "channels_last",
    "bf16",
    "compiled_bf16",
    "bn_folded",
    "ort_fp32",
    "ort_int8",
    "pt2e_int8",
    "artifact",
)
BASELINE = "eager_fp32"


@dataclass
class Built:
    run: Runner
    channels_last: bool = False
    size_bytes: Optional[int] = None
    note: str = ""


def state_bytes(model: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def _autocast(module: nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return module(x)

    return run


def _channels_last(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(memory_format=torch.channels_last)


def build_variant(
    name: str, source: ModelSource, workdir: Path, calib_images: int, artifact: Optional[ModelSource] = None
) -> Built:
    """One variant of ``source`` (see the module documentation)."""
    model = source.model.eval()
    if name == "eager_fp32":
        return Built(model, size_bytes=state_bytes(model))
    if name == "channels_last":
        return Built(_channels_last(model), True, state_bytes(model))
    if name == "bf16":
        return Built(_autocast(_channels_last(model)), True, state_bytes(model) // 2, "size: bf16 weights")
    if name == "compiled_bf16":
        return Built(
            _autocast(torch.compile(_channels_last(model))), True, state_bytes(model) // 2, "size: bf16 weights"
        )
    if name == "bn_folded":
        folded, report = fold_batchnorm(model)
        return Built(folded, size_bytes=state_bytes(folded), note=str(report))
    if name == "ort_fp32":
        path = export_onnx(source, workdir / "fp32.onnx").path
        return Built(OrtModule(path), size_bytes=path.stat().st_size)
    calibration = calibration_data(source, calib_images, cap=True)  # at most the split
    if name == "ort_int8":
        fp32 = workdir / "fp32.onnx"
        if not fp32.exists():
            export_onnx(source, fp32)
        path = quantize_onnx(fp32, workdir / "int8.onnx", calibration)
        return Built(OrtModule(path), size_bytes=path.stat().st_size, note=f"calibrated on {calibration.description}")
    if name == "pt2e_int8":
        quantized = quantize_pt2e(source, calibration)
        path = save_pt2e(quantized, source, workdir / "int8.pt2")
        return Built(
            compile_int8(quantized), size_bytes=path.stat().st_size, note=f"calibrated on {calibration.description}"
        )
    if name == "artifact":
        if artifact is None:
            raise ValueError("no artifact given (bench an .onnx or .pt2 file)")
        module = artifact.model
        size = module.path.stat().st_size
        if isinstance(module, ProgramModule) and _is_int8(module.path):
            return Built(compile_int8(module.module_), size_bytes=size, note=f"{module.path.name}, compiled")
        return Built(module, size_bytes=size, note=module.path.name)
    raise ValueError(f"unknown variant {name!r}; expected some of {', '.join(VARIANTS)}")


def _is_int8(path: Path) -> bool:
    from .sidecar import read_sidecar

    return (read_sidecar(path) or {}).get("precision") == "int8"


def fp32_source_for(artifact: ModelSource) -> ModelSource:
    """The fp32 model an artifact came from: its checkpoint when that file still exists,
    else its registered model with random weights (then output differences mean nothing)."""
    meta = artifact.meta
    if meta.checkpoint and Path(meta.checkpoint).is_file():
        return load_source(meta.checkpoint)
    kwargs = {k: v for k, v in meta.model_kwargs.items() if k not in ("num_classes", "in_chans")}
    return load_source(
        meta.model,
        num_classes=meta.model_kwargs.get("num_classes"),
        in_chans=meta.input_size[0],
        image_size=meta.input_size[1],
        model_kwargs=kwargs,
    )


def bench(
    target: str,
    *,
    variants: Optional[Sequence[str]] = None,
    batch_size: int = 16,
    rounds: int = 5,
    seconds: float = 1.0,
    image_size: Optional[int] = None,
    calib_images: int = 64,
    progress: Callable[[str], None] = lambda s: None,
) -> dict:
    """Benchmark ``target`` (a registered model name, a checkpoint, or an ``.onnx``/``.pt2``
    file) and return the JSON-able result (see the module documentation). A variant that
    cannot be built (a missing extra, an unsupported layer) is listed in ``skipped`` with
    its reason; eager fp32 is always measured (it is the baseline)."""
    artifact = load_artifact(target) if is_artifact(target) else None
    source = fp32_source_for(artifact) if artifact else load_source(target, image_size=image_size)
    chosen = list(variants or [v for v in VARIANTS if v != "artifact" or artifact])
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; expected some of {', '.join(VARIANTS)}")
    if BASELINE not in chosen:
        chosen.insert(0, BASELINE)
    load_start = load_average()
    x = source.example_input(batch_size)
    built: dict[str, Built] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for name in chosen:
            progress(f"building {name}")
            try:
                built[name] = build_variant(name, source, Path(tmp), calib_images, artifact)
            except Exception as err:  # reported per variant; the others still run
                if name == BASELINE:
                    raise
                skipped[name] = (
                    f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
                )
        inputs = {
            n: x.contiguous(memory_format=torch.channels_last) if b.channels_last else x for n, b in built.items()
        }
        reference = built[BASELINE].run(x).float()
        timings = time_interleaved(
            {n: b.run for n, b in built.items()}, inputs, rounds=rounds, seconds=seconds, progress=progress
        )
        diffs = {n: relative_error(b.run(inputs[n]).float(), reference) for n, b in built.items()}
    load_end = load_average()
    base = timings[BASELINE]
    rows = []
    for name, b in built.items():
        t = timings[name]
        rows.append(
            {
                "variant": name,
                "images_per_s": batch_size / t.median,
                "p50_ms": 1000 * t.percentile(50),
                "p90_ms": 1000 * t.percentile(90),
                **speed_ratio(base, t),
                "rel_diff": diffs[name],
                "size_mb": None if b.size_bytes is None else b.size_bytes / 1e6,
                "calls": len(t.latencies),
                "note": b.note,
            }
        )
    cores = os.cpu_count() or 1
    return {
        "model": describe(source.meta),
        "target": str(target),
        "batch_size": batch_size,
        "input_shape": list(x.shape),
        "rounds": rounds,
        "seconds_per_round": seconds,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": cores,
        "load_average": {"start": load_start, "end": load_end, "rounds": base.round_loads},
        "overloaded": max(load_start, load_end, *base.round_loads) > cores,
        "variants": rows,
        "skipped": skipped,
    }


def format_table(result: dict) -> str:
    """The result as a text table, with the load-average flag."""
    lines = [
        f"{result['model']}, batch {result['batch_size']}, input {result['input_shape']}, "
        f"{result['rounds']} interleaved rounds",
        f"{'variant':15s} {'img/s':>9s} {'p50 ms':>9s} {'p90 ms':>9s} {'x eager':>8s} "
        f"{'(min-max)':>13s} {'rel diff':>9s} {'MB':>8s}",
    ]
    for r in result["variants"]:
        size = "-" if r["size_mb"] is None else f"{r['size_mb']:.1f}"
        lines.append(
            f"{r['variant']:15s} {r['images_per_s']:9.1f} {r['p50_ms']:9.2f} "
            f"{r['p90_ms']:9.2f} {r['ratio']:8.2f} "
            f"{r['ratio_min']:6.2f}-{r['ratio_max']:<6.2f} {r['rel_diff']:9.1e} {size:>8s}"
        )
    for name, reason in result["skipped"].items():
        lines.append(f"{name:15s} skipped: {reason}")
    load = result["load_average"]
    lines.append(
        f"{result['threads']} torch threads; "
        + load_note(load["start"], load["end"], result["cores"], max(load.get("rounds") or [0.0]))
    )
    return "\n".join(lines)
