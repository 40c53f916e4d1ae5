"""PTQ vs QAT (PT2E int8) of the committed He 2015 ResNet-20, on the 5,000 CIFAR-10 test images."""
# usage: PYTHONPATH=src python docs/evidence/int8-qat/measure.py CHECKPOINT STEPS OUT.json [ARTIFACT]
# (what `skiplab quantize CHECKPOINT --qat --steps STEPS --json OUT.json` does, without torch.compile)
import json, sys, time
from skiplab.deploy import load_source, quantize_checkpoint
from skiplab.deploy.quantize import QATOptions
from skiplab.deploy.quantize_report import format_report
ckpt, steps, out_json = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = time.time()
source = load_source(ckpt)
report = quantize_checkpoint(source, sys.argv[4] if len(sys.argv) > 4 else "/tmp/r20_qat", calib=512, rounds=1, batch_size=16, compile=False,
                             qat=QATOptions(steps=steps), progress=lambda s: print(f"  {s} ... {time.time()-t:.0f}s", flush=True))
report["checkpoint"] = "docs/evidence/he2015/resnet20/checkpoints/last.pt"
report["note"] = ("run through the Python API with compile=False (this 2-core machine was shared with "
                  "other jobs, load average ~12): the speed figures are of the uncompiled q/dq graphs "
                  "and say nothing about int8 speed; accuracy and agreement are those of the saved artifacts")
report["wall_s"] = time.time() - t
print(format_report(report))
json.dump(report, open(out_json, "w"), indent=2)
