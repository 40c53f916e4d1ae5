"""PTQ vs QAT over seeds: per-seed figures and the paired QAT - PTQ differences with a t
interval over seeds (:func:`skiplab.evidence.seed_interval`), from measure_qat.py's JSON files.

usage: PYTHONPATH=src python docs/evidence/int8-qat/summarize.py OUT.json SEED_JSON...
"""

import json
import statistics
import sys

from skiplab.atomic import write_json
from skiplab.evidence import seed_interval

rows = []
for path in sys.argv[2:]:
    r = json.load(open(path))
    acc = r["accuracy"]
    rows.append(
        {
            "file": path.rsplit("/", 1)[-1],
            "seed": r["qat"]["seed"],
            "fp32": 100 * acc["fp32"]["acc"],
            **{
                f"{b}_{k}": 100 * acc[b][m]
                for b in ("pt2e", "qat")
                for k, m in (("top1", "acc"), ("change", "delta_acc"), ("agreement", "agreement"))
            },
            "qat_loss_first_tenth": r["qat"]["loss_first_tenth"],
            "qat_loss_last_tenth": r["qat"]["loss_last_tenth"],
            "wall_s": r["wall_s"],
        }
    )
first = json.load(open(sys.argv[2]))
summary = {
    "checkpoint": first["checkpoint"],
    "calibration": first["calibration"],
    "qat_settings": {
        k: v for k, v in first["qat"].items() if k not in ("seed", "description", "loss_first_tenth", "loss_last_tenth")
    },
    "seeds": [r["seed"] for r in rows],
    "per_seed": rows,
}
for key in ("pt2e_change", "qat_change", "pt2e_agreement", "qat_agreement"):
    values = [r[key] for r in rows]
    summary[key] = {"mean": statistics.fmean(values), "interval95": seed_interval(values)}
for key in ("change", "agreement"):
    diffs = [r[f"qat_{key}"] - r[f"pt2e_{key}"] for r in rows]
    summary[f"qat_minus_ptq_{key}"] = {
        "diffs": diffs,
        "mean": statistics.fmean(diffs),
        "interval95": seed_interval(diffs),
    }
write_json(sys.argv[1], summary)
print("| seed | fp32 | PTQ top-1 (change) | PTQ agreement | QAT top-1 (change) | QAT agreement |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(
        f"| {r['seed']} | {r['fp32']:.2f} % | {r['pt2e_top1']:.2f} % ({r['pt2e_change']:+.2f}) | "
        f"{r['pt2e_agreement']:.2f} % | {r['qat_top1']:.2f} % ({r['qat_change']:+.2f}) | {r['qat_agreement']:.2f} % |"
    )
for key in (
    "pt2e_change",
    "qat_change",
    "pt2e_agreement",
    "qat_agreement",
    "qat_minus_ptq_change",
    "qat_minus_ptq_agreement",
):
    s = summary[key]
    level = key.endswith("agreement") and not key.startswith("qat_minus")  # a share, not a change
    sign, unit = ("", "%") if level else ("+", "points")
    print(
        f"{key}: mean {s['mean']:{sign}.2f} {unit}, 95 % interval over seeds "
        f"{s['interval95'][0]:{sign}.2f} to {s['interval95'][1]:{sign}.2f}"
    )
