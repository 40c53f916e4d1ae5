"""Speckle simulation and a deterministic generator of synthetic SAR scenes.

**Speckle** (Goodman 1976; Ulaby & Dobson): fully developed speckle on an L-look intensity
image is multiplicative, ``I = mu * n`` with ``n ~ Gamma(shape=L, scale=1/L)`` -- mean 1,
variance 1/L, so the equivalent number of looks ``ENL = E[I]^2 / Var[I]`` of a homogeneous
area is L. Amplitude is ``sqrt(I)`` (Nakagami-distributed). Non-integer L (multilooked data
with correlated looks, e.g. ~2.7) is allowed.

**Synthetic scenes** (:func:`synthetic_scene`), built in dB from one seed:

- homogeneous fields: a Voronoi partition (straight edges between fields), each field at a
  level drawn in [-25, 0] dB;
- textured regions: about a third of the fields carry a log-normal texture (a Gaussian random
  field low-pass filtered at a random correlation length of 1.5-6 px, 2-6 dB standard
  deviation) -- forest/urban-like heterogeneity;
- linear features: dark lines at the floor level (rivers, roads, shadow) and bright lines
  (fences, bridges), 1-3 px wide;
- point scatterers: 3x3 bright targets with -13 dB first side lobes (sinc-like), the
  brightest exactly ``dynamic_range_db`` above the floor.

The clean scene's dynamic range ``10*log10(max/min)`` equals ``dynamic_range_db`` (drawn
uniformly in [60, 100] dB unless given). The speckled scene is the clean intensity times
Gamma(L, 1/L) speckle; both are returned.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

FLOOR_DB = -40.0  # darkest clean level (dark lines)
FIELD_DB = (-25.0, 0.0)  # range of homogeneous field levels
SIDELOBE_DB = -13.26  # first side lobe of a sinc response


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of ``parts`` (platform independent)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _check_looks(looks: float) -> float:
    looks = float(looks)
    if not (math.isfinite(looks) and looks > 0):
        raise ValueError(f"looks must be a finite number > 0; found {looks}")
    return looks


def gamma_speckle(
    shape: Sequence[int], looks: float, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Multiplicative intensity speckle ``Gamma(shape=L, scale=1/L)``: mean 1, variance 1/L."""
    looks = _check_looks(looks)
    alpha = torch.full(tuple(shape), looks, dtype=torch.float64)
    return (torch._standard_gamma(alpha, generator=generator) / looks).to(dtype)


