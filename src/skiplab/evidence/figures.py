"""Figure helpers every report uses, drawn with matplotlib's Agg canvas (no display needed):
a figure, saving it as a PNG, the colour of a family, smoothing a curve and its band over
seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

FAMILY_COLOURS = {"plain": "#d62728", "resnet": "#1f77b4", "preact": "#2ca02c", "highway": "#9467bd"}
DEPTH_STYLES = ["-", "--", ":", "-."]


def colour(family: str) -> str:
    return FAMILY_COLOURS.get(family, "#7f7f7f")


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def save_figure(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def seed_band(seeds: list[dict], key: str, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, min, max) over seeds of a smoothed per-step curve (cut to the shortest)."""
    n = min(len(s[key]) for s in seeds)
    values = np.stack([smooth(s[key][:n], window) for s in seeds])
    return np.asarray(seeds[0]["step"][:n]), values.mean(0), values.min(0), values.max(0)
