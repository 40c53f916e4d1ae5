"""The published result beside this measurement, with the verdict, closing each part's section."""

from __future__ import annotations

from ...evidence.document import Document
from ..published import FINDINGS
from ..verdict import Assessment


def published_block(doc: Document, a: Assessment) -> None:
    f = FINDINGS[a.key]
    doc.paragraph(f"**Published** ({f.citation}, {f.where}): {f.detail}")
    verdict = {
        "agrees": "**Agrees** with the published result (the interval excludes the opposite).",
        "disagrees": "**Disagrees** with the published result (the interval excludes it).",
        "partly": "**Partly agrees** with the published result.",
        "unresolved": "**Unresolved**: the interval cannot tell.",
        "not in the paper's regime": "**No verdict: not in the paper's regime.**",
        "not measured": "**Not measured.**",
    }[a.status]
    doc.paragraph(f"**Measured here**: {a.measured}. {verdict}")
    if a.reasons:
        lead = "why" if a.status == "not in the paper's regime" else "likely reason"
        doc.items([f"{lead}: {r}" for r in a.reasons])
