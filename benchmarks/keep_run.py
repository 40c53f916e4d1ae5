"""Keep a finished training run where git can hold it: its ``config.yaml``, ``metrics.csv``,
``DONE`` and ``checkpoints/last.pt`` without the training-only state
(:func:`skiplab.train.strip_training_state`: no optimiser, ~half the size).

Evidence runs outlive the machine that way: the machine that trains them may be gone before
the next step (pruning, distillation, int8) reads them. The kept directory has the layout
``benchmarks/deploy_compress.py --models`` and ``skiplab eval/quantize/prune`` expect.

    python benchmarks/keep_run.py runs/deploy-models/resnet56_A docs/evidence/deploy-models/resnet56_A
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from skiplab.train import load_checkpoint, save_checkpoint, strip_training_state


def keep_run(run: Path, dest: Path) -> Path:
    """Copy the finished run ``run`` to ``dest`` (stripped last.pt); returns the checkpoint."""
    if not (run / "DONE").exists() or not (run / "checkpoints" / "last.pt").exists():
        raise SystemExit(f"keep_run: expected a finished run (DONE and checkpoints/last.pt) in {run}")
    (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in ("config.yaml", "metrics.csv"):
        if (run / name).exists():
            shutil.copyfile(run / name, dest / name)
    path = save_checkpoint(strip_training_state(load_checkpoint(run / "checkpoints" / "last.pt")),
                           dest / "checkpoints" / "last.pt")
    shutil.copyfile(run / "DONE", dest / "DONE")  # last: a kept run is complete or not kept
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("dest", type=Path, help="where to keep it")
    args = parser.parse_args(argv)
    path = keep_run(args.run, args.dest)
    print(f"kept {args.run} -> {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
