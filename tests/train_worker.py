"""Run ``skiplab.train.fit`` in a separate process for the SIGKILL-resume and torchrun tests.

    python tests/train_worker.py CONFIG_JSON [--hang-at-step N]

With ``--hang-at-step N`` the run writes OUT/hanging after optimiser step N and sleeps, so
the test can SIGKILL it at a known point (its checkpoints are whatever was on disk). At the
end every rank saves its final weights to OUT/rank{RANK}.pt.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from skiplab.train import Callback, TrainConfig, fit


class HangAt(Callback):
    def __init__(self, step: int, marker: Path) -> None:
        self.step, self.marker = step, marker

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            self.marker.write_text(str(trainer.step))
            time.sleep(600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", help="TrainConfig fields as JSON")
    parser.add_argument("--hang-at-step", type=int, default=0)
    args = parser.parse_args()
    config = TrainConfig.from_dict(json.loads(args.config))
    out = Path(config.out)
    callbacks = [HangAt(args.hang_at_step, out / "hanging")] if args.hang_at_step else []
    result = fit(config, callbacks=callbacks)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(result.model.state_dict(), out / f"rank{os.environ.get('RANK', '0')}.pt")


if __name__ == "__main__":
    main()
