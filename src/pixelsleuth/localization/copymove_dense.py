"""Copy-move detection by dense block matching: moved copies of low-texture areas that keypoints miss.

The search works on a grey copy shrunk to at most `WORK_PIXELS` pixels (images larger than that are
downscaled for the search only; the shift is then refined and verified at full resolution, so the
smallest copy it can find grows with the image: about `BLOCK` working pixels across). Overlapping
`BLOCK` x `BLOCK` blocks on a `STRIDE`-pixel grid are described by 9 low-frequency DCT coefficients,
computed for every pixel with separable filters and read off on the grid. Blocks whose spread is below
`FLAT` are left out: flat sky, walls and saturated areas match anything and are no evidence. The rest
are sorted lexicographically by their quantised coefficients and each is compared with the next
`NEIGHBOURS` in that order (Fridrich et al., 2003); close pairs at least `min_offset` pixels apart vote
for their shift vector (oriented left to right).

A shift is reported only if (1) its votes are improbable under chance (a-contrario: number of false
alarms = shift bins x binomial tail of the votes, with the chance that a random pair lands in a bin =
the bin's share of all shifts; ``log10 NFA < 0``), and (2) after the exact whole-pixel shift is found by
correlating the residuals near the voted one, the image's fine residual agrees with itself moved by that
shift over a region (`copymove.verify_transform`): smooth gradients and honest repetitions match their
shape but not their noise. Translations only: rotated or scaled copies are left to the keypoint detector
(`copymove`).

Example:
    >>> import numpy as np
    >>> result = dense_copy_move(np.full((64, 64, 3), 128, np.uint8))
    >>> result.score, result.region is None, result.data["blocks"]
    (0.0, True, 0)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pixelsleuth.localization.copymove import (
    AGREEMENT,
    log10_nfa,
    mask_box,
    residual,
    verify_in_window,
)
from pixelsleuth.localization.record import ForensicMap, check_rgb

METHOD = "copy-move (dense)"
BLOCK = 16
FLAT = 2.0  # grey-level standard deviation below which a block is flat
STRIDE = 3
WORK_PIXELS = 1_500_000
NEIGHBOURS = 8
QUANTUM = 2.0  # grey levels per quantisation step of a coefficient
CLOSE = 1.5  # largest mean coefficient difference (grey levels) of two matching blocks
CANDIDATES = 5  # most shifts verified per image, strongest votes first
MAX_CHECKED = 100  # most vote peaks checked (cheaply, on a sample of their blocks) per image
SAMPLE = 64  # blocks of a peak whose residuals are checked against their copies
MIN_AGREEING = 4  # voting blocks whose residual must agree with their copy's before the region is verified


def _basis() -> np.ndarray:
    """3 x BLOCK orthonormal DCT-II rows (frequencies 0, 1, 2), scaled so coefficients are grey levels."""
    index = np.arange(BLOCK)
    rows = np.stack([np.cos((2 * index + 1) * u * np.pi / (2 * BLOCK)) for u in range(3)])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / math.sqrt(BLOCK)).astype(np.float32)


def block_features(gray: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top-left corners (n x 2, x/y), 9 DCT coefficients (n x 9), standard deviations (n)) on the stride."""
    values = gray.astype(np.float32)
    height, width = values.shape
    # Filters are centred; a block with top-left (x, y) has its centre at (x + BLOCK/2, y + BLOCK/2).
    ys = np.arange(0, height - BLOCK + 1, stride)
    xs = np.arange(0, width - BLOCK + 1, stride)
    centre_y, centre_x = ys + BLOCK // 2, xs + BLOCK // 2
    anchor = (BLOCK // 2, BLOCK // 2)
    basis = _basis()
    features = []
    for u in range(3):
        for v in range(3):
            filtered = cv2.sepFilter2D(values, -1, basis[v], basis[u], anchor=anchor)
            features.append(filtered[np.ix_(centre_y, centre_x)].ravel())
    size = (BLOCK, BLOCK)
    mean = cv2.blur(values, size, anchor=anchor)[np.ix_(centre_y, centre_x)]
    square = cv2.blur(values * values, size, anchor=anchor)[np.ix_(centre_y, centre_x)]
    spread = np.sqrt(np.maximum(square - mean * mean, 0)).ravel()
    grid_x, grid_y = np.meshgrid(xs, ys)
    corners = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    return corners, np.stack(features, axis=1), spread


def _close_pairs(
    corners: np.ndarray, features: np.ndarray, min_offset: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a, b) of blocks with nearly equal features, at least min_offset apart, a left of b."""
    quantised = np.round(features / QUANTUM).astype(np.int32)
    order = np.lexsort(quantised.T[::-1])
    firsts, seconds = [], []
    for step in range(1, NEIGHBOURS + 1):
        a, b = order[:-step], order[step:]
        close = np.abs(features[a] - features[b]).mean(axis=1) < CLOSE
        offset = corners[b] - corners[a]
        close &= np.hypot(offset[:, 0], offset[:, 1]) >= min_offset
        firsts.append(a[close])
        seconds.append(b[close])
    a, b = np.concatenate(firsts), np.concatenate(seconds)  # each pair once: it is `step` apart in order
    swap = (corners[b, 0] < corners[a, 0]) | (
        (corners[b, 0] == corners[a, 0]) & (corners[b, 1] < corners[a, 1])
    )
    return np.where(swap, b, a), np.where(swap, a, b)


def _refine(
    fine: np.ndarray, sources: np.ndarray, shift: np.ndarray, reach: int, agreement: float
) -> tuple[np.ndarray, np.ndarray]:
    """The whole-pixel shift within `reach` of `shift` under which most voting blocks' residuals agree
    with their copies' (correlation above `agreement`), and which of `sources` (top-left corners) agree.
    """
    height, width = fine.shape
    windows = np.lib.stride_tricks.sliding_window_view(fine, (BLOCK, BLOCK))
    blocks = windows[sources[:, 1], sources[:, 0]].reshape(len(sources), -1)
    blocks = blocks - blocks.mean(axis=1, keepdims=True)
    norms = np.sqrt((blocks * blocks).sum(axis=1)) + 1e-6
    shift = np.round(shift)
    best, best_agree, best_score = shift, np.zeros(len(sources), bool), -1.0
    for dy in range(int(shift[1]) - reach, int(shift[1]) + reach + 1):
        for dx in range(int(shift[0]) - reach, int(shift[0]) + reach + 1):
            x, y = sources[:, 0] + dx, sources[:, 1] + dy
            valid = (x >= 0) & (y >= 0) & (x <= width - BLOCK) & (y <= height - BLOCK)
            if not valid.any():
                continue
            copies = windows[np.where(valid, y, 0), np.where(valid, x, 0)].reshape(len(sources), -1)
            copies = copies - copies.mean(axis=1, keepdims=True)
            correlation = (blocks * copies).sum(axis=1) / (
                norms * (np.sqrt((copies * copies).sum(axis=1)) + 1e-6)
            )
            agree = valid & (correlation > agreement)
            score = agree.sum() + float(np.where(valid, correlation, 0).mean())  # ties: higher correlation
            if score > best_score:
                best, best_agree, best_score = np.array([dx, dy], np.float64), agree, score
    return best, best_agree


def dense_copy_move(image: np.ndarray, *, min_offset: float = 32.0, min_votes: int = 12) -> ForensicMap:
    """Find an area of the image moved by a translation to another place in it, texture or none.

    Returns:
        A `ForensicMap` like `copymove.copy_move`'s: ``map`` 1 on the verified copy (the right-hand or
        lower one of the pair), ``data["source_map"]`` on its source, ``region`` the copy,
        ``data["source"]`` the source box, ``data["shift"]`` the (dx, dy) from source to copy,
        ``data["log10_nfa"]`` the a-contrario strength of the votes; ``score`` = min(1, -log10 NFA / 10).

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 64 x 64.
    """
    image = check_rgb(image, minimum=64, method="dense copy-move detection")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    heat = np.zeros((height, width), np.float32)
    source_heat = np.zeros((height, width), np.float32)
    scale = min(1.0, math.sqrt(WORK_PIXELS / (height * width)))
    work = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    stride = STRIDE
    corners, features, spread = block_features(work, stride)
    textured = spread >= FLAT
    data: dict = {
        "blocks": int(textured.sum()),
        "scale": round(scale, 4),
        "source_map": source_heat,
        "log10_nfa": None,
    }
    nothing = "No area of the image repeats elsewhere in it: no sign of a moved copy."
    if textured.sum() < 2 * min_votes:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    corners, features = corners[textured], features[textured]
    first, second = _close_pairs(corners, features, min_offset * scale)
    data["pairs"] = len(first)
    if len(first) < min_votes:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    shifts = corners[second] - corners[first]  # multiples of the stride; dx >= 0
    work_height, work_width = work.shape
    bins_x, bins_y = work_width // stride + 1, 2 * (work_height // stride) + 1
    bin_x, bin_y = shifts[:, 0] // stride, shifts[:, 1] // stride + work_height // stride
    # Full-resolution top-left corners of the blocks (same centres as in the working copy).
    full_corners = np.round((corners + BLOCK / 2) / scale - BLOCK / 2).astype(np.int64)
    full_corners = np.clip(full_corners, 0, [width - BLOCK, height - BLOCK])
    # A block in a smooth area matches many others (a ramp matches itself along its contour lines); a
    # block of a copy matches its twin. Each pair votes 1 / the larger number of matches of its blocks.
    degree = np.bincount(first, minlength=len(corners)) + np.bincount(second, minlength=len(corners))
    weight = 1.0 / np.maximum(degree[first], degree[second])
    votes = np.bincount(bin_y * bins_x + bin_x, weights=weight, minlength=bins_y * bins_x)
    # A copy off the stride lattice splits its votes among neighbouring bins: count 3 x 3 bins together.
    pooled = cv2.boxFilter(
        votes.reshape(bins_y, bins_x).astype(np.float32), -1, (3, 3), normalize=False,
        borderType=cv2.BORDER_CONSTANT,
    )  # fmt: skip
    peaks = (pooled >= cv2.dilate(pooled, np.ones((5, 5), np.uint8))) & (pooled >= min_votes)
    ranked = sorted(zip(pooled[peaks].tolist(), *np.nonzero(peaks), strict=True), reverse=True)[:MAX_CHECKED]
    chance = 9.0 / (bins_x * bins_y)
    trials = max(round(float(weight.sum())), 1)
    fine = residual(gray)
    found = []
    strongest_nfa = math.inf
    for pooled_votes, row, col in ranked:
        if len(found) >= CANDIDATES:
            break
        count = round(pooled_votes)
        nfa = log10_nfa(trials, count, chance, bins_x * bins_y)
        strongest_nfa = min(strongest_nfa, nfa)
        if nfa >= 0:
            break
        voters = np.flatnonzero((np.abs(bin_y - row) <= 1) & (np.abs(bin_x - col) <= 1))
        sample = voters[np.argsort(-weight[voters], kind="stable")[:SAMPLE]]
        # Cheap check first: the fine residuals of the voting blocks and of their copies must agree.
        reach = math.ceil(stride / scale / 2) + 1
        shift, agree = _refine(
            fine, full_corners[first[sample]], np.median(shifts[sample], axis=0) / scale, reach, AGREEMENT
        )
        if any(np.array_equal(shift, item[2]) for item in found) or agree.sum() < MIN_AGREEING:
            continue
        source_corners = full_corners[first[sample[agree]]]
        box = (
            int(source_corners[:, 0].min()),
            int(source_corners[:, 1].min()),
            int(source_corners[:, 0].max()) + BLOCK,
            int(source_corners[:, 1].max()) + BLOCK,
        )
        copy_centres = source_corners + shift + BLOCK // 2
        copy, source = _verify_in_crop(gray, fine, box, shift, min_offset, copy_centres)
        found.append((count, nfa, shift, copy, source))
    data["log10_nfa"] = None if math.isinf(strongest_nfa) else round(strongest_nfa, 2)
    found = [item for item in found if item[3].any()]
    if not found:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    for *_, copy, source in found:
        heat[copy] = 1.0
        source_heat[source] = 1.0
    count, nfa, shift, copy, source = max(found, key=lambda item: item[3].sum())
    copy_box, source_box = mask_box(copy), mask_box(source)
    data.update(
        {
            "source": source_box.__dict__,
            "shift": [int(shift[0]), int(shift[1])],
            "votes": count,
            "log10_nfa": round(nfa, 2),
            "copies": len(found),
        }
    )
    reading = (
        f"The area {copy_box.words()} repeats the area {source_box.words()} down to its fine detail "
        f"({count} blocks agree on one shift, chance odds 1 in 10^{-nfa:.0f}): part of the image was "
        "probably copied and moved."
    )
    return ForensicMap(METHOD, heat, min(1.0, -nfa / 10), reading, copy_box, data)


def _verify_in_crop(
    gray: np.ndarray,
    fine: np.ndarray,
    box: tuple[int, int, int, int],
    shift: np.ndarray,
    min_offset: float,
    seeds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`verify_transform` on the part of the image that holds the source box, its copy and a margin."""
    height, width = gray.shape
    left, top, right, bottom = box
    margin = 2 * BLOCK
    dx, dy = int(shift[0]), int(shift[1])  # whole pixels (see `_refine`)
    x0, x1 = max(0, min(left, left + dx) - margin), min(width, max(right, right + dx) + margin)
    y0, y1 = max(0, min(top, top + dy) - margin), min(height, max(bottom, bottom + dy) + margin)
    affine = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
    return verify_in_window(gray, fine, affine, (x0, y0, x1, y1), min_distance=min_offset, seeds=seeds)
