"""The study report as a document: verdict, the published results beside this study's
measurements, the set-up, one section per part, and the files; written as ``report.md``
(figures as PNG files beside it) and a self-contained ``report.html`` (figures embedded).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ...evidence.document import Document
from ...evidence.intervals import count_intervals, multiplicity_note
from ..published import FINDINGS
from ..verdict import assess
from .probes import landscape_section, lesion_section, shattered_section
from .setup import setup_section
from .training import degradation_section, gradients_section

if TYPE_CHECKING:  # pragma: no cover
    from ..study import Study

SECTION_TITLES = {
    "degradation": "Degradation: plain and residual nets of growing depth (He et al. 2015, Fig. 6)",
    "gradients": "Gradient flow at initialisation and after training, with and without BatchNorm",
    "lesion": "Lesions: deleting blocks at test time (Veit et al. 2016)",
    "landscape": "Loss landscape (Li et al. 2018)",
    "shattered": "Shattered gradients (Balduzzi et al. 2017)",
}


def command_line(study: "Study") -> str:
    c = study.config
    args = ["skiplab study"]
    if c.quick:
        args.append("--quick")
    args += [
        f"--data {c.data}",
        f"--depths {','.join(map(str, c.depths))}",
        f"--models {','.join(c.models)}",
        f"--parts {','.join(c.parts)}",
        f"--steps {study.state.steps}",
        f"--lengths {','.join(f'{x:g}' for x in c.lengths)}",
        f"--seed {c.seed}",
        f"--seeds {c.seeds}",
        f"--without-bn {c.without_bn}",
        f"--eval-images {c.eval_images}",
    ]
    return " ".join(args)


#: the contrast each part's verdict reads, named here before any run
HEADLINES = {
    "degradation": "degradation: the interaction of eval-mode training errors (plain deep - shallow minus "
    "residual deep - shallow) at the full length",
    "gradients": "gradient flow: the plain net's log10-slope per block and plain minus residual, at each "
    "stage with BatchNorm",
    "lesion": "lesions: each family's retained above-chance fraction after one deletion",
    "landscape": "loss landscape: plain minus residual |lmin/lmax| of the Hessian",
    "shattered": "shattered gradients: the fitted per-layer rate a, plain minus residual",
}

SECTIONS = {
    "degradation": degradation_section,
    "gradients": gradients_section,
    "lesion": lesion_section,
    "landscape": landscape_section,
    "shattered": shattered_section,
}


def build_document(study: "Study", results: dict, verdict: list[str]) -> Document:
    doc = Document("skiplab study: what skip connections do, measured")
    doc.paragraph(
        f"Study directory `{study.dir}`, started {study.state.data['created']}. Reproduce with `{command_line(study)}`."
    )
    if study.config.quick:
        doc.paragraph(
            "**SMOKE RUN (--quick)**: a few steps on a tiny task to check that everything runs. "
            "The numbers below say nothing about skip connections and no claim is judged."
        )
    doc.heading("Verdict")
    doc.items(verdict, css="verdict")
    assessments = assess(study.config, results)
    found = {a.key: a for a in assessments}
    doc.heading("Published result and this measurement, side by side")
    doc.table(
        ["claim", "published", "measured here", "agrees?"],
        [
            [f"{FINDINGS[a.key].short}, {FINDINGS[a.key].where}", FINDINGS[a.key].claim, a.measured, f"**{a.status}**"]
            for a in assessments
        ],
    )
    doc.paragraph(multiplicity_note([HEADLINES[p] for p in study.config.parts], count_intervals(results)))
    setup_section(doc, study)
    for i, part in enumerate(study.config.parts, 1):
        doc.heading(f"{i}. {SECTION_TITLES[part]}")
        SECTIONS[part](doc, results[part], found)
    doc.heading("Files")
    doc.paragraph(
        "`study.json` (configuration, steps, per-run numbers, timings), `results/*.json` (every number of "
        "every part), `runs/<network>/` (each training run: config.yaml, metrics.csv, steps.csv, "
        "checkpoints), and the PNG figures above."
    )
    return doc


def write_report(study: "Study", results: dict, verdict: list[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into the study directory."""
    doc = build_document(study, results, verdict)
    # figures are named relative to the study directory
    doc.blocks = [(k, (study.dir / v[0], v[1]) if k == "image" else v) for k, v in doc.blocks]
    md, html_path = study.path("report.md"), study.path("report.html")
    md.write_text(doc.markdown())
    html_path.write_text(doc.html())
    return md, html_path
