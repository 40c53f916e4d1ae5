"""skiplab.evidence: the one toolkit every report uses to say what its numbers carry.

- :mod:`~skiplab.evidence.intervals`: seed-level intervals whose coverage holds at 3-10
  seeds (:func:`seed_interval`, the t interval with n - 1 df; :func:`paired_seed_interval`;
  :func:`seed_interval_with_sampling`, which adds the shared images' sampling error), the
  within-run intervals (:func:`wilson_interval` for a proportion, :func:`paired_item_interval`
  for a per-image paired difference), :func:`sign_test_p` (what a seed count can show) and
  :func:`multiplicity_note` (a report's headline contrasts and how many intervals it holds).
- :mod:`~skiplab.evidence.stats`: paired contrasts of per-seed measurements
  (:func:`contrast`, :func:`seed_function`) and the summaries reports print.
- :mod:`~skiplab.evidence.thresholds`: every threshold, gate and stopping rule, each with
  its reason, fixed before the evidence runs.
- :mod:`~skiplab.evidence.document` and :mod:`~skiplab.evidence.figures`: the report
  document (Markdown and self-contained HTML) and the figure helpers.

It sits below the studies, the deployment reports and the SAR package (it may use
``analysis``, ``train`` and ``models`` but none of those): see docs/evidence.md.
"""

from . import thresholds
from .intervals import (
    binomial_se,
    count_intervals,
    mean_interval,
    multiplicity_note,
    paired_item_interval,
    paired_seed_interval,
    seed_interval,
    seed_interval_with_sampling,
    seeds_needed,
    sign_test_p,
    t_cdf,
    t_quantile,
    wilson_interval,
)
from .stats import contrast, difference, interaction, interval_text, mean_spread, pm, seed_function, sign

__all__ = [
    "thresholds",
    "binomial_se",
    "count_intervals",
    "mean_interval",
    "multiplicity_note",
    "paired_item_interval",
    "paired_seed_interval",
    "seed_interval",
    "seed_interval_with_sampling",
    "seeds_needed",
    "sign_test_p",
    "t_cdf",
    "t_quantile",
    "wilson_interval",
    "contrast",
    "difference",
    "interaction",
    "interval_text",
    "mean_spread",
    "pm",
    "seed_function",
    "sign",
]
