"""Weight initialisation shared by the residual models.

* Convolutions: He et al. 2015 ("Delving Deep into Rectifiers", Eq. 10), normal with
  std = sqrt(2 / fan_out), as torchvision's ResNet.
* BatchNorm / GroupNorm: γ = 1, β = 0.
* ``zero_init_residual`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD", §5.1):
  every block with a ``zero_init_last()`` method zeroes the last scale of its residual
  branch, so a fresh residual block passes its input along the shortcut unchanged.
"""

from __future__ import annotations

from torch import nn


def init_weights(model: nn.Module, zero_init_residual: bool = True) -> None:
    """He (fan_out) init for convs, unit/zero for norms, then optionally zero the branches."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.BatchNorm1d)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
