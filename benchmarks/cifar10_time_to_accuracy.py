"""CIFAR-10 time to accuracy with the ``fast_cifar`` recipe.

Trains ``configs/fast_cifar.yaml`` on ``../shared/data/cifar10-jpg/train``, evaluates on
its ``test`` split and prints the test accuracy and the wall-clock (start-up, data loading,
model set-up and compilation included). Target: >= 91.25 % (He 2015's ResNet-20) in <= 15
minutes on a 2-core CPU.

    python benchmarks/cifar10_time_to_accuracy.py [--nproc N] [--data cifar10:PATH] [--epochs N] [--out DIR]

``--nproc N`` trains with N processes of one thread each (the script relaunches itself
under ``torchrun``; DDP over gloo, global batch unchanged). Any further ``--field value``
pairs override the recipe as in ``skiplab train``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_ACC, TARGET_MIN = 0.9125, 15.0


def relaunch(nproc: int, argv: list[str], start: float) -> int:
    """Run this script under torchrun with ``nproc`` one-thread processes."""
    env = dict(os.environ, SKIPLAB_BENCH_START=repr(start), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", __file__, *argv]
    return subprocess.call(cmd, env=env)


def main() -> None:
    start = float(os.environ.get("SKIPLAB_BENCH_START", time.time()))
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--nproc", type=int, default=1)
    launch, argv = pre.parse_known_args()
    if launch.nproc > 1 and "LOCAL_RANK" not in os.environ:
        sys.exit(relaunch(launch.nproc, argv, start))
    main_rank = int(os.environ.get("RANK", "0")) == 0
    world = int(os.environ.get("WORLD_SIZE", "1"))

    import yaml

    from skiplab.cli.train import NOT_CONFIG, add_parser, resolve_config
    from skiplab.train import fit

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)   # every recipe field as a flag, exactly as `skiplab train`
    args = parser.parse_args(["train", "--config", str(REPO / "configs" / "fast_cifar.yaml")] + argv)
    if not hasattr(args, "data"):
        args.data = f"cifar10:{REPO.parent / 'shared' / 'data' / 'cifar10-jpg'}"
    overrides = {k: v for k, v in vars(args).items() if k not in NOT_CONFIG}
    config = resolve_config(args)   # as `skiplab train`: retain_memory on, --epochs drops steps
    if getattr(args, "print_config", False):
        print(config.to_yaml(), end="")
        return
    if main_rank:
        print(yaml.safe_dump({k: v for k, v in config.to_dict().items() if k in overrides or k in (
            "model", "epochs", "batch_size", "lr", "precision", "compile")}, sort_keys=False).strip())
        print(f"processes: {world}")

    result = fit(config)
    if not main_rank:
        return
    minutes = (time.time() - start) / 60
    acc = result.metrics.get("val_acc", float("nan"))
    train_min = sum(float(r["epoch_time_s"]) for r in result.history) / 60
    print(f"\nfast_cifar: test accuracy {100 * acc:.2f}% after {config.epochs} epochs; "
          f"wall-clock {minutes:.1f} min (training loop {train_min:.1f} min), {world} process(es)")
    ok = acc >= TARGET_ACC and minutes <= TARGET_MIN
    print(f"target >= {100 * TARGET_ACC:.2f}% in <= {TARGET_MIN:.0f} min: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
