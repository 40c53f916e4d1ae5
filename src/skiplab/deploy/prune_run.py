"""``skiplab prune`` as a library call: prune a trained checkpoint to a MAC target, fine-tune
it with the checkpoint's own recipe, and report what it cost and what it bought.

    report = prune_checkpoint("runs/r56/checkpoints/last.pt", "runs/r56_pruned", speedup=2.0,
                              finetune_epochs=10)

``steps`` > 1 prunes iteratively: step k reaches ``speedup ** (k / steps)`` and is
fine-tuned for ``finetune_epochs / steps`` before the next. Fine-tuning is
:func:`skiplab.train.fit` on the recorded config (its data, optimiser, augmentation,
precision) with ``init_from`` the pruned checkpoint, a cosine schedule from ``lr`` and the
stated budget. Accuracy is measured on the recorded evaluation split (val when the run
held one out, else test) before and after, in the same run; speed is images/s of the
unpruned and the pruned net on the same batch, measured in interleaved rounds
(:func:`measure_throughput`) with the load average recorded.

Outputs (``out``): ``step{k}/pruned.pt`` and ``step{k}/finetune/`` (a normal run
directory) per step, ``pruned.pt`` -- the final model, loadable by ``skiplab eval`` and the
deploy commands -- and ``prune_report.json``. Re-running continues: finished steps are
read back, an interrupted fine-tune resumes from its ``last.pt``. ``prune_run.json`` records
the checkpoint and settings, and a re-run with other ones is refused rather than continued.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..atomic import write_json
from ..evidence import paired_item_interval
from ..train import TrainConfig, evaluate, fit, load_checkpoint, model_from_checkpoint, save_checkpoint
from ..train.precision import Precision, resolve_precision
from ..train.tasks import make_task
from .prune import count_macs, prune_to_macs
from .timing import load_average, load_note, speed_ratio, time_interleaved

PRUNED_FORMAT = "skiplab.prune/1"


def measure_throughput(
    models: dict[str, nn.Module],
    example: torch.Tensor,
    *,
    rounds: int = 5,
    calls: int = 3,
    precision: str = "fp32",
    channels_last: bool = True,
) -> dict:
    """Inference images/s of each model on the batch ``example``, timed in interleaved rounds
    by :func:`skiplab.deploy.timing.time_interleaved` (at least ``calls`` calls per model and
    round). Reported: images/s of the median call, of every round's median, each
    model's speed ratio to the first from the same rounds, and the 1-minute load average
    before and after."""
    prec = Precision(resolve_precision(precision, torch.device("cpu")), torch.device("cpu"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = example.contiguous(memory_format=fmt)
    nets = {k: copy.deepcopy(m).eval().to(memory_format=fmt) for k, m in models.items()}
    load_before = load_average()
    with torch.inference_mode(), prec.autocast():
        timings = time_interleaved(nets, dict.fromkeys(nets, x), rounds=rounds, min_calls=calls)
    return {
        "images_per_s": {k: len(x) / t.median for k, t in timings.items()},
        "rounds": {k: [len(x) / m for m in t.round_medians] for k, t in timings.items()},
        "ratios": {k: speed_ratio(timings[next(iter(nets))], t) for k, t in timings.items()},
        "batch_size": len(x),
        "precision": prec.name,
        "channels_last": channels_last,
        "load_average": [load_before, load_average()],
        "cpu_count": os.cpu_count() or 1,
    }


def _save_model(path: Path, model: nn.Module, config: TrainConfig, extras: dict, **info) -> None:
    from ..models.structure import model_structure

    save_checkpoint(
        {
            "format": PRUNED_FORMAT,
            "config": config.to_dict(),
            "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "structure": model_structure(model),
            **extras,
            **info,
        },
        path,
    )


def _correct(model: nn.Module, task, dataset, precision: str, batch_size: int) -> torch.Tensor:
    """Per-image top-1 correctness on ``dataset`` (its mean is ``skiplab eval``'s accuracy)."""
    device = torch.device("cpu")
    prec = Precision(resolve_precision(precision, device), device)
    loader = task.loader(dataset, batch_size, train=False, device=device)
    return evaluate(model, loader, prec, meter=task.meter(dataset), per_image=True)["correct"]


def paired_drop(before: torch.Tensor, after: torch.Tensor) -> list[float]:
    """The accuracy drop in points and its 95 % interval over the evaluation images, from
    the per-image differences of correctness (paired: the same images score both nets;
    :func:`skiplab.evidence.paired_item_interval`, a t interval over the images). It
    measures test-set sampling only, not the spread over pruning or training seeds."""
    return list(paired_item_interval(100 * before.double().cpu().numpy(), 100 * after.double().cpu().numpy()))


def _claim(out: Path, settings: dict, checkpoint: str) -> None:
    """Record in ``out/prune_run.json`` which checkpoint and settings the run in ``out`` is
    for, and refuse to continue one that another checkpoint or other settings started:
    its finished steps would otherwise be read back as this run's."""
    record, path = {"checkpoint": checkpoint, "settings": settings}, out / "prune_run.json"
    previous = (
        json.loads(path.read_text())
        if path.exists()
        else json.loads((out / "prune_report.json").read_text())
        if (out / "prune_report.json").exists()
        else None
    )
    if previous is not None:
        changed = [
            f"{k} {previous['settings'].get(k)!r} there, {v!r} here"
            for k, v in settings.items()
            if previous["settings"].get(k) != v
        ]
        if Path(previous["checkpoint"]).resolve() != Path(checkpoint).resolve():
            changed.insert(0, f"checkpoint {previous['checkpoint']} there, {checkpoint} here")
        if changed:
            raise ValueError(
                f"{out} holds another pruning run ({'; '.join(changed)}): give a "
                f"new --out, or the same arguments to continue it"
            )
    write_json(path, record)


def prune_checkpoint(
    path: Union[str, Path],
    out: Union[str, Path],
    *,
    speedup: float = 2.0,
    finetune_epochs: float = 0.0,
    lr: float = 0.01,
    steps: int = 1,
    importance: str = "l2",
    round_to: Optional[int] = None,
    global_pruning: bool = False,
    data: Optional[str] = None,
    batch_size: Optional[int] = None,
    seed: int = 0,
    progress: bool = True,
    bench_batch: int = 256,
    bench_rounds: int = 5,
    bench_precision: str = "fp32",
    eval_precision: str = "auto",
) -> dict:
    """Prune the checkpoint at ``path`` to ``1 / speedup`` of its MACs (see the module
    documentation) and return the report that ``out/prune_report.json`` holds."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if finetune_epochs < 0:
        raise ValueError(f"finetune epochs must be >= 0, got {finetune_epochs}")
    out = Path(out)
    settings = {
        "speedup": speedup,
        "importance": importance,
        "round_to": round_to,
        "global_pruning": global_pruning,
        "steps": steps,
        "finetune_epochs": finetune_epochs,
        "lr": lr,
        "seed": seed,
    }
    checkpoint = load_checkpoint(path)
    _claim(out, settings, str(path))
    recorded = {k: v for k, v in (checkpoint.get("config") or {}).items() if k in TrainConfig.__dataclass_fields__}
    if not recorded.get("model"):
        raise ValueError(f"{path} records no training config: prune needs a skiplab checkpoint")
    config = TrainConfig.from_dict(
        {
            **recorded,
            "data": data or recorded.get("data"),
            "out": None,
            "resume": False,
            "init_from": None,
            "teacher": None,
            "progress": progress,
            "seed": seed,
            **({"batch_size": batch_size} if batch_size else {}),
        }
    )
    if config.task != "classify":
        raise ValueError(f"prune reports accuracy: it needs a classifier checkpoint, {path} is task {config.task!r}")
    task = make_task(config)
    train_set = task.load("train")
    eval_set = task.load("val" if config.val_size > 0 else "test", like=train_set)
    extras = {k: checkpoint[k] for k in ("classes", "mean", "std") if k in checkpoint}
    original = model_from_checkpoint(checkpoint, task, train_set).float().eval()
    example = torch.zeros(1, *train_set.images.shape[1:])
    macs0, params0 = count_macs(original, example)
    correct0 = _correct(original, task, eval_set, eval_precision, config.eval_batch_size)
    acc0 = correct0.float().mean().item()
    print(
        f"unpruned: {macs0 / 1e6:.1f} M MACs, {params0 / 1e6:.3f} M parameters, "
        f"accuracy {100 * acc0:.2f}% ({eval_set.name})",
        flush=True,
    )

    model, history = copy.deepcopy(original), []
    steps_per_epoch = len(train_set) // config.batch_size
    for k in range(1, steps + 1):
        stage, pruned_path = out / f"step{k}", out / f"step{k}" / "pruned.pt"
        if pruned_path.exists():
            model = model_from_checkpoint(load_checkpoint(pruned_path), task, train_set)
        else:
            loss_fn = _taylor_loss(task, train_set, config) if importance == "taylor" else None
            macs_now, _ = count_macs(model, example)
            report = prune_to_macs(
                model,
                example,
                macs_now / (macs0 / speedup ** (k / steps)),
                importance=importance,
                round_to=round_to,
                global_pruning=global_pruning,
                loss_fn=loss_fn,
            )
            _save_model(pruned_path, model, config, extras, source=str(path))
        macs, params = count_macs(model, example)
        entry = {"step": k, "macs": macs, "params": params, "mac_reduction": macs0 / macs}
        if finetune_epochs > 0:
            ft_steps = max(1, round(finetune_epochs / steps * steps_per_epoch))
            ft = config.replace(
                init_from=str(pruned_path),
                out=str(stage / "finetune"),
                resume=True,
                steps=ft_steps,
                lr=lr,
                schedule="cosine",
                milestones=[],
                warmup_epochs=0.0,
                warmup_steps=0,
                error_warmup_lr=0.0,
            )
            done = stage / "finetune" / "DONE"
            if done.exists():
                state = load_checkpoint(stage / "finetune" / "checkpoints" / "last.pt")
                model = model_from_checkpoint(state, task, train_set)
            else:
                result = fit(ft)
                model = (result.ema_model or result.model).cpu()
                done.write_text(f"{ft_steps} steps\n")
            entry["finetune_steps"] = ft_steps
            entry["finetune_epochs"] = ft_steps / steps_per_epoch
        history.append(entry)
    model = model.float().eval().to(memory_format=torch.contiguous_format)
    macs, params = count_macs(model, example)
    correct = _correct(model, task, eval_set, eval_precision, config.eval_batch_size)
    acc = correct.float().mean().item()
    _save_model(out / "pruned.pt", model, config, extras, source=str(path))
    bench = measure_throughput(
        {"unpruned": original, "pruned": model},
        torch.randn(bench_batch, *example.shape[1:]),
        rounds=bench_rounds,
        precision=bench_precision,
    )
    ips = bench["images_per_s"]
    report = {
        "checkpoint": str(path),
        "pruned": str(out / "pruned.pt"),
        "data": eval_set.name,
        "settings": settings,
        "before": {"macs": macs0, "params": params0, "acc": acc0, "images_per_s": ips["unpruned"]},
        "after": {"macs": macs, "params": params, "acc": acc, "images_per_s": ips["pruned"]},
        "mac_reduction": macs0 / macs,
        "param_reduction": params0 / params,
        "acc_drop_points": 100 * (acc0 - acc),
        "acc_drop_interval": paired_drop(correct0, correct),
        "measured_speedup": bench["ratios"]["pruned"]["ratio"],
        "bench": bench,
        "history": history,
    }
    write_json(out / "prune_report.json", report)
    return report


def _taylor_loss(task, dataset, config: TrainConfig, batches: int = 4):
    """Cross-entropy on ``batches`` fixed training batches (no augmentation): the gradients
    of Molchanov et al.'s Taylor importance."""
    loader = task.loader(dataset, min(config.batch_size, len(dataset)), train=False, device=torch.device("cpu"))
    fixed = [b for _, b in zip(range(batches), loader)]

    def loss_fn(model: nn.Module) -> torch.Tensor:
        return sum(nn.functional.cross_entropy(model(x), y) for x, y in fixed) / len(fixed)

    return loss_fn


def format_report(report: dict) -> str:
    """The before/after table ``skiplab prune`` prints."""
    b, a = report["before"], report["after"]
    rows = [
        ("MACs (M)", f"{b['macs'] / 1e6:.2f}", f"{a['macs'] / 1e6:.2f}", f"{report['mac_reduction']:.2f}x fewer"),
        (
            "parameters (M)",
            f"{b['params'] / 1e6:.3f}",
            f"{a['params'] / 1e6:.3f}",
            f"{report['param_reduction']:.2f}x fewer",
        ),
        (
            "accuracy (%)",
            f"{100 * b['acc']:.2f}",
            f"{100 * a['acc']:.2f}",
            f"{-report['acc_drop_points']:+.2f} points (95 % interval over the images "
            f"{-report['acc_drop_interval'][1]:+.2f} to {-report['acc_drop_interval'][0]:+.2f})",
        ),
        (
            f"images/s (batch {report['bench']['batch_size']}, {report['bench']['precision']})",
            f"{b['images_per_s']:.0f}",
            f"{a['images_per_s']:.0f}",
            f"{report['measured_speedup']:.2f}x",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"{'':{width}}  {'unpruned':>10}  {'pruned':>10}  change",
        *(f"{r[0]:{width}}  {r[1]:>10}  {r[2]:>10}  {r[3]}" for r in rows),
    ]
    lines.append(load_note(*report["bench"]["load_average"], report["bench"]["cpu_count"]))
    return "\n".join(lines)
