"""A fixed pixel budget per image for learned detectors: where the tiles go (numpy only, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PixelBudget:
    """How many pixels a detector reads per image, whatever the image's size.

    Images of at most `whole_image_pixels` are scored whole. Larger ones are scored on up to
    `tiles` square tiles of side `tile`, spread evenly over the image and fed `batch` at a time, and
    their probabilities averaged: memory and time stay fixed from 1 to 100 megapixels.
    """

    whole_image_pixels: int = 512 * 512
    tile: int = 256
    tiles: int = 16
    batch: int = 4

    @property
    def label(self) -> str:
        """Part of the analysis version: results change when the budget does."""
        return f"whole<={self.whole_image_pixels},tiles:{self.tiles}x{self.tile}"


DEFAULT_PIXEL_BUDGET = PixelBudget()
# Tile corners on multiples of 16 keep each tile's JPEG block and chroma grids in phase with the image's.
_TILE_ALIGN = 16


def tile_origins(height: int, width: int, tile: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of at most `count` tiles of `tile` x `tile` pixels spread evenly over an image.

    The grid keeps the image's aspect ratio; corners lie on multiples of 16 where the image allows.

    Example:
        >>> tile_origins(1024, 1024, 256, 4)
        [(0, 0), (0, 768), (768, 0), (768, 768)]
    """
    tile_h, tile_w = min(tile, height), min(tile, width)
    rows = int(np.clip(round(np.sqrt(count * height / max(width, 1))), 1, count))
    cols = max(1, count // rows)
    rows = min(rows, max(1, height // tile_h))
    cols = min(cols, max(1, width // tile_w))

    def starts(extent: int, size: int, n: int) -> list[int]:
        if n == 1:
            return [(extent - size) // 2 // _TILE_ALIGN * _TILE_ALIGN]
        last = extent - size
        aligned = [round(i * last / (n - 1)) // _TILE_ALIGN * _TILE_ALIGN for i in range(n)]
        return sorted(set(aligned))

    return [(top, left) for top in starts(height, tile_h, rows) for left in starts(width, tile_w, cols)]


def budget_crops(
    rgb: np.ndarray, budget: PixelBudget = DEFAULT_PIXEL_BUDGET
) -> tuple[list[np.ndarray], bool]:
    """What a detector reads of one image within `budget`: the whole image, or (True) its tiles (views)."""
    height, width = rgb.shape[:2]
    if height * width <= budget.whole_image_pixels:
        return [rgb], False
    origins = tile_origins(height, width, budget.tile, budget.tiles)
    tile_h, tile_w = min(budget.tile, height), min(budget.tile, width)
    return [rgb[top : top + tile_h, left : left + tile_w] for top, left in origins], True
