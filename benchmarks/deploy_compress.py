"""Evidence: structured pruning and knowledge distillation on CIFAR-10.

Starts from the checkpoints that ``benchmarks/deploy_models.sh`` trains into
``--models`` (He 2015 recipe shortened to 7820 steps = 20 epochs of 50k images, lr / 10 at
3910 and 5865, evaluated on test): ``resnet56_A``, ``resnet56_B`` (option A / B ResNet-56)
and the scratch students ``resnet20_s{0,1,2}``. A model whose run has no ``DONE`` file
yet is reported as pending. Every stage is resumable (``--resume`` is implied: finished
runs are read back, interrupted ones continue from their last.pt).

Pruning (per option): ``skiplab prune`` to 2.0x fewer MACs (L2 importance, local, one
step, no channel rounding), fine-tuned for ``--finetune`` epochs (default 10) at lr 0.01
cosine with the checkpoint's recipe. Beside it, the simplest alternatives: the unpruned
net fine-tuned with the same budget (``--no-control`` skips it) and ResNet-20 from scratch
(3.1x fewer MACs, the queue's seed 0-2 runs). Speed: images/s of unpruned vs pruned at
batch 256 in fp32 and bf16, interleaved rounds, load average recorded.
``--round-to 8`` adds a variant whose pruned widths are multiples of 8 (vector kernels
prefer them), kept beside the unrounded one as ``A_r8`` / ``B_r8`` with the same control.

Distillation: ResNet-56 (option A) teacher -> ResNet-20 student with exactly the scratch
runs' config (``config.yaml`` of ``resnet20_s{seed}``) plus the teacher, T = 4, alpha =
0.9, seeds 0-2; paired difference of final test accuracy vs the scratch runs.

Targets, fixed before the run: MACs >= 2.0x fewer; accuracy change >= -0.3 points vs
the unpruned net; measured speed-up >= 1.5x (fp32, batch 256); KD - scratch
>= +0.5 points (mean of 3 seeds).

    python benchmarks/deploy_compress.py [--models runs/deploy-models] [--out DIR]
        [--finetune 10] [--only prune|distill] [--no-control] [--options A B] [--round-to N]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from skiplab.atomic import write_json
from skiplab.deploy.distill import distill_compare, final_metric
from skiplab.deploy.prune_run import measure_throughput, prune_checkpoint
from skiplab.evidence import paired_item_interval
from skiplab.train import TrainConfig, evaluate, fit, load_checkpoint, model_from_checkpoint
from skiplab.train.precision import Precision, resolve_precision
from skiplab.train.tasks import make_task

MAC_TARGET, DROP_MAX, SPEED_MIN, KD_MIN = 2.0, 0.3, 1.5, 0.5
SEEDS = (0, 1, 2)


def done(run: Path) -> bool:
    return (run / "DONE").exists() and (run / "checkpoints" / "last.pt").exists()


def control_finetune(ckpt: Path, out: Path, steps: int, lr: float) -> float:
    """The unpruned net fine-tuned with the pruned net's budget: its final test accuracy."""
    state = load_checkpoint(ckpt)
    config = TrainConfig.from_dict({k: v for k, v in state["config"].items()
                                    if k in TrainConfig.__dataclass_fields__})
    if not (out / "DONE").exists():
        fit(config.replace(init_from=str(ckpt), out=str(out), resume=True, steps=steps, lr=lr,
                           schedule="cosine", milestones=[], warmup_epochs=0.0, warmup_steps=0,
                           progress=False))
        (out / "DONE").write_text("finished\n")
    return final_metric(out)


def bf16_speed(ckpt: Path, pruned: Path) -> dict:
    state = load_checkpoint(ckpt)
    config = TrainConfig.from_dict({k: v for k, v in state["config"].items()
                                    if k in TrainConfig.__dataclass_fields__})
    task = make_task(config)
    data = task.load("test")
    nets = {"unpruned": model_from_checkpoint(state, task, data).float(),
            "pruned": model_from_checkpoint(load_checkpoint(pruned), task, data).float()}
    return measure_throughput(nets, torch.randn(256, 3, 32, 32), precision="bf16")


