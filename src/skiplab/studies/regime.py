"""Regime gates: is a run in the regime a paper speaks about? If not, no verdict.

Each gate returns the reasons it fails (empty: the run is in the regime), in numbers, so
the report can say "not in the paper's regime: <why>" instead of agree/disagree. The
thresholds live in :mod:`skiplab.studies.thresholds`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import thresholds as T


def smoke_run(quick: bool) -> list[str]:
    return ["a --quick smoke run: it checks that everything runs, not what the nets learn"] if quick else []


def enough_seeds(seeds: int) -> list[str]:
    if seeds < T.MIN_SEEDS_FOR_VERDICT:
        return [f"{seeds} seed(s): a verdict needs at least {T.MIN_SEEDS_FOR_VERDICT} (--seeds) so that the "
                f"interval covers seed-to-seed variation"]
    return []


def degradation_gate(train_error: Mapping[str, float], shallow: Sequence[str], chance: float) -> list[str]:
    """He 2015 Fig. 6's regime: the shallow references fit their training set, and no
    compared net is near chance. ``train_error``: mean eval-mode training error per network."""
    reasons = []
    loose = {n: e for n, e in train_error.items() if n in shallow and e > T.SHALLOW_TRAIN_ERROR_MAX}
    if loose:
        reasons.append("the shallow reference nets do not fit their training subset: training error "
                       + ", ".join(f"{n} {100 * e:.1f}%" for n, e in loose.items())
                       + f" (the gate: below {100 * T.SHALLOW_TRAIN_ERROR_MAX:.0f}%; He's plain-20 and ResNet-20 "
                         f"end near a few per cent) -- train longer (--budget / --steps)")
    chance_error = 1 - chance
    dead = {n: e for n, e in train_error.items() if e > chance_error - T.ABOVE_CHANCE_MARGIN}
    if dead:
        reasons.append("a compared net is near chance: training error "
                       + ", ".join(f"{n} {100 * e:.1f}%" for n, e in dead.items())
                       + f" against chance {100 * chance_error:.0f}% (the gate: at least "
                         f"{100 * T.ABOVE_CHANCE_MARGIN:.0f} points below chance)")
    return reasons


def lesion_gate(baseline: Mapping[str, float], chance: float) -> list[str]:
    """Veit 2016's regime: the lesioned nets are trained well above chance."""
    weak = {n: a for n, a in baseline.items() if a - chance < T.LESION_INFORMATIVE}
    if weak:
        return [", ".join(f"{n} {100 * a:.1f}%" for n, a in weak.items())
                + f" test accuracy, less than {100 * T.LESION_INFORMATIVE:.0f} points above chance "
                  f"({100 * chance:.0f}%): a barely trained net has little accuracy to lose"]
    return []
