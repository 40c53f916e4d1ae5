"""Every registered model through ``torch.onnx.export`` and ONNX Runtime: a table of model,
exporter used (dynamo, or the TorchScript fallback), parity (max relative error against
eager fp32 on a batch -- and for image-to-image models an image size -- other than the
traced one) and status: ``ok`` (parity <= 1e-5), ``PARITY`` (exported, error above 1e-5) or
the one-line reason it failed. Random weights, BN-folded, a small input (32 px for CIFAR
and MLP models, 64 px otherwise) to keep the run short.

    python benchmarks/export_all.py [--pattern "cifar_*"] [--json results.json]

Models run smallest graph first (a run cut short has covered the most).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import skiplab
from skiplab.deploy.export import PARITY_FP32, export_onnx
from skiplab.deploy.source import load_source


def small_side(name: str) -> int | None:
    """64 px, or the model's own size for CIFAR and MLP models and for models that accept
    one size only (a ViT's position embedding fixes it)."""
    if name.startswith(("cifar_", "mlp_")):
        return None
    with torch.device("meta"):
        model = skiplab.create_model(name)
    return None if getattr(model, "min_input_size", 1) > 64 else 64


def by_size(names: list[str]) -> list[str]:
    """Smallest graphs first (number of modules), so a run cut short has covered the most."""
    sizes = {n: sum(1 for _ in skiplab.create_model(n).modules()) for n in names}
    return sorted(names, key=lambda n: (sizes[n], n))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="*", help="shell pattern of model names (default: all)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    rows = []
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)", flush=True)
    print(f"{'model':28s} {'exporter':12s} {'parity':>9s} {'s':>6s}  status", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in by_size(skiplab.list_models(args.pattern)):
            start = time.perf_counter()
            row = {"model": name, "exporter": "-", "parity": None}
            try:
                source = load_source(name, image_size=small_side(name))
                result = export_onnx(source, Path(tmp) / f"{name}.onnx")
                row.update(exporter=result.exporter, parity=result.parity,
                           status="ok" if result.ok else "PARITY", notes=result.notes)
            except Exception as err:   # the table records why a model does not export
                text = str(err).strip().splitlines()[0][:150] if str(err).strip() else ""
                row["status"] = f"FAIL {type(err).__name__}: {text}"
            row["seconds"] = time.perf_counter() - start
            for f in Path(tmp).iterdir():
                f.unlink()
            rows.append(row)
            parity = "-" if row["parity"] is None else f"{row['parity']:.2e}"
            print(f"{name:28s} {row['exporter']:12s} {parity:>9s} {row['seconds']:6.1f}  "
                  f"{row['status']}", flush=True)
    ok = sum(r["status"] == "ok" for r in rows)
    fallback = sum(r["exporter"] == "torchscript" for r in rows)
    print(f"{ok}/{len(rows)} models export with ONNX Runtime parity <= {PARITY_FP32:g} "
          f"({fallback} through the TorchScript fallback); load average at end "
          f"{os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
