"""Transfer learning, measured: a CIFAR-10 ResNet-20 fine-tuned on a small grey-scale task.

The source is the He et al. 2015 ResNet-20 of docs/evidence/he2015/resnet20 (trained on the
50,000 colour CIFAR-10 training images, 10 classes). The target task is built from images
that net never saw: the CIFAR-10 *test* split's six animal classes (bird, cat, deer, dog,
frog, horse) turned into one grey channel (ITU-R 601 luma, Pillow's "L"), a 6-way problem
with ``--per-class`` training images per class (default 50: 300 images) and a fixed,
disjoint evaluation set of ``--eval-per-class`` images per class (default 300: 1,800).

Four strategies, each for the same ``--steps`` SGD steps of batch 32 (cosine schedule, crop
+ flip augmentation), with learning rates declared here before any run, not tuned:

* ``scratch``  -- random init, lr 0.1 (He 2015's);
* ``full``     -- ``init_from`` the source (stem summed to one channel, a fresh 6-way
  head), every parameter trained, lr 0.01;
* ``features`` -- the same start, ``freeze: [backbone]`` (feature extraction: the head
  only; frozen BatchNorm statistics kept), lr 0.1;
* ``layer_decay`` -- the same start, every parameter trained with ``layer_decay`` 0.75
  (head at 0.05, the last block 0.0375, ..., the stem 0.05 x 0.75^10 = 0.0028).

Seeds (``--seeds``, default 3) change the head's/scratch init, the data order and the
augmentation; the training and evaluation images are the same for every run. Differences
are paired per seed (each strategy minus scratch, and layer_decay minus full), with the t
interval of :func:`skiplab.evidence.paired_seed_interval`.

    nice -n 10 python benchmarks/transfer_grey.py --out docs/evidence/transfer

Results go to OUT/results.json after every run (a rerun skips the runs it holds).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from skiplab.atomic import write_json
from skiplab.data import ImageDataset, load_dataset
from skiplab.data.dataset import channel_stats
from skiplab.evidence import paired_seed_interval, seed_interval
from skiplab.train import TrainConfig, fit

SOURCE = "docs/evidence/he2015/resnet20/checkpoints/last.pt"
ANIMALS = ("bird", "cat", "deer", "dog", "frog", "horse")
STRATEGIES = {
    "scratch": dict(lr=0.1),
    "full": dict(lr=0.01, init_from=SOURCE),
    "features": dict(lr=0.1, init_from=SOURCE, freeze=["backbone"]),
    "layer_decay": dict(lr=0.05, init_from=SOURCE, layer_decay=0.75),
}
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def grey_animals(data: str, per_class: int, eval_per_class: int) -> tuple[ImageDataset, ImageDataset]:
    """The target task's training and evaluation sets (fixed: the first images of each class
    in a seed-0 permutation of the test split)."""
    test = load_dataset(f"cifar10:{data}", "test")
    grey = (test.images.float() * LUMA).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
    train_idx, eval_idx = [], []
    for new, name in enumerate(ANIMALS):
        rows = order[test.labels[order] == test.classes.index(name)]
        train_idx.append(rows[:per_class])
        eval_idx.append(rows[per_class:per_class + eval_per_class])
    relabel = torch.full((len(test.classes),), -1, dtype=torch.int64)
    for new, name in enumerate(ANIMALS):
        relabel[test.classes.index(name)] = new

    def part(idx: list[torch.Tensor], name: str, stats=None) -> ImageDataset:
        idx = torch.cat(idx)
        images = grey[idx]
        mean, std = stats or channel_stats(images)
        return ImageDataset(images=images, labels=relabel[test.labels[idx]], classes=list(ANIMALS),
                            mean=mean, std=std, name=name)

    train = part(train_idx, f"grey-animals-train-{per_class * len(ANIMALS)}")
    return train, part(eval_idx, f"grey-animals-eval-{eval_per_class * len(ANIMALS)}",
                       (train.mean, train.std))


def run(strategy: str, seed: int, steps: int, train: ImageDataset, held: ImageDataset) -> dict:
    config = TrainConfig.from_dict(dict(
        model="cifar_resnet20", save=False, progress=False, tensorboard=False, device="cpu",
        seed=seed, steps=steps, batch_size=32, eval_batch_size=600, schedule="cosine",
        momentum=0.9, weight_decay=1e-4, eval_every=10_000, compile="off", num_threads=1,
        **STRATEGIES[strategy]))
    started = time.perf_counter()
    result = fit(config, train_set=train, eval_set=held)
    return dict(strategy=strategy, seed=seed, steps=steps, val_acc=result.metrics["val_acc"],
                train_acc=result.metrics.get("train_acc"), seconds=time.perf_counter() - started)


def summary(runs: list[dict], seeds: list[int]) -> dict:
    """Per-strategy top-1 and the paired differences over the seeds every strategy has run."""
    seeds = [k for k in seeds if all(any(r["strategy"] == s and r["seed"] == k for r in runs)
                                     for s in STRATEGIES)]
    acc = {s: [next(r["val_acc"] for r in runs if r["strategy"] == s and r["seed"] == k) for k in seeds]
           for s in STRATEGIES}
    if not seeds:
        return {"seeds": [], "accuracy": {}, "paired": {}}
    out = {"seeds": seeds, "accuracy": {s: dict(mean=sum(v) / len(v), per_seed=v, interval=seed_interval(v))
                        for s, v in acc.items()}, "paired": {}}
    pairs = [(s, "scratch") for s in STRATEGIES if s != "scratch"] + [("layer_decay", "full"),
                                                                       ("features", "full")]
    for a, b in pairs:
        diffs = [x - y for x, y in zip(acc[a], acc[b])]
        out["paired"][f"{a} - {b}"] = dict(mean=sum(diffs) / len(diffs), per_seed=diffs,
                                           interval=paired_seed_interval(acc[a], acc[b]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/shared/data/cifar10-jpg")
    p.add_argument("--out", default="docs/evidence/transfer")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--per-class", type=int, default=50)
    p.add_argument("--eval-per-class", type=int, default=300)
    p.add_argument("--summarise", action="store_true", help="summarise the runs done, run none")
    args = p.parse_args()
    out = Path(args.out)
    path = out / "results.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    setup = dict(source=SOURCE, target="CIFAR-10 test split, classes " + ", ".join(ANIMALS) + ", grey (ITU-R 601)",
                 steps=args.steps, batch_size=32, per_class=args.per_class,
                 eval_per_class=args.eval_per_class, strategies=STRATEGIES,
                 seeds=list(range(args.seeds)))
    runs = [r for r in done.get("runs", []) if done.get("setup") == setup]
    if not args.summarise:
        train, held = grey_animals(args.data, args.per_class, args.eval_per_class)
        print(f"target: {train.name} / {held.name}, grey mean {train.mean[0]:.3f} std {train.std[0]:.3f}")
    for seed in [] if args.summarise else setup["seeds"]:
        for strategy in STRATEGIES:
            if any(r["strategy"] == strategy and r["seed"] == seed for r in runs):
                continue
            runs.append(run(strategy, seed, args.steps, train, held))
            r = runs[-1]
            print(f"{strategy:12s} seed {seed}: val_acc {r['val_acc']:.4f} ({r['seconds']:.0f} s)", flush=True)
            write_json(path, dict(setup=setup, runs=runs), indent=1)
    result = dict(setup=setup, runs=runs, summary=summary(runs, setup["seeds"]),
                  torch=torch.__version__, threads=torch.get_num_threads())
    write_json(path, result, indent=1)
    for name, v in result["summary"]["accuracy"].items():
        print(f"{name:12s} top-1 {100 * v['mean']:.1f} %  per seed {[round(100 * x, 1) for x in v['per_seed']]}")
    for name, v in result["summary"]["paired"].items():
        lo, hi = v["interval"]
        print(f"{name:22s} {100 * v['mean']:+.1f} points, 95 % interval [{100 * lo:+.1f}, {100 * hi:+.1f}]")


if __name__ == "__main__":
    main()
