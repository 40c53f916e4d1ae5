"""CIFAR-10 time to accuracy with the ``fast_cifar`` recipe.

Trains ``configs/fast_cifar.yaml`` on ``../shared/data/cifar10-jpg/train``, evaluates on
its ``test`` split and prints the test accuracy and the wall-clock (data loading, model
set-up and compilation included). Target: >= 91.25 % (He 2015's ResNet-20) in <= 15
minutes on a 2-core CPU.

    python benchmarks/cifar10_time_to_accuracy.py [--data cifar10:PATH] [--epochs N] [--out DIR]

Any further ``--field value`` pairs override the recipe as in ``skiplab train``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_ACC, TARGET_MIN = 0.9125, 15.0


def main() -> None:
    start = time.perf_counter()
    import yaml

    from skiplab.cli.train import add_parser
    from skiplab.train import TrainConfig, fit

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)   # every recipe field as a flag, exactly as `skiplab train`
    args = parser.parse_args(["train", "--config", str(REPO / "configs" / "fast_cifar.yaml")] + sys.argv[1:])
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("config", "print_config", "run", "command")}
    overrides.setdefault("data", f"cifar10:{REPO.parent / 'shared' / 'data' / 'cifar10-jpg'}")
    config = TrainConfig.from_yaml(args.config, overrides)
    if getattr(args, "print_config", False):
        print(config.to_yaml(), end="")
        return
    print(yaml.safe_dump({k: v for k, v in config.to_dict().items() if k in overrides or k in (
        "model", "epochs", "batch_size", "lr", "precision", "compile")}, sort_keys=False).strip())

    result = fit(config)
    minutes = (time.perf_counter() - start) / 60
    acc = result.metrics.get("val_acc", float("nan"))
    train_min = sum(float(r["epoch_time_s"]) for r in result.history) / 60
    print(f"\nfast_cifar: test accuracy {100 * acc:.2f}% after {config.epochs} epochs; "
          f"wall-clock {minutes:.1f} min (training loop {train_min:.1f} min)")
    ok = acc >= TARGET_ACC and minutes <= TARGET_MIN
    print(f"target >= {100 * TARGET_ACC:.2f}% in <= {TARGET_MIN:.0f} min: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
