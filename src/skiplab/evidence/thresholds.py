"""Every threshold, gate and stopping rule of skiplab's experiments, each with its reason.

The studies, the deployment reports and the SAR evidence all read them from here.

They were fixed before the evidence runs they judge and are never changed because a
verdict came out one way or the other (a report quotes this module and says so). A
verdict is a statement about a paired difference and its confidence interval; a gate
decides whether a run is in the regime the paper speaks about at all.
"""

from __future__ import annotations

# -- intervals ----------------------------------------------------------------------------
#: two-sided confidence level of every interval: the usual 95 %
CONFIDENCE = 0.95
#: fewest seeds for any verdict: with 1-2 seeds the t interval over seeds has 0-1 degrees of
#: freedom (t_0.975,1 = 12.7) and the signs of 3 seeds are the least that can all agree with
#: a one-sided sign-test p of 0.125 (skiplab.evidence.sign_test_p); below 3 a verdict would
#: describe the evaluation images, not the networks
MIN_SEEDS_FOR_VERDICT = 3

# -- regime gates: degradation (He et al. 2015 §4.2, Fig. 6) --------------------------------
#: the shallow reference nets must fit their training subset: He's plain-20 and ResNet-20 end
#: with a few per cent training error (Fig. 6); a shallow net above 15 % is under-trained, and
#: then "the deeper net is worse" says only that it needs more steps
SHALLOW_TRAIN_ERROR_MAX = 0.15
#: claims about a deep net's final error ("deeper ResNets train better or no worse", He Fig. 6
#: middle, Table 6) are about converged nets: He's ResNet-56 ends near 0 % training error
#: after 64k steps. The deepest residual net must fit its training subset as well as the
#: shallow references must (the same 15 %), and its training loss must have levelled off: the
#: mean batch loss over the last PLATEAU_WINDOW of the steps at most PLATEAU_MAX_DROP (20 %)
#: below the mean over the window before -- a net still descending faster has not converged,
#: and "the deeper net is worse" would only say that it is slower. Set on 2026-12-02 (commit
#: 92794ab), before the CIFAR-10 evidence run, from He's curves, not from any result of that run.
DEEP_TRAIN_ERROR_MAX = 0.15
PLATEAU_WINDOW = 0.10
PLATEAU_MAX_DROP = 0.20
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
#: a two-sided band on the per-block trend of the per-element RMS of dL/dx: the fitted
#: log10-slope per block towards the output is "vanishing" above +0.05 (a factor 10 lost
#: towards the input over 20 blocks), "exploding" below -0.05 (a factor 10 gained), "healthy"
#: inside. He 2015 §4.1 ("healthy norms with BN") agrees at a stage when the intervals of the
#: plain net's own slope and of the paired difference slope(plain) - slope(residual) both lie
#: inside (-0.05, +0.05); it disagrees -- "vanishing" or "exploding" -- when either interval lies
#: wholly beyond one side (a deep plain BN net can explode, Yang et al. 2019); else unresolved.
#: The band (set on 2026-12-02, commit 92794ab, before the CIFAR-10 evidence run; two-sided
#: since 2026-12-04, commit 7f49a3d) is the same on both sides: a
#: factor 10 over 20 blocks either way is the change a reader would call unhealthy
GRADIENT_SLOPE_BAND = 0.05
#: fixed batches of training images per seed for the gradient measurements (the interval is
#: over seeds and these batches): one batch of 128 measures its own sampling noise, not the net
GRADIENT_BATCHES = 4
#: fractions of the steps at which each degradation run keeps a snapshot of its weights
#: (checkpoints/step-N.pt) for the gradient measurements during training, beside the end
GRADIENT_SNAPSHOTS = (0.5,)

# -- loss landscape (Li et al. 2018) -----------------------------------------------------------
#: Li's quantitative check is |lambda_min / lambda_max| of the Hessian at the trained weights, on
#: at least this many training images (Li §6 use the whole training set; skiplab uses at least 2,000)
LANDSCAPE_IMAGES = 2000
#: the claim "skip connections keep the landscape convex-looking" agrees when the paired
#: difference |lmin/lmax|(plain) - |lmin/lmax|(residual) over seeds has an interval above this
#: margin, disagrees when below minus it. Li Fig. 7 colours ratios from 0 to ~0.5; a margin of
#: 0.01 is well inside that scale and above the eigenvalues' tolerance (1e-3 of the larger |λ|)
LANDSCAPE_RATIO_MARGIN = 0.01
#: Hessian-vector products per eigenvalue (Li's recipe: a power iteration for each end); the
#: study's one Lanczos run spends twice this on both ends (always the whole budget: a small
#: residual bound cannot show that no eigenvalue lies beyond the smallest Ritz value)
HESSIAN_ITERATIONS = 20

