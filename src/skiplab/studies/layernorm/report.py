"""The layernorm study's report: ``report.md`` and a self-contained ``report.html``
(:class:`~skiplab.evidence.document.Document`), with its figures: the per-layer gradient
norms at initialisation (Fig. 3's view, one PNG per init) and the training loss with and
without warm-up (Fig. 2's view)."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import numpy as np

from ...evidence import thresholds as T
from ...evidence.document import Document
from .config import LayerNormConfig
from .verdict import trained_gate

LABELS = {"pre": "pre-LN", "post": "post-LN", "noskip": "no skip"}
COLOURS = {"pre": "#1f77b4", "post": "#d62728", "noskip": "#7f7f7f"}


def plot_training(records: list[dict], config: LayerNormConfig, path: Path) -> Path:
    """The training loss per step (mean over seeds, smoothed) of every variant, with the
    warm-up (solid) and without it (dashed); one panel per depth."""
    from ...evidence.figures import new_figure, save_figure, smooth

    fig = new_figure(4.2 * len(config.depths), 3.2)
    for i, depth in enumerate(config.depths):
        ax = fig.add_subplot(1, len(config.depths), i + 1)
        for v in config.variants:
            for warmup in (True, False):
                curves = [
                    r["losses"]
                    for r in records
                    if (r["variant"], r["depth"], r["warmup"]) == (v, depth, warmup) and r["losses"]
                ]
                if not curves:
                    continue
                n = min(map(len, curves))
                mean = np.mean([c[:n] for c in curves], axis=0)
                ax.plot(
                    range(1, n + 1),
                    smooth(mean, max(1, n // 20)),
                    "-" if warmup else "--",
                    color=COLOURS[v],
                    label=f"{LABELS[v]}, warm-up {'on' if warmup else 'off'}",
                )
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("step")
        if i == 0:
            ax.set_ylabel("training loss (mean over seeds)")
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def _interval(v: dict) -> str:
    if "interval" not in v:
        return ""
    lo, hi = v["interval"]
    return f"{v['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _band(band: list) -> str:
    lo, hi = band
    if math.isinf(hi):
        return f"above {lo:+.3f}"
    if math.isinf(lo):
        return f"below {hi:+.3f}"
    return f"[{lo:+.3f}, {hi:+.3f}]"


def command_line(c: LayerNormConfig, directory: Path) -> str:
    """The command that runs this study again (its resolved options are ``config.yaml``)."""
    if c.quick:
        return shlex.join(["skiplab", "study", "--parts", "layernorm", "--quick", "--data", c.data, "--out", "NEW_DIR"])
    return shlex.join(["skiplab", "study", "--config", shown(directory / "config.yaml"), "--out", "NEW_DIR"])


def shown(path: str | Path) -> str:
    """``path`` relative to the working directory where it lies below it (a report names no
    machine's absolute paths it does not need)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _setup_rows(c: LayerNormConfig, state: dict, results: dict) -> list[list]:
    training = results.get("training", {})
    rows = [
        ["data", c.data],
        [
            "model",
            f"cifar_vit, width {c.width}, {c.num_heads} head(s), MLP ratio 4, 4x4 patches, Xavier init in training",
        ],
        ["variants", ", ".join(LABELS[v] for v in c.variants)],
    ]
    if "gradients" in c.measure:
        rows += [
            [
                "gradients at init",
                f"depths {', '.join(map(str, c.gradient_depths))}; seeds "
                f"{', '.join(map(str, c.gradient_seed_list))}; {c.gradient_images} fixed "
                f"training images; inits {', '.join(c.inits)}",
            ]
        ]
    if "training" in c.measure:
        rows += [
            [
                "training",
                f"depths {', '.join(map(str, c.depths))}; seeds {', '.join(map(str, c.seed_list))}; "
                f"{c.steps} steps, batch {c.batch_size}, AdamW (0.9, 0.98) lr {c.lr:g}, wd 1e-4, "
                f"cosine; warm-up linear from 1 % over the first 25 % of the steps",
            ],
            [
                "data subsets",
                f"train {c.train_images or 'all'} images (crop + flip), test {c.test_images or 'all'} "
                f"images (top-1 after the last step)",
            ],
            [
                "runs",
                f"{training.get('trained', 0)} trained here, {training.get('kept', 0)} reused from "
                f"{shown(c.kept) if c.kept else '-'}",
            ],
        ]
    rows += [
        ["precision", c.precision],
        ["threads", state.get("threads")],
        ["wall-clock", ", ".join(f"{k} {v:.0f} s" for k, v in state.get("timings", {}).items())],
    ]
    return rows


def write_report(runner, results: dict, verdict: list[str], figures: list[Path]) -> tuple[Path, Path]:
    c: LayerNormConfig = runner.experiment.config
    directory = runner.dir
    doc = Document("Pre-LN vs post-LN vs no skip (Xiong et al. 2020)")
    doc.paragraph(
        'Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture": Theorem 1 '
        "bounds the last FFN layer's gradient at initialisation (Xavier init) by O(d sqrt(ln d)) for "
        "post-LN, independent of the depth L, and by O(d sqrt(ln d / L)) for pre-LN; Fig. 3 shows "
        "post-LN's per-layer gradient growing with the layer index and pre-LN's level; §3.3 / Fig. 2: "
        "post-LN needs the learning-rate warm-up, pre-LN trains without it."
    )
    if c.quick:
        doc.paragraph("**SMOKE RUN (--quick)**: it checks that everything runs; no claim is judged.")
    doc.heading("Verdicts")
    doc.items(verdict or ["nothing measured"], css="verdict")
    doc.paragraph(
        f"Rules and thresholds fixed before the runs (`skiplab.evidence.thresholds`): slope margin "
        f"XIONG_SLOPE_MARGIN = {T.XIONG_SLOPE_MARGIN}, layer ratio XIONG_LAYER_RATIO = {T.XIONG_LAYER_RATIO}, "
        f"loss margin XIONG_LOSS_MARGIN = {T.XIONG_LOSS_MARGIN} nats, trained gate "
        f"{100 * trained_gate(runner.experiment.num_classes):.0f} % top-1 of the warm-up runs, at least "
        f"{T.MIN_SEEDS_FOR_VERDICT} seeds; 95 % t intervals over seeds (`skiplab.evidence`). The gradient "
        f"rules are judged at Xavier init only (the theorem's assumption); the no-skip nets have no claim "
        f"in the paper and are reported, not judged."
    )
    doc.heading("Set-up")
    doc.table(["", ""], _setup_rows(c, runner.state.data, results))
    doc.code(command_line(c, directory))
    grads = results.get("gradients")
    if grads:
        doc.heading("Gradient norms at initialisation (Theorem 1, Fig. 3)")
        for init, by_variant in grads["means"].items():
            doc.paragraph(
                f"{init} init{'' if init == 'xavier' else ' (outside the theorem: no verdicts)'}: "
                f"mean over the seeds of the first / last layer's ||dL/dW^2||_F"
            )
            doc.table(
                ["variant"] + [f"L = {d}: first / last" for d in c.gradient_depths],
                [
                    [LABELS[v]] + [f"{m[str(d)]['first']:.3g} / {m[str(d)]['last']:.3g}" for d in c.gradient_depths]
                    for v, m in by_variant.items()
                ],
            )
        if grads["verdicts"]:
            doc.table(
                ["claim", "statistic", "expected", "per seed", "mean [95 % interval]", "verdict"],
                [
                    [
                        v["claim"],
                        v["statistic"],
                        _band(v["band"]),
                        ", ".join(f"{x:+.2f}" for x in v["per_seed"]),
                        _interval(v),
                        v["verdict"],
                    ]
                    for v in grads["verdicts"]
                ],
            )
        for path in figures:
            if path.name.startswith("gradients_at_init_"):
                doc.image(path, f"per-layer gradient norm at initialisation, {path.stem.rsplit('_', 1)[-1]} init")
    training = results.get("training")
    if training:
        doc.heading("Training with and without warm-up (§3.3, Fig. 2)")
        doc.table(
            ["variant", "depth", "warm-up", "seeds", "final loss, per seed", "top-1, per seed"],
            [
                [
                    LABELS[t["variant"]],
                    t["depth"],
                    "on" if t["warmup"] else "off",
                    len(t["seeds"]),
                    " / ".join(f"{x:.3f}" for x in t["final_loss"]),
                    " / ".join(f"{100 * a:.1f} %" for a in t["top1"]),
                ]
                for t in training["table"].values()
            ],
        )
        doc.table(
            [
                "claim",
                "final loss without - with warm-up, per seed",
                "mean [95 % interval]",
                "warm-up top-1",
                "verdict",
            ],
            [
                [
                    v["claim"],
                    ", ".join(f"{x:+.3f}" for x in v.get("per_seed", [])),
                    _interval(v),
                    f"{100 * v['warmup_top1']:.1f} %" if "warmup_top1" in v else "",
                    v["verdict"],
                ]
                for v in training["verdicts"]
            ],
        )
        for path in figures:
            if path.name == "training_loss.png":
                doc.image(path, "training loss with (solid) and without (dashed) warm-up, mean over seeds")
    md, html = directory / "report.md", directory / "report.html"
    from ...atomic import write_text

    write_text(md, doc.markdown())
    write_text(html, doc.html())
    return md, html
