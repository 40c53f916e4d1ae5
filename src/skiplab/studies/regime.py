"""Regime gates: is a run in the regime a paper speaks about? If not, no verdict.

Each gate returns the reasons it fails (empty: the run is in the regime), in numbers, so
the report can say "not in the paper's regime: <why>" instead of agree/disagree. The
thresholds live in :mod:`skiplab.evidence.thresholds`.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from ..evidence import thresholds as T


def smoke_run(quick: bool) -> list[str]:
    return ["a --quick smoke run: it checks that everything runs, not what the nets learn"] if quick else []


def enough_seeds(seeds: int) -> list[str]:
    if seeds < T.MIN_SEEDS_FOR_VERDICT:
        return [
            f"{seeds} seed(s): a verdict needs at least {T.MIN_SEEDS_FOR_VERDICT} (--seeds) so that the "
            f"interval covers seed-to-seed variation"
        ]
    return []


def degradation_gate(train_error: Mapping[str, float], shallow: Sequence[str], chance: float) -> list[str]:
    """He 2015 Fig. 6's regime: the shallow references fit their training set, and no
    compared net is near chance. ``train_error``: mean eval-mode training error per network."""
    reasons = []
    loose = {n: e for n, e in train_error.items() if n in shallow and e > T.SHALLOW_TRAIN_ERROR_MAX}
    if loose:
        reasons.append(
            "the shallow reference nets do not fit their training subset: training error "
            + ", ".join(f"{n} {100 * e:.1f}%" for n, e in loose.items())
            + f" (the gate: below {100 * T.SHALLOW_TRAIN_ERROR_MAX:.0f}%; He's plain-20 and ResNet-20 "
            f"end near a few per cent) -- train longer (--budget / --steps)"
        )
    return reasons + above_chance_gate(train_error, chance)


def above_chance_gate(train_error: Mapping[str, float], chance: float) -> list[str]:
    """Every compared trained net at least ``ABOVE_CHANCE_MARGIN`` below chance error: a net at
    chance did not train (dead start, divergence), and what it measures is the failure."""
    chance_error = 1 - chance
    dead = {n: e for n, e in train_error.items() if not e <= chance_error - T.ABOVE_CHANCE_MARGIN}
    if dead:
        return [
            "a compared net is near chance: training error "
            + ", ".join(f"{n} {100 * e:.1f}%" for n, e in dead.items())
            + f" against chance {100 * chance_error:.0f}% (the gate: at least "
            f"{100 * T.ABOVE_CHANCE_MARGIN:.0f} points below chance)"
        ]
    return []


def convergence_gate(train_error: Mapping[str, float], plateau_drop: Mapping[str, float]) -> list[str]:
    """He 2015's regime for a claim about converged nets ("deeper ResNets train better or no
    worse"): every compared net fits its training subset (eval-mode training error below
    ``DEEP_TRAIN_ERROR_MAX``) and its training loss has levelled off (it fell by at most
    ``PLATEAU_MAX_DROP`` from the second-last to the last ``PLATEAU_WINDOW`` of the steps).
    ``train_error`` and ``plateau_drop``: means over seeds per network."""
    reasons = []
    loose = {n: e for n, e in train_error.items() if not e <= T.DEEP_TRAIN_ERROR_MAX}
    if loose:
        reasons.append(
            "the compared nets have not converged: training error "
            + ", ".join(f"{n} {100 * e:.1f}%" for n, e in loose.items())
            + f" (the gate: below {100 * T.DEEP_TRAIN_ERROR_MAX:.0f}%; He's ResNet-56 ends near 0%)"
        )
    falling = {n: d for n, d in plateau_drop.items() if math.isfinite(d) and d > T.PLATEAU_MAX_DROP}
    if falling:
        reasons.append(
            "the training loss is still falling at the end: "
            + ", ".join(f"{n} {100 * d:.0f}%" for n, d in falling.items())
            + f" lower over the last {100 * T.PLATEAU_WINDOW:.0f}% of the steps than over the "
            f"{100 * T.PLATEAU_WINDOW:.0f}% before (the gate: at most {100 * T.PLATEAU_MAX_DROP:.0f}%)"
        )
    return reasons


def lesion_gate(baseline: Mapping[str, float], chance: float) -> list[str]:
    """Veit 2016's regime: the lesioned nets are trained well above chance."""
    weak = {n: a for n, a in baseline.items() if a - chance < T.LESION_INFORMATIVE}
    if weak:
        return [
            ", ".join(f"{n} {100 * a:.1f}%" for n, a in weak.items())
            + f" test accuracy, less than {100 * T.LESION_INFORMATIVE:.0f} points above chance "
            f"({100 * chance:.0f}%): a barely trained net has little accuracy to lose"
        ]
    return []
