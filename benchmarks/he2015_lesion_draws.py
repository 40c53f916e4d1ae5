"""The lesion part's random deletions, measured breadth-first into the study's own kept state.

The study's lesion part (``skiplab.studies.lesions``) measures k = 1..10 random deletions of
10 draws each, k by k, and keeps every evaluation as it is measured in
``results/lesion-<run>.evaluations.jsonl`` (key: the deleted blocks). On a slow, shared CPU
the part may be stopped long before it ends; stopped k by k, it leaves the large k unmeasured.
This script measures *the same evaluations* -- the part's own seeded draws, on the same model,
test split and precision -- in another order: draw 0 of every k for every net, then draw 1, ...
so that whatever is measured when it stops spans k = 1..10. It writes only into those files,
so ``skiplab study --resume`` later reads every evaluation back instead of measuring it again.

    PYTHONPATH=src nice -n 10 python benchmarks/he2015_lesion_draws.py \\
        --study docs/studies/he2015-trained/study --threads 2

Each evaluation's wall and CPU seconds are printed, with an estimate of what is left.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skiplab.analysis.lesion import is_deletable, lesion_random, lesion_units  # noqa: E402
from skiplab.evidence import thresholds as T  # noqa: E402
from skiplab.studies.lesions import Evaluations  # noqa: E402
from skiplab.studies.runs import RunSpec  # noqa: E402
from skiplab.studies.study import Study, open_study  # noqa: E402


def planned_draws(model, data, spec: RunSpec, draws: int, max_k: int) -> list[list]:
    """[k][draw] -> the units the lesion part deletes (its own seeded draws, k = 1..max_k)."""
    units = lesion_units(model, data)
    candidates = [u for u in units if is_deletable(u) and not u.downsampling]
    plan = []
    for k in range(1, min(max_k, len(candidates)) + 1):
        chosen: list = []

        def record(units_, chosen=chosen):
            chosen.append(list(units_))
            return dict(accuracy=math.nan, loss=math.nan)
        lesion_random(model, data, [k], draws=draws, seed=spec.seed * 1000 + k, units=units, measure=record)
        plan.append(chosen)
    return plan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="docs/studies/he2015-trained/study")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    runner = open_study(None, args.study, resume=True, threads=args.threads)
    torch.set_num_threads(runner.threads)
    study = Study(runner)
    config = study.config
    draws = math.ceil(T.LESION_DRAWS / len(config.seed_list))
    data = study.test_probe()
    print(f"test split: {sum(len(y) for _, y in data)} images", flush=True)
    nets = []
    for family in sorted(config.families, key=lambda f: not f.is_residual):
        for seed in config.seed_list:
            spec = RunSpec(family, config.deepest, seed=seed)
            model = study.trained(spec)
            kept = Evaluations(study.path("results") / f"lesion-{spec.name}.evaluations.jsonl", model, data)
            nets.append((spec, kept, planned_draws(model, data, spec, draws, T.LESION_MAX_K)))
    todo = [(spec, kept, chosen) for d in range(draws) for k in range(T.LESION_MAX_K)
            for spec, kept, plan in nets if k < len(plan)
            for chosen in [plan[k][d]] if (" ".join(u.name for u in chosen) or "(none)") not in kept.done]
    print(f"{len(todo)} evaluations left", flush=True)
    for i, (spec, kept, chosen) in enumerate(todo):
        wall, cpu = time.perf_counter(), time.process_time()
        with study.autocast():
            res = kept(chosen)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"[{i + 1}/{len(todo)}] {spec.name} k={len(chosen)} {' '.join(u.name for u in chosen)}: "
              f"accuracy {res['accuracy']:.4f}  {wall:.0f} s wall, {cpu:.0f} s CPU; "
              f"about {wall * (len(todo) - i - 1) / 3600:.1f} h left at this pace", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
