"""How fast one Hessian-vector product of the trained CIFAR ResNet-56 runs on this CPU, by method.

Li et al. 2018's |λmin/λmax| needs tens of Hessian-vector products (HVPs) of the training loss on
>= 2,000 images (:mod:`skiplab.analysis.hessian`). This times one HVP on ``--images`` images
(BatchNorm in evaluation mode, fp32) for each variant and prints its time and its ratio against
the baseline measured in the same run (reverse-over-reverse, NCHW, one chunk), in wall and in CPU
seconds (on a shared machine the CPU seconds are the steadier measure):

- ``reverse``: Pearlmutter's double backward (grad of g·v, ``create_graph=True``);
- ``forward``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` (no graph of
  the gradient is kept: one forward-mode pass through the backward);
- ``+cl``: channels_last weights and images;
- ``chunk N``: the images in chunks of N (memory, and cache reuse).

    PYTHONPATH=src python benchmarks/hessian_speed.py --images 256 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skiplab.analysis.hessian import hessian_vector_product  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="docs/evidence/he2015/resnet56/checkpoints/last.pt")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import skiplab
    model = skiplab.load_trained(args.checkpoint).model.float().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    v = [torch.randn(q.shape, generator=g) for q in model.parameters()]
    half = max(1, args.images // 2)
    variants = [("reverse", "reverse", False, None), ("forward", "forward", False, None),
                ("reverse+cl", "reverse", True, None), ("forward+cl", "forward", True, None),
                (f"forward chunk {half}", "forward", False, half),
                (f"forward+cl chunk {half}", "forward", True, half)]
    if args.only:
        variants = [t for t in variants if t[0] in args.only]
    base = base_cpu = reference = None
    for name, mode, cl, chunk in variants:
        m = model.to(memory_format=torch.channels_last) if cl else model.to(memory_format=torch.contiguous_format)
        data = [(x.contiguous(memory_format=torch.channels_last) if cl else x.contiguous(), y)]
        times, cpus = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            hv = hessian_vector_product(m, data, v, mode=mode, chunk=chunk)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        t, cpu = min(times), min(cpus)
        flat = torch.cat([h.flatten() for h in hv])
        if reference is None:
            reference, base, base_cpu = flat, t, cpu
        err = float((flat - reference).norm() / reference.norm())
        print(f"{name:24s} {t:8.2f} s wall ({base / t:5.2f}x)  {cpu:8.2f} s CPU ({base_cpu / cpu:5.2f}x)  "
              f"rel. diff from the first {err:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
