"""skiplab.studies: experiments that answer a question end to end, and their reports.

``skiplab study`` (:func:`run_study`) measures what skip connections do: the degradation
experiment (He et al. 2015), gradient flow with and without BatchNorm, lesions (Veit et
al. 2016), loss landscapes (Li et al. 2018) and shattered gradients (Balduzzi et al.
2017), and writes ``report.md`` / ``report.html`` with a three-line verdict in numbers.
"""

from .config import FAMILIES, PARTS, Budget, Family, Recipe, StudyConfig
from .published import FINDINGS, Finding
from .recording import GradientFlowCallback, ResidualRatioCallback, TableCallback, write_csv
from .study import Study, StudyResult, run_study
from .verdict import Assessment, assess, compute_verdict

__all__ = ["FAMILIES", "PARTS", "Budget", "Family", "Recipe", "StudyConfig", "FINDINGS", "Finding", "Study",
           "StudyResult", "run_study", "Assessment", "assess", "compute_verdict", "GradientFlowCallback",
           "ResidualRatioCallback", "TableCallback", "write_csv"]
