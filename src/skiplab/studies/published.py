"""What the papers found, for the report's side-by-side with this machine's measurements.

Only statements the papers make, with the figure or table they come from; where a paper
gives no number the entry says so rather than reading one off a plot.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    part: str
    citation: str
    short: str
    where: str
    claim: str  # one line, for the side-by-side table
    detail: str  # a paragraph, for the part's section


HE_2015 = "He, Zhang, Ren & Sun 2015, Deep Residual Learning for Image Recognition (CVPR 2016)"
VEIT_2016 = (
    "Veit, Wilber & Belongie 2016, Residual Networks Behave Like Ensembles of Relatively "
    "Shallow Networks (NeurIPS 2016)"
)
LI_2018 = "Li, Xu, Taylor, Studer & Goldstein 2018, Visualizing the Loss Landscape of Neural Nets (NeurIPS 2018)"
BALDUZZI_2017 = (
    "Balduzzi, Frean, Leary, Lewis, Ma & McWilliams 2017, The Shattered Gradients Problem: "
    "If resnets are the answer, then what is the question? (ICML 2017)"
)

FINDINGS = {
    "degradation": Finding(
        "degradation",
        HE_2015,
        "He et al. 2015",
        "§4.2, Fig. 6, Table 6",
        "depth costs plain nets more than residual nets: [e(plain-deep) - e(plain-shallow)] - "
        "[e(res-deep) - e(res-shallow)] > 0",
        "He's finding is the contrast between the families: from 20 to 56 layers the plain nets' training "
        "and test error rise (Fig. 6 left) while the residual nets' fall (Fig. 6 middle; test error 8.75% -> "
        "6.97%, Table 6), so the interaction of depth and shortcut is positive. Either family alone "
        "getting worse (or better) with depth is not the finding.",
    ),
    "degradation_plain": Finding(
        "degradation",
        HE_2015,
        "He et al. 2015",
        "§4.2, Fig. 6 (left)",
        "deeper plain nets train worse: plain-56 has higher training error than plain-20, from the first epochs on",
        "On CIFAR-10, plain nets of 20, 32, 44 and 56 layers (BatchNorm, same recipe, 64k iterations of "
        "batch 128) end with higher training error the deeper they are, throughout training -- the "
        "degradation problem; a 110-layer plain net's error stays above 60% (Fig. 6 leaves it out). "
        "It is not overfitting: the training error itself rises with depth.",
    ),
    "degradation_residual": Finding(
        "degradation",
        HE_2015,
        "He et al. 2015",
        "§4.2, Fig. 6 (middle), Table 6",
        "deeper residual nets train better: ResNet-56 ends below ResNet-20 (test error 6.97% vs 8.75%)",
        "The same nets with identity (option-A) shortcuts train better with depth: ResNet-20, 32, 44, 56 "
        "and 110 reach test errors of 8.75%, 7.51%, 7.17%, 6.97% and 6.43% (Table 6) and their training "
        "curves are ordered the same way (Fig. 6, middle).",
    ),
    "gradients": Finding(
        "gradients",
        HE_2015,
        "He et al. 2015",
        "§4.1",
        'with BatchNorm the plain nets\' gradients are not vanishing ("healthy norms"); the problem is '
        "optimisation, not vanishing gradients",
        'He 2015 argue the degradation "is unlikely to be caused by vanishing gradients": the plain nets '
        "are trained with BatchNorm, which keeps the forward signals' variances non-zero, and they \"verify "
        'that the backward propagated gradients exhibit healthy norms with BN" (no figure is given). '
        "The vanishing-gradient account instead predicts that the gradient reaching the first layers of a "
        "deep plain net has decayed by orders of magnitude. Later work (Yang et al. 2019, A Mean Field "
        "Theory of Batch Normalization) showed that at initialisation BatchNorm makes the gradients of deep "
        "plain nets *explode* towards the input -- neither healthy nor vanishing.",
    ),
    "lesion": Finding(
        "lesion",
        VEIT_2016,
        "Veit et al. 2016",
        "§4, Fig. 3 and Fig. 5",
        "deleting one block of a ResNet costs little; deleting one layer of a plain (VGG) net drops it to "
        "chance; k deletions degrade a ResNet smoothly",
        "On CIFAR-10, deleting any single block of a 110-layer ResNet at test time (keeping its shortcut) "
        "barely changes the error, the downsampling blocks costing somewhat more, while deleting any single "
        "layer of a VGG-style plain net drops it to chance (Fig. 3). Deleting k random blocks, or swapping "
        "blocks, raises the error smoothly with k (Fig. 5). Veit read this as a ResNet behaving like an "
        "ensemble of many relatively shallow paths.",
    ),
    "landscape": Finding(
        "landscape",
        LI_2018,
        "Li et al. 2018",
        "§5, Fig. 5",
        "skip connections keep the landscape smooth and convex-looking; without them it turns chaotic as "
        "depth grows (ResNet-56-noshort)",
        "With filter-normalised directions, ResNet-20/56/110 on CIFAR-10 show smooth, nearly convex loss "
        "contours around the minimum; the same nets without shortcuts are fine at 20 layers but become "
        "chaotic, with many local minima and sharp regions, at 56 and 110 layers (Fig. 5).",
    ),
    "shattered": Finding(
        "shattered",
        BALDUZZI_2017,
        "Balduzzi et al. 2017",
        "§2-3, Fig. 1-2",
        "the input gradients of deep plain nets decorrelate like white noise; those of ResNets stay "
        "correlated (brown noise)",
        "Along a line of inputs, the gradient of a deep plain net (24 layers of 200 rectifiers, with "
        "BatchNorm) at initialisation is nearly uncorrelated between neighbouring points -- white noise -- "
        "while a residual net's keeps its correlation like brown noise; the correlation of a plain net "
        "decays exponentially with depth (2^-L), that of a ResNet sub-linearly (about 1/sqrt(L)).",
    ),
}
