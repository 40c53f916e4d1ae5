"""``synthetic:shapes`` -- a generated 10-class 32x32 RGB task for tests and data-free runs
(and ``synthetic:patterns``, the 8-class 16x16 texture task that ``skiplab study`` trains by
default, see :mod:`skiplab.data.synthetic_patterns`).

Each image shows one shape whose *form* is the class; everything else is random nuisance:

====  ===============  ==================================================================
 id    class            form (in shape coordinates u, v, radius 1)
====  ===============  ==================================================================
 0     disk             u^2 + v^2 < 1
 1     ring             0.55 < |(u, v)| < 1
 2     square           max(|u|, |v|) < 0.8
 3     frame            0.45 < max(|u|, |v|) < 0.8   (hollow square)
 4     triangle         v > -0.5 and v < 1 - sqrt(3)|u|
 5     plus             a cross of two bars of half-width 0.28
 6     crescent         disk minus a disk shifted by 0.45
 7     dumbbell         two disks of radius 0.42 at u = +-0.55
 8     striped disk     disk filled with stripes (period ~0.7)
 9     checker square   square filled with a checkerboard
====  ===============  ==================================================================

Nuisances, drawn per image: centre (anywhere that keeps most of the shape visible),
radius 6-11 px, rotation, foreground and background colour (RGB distance 0.35-0.8),
a faint background grating of random orientation and frequency, up to two small
distractor blobs of random colour, and Gaussian pixel noise (sigma 0.02-0.08). Colour
carries no class information, small rings/frames/crescents resemble disks and squares,
and dumbbells resemble pairs of distractors, so a small conv net needs several epochs and
does not reach 100% at once.

Names: ``shapes`` (10k train / 2k test), ``shapes-2k``, ``shapes-500`` (N train, N/5 test),
and the same sizes of ``patterns`` (``patterns``, ``patterns-2k``, ...); options ``seed=S`` (default 0) and ``test=M`` (test size). Generation is a pure function of
(name, seed): train and test come from independent streams, so changing the training
size never changes the test set.
"""

from __future__ import annotations

import hashlib
import math
import re

import torch

from .dataset import RawData
from .synthetic_patterns import PATTERN_CLASSES, PATTERN_SIZE, render_patterns

CLASSES = [
    "disk",
    "ring",
    "square",
    "frame",
    "triangle",
    "plus",
    "crescent",
    "dumbbell",
    "striped_disk",
    "checker_square",
]
IMAGE_SIZE = 32
_NAME = re.compile(r"^(shapes|patterns)(?:-(\d+)(k?))?$")


