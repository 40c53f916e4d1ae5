"""Encode and decode time and peak memory per megapixel: the hyperprior codec beside
OpenJPEG (JPEG 2000 through Pillow) on the same scene, each measured in its own process.

Every measurement runs in a fresh Python process that first imports and loads what it needs
(torch, the codec, the scene), records its peak resident set, then codes and records the new
peak and the wall-clock time: the memory figure is the growth of the peak over that baseline.
The scene is a real 256 px scene mirrored into a ``size`` x ``size`` mosaic (a stand-in for a
large scene with the statistics of a real one). Times drift on shared machines: compare
the two codecs within one run only.

    python -m skiplab.sar.rate_distortion.codec_speed --quality 2 --size 1024
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

_PROBE = r"""
import json, resource, sys, time, io
import numpy as np
op, scene_path, arg, work = sys.argv[1:5]
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
scene = np.load(scene_path).astype(np.float64)
if op.startswith("hyperprior"):
    import torch
    from skiplab.sar.codec.sarl import decode_bytes, encode_scene
    from skiplab.sar.codec.shipped import load_codec, load_quality
    torch.set_num_threads(int(sys.argv[5]))
    codec = load_quality(int(arg)) if arg.isdigit() else load_codec(arg)
    data = open(work, "rb").read() if op.endswith("decode") else None
    base, t0 = peak_mb(), time.perf_counter()
    if op.endswith("encode"):
        encoded = encode_scene(codec, scene)
        open(work, "wb").write(encoded.data)
        size = len(encoded.data)
    else:
        out, _ = decode_bytes(data, codec=codec)
        size = len(data)
else:
    from PIL import Image
    from skiplab.sar.training.compress_task import normalised_scene
    from skiplab.sar.rate_distortion.codecs import to_uint8
    n, _ = normalised_scene(scene_path)
    image = Image.fromarray(to_uint8(n), mode="L")
    data = open(work, "rb").read() if op.endswith("decode") else None
    base, t0 = peak_mb(), time.perf_counter()
    if op.endswith("encode"):
        buf = io.BytesIO()
        image.save(buf, format="JPEG2000", irreversible=True, quality_mode="rates",
                   quality_layers=[float(arg)], codeblock_size=(32, 32), no_jp2=True)
        open(work, "wb").write(buf.getvalue())
        size = len(buf.getvalue())
    else:
        decoded = np.asarray(Image.open(io.BytesIO(data)))
        size = len(data)
seconds = time.perf_counter() - t0
print(json.dumps({"op": op, "seconds": seconds, "peak_growth_mb": peak_mb() - base,
                  "bytes": size}))
"""


def mosaic(source: Path, size: int) -> np.ndarray:
    """A real scene mirrored into a ``size`` x ``size`` mosaic."""
    scene = np.load(source).astype(np.float32)
    reps = -(-size // scene.shape[0])
    tile = np.block([[scene[:, :: (-1) ** j][:: (-1) ** i] for j in range(reps)] for i in range(reps)])
    return tile[:size, :size]


def measure(codec: str, source: Path, size: int = 1024, threads: int = 2, jpeg2000_ratio: float = 60.0) -> dict:
    """Time and peak-memory growth per megapixel of the hyperprior codec ``codec`` (a quality
    level or a checkpoint) and of OpenJPEG at compression ``jpeg2000_ratio``."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene.npy"
        np.save(scene, mosaic(source, size))
        for op, arg in (
            ("hyperprior-encode", codec),
            ("hyperprior-decode", codec),
            ("openjpeg-encode", str(jpeg2000_ratio)),
            ("openjpeg-decode", str(jpeg2000_ratio)),
        ):
            work = Path(tmp) / ("code.sarl" if op.startswith("hyperprior") else "code.j2k")
            proc = subprocess.run(
                [sys.executable, "-c", _PROBE, op, str(scene), arg, str(work), str(threads)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    megapixels = size * size / 1e6
    for row in rows:
        row["seconds_per_mp"] = row["seconds"] / megapixels
        row["peak_growth_mb_per_mp"] = row["peak_growth_mb"] / megapixels
        row["bpp"] = 8 * row["bytes"] / (size * size)
    return {"size": size, "threads": threads, "rows": rows}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--codec", default="2", help="a shipped quality level or a checkpoint")
    p.add_argument("--scene", type=Path, required=True, help="a SAR scene (intensity raster) to mosaic and code")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, help="write the JSON here too")
    args = p.parse_args(argv)
    result = measure(args.codec, args.scene, args.size, args.threads)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        from ...atomic import write_text

        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
