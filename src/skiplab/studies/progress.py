"""Progress bars for the long measurements of a study (tqdm on stderr, rate and ETA)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from ..train.precision import Precision, resolve_precision


def bar(total: int, desc: str):
    """A tqdm bar that disappears when done (the study prints one line per part), shown on
    a terminal only: redirected to a file, its carriage-return redraws would be noise."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)


@contextlib.contextmanager
def progress_callback(total: int, desc: str) -> Iterator[Callable[[int, int], None]]:
    """``progress(done, total)`` for the analysis functions that report their progress."""
    b = bar(total, desc)
    try:
        yield lambda done, _total: b.update(done - b.n)
    finally:
        b.close()


def inference_autocast(precision: str) -> contextlib.AbstractContextManager:
    """The study's precision for evaluation-only measurements (lesions, landscapes);
    gradients are always measured in fp32."""
    cpu = torch.device("cpu")
    return Precision(resolve_precision(precision, cpu), cpu).autocast()
