"""How often a study's verdicts come out the same over disjoint seed sets.

Run the same study on disjoint seed sets (``skiplab study --seed 0``, ``--seed 5``, ...: 5
seeds each by default, so the sets share no seed), then tabulate, for every claim, the
status each set gave and the headline estimate with its interval:

    for s in 0 5 10 15 20; do skiplab study --seed $s --out runs/demo-seed$s; done
    python benchmarks/study_replication.py runs/demo-seed* --out docs/studies/demo-replication

It reads only each study's ``study.json`` and ``results/*.json`` (nothing is measured) and
writes ``replication.json`` (every set's statuses and estimates) and ``replication.md``.
With ``--out`` it also copies each set's ``results/*.json``, ``study.json`` and
``report.md`` there, so the table can be checked against the raw results.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
from pathlib import Path

from skiplab.studies.config import StudyConfig
from skiplab.studies.verdict import assess


def headline(key: str, results: dict) -> dict | None:
    """The estimate and interval a claim's verdict reads, where the results carry one."""
    if key == "degradation" and results.get("degradation", {}).get("train_contrasts"):
        return results["degradation"]["train_contrasts"]["interaction"]
    if key == "lesion" and "lesion" in results:
        rows = [m for m in results["lesion"]["models"] if m["shortcut"] == "identity" and m.get("retained_single")]
        return rows[0]["retained_single"] if rows else None
    if key == "gradients" and "gradients" in results:
        rows = [v for v in results["gradients"]["verdicts"] if v.get("norm") and v["stage"] == "init"]
        return rows[0]["plain"] if rows else None
    return None


def read_study(directory: Path) -> dict:
    state = json.loads((directory / "study.json").read_text())
    config = StudyConfig.from_dict(state["config"])
    results = {p.stem: json.loads(p.read_text()) for p in (directory / "results").glob("*.json")
               if p.stem in config.parts}
    claims = {}
    for a in assess(config, results):
        h = headline(a.key, results)
        claims.setdefault(a.key, dict(status=a.status, reasons=a.reasons, measured=a.measured,
                                      headline={k: h[k] for k in ("estimate", "low", "high", "per_seed") if k in h}
                                      if h else None))
    return dict(directory=directory.name, seeds=config.seed_list, complete=bool(state.get("complete")),
                claims=claims)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("studies", nargs="+", type=Path, help="finished study directories, one per seed set")
    p.add_argument("--out", type=Path, help="write replication.json/.md and copy the raw results here")
    args = p.parse_args(argv)
    sets = [read_study(d) for d in args.studies]
    seeds = [s for x in sets for s in x["seeds"]]
    if len(seeds) != len(set(seeds)):
        raise SystemExit("the seed sets overlap: replication needs disjoint ones (--seed 0, 5, 10, ...)")
    keys = list(dict.fromkeys(k for x in sets for k in x["claims"]))
    lines = [f"# Replication over {len(sets)} disjoint seed sets", "",
             "| claim | " + " | ".join(f"seeds {x['seeds'][0]}–{x['seeds'][-1]}" for x in sets) + " | same as the mode |",
             "|---|" + "---|" * len(sets) + "---:|"]
    summary = {}
    for key in keys:
        statuses = [x["claims"].get(key, {}).get("status", "-") for x in sets]
        mode, count = collections.Counter(statuses).most_common(1)[0]
        summary[key] = dict(statuses=statuses, mode=mode, same=count, of=len(sets))
        cells = []
        for x in sets:
            c = x["claims"].get(key)
            h = c and c["headline"]
            cells.append(f"{c['status']}" + (f" ({h['estimate']:+.3g}; {h['low']:+.3g} to {h['high']:+.3g})"
                                             if h and "low" in h else "") if c else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {count} of {len(sets)} ({mode}) |")
    lines += ["", "In brackets: the headline estimate and its 95 % interval (degradation: the interaction in "
              "training error; lesion: the residual net's retained above-chance fraction after one deletion; "
              "gradients: the plain net's log10-slope per block at initialisation)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for d, x in zip(args.studies, sets):
            target = args.out / d.name
            (target / "results").mkdir(parents=True, exist_ok=True)
            for f in (d / "results").glob("*.json"):
                shutil.copy2(f, target / "results" / f.name)
            for name in ("study.json", "report.md"):
                if (d / name).is_file():
                    shutil.copy2(d / name, target / name)
        (args.out / "replication.json").write_text(json.dumps(dict(sets=sets, summary=summary), indent=1) + "\n")
        (args.out / "replication.md").write_text(text)
        print(f"wrote {args.out}/replication.json, replication.md and each set's raw results")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