def test_correct(ckpt: Path) -> torch.Tensor:
    """Per-image top-1 correctness of a checkpoint on its test split (its mean: ``skiplab eval``)."""
    state = load_checkpoint(ckpt)
    config = TrainConfig.from_dict({k: v for k, v in state["config"].items()
                                    if k in TrainConfig.__dataclass_fields__})
    task = make_task(config)
    data = task.load("test")
    model = model_from_checkpoint(state, task, data).float().eval()
    precision = Precision(resolve_precision("fp32", torch.device("cpu")), torch.device("cpu"))
    loader = task.loader(data, config.eval_batch_size, train=False, device=torch.device("cpu"))
    return evaluate(model, loader, precision, meter=task.meter(data), per_image=True)["correct"]


def control_gap(pruned: Path, control_ckpt: Path) -> dict:
    """Pruned - control accuracy in points, paired over the test images (the same images score
    both nets; a t interval over them: test-set sampling only, one pruning and training seed)."""
    a, b = test_correct(control_ckpt), test_correct(pruned)
    low, high = paired_item_interval(100 * a.double().numpy(), 100 * b.double().numpy())
    return {"points": float(100 * (b.double().mean() - a.double().mean())), "interval": [-high, -low]}


def prune_evidence(models: Path, out: Path, finetune: float, control: bool,
                   options: tuple = ("A", "B"), round_to: int | None = None) -> dict:
    """One entry per option, keyed ``A``/``B`` (or ``A_r8`` with ``round_to=8``)."""
    results = {}
    scratch20 = [final_metric(models / f"resnet20_s{s}") for s in SEEDS if done(models / f"resnet20_s{s}")]
    suffix = f"_r{round_to}" if round_to else ""
    for option in options:
        run = models / f"resnet56_{option}"
        if not done(run):
            results[option + suffix] = {"status": f"pending: {run} not finished"}
            continue
        ckpt = run / "checkpoints" / "last.pt"
        report = prune_checkpoint(ckpt, out / f"prune_{option}{suffix}", speedup=MAC_TARGET,
                                  finetune_epochs=finetune, lr=0.01, round_to=round_to,
                                  progress=False)
        entry = {k: report[k] for k in ("before", "after", "mac_reduction", "param_reduction",
                                        "acc_drop_points", "acc_drop_interval",
                                        "measured_speedup", "settings")}
        entry["load_average"] = report["bench"]["load_average"]
        bf16 = bf16_speed(ckpt, Path(report["pruned"]))
        entry["bf16_speedup"] = bf16["images_per_s"]["pruned"] / bf16["images_per_s"]["unpruned"]
        entry["bf16_images_per_s"] = bf16["images_per_s"]
        if control:
            ft_steps = sum(h.get("finetune_steps", 0) for h in report["history"])
            entry["control_acc"] = control_finetune(ckpt, out / f"control_{option}", ft_steps, 0.01)
            entry["pruned_minus_control"] = control_gap(Path(report["pruned"]),
                                                        out / f"control_{option}" / "checkpoints" / "last.pt")
        entry["resnet20_scratch_acc"] = scratch20
        entry["verdict"] = {
            "macs": report["mac_reduction"] >= MAC_TARGET,
            "accuracy": report["acc_drop_points"] <= DROP_MAX,
            "speed": report["measured_speedup"] >= SPEED_MIN}
        results[option + suffix] = entry
    return results


def distill_evidence(models: Path, out: Path) -> dict:
    teacher = models / "resnet56_A"
    scratch = [models / f"resnet20_s{s}" for s in SEEDS]
    missing = [str(r) for r in (teacher, *scratch) if not done(r)]
    if missing:
        return {"status": f"pending: {', '.join(missing)} not finished"}
    base = TrainConfig.from_yaml(scratch[0] / "config.yaml")
    config = base.replace(teacher=str(teacher / "checkpoints" / "last.pt"), kd_temperature=4.0,
                          kd_alpha=0.9, resume=True, progress=False)
    report = distill_compare(config, SEEDS, out / "distill", scratch_dirs=scratch)
    report["verdict"] = {"kd_gain": report["difference_points"]["mean"] >= KD_MIN}
    return report


