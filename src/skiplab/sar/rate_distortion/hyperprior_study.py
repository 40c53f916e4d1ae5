"""Held-out rate-distortion and radiometry of the hyperprior codec's transform families
(GDN, residual, plain) against JPEG 2000, JPEG and average pooling + bilinear, by site (the
evidence of docs/studies/sar).

The six development scenes are three channels (HH, HV, VV) of two sites; the unit of
replication is the site. Each fold trains one codec per variant on one site's scenes
(``skiplab train --task compress``; :mod:`.hyperprior_ablation` trains them all) and is scored
here on the other site's scenes, every scene normalised by its own 0.5-99.5 % log-intensity
(the domain every codec codes):

- the references, once per fold's scene whatever the variants: JPEG 2000 (OpenJPEG) and JPEG
  (libjpeg) of the same 8-bit image at reference rates (their curves), average pooling +
  bilinear at pooling factors 4-16 (6-bit values, entropy-coded), and the input's ENL;
- each variant at each setting (:mod:`.hyperprior_runs`: ``vr:L`` a level of a variable-rate
  run, ``LAMBDA[@STEP]`` a fixed-rate run): the scene written as a ``.sarl`` file (everything
  counted), decoded; PSNR and SSIM of its log-domain output (before the radiometric gain)
  against the input; JPEG 2000 and JPEG rate-matched to its measured bpp;
- radiometry of each output in intensity: the mean ratio (output / input mean), ENL on the
  input's most homogeneous windows, the ratio image input / output (mean, median).

A variant whose run is missing (or has no checkpoint yet) on a fold is reported as not
trained there. The summary is :mod:`.hyperprior_summary`'s (curves per site, Bjøntegaard
deltas with their interval over sites), the report and figure :mod:`.hyperprior_report`'s.

    python -m skiplab.sar.rate_distortion.hyperprior_study --runs RUNS --data FOLDS \\
        --out docs/studies/sar --transforms gdn,residual,plain --settings vr:0,vr:1,vr:2,vr:3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ...atomic import write_text
from ...errors import SkiplabError
from ..codec.sarl import decode_bytes, encode_scene
from ..codec.shipped import Codec, load_codec
from ..training.compress_task import normalised_scene
from ..training.metrics import enl, homogeneous_windows, psnr, ratio_statistics, ssim_per_image
from .codecs import avgpool_codec, jpeg2000_at, jpeg_at
from .hyperprior_report import figure, report
from .hyperprior_runs import TRANSFORMS, RunState, Setting, parse_setting, parse_settings, parse_transforms, run_state
from .hyperprior_summary import summarise

REFERENCE_RATES = (0.04, 0.07, 0.1, 0.15, 0.22, 0.32, 0.45, 0.65)
JPEG_RATES = (0.25, 0.32, 0.45, 0.65, 0.9)
POOL_FACTORS = (16, 11, 8, 6, 4)
POOL_BITS = 6
FOLDS = ("sf", "tsukuba")


class StudyInputError(SkiplabError, ValueError):
    """Folds or runs the study cannot score."""


def _score(out_n: np.ndarray, n: np.ndarray) -> dict:
    o = torch.from_numpy(np.asarray(out_n, np.float32))[None, None]
    x = torch.from_numpy(np.asarray(n, np.float32))[None, None]
    return {"psnr": float(psnr(o, x)[0]), "ssim": float(ssim_per_image(o, x)[0])}


def _radiometry(intensity: np.ndarray, scene: np.ndarray, windows) -> dict:
    out = torch.from_numpy(np.asarray(intensity, np.float64))
    stats = ratio_statistics(torch.from_numpy(scene)[None, None], out[None, None])
    return {
        "mean_ratio": float(out.mean() / scene.mean()),
        "enl": enl(out, windows).enl,
        "ratio_mean": float(stats.mean[0]),
        "ratio_median": float(stats.median[0]),
    }


def _load(path: Path):
    scene = np.load(path).astype(np.float64)
    n, radiometry = normalised_scene(path)
    return scene, n.astype(np.float64), radiometry, homogeneous_windows(torch.from_numpy(scene))


def score_references(path: Path) -> dict:
    """The references on one held-out scene: JPEG 2000 and JPEG at their reference rates,
    average pooling + bilinear, and the input's ENL (independent of any codec)."""
    scene, n, _, windows = _load(path)
    result = {"scene": path.stem, "input_enl": enl(torch.from_numpy(scene), windows).enl}
    for family, fn, rates in (("jpeg2000", jpeg2000_at, REFERENCE_RATES), ("jpeg", jpeg_at, JPEG_RATES)):
        result[family] = []
        for rate in rates:
            coded = fn(n, rate).coded
            result[family].append({"bpp": coded.bpp(), **_score(coded.image, n)})
    result["avgpool"] = []
    for factor in POOL_FACTORS:
        coded = avgpool_codec(n, factor, POOL_BITS)
        result["avgpool"].append({"bpp": coded.bpp(), "factor": factor, **_score(coded.image, n)})
    return result


