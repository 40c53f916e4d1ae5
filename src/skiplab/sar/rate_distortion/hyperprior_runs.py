"""The training runs the held-out hyperprior study scores, named by *settings*, and where
each run stands.

A setting names one rate point of a variant (a transform family, ``gdn``, ``residual`` or
``plain``) on a fold:

- ``vr:L`` -- level L of the variable-rate model (gain units, Cui et al. 2021) in
  ``RUNS/<fold>-<transform>-vr``;
- ``LAMBDA`` or ``LAMBDA@STEP`` -- the fixed-rate model trained for LAMBDA in
  ``RUNS/<fold>-<transform>-<LAMBDA>``, coding with quantisation step STEP of y (default 1;
  step scaling as in Choi et al. 2019); ``vr:L@STEP`` works the same way.

A run's state (:func:`run_state`): ``not trained`` (no run directory), ``no checkpoint`` (a
directory without ``checkpoints/last.pt``), ``training`` (last.pt short of the run's steps) or
``finished``; its training wall-clock (the sum of ``epoch_time_s`` over the epochs of its
``metrics.csv``: time spent in training steps, evaluations excluded, across resumes) and
whether it reached its validation plateau (:func:`skiplab.sar.ablation.codec_eval.plateau`
over its ``val_psnr`` column, with the thresholds of :mod:`skiplab.evidence.thresholds`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ...errors import SkiplabError
from ..ablation.codec_eval import plateau

#: the transform families of :mod:`skiplab.sar.codec.transforms`, one variant each
TRANSFORMS = ("gdn", "residual", "plain")
#: the run directory name of a variable-rate model: ``<fold>-<transform>-vr``
VARIABLE_RATE = "vr"


class SettingError(SkiplabError, ValueError):
    """A setting or a transform the study does not know."""


@dataclass(frozen=True)
class Setting:
    """One rate point: the run (``vr`` or a lambda), the level of a variable-rate run and
    the quantisation step of y."""

    text: str
    run: str
    level: Optional[int] = None
    step: float = 1.0

    def run_dir(self, runs: Path, fold: str, transform: str) -> Path:
        return Path(runs) / f"{fold}-{transform}-{self.run}"


def _number(text: str, what: str, setting: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SettingError(f"setting {setting!r}: expected a positive {what}; found {text!r}")
    return value


def parse_setting(text: str) -> Setting:
    """``vr:L[@STEP]`` or ``LAMBDA[@STEP]`` (see the module documentation)."""
    text = text.strip()
    body, at, step_text = text.partition("@")
    step = _number(step_text, "quantisation step after @", text) if at else 1.0
    if body.startswith(f"{VARIABLE_RATE}:"):
        level = body[len(VARIABLE_RATE) + 1 :]
        if not level.isdigit():
            raise SettingError(f"setting {text!r}: expected vr:LEVEL with LEVEL = 0, 1, 2, ...; found {level!r}")
        return Setting(text, VARIABLE_RATE, int(level), step)
    _number(body, "lambda (or vr:LEVEL)", text)
    return Setting(text, body, None, step)


def parse_settings(text: str) -> list[Setting]:
    """Comma-separated settings, at least one, none repeated."""
    settings = [parse_setting(t) for t in text.split(",") if t.strip()]
    if not settings:
        raise SettingError(f"expected comma-separated settings like vr:0,vr:1 or 0.0005@1.0; found {text!r}")
    texts = [s.text for s in settings]
    if len(set(texts)) != len(texts):
        raise SettingError(f"a setting is repeated in {text!r}")
    return settings


def parse_transforms(text: str) -> list[str]:
    """Comma-separated transform families out of :data:`TRANSFORMS`, none repeated."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in TRANSFORMS]
    if not names or bad or len(set(names)) != len(names):
        raise SettingError(f"expected comma-separated transforms out of {','.join(TRANSFORMS)}; found {text!r}")
    return names


@dataclass
class RunState:
    """Where one training run stands (see the module documentation)."""

    path: str
    status: str
    step: int = 0
    steps: int = 0
    train_seconds: float = math.nan
    plateau: dict = field(default_factory=dict)

    @property
    def has_checkpoint(self) -> bool:
        return self.status in ("training", "finished")

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def describe(self) -> str:
        """One phrase: the status, steps, wall-clock and plateau."""
        if not self.has_checkpoint:
            return self.status
        words = [f"{self.status}, step {self.step} of {self.steps}"]
        if math.isfinite(self.train_seconds):
            words.append(f"{format_seconds(self.train_seconds)} of training")
        words.append(describe_plateau(self.plateau))
        return "; ".join(words)

    def to_dict(self) -> dict:
        """As JSON wants it: an unknown number (NaN) is None."""
        out = asdict(self)
        out["train_seconds"] = _or_none(self.train_seconds)
        out["plateau"] = {k: _or_none(v) if isinstance(v, float) else v for k, v in self.plateau.items()}
        return out


def _or_none(value: Optional[float]) -> Optional[float]:
    return value if value is not None and math.isfinite(value) else None


def format_seconds(seconds: Optional[float]) -> str:
    """``1 h 02 min``, ``12 min 05 s`` or ``7.3 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.1f} s"


def describe_plateau(entry: dict) -> str:
    if not entry:
        return "plateau not judged"
    n = entry.get("evaluations", 0)
    if n < 4:
        return f"plateau not judged ({n} validation evaluations; the rule needs 4)"
    verdict = "plateau reached" if entry["reached"] else "plateau NOT reached"
    return f"{verdict} (last-quarter gain {entry['gain']:+.3f} dB over {n} evaluations)"


def epoch_rows(path: Path) -> list[dict]:
    """The rows of a run's ``metrics.csv``, one per epoch (the last written: a resume may
    write an epoch's row again)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = {}
        for row in csv.DictReader(f):
            rows[row.get("epoch")] = row
    return list(rows.values())


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def run_state(run_dir: Path) -> RunState:
    """The state of the run in ``run_dir`` (see the module documentation)."""
    from ...trained import read_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return RunState(str(run_dir), "not trained")
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        return RunState(str(run_dir), "no checkpoint")
    checkpoint = read_checkpoint(last)
    step = int(checkpoint.get("step", 0))
    steps = int((checkpoint.get("config") or {}).get("steps") or 0)
    rows = epoch_rows(run_dir / "metrics.csv")
    seconds = sum(v for v in (_float(r.get("epoch_time_s")) for r in rows) if math.isfinite(v)) if rows else math.nan
    val = [v for v in (_float(r.get("val_psnr")) for r in rows) if math.isfinite(v)]
    status = "finished" if steps and step >= steps else "training"
    return RunState(str(run_dir), status, step, steps, float(seconds), plateau(val))


__all__ = [
    "RunState",
    "Setting",
    "SettingError",
    "TRANSFORMS",
    "VARIABLE_RATE",
    "describe_plateau",
    "epoch_rows",
    "format_seconds",
    "parse_setting",
    "parse_settings",
    "parse_transforms",
    "run_state",
]
