"""The study's verdict in numbers, and each finding set beside the published one.

:func:`compute_verdict` gives three lines computed from the measurements (never from
expectations): the deeper plain net against the shallower, the deeper residual net
against the shallower, and the cost of deleting one block. :func:`assess` says for each
claim of :mod:`~skiplab.studies.published` whether the measurement agrees, with the
likely reasons where it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .config import StudyConfig

LESION_SMALL = 0.05          # a ResNet's single deletion "costs little": < 5 points on average
LESION_COLLAPSE_MARGIN = 0.10  # a plain net "collapses": lesioned accuracy within 10 points of chance
LESION_INFORMATIVE = 0.20      # a lesion says something only of a net 20+ points above chance


@dataclass
class Assessment:
    key: str                 # FINDINGS key
    measured: str            # one line, with numbers
    status: str              # "agrees", "disagrees", "partly", "not measured"
    reasons: list[str] = field(default_factory=list)


def _pick(comparisons: dict, config: StudyConfig, plain: bool) -> Optional[dict]:
    for family in config.families:
        if (family.is_plain if plain else family.is_residual) and family.key in comparisons:
            return comparisons[family.key]
    return None


def _loss_line(c: dict) -> str:
    if c["outcome"] == "diverged":
        return f"{c['deep']} diverged (its loss became non-finite) while {c['shallow']} trained"
    rel = {"higher": "", "lower": "", "same": ": the same within 5%"}[c["outcome"]]
    return (f"{c['deep']} ends with {c['ratio']:.2f}x the training loss of {c['shallow']} "
            f"({c['deep_loss']:.3f} vs {c['shallow_loss']:.3f}{rel})")


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
    return (f"with BatchNorm, the gradient reaching the first block of {v['model']} is {ratios} the one "
            f"reaching its last block")


def compute_verdict(config: StudyConfig, results: dict) -> list[str]:
    """Three lines in numbers from the parts' results (fewer only if fewer parts ran)."""
    lines = []
    comparisons = results.get("degradation", {}).get("comparisons", {})
    for plain in (True, False):
        c = _pick(comparisons, config, plain)
        if c is not None:
            lines.append(_loss_line(c))
    if "lesion" in results:
        line = _lesion_line(results["lesion"])
        if line:
            lines.append(line)
    if len(lines) < 3 and "gradients" in results:
        line = _gradient_line(results["gradients"])
        if line:
            lines.append(line)
    if len(lines) < 3 and "shattered" in results:
        init = [r for r in results["shattered"]["results"] if r["stage"] == "init" and r["depth"] == config.deepest]
        if init:
            lines.append("input-gradient autocorrelation at lag 1, depth "
                         f"{config.deepest} at init: " + ", ".join(f"{r['model']} {r['lag1']:.2f}" for r in init))
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
    deg = results.get("degradation")
    out = []
    for key, plain in (("degradation_plain", True), ("degradation_residual", False)):
        c = _pick(deg["comparisons"], config, plain) if deg else None
        if c is None:
            out.append(Assessment(key, "not measured", "not measured"))
            continue
        want = "higher" if plain else "lower"
        status = "agrees" if c["outcome"] == want else "disagrees"
        if c["outcome"] == "same":
            status = "partly" if plain else "disagrees"
        reasons = []
        if status != "agrees":
            reasons.append(_budget_reason(results))
            chance_loss = math.log(deg.get("classes", 10))
            if all(v > 0.9 * chance_loss for v in c["losses"].values()):
                reasons.insert(0, f"no net learned much: every end-of-training loss is within 10% of chance "
                                  f"level (ln {deg.get('classes', 10)} = {chance_loss:.2f}); the budget was too small "
                                  f"on this machine at the time -- rerun with a larger --budget")
            if all(v < 0.05 for v in c["losses"].values()):
                reasons.append("every net fits the training set (loss < 0.05): there is no room left for "
                               "depth to make a difference")
            reason = _data_reason(config)
            if reason:
                reasons.append(reason)
            if not plain and c["outcome"] == "higher":
                start = (f"warms every net up linearly over only {config.recipe.warmup_steps} steps"
                         if config.recipe.warmup_steps else "starts every net at 0.1 with no warm-up")
                reasons.append("the start: He 2015 (§4.2) found lr 0.1 'slightly too large to start converging' "
                               f"for ResNet-110 and warmed it up at 0.01; this recipe {start}, which costs the "
                               "deepest nets most in a short run")
            if c["outcome"] == "diverged":
                reasons = ["the deeper net diverged under the shared recipe (lr too large for it)"]
        losses = ", ".join(f"{d}: {v:.3f}" for d, v in c["losses"].items())
        out.append(Assessment(key, f"{_loss_line(c)}; end-of-training loss by depth {losses}", status, reasons))
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


def assess_lesion(results: dict) -> Assessment:
    lesion = results.get("lesion")
    if not lesion:
        return Assessment("lesion", "not measured", "not measured")
    res = next((m for m in lesion["models"] if m["shortcut"] == "identity"), None)
    plain = next((m for m in lesion["models"] if m["shortcut"] == "none"), None)
    small = res is not None and res["mean_drop"] < LESION_SMALL
    collapse = plain is not None and plain["mean_lesioned_accuracy"] <= plain["chance"] + LESION_COLLAPSE_MARGIN
    status = "agrees" if small and collapse else ("partly" if small or collapse else "disagrees")
    weak = [m for m in (res, plain) if m is not None
            and m["baseline"]["accuracy"] - m["chance"] < LESION_INFORMATIVE]
    if weak:
        names = ", ".join(f"{m['model']} ({100 * m['baseline']['accuracy']:.1f}%)" for m in weak)
        return Assessment("lesion", _lesion_line(lesion) or "not measured", "inconclusive",
                          [f"{names} {'is' if len(weak) == 1 else 'are'} less than {100 * LESION_INFORMATIVE:.0f} "
                           f"points above chance ({100 * weak[0]['chance']:.0f}%): a barely trained net has little "
                           f"accuracy to lose, so neither a small nor a collapsing drop means much -- train longer "
                           f"(Veit lesioned fully trained nets)"])
    reasons = []
    if res is not None and not small:
        reasons.append(f"{res['model']} loses {100 * res['mean_drop']:.1f} points per deleted block: a briefly "
                       "trained ResNet's blocks may not yet make the small, ensemble-like corrections of Veit's "
                       "fully trained ResNet-110")
    if plain is not None and not collapse:
        reasons.append(f"{plain['model']} keeps {100 * plain['mean_lesioned_accuracy']:.1f}% on average (chance "
                       f"{100 * plain['chance']:.0f}%): Veit deleted single layers of a VGG net, here a block "
                       "is deleted only where it keeps its input's shape, and a shallow plain net's "
                       "blocks matter less")
    return Assessment("lesion", _lesion_line(lesion) or "not measured", status, reasons)


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


def assess(config: StudyConfig, results: dict) -> list[Assessment]:
    """Every claim of :data:`FINDINGS` of the parts that ran, with the measurement beside it."""
    out = []
    if "degradation" in config.parts:
        out += assess_degradation(config, results)
    if "gradients" in config.parts:
        out.append(assess_gradients(results))
    if "lesion" in config.parts:
        out.append(assess_lesion(results))
    if "landscape" in config.parts:
        out.append(assess_landscape(results))
    if "shattered" in config.parts:
        out.append(assess_shattered(config, results))
    return out
