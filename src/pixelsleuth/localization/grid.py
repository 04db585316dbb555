"""JPEG grid map: regions whose 8 x 8 compression grid is shifted from the image's (in the spirit of ZERO).

JPEG quantizes the DCT of each 8 x 8 block of its grid, which leaves many coefficients at exactly zero
on that grid and fewer on any other. Every 8 x 8 block of the luminance (all H x W positions) is
transformed and its zeros counted; each pixel then votes for the grid origin (one of 64, row and column
modulo 8) of the block, among the 64 blocks that contain it, with the most zeros (no vote on a tie, as
in flat areas). The votes are pooled per 8 x 8 cell (the cell's majority). The image's main grid is the
origin most cells vote for; it is only believed when its count is meaningful a contrario (Nikoukhah et
al. 2019): the number of false alarms NFA = 64 x P[Binomial(n, 1/64) >= k] must be below 1.

Candidate forgeries are connected groups of cells voting for another origin than the main grid (a JPEG
pasted off the grid, or a JPEG pasted into a never-compressed image). Each is tested in its bounding box
against the image's own vote share of that origin (at least 1/64): NFA = tests x binomial tail, where
tests = 64 origins x C^2 possible boxes of C cells. Only groups with log10 NFA < 0 are reported, so that
an untouched image, JPEG or not, gives no region by chance. Parts with *no* grid inside a gridded image
are not tested: on genuine photos, textured areas of a high-quality JPEG vote for the main grid less
often than the rest, and a binomial test against the image-wide share flagged 5 of 54 of them.

Limits: quality above about 95 leaves too few zeros to vote with; resizing or filtering after the last
save erases every grid; a region pasted at the same grid origin as the background is invisible here
(see `adq` for that case).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = jpeg_grid(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    >>> result.map.shape, result.region, result.data["main_grid"]
    ((64, 64), None, None)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.stats import binom

from pixelsleuth.localization.dct import BLOCK, KRON, luminance
from pixelsleuth.localization.record import ForensicMap, Region, block_view, blocks_to_pixels, check_rgb

METHOD = "jpeg-grid"
ORIGINS = BLOCK * BLOCK
_NO_VOTE = ORIGINS  # the label of cells and pixels without a vote


def zero_counts(luma: np.ndarray, band: int = 128) -> np.ndarray:
    """Zeros among the rounded DCT coefficients of the 8 x 8 block at every pixel: (H-7) x (W-7) uint8."""
    height, width = luma.shape
    counts = np.zeros((height - BLOCK + 1, width - BLOCK + 1), np.uint8)
    centred = luma - 128.0
    for row in range(BLOCK):
        for col in range(BLOCK):
            blocks = block_view(centred[row:, col:], BLOCK)
            rows, cols = blocks.shape[:2]
            out = counts[row::BLOCK, col::BLOCK]
            for start in range(0, rows, band):
                part = np.ascontiguousarray(blocks[start : start + band]).reshape(-1, ORIGINS)
                coefficients = part @ KRON.T
                np.abs(coefficients, out=coefficients)
                zeros = (coefficients < 0.5).view(np.uint8).sum(axis=1, dtype=np.uint8)
                out[start : start + band, :cols] = zeros.reshape(-1, cols)
    return counts


def _window_argmax(values: np.ndarray, axis: int, index: np.ndarray | None, ties: np.ndarray | None):
    """Max over the 8 positions ending at each position along `axis`, its offset and whether it is shared."""
    length = values.shape[axis] + BLOCK - 1
    shape = list(values.shape)
    shape[axis] = length
    best = np.full(shape, -1, np.int16)
    where = np.zeros(shape, np.int16)
    shared = np.zeros(shape, bool)
    for offset in range(BLOCK):
        # The window ending at position p starts at p - offset; candidates are values[p - offset].
        target = [slice(None)] * values.ndim
        target[axis] = slice(offset, offset + values.shape[axis])
        target_t = tuple(target)
        candidate = values.astype(np.int16)
        current = best[target_t]
        greater = candidate > current
        equal = candidate == current
        # A new maximum is shared only if it was already shared in the first pass; an equal one always is.
        new_shared = np.where(greater, False if ties is None else ties, shared[target_t] | equal)
        position = np.full(values.shape, offset, np.int16) if index is None else offset * BLOCK + index
        where[target_t] = np.where(greater, position, where[target_t])
        best[target_t] = np.maximum(current, candidate)
        shared[target_t] = new_shared
    return best, where, shared


def pixel_votes(counts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel's vote: the origin (row % 8 * 8 + col % 8) of its block with most zeros; 64 on a tie."""
    # Along rows first: for each block start, the best of the 8 starts ending there, and its offset.
    best_c, offset_c, shared_c = _window_argmax(counts, 1, None, None)
    best, offset, shared = _window_argmax(best_c, 0, offset_c, shared_c)
    rows = np.arange(best.shape[0])[:, None]
    cols = np.arange(best.shape[1])[None, :]
    # The winning block starts at (row - offset_row, col - offset_col).
    start_row = rows - offset // BLOCK
    start_col = cols - offset % BLOCK
    votes = (start_row % BLOCK) * BLOCK + (start_col % BLOCK)
    votes = np.where(shared | (best <= 0), _NO_VOTE, votes).astype(np.uint8)
    return votes[: shape[0], : shape[1]]


