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

from .config import FAMILIES, PARTS, Budget, Family, Recipe, StudyConfig
from .experiment import Experiment, Run
from .published import FINDINGS, Finding
from .recording import GradientFlowCallback, ResidualRatioCallback, TableCallback, write_csv
from .runner import Runner
from .study import Study, StudyExperiment, StudyResult, run_study
from .verdict import Assessment, assess, compute_verdict

__all__ = ["FAMILIES", "PARTS", "Budget", "Family", "Recipe", "StudyConfig", "Experiment", "Run", "Runner",
           "FINDINGS", "Finding", "Study", "StudyExperiment", "StudyResult", "run_study", "Assessment", "assess",
           "compute_verdict", "GradientFlowCallback", "ResidualRatioCallback", "TableCallback", "write_csv"]
