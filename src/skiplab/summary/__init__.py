"""What a network is made of: the per-stage shape-flow table, parameters, MACs and memory
(:func:`summarize`; how each figure is measured: :mod:`skiplab.summary.table`, the recorded
forward: :mod:`skiplab.summary.recorder`)."""

from ..models.published import count_parameters
from .table import ModelSummary, SummaryRow, summarize

__all__ = ["ModelSummary", "SummaryRow", "count_parameters", "summarize"]
