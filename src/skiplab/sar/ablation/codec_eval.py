"""The held-out rate-distortion evidence of ``skiplab ablate autoencoder --holdout site``.

After the runner has trained every (variant, fold, seed) run (:mod:`skiplab.sar.ablation.holdout`),
each run's ``best.pt`` codes the scenes of the site its fold held out, at every bit depth of
``rd_bits``, through the real latent file (:func:`skiplab.sar.rate_distortion.measure.rate_distortion`:
header and entropy-coded symbols counted, per-scene radiometry), and on the same scenes, in
the same normalised log domain:

- JPEG 2000 and JPEG rate-matched to the file's *measured* bpp (within 5 %);
- average pooling + bilinear at the latent's value count, quantised to the same bits;
- a constant image at the fold's training mean level (the "did not train" reference).

Each run's numbers are stored in the state as soon as they are measured, so ``--resume``
skips what is done. JPEG and JPEG 2000 at fixed reference rates on every scene give the
codecs' curves of the figure. The verdicts and the report are
:mod:`skiplab.sar.ablation.codec_report`'s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from ...evidence.thresholds import PLATEAU_FRACTION, PLATEAU_GAIN_DB
from ..rate_distortion.measure import REFERENCE_RATES, rate_distortion

MEASURES = ("psnr", "ssim", "bpp")
FAMILIES = ("model", "jpeg2000-matched", "jpeg-matched", "avgpool")


def plateau(val_psnr: list[float], fraction: float = PLATEAU_FRACTION, gain_db: float = PLATEAU_GAIN_DB) -> dict:
    """Whether a run reached its validation plateau: the best validation PSNR of the last
    ``fraction`` of its evaluations beats the best before them by less than ``gain_db``.
    Needs at least 4 evaluations (else ``reached`` is False: too few to tell)."""
    v = [float(x) for x in val_psnr]
    if len(v) < 4:
        return dict(reached=False, gain=float("nan"), evaluations=len(v))
    k = max(1, int(round(len(v) * fraction)))
    gain = max(v[-k:]) - max(v[:-k])
    return dict(reached=bool(gain < gain_db), gain=float(gain), evaluations=len(v))


def val_curve(run_dir: Path) -> list[float]:
    from .report import read_metrics

    return [float(r["val_psnr"]) for r in read_metrics(run_dir / "metrics.csv") if r.get("val_psnr")]


def evaluate_fold_run(checkpoint: Path, fold, bits, coder: str = "auto") -> dict:
    """Per-scene PSNR, SSIM and bpp of the run's codec and of the matched references at
    every ``bits``, and the constant image's PSNR, on ``fold``'s held-out scenes."""
    from ..model.checkpoint import load_autoencoder
    from .holdout import normalise_scene

    ae = load_autoencoder(checkpoint)
    points = rate_distortion([ae], fold.test, bits=tuple(bits), coder=coder, reference_rates=())
    out: dict = {"scenes": [t.name for t in fold.test], "bits": {}}
    for p in points:
        if p.family in FAMILIES:
            b = p.setting.split()[0]
            out["bits"].setdefault(b, {})[p.family] = {k: p.values[k] for k in MEASURES if k in p.values}
    level = float(fold.train.tiles.mean())
    out["constant"] = [
        float(10 * np.log10(1.0 / np.mean((normalise_scene(t.speckled) - level) ** 2))) for t in fold.test
    ]
    return out


def reference_curves(folds, log: Callable[[str], None] = print) -> dict:
    """JPEG and JPEG 2000 at :data:`REFERENCE_RATES` on every held-out scene: mean bpp, PSNR
    and SSIM per rate (the codecs' curves)."""
    tiles = [t for f in folds for t in f.test]
    points = rate_distortion([], tiles, bits=(8,), reference_rates=REFERENCE_RATES)
    curves: dict = {}
    for p in points:
        if p.family in ("jpeg", "jpeg2000"):
            curves.setdefault(p.family, []).append({k: p.mean(k) for k in MEASURES})
    log(f"reference codecs measured on {len(tiles)} scenes")
    return curves


def run_holdout(runner, ablation, command: str, log: Callable[[str], None] = print):
    """Train every run, evaluate each on its held-out site (resumable), write the report."""
    from .experiment import AblationResult, fold_key, run_name
    from .codec_report import write_codec_report

    c, state = ablation.config, runner.state
    folds = ablation.folds
    start = time.perf_counter()
    for f in folds:
        log(f.description)
    runner.train()
    t0 = time.perf_counter()
    evaluations = state.data.setdefault("holdout", {})
    evaluated = False
    for v in c.variants:
        for f in folds:
            for s in range(c.seeds):
                name = run_name(fold_key(v, f.index), s)
                if name in evaluations:
                    continue
                run_dir = runner.dir / "runs" / name
                result = evaluate_fold_run(run_dir / "checkpoints" / "best.pt", f, c.rd_bits)
                result["plateau"] = plateau(val_curve(run_dir))
                evaluations[name] = result
                evaluated = True
                state.save()
                log(f"evaluated {name} on {f.test_site}")
    if "reference_curves" not in state.data:
        state.data["reference_curves"] = reference_curves(folds, log)
        evaluated = True
        state.save()
    if evaluated:  # a resume that only rewrites the report keeps the measured time
        state.data["timings"]["evaluation"] = round(time.perf_counter() - t0, 1)
    md, html, verdict, rows = write_codec_report(
        dict(
            config=c,
            folds=[
                dict(index=f.index, site=f.test_site, description=f.description, scenes=[t.name for t in f.test])
                for f in folds
            ],
            evaluations=evaluations,
            curves=state.data["reference_curves"],
            steps=state.steps,
            directory=runner.dir,
            command=command,
            threads=runner.threads,
            timings=dict(state.data["timings"]),
            val_curves={name: val_curve(runner.dir / "runs" / name) for name in evaluations},
        )
    )
    state.data["results"] = {"rows": rows, "verdict": verdict}
    state.add_time("total", time.perf_counter() - start)
    state.finish()
    return AblationResult(runner.dir, md, html, verdict, rows)


__all__ = ["evaluate_fold_run", "plateau", "reference_curves", "run_holdout", "val_curve"]