def table(results: dict) -> str:
    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}"
    lines = ["| what | target | measured | met |", "|---|---|---|---|"]
    for option, r in results.get("prune", {}).items():
        if "status" in r:
            lines.append(f"| ResNet-56 option {option} pruning | | {r['status']} | pending |")
            continue
        v = r["verdict"]
        low, high = r.get("acc_drop_interval") or (None, None)
        interval = ("" if low is None else
                    f"; paired 95 % interval over the test images {-high:+.2f} to {-low:+.2f}")
        g = r.get("pruned_minus_control")
        gap = "" if g is None else (f" (pruned - control {g['points']:+.2f} points, paired 95 % interval "
                                    f"{g['interval'][0]:+.2f} to {g['interval'][1]:+.2f})")
        lines += [
            f"| ResNet-56 {option}: MACs | >= {MAC_TARGET}x fewer | {r['mac_reduction']:.2f}x "
            f"({r['before']['macs'] / 1e6:.1f} -> {r['after']['macs'] / 1e6:.1f} M) | {v['macs']} |",
            f"| ResNet-56 {option}: accuracy after {r['settings']['finetune_epochs']:g} epochs "
            f"fine-tune | drop <= {DROP_MAX} | {pct(r['before']['acc'])} -> {pct(r['after']['acc'])} % "
            f"({-r['acc_drop_points']:+.2f}{interval}); unpruned + same fine-tune {pct(r.get('control_acc'))} %"
            f"{gap}; "
            f"ResNet-20 scratch {', '.join(pct(a) for a in r['resnet20_scratch_acc']) or '-'} % "
            f"| {v['accuracy']} |",
            f"| ResNet-56 {option}: speed fp32 batch 256 | >= {SPEED_MIN}x | "
            f"{r['before']['images_per_s']:.0f} -> {r['after']['images_per_s']:.0f} img/s = "
            f"{r['measured_speedup']:.2f}x (bf16 {r['bf16_speedup']:.2f}x; load "
            f"{r['load_average'][0]:.1f}) | {v['speed']} |"]
    d = results.get("distill")
    if d and "status" in d:
        lines.append(f"| KD ResNet-56 -> ResNet-20 | >= +{KD_MIN} points | {d['status']} | pending |")
    elif d:
        diff = d["difference_points"]
        lines.append(f"| KD ResNet-56 -> ResNet-20, {len(d['seeds'])} seeds | >= +{KD_MIN} points | "
                     f"KD {', '.join(pct(a) for a in d['kd'])} vs scratch "
                     f"{', '.join(pct(a) for a in d['scratch'])} %: {diff['mean']:+.2f} "
                     f"[{diff['low']:+.2f}, {diff['high']:+.2f}] | {d['verdict']['kd_gain']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("runs/deploy-models"))
    parser.add_argument("--out", type=Path, default=Path("runs/deploy-models/compress"))
    parser.add_argument("--finetune", type=float, default=10.0, help="fine-tune epochs (default 10)")
    parser.add_argument("--only", choices=("prune", "distill"))
    parser.add_argument("--no-control", dest="control", action="store_false")
    parser.add_argument("--options", nargs="+", choices=("A", "B"), default=["A", "B"],
                        help="ResNet-56 shortcut options to prune (default: A B)")
    parser.add_argument("--round-to", type=int, help="prune to channel multiples of N; the "
                        "results are kept beside the unrounded ones as A_rN / B_rN")
    parser.add_argument("--resume", action="store_true", help="accepted for symmetry: always resumes")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "compress_results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.only in (None, "prune"):
        results["prune"] = {**results.get("prune", {}), **prune_evidence(
            args.models, args.out, args.finetune, args.control, tuple(args.options), args.round_to)}
    if args.only in (None, "distill"):
        results["distill"] = distill_evidence(args.models, args.out)
    results["load_average_end"] = os.getloadavg()
    write_json(path, results)
    print(table(results))
    print(f"results in {path}")


if __name__ == "__main__":
    main()
