"""skiplab.studies: the one experiment runner and the experiments on it, with their reports.

:class:`Runner` (:mod:`~skiplab.studies.runner`) owns an experiment's state file, its
seeds, the budget -> steps calibration (timed through the training loop, fixed once),
resume, the worker processes and the step curves; an :class:`Experiment` says which
(network, seed) runs it trains and how each is summarised.

``skiplab study`` (:func:`run_study`) measures what skip connections do: the degradation
experiment (He et al. 2015) as the interaction of depth and shortcut with its interval,
gradient flow, lesions (Veit et al. 2016), loss landscapes (Li et al. 2018) and shattered
gradients (Balduzzi et al. 2017), with verdicts only inside each paper's regime
(:mod:`~skiplab.studies.regime`, thresholds fixed in :mod:`~skiplab.evidence.thresholds`).
"""

import importlib
from typing import Any

# public name -> its module: imported on first use (PEP 562), so that importing one module of
# this package (e.g. skiplab.studies.config, for the command's --help) does not import torch
_EXPORTS = {
    "FAMILIES": "config",
    "PARTS": "config",
    "Budget": "config",
    "Family": "config",
    "Recipe": "config",
    "StudyConfig": "config",
    "Experiment": "experiment",
    "Run": "experiment",
    "FINDINGS": "published",
    "Finding": "published",
    "GradientFlowCallback": "recording",
    "ResidualRatioCallback": "recording",
    "TableCallback": "recording",
    "write_csv": "recording",
    "Runner": "runner",
    "Study": "study",
    "StudyExperiment": "study",
    "StudyResult": "study",
    "run_study": "study",
    "Assessment": "verdict",
    "assess": "verdict",
    "compute_verdict": "verdict",
}

__all__ = [
    "FAMILIES",
    "PARTS",
    "Budget",
    "Family",
    "Recipe",
    "StudyConfig",
    "Experiment",
    "Run",
    "Runner",
    "FINDINGS",
    "Finding",
    "Study",
    "StudyExperiment",
    "StudyResult",
    "run_study",
    "Assessment",
    "assess",
    "compute_verdict",
    "GradientFlowCallback",
    "ResidualRatioCallback",
    "TableCallback",
    "write_csv",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
