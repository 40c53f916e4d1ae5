"""The study report: ``report.md`` (figures as PNG files beside it) and a self-contained
``report.html`` (figures embedded), one section per part, each with the set-up, the
numbers, the figures, the published result and whether this measurement agrees.

    document.py    the report of a study: verdict, side-by-side table, sections, files
    setup.py       the set-up section and the thresholds fixed before the run
    training.py    the sections of the parts that train: degradation, gradient flow
    probes.py      the sections that probe the nets: lesions, loss landscape, shattered gradients
    published.py   the published result beside this measurement, closing each section
"""

from .document import build_document, write_report

__all__ = ["build_document", "write_report"]
