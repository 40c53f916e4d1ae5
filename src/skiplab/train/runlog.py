"""What a run writes to ``runs/NAME/``: the resolved ``config.yaml``, ``metrics.csv`` (one
row per epoch) and TensorBoard event files. Only rank 0 owns a :class:`RunLog`."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Optional, Union

from ..atomic import write_text
from ..writable import check_output_dir

CORE_COLUMNS = ["epoch", "step", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "epoch_time_s"]


def default_run_dir(model: str, root: Union[str, Path] = "runs") -> Path:
    """``runs/<model>-<YYYYmmdd-HHMMSS>`` (with ``-2``, ``-3``... if that exists): where a run
    without ``out`` writes."""
    base = Path(root) / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def resolve_run_dir(config):
    """``config`` with its ``out`` set (:func:`default_run_dir` when saving without one) and
    checked writable before any work (a file there or a read-only place: one line)."""
    if config.out is None and config.save:
        config = config.replace(out=str(default_run_dir(config.model)))
    if config.out is not None:
        check_output_dir(config.out)
    return config


def run_length(total_steps: int, epochs: int, per_epoch: int) -> str:
    """ "3 epochs x 78 steps", or "2 steps (78 per epoch)" when the run ends mid-epoch."""
    if total_steps == epochs * per_epoch:
        return f"{epochs} epoch{'s' if epochs != 1 else ''} x {per_epoch} steps"
    return f"{total_steps} steps ({per_epoch} per epoch)"


class RunLog:
    """Files of one run directory. ``purge_step`` (on resume) drops TensorBoard events that
    were written after the checkpoint being resumed."""

    def __init__(
        self, run_dir: Path, config_yaml: str, tensorboard: bool = True, purge_step: Optional[int] = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.run_dir / "config.yaml", config_yaml)
        self.metrics_path = self.run_dir / "metrics.csv"
        self.rows: list[dict] = []
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)

    def restore_rows(self, completed_epochs: int) -> None:
        """On resume: keep the metrics.csv rows of the epochs the checkpoint had completed."""
        if self.metrics_path.is_file():
            with open(self.metrics_path, newline="") as f:
                self.rows = [dict(r) for r in csv.DictReader(f) if int(r["epoch"]) <= completed_epochs]
        self._write_csv()

    def scalars(self, step: int, values: dict, prefix: str = "") -> None:
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(prefix + key, value, step)

    def epoch_row(self, row: dict) -> None:
        """Append one epoch's metrics to metrics.csv (rewritten whole: new columns may appear)."""
        self.rows.append(dict(row))
        self._write_csv()
        self.scalars(int(row["step"]), {k: v for k, v in row.items() if k not in ("epoch", "step")}, prefix="epoch/")
        if self.writer is not None:
            self.writer.flush()

    def _write_csv(self) -> None:
        # core columns first, but only those the task fills (reconstruction has no accuracy)
        columns = [k for k in CORE_COLUMNS if not self.rows or any(k in r for r in self.rows)]
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})
        write_text(self.metrics_path, buf.getvalue())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def format_scores(metrics: dict, split: str) -> str:
    """'train loss 0.1234 acc 97.00% dice 0.8812': the split's columns, fractions as %."""
    parts = []
    for key, value in metrics.items():
        if key.startswith(split + "_"):
            name = key[len(split) + 1 :]
            parts.append(f"{name} {100 * value:.2f}%" if name == "acc" else f"{name} {value:.4g}")
    return f"{split} " + " ".join(parts)
