"""Pre-LN vs post-LN vs no skip at initialisation: Xiong et al. 2020, "On Layer Normalization
in the Transformer Architecture", Theorem 1 and Fig. 3, measured on ``cifar_vit``.

Theorem 1 bounds the gradient of the last FFN layer's weight ``W^{2,L}`` at initialisation
(Xavier init): post-LN ``||dL/dW^{2,L}||_F <= O(d sqrt(ln d))``, independent of the depth L;
pre-LN ``<= O(d sqrt(ln d / L))``, shrinking like ``1/sqrt(L)``. Fig. 3 shows the per-layer
norms: post-LN's grow with the layer index, pre-LN's stay level.

What is measured: for each variant (pre, post, no skip), depth (``--depths``, default 6, 12,
24) and seed (``--seeds``, default 5), a ``cifar_vit`` of width ``--width`` (64; 2 heads, MLP
ratio 4) is initialised as the theorem assumes -- Xavier-uniform linear layers, zero biases
(``--init xavier``; ``--init timm`` keeps the model's own truncated-normal init, outside the
theorem's regime, reported without verdicts) -- and the gradient of the mean cross-entropy
over the same ``--images`` (64) CIFAR-10 training images is taken; the Frobenius norm of
``blocks.l.mlp.fc2.weight``'s gradient (``W^{2,l}``) is recorded for every layer l.

The rules, each of which can answer both ways (thresholds in
:mod:`skiplab.evidence.thresholds`, fixed before the run), over per-seed statistics with the
t interval of :func:`skiplab.evidence.seed_interval`:

* post-LN, last layer independent of L: the slope of ``log ||g_L||`` against ``log L``
  (least squares over the depths, one per seed): holds if its interval lies inside
  ``0 +- XIONG_SLOPE_MARGIN``, contradicted if it lies wholly outside, else undecided;
* pre-LN, last layer like ``1/sqrt(L)``: the same slope against ``-0.5 +- XIONG_SLOPE_MARGIN``;
* Fig. 3, post-LN grows with the layer index: ``log(||g_L|| / ||g_1||)`` at the deepest net:
  holds if its interval lies above ``log XIONG_LAYER_RATIO``, contradicted if below it;
* Fig. 3, pre-LN level across layers: the same log ratio: holds if inside
  ``+- log XIONG_LAYER_RATIO``, contradicted if wholly outside.

The no-skip nets have no claim in the paper: their numbers are reported, not judged.

    nice -n 10 python benchmarks/xiong2020_gradients.py --out docs/evidence/xiong2020
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skiplab.atomic import write_json
from skiplab.data import load_dataset
from skiplab.data.augment import normalize
from skiplab.evidence import seed_interval, thresholds
from skiplab.models import create_model

VARIANTS = {"pre": dict(norm_position="pre"), "post": dict(norm_position="post"),
            "noskip": dict(norm_position="pre", skip=False)}


def xavier_(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every linear layer (Xiong et al. §3.2)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def layer_gradients(variant: str, depth: int, seed: int, width: int, init: str,
                    x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """``||dL/dW^{2,l}||_F`` for l = 1..depth at initialisation."""
    torch.manual_seed(seed)
    model = create_model("cifar_vit", depth=depth, embed_dim=width, num_heads=max(1, width // 32),
                         **VARIANTS[variant])
    if init == "xavier":
        xavier_(model)
    model.train()
    for chunk in range(0, len(x), 32):
        loss = nn.functional.cross_entropy(model(x[chunk:chunk + 32]), y[chunk:chunk + 32],
                                           reduction="sum") / len(x)
        loss.backward()
    return [float(block.mlp.fc2.weight.grad.norm()) for block in model.blocks]


def slope(depths: list[int], values: list[float]) -> float:
    return float(np.polyfit(np.log(depths), np.log(values), 1)[0])


def judge(interval: tuple[float, float], low: float, high: float) -> str:
    """holds: the interval inside [low, high]; contradicted: wholly outside; else undecided."""
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no verdict (too few seeds)"
    if low <= lo and hi <= high:
        return "holds"
    if hi < low or lo > high:
        return "contradicted"
    return "undecided"


def verdicts(grads: dict, depths: list[int], seeds: list[int]) -> list[dict]:
    m = thresholds.XIONG_SLOPE_MARGIN
    r = math.log(thresholds.XIONG_LAYER_RATIO)
    deep = max(depths)
    out = []
    for variant, claim, centre in (("post", "last-layer gradient independent of L", 0.0),
                                   ("pre", "last-layer gradient like 1/sqrt(L)", -0.5)):
        values = [slope(depths, [grads[variant][str(d)][s][-1] for d in depths]) for s in seeds]
        ci = seed_interval(values)
        out.append(dict(claim=f"{variant}-LN: {claim} (Theorem 1)", statistic="slope of log ||g_L|| vs log L",
                        expected=centre, band=[centre - m, centre + m], per_seed=values,
                        mean=float(np.mean(values)), interval=ci, verdict=judge(ci, centre - m, centre + m)))
    for variant, claim, band in (("post", "gradient grows with the layer index", (r, math.inf)),
                                 ("pre", "gradient level across layers", (-r, r))):
        values = [math.log(grads[variant][str(deep)][s][-1] / grads[variant][str(deep)][s][0]) for s in seeds]
        ci = seed_interval(values)
        out.append(dict(claim=f"{variant}-LN: {claim} (Fig. 3), depth {deep}",
                        statistic="log(||g_L|| / ||g_1||)", band=list(band), per_seed=values,
                        mean=float(np.mean(values)), interval=ci, verdict=judge(ci, *band)))
    if len(seeds) < thresholds.MIN_SEEDS_FOR_VERDICT:
        for v in out:
            v["verdict"] = "no verdict (too few seeds)"
    return out


def plot(result: dict, out: Path) -> list[Path]:
    """Fig. 3's view: the per-layer gradient norm (mean over seeds) of each variant, one line
    per depth; one PNG per initialisation."""
    from skiplab.evidence.figures import DEPTH_STYLES, new_figure, save_figure
    paths = []
    for init, entry in result["runs"].items():
        fig = new_figure(10, 3.2)
        for i, variant in enumerate(VARIANTS):
            ax = fig.add_subplot(1, len(VARIANTS), i + 1)
            for k, depth in enumerate(result["depths"]):
                g = np.array(entry["gradients"][variant][str(depth)]).mean(0)
                ax.plot(range(1, depth + 1), g, DEPTH_STYLES[k % len(DEPTH_STYLES)], label=f"L = {depth}")
            ax.set_yscale("log")
            ax.set_title(f"{variant}{'-LN' if variant != 'noskip' else ' (pre-norm, no skip)'}")
            ax.set_xlabel("layer l")
            if i == 0:
                ax.set_ylabel(r"$\|\partial L / \partial W^{2,l}\|_F$ at init")
                ax.legend(fontsize=8)
        fig.suptitle(f"cifar_vit width {result['width']}, {init} init, mean of {len(result['seeds'])} seeds")
        paths.append(save_figure(fig, out / f"gradients_at_init_{init}.png"))
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/work/shared/data/cifar10-jpg")
    p.add_argument("--out", default="docs/evidence/xiong2020")
    p.add_argument("--depths", type=int, nargs="+", default=[6, 12, 24])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--init", nargs="+", default=["xavier", "timm"], choices=("xavier", "timm"))
    p.add_argument("--plot-only", action="store_true", help="redraw the figures from OUT's JSON")
    args = p.parse_args()
    out = Path(args.out)
    if args.plot_only:
        print(plot(json.loads((out / "gradients_at_init.json").read_text()), out))
        return
    torch.set_num_threads(1)
    train = load_dataset(f"cifar10:{args.data}", "train")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:args.images]
    x = normalize(train.images[pick].float() / 255, train.mean, train.std)
    y = train.labels[pick]
    seeds = list(range(args.seeds))
    result = dict(paper="Xiong et al. 2020, Theorem 1 and Fig. 3", model="cifar_vit", width=args.width,
                  depths=args.depths, seeds=seeds, images=args.images, data="CIFAR-10 train, fixed subset",
                  thresholds=dict(XIONG_SLOPE_MARGIN=thresholds.XIONG_SLOPE_MARGIN,
                                  XIONG_LAYER_RATIO=thresholds.XIONG_LAYER_RATIO,
                                  MIN_SEEDS_FOR_VERDICT=thresholds.MIN_SEEDS_FOR_VERDICT),
                  runs={})
    started = time.perf_counter()
    for init in args.init:
        grads = {v: {str(d): [layer_gradients(v, d, s, args.width, init, x, y) for s in seeds]
                     for d in args.depths} for v in VARIANTS}
        entry = dict(gradients=grads, in_regime=init == "xavier")
        if init == "xavier":
            entry["verdicts"] = verdicts(grads, args.depths, seeds)
        result["runs"][init] = entry
        print(f"init {init} ({time.perf_counter() - started:.0f} s)")
        for v in VARIANTS:
            for d in args.depths:
                g = np.array(grads[v][str(d)])
                print(f"  {v:6s} L={d:2d}: first {g[:, 0].mean():.3g}  last {g[:, -1].mean():.3g}")
        for verdict in entry.get("verdicts", []):
            lo, hi = verdict["interval"]
            print(f"  {verdict['claim']}: {verdict['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] -> {verdict['verdict']}")
    write_json(out / "gradients_at_init.json", result, indent=1)
    print(f"wrote {out / 'gradients_at_init.json'} and {plot(result, out)}")


if __name__ == "__main__":
    main()
