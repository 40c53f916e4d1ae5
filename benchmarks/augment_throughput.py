"""Batched augmentation vs a per-sample loop, measured in the same run.

Both apply the same thing to a CIFAR-sized batch -- random crop with 4 px padding,
horizontal flip with probability 1/2, 16 px cutout -- the baseline the way a per-image
pipeline does it (pad, slice, flip and cut one sample at a time, then stack), ours with
:class:`skiplab.data.Augmentation` (one gather and one multiply for the whole batch).
Prints images/s of each and the speed-up ratio; absolute numbers drift on shared
machines, the ratio is the result.

    python benchmarks/augment_throughput.py [--batch 128] [--repeats 20] [--pad-mode zeros]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from skiplab.data import Augmentation


def per_sample_loop(x: torch.Tensor, pad: int, pad_mode: str, cutout: int,
                    generator: torch.Generator) -> torch.Tensor:
    """The baseline: one sample at a time (torchvision-style transforms on tensors)."""
    _, _, height, width = x.shape
    out = []
    mode = "constant" if pad_mode == "zeros" else "reflect"
    for img in x:
        padded = F.pad(img[None], (pad, pad, pad, pad), mode=mode)[0]
        oy, ox = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
        img = padded[:, oy:oy + height, ox:ox + width]
        if torch.rand(1, generator=generator).item() < 0.5:
            img = img.flip(2)
        if cutout:
            cy, cx = torch.randint(0, height, (1,), generator=generator).item(), \
                torch.randint(0, width, (1,), generator=generator).item()
            img = img.clone()
            img[:, max(cy - cutout // 2, 0):cy - cutout // 2 + cutout,
                max(cx - cutout // 2, 0):cx - cutout // 2 + cutout] = 0
        out.append(img)
    return torch.stack(out)


def images_per_second(fns: list, x: torch.Tensor, repeats: int) -> list[float]:
    """Best-of-``repeats`` throughput of each function, timed in alternation so that drift
    in the machine's load affects all of them alike."""
    best = [float("inf")] * len(fns)
    for fn in fns:
        fn(x)  # warm-up
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(x)
            best[i] = min(best[i], time.perf_counter() - start)
    return [x.shape[0] / t for t in best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--pad-mode", choices=("zeros", "reflect"), default="zeros")
    parser.add_argument("--cutout", type=int, default=16)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x = torch.randn(args.batch, 3, args.size, args.size)
    aug = Augmentation(crop_padding=4, pad_mode=args.pad_mode, flip=True, cutout=args.cutout)
    g = torch.Generator().manual_seed(0)
    ours, loop = images_per_second(
        [lambda b: aug(b, g), lambda b: per_sample_loop(b, 4, args.pad_mode, args.cutout, g)],
        x, args.repeats)
    print(f"batch {args.batch} x 3 x {args.size} x {args.size}, crop pad 4 ({args.pad_mode}), "
          f"flip, cutout {args.cutout}, {torch.get_num_threads()} threads")
    print(f"  per-sample loop : {loop:12,.0f} img/s")
    print(f"  skiplab batched : {ours:12,.0f} img/s")
    print(f"  speed-up        : {ours / loop:12.1f}x")


if __name__ == "__main__":
    main()
