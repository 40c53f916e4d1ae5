"""The study's verdict in numbers, and each finding set beside the published one.

:func:`compute_verdict` gives the verdict lines computed from the measurements (never from
expectations): He 2015's degradation as the interaction of depth and family with its
interval, then the lesion and gradient numbers. :func:`assess` says for each claim of
:mod:`~skiplab.studies.published` whether the measurement agrees -- only inside the
paper's regime (:mod:`~skiplab.studies.regime`); outside it the status is "not in the
paper's regime" and the reasons say why, in numbers. A ``--quick`` smoke run gets no
agree/disagree at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from . import thresholds as T
from .config import StudyConfig
from .regime import enough_seeds, lesion_gate, smoke_run
from .stats import interval_text, sign

NOT_IN_REGIME = "not in the paper's regime"


@dataclass
class Assessment:
    key: str                 # FINDINGS key
    measured: str            # one line, with numbers
    status: str              # "agrees", "disagrees", "unresolved", "partly", NOT_IN_REGIME, "not measured"
    reasons: list[str] = field(default_factory=list)


def gated(key: str, measured: str, reasons: list[str]) -> Assessment:
    return Assessment(key, measured, NOT_IN_REGIME, reasons)


def _lesion_line(lesion: dict) -> Optional[str]:
    res = next((m for m in lesion["models"] if m["shortcut"] == "identity"), None)
    plain = next((m for m in lesion["models"] if m["shortcut"] == "none"), None)
    parts = []
    if res is not None:
        parts.append(f"deleting one block of {res['model']} costs {100 * res['mean_drop']:.1f} points of "
                     f"test accuracy on average (worst {100 * res['max_drop']:.1f})")
    if plain is not None:
        parts.append(f"deleting one layer pair of {plain['model']} costs {100 * plain['mean_drop']:.1f} "
                     f"(worst {100 * plain['max_drop']:.1f}; chance is {100 * plain['chance']:.0f}%)")
    return "; ".join(parts) or None


def _gradient_line(grads: dict) -> Optional[str]:
    v = next((v for v in grads["verdicts"] if v["norm"]), None)
    if v is None:
        return None
    ratios = " and ".join(f"{r:.3g}x ({'at init' if stage == 'init' else stage}: {v['trends'][stage]})"
                          for stage, r in v["ratios"].items())
    return (f"with BatchNorm, the per-element RMS of the gradient reaching the first block of {v['model']} is "
            f"{ratios} the one reaching its last block")


def degradation_line(deg: dict, split: str = "train") -> Optional[str]:
    c = deg.get(f"{split}_contrasts")
    if not c:
        return None
    p, r, s, d = deg["plain"], deg["residual"], deg["shallow"], deg["deep"]
    what = "training error (eval mode)" if split == "train" else "test error"
    return (f"{what}: depth {s}->{d} costs {p} nets {interval_text(c[p])} and {r} nets "
            f"{interval_text(c[r])}; interaction (plain minus residual) {interval_text(c['interaction'])}, "
            f"over {c['interaction']['seeds']} seeds")


def compute_verdict(config: StudyConfig, results: dict) -> list[str]:
    """The verdict lines in numbers from the parts' results, each ending with its status
    (or why there is none)."""
    lines = []

    def status_of(a: Assessment) -> str:
        if config.quick:
            return "no verdict (smoke run)"
        return a.status if a.status != NOT_IN_REGIME else f"no verdict, {NOT_IN_REGIME}: {'; '.join(a.reasons)}"
    deg = results.get("degradation")
    if deg and deg.get("train_contrasts"):
        status = status_of(assess_degradation(config, results)[0])
        lines.append(f"degradation (He 2015): {degradation_line(deg)} -- {status}")
    if "lesion" in results:
        line = _lesion_line(results["lesion"])
        if line:
            status = status_of(assess_lesion(config, results))
            lines.append(f"lesions (Veit 2016): {line} -- {status}")
    if len(lines) < 3 and "gradients" in results:
        line = _gradient_line(results["gradients"])
        if line:
            lines.append(f"gradient flow: {line}")
    if len(lines) < 3 and "shattered" in results:
        line = results["shattered"].get("line")
        if line:
            lines.append(f"shattered gradients: {line}")
    return lines[:3]


# -- beside the papers -----------------------------------------------------------------------
def _budget_reason(results: dict) -> str:
    steps = results.get("degradation", {}).get("steps")
    return (f"the budget: {steps} steps per net against He 2015's 64,000 -- the deeper nets may not have "
            f"had the time to pull ahead (or fall behind) as they do over a full schedule" if steps else
            "the short training budget")


def _data_reason(config: StudyConfig) -> Optional[str]:
    if config.data.startswith("synthetic"):
        return (f"the data: the synthetic task ({config.data}) is not CIFAR-10; a task that every depth can fit leaves "
                "no room for a deeper net to fit it better (or worse)")
    return None


def assess_degradation(config: StudyConfig, results: dict) -> list[Assessment]:
    """The interaction (He's contrast), then each family's own depth effect, on the
    eval-mode training error; verdicts from the sign of each interval, inside the regime."""
    deg = results.get("degradation")
    keys = ("degradation", "degradation_plain", "degradation_residual")
    if not deg or not deg.get("train_contrasts"):
        return [Assessment(k, "not measured", "not measured") for k in keys]
    c = deg["train_contrasts"]
    p, r, s, d = deg["plain"], deg["residual"], deg["shallow"], deg["deep"]
    measured = {
        "degradation": f"[e({p}-{d}) - e({p}-{s})] - [e({r}-{d}) - e({r}-{s})] = {interval_text(c['interaction'])}",
        "degradation_plain": f"e({p}-{d}) - e({p}-{s}) = {interval_text(c[p])}",
        "degradation_residual": f"e({r}-{d}) - e({r}-{s}) = {interval_text(c[r])}",
    }
    if deg.get("regime"):
        return [gated(k, measured[k], deg["regime"]) for k in keys]
    want = {"degradation": "positive", "degradation_plain": "positive", "degradation_residual": "negative"}
    ci = {"degradation": c["interaction"], "degradation_plain": c[p], "degradation_residual": c[r]}
    out = []
    for k in keys:
        got = sign(ci[k])
        if got == "unresolved":
            out.append(Assessment(k, measured[k], "unresolved",
                                  [f"the {100 * ci[k]['confidence']:.0f} % interval contains 0: these seeds and "
                                   f"images cannot tell the sign (more --seeds, or a longer run)"]))
        else:
            out.append(Assessment(k, measured[k], "agrees" if got == want[k] else "disagrees",
                                  [] if got == want[k] else [_budget_reason(results)]))
    return out


def assess_gradients(results: dict) -> Assessment:
    grads = results.get("gradients")
    v = next((v for v in grads["verdicts"] if v["norm"]), None) if grads else None
    if v is None:
        return Assessment("gradients", "not measured", "not measured")
    line = _gradient_line(grads)
    trends = set(v["trends"].values())
    if trends == {"healthy"}:
        return Assessment("gradients", line + ": no decay, as He 2015 report", "agrees")
    if "vanishing" in trends:
        return Assessment("gradients", line + ": the gradient decays towards the input, as the vanishing-"
                          "gradient account predicts", "disagrees",
                          ["He 2015 give no numbers for their 'healthy norms'; this is one batch, and whole-"
                           "tensor norms, whose size differs between stages (16x32x32 against 64x8x8 "
                           "activations) -- see the per-layer figure"])
    when = {"init": "at initialisation", "trained": "after training"}
    exploding = [when[s] for s, t in v["trends"].items() if t == "exploding"]
    healthy = [when[s] for s, t in v["trends"].items() if t == "healthy"]
    return Assessment("gradients", line + ": the gradient does not decay towards the input at any stage (against "
                      f"the vanishing-gradient account); it grows towards the input {' and '.join(exploding)}, so "
                      f"He's 'healthy norms' hold {' and '.join(healthy) if healthy else 'at no stage measured'}",
                      "partly",
                      ["BatchNorm's gradient explosion in deep plain nets (Yang et al. 2019); He 2015 give no "
                       "numbers for their 'healthy norms'"])


def assess_lesion(config: StudyConfig, results: dict) -> Assessment:
    """Veit 2016 Fig. 3 as intervals of the retained above-chance fraction after one
    deletion: a ResNet keeps most of it, a plain net falls to chance."""
    lesion = results.get("lesion")
    if not lesion:
        return Assessment("lesion", "not measured", "not measured")
    res = next((m for m in lesion["models"] if m["shortcut"] == "identity"), None)
    plain = next((m for m in lesion["models"] if m["shortcut"] == "none"), None)
    line = _lesion_line(lesion) or "not measured"
    parts = []
    for m in (res, plain):
        if m is not None and m.get("retained_single"):
            parts.append(f"{m['model']} keeps {interval_text(m['retained_single'], 1.0, '', 2)} of its above-chance "
                         f"accuracy after one deletion")
    measured = "; ".join(parts) or line
    models = [m for m in (res, plain) if m is not None]
    reasons = smoke_run(config.quick) + enough_seeds(config.seeds) + lesion_gate(
        {m["model"]: m["baseline"]["accuracy"] for m in models}, models[0]["chance"] if models else 0.1)
    if reasons:
        return gated("lesion", measured, reasons)
    small = res is not None and res["retained_single"]["low"] > T.LESION_RETAINED_SMALL
    not_small = res is not None and res["retained_single"]["high"] < T.LESION_RETAINED_SMALL
    collapse = plain is not None and plain["retained_single"]["high"] < T.LESION_RETAINED_COLLAPSE
    no_collapse = plain is not None and plain["retained_single"]["low"] > T.LESION_RETAINED_COLLAPSE
    if small and collapse:
        return Assessment("lesion", measured, "agrees")
    if not_small and no_collapse:
        return Assessment("lesion", measured, "disagrees",
                          ["Veit lesioned fully trained 110-layer nets and single layers of a VGG net; here a "
                           "block of a briefly trained, shallower net"])
    if small or collapse:
        return Assessment("lesion", measured, "partly",
                          [f"one of the two holds: ResNet retains > {T.LESION_RETAINED_SMALL:g} "
                           f"({'yes' if small else 'no'}), plain retains < {T.LESION_RETAINED_COLLAPSE:g} "
                           f"({'yes' if collapse else 'no'})"])
    return Assessment("lesion", measured, "unresolved", ["the intervals straddle the thresholds"])


def assess_landscape(results: dict) -> Assessment:
    land = results.get("landscape")
    if not land:
        return Assessment("landscape", "not measured", "not measured")
    res = next((m for m in land["models"] if m["shortcut"] == "identity"), None)
    plain = next((m for m in land["models"] if m["shortcut"] == "none"), None)
    line = "; ".join(f"{m['model']}: {m['local_minima']} local minima on the 2-D grid, border loss "
                     f"{m['border_rise']:.1f}x the centre's" for m in (res, plain) if m)
    if res is None or plain is None:
        return Assessment("landscape", line, "partly", ["only one of the two families was measured"])
    fewer, same = res["local_minima"] < plain["local_minima"], res["local_minima"] == plain["local_minima"]
    flatter = res["border_rise"] <= plain["border_rise"]
    rougher = res["local_minima"] > plain["local_minima"] and not flatter
    status = "agrees" if fewer and flatter else ("disagrees" if rougher else "partly")
    coarse = ("a coarse grid on a few hundred images, and a short training, resolve less than "
              "Li 2018's 51x51 grids around fully trained nets")
    reasons = [] if status == "agrees" else [coarse]
    if same and flatter:   # smoother around the minimum, but no sign of the chaotic surface
        reasons = [f"the residual net's surroundings are flatter (border loss {res['border_rise']:.3g}x "
                   f"against {plain['border_rise']:.3g}x the centre's), but the grid shows as many local "
                   f"minima for both nets: Li 2018's chaotic plain-56 surface appears on 51x51 grids, "
                   f"which a {land.get('points_2d', '?')}x{land.get('points_2d', '?')} grid cannot resolve"]
    return Assessment("landscape", line, status, reasons)


def assess_shattered(config: StudyConfig, results: dict) -> Assessment:
    sh = results.get("shattered")
    if not sh:
        return Assessment("shattered", "not measured", "not measured")
    init = {(r["family"], r["depth"]): r["lag1"] for r in sh["results"] if r["stage"] == "init"}
    plain = [f for f in config.families if f.is_plain]
    res = [f for f in config.families if f.is_residual]
    if not plain or not res:
        return Assessment("shattered", "needs a plain and a residual family", "not measured")
    p, r = plain[0].label, res[0].label
    d0, d1 = min(config.depths), config.deepest
    line = (f"R(1) at init: {p}-{d0} {init[(p, d0)]:.2f} -> {p}-{d1} {init[(p, d1)]:.2f}; "
            f"{r}-{d0} {init[(r, d0)]:.2f} -> {r}-{d1} {init[(r, d1)]:.2f}")
    plain_drop = init[(p, d0)] - init[(p, d1)]
    res_drop = init[(r, d0)] - init[(r, d1)]
    agrees = init[(p, d1)] < init[(r, d1)] and plain_drop > res_drop
    status = "agrees" if agrees else ("partly" if init[(p, d1)] < init[(r, d1)] else "disagrees")
    reasons = [] if agrees else ["images are 3072-dimensional inputs and the nets convolutional, where "
                                 "Balduzzi's Fig. 1 uses 1-D inputs to fully-connected nets; the line's "
                                 "radius and resolution decide how much of the shattering is visible"]
    return Assessment("shattered", line, status, reasons)


NO_INTERVAL = ("measured without an interval over seeds: skiplab states a verdict only as a paired "
               "difference with its interval, which this part does not compute yet -- the numbers are shown, "
               "the comparison is left to the reader")


def without_interval(a: Assessment, quick: bool) -> Assessment:
    """Parts whose measurement has no interval yet give numbers, not agree/disagree."""
    if a.status == "not measured":
        return a
    return gated(a.key, a.measured, smoke_run(quick) or [NO_INTERVAL])


def assess(config: StudyConfig, results: dict) -> list[Assessment]:
    """Every claim of :data:`FINDINGS` of the parts that ran, with the measurement beside it."""
    out = []
    if "degradation" in config.parts:
        out += assess_degradation(config, results)
    if "gradients" in config.parts:
        out.append(without_interval(assess_gradients(results), config.quick))
    if "lesion" in config.parts:
        out.append(assess_lesion(config, results))
    if "landscape" in config.parts:
        out.append(without_interval(assess_landscape(results), config.quick))
    if "shattered" in config.parts:
        out.append(without_interval(assess_shattered(config, results), config.quick))
    return out
