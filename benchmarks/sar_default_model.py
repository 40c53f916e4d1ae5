"""Build, measure and ship skiplab's default SAR autoencoder.

Three steps; the last one is all it takes to swap in another checkpoint::

    # 1. the training scenes, each mapped through its own per-scene radiometry (what
    #    skiplab reconstruct/encode do at inference) onto one common dB range
    python benchmarks/sar_default_model.py data runs/sar-default-data
    # 2. train (the exact command is recorded in the model card; a few minutes on 2 cores)
    nice -n 5 skiplab train --config configs/sar_default.yaml --data sar:runs/sar-default-data \
        --out runs/sar-default
    # 3. strip to what inference needs, check <= 10 MB, measure on the real scenes, write
    #    src/skiplab/sar/weights/sar_ae_default.pt and its card sar_ae_default.json
    python benchmarks/sar_default_model.py ship runs/sar-default/checkpoints/best.pt

``make sar-default-model CHECKPOINT=path/to/best.pt [DTYPE=bfloat16]`` runs step 3. Any ``sar_ae_*``
checkpoint written by ``skiplab train --task reconstruct`` or ``skiplab ablate autoencoder``
can be shipped; the card says what it saw and how it scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REAL = REPO.parent / "shared" / "data" / "sar-real"


def prepare_data(out: Path, real: Path, synthetic: int, test: int, looks: float, seed: int) -> dict:
    """Write ``out/train`` (the real scenes + ``synthetic`` speckled synthetic scenes) and
    ``out/test`` (``test`` other synthetic scenes), every scene mapped through its own
    0.5-99.5 % log-intensity bounds onto the common range of the real scenes' pooled bounds.

    Training then sees exactly the normalised images that per-scene radiometry gives at
    inference, whatever each scene's calibration; the checkpoint's fixed radiometry is that
    common range (the real scenes' calibration, linear power)."""
    from skiplab.sar import Radiometry, read_raster, synthetic_scene
    from skiplab.sar.raster.scene_radiometry import scene_db_values, scene_radiometry

    scenes = {p.stem: read_raster(p).data.astype(np.float64) for p in sorted(real.glob("*.npy"))}
    if not scenes:
        raise SystemExit(f"no .npy scenes in {real}")
    pooled = np.concatenate([scene_db_values(a, "intensity") for a in scenes.values()])
    low, high = (float(v) for v in np.percentile(pooled, (0.5, 99.5)))
    common = Radiometry.fixed(low, high, clip=True)

    def to_common(a: np.ndarray) -> np.ndarray:
        n = scene_radiometry(common, a).forward(a)              # per-scene bounds -> [0, 1]
        return np.asarray(common.inverse_intensity(n), dtype=np.float32)

    for split in ("train", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    for name, a in scenes.items():
        np.save(out / "train" / f"real_{name}.npy", to_common(a))
    for i in range(synthetic + test):
        scene = synthetic_scene(256, looks=looks, seed=seed + i).speckled.double().numpy()
        split = "train" if i < synthetic else "test"
        np.save(out / split / f"synthetic_{seed + i:04d}.npy", to_common(scene))
    info = dict(real=sorted(scenes), real_dir=str(real), synthetic_train=synthetic,
                synthetic_test=test, looks=looks, seed=seed, common_db=[low, high])
    (out / "data.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    d = sub.add_parser("data", help="write the per-scene-normalised training scenes")
    d.add_argument("out", type=Path)
    d.add_argument("--real", type=Path, default=REAL, help=f"real scenes (default {REAL})")
    d.add_argument("--synthetic", type=int, default=12, help="synthetic training scenes (12)")
    d.add_argument("--test", type=int, default=3, help="synthetic validation scenes (3)")
    d.add_argument("--looks", type=float, default=2.0, help="synthetic speckle looks (2)")
    d.add_argument("--seed", type=int, default=1000)
    s = sub.add_parser("ship", help="strip a checkpoint, measure it, write the packaged model")
    s.add_argument("checkpoint", type=Path)
    s.add_argument("--real", type=Path, default=REAL, help="scenes to measure on")
    s.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    s.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8], help="latent bits measured")
    s.add_argument("--train-command", help="the exact command that trained it (default: skiplab "
                   "train --config RUN/config.yaml, the run's resolved recipe)")
    s.add_argument("--train-data", help="what it saw in training, in words (the data spec and the "
                   "data directory's data.json are recorded anyway)")
    s.add_argument("--out", type=Path, default=None,
                   help="the .pt to write (default: the packaged src/skiplab/sar/weights/sar_ae_default.pt)")
    args = p.parse_args(argv)
    if args.step == "data":
        info = prepare_data(args.out, args.real, args.synthetic, args.test, args.looks, args.seed)
        print(f"wrote {args.out}/train ({len(info['real'])} real + {args.synthetic} synthetic) and "
              f"{args.out}/test ({args.test} synthetic); common range {info['common_db'][0]:.2f} to "
              f"{info['common_db'][1]:.2f} dB")
        return 0
    from skiplab.sar.model.card import ship_model
    try:
        card = ship_model(args.checkpoint, out=args.out, scenes=args.real, dtype=args.dtype,
                          bits=args.bits, train_command=args.train_command,
                          train_data=args.train_data)
    except ValueError as err:
        print(f"sar_default_model: {err}", file=sys.stderr)
        return 2
    print(json.dumps(card["measured"]["summary"], indent=1))
    from skiplab.sar.model.default import DEFAULT_WEIGHTS
    out = args.out or DEFAULT_WEIGHTS
    print(f"wrote {out} ({card['size_bytes'] / 1e6:.2f} MB, sha256 {card['sha256'][:16]}...) "
          f"and its card {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
