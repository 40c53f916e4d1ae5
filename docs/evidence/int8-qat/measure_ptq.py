"""PT2E post-training int8 (the ``pt2e`` backend of ``skiplab quantize``) of trained CIFAR-10
nets on the 5,000 test images: the change in top-1 (int8 - fp32) and the top-1 agreement with
fp32, to find the net on which PTQ loses most. What ``skiplab quantize CKPT --backend pt2e
--calib 512 --json OUT`` reports, without torch.compile and the speed rounds.

usage: OMP_NUM_THREADS=1 PYTHONPATH=src python docs/evidence/int8-qat/measure_ptq.py OUT_DIR CKPT_DIR...
"""

import json
import sys
import time
from pathlib import Path

import torch

from skiplab.deploy import load_source
from skiplab.deploy.quantize import calibration_data, quantize_pt2e
from skiplab.deploy.quantize_report import compare_on_split

torch.set_num_threads(1)
out_dir = Path(sys.argv[1])
out_dir.mkdir(parents=True, exist_ok=True)
for run in sys.argv[2:]:
    t = time.time()
    ckpt = Path(run) / "checkpoints" / "last.pt"
    source = load_source(ckpt)
    calibration = calibration_data(source, 512)
    int8 = quantize_pt2e(source, calibration)
    acc = compare_on_split(source.model, {"pt2e": int8}, source)
    row = {
        "checkpoint": str(ckpt),
        "model": source.meta.model,
        "calibration": calibration.description,
        "accuracy": acc,
        "wall_s": time.time() - t,
    }
    name = "_".join(Path(run).parts[-2:])
    (out_dir / f"ptq_{name}.json").write_text(json.dumps(row, indent=2) + "\n")
    print(
        f"{name}: fp32 {100 * acc['fp32']['acc']:.2f} %, pt2e {100 * acc['pt2e']['acc']:.2f} % "
        f"(change {100 * acc['pt2e']['delta_acc']:+.2f}), agreement {100 * acc['pt2e']['agreement']:.2f} %, "
        f"{time.time() - t:.0f} s",
        flush=True,
    )