def cell_votes(votes: np.ndarray) -> np.ndarray:
    """The majority vote of each 8 x 8 cell (64 when most of its pixels do not vote or disagree)."""
    cells = block_view(votes, BLOCK)
    rows, cols = cells.shape[:2]
    flat = cells.reshape(rows * cols, ORIGINS).astype(np.int64)
    histogram = np.bincount(
        (flat + np.arange(rows * cols)[:, None] * (ORIGINS + 1)).ravel(),
        minlength=rows * cols * (ORIGINS + 1),
    )
    histogram = histogram.reshape(rows * cols, ORIGINS + 1)
    winner = histogram[:, :ORIGINS].argmax(axis=1)
    majority = histogram[np.arange(rows * cols), winner] * 2 > ORIGINS
    return np.where(majority, winner, _NO_VOTE).reshape(rows, cols)


def log10_tail(k: int, n: int, p: float, upper: bool = True) -> float:
    """log10 P[Binomial(n, p) >= k] (upper) or <= k (lower)."""
    if upper:
        return float(binom.logsf(k - 1, n, p)) / math.log(10)
    return float(binom.logcdf(k, n, p)) / math.log(10)


def jpeg_grid(image: np.ndarray) -> ForensicMap:
    """Map of regions whose JPEG grid differs from the image's main grid, kept only when NFA < 1.

    Args:
        image: H x W x 3 uint8 (or grey), at least 64 pixels a side.

    Returns:
        A `ForensicMap`: 1 on the cells of the detected regions; below 0.5 elsewhere (half the local share
        of cells voting against the main grid). ``data`` holds ``main_grid`` ((row, col) origin or None),
        its ``main_log10_nfa``, and ``regions`` (box, origin voted for, log10 NFA).

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 64 x 64.
    """
    image = check_rgb(image, minimum=8 * BLOCK, method="The JPEG grid map")
    shape = image.shape[:2]
    votes = cell_votes(pixel_votes(zero_counts(luminance(image)), shape))
    rows, cols = votes.shape
    cells = rows * cols
    voting = votes < _NO_VOTE
    n_voting = int(voting.sum())
    tally = np.bincount(votes[voting].ravel(), minlength=ORIGINS)
    tests = math.log10(ORIGINS) + 2 * math.log10(cells)
    main = int(tally.argmax()) if n_voting else -1
    main_nfa = math.log10(ORIGINS) + log10_tail(int(tally[main]), n_voting, 1 / ORIGINS) if n_voting else 0.0
    has_grid = main_nfa < 0
    data: dict = {
        "main_grid": [main // BLOCK, main % BLOCK] if has_grid else None,
        "main_log10_nfa": round(main_nfa, 1),
        "voting_cells": n_voting,
        "regions": [],
    }

    detected = np.zeros((rows, cols), bool)
    found: list[tuple[float, Region, np.ndarray]] = []
    structure = np.ones((3, 3), bool)
    candidates = [g for g in range(ORIGINS) if g != main or not has_grid] if n_voting else []
    groups = [(origin, votes == origin) for origin in candidates if tally[origin] >= 4]
    for origin, mask in groups:
        closed = ndimage.binary_closing(mask, structure, iterations=1) | mask
        labels, _ = ndimage.label(closed)
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            member = labels[box] == index
            if member.sum() < 4:
                continue
            inside = voting[box]
            n = int(inside.sum())
            k = int((votes[box] == origin).sum())
            share = max(1 / ORIGINS, tally[origin] / n_voting) if has_grid else 1 / ORIGINS
            nfa = tests + log10_tail(k, n, share)
            if nfa < 0:
                region_cells = np.zeros((rows, cols), bool)
                region_cells[box] = member
                region_cells = ndimage.binary_fill_holes(region_cells)
                detected |= region_cells
                region = Region(
                    box[1].start * BLOCK, box[0].start * BLOCK, box[1].stop * BLOCK, box[0].stop * BLOCK, 1.0
                )
                found.append((nfa, region, region_cells))
                data["regions"].append(
                    {
                        "box": [region.left, region.top, region.right, region.bottom],
                        "origin": [origin // BLOCK, origin % BLOCK],
                        "log10_nfa": round(nfa, 1),
                    }
                )

    against = (voting & (votes != main)).astype(np.float64) if has_grid else np.zeros((rows, cols))
    local = ndimage.uniform_filter(against, size=5, mode="nearest") / np.maximum(
        ndimage.uniform_filter(voting.astype(np.float64), size=5, mode="nearest"), 1e-6
    )
    grid = np.where(detected, 1.0, 0.49 * np.clip(local, 0.0, 1.0))
    heat = blocks_to_pixels(grid, BLOCK, shape).astype(np.float32)
    if not found:
        score = 0.0
        if has_grid:
            reading = (
                f"The image has one JPEG grid (origin {main // BLOCK}, {main % BLOCK}) and no region votes "
                "meaningfully for another."
            )
        else:
            reading = (
                "No JPEG grid stands out anywhere in the image: it shows no meaningful compression grid."
            )
        return ForensicMap(METHOD, heat, score, reading, None, data)
    found.sort(key=lambda item: item[0])
    best_nfa, region, _ = found[0]
    score = float(min(1.0, 0.5 + 0.05 * -best_nfa))
    what = data["regions"][[r["log10_nfa"] for r in data["regions"]].index(round(best_nfa, 1))]
    grid_words = f"carries a JPEG grid at origin {what['origin'][0]}, {what['origin'][1]}"
    main_words = (
        f"the image's grid at {main // BLOCK}, {main % BLOCK}" if has_grid else "the rest of the image"
    )
    reading = (
        f"The region {region.words()} {grid_words}, unlike {main_words} (log10 NFA {best_nfa:.1f}): it was "
        "probably compressed separately and pasted in."
    )
    return ForensicMap(METHOD, heat, score, reading, region, data)
