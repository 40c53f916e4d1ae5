"""The pre-LN / post-LN / no-skip study of transformer blocks (Xiong et al. 2020, "On Layer
Normalization in the Transformer Architecture") on the one experiment runner.

- :mod:`.config`: the options and the declared recipe;
- :mod:`.experiment`: the training runs (variant x depth x warm-up x seed) as an
  :class:`~skiplab.studies.experiment.Experiment`;
- :mod:`.gradients`: per-layer gradient norms at initialisation (Theorem 1, Fig. 3);
- :mod:`.kept`: results measured before, read instead of measured again;
- :mod:`.verdict`: the rules, intervals and regime gates;
- :mod:`.report`: report.md / report.html and the figures;
- :mod:`.study`: :func:`run_layernorm_study`, from the configuration to the report.

From the command line: ``skiplab study --parts layernorm`` (see ``skiplab study --help``).
"""

from .config import LayerNormConfig
from .experiment import LayerNormExperiment
from .study import LayerNormResult, run_layernorm_study

__all__ = ["LayerNormConfig", "LayerNormExperiment", "LayerNormResult", "run_layernorm_study"]
