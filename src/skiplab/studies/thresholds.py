"""Every threshold, gate and stopping rule of skiplab's experiments, each with its reason.

They were fixed before the evidence runs they judge and are never changed because a
verdict came out one way or the other (a report quotes this module and says so). A
verdict is a statement about a paired difference and its confidence interval; a gate
decides whether a run is in the regime the paper speaks about at all.
"""

from __future__ import annotations

# -- intervals ----------------------------------------------------------------------------
#: two-sided confidence level of every interval: the usual 95 %
CONFIDENCE = 0.95
#: bootstrap resamples: the percentile interval's end points move by < 0.1 point at 2,000
BOOTSTRAP_RESAMPLES = 2000
#: the bootstrap's own seed, fixed so a report is reproducible to the digit
BOOTSTRAP_SEED = 0
#: fewest seeds for any verdict: with 1-2 seeds a bootstrap over seeds has no spread to
#: resample and an interval would describe only the evaluation images
MIN_SEEDS_FOR_VERDICT = 3

# -- regime gates: degradation (He et al. 2015 §4.2, Fig. 6) --------------------------------
#: the shallow reference nets must fit their training subset: He's plain-20 and ResNet-20 end
#: with a few per cent training error (Fig. 6); a shallow net above 15 % is under-trained, and
#: then "the deeper net is worse" says only that it needs more steps
SHALLOW_TRAIN_ERROR_MAX = 0.15
#: every compared net's training error at least this far below chance error: He's worst net
#: (plain-110, > 60 % error) was still far from chance (90 %); a net at chance did not train
#: (dead start, divergence) and its error measures the failure, not depth
ABOVE_CHANCE_MARGIN = 0.10

# -- lesions (Veit et al. 2016) -------------------------------------------------------------
#: a lesion is informative only of a net this far above chance: Veit lesioned fully trained
#: nets (ResNet-110 at 93 %); a barely trained net has no accuracy to lose
LESION_INFORMATIVE = 0.20
#: "costs little": Veit Fig. 3 -- single deletions of ResNet-110 blocks keep nearly all of
#: its accuracy; here: the retained above-chance fraction's interval lies above 0.9
LESION_RETAINED_SMALL = 0.90
#: "collapses": Veit Fig. 3 -- a VGG net falls to chance; here: the retained fraction's
#: interval lies below 0.2
LESION_RETAINED_COLLAPSE = 0.20
#: k random deletions (Veit Fig. 5a: k = 1..~20 of 54 blocks) and draws per k
LESION_MAX_K = 10
LESION_DRAWS = 10

# -- gradient flow ----------------------------------------------------------------------------
#: per-layer decay of the per-element RMS of dL/dx towards the input: the vanishing-gradient
#: account predicts an exponential decay; "vanishing" when the fitted log10-slope per block
#: is below -0.05 (a factor 10 lost over 20 blocks) with its interval, "exploding" above +0.05
GRADIENT_SLOPE_BAND = 0.05

# -- shattered gradients (Balduzzi et al. 2017) ------------------------------------------------
#: images, directions per image and init seeds per depth of the correlation estimate
SHATTERED_IMAGES = 8
SHATTERED_DIRECTIONS = 2
SHATTERED_SEEDS = 5

# -- the autoencoder ablation ------------------------------------------------------------------
#: a comparison of autoencoders says something only when the best one reconstructs better than
#: a constant image at the training mean level by this much PSNR; below it the models have
#: learnt little beyond the mean level and their differences are differences of noise
ABLATION_LEARNT_DB = 1.0

# -- the SAR codec evidence (skiplab ablate autoencoder --holdout) ------------------------------
#: a variant whose held-out PSNR (at its highest rate, mean over seeds and scenes) is within
#: this of a constant image at the training mean level "did not train" and is not ranked: the
#: issue's gate (a flat grey output scored 15.04 dB against 14.97 for the constant)
DID_NOT_TRAIN_DB = 0.5
#: a run has reached its validation plateau when the best validation PSNR of the last
#: PLATEAU_FRACTION of its evaluations beats the best before them by less than PLATEAU_GAIN_DB:
#: a quarter of the training adding under 0.1 dB is a gain below the seed-to-seed spread of
#: these models (0.1-0.3 dB measured on 64 px SAR tiles), so more of the same steps would not
#: change a ranking. Caveat: under a cosine schedule the learning rate of the last quarter is
#: small, so the criterion says "converged for this schedule", not "no longer run would gain"
PLATEAU_FRACTION = 0.25
PLATEAU_GAIN_DB = 0.1

#: every constant above with its value, for the report's "fixed before the run" table
def table() -> list[tuple[str, object]]:
    return [(k, v) for k, v in globals().items() if k.isupper()]
