"""``synthetic:patterns`` -- a generated 8-class 16x16 RGB texture task that small conv nets
learn within ~100 steps (the default data of ``skiplab study``).

The class is the *kind* of a striped texture and its *frequency band*; everything else is
random nuisance:

====  ======================  =========================================================
 id    class                   texture inside the patch
====  ======================  =========================================================
 0-3   coarse {horizontal,     stripes of period 5-7 px: horizontal, vertical, diagonal
       vertical, diagonal,     (either diagonal, so a horizontal flip keeps the class),
       checker}                or a checkerboard (product of two orthogonal gratings)
 4-7   fine {...}              the same four kinds with a period of 2.6-3.4 px
====  ======================  =========================================================

Nuisances, drawn per image: orientation jitter of +-10 degrees, phase, a soft round patch
(radius 5-8 px, centre anywhere in the middle 8x8) outside which the image is flat, the
background colour, the colour direction of the texture, its contrast (0.2-0.6) and Gaussian
pixel noise (sigma 0.03-0.12). The classes are invariant under horizontal flips and small
translations, so the study's crop-and-flip augmentation keeps every label. Measured with
``cifar_resnet`` depth 20 (He 2015 recipe, lr 0.1, batch 128, bf16): training loss 2.3 ->
~0.5 and ~80% test accuracy after 120 steps -- learned fast, but not solved at once
(low-contrast fine textures under strong noise stay hard). At 16x16 a CIFAR net's step
costs about a quarter of its 32x32 step; their total stride 4 leaves 4x4 final maps.

Names: ``patterns`` (10k train / 2k test), ``patterns-2k``, ``patterns-500`` (N train,
N/5 test); options ``seed=S`` and ``test=M`` as for ``shapes``. Generation is a pure
function of (name, seed, split).
"""

from __future__ import annotations

import math

import torch

PATTERN_CLASSES = [
    f"{band}_{kind}" for band in ("coarse", "fine") for kind in ("horizontal", "vertical", "diagonal", "checker")
]
PATTERN_SIZE = 16
_PERIODS = ((5.0, 7.0), (2.6, 3.4))  # (low, high) period in pixels: coarse, fine
_BASE_ANGLE = (0.0, math.pi / 2, math.pi / 4, 0.0)  # horizontal, vertical, diagonal, checker


def _uniform(n: int, low: float | torch.Tensor, high: float | torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) * (high - low) + low).view(n, 1, 1)


def render_patterns(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Float images [n, 3, 16, 16] in [0, 1] for ``labels`` (ids of :data:`PATTERN_CLASSES`)."""
    n, size = labels.shape[0], PATTERN_SIZE
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = coords.view(1, size, 1), coords.view(1, 1, size)
    kind, fine = labels % 4, labels // 4
    low = torch.tensor([p[0] for p in _PERIODS])[fine]
    high = torch.tensor([p[1] for p in _PERIODS])[fine]
    wavenumber = 2 * math.pi / _uniform(n, low, high, g)
    jitter = _uniform(n, -math.radians(10), math.radians(10), g)
    mirror = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0).view(n, 1, 1)
    theta = torch.tensor(_BASE_ANGLE)[kind].view(n, 1, 1) * mirror + jitter
    along = x * torch.cos(theta) + y * torch.sin(theta)
    across = -x * torch.sin(theta) + y * torch.cos(theta)
    stripes = torch.sin(across * wavenumber + _uniform(n, 0, 2 * math.pi, g))
    other = torch.sin(along * wavenumber + _uniform(n, 0, 2 * math.pi, g))
    product = stripes * other
    checker = torch.sign(product) * product.abs().sqrt()  # keeps the checker's contrast up
    wave = torch.where((kind == 3).view(n, 1, 1), checker, stripes)

    radius = _uniform(n, 5.0, 8.0, g)
    cx, cy = _uniform(n, 4.0, size - 4.0, g), _uniform(n, 4.0, size - 4.0, g)
    distance = ((x - cx) ** 2 + (y - cy) ** 2).sqrt()
    patch = ((radius - distance).clamp(-1, 1) + 1) / 2  # soft edge one pixel wide

    background = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2
    direction = torch.randn(n, 3, 1, 1, generator=g)
    direction = direction / direction.flatten(1).norm(dim=1).view(n, 1, 1, 1)
    contrast = _uniform(n, 0.2, 0.6, g).unsqueeze(1)
    image = background + direction * contrast * (wave * patch).unsqueeze(1)
    sigma = _uniform(n, 0.03, 0.12, g).unsqueeze(1)
    image = image + torch.randn(n, 3, size, size, generator=g) * sigma
    return image.clamp(0, 1)
