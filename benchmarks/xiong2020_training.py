"""Pre-LN vs post-LN vs no skip, trained with and without a learning-rate warm-up: the
training half of Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture"
(§3.3 and Fig. 2: post-LN needs the warm-up, with Adam at lr 5e-4 to 1e-3; pre-LN trains
without it).

Declared budget (fixed before any run, not tuned): ``cifar_vit`` of width ``--width`` (64,
2 heads) at ``--depths`` (4 and 8 blocks: what a loaded 2-core CPU trains in the time), Xavier
init as in the gradient measurement; AdamW (betas 0.9/0.98 as Xiong's), lr ``--lr`` 1e-3,
weight decay 1e-4, batch 32, ``--steps`` 120 steps on a fixed 5,000-image subset of the
CIFAR-10 training split (crop + flip), cosine schedule; the warm-up, when on, rises linearly
from 1 % of lr over the first 25 % of the steps. Measured: the mean training loss over the
last 20 % of the steps, and top-1 on a fixed 1,000-image subset of the test split.

Rules, per depth, over paired per-seed differences (:func:`skiplab.evidence.paired_seed_interval`),
thresholds in :mod:`skiplab.evidence.thresholds`:

* post-LN needs the warm-up: final loss without minus with warm-up; holds if the interval
  lies above ``XIONG_LOSS_MARGIN``, contradicted if it lies below it;
* pre-LN trains without it: the same difference for pre-LN; holds if the interval lies below
  ``XIONG_LOSS_MARGIN``, contradicted if above it.

Regime gate (the paper speaks of nets that train): the warm-up runs of the judged variant
must reach ``XIONG_TRAINED_MIN_ACC`` top-1 (mean over seeds); otherwise no verdict.
The no-skip nets have no claim in the paper: their numbers are reported, not judged.

    nice -n 10 python benchmarks/xiong2020_training.py --out docs/evidence/xiong2020
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from skiplab.atomic import write_json
from skiplab.data import load_dataset
from skiplab.evidence import paired_seed_interval, seed_interval, thresholds
from skiplab.train import TrainConfig
from skiplab.train.callbacks import Callback
from skiplab.train.loop import Trainer
from xiong2020_gradients import VARIANTS, judge, xavier_


def run(variant: str, depth: int, warmup: bool, seed: int, args, train, held) -> dict:
    steps = args.steps
    config = TrainConfig.from_dict(dict(
        model="cifar_vit", model_kwargs=dict(depth=depth, embed_dim=args.width,
                                             num_heads=max(1, args.width // 32), **VARIANTS[variant]),
        save=False, progress=False, tensorboard=False, device="cpu", compile="off", num_threads=1,
        seed=seed, steps=steps, batch_size=32, eval_batch_size=500, optimizer="adamw",
        betas=[0.9, 0.98], lr=args.lr, weight_decay=1e-4, schedule="cosine", eval_every=10_000,
        warmup_steps=steps // 4 if warmup else 0, warmup_start_factor=0.01, log_every=10))
    losses: list[float] = []

    class Record(Callback):
        """Every step's loss."""

        def on_steps(self, trainer, steps):
            losses.extend(s.loss for s in steps)

    trainer = Trainer(config, [Record()], train_set=train, eval_set=held)
    try:
        xavier_(trainer.model)          # in place: the optimiser holds the same tensors
        started = time.perf_counter()
        metrics = trainer.fit().metrics
    finally:
        trainer.close()
    tail = losses[-max(1, steps // 5):]
    return dict(variant=variant, depth=depth, warmup=warmup, seed=seed, val_acc=metrics["val_acc"],
                final_loss=float(np.mean(tail)), losses=losses, seconds=time.perf_counter() - started)


def verdicts(runs: list[dict], depths: list[int], seeds: list[int]) -> list[dict]:
    def get(variant, depth, warmup, key):
        return [r[key] for s in seeds for r in runs
                if (r["variant"], r["depth"], r["warmup"], r["seed"]) == (variant, depth, warmup, s)]

    margin = thresholds.XIONG_LOSS_MARGIN
    out = []
    for depth in depths:
        for variant, claim, band in (("post", "needs the warm-up", (margin, np.inf)),
                                     ("pre", "trains without the warm-up", (-np.inf, margin))):
            without, with_ = get(variant, depth, False, "final_loss"), get(variant, depth, True, "final_loss")
            if len(without) != len(seeds) or len(with_) != len(seeds):
                out.append(dict(claim=f"{variant}-LN {claim}, depth {depth}", in_regime=False,
                                verdict=f"incomplete ({min(len(without), len(with_))} of {len(seeds)} seeds)"))
                continue
            ci = paired_seed_interval(without, with_)
            trained = float(np.mean(get(variant, depth, True, "val_acc")))
            gate = trained >= thresholds.XIONG_TRAINED_MIN_ACC and len(seeds) >= thresholds.MIN_SEEDS_FOR_VERDICT
            out.append(dict(claim=f"{variant}-LN {claim}, depth {depth}",
                            statistic="final loss without - with warm-up (nats)",
                            per_seed=[a - b for a, b in zip(without, with_)],
                            mean=float(np.mean(without) - np.mean(with_)), interval=ci,
                            band=[float(b) for b in band], warmup_top1=trained, in_regime=gate,
                            verdict=judge(ci, *band) if gate else "no verdict (outside the regime)"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/shared/data/cifar10-jpg")
    p.add_argument("--out", default="docs/evidence/xiong2020")
    p.add_argument("--depths", type=int, nargs="+", default=[4, 8])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--summarise", action="store_true", help="summarise the runs done, run none")
    p.add_argument("--run-depths", type=int, nargs="+", help="run only these of --depths (another "
                   "process may run the others into another --out: --merge its training.json)")
    p.add_argument("--merge", nargs="+", default=[], help="training.json files of the same setup "
                   "whose runs join this one's")
    args = p.parse_args()
    torch.set_num_threads(1)
    train = load_dataset(f"cifar10:{args.data}", "train").random_subset(5000, 0)
    held = load_dataset(f"cifar10:{args.data}", "test").random_subset(1000, 0)
    setup = dict(paper="Xiong et al. 2020 §3.3", model="cifar_vit", width=args.width, depths=args.depths,
                 seeds=list(range(args.seeds)), steps=args.steps, lr=args.lr, batch_size=32,
                 optimizer="adamw (0.9, 0.98)", warmup="linear from 1 % over the first 25 % of the steps",
                 train="CIFAR-10 train, fixed 5,000 (crop + flip)", eval="CIFAR-10 test, fixed 1,000",
                 thresholds=dict(XIONG_LOSS_MARGIN=thresholds.XIONG_LOSS_MARGIN,
                                 XIONG_TRAINED_MIN_ACC=thresholds.XIONG_TRAINED_MIN_ACC))
    path = Path(args.out) / "training.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    runs = [r for r in done.get("runs", []) if done.get("setup") == setup]
    for other in map(lambda f: json.loads(Path(f).read_text()), args.merge):
        if other.get("setup") != setup:
            raise SystemExit("--merge: a training.json of another setup")
        key = lambda r: (r["variant"], r["depth"], r["warmup"], r["seed"])  # noqa: E731
        runs += [r for r in other["runs"] if key(r) not in {key(q) for q in runs}]
    # the judged comparisons first (pre and post, each depth, every seed), the no-skip nets last,
    # so a run cut short holds whole sets of seeds
    order = [(v, d, w, s) for group in (("pre", "post"), ("noskip",)) for d in args.depths
             for s in setup["seeds"] for v in group for w in (False, True)]
    order = [o for o in order if not args.run_depths or o[1] in args.run_depths]
    for variant, depth, warmup, seed in [] if args.summarise else order:
        if any((r["variant"], r["depth"], r["warmup"], r["seed"]) == (variant, depth, warmup, seed)
               for r in runs):
            continue
        r = run(variant, depth, warmup, seed, args, train, held)
        runs.append(r)
        print(f"{variant:6s} L={depth} warm-up {'on ' if warmup else 'off'} seed {seed}: "
              f"final loss {r['final_loss']:.3f}, top-1 {100 * r['val_acc']:.1f} % "
              f"({r['seconds']:.0f} s)", flush=True)
        write_json(path, dict(setup=setup, runs=runs), indent=1)
    table = {}
    for d in args.depths:
        for v in VARIANTS:
            for w in (False, True):
                cell = [r for r in runs if (r["variant"], r["depth"], r["warmup"]) == (v, d, w)]
                if cell:
                    losses = [r["final_loss"] for r in cell]
                    table[f"{v} L={d} warm-up {'on' if w else 'off'}"] = dict(
                        seeds=[r["seed"] for r in cell], final_loss=losses, mean_loss=float(np.mean(losses)),
                        loss_interval=seed_interval(losses), top1=[r["val_acc"] for r in cell])
    result = dict(setup=setup, runs=runs, table=table, verdicts=verdicts(runs, args.depths, setup["seeds"]))
    write_json(path, result, indent=1)
    for name, cell in table.items():
        print(f"{name:22s} final loss {cell['mean_loss']:.3f} (seeds {cell['seeds']}), top-1 "
              f"{[round(100 * a, 1) for a in cell['top1']]}")
    for v in result["verdicts"]:
        if "interval" not in v:
            print(f"{v['claim']}: {v['verdict']}")
            continue
        lo, hi = v["interval"]
        print(f"{v['claim']}: {v['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] (warm-up top-1 "
              f"{100 * v['warmup_top1']:.1f} %) -> {v['verdict']}")


if __name__ == "__main__":
    main()
