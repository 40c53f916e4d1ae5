"""``skiplab ablate autoencoder``: are residual blocks worth it in a SAR autoencoder, and where?

- :mod:`.config` -- what the ablation runs (checked up front), its tiles, its state file;
- :mod:`.experiment` -- the experiment on the runner of :mod:`skiplab.studies`
  (``run_ablation``, ``AutoencoderAblation``);
- :mod:`.evaluation` -- a trained run's measures on test tiles, and the references beside them;
- :mod:`.report` -- the verdict, table, curves and reconstruction grid (:mod:`.figures`: the figures);
- :mod:`.holdout` -- leave-one-site-out folds over the real scenes (``--holdout site``);
- :mod:`.codec_eval` -- the held-out rate-distortion evidence against JPEG 2000 / JPEG;
- :mod:`.codec_report` -- its report.
"""
