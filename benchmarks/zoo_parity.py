"""skiplab's MobileNetV2 and ViT-Ti/16 against torchvision's and timm's, with the same weights.

For each pair: build the reference (random init, no download), fill its state dict with
deterministic values (BN statistics and LayerNorm scales away from their init, so every
layer counts), load that state dict into the reference and, with ``strict=True``, into
skiplab's model, run both in eval mode on one fixed random input and print one line:

    mobilenet_v2          max|diff| 1.2e-07  (max|ref| 3.4e+00)  PASS

PASS when max|diff| <= 1e-5 * max(1, max|ref|). A failed strict load is a FAIL line with
the reason. Exits 1 if any model fails, 0 otherwise; 2 when torchvision or timm is missing.

    PYTHONPATH=src python3 benchmarks/zoo_parity.py [--device cuda] [--batch 2]

The comparison runs in float32 with TF32 matmuls and convolutions switched off on CUDA
(else both sides would round at 1e-3).
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib

import torch

import skiplab

TOLERANCE = 1e-5


def fill_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each floating tensor replaced by a function of its key and shape only: weights
    N(0, 1/fan_in), norm scales 1 + 0.1 N, biases and running means 0.1 N, running
    variances U[0.5, 1.5]; integer buffers copied."""
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        leaf, shape = key.rsplit(".", 1)[-1], tuple(value.shape)
        if leaf == "running_var":
            t = 0.5 + torch.rand(shape, generator=gen)
        elif leaf in ("running_mean", "bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif leaf == "weight" and len(shape) == 1:
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]) if len(shape) > 1 else 1)
        out[key] = t.to(value.dtype)
    return out


def references() -> list[tuple[str, torch.nn.Module]]:
    import timm
    import torchvision

    return [("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None)),
            ("vit_tiny_patch16_224", timm.create_model("vit_tiny_patch16_224", pretrained=False))]


def compare(name: str, reference: torch.nn.Module, device: str, batch: int) -> bool:
    ours = skiplab.create_model(name)
    state = fill_state_dict(reference.state_dict())
    reference.load_state_dict(state, strict=True)
    try:
        ours.load_state_dict(state, strict=True)
    except RuntimeError as err:
        print(f"{name:<22} strict load failed: {str(err).splitlines()[0]}  FAIL")
        return False
    counts = (sum(p.numel() for p in reference.parameters()), sum(p.numel() for p in ours.parameters()))
    size = ours.default_image_size
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        expected = reference.to(device).eval()(x).float()
        got = ours.to(device).eval()(x).float()
    if got.shape != expected.shape:
        print(f"{name:<22} output shape {tuple(got.shape)} vs reference {tuple(expected.shape)}  FAIL")
        return False
    diff = (got - expected).abs().max().item()
    scale = expected.abs().max().item()
    ok = diff <= TOLERANCE * max(1.0, scale) and counts[0] == counts[1]
    print(f"{name:<22} max|diff| {diff:.1e}  (max|ref| {scale:.1e}, {counts[1]:,} parameters, "
          f"reference {counts[0]:,})  {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        pairs = references()
    except ImportError as err:
        print(f"zoo_parity needs torchvision and timm: {err}", file=sys.stderr)
        return 2
    import timm
    import torchvision
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
          f"device {args.device}")
    results = [compare(name, reference, args.device, args.batch) for name, reference in pairs]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
