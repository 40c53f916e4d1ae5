"""Rate-distortion of SAR autoencoders against the codecs people use (``skiplab sar-rd``).

- :mod:`.codecs` -- JPEG, JPEG 2000 and average pooling at a matched, measured bit rate;
- :mod:`.lee` -- the Lee filter, the despeckling reference;
- :mod:`.measure` -- every method on the same tiles at measured bpp (``rate_distortion``);
- :mod:`.report` -- ``rd.json``, ``rd.md`` and ``rd.png``;
- :mod:`.bjontegaard` -- BD-rate and BD-PSNR;
- the hyperprior codec held out by site: :mod:`.hyperprior_ablation` (folds, training and study
  in one resumable command), :mod:`.hyperprior_runs` (settings, run states),
  :mod:`.hyperprior_study` (scoring), :mod:`.hyperprior_summary` (per site and over sites),
  :mod:`.hyperprior_report` (report and figure), :mod:`.hyperprior_speed` (each variant's time and
  memory); :mod:`.codec_speed` (time and memory beside OpenJPEG).
"""