# -- shattered gradients (Balduzzi et al. 2017) ------------------------------------------------
#: images, directions per image and init seeds per depth of the correlation estimate
SHATTERED_IMAGES = 8
SHATTERED_DIRECTIONS = 3
SHATTERED_SEEDS = 5
#: Balduzzi's regime is set by the positive control: the plain 24-layer MLP of his Fig. 1 must
#: shatter (centred R(1) below 0.3: nearly white noise) and the residual one must not (above
#: 0.5: brown noise); if the control fails the estimator, not the nets, is under test and no
#: verdict is given. The claim "depth shatters plain nets faster than residual nets" is judged
#: on the paired difference of the fitted per-layer decay rates a (R(1) ~ 2^(-a L)), plain minus
#: residual: interval above 0 agrees, below 0 disagrees (set on 2026-12-02, commit 92794ab,
#: before the CIFAR-10 evidence run)
SHATTERED_CONTROL_PLAIN_MAX = 0.3
SHATTERED_CONTROL_RESIDUAL_MIN = 0.5
#: white noise gives a centred R(1) of about -1/(N-1) on N line points (the estimator's floor,
#: not 0); a depth whose R(1) interval over seeds (with the items' sampling error) reaches that
#: floor is reported "at the floor" and left out of the rate fits: its log-rate is undefined. The
#: interval's level is the usual CONFIDENCE; the fits do not depend on it when depths are either
#: clearly above or at the floor (tests/test_study.py moves it from 0.80 to 0.99)
SHATTERED_FLOOR_CONFIDENCE = 0.95
#: fewest depths above the floor for comparing the exponential (2^-aL) with the power-law (L^-b)
#: fit of a family: two points fit either exactly, a third is the first that can tell them apart
SHATTERED_MIN_FIT_DEPTHS = 3
#: the depths of the shattered-gradients part (measured at initialisation, so cheap): four per
#: family, from 8 to 110 layers, so that each family's fit has >= 3 depths even when one reaches
#: the floor
SHATTERED_DEPTHS = (8, 20, 56, 110)

# -- the autoencoder ablation ------------------------------------------------------------------
#: a comparison of autoencoders says something only when the best one reconstructs better than
#: a constant image at the training mean level by this much PSNR; below it the models have
#: learnt little beyond the mean level and their differences are differences of noise
ABLATION_LEARNT_DB = 1.0

# -- the SAR codec evidence (skiplab ablate autoencoder --holdout) ------------------------------
#: a variant whose held-out PSNR (at its highest rate, mean over seeds and scenes) is within
#: this of a constant image at the training mean level "did not train" and is not ranked (a
#: flat grey output once scored 15.04 dB against 14.97 for the constant)
DID_NOT_TRAIN_DB = 0.5
#: a run has reached its validation plateau when the best validation PSNR of the last
#: PLATEAU_FRACTION of its evaluations beats the best before them by less than PLATEAU_GAIN_DB:
#: a quarter of the training adding under 0.1 dB is a gain below the seed-to-seed spread of
#: these models (0.1-0.3 dB measured on 64 px SAR tiles), so more of the same steps would not
#: change a ranking. Caveat: under a cosine schedule the learning rate of the last quarter is
#: small, so the criterion says "converged for this schedule", not "no longer run would gain"
PLATEAU_FRACTION = 0.25
PLATEAU_GAIN_DB = 0.1

# -- He 2015 Table 6 / Fig. 6 (skiplab.studies.he2015) --------------------------------------
#: eval-mode training error is measured on this many training images, a fixed subset (a
#: permutation seeded by HE2015_SUBSET_SEED) shared by every net: a Wilson interval at 10,000
#: images and a few per cent error is about +-0.4 points, finer than the gaps Fig. 6 shows
HE2015_TRAIN_SUBSET = 10_000
HE2015_SUBSET_SEED = 0

# -- Xiong et al. 2020: pre-LN vs post-LN (skiplab.studies.layernorm: skiplab study --parts layernorm) --
#: the log-log slope of the last layer's gradient norm against the depth L is judged against the
#: theorem's exponent (post-LN 0, pre-LN -0.5) within +-0.2: half the 0.5 that separates the two
#: claims less a gap, so the two bands ([-0.2, 0.2] and [-0.7, -0.3]) are disjoint and each rule
#: can come out either way. Fixed on 2026-12-07 before the first measurement.
XIONG_SLOPE_MARGIN = 0.2
#: Fig. 3's per-layer reading: "grows with the layer index" needs the last layer's gradient norm
#: above 1.5x the first layer's; "level" needs the ratio within [1/1.5, 1.5]. 1.5x is the
#: smallest change a per-layer profile plotted as in Fig. 3 (linear axis) reads as growth rather
#: than as level; chosen with the slope margin, before any measurement, from no run's numbers
XIONG_LAYER_RATIO = 1.5
#: the training half (skiplab.studies.layernorm.verdict): a warm-up "is needed" when leaving it
#: out raises the final training loss by more than 0.05 nats (paired over seeds), and a net
#: "trains without it" when leaving it out costs less than that. 0.05 nats is about 2 % of the
#: 10-class chance loss (2.30) -- smaller than the gap Xiong's Fig. 2 shows between post-LN with
#: and without warm-up, larger than a rounding of the loss; fixed before the runs
XIONG_LOSS_MARGIN = 0.05
#: the claims are about nets that train: a variant is judged only when its warm-up runs reach
#: twice the chance top-1 (20 % on CIFAR-10) within the declared budget; on data of fewer
#: classes, twice chance where that is more (skiplab.studies.layernorm.verdict.trained_gate)
XIONG_TRAINED_MIN_ACC = 0.20


#: every constant above with its value, for the report's "fixed before the run" table
def table() -> list[tuple[str, object]]:
    return [(k, v) for k, v in globals().items() if k.isupper()]
