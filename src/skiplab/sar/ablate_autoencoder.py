"""The name that ablation state files written before ``skiplab.sar`` was split into
sub-packages give their experiment (``"experiment": "skiplab.sar.ablate_autoencoder:
AutoencoderAblation"`` in ``ablation.json``, e.g. ``docs/studies/sar/ablation.json``), kept so
that such a run still resumes and reports. New code imports
:mod:`skiplab.sar.ablation.experiment`.
"""

from .ablation.experiment import AutoencoderAblation

__all__ = ["AutoencoderAblation"]