def _generator(seed: int, stream: str) -> torch.Generator:
    digest = hashlib.blake2b(f"skiplab.synthetic:{seed}:{stream}".encode(), digest_size=8)
    return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def _class_mask(label: int, u: torch.Tensor, v: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """Foreground mask of class ``label`` at shape coordinates (u, v) (radius 1)."""
    rad2 = u * u + v * v
    box = torch.maximum(u.abs(), v.abs())
    if label == 0:
        return rad2 < 1
    if label == 1:
        return (rad2 > 0.55**2) & (rad2 < 1)
    if label == 2:
        return box < 0.8
    if label == 3:
        return (box > 0.45) & (box < 0.8)
    if label == 4:
        return (v > -0.5) & (v < 1 - math.sqrt(3) * u.abs())
    if label == 5:
        return ((u.abs() < 0.28) & (v.abs() < 1)) | ((v.abs() < 0.28) & (u.abs() < 1))
    if label == 6:
        return (rad2 < 1) & ((u - 0.45) ** 2 + v * v > 0.75**2)
    if label == 7:
        return ((u - 0.55) ** 2 + v * v < 0.42**2) | ((u + 0.55) ** 2 + v * v < 0.42**2)
    if label == 8:
        return (rad2 < 1) & (torch.sin(u * freq) > 0)
    return (box < 0.8) & (torch.sin(u * freq) * torch.sin(v * freq) > 0)


def _render(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Float images [n, 3, 32, 32] in [0, 1] for the given labels."""
    n, size = labels.shape[0], IMAGE_SIZE
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = coords.view(1, size, 1), coords.view(1, 1, size)
    radius = _uniform(n, 6.0, 11.0, g).view(n, 1, 1)
    cx = (_uniform(n, 0, 1, g).view(n, 1, 1) * (size - 2 * radius * 0.8)) + radius * 0.8
    cy = (_uniform(n, 0, 1, g).view(n, 1, 1) * (size - 2 * radius * 0.8)) + radius * 0.8
    angle = _uniform(n, 0, 2 * math.pi, g).view(n, 1, 1)
    dx, dy = (x - cx) / radius, (y - cy) / radius
    u = dx * torch.cos(angle) + dy * torch.sin(angle)
    v = -dx * torch.sin(angle) + dy * torch.cos(angle)
    freq = _uniform(n, 7.0, 10.0, g).view(n, 1, 1)
    mask = torch.zeros(n, 1, size, size)
    for label in range(len(CLASSES)):
        rows = (labels == label).nonzero().squeeze(1)
        if len(rows):
            mask[rows, 0] = _class_mask(label, u[rows], v[rows], freq[rows]).float()

    background = torch.rand(n, 3, 1, 1, generator=g)
    direction = torch.randn(n, 3, 1, 1, generator=g)
    direction = direction / direction.flatten(1).norm(dim=1).view(n, 1, 1, 1)
    contrast = _uniform(n, 0.35, 0.8, g).view(n, 1, 1, 1)
    # step away from the background in the direction (or its opposite) that the [0, 1]
    # clamp shortens least, so every shape keeps a visible contrast
    up = (background + direction * contrast).clamp(0, 1)
    down = (background - direction * contrast).clamp(0, 1)
    gain_up = (up - background).flatten(1).norm(dim=1)
    gain_down = (down - background).flatten(1).norm(dim=1)
    foreground = torch.where((gain_up >= gain_down).view(n, 1, 1, 1), up, down)

    # faint background grating of random orientation and frequency
    theta = _uniform(n, 0, math.pi, g).view(n, 1, 1)
    wave = torch.sin(
        (x * torch.cos(theta) + y * torch.sin(theta)) * _uniform(n, 0.3, 1.5, g).view(n, 1, 1)
        + _uniform(n, 0, 2 * math.pi, g).view(n, 1, 1)
    )
    image = background + 0.06 * wave.unsqueeze(1)
    image = image * (1 - mask) + foreground * mask

    for _ in range(2):  # distractor blobs, the second one present half of the time
        bx = _uniform(n, 0, size, g).view(n, 1, 1)
        by = _uniform(n, 0, size, g).view(n, 1, 1)
        br = _uniform(n, 0.8, 1.8, g).view(n, 1, 1)
        present = (torch.rand(n, generator=g) < 0.75).view(n, 1, 1)
        blob = (((x - bx) ** 2 + (y - by) ** 2 < br * br) & present).unsqueeze(1).float()
        colour = torch.rand(n, 3, 1, 1, generator=g)
        image = image * (1 - blob) + colour * blob

    sigma = _uniform(n, 0.02, 0.08, g).view(n, 1, 1, 1)
    image = image + torch.randn(n, 3, size, size, generator=g) * sigma
    return image.clamp(0, 1)


def generate_shapes(
    num: int, seed: int = 0, stream: str = "train", chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` balanced samples: uint8 images [num, 3, 32, 32] and int64 labels [num]."""
    return _generate(num, seed, stream, chunk, len(CLASSES), IMAGE_SIZE, _render)


def generate_patterns(
    num: int, seed: int = 0, stream: str = "train", chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` balanced ``patterns`` samples: uint8 images [num, 3, 16, 16], int64 labels."""
    return _generate(num, seed, f"patterns-{stream}", chunk, len(PATTERN_CLASSES), PATTERN_SIZE, render_patterns)


def _generate(
    num: int, seed: int, stream: str, chunk: int, classes: int, size: int, render
) -> tuple[torch.Tensor, torch.Tensor]:
    if num <= 0:
        raise ValueError(f"number of synthetic images must be positive; found {num}")
    g = _generator(seed, stream)
    labels = (torch.arange(num) % classes)[torch.randperm(num, generator=g)]
    images = torch.empty(num, 3, size, size, dtype=torch.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: intra-op threads only add contention
    try:
        for start in range(0, num, chunk):
            part = render(labels[start : start + chunk], g)
            images[start : start + chunk] = (part * 255).round().to(torch.uint8)
    finally:
        torch.set_num_threads(threads)
    return images, labels


def parse_synthetic_name(name: str, options: dict) -> tuple[int, int, int]:
    """(train size, test size, seed) from ``shapes[-N[k]]`` or ``patterns[-N[k]]`` and
    options seed=, test=."""
    match = _NAME.match(name)
    if not match:
        raise ValueError(
            f"unknown synthetic dataset {name!r}; expected 'shapes' or 'patterns', "
            f"optionally with a size -Nk or -N (e.g. synthetic:shapes-2k, "
            f"synthetic:patterns-500)"
        )
    unknown = set(options) - {"seed", "test"}
    if unknown:
        raise ValueError(f"unknown synthetic option(s) {sorted(unknown)}; expected seed=, test=")
    train = 10_000
    if match.group(2):
        train = int(match.group(2)) * (1000 if match.group(3) else 1)
    try:
        seed = int(options.get("seed", 0))
        test = int(options.get("test", max(train // 5, 1)))
    except ValueError as err:
        raise ValueError(f"synthetic options seed= and test= must be integers: {err}") from None
    if train <= 0 or test <= 0:
        raise ValueError(f"synthetic sizes must be positive; found train={train}, test={test}")
    return train, test, seed


def load_synthetic(name: str, options: dict) -> RawData:
    """Both splits of ``synthetic:NAME`` (see the module docstring for names and options)."""
    train, test, seed = parse_synthetic_name(name, options)
    suffix = f",seed={seed}" if seed else ""
    if name.startswith("patterns"):
        classes, generate = PATTERN_CLASSES, generate_patterns
    else:
        classes, generate = CLASSES, generate_shapes
    return RawData(
        f"synthetic:{name}{suffix}", list(classes), generate(train, seed, "train"), generate(test, seed, "test")
    )
