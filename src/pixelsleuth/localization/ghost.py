"""JPEG ghosts (Farid, 2009): a region once compressed at a lower quality than the rest of the image.

Re-save the image at a range of JPEG qualities and measure, per block, how much it changes. A block
whose pixels already went through quality q changes little when saved at q again: its difference
curve dips there (the "ghost"). When a region was compressed at another quality than the rest (pasted
from another JPEG), its dip sits at another quality. Per quality, each block's difference is compared
with the image's median block at that quality (relative change); a block that is far below the median
at some quality, where the rest of the image is not, lights up.

Smooth, dark or saturated areas change little at every quality, which mimics a ghost. Three controls
keep them out: a block's dip at each quality is counted above its dip at the highest quality tried (a
ghost is specific to its quality; a flat area dips everywhere), a block whose dip is deepest at the
lowest quality tried shows no minimum and counts as 0, and the strongest region is reported only if its
mean is at least `min_region_mean` and it stands out of the image's other blocks (robust z-score against
the median and 1.4826 MAD of the blocks outside its box, at least `min_z`); otherwise the map is scaled
below 0.5. On the 13 genuine originals of the manip set these controls took the images with a region
from 10 to none (thresholds chosen on those, on photos of shared/data/real and on the manip train split).

It needs the region's earlier quality to be lower than the last save's (and above the lowest quality
tried), and JPEG-like content; it is silent on images never compressed, and on splices from sources
saved at the same quality.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = jpeg_ghost(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    >>> result.map.shape
    (64, 64)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from pixelsleuth.localization.ela import recompressed
from pixelsleuth.localization.record import (
    ForensicMap,
    block_view,
    blocks_to_pixels,
    check_rgb,
    strongest_region,
)

METHOD = "jpeg-ghost"
QUALITIES = tuple(range(50, 96, 5))


def ghost_curves(image: np.ndarray, qualities: Sequence[int] = QUALITIES, block: int = 16) -> np.ndarray:
    """Mean squared change of each block on re-saving at each quality: qualities x rows x cols."""
    pixels = image.astype(np.float32)
    curves = []
    for quality in qualities:
        change = ((pixels - recompressed(image, quality).astype(np.float32)) ** 2).mean(axis=-1)
        curves.append(block_view(change, block).mean(axis=(2, 3)))
    return np.stack(curves)


def jpeg_ghost(
    image: np.ndarray,
    qualities: Sequence[int] = QUALITIES,
    block: int = 16,
    *,
    saturation: float = 0.75,
    min_region_mean: float = 0.8,
    min_z: float = 5.0,
) -> ForensicMap:
    """Map of blocks with a JPEG ghost the rest of the image lacks.

    Args:
        image: H x W x 3 uint8 (or grey), at least 4 blocks a side.
        qualities: the re-save qualities to try.
        block: block size in pixels.
        saturation: the relative dip below the image's median block (0.75 = 75 % less change) that maps to 1.
        min_region_mean: the mean map value a region needs to be reported.
        min_z: how many robust standard deviations the region's mean must lie above the image's median block.

    Returns:
        A `ForensicMap` whose ``data["ghost_quality"]`` is the quality where the strongest region dips.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 4 blocks a side.
    """
    image = check_rgb(image, minimum=4 * block, method="the JPEG-ghost map")
    curves = ghost_curves(image, qualities, block)
    typical = np.median(curves, axis=(1, 2), keepdims=True)
    # Relative dip of each block under the image's median block, per quality (0 = no dip).
    dips = np.clip(1.0 - (curves + 1.0) / (typical + 1.0), 0.0, 1.0)
    specific = np.clip(dips - dips[-1:], 0.0, 1.0)
    strongest = np.where(specific.argmax(axis=0) == 0, 0.0, specific.max(axis=0))
    grid = ndimage.median_filter(np.clip(strongest / saturation, 0.0, 1.0), size=3, mode="nearest")
    heat = blocks_to_pixels(grid, block, image.shape[:2]).astype(np.float32)
    score = float(np.quantile(grid, 0.99))
    region = strongest_region(heat)
    data: dict = {"qualities": list(qualities), "block": block}
    if region is not None:
        # Contrast against the blocks outside the region's box (all blocks when the box covers nearly all).
        outside = np.ones(grid.shape, bool)
        outside[region.block_slices(block)] = False
        rest = grid[outside] if outside.sum() >= 16 else grid.ravel()
        median = float(np.median(rest))
        spread = max(1.4826 * float(np.median(np.abs(rest - median))), 0.05)
        data["region_z"] = round((region.mean - median) / spread, 2)
        if region.mean < min_region_mean or data["region_z"] < min_z:
            # Not reported, so nothing is left at or above 0.5; scaling keeps the map's order.
            region = None
            heat = heat * np.float32(0.49)
            score = min(score, 0.49)
    if region is None or score < 0.5:
        reading = "No region shows a JPEG ghost: no part was compressed at another quality than the rest."
        return ForensicMap(METHOD, heat, score, reading, None, data)
    rows, cols = region.block_slices(block)
    quality = int(qualities[int(np.argmax(specific[:, rows, cols].mean(axis=(1, 2))))])
    data["ghost_quality"] = quality
    reading = (
        f"The region {region.words()} shows a JPEG ghost at quality {quality} that the rest of the image "
        "lacks: it was probably compressed at that quality before being combined with the rest."
    )
    return ForensicMap(METHOD, heat, score, reading, region, data)
