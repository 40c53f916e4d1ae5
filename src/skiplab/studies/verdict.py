"""The study's verdict in numbers, and each finding set beside the published one.

:func:`compute_verdict` gives the verdict lines computed from the measurements (never from
expectations): He 2015's degradation as the interaction of depth and family with its
interval, then the lesions, gradient flow, loss landscape and shattered gradients, each a
paired difference or fitted quantity with its interval. :func:`assess` says for each claim of
:mod:`~skiplab.studies.published` whether the measurement agrees -- only inside the
paper's regime (:mod:`~skiplab.studies.regime`); outside it the status is "not in the
paper's regime" and the reasons say why, in numbers. A ``--quick`` smoke run gets no
agree/disagree at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..evidence import thresholds as T
from ..evidence.stats import interval_text, sign
from .config import StudyConfig
from .regime import enough_seeds, lesion_gate, smoke_run

NOT_IN_REGIME = "not in the paper's regime"


@dataclass
class Assessment:
    key: str  # FINDINGS key
    measured: str  # one line, with numbers
    status: str  # "agrees", "disagrees", "unresolved", "partly", NOT_IN_REGIME, "not measured"
    reasons: list[str] = field(default_factory=list)


def gated(key: str, measured: str, reasons: list[str]) -> Assessment:
    return Assessment(key, measured, NOT_IN_REGIME, reasons)


def _lesion_line(lesion: dict) -> Optional[str]:
    res = next((m for m in lesion["models"] if m["shortcut"] == "identity"), None)
    plain = next((m for m in lesion["models"] if m["shortcut"] == "none"), None)
    parts = []
    if res is not None:
        parts.append(
            f"deleting one block of {res['model']} costs {100 * res['mean_drop']:.1f} points of "
            f"test accuracy on average (worst {100 * res['max_drop']:.1f})"
        )
    if plain is not None:
        parts.append(
            f"deleting one layer pair of {plain['model']} costs {100 * plain['mean_drop']:.1f} "
            f"(worst {100 * plain['max_drop']:.1f}; chance is {100 * plain['chance']:.0f}%)"
        )
    return "; ".join(parts) or None


def slope_text(ci: dict) -> str:
    return interval_text(ci, 1.0, "", 3)


def _gradient_line(grads: dict) -> Optional[str]:
    """The plain − residual slope difference per stage, with BatchNorm."""
    rows = [v for v in grads.get("verdicts", []) if v.get("norm") and "difference" in v]
    if not rows:
        return None
    v = rows[0]
    stages = "; ".join(
        f"{'at init' if r['stage'] == 'init' else r['stage'] if r['stage'] != 'trained' else 'trained'}: "
        f"{slope_text(r['difference'])}"
        for r in rows
    )
    return (
        f"fitted log10-slope per block (towards the output) of the per-element RMS of dL/dx, "
        f"{v['plain_model']} minus {v['residual_model']}, over {v['difference']['seeds']} seeds x "
        f"{v['difference']['images']} batches -- {stages}"
    )


def degradation_line(deg: dict, split: str = "train") -> Optional[str]:
    c = deg.get(f"{split}_contrasts")
    if not c:
        return None
    p, r, s, d = deg["plain"], deg["residual"], deg["shallow"], deg["deep"]
    what = "training error (eval mode)" if split == "train" else "test error"
    return (
        f"{what}: depth {s}->{d} costs {p} nets {interval_text(c[p])} and {r} nets "
        f"{interval_text(c[r])}; interaction (plain minus residual) {interval_text(c['interaction'])}, "
        f"over {c['interaction']['seeds']} seeds"
    )


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
        found = assess_degradation(config, results)
        lines.append(
            f"degradation (He 2015): {degradation_line(deg)} -- {status_of(found[0])} "
            f"[deeper ResNets train better or no worse: {status_of(found[2])}]"
        )
    if "lesion" in results:
        line = _lesion_line(results["lesion"])
        if line:
            status = status_of(assess_lesion(config, results))
            lines.append(f"lesions (Veit 2016): {line} -- {status}")
    for key, title, judge in (
        ("gradients", "gradient flow (He 2015 §4.1)", assess_gradients),
        ("landscape", "loss landscape (Li 2018)", assess_landscape),
        ("shattered", "shattered gradients (Balduzzi 2017)", assess_shattered),
    ):
        if key in results:
            a = judge(config, results)
            if a.status != "not measured":
                lines.append(f"{title}: {a.measured} -- {status_of(a)}")
    return lines


# -- beside the papers -----------------------------------------------------------------------
def _budget_reason(results: dict) -> str:
    steps = results.get("degradation", {}).get("steps")
    return (
        f"the budget: {steps} steps per net against He 2015's 64,000 -- the deeper nets may not have "
        f"had the time to pull ahead (or fall behind) as they do over a full schedule"
        if steps
        else "the short training budget"
    )


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
    regime = {k: deg.get("regime") or [] for k in keys}
    regime["degradation_residual"] = deg.get("residual_regime", regime["degradation_residual"])
    want = {"degradation": "positive", "degradation_plain": "positive", "degradation_residual": "negative"}
    ci = {"degradation": c["interaction"], "degradation_plain": c[p], "degradation_residual": c[r]}
    out = []
    for k in keys:
        if regime[k]:
            out.append(gated(k, measured[k], regime[k]))
            continue
        got = sign(ci[k])
        if got == "unresolved":
            out.append(
                Assessment(
                    k,
                    measured[k],
                    "unresolved",
                    [
                        f"the {100 * ci[k]['confidence']:.0f} % interval contains 0: these seeds and "
                        f"images cannot tell the sign (more --seeds, or a longer run)"
                    ],
                )
            )
        else:
            out.append(
                Assessment(
                    k,
                    measured[k],
                    "agrees" if got == want[k] else "disagrees",
                    [] if got == want[k] else [_budget_reason(results)],
                )
            )
    return out


def judge_interval(
    key: str, measured: str, ci: dict, margin: float = 0.0, want: str = "positive", why_not: Optional[list[str]] = None
) -> Assessment:
    """agrees / disagrees / unresolved from where ``ci`` lies against ±``margin``."""
    got = sign(ci, margin)
    if got == "unresolved":
        return Assessment(
            key,
            measured,
            "unresolved",
            [
                f"the {100 * ci['confidence']:.0f} % interval reaches into [-{margin:g}, +{margin:g}]: "
                f"these seeds cannot tell (more --seeds, or a longer run)"
                if margin
                else f"the {100 * ci['confidence']:.0f} % interval contains 0: these seeds cannot tell"
            ],
        )
    return Assessment(
        key, measured, "agrees" if got == want else "disagrees", [] if got == want else list(why_not or [])
    )


def gradient_stage(v: dict, band: float) -> str:
    """One stage against the two-sided band: "vanishing" / "exploding" when the plain net's
    own slope interval, or that of its difference from the residual net, lies wholly above
    +``band`` / below -``band``; "healthy" when both lie inside (-band, +band); else
    "unresolved"."""
    cis = (v["plain"], v["difference"])
    if any(c["low"] > band for c in cis):
        return "vanishing"
    if any(c["high"] < -band for c in cis):
        return "exploding"
    if all(-band < c["low"] and c["high"] < band for c in cis):
        return "healthy"
    return "unresolved"


def assess_gradients(config: StudyConfig, results: dict) -> Assessment:
    """He 2015 §4.1 ("healthy norms with BN") against a two-sided band: at every stage with
    BatchNorm the plain net's gradient neither shrinks nor grows towards the input by more
    than ``GRADIENT_SLOPE_BAND`` log10 per block, on its own and beyond the residual net's
    (:func:`gradient_stage`). A stage outside the band on either side disagrees."""
    grads = results.get("gradients")
    line = _gradient_line(grads) if grads else None
    if line is None:
        return Assessment("gradients", "not measured", "not measured")
    if grads.get("regime"):
        return gated("gradients", line, grads["regime"])
    band = grads["slope_band"]
    rows = [v for v in grads["verdicts"] if v["norm"]]
    found = {v["stage"]: gradient_stage(v, band) for v in rows}
    by = {k: [st for st, got in found.items() if got == k] for k in ("vanishing", "exploding", "unresolved")}
    reasons = []
    if by["vanishing"]:
        reasons.append(
            f"vanishing at {', '.join(by['vanishing'])}: the plain net's gradient shrinks towards the "
            f"input by more than {band:g} log10 per block (on its own or beyond the residual net): "
            f"the vanishing-gradient account"
        )
    if by["exploding"]:
        reasons.append(
            f"exploding at {', '.join(by['exploding'])}: the plain net's gradient grows towards the "
            f"input by more than {band:g} log10 per block (on its own or beyond the residual net): "
            f"BatchNorm's gradient explosion in deep plain nets (Yang et al. 2019), not healthy norms"
        )
    if reasons:
        return Assessment("gradients", line, "disagrees", reasons)
    if not by["unresolved"]:
        return Assessment("gradients", line, "agrees")
    return Assessment(
        "gradients",
        line,
        "unresolved",
        [f"at {', '.join(by['unresolved'])} an interval reaches beyond ±{band:g}: these seeds and batches cannot tell"],
    )


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
            parts.append(
                f"{m['model']} keeps {interval_text(m['retained_single'], 1.0, '', 2)} of its above-chance "
                f"accuracy after one deletion"
            )
    measured = "; ".join(parts) or line
    models = [m for m in (res, plain) if m is not None]
    reasons = (
        smoke_run(config.quick)
        + enough_seeds(config.seeds)
        + lesion_gate({m["model"]: m["baseline"]["accuracy"] for m in models}, models[0]["chance"] if models else 0.1)
    )
    if reasons:
        return gated("lesion", measured, reasons)
    small = res is not None and res["retained_single"]["low"] > T.LESION_RETAINED_SMALL
    not_small = res is not None and res["retained_single"]["high"] < T.LESION_RETAINED_SMALL
    collapse = plain is not None and plain["retained_single"]["high"] < T.LESION_RETAINED_COLLAPSE
    no_collapse = plain is not None and plain["retained_single"]["low"] > T.LESION_RETAINED_COLLAPSE
    if small and collapse:
        return Assessment("lesion", measured, "agrees")
    if not_small and no_collapse:
        return Assessment(
            "lesion",
            measured,
            "disagrees",
            [
                "Veit lesioned fully trained 110-layer nets and single layers of a VGG net; here a "
                "block of a briefly trained, shallower net"
            ],
        )
    if small or collapse:
        return Assessment(
            "lesion",
            measured,
            "partly",
            [
                f"one of the two holds: ResNet retains > {T.LESION_RETAINED_SMALL:g} "
                f"({'yes' if small else 'no'}), plain retains < {T.LESION_RETAINED_COLLAPSE:g} "
                f"({'yes' if collapse else 'no'})"
            ],
        )
    return Assessment("lesion", measured, "unresolved", ["the intervals straddle the thresholds"])


def assess_landscape(config: StudyConfig, results: dict) -> Assessment:
    """Li 2018's quantitative check: |λmin/λmax| at the trained weights is larger for the plain
    net than for the residual one -- the paired difference over seeds above the margin."""
    land = results.get("landscape")
    if not land:
        return Assessment("landscape", "not measured", "not measured")
    curv = {c["shortcut"]: c for c in land.get("curvature", [])}
    nets = "; ".join(f"{c['model']} {c['ratio'][0]:.3g} ± {c['ratio'][1]:.2g}" for c in curv.values())
    contours = "; ".join(
        f"{m['model']} {m['local_minima']} local minima, border {m['border_rise']:.3g}x the centre"
        for m in land["models"]
    )
    c = land.get("contrast")
    measured = (
        f"|λmin/λmax| of the Hessian at the trained weights (mean ± sd over seeds) {nets}"
        + (f"; plain minus residual {interval_text(c, 1.0, '', None)}" if c else "")
        + f" (contours, qualitative only: {contours})"
    )
    if c is None:
        return Assessment("landscape", measured, "not measured", ["needs a plain and a residual family"])
    if land.get("regime") is None or land["regime"]:
        return gated("landscape", measured, land.get("regime") or ["measured before intervals were computed"])
    return judge_interval(
        "landscape",
        measured,
        c,
        land["margin"],
        "positive",
        [
            f"the residual net's Hessian is the less convex one at its trained weights, on "
            f"{land['images']} training images"
        ],
    )


def assess_shattered(config: StudyConfig, results: dict) -> Assessment:
    """Balduzzi 2017: depth decorrelates a plain net's input gradients faster than a residual
    net's -- the paired difference of the fitted per-layer rates a (R(1) ∝ 2^(−aL)) above 0."""
    sh = results.get("shattered")
    if not sh:
        return Assessment("shattered", "not measured", "not measured")
    iv, p, r = sh.get("intervals"), sh.get("plain"), sh.get("residual")
    if not iv:
        return Assessment(
            "shattered", sh.get("line", "not measured"), "not measured", ["needs a plain and a residual family"]
        )
    rate = lambda ci: interval_text(ci, 1.0, "", 3, "fewer than two depths above the white-noise floor")  # noqa: E731
    measured = (
        f"centred R(1) at init, fitted per-layer rate a in R(1) ∝ 2^(-aL): {p} {rate(iv[f'{p}_per_layer_log2'])} "
        f"(Balduzzi, plain: 1), {r} {rate(iv[f'{r}_per_layer_log2'])}; power b in R(1) ∝ L^(-b): {r} "
        f"{rate(iv[f'{r}_power'])} (Balduzzi, ResNets: 0.5); a({p}) - a({r}) {rate(iv['difference'])}"
    )
    if sh.get("regime") is None or sh["regime"]:
        return gated("shattered", measured, sh.get("regime") or ["measured before intervals were computed"])
    return judge_interval(
        "shattered",
        measured,
        iv["difference"],
        0.0,
        "positive",
        [
            "images are 3072-dimensional inputs to convolutional nets, where Balduzzi's Fig. 1 "
            "uses 1-D inputs to fully-connected nets (the control above shows the estimator works)"
        ],
    )


def assess(config: StudyConfig, results: dict) -> list[Assessment]:
    """Every claim of :data:`FINDINGS` of the parts that ran, with the measurement beside it."""
    out = []
    if "degradation" in config.parts:
        out += assess_degradation(config, results)
    if "gradients" in config.parts:
        out.append(assess_gradients(config, results))
    if "lesion" in config.parts:
        out.append(assess_lesion(config, results))
    if "landscape" in config.parts:
        out.append(assess_landscape(config, results))
    if "shattered" in config.parts:
        out.append(assess_shattered(config, results))
    return out