def add_speckle(intensity: torch.Tensor, looks: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Speckled L-look intensity: ``intensity * Gamma(L, 1/L)`` (mean preserved)."""
    if (intensity < 0).any() or not torch.isfinite(intensity).all():
        raise ValueError("clean intensity must be finite and >= 0")
    noise = gamma_speckle(intensity.shape, looks, generator, torch.float64)
    return (intensity.double() * noise).to(intensity.dtype)


def add_amplitude_speckle(
    amplitude: torch.Tensor, looks: float, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """Speckled L-look amplitude: ``sqrt(amplitude**2 * Gamma(L, 1/L))``."""
    return add_speckle(amplitude.square(), looks, generator).sqrt()


@dataclass
class SyntheticScene:
    """``clean`` and ``speckled`` intensity [H, W] (float32, linear power)."""

    clean: torch.Tensor
    speckled: torch.Tensor
    looks: float
    dynamic_range_db: float
    seed: int


def _uniform(generator: torch.Generator, low: float, high: float, n: int = 1) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _smooth_noise(height: int, width: int, corr_px: float, generator: torch.Generator) -> torch.Tensor:
    """Zero-mean, unit-variance Gaussian field with a Gaussian correlation of ``corr_px``."""
    noise = torch.randn(height, width, generator=generator)
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    transfer = torch.exp(-2 * (math.pi * corr_px) ** 2 * (fy**2 + fx**2))
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * transfer, s=(height, width))
    return ((field - field.mean()) / field.std().clamp_min(1e-12)).double()


def _segment_distance(yy: torch.Tensor, xx: torch.Tensor, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Distance of every pixel centre to the segment p-q (points as (y, x))."""
    d = q - p
    t = ((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / (d @ d).clamp_min(1e-12)
    t = t.clamp(0, 1)
    return torch.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))


def clean_scene_db(
    height: int,
    width: int,
    generator: torch.Generator,
    dynamic_range_db: float,
    n_fields: int = 12,
    n_lines: int = 4,
    n_points: int = 8,
) -> torch.Tensor:
    """The noise-free scene in dB (float64 [H, W]); min = FLOOR_DB, max = FLOOR_DB + range."""
    yy = torch.arange(height, dtype=torch.float64)[:, None].expand(height, width)
    xx = torch.arange(width, dtype=torch.float64)[None, :].expand(height, width)
    size = torch.tensor([height, width], dtype=torch.float64)
    # homogeneous fields: Voronoi cells with straight edges
    centres = torch.rand(n_fields, 2, generator=generator, dtype=torch.float64) * size
    dist = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    field = dist.argmin(0)
    levels = _uniform(generator, *FIELD_DB, n_fields)
    scene = levels[field]
    # textured regions: log-normal texture on about a third of the fields
    # (two texture fields, fine and coarse, shared by the textured cells: they are disjoint)
    textured = torch.rand(n_fields, generator=generator) < 1 / 3
    std_db = _uniform(generator, 2.0, 6.0, n_fields) * textured
    if textured.any():
        fine, coarse = (
            _smooth_noise(height, width, float(_uniform(generator, *corr)), generator)
            for corr in ((1.5, 3.0), (3.0, 6.0))
        )
        coarse_cell = torch.rand(n_fields, generator=generator) < 0.5
        scene = scene + torch.where(coarse_cell[field], coarse, fine) * std_db[field]
    # linear features: the first is dark (at the floor), then alternately bright / dark
    diag = float(torch.linalg.vector_norm(size))
    for i in range(n_lines):
        centre = torch.rand(2, generator=generator, dtype=torch.float64) * size
        angle = float(_uniform(generator, 0, math.pi))
        direction = torch.tensor([math.sin(angle), math.cos(angle)], dtype=torch.float64)
        back, ahead = (float(v) * diag for v in _uniform(generator, 0.1, 1.0, 2))
        p, q = centre - back * direction, centre + ahead * direction
        half_width = float(_uniform(generator, 0.5, 1.5))
        on_line = _segment_distance(yy, xx, p, q) <= half_width
        level = FLOOR_DB if i % 2 == 0 else float(_uniform(generator, 5.0, 15.0))
        scene = torch.where(on_line, torch.full_like(scene, level), scene)
    peak = FLOOR_DB + dynamic_range_db
    scene = scene.clamp(FLOOR_DB, peak - 3.0)
    # point scatterers: 3x3 sinc-like responses; the first is the scene's peak
    ys = torch.randint(1, height - 1, (n_points,), generator=generator)
    xs = torch.randint(1, width - 1, (n_points,), generator=generator)
    strengths = torch.cat(
        [torch.tensor([peak], dtype=torch.float64), _uniform(generator, peak - 30.0, peak - 3.0, n_points - 1)]
    )
    for y, x, s in zip(ys.tolist(), xs.tolist(), strengths.tolist()):
        patch = scene[y - 1 : y + 2, x - 1 : x + 2]
        lobes = torch.full((3, 3), s + 2 * SIDELOBE_DB, dtype=torch.float64)
        lobes[1, :] = lobes[:, 1] = s + SIDELOBE_DB
        lobes[1, 1] = s
        scene[y - 1 : y + 2, x - 1 : x + 2] = torch.maximum(patch, lobes)
    return scene


def synthetic_scene(
    size: int | tuple[int, int] = 256,
    *,
    looks: float = 1.0,
    seed: int = 0,
    dynamic_range_db: Optional[float] = None,
    n_fields: int = 12,
    n_lines: int = 4,
    n_points: int = 8,
) -> SyntheticScene:
    """A deterministic synthetic SAR intensity scene (clean and L-look speckled) from ``seed``.

    ``dynamic_range_db`` (max/min of the clean scene) is drawn uniformly in [60, 100] dB when
    None. The clean scene does not depend on ``looks``; the speckle is drawn from its own
    stream, so the same seed with different looks speckles the same scene.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if height < 8 or width < 8:
        raise ValueError(f"synthetic scenes need at least 8x8 pixels; found {height}x{width}")
    if n_fields < 1 or n_lines < 1 or n_points < 1:
        raise ValueError(f"need n_fields, n_lines, n_points >= 1; found {n_fields}, {n_lines}, {n_points}")
    looks = _check_looks(looks)
    generator = torch.Generator().manual_seed(derive_seed("sar-scene", seed))
    if dynamic_range_db is None:
        dynamic_range_db = float(_uniform(generator, 60.0, 100.0))
    if not 20.0 <= dynamic_range_db <= 200.0:
        raise ValueError(f"dynamic_range_db must lie in [20, 200] dB; found {dynamic_range_db}")
    scene_db = clean_scene_db(height, width, generator, dynamic_range_db, n_fields, n_lines, n_points)
    clean = torch.pow(10.0, scene_db / 10.0)
    speckle_gen = torch.Generator().manual_seed(derive_seed("sar-speckle", seed))
    speckled = clean * gamma_speckle(clean.shape, looks, speckle_gen, torch.float64)
    return SyntheticScene(clean.float(), speckled.float(), looks, float(dynamic_range_db), seed)


def synthetic_scenes(
    count: int, size: int | tuple[int, int] = 256, *, looks: float = 1.0, seed: int = 0, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` scenes as (clean, speckled) float32 intensity ``[count, H, W]``; scene i uses
    the seed ``derive_seed(seed, i)`` so different ``seed`` values give disjoint sets."""
    if count < 1:
        raise ValueError(f"count must be >= 1; found {count}")
    scenes = [synthetic_scene(size, looks=looks, seed=derive_seed("sar-set", seed, i), **kwargs) for i in range(count)]
    return (torch.stack([s.clean for s in scenes]), torch.stack([s.speckled for s in scenes]))
