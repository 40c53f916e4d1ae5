"""Per-layer gradient norms at initialisation: Xiong et al. 2020, Theorem 1 and Fig. 3.

Theorem 1 bounds the gradient of the last FFN layer's weight ``W^{2,L}`` at initialisation
(Xavier init): post-LN ``||dL/dW^{2,L}||_F <= O(d sqrt(ln d))``, independent of the depth L;
pre-LN ``<= O(d sqrt(ln d / L))``, shrinking like ``1/sqrt(L)``. Fig. 3 shows the per-layer
norms: post-LN's grow with the layer index, pre-LN's stay level.

For each init (``xavier``: the theorem's; ``timm``: the model's own truncated normal,
outside the theorem's regime), variant, depth and seed, a ``cifar_vit`` is built with
``torch.manual_seed(seed)`` and the gradient of the mean cross-entropy over the same
``gradient_images`` fixed training images (a permutation seeded with 0, normalised with the
training statistics) is taken in training mode, fp32; the Frobenius norm of every
``blocks.l.mlp.fc2.weight`` gradient (``W^{2,l}``) is one cell of the results. The cells are
written as they are measured (``results/gradients.json``), so an interrupted study resumes
from the next cell; kept cells (:mod:`.kept`) are read, not measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ...atomic import write_json
from ...data.augment import normalize
from ...models import create_model
from ..progress import bar
from .config import LayerNormConfig

CHUNK = 32  # images per backward pass (the gradient is summed over the chunks)


def gradient_images(train, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed ``n`` training images (normalised) and labels of the measurement."""
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]
    return normalize(train.images[pick].float() / 255, train.mean, train.std), train.labels[pick]


def layer_gradients(
    config: LayerNormConfig,
    variant: str,
    depth: int,
    seed: int,
    init: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int = 10,
) -> list[float]:
    """``||dL/dW^{2,l}||_F`` for l = 1..depth at initialisation."""
    torch.manual_seed(seed)
    model = create_model(
        "cifar_vit", num_classes=num_classes, **config.model_kwargs(variant, depth, init, int(x.shape[-1]))
    )
    model.train()
    for i in range(0, len(x), CHUNK):
        loss = nn.functional.cross_entropy(model(x[i : i + CHUNK]), y[i : i + CHUNK], reduction="sum") / len(x)
        loss.backward()
    return [float(block.mlp.fc2.weight.grad.norm()) for block in model.blocks]


def cells(config: LayerNormConfig) -> list[tuple[str, str, int, int]]:
    """Every (init, variant, depth, seed) the study measures, in measuring order."""
    return [
        (init, v, d, s)
        for init in config.inits
        for v in config.variants
        for d in config.gradient_depths
        for s in config.gradient_seed_list
    ]


def measure(config: LayerNormConfig, train, path: Path, kept: dict, log: Callable[[str], None] = print) -> dict:
    """Every cell's per-layer norms, ``{init: {variant: {depth: {seed: [norms]}}}}``: read from
    ``path`` (an interrupted measurement), else from ``kept``, else measured (and ``path``
    rewritten after each)."""
    done: dict = json.loads(path.read_text()) if path.is_file() else {}
    todo = []
    reused = 0
    for init, v, d, s in cells(config):
        cell = done.get(init, {}).get(v, {}).get(str(d), {})
        if str(s) in cell:
            continue
        norms = kept.get(init, {}).get(v, {}).get(str(d), {}).get(str(s))
        if norms is not None and len(norms) == d:
            done.setdefault(init, {}).setdefault(v, {}).setdefault(str(d), {})[str(s)] = norms
            reused += 1
        else:
            todo.append((init, v, d, s))
    if reused:
        log(f"gradients: {reused} cell(s) reused from the kept measurement, not measured")
    if todo:
        x, y = gradient_images(train, config.gradient_images)
        log(f"gradients: measuring {len(todo)} cell(s) at initialisation")
        progress = bar(len(todo), "gradients at init")
        try:
            for init, v, d, s in todo:
                norms = layer_gradients(config, v, d, s, init, x, y, len(train.classes))
                done.setdefault(init, {}).setdefault(v, {}).setdefault(str(d), {})[str(s)] = norms
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(path, done, indent=1)
                progress.update(1)
        finally:
            progress.close()
    elif reused or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, done, indent=1)
    return done


def per_seed(norms: dict, config: LayerNormConfig, init: str, variant: str, depth: int) -> list[list[float]]:
    """The cells of one (init, variant, depth) as a list over the seeds."""
    return [norms[init][variant][str(depth)][str(s)] for s in config.gradient_seed_list]


def plot(norms: dict, config: LayerNormConfig, out: Path) -> list[Path]:
    """Fig. 3's view: the per-layer gradient norm (mean over seeds) of each variant, one line
    per depth; one PNG per initialisation, ``gradients_at_init_<init>.png``."""
    from ...evidence.figures import DEPTH_STYLES, new_figure, save_figure

    paths = []
    for init in config.inits:
        fig = new_figure(10, 3.2)
        for i, variant in enumerate(config.variants):
            ax = fig.add_subplot(1, len(config.variants), i + 1)
            for k, depth in enumerate(config.gradient_depths):
                g = np.array(per_seed(norms, config, init, variant, depth)).mean(0)
                ax.plot(range(1, depth + 1), g, DEPTH_STYLES[k % len(DEPTH_STYLES)], label=f"L = {depth}")
            ax.set_yscale("log")
            ax.set_title(f"{variant}{'-LN' if variant != 'noskip' else ' (pre-norm, no skip)'}")
            ax.set_xlabel("layer l")
            if i == 0:
                ax.set_ylabel(r"$\|\partial L / \partial W^{2,l}\|_F$ at init")
                ax.legend(fontsize=8)
        fig.suptitle(f"cifar_vit width {config.width}, {init} init, mean of {config.gradient_seeds} seeds")
        paths.append(save_figure(fig, out / f"gradients_at_init_{init}.png"))
    return paths


def gradients_file(norms: dict, config: LayerNormConfig, verdicts: list[dict]) -> dict:
    """The measurement in the format of ``gradients_at_init.json`` (which :mod:`.kept` reads)."""
    from .config import gradient_setup

    runs = {}
    for init in config.inits:
        grads = {
            v: {str(d): per_seed(norms, config, init, v, d) for d in config.gradient_depths} for v in config.variants
        }
        runs[init] = dict(gradients=grads, in_regime=init == "xavier")
        if init == "xavier":
            runs[init]["verdicts"] = verdicts
    return dict(gradient_setup(config), runs=runs)
