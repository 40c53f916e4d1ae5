"""The tile grid over a whole scene and the blending of overlapping windows.

**Tiling.** The scene is covered by ``tile x tile`` windows every ``tile - overlap`` pixels,
the last row and column of windows moved flush with the border
(:func:`skiplab.sar.training.tiles.tile_origins`), so every pixel is seen by at least one
window and most by two or four. The tile side must be a multiple of the model's total
stride (16 for the four-level autoencoders). A scene smaller than the tile along an axis
is processed with the largest smaller tile that is a multiple of the stride (printed as a
note); a scene smaller than the stride itself cannot be encoded and is a ``ValueError``.

**Blending.** Each window's reconstruction is weighted by a separable window
``w(y) w(x)`` that rises as ``sin^2`` over the first ``overlap`` pixels, is 1 inside and
falls as ``cos^2`` over the last ``overlap`` pixels, floored at a tiny positive value; the
output is ``sum(w * tile) / sum(w)`` in the normalised log domain, then mapped back to
physical units. Two windows overlapping by exactly ``overlap`` pixels cross-fade with
weights summing to 1 (``sin^2 + cos^2``), so the border pixels of a window -- where the
convolutions saw zero padding -- carry almost no weight wherever a neighbour covers them,
and no tile grid shows; at the scene's own border the single window's value is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..training.tiles import tile_origins

DEFAULT_TILE = 256
WINDOW_FLOOR = 1e-6


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """The 1-D blending weights [tile]: ``sin^2`` ramp over ``overlap`` px at each end, 1
    inside, at least :data:`WINDOW_FLOOR` (see the module documentation)."""
    if not 0 <= overlap <= tile // 2:
        raise ValueError(f"overlap must be in [0, tile/2 = {tile // 2}]; found {overlap}")
    w = np.ones(tile, dtype=np.float64)
    if overlap:
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap], w[tile - overlap :] = ramp, ramp[::-1]
    return np.maximum(w, WINDOW_FLOOR)


@dataclass(frozen=True)
class TileGrid:
    """The windows covering a ``height x width`` scene: origins ``ys`` x ``xs``."""

    height: int
    width: int
    tile: int
    overlap: int

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def ys(self) -> list[int]:
        return tile_origins(self.height, self.tile, self.stride)

    @property
    def xs(self) -> list[int]:
        return tile_origins(self.width, self.tile, self.stride)

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def to_dict(self) -> dict:
        return dict(height=self.height, width=self.width, tile=self.tile, overlap=self.overlap)


def make_grid(
    height: int, width: int, reduction: int, tile: Optional[int] = None, overlap: Optional[int] = None
) -> tuple[TileGrid, Optional[str]]:
    """The tile grid for a scene and a model of total stride ``reduction``, and a note when
    the tile (and the overlap with it) had to shrink to fit the scene. Default tile 256,
    overlap tile / 4; an overlap above tile / 2 is refused."""
    tile = DEFAULT_TILE if tile is None else int(tile)
    if tile < reduction or tile % reduction:
        raise ValueError(
            f"the tile must be a multiple of the model's total stride {reduction} "
            f"(e.g. {max(reduction, tile // reduction * reduction)}); found {tile}"
        )
    side = min(height, width)
    if side < reduction:
        raise ValueError(
            f"the scene is {height}x{width} px: smaller than the model's minimum "
            f"input {reduction}x{reduction} (its total stride); pad the scene"
        )
    if overlap is not None and not 0 <= overlap <= tile // 2:
        raise ValueError(f"the overlap must be in [0, tile/2 = {tile // 2}] for {tile} px tiles; found {overlap}")
    note = None
    if side < tile:
        fitted = side // reduction * reduction
        note = f"the scene ({height}x{width}) is smaller than the {tile} px tile: using {fitted} px tiles"
        if overlap is not None and overlap > fitted // 2:
            note += f", overlap {fitted // 2} (half the tile) instead of {overlap}"
            overlap = fitted // 2
        tile = fitted
    overlap = tile // 4 if overlap is None else int(overlap)
    return TileGrid(int(height), int(width), tile, overlap), note


class Blender:
    """Accumulates weighted tile rows and hands finished scene rows to ``emit(rows, valid)``
    (float64 normalised values and the valid mask), in order."""

    def __init__(
        self, grid: TileGrid, emit: Callable[[np.ndarray, np.ndarray], None], strip_tiles: Optional[int] = 1
    ) -> None:
        self.grid, self.emit, self.strip_tiles = grid, emit, strip_tiles
        w = blend_window(grid.tile, grid.overlap)
        self.window = np.outer(w, w)
        self.top = 0  # first row not yet emitted
        self.acc = np.zeros((0, grid.width))
        self.weight = np.zeros((0, grid.width))
        self.valid = np.zeros((0, grid.width), dtype=bool)
        self.rows_done = 0

    def add_row(self, y: int, tiles: np.ndarray, valid: np.ndarray) -> None:
        """Add the reconstructions [n_x, T, T] of the window row at ``y``."""
        g = self.grid
        grow = y + g.tile - (self.top + len(self.acc))
        if grow > 0:
            self.acc = np.concatenate([self.acc, np.zeros((grow, g.width))])
            self.weight = np.concatenate([self.weight, np.zeros((grow, g.width))])
            self.valid = np.concatenate([self.valid, np.zeros((grow, g.width), dtype=bool)])
        r = y - self.top
        self.valid[r : r + g.tile] = valid
        for x, tile in zip(g.xs, tiles):
            self.acc[r : r + g.tile, x : x + g.tile] += self.window * tile
            self.weight[r : r + g.tile, x : x + g.tile] += self.window
        self.rows_done += 1
        ys = g.ys
        if self.rows_done == len(ys):
            self._flush(g.height)
        elif self.strip_tiles and self.rows_done % self.strip_tiles == 0:
            self._flush(ys[self.rows_done])  # rows above the next window row are final

    def _flush(self, bottom: int) -> None:
        n = bottom - self.top
        if n <= 0:
            return
        self.emit(self.acc[:n] / self.weight[:n], self.valid[:n])
        self.acc, self.weight, self.valid = self.acc[n:], self.weight[n:], self.valid[n:]
        self.top = bottom


__all__ = ["DEFAULT_TILE", "WINDOW_FLOOR", "Blender", "TileGrid", "blend_window", "make_grid"]