def score_codecs(path: Path, codecs: Sequence[tuple[str, Codec]]) -> dict:
    """Each codec on one held-out scene through the ``.sarl`` file, with JPEG 2000 and JPEG
    rate-matched to its measured bpp, and the radiometry of all three: ``{label: row}``."""
    scene, n, radiometry, windows = _load(path)
    rows = {}
    for label, codec in codecs:
        t0 = time.perf_counter()
        encoded = encode_scene(codec, scene)
        t1 = time.perf_counter()
        decoded, header = decode_bytes(encoded.data, name=path.name, codec=codec)
        t2 = time.perf_counter()
        log_out = radiometry.forward(decoded / header["gain"]).astype(np.float64)
        row = {
            "bpp": encoded.bpp,
            "payload_bpp": encoded.payload_bpp,
            "gain": header["gain"],
            "encode_s": t1 - t0,
            "decode_s": t2 - t1,
            **_score(log_out, n),
            **_radiometry(decoded, scene, windows),
        }
        for family, fn in (("jpeg2000", jpeg2000_at), ("jpeg", jpeg_at)):
            match = fn(n, encoded.bpp)
            row[family] = {
                "bpp": match.coded.bpp(),
                "matched": bool(match.matched),
                **_score(match.coded.image, n),
                **_radiometry(radiometry.inverse_intensity(match.coded.image), scene, windows),
            }
        rows[label] = row
    return rows


def setting_codec(setting: Setting, run_dir: Path) -> Codec:
    """The codec of ``setting`` from its run's ``last.pt``."""
    codec = load_codec(run_dir / "checkpoints" / "last.pt", level=setting.level)
    codec.step = setting.step
    return codec


def variant_runs(runs: Path, fold: str, transform: str, settings: Sequence[Setting]) -> dict[str, RunState]:
    """The state of every run a variant's settings name on ``fold`` (``{run dir name: state}``)."""
    names = dict.fromkeys(s.run_dir(runs, fold, transform) for s in settings)
    return {path.name: run_state(path) for path in names}


def held_out_scenes(data: Path, fold: str) -> list[Path]:
    scenes = sorted((Path(data) / fold / "test").glob("*.npy"))
    if not scenes:
        raise StudyInputError(f"expected held-out scenes (*.npy) in {Path(data) / fold / 'test'}; found none")
    return scenes


def score_folds(
    runs: Path,
    data: Path,
    settings: Sequence[Setting],
    transforms: Sequence[str],
    folds: Sequence[str] = FOLDS,
    log=print,
) -> tuple[dict, dict]:
    """``(scores, states)``: per fold its scenes' references and each variant's rows (None
    for a variant with a run missing), and the state of each variant's runs."""
    scores, states = {}, {}
    for fold in folds:
        scenes = held_out_scenes(data, fold)
        scores[fold] = {"references": [score_references(p) for p in scenes], "variants": {}}
        states[fold] = {}
        log(f"fold {fold}: references scored on {len(scenes)} held-out scenes")
        for transform in transforms:
            runs_of = variant_runs(runs, fold, transform, settings)
            states[fold][transform] = {name: s.to_dict() for name, s in runs_of.items()}
            missing = [name for name, s in runs_of.items() if not s.has_checkpoint]
            if missing:
                scores[fold]["variants"][transform] = None
                log(f"fold {fold}: {transform} not trained ({', '.join(missing)}: {runs_of[missing[0]].status})")
                continue
            codecs = [(s.text, setting_codec(s, s.run_dir(runs, fold, transform))) for s in settings]
            scores[fold]["variants"][transform] = [score_codecs(p, codecs) for p in scenes]
            for name, s in runs_of.items():
                log(f"fold {fold}: {transform} scored ({name}: {s.describe()})")
    return scores, states


def run_study(
    runs: Path,
    data: Path,
    out: Path,
    settings: Sequence[str],
    transforms: Sequence[str] = TRANSFORMS,
    folds: Sequence[str] = FOLDS,
    note: Optional[str] = None,
    speed: Optional[dict] = None,
    log=print,
) -> dict:
    """Score every fold's variants and references on that fold's held-out scenes
    (``DATA/<fold>/test``); write ``rd.json``, ``report.md`` and ``rd.png`` into ``out``.
    ``note``: a line the report starts with (e.g. the command, a smoke run); ``speed``: the
    variants' time and memory (:func:`.hyperprior_speed.variant_speed`) for the report."""
    parsed = [s if isinstance(s, Setting) else parse_setting(s) for s in settings]
    transforms = list(transforms)
    scores, states = score_folds(Path(runs), Path(data), parsed, transforms, folds, log)
    summary = summarise(scores, [s.text for s in parsed], transforms)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    document = {"settings": [s.text for s in parsed], "transforms": transforms, "runs": states}
    if speed is not None:
        document["speed"] = speed
    write_text(out / "rd.json", json.dumps({**document, "scenes": scores, **summary}, indent=1))
    write_text(out / "report.md", report(summary, document, note))
    figure(summary, out / "rd.png")
    return {**document, **summary}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line on stderr, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="folder of the training runs")
    p.add_argument("--data", type=Path, required=True, help="folder of <fold>/test scenes")
    p.add_argument("--out", type=Path, required=True, help="where rd.json, report.md, rd.png go")
    p.add_argument(
        "--settings",
        default="vr:0,vr:1,vr:2,vr:3",
        help="comma-separated vr:LEVEL[@STEP] (a level of RUNS/<fold>-<transform>-vr) or "
        "LAMBDA[@STEP] (RUNS/<fold>-<transform>-<LAMBDA>); STEP: quantisation step of y",
    )
    p.add_argument(
        "--transforms", default="gdn,residual,plain", help="comma-separated variants out of gdn,residual,plain"
    )
    args = p.parse_args(argv)
    try:
        settings = parse_settings(args.settings)
        transforms = parse_transforms(args.transforms)
        run_study(args.runs, args.data, args.out, settings, transforms)
    except SkiplabError as err:
        print(f"{p.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"outputs in {args.out}: rd.json, report.md, rd.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "FOLDS",
    "StudyInputError",
    "held_out_scenes",
    "run_study",
    "score_codecs",
    "score_folds",
    "score_references",
    "setting_codec",
    "variant_runs",
]
