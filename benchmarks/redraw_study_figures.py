"""Redraw a study's lesion, gradient-flow and shattered-gradient figures from its committed
results (``<study>/results/*.json``), without training or measuring anything: a few seconds.

    python benchmarks/redraw_study_figures.py docs/studies/cifar10            # in place
    python benchmarks/redraw_study_figures.py docs/studies/cifar10 --out /tmp/figures

The degradation figure needs the runs' step curves, which the results do not carry; it is
left as the study drew it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skiplab.studies.figures import (
    plot_autocorrelation,
    plot_gradient_flow,
    plot_lesion,
)
from skiplab.studies.shattered import white_noise_floor


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", type=Path, help="a study directory with results/*.json")
    p.add_argument("--out", type=Path, help="where to write the PNGs (default: the study directory)")
    args = p.parse_args(argv)
    out = args.out or args.study
    results = args.study / "results"
    wrote = []
    if (results / "lesion.json").is_file():
        lesion = json.loads((results / "lesion.json").read_text())
        wrote.append(plot_lesion(lesion["per_seed"], out / "lesion.png"))
    if (results / "gradients.json").is_file():
        gradients = json.loads((results / "gradients.json").read_text())
        wrote.append(plot_gradient_flow(gradients["results"], out / "gradient_flow.png"))
    if (results / "shattered.json").is_file():
        shattered = json.loads((results / "shattered.json").read_text())
        floor = shattered.get("floor", white_noise_floor(shattered["points"]))
        wrote.append(plot_autocorrelation(shattered["results"], out / "shattered.png", floor=floor))
    print("wrote " + ", ".join(str(w) for w in wrote) if wrote else f"no results under {results}")
    return 0 if wrote else 2


if __name__ == "__main__":
    raise SystemExit(main())
