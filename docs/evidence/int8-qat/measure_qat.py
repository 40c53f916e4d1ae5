"""PTQ and QAT (PT2E int8) of one trained checkpoint for one seed, on the 5,000 CIFAR-10 test
images: what ``skiplab quantize CKPT --qat --steps STEPS --seed SEED --json OUT`` does, through
the Python API without torch.compile of the int8 graphs (the accuracy and agreement are those
of the saved artifacts; the speed figures are of uncompiled q/dq graphs and are not int8 speed).
Seed s draws PTQ's 512 calibration images and QAT's data order and augmentation.

usage: OMP_NUM_THREADS=1 PYTHONPATH=src python docs/evidence/int8-qat/measure_qat.py CKPT STEPS SEED OUT.json
"""

import json
import sys
import time

import torch

from skiplab.deploy import QATOptions, load_source, quantize_checkpoint
from skiplab.deploy.quantize_report import format_report

torch.set_num_threads(1)
ckpt, steps, seed, out_json = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
start = time.time()
report = quantize_checkpoint(
    load_source(ckpt),
    out_json.replace(".json", ""),
    calib=512,
    rounds=1,
    batch_size=16,
    compile=False,
    seed=seed,
    qat=QATOptions(steps=steps, seed=seed),
    progress=lambda s: print(f"  {s} ... {time.time() - start:.0f} s", flush=True),
)
report.update(
    checkpoint=ckpt,
    wall_s=time.time() - start,
    torch_threads=1,
    note="compile=False: speed figures are of uncompiled q/dq graphs, not int8 speed",
)
print(format_report(report))
with open(out_json, "w") as f:
    json.dump(report, f, indent=2)
