"""Error Level Analysis: where an image recompresses differently from the rest of it.

Re-save the image as JPEG at `quality` and measure how much each 8 x 8 block of luma changes. Parts
that were already compressed at about that quality change little; parts with another history (pasted
from an uncompressed source, retouched, regenerated) change more. Raw ELA is hard to compare between
images, because its level depends on the content and the compression; here each block's error is
expressed as a ratio to the image's own median block error, so the map reads the same on every image:
1 means "at least `saturation` times the typical error of this image". Smooth-textured areas and hard
edges raise ELA too; the map is smoothed over 3 x 3 blocks so that single edge blocks do not count,
but a textured region next to a flat one can still look inconsistent — ELA is a cue, not a verdict.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = ela(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    >>> result.map.shape, 0.0 <= result.score <= 1.0
    ((64, 64), True)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from pixelsleuth.bench.perturb import jpeg
from pixelsleuth.localization.record import (
    ForensicMap,
    block_view,
    blocks_to_pixels,
    check_rgb,
    strongest_region,
)

METHOD = "ela"
BLOCK = 8
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def recompressed(image: np.ndarray, quality: int) -> np.ndarray:
    """The image saved as a baseline JPEG at `quality` (4:4:4, so chroma subsampling adds no error)."""
    return jpeg(image, quality, subsampling="4:4:4")


def block_error_levels(image: np.ndarray, quality: int = 90) -> np.ndarray:
    """Mean absolute luma change of each whole 8 x 8 block on re-saving at `quality` (rows x cols)."""
    difference = image.astype(np.float32) - recompressed(image, quality).astype(np.float32)
    luma_change = np.abs(difference @ _LUMA)
    return block_view(luma_change, BLOCK).mean(axis=(2, 3))


def ela(image: np.ndarray, quality: int = 90, *, saturation: float = 4.0) -> ForensicMap:
    """Error Level Analysis map of an RGB uint8 image, normalised by the image's own median error.

    Args:
        image: H x W x 3 uint8 (or H x W grey), at least 32 pixels a side.
        quality: the JPEG quality of the re-save (the region of interest differs most when it matches
            the quality the rest of the image was saved at; 90 is a common choice).
        saturation: the error ratio (block / image median) that maps to 1.

    Returns:
        A `ForensicMap`: ``map`` (log error ratio scaled to [0, 1], smoothed over 3 x 3 blocks), ``score``
        (the 99th percentile of the map), the strongest region above 0.5 and a sentence.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 32 x 32.
    """
    image = check_rgb(image, minimum=4 * BLOCK, method="ELA")
    if not 1 <= quality <= 100:
        raise ValueError(f"the JPEG quality must lie in 1..100, got {quality}")
    levels = block_error_levels(image, quality)
    typical = float(np.median(levels))
    floor = max(typical, 0.25)  # a near-lossless image: ratios against a quarter grey level, not zero
    ratio = (levels + 0.05) / (floor + 0.05)
    grid = np.clip(np.log(ratio) / np.log(saturation), 0.0, 1.0)
    grid = ndimage.median_filter(grid, size=3, mode="nearest")
    heat = blocks_to_pixels(grid, BLOCK, image.shape[:2]).astype(np.float32)
    score = float(np.quantile(grid, 0.99))
    region = strongest_region(heat)
    data = {"quality": quality, "median_block_error": round(typical, 4)}
    if region is None or score < 0.5:
        reading = (
            f"Error levels are even across the image when it is re-saved at JPEG quality {quality}: "
            "no region recompresses differently from the rest."
        )
        return ForensicMap(METHOD, heat, score, reading, None, data)
    rows, cols = region.block_slices(BLOCK)
    times = float(np.median(levels[rows, cols]) + 0.05) / (floor + 0.05)
    data["region_error_ratio"] = round(times, 2)
    reading = (
        f"The region {region.words()} changes {times:.1f}× more than the rest of the image when re-saved "
        f"at JPEG quality {quality}: it may have a different compression history (pasted, retouched or "
        "regenerated), or simply more texture."
    )
    return ForensicMap(METHOD, heat, score, reading, region, data)
