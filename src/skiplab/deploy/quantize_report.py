"""``skiplab quantize``'s whole job: calibrate, quantise with one backend or both, and report
what int8 cost -- fp32 vs int8 accuracy on the evaluation split, top-1 agreement (the share
of images where both predict the same class), file size and measured speed -- then write the
artifact (for ``auto``, the faster backend's, measured in the same interleaved run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from torch import nn

from .bench import state_bytes
from .calibration import Calibration, calibration_data
from .qat import QATOptions, check_float_checkpoint
from .quantize import BACKENDS, SUFFIX, QuantizedArtifact, quantize_to
from .source import ModelSource
from .timing import load_average, load_note, speed_ratio, time_interleaved


def compare_on_split(
    fp32: nn.Module,
    int8: dict[str, nn.Module],
    source: ModelSource,
    *,
    data: Optional[str] = None,
    split: str = "test",
    batch_size: int = 500,
    limit: Optional[int] = None,
) -> dict:
    """Accuracy of ``fp32`` and of each int8 module on ``split`` (the one evaluation loop,
    :func:`skiplab.train.evaluate`: the figure ``skiplab eval`` gives), and each int8 module's
    top-1 agreement with fp32 (the share of images -- of pixels for segmentation -- where both
    predict the same class) and max relative output difference; a reconstruct model reports
    the difference only. ``limit`` evaluates the first N images only."""
    from ..train import evaluate
    from ..train.evaluation import evaluation_data

    recorded = dict(source.meta.config) or {"model": source.meta.model, "task": source.meta.task}
    task, dataset = evaluation_data(recorded, data, split, radiometry=source.meta.radiometry, channels_last=False)
    if limit:
        dataset = dataset.subset(torch.arange(min(limit, len(dataset))))
    loader = task.loader(dataset, batch_size, train=False, device=torch.device("cpu"))
    reference: list[torch.Tensor] = []
    result = {
        "task": task.name,
        "data": dataset.name,
        "split": split,
        "images": len(dataset),
        "fp32": evaluate(fp32, loader, meter=task.meter(dataset), on_batch=lambda out, y: reference.append(out)),
    }
    for name, module in int8.items():
        compared = {"agree": 0, "seen": 0, "diff": 0.0, "batch": iter(reference)}

        def compare(out: torch.Tensor, y: torch.Tensor, c: dict = compared) -> None:
            ref = next(c["batch"])
            c["agree"] += int((out.argmax(1) == ref.argmax(1)).sum())
            c["seen"] += y.numel() if task.name == "segment" else len(out)
            c["diff"] = max(c["diff"], float((out - ref).abs().max() / ref.abs().max()))

        result[name] = evaluate(module, loader, meter=task.meter(dataset), on_batch=compare)
        result[name]["rel_diff"] = compared["diff"]
        if task.name != "reconstruct":
            result[name]["agreement"] = compared["agree"] / compared["seen"]
            result[name]["delta_acc"] = result[name]["acc"] - result["fp32"]["acc"]  # int8 - fp32 top-1
    for name in ("fp32", *int8):
        keep = ("acc", "rel_diff", "agreement", "delta_acc") if task.name != "reconstruct" else ("rel_diff",)
        result[name] = {k: v for k, v in result[name].items() if k in keep}
    return result


def quantize_checkpoint(
    source: ModelSource,
    out: Union[str, Path],
    *,
    backend: str = "auto",
    calib: int = 512,
    data: Optional[str] = None,
    split: str = "test",
    eval_limit: Optional[int] = None,
    batch_size: int = 16,
    rounds: int = 3,
    evaluate: bool = True,
    compile: bool = True,
    onnx_calibration: str = "percentile",
    qat: Optional[QATOptions] = None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda s: None,
) -> dict:
    """Quantise ``source`` with ``backend`` (pt2e, onnx or auto), compare, time, and write the
    artifact to ``out`` (its suffix set by the backend kept). Returns the report.
    ``compile=False`` times the PT2E graph uncompiled (its reference numerics; slow).
    ``qat`` (PT2E only): also fine-tune with quantisation-aware training; the QAT artifact is
    written, reported beside the PTQ one (``pt2e``) of the same net. ``seed`` draws the
    calibration images (the QAT seed is ``qat.seed``)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; found {backend!r}")
    if qat is not None and backend == "onnx":
        raise ValueError("--qat runs on the PT2E path: use --backend pt2e (or auto)")
    check_float_checkpoint(source)
    out = Path(out)
    calibration: Calibration = calibration_data(source, calib, data=data, seed=seed)
    progress(f"calibrating on {calibration.description}")
    if qat is not None:
        backend = "qat"
        backends = ["pt2e", "qat"]
    else:
        backends = ["pt2e", "onnx"] if backend == "auto" else [backend]
    made: dict[str, QuantizedArtifact] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for b in backends:
            progress(f"quantising ({b})")
            target = out.with_suffix(SUFFIX[b]) if backend == b else Path(tmp) / f"int8-{b}{SUFFIX[b]}"
            made[b] = quantize_to(
                source,
                b,
                target,
                calibration,
                compile=compile,
                onnx_calibration=onnx_calibration,
                qat=qat,
                data=data,
                progress=progress,
            )
        progress("timing")
        x = source.example_input(batch_size)
        load_start = load_average()
        runners = {"fp32": source.model, **{b: a.module for b, a in made.items()}}
        timings = time_interleaved(runners, {n: x for n in runners}, rounds=rounds, progress=progress)
        speed = {
            n: {"images_per_s": batch_size / t.median, **speed_ratio(timings["fp32"], t)} for n, t in timings.items()
        }
        chosen = backend if backend != "auto" else min(made, key=lambda b: timings[b].median)
        final = out.with_suffix(SUFFIX[chosen])
        if backend == "auto":
            from .sidecar import sidecar_path

            final.parent.mkdir(parents=True, exist_ok=True)
            made[chosen].path.replace(final)
            sidecar_path(made[chosen].path).replace(sidecar_path(final))
    report = {
        "model": source.meta.model,
        "weights": source.meta.weights,
        "backend": chosen,
        "backends": backends,
        "out": str(final),
        "calibration": calibration.description,
        "calibration_seed": seed,
        "onnx_calibration": onnx_calibration if "onnx" in backends else None,
        "size_mb": {"fp32": state_bytes(source.model) / 1e6, chosen: final.stat().st_size / 1e6},
        "speed": speed,
        "batch_size": batch_size,
        "load_average": {"start": load_start, "end": load_average(), "rounds": timings["fp32"].round_loads},
        "cores": os.cpu_count() or 1,
    }
    if qat is not None:
        result = made["qat"].qat
        tenth = max(1, len(result.losses) // 10)
        report["qat"] = {
            "description": result.description,
            **result.settings,
            "loss_first_tenth": sum(result.losses[:tenth]) / tenth,
            "loss_last_tenth": sum(result.losses[-tenth:]) / tenth,
        }
    if evaluate:
        progress(f"evaluating fp32 and int8 on the {split} split")
        report["accuracy"] = compare_on_split(
            source.model, {b: a.reference for b, a in made.items()}, source, data=data, split=split, limit=eval_limit
        )
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['model']} ({report['weights']} weights), int8 calibrated on {report['calibration']}"]
    if report.get("qat"):
        q = report["qat"]
        lines.append(
            f"qat: {q['description']}; training loss {q['loss_first_tenth']:.4f} (first tenth) "
            f"-> {q['loss_last_tenth']:.4f} (last tenth)"
        )
    acc = report.get("accuracy")
    if acc:
        lines.append(f"on {acc['data']} ({acc['split']}, {acc['images']} images):")
        base = acc["fp32"].get("acc")
        for name in ["fp32", *report["backends"]]:
            row = acc[name]
            text = f"  {name:5s}"
            if "acc" in row:
                text += f" accuracy {100 * row['acc']:.2f} %"
                if name != "fp32":  # a change with its sign: negative is a loss, never a "drop"
                    text += f", change (int8 − fp32) {100 * (row['acc'] - base):+.2f} points"
            if "agreement" in row:
                text += f", top-1 agreement with fp32 {100 * row['agreement']:.2f} %"
            if "rel_diff" in row:
                text += f", max relative output difference {row['rel_diff']:.2e}"
            lines.append(text)
    speed = ", ".join(f"{n} {s['images_per_s']:.1f} img/s ({s['ratio']:.2f}x)" for n, s in report["speed"].items())
    load = report["load_average"]
    lines.append(f"speed at batch {report['batch_size']}: {speed}")
    lines.append(load_note(load["start"], load["end"], report["cores"], max(load.get("rounds") or [0.0])))
    sizes = report["size_mb"]
    lines.append(f"size: fp32 weights {sizes['fp32']:.2f} MB, int8 file {sizes[report['backend']]:.2f} MB")
    lines.append(f"wrote {report['out']} (backend {report['backend']}) and its .json sidecar")
    return "\n".join(lines)
