"""A folder of synthetic speckled SAR scenes (:func:`skiplab.sar.raster.speckle.synthetic_scene`)
written as ``.npy`` intensity rasters, to add to a small set of real scenes for training:
``sar:PATH`` reads every raster under PATH, so copying them beside the real ones is all it
takes. The looks cycle through :data:`LOOKS` (single-look to Sentinel-1 GRD's ~4.4) so the
codec sees the speckle strengths it will meet.

    python -m skiplab.sar.raster.synthetic_folder --out DIR --count 6 --size 256 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence, Union

from .io import write_raster
from .speckle import derive_seed, synthetic_scene

#: equivalent numbers of looks, in turn: SLC, the development scenes (~2, ~2.7), S1 GRD (~4.4)
LOOKS = (1.0, 2.0, 2.7, 4.4)


def write_synthetic_scenes(
    out: Union[str, Path], count: int, size: int = 256, seed: int = 0, looks: Sequence[float] = LOOKS
) -> list[Path]:
    """Write ``count`` speckled scenes ``synthetic_s{seed}_{i}_L{looks}.npy`` (float32 linear
    intensity) into ``out``; returns their paths. Deterministic in ``seed``."""
    if count < 1:
        raise ValueError(f"count must be >= 1; found {count}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        ell = float(looks[i % len(looks)])
        scene = synthetic_scene(size, looks=ell, seed=derive_seed("sar-folder", seed, i))
        path = out / f"synthetic_s{seed}_{i:03d}_L{ell:g}.npy"
        paths.append(write_raster(path, scene.speckled.numpy(), overwrite=True))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the scenes into")
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--size", type=int, default=256, help="side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        paths = write_synthetic_scenes(args.out, args.count, args.size, args.seed)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {len(paths)} synthetic scenes to {args.out}")


if __name__ == "__main__":
    main()


__all__ = ["LOOKS", "write_synthetic_scenes"]
