"""The end of a training epoch: rank 0 evaluates the whole split, prints the epoch's line,
writes its metrics.csv row and checkpoints last.pt (and best.pt when the task's
``best_metric`` improved). Used by :class:`~skiplab.train.loop.Trainer`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .distributed import barrier
from .evaluation import evaluate
from .runlog import format_scores

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Trainer


def evaluate_epoch(trainer: "Trainer") -> dict:
    """Rank 0 evaluates the whole split (the EMA weights when there are some): ``val_*`` scores."""
    result = {}
    if trainer.is_main:
        model = trainer.ema.module if trainer.ema else trainer.model
        scores = evaluate(
            model,
            trainer.eval_loader,
            trainer.precision,
            trainer.config.tta_flip,
            meter=trainer.task.meter(trainer.eval_set),
            tta_translate=trainer.config.tta_translate,
        )
        result = {f"val_{k}": v for k, v in scores.items() if k != "images"}
    barrier(trainer.dist)
    return result


def end_epoch(trainer: "Trainer", metrics: dict) -> None:
    """Rank 0: the epoch's line on stdout, its metrics.csv row, last.pt, and best.pt if it is the best."""
    if not trainer.is_main:
        return
    print(
        f"epoch {metrics['epoch']}/{trainer.epochs}: {format_scores(metrics, 'train')}"
        f"{' | ' + format_scores(metrics, 'val') if 'val_loss' in metrics else ''} | "
        f"{metrics['images_per_s']:.0f} img/s, {metrics['epoch_time_s']:.0f} s | "
        f"lr {metrics['lr']:.4g}",
        flush=True,
    )
    value = metrics.get(trainer.task.best_metric)
    best = value is not None and (
        value > trainer.best_value if trainer.task.higher_is_better else value < trainer.best_value
    )
    if best:
        trainer.best_value = value
    if trainer.runlog is not None:
        trainer.runlog.epoch_row(metrics)
    trainer.save("last.pt")
    if best:
        trainer.save("best.pt")
