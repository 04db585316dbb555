"""Copy-move detection by keypoints: a part of the image repeated elsewhere in it, as a source/copy pair.

SIFT keypoints are matched against the image's own keypoints with the generalised 2-nearest-neighbour
test (Amerini et al., 2011): a keypoint's nearest other keypoint counts as a match only when it is much
closer than the next one. Matches between points closer than `min_distance` are dropped (a keypoint's
neighbours on the same edge are not copies). The matched pairs are oriented the same way (left to
right) and affine transforms are fitted to them with RANSAC, up to `MAX_TRANSFORMS` of them.

Two checks decide whether a transform is a copy rather than chance or an honest repetition:

- **a-contrario** (`log10_nfa`): the number of inliers, counted once per 8-pixel cell so that a cluster
  of keypoints on one spot counts once, must be improbable if the matches landed at random: the number
  of false alarms = candidate transforms x the binomial tail of the inlier count, with the chance that
  a random match agrees with a transform = the tolerance disc / the image area. Only ``log10 NFA < 0``
  is reported.
- **dense verification** (`verify_transform`): the image's fine residual (image minus a slight blur,
  i.e. sensor noise and fine grain) is compared, pixel neighbourhood by pixel neighbourhood, with its
  warped counterpart. A copy carries its source's noise along; two honestly similar objects (windows,
  tiles, a crowd) do not. Where they agree closely is the copied area: a filled region instead of the
  keypoints' convex hull. Agreement counts only where it is specific to the exact transform (nudged by
  2-3 pixels it must drop: an edge or a ramp slid along itself keeps agreeing), where the intensities
  less their local mean are close too, in areas at least `OPENING` pixels wide and 0.3 % of the image,
  over at least `MIN_COVERED` of the keypoints' hull, and not when the source agrees with one more
  step back as well (a periodic pattern).

Keypoints need texture: flat copied areas go unseen (see `copymove_dense` for low-texture copies), and
a copy whose noise was destroyed (strong blur or recompression) fails verification and is not reported.

Example:
    >>> import numpy as np
    >>> result = copy_move(np.zeros((64, 64, 3), np.uint8))
    >>> result.score, result.region is None
    (0.0, True)
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.stats import binom

from pixelsleuth.localization.record import ForensicMap, Region, check_rgb

METHOD = "copy-move"
RATIO = 0.6
MAX_KEYPOINTS = 4000
MAX_TRANSFORMS = 3
TOLERANCE = 4.0  # RANSAC reprojection tolerance in pixels
CELL = 8  # inliers in one CELL x CELL cell count once
AGREEMENT = 0.5  # residual correlation above which a pixel's neighbourhood matches its counterpart
WINDOW = 9  # side of the neighbourhood compared in verification
NUDGES = ((3.0, 0.0), (0.0, 3.0), (2.0, 2.0), (2.0, -2.0))
SPECIFICITY = 0.3  # how much better the exact transform must agree than any nudged one
INTENSITY_TOLERANCE = 12.0  # mean absolute grey-level difference allowed between copy and source
MIN_AREA_FRACTION = 0.003  # smallest verified copy, as a share of the image (and at least 64 px)
FLOOR = -300.0
MIN_COVERED = 0.2  # share of the copy keypoints' hull that must verify
ECHO = 0.05  # share of a source that may agree with one more step back before it counts as periodic
OPENING = 11  # agreeing areas narrower than this are dropped: spurs along edges, not copies


def log10_nfa(trials: int, successes: int, probability: float, tests: float) -> float:
    """log10 of the expected number of chance events this strong: tests x P(Binomial(trials, p) >= k),
    floored at -300 (beyond what floating point resolves).

    >>> round(log10_nfa(100, 10, 0.001, 1e4), 1)
    -12.8
    """
    if successes <= 0:
        return math.log10(max(tests, 1.0))
    tail = binom.logsf(successes - 1, trials, probability) / math.log(10)
    return max(float(math.log10(max(tests, 1.0)) + tail), FLOOR)


def _keypoints(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS)
    points, descriptors = sift.detectAndCompute(gray, None)
    if descriptors is None or len(points) < 3:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
    return np.array([point.pt for point in points], np.float32), descriptors


def matched_pairs(gray: np.ndarray, min_distance: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """(source, copy) keypoint coordinates of every self-match that passes the 2NN test, left to right."""
    points, descriptors = _keypoints(gray)
    if len(points) < 3:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    sources, copies = [], []
    for found in matcher.knnMatch(descriptors, descriptors, k=4):
        # The keypoint finds itself at distance 0; an exact copy ties with it, so drop it by index.
        others = [match for match in found if match.trainIdx != match.queryIdx]
        if len(others) < 2 or others[0].distance >= RATIO * others[1].distance:
            continue
        a, b = points[others[0].queryIdx], points[others[0].trainIdx]
        if np.hypot(*(a - b)) < min_distance:
            continue
        left, right = (a, b) if (a[0], a[1]) <= (b[0], b[1]) else (b, a)
        sources.append(left)
        copies.append(right)
    if not sources:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    pairs = np.unique(np.hstack([np.array(sources), np.array(copies)]), axis=0)  # each pair found twice
    return np.ascontiguousarray(pairs[:, :2], np.float32), np.ascontiguousarray(pairs[:, 2:], np.float32)


def residual(gray: np.ndarray) -> np.ndarray:
    """The fine residual that a copy carries along: the image minus a slight blur (float32)."""
    values = gray.astype(np.float32)
    return values - cv2.GaussianBlur(values, (0, 0), 1.0)


def _local_correlation(a: np.ndarray, b: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel normalised correlation of a and b over window x window, and the smaller local spread."""
    size = (window, window)
    mean_a, mean_b = cv2.blur(a, size), cv2.blur(b, size)
    var_a = np.maximum(cv2.blur(a * a, size) - mean_a * mean_a, 0)
    var_b = np.maximum(cv2.blur(b * b, size) - mean_b * mean_b, 0)
    cov = cv2.blur(a * b, size) - mean_a * mean_b
    spread = np.sqrt(np.minimum(var_a, var_b))
    return cov / np.sqrt(var_a * var_b + 1e-3), spread


def verify_transform(
    gray: np.ndarray,
    fine: np.ndarray,
    affine: np.ndarray,
    *,
    min_distance: float,
    seeds: np.ndarray | None = None,
    window: int = WINDOW,
    agreement: float = AGREEMENT,
    min_area: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(copy, source) boolean masks where the residual agrees with itself moved by the affine transform.

    `fine` is `residual(gray)`; `affine` (2 x 3) maps source coordinates to copy coordinates. Pixels that
    the transform moves by less than `min_distance` are never copies (they would match themselves).
    With `seeds` ((x, y) copy points), only agreeing regions that contain or touch a seed are kept; regions
    smaller than `min_area` pixels (default: 0.05 % of the image, at least 64) are dropped.
    """
    height, width = fine.shape
    inverse = cv2.invertAffineTransform(affine)
    warped = cv2.warpAffine(fine, affine, (width, height), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones_like(fine), affine, (width, height), flags=cv2.INTER_NEAREST) > 0
    correlation, spread = _local_correlation(fine, warped, window)
    # Noise matches at one exact offset only. A straight edge or a smooth ramp matches itself slid along
    # its length too: where nudging the transform by NUDGE pixels in some direction keeps the agreement,
    # the agreement is structure, not a copy.
    specific = np.full(fine.shape, True)
    for nudge_x, nudge_y in NUDGES:
        nudged = affine.astype(np.float32).copy()
        nudged[:, 2] += (nudge_x, nudge_y)
        warped_nudged = cv2.warpAffine(fine, nudged, (width, height), flags=cv2.INTER_LINEAR)
        specific &= _local_correlation(fine, warped_nudged, window)[0] < correlation - SPECIFICITY
    # The residual of an edge reaches a few pixels past it; the intensities keep the mask on the copy.
    # Their difference is taken less its local mean, so that a copy made brighter or darker still counts.
    values = gray.astype(np.float32)
    moved_values = cv2.warpAffine(values, affine, (width, height), flags=cv2.INTER_LINEAR)
    difference = values - moved_values
    difference -= cv2.blur(difference, (15, 15))
    close = cv2.blur(np.abs(difference), (5, 5)) < INTENSITY_TOLERANCE
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    back_x = inverse[0, 0] * cols + inverse[0, 1] * rows + inverse[0, 2]
    back_y = inverse[1, 0] * cols + inverse[1, 1] * rows + inverse[1, 2]
    moved = np.hypot(back_x - cols, back_y - rows) >= min_distance
    # A neighbourhood without any residual (saturated or perfectly flat) agrees with anything.
    raw = (correlation > agreement) & specific & (spread > 0.3) & close & inside & moved
    agree = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, np.ones((OPENING, OPENING), np.uint8))
    agree = _fill_holes(cv2.morphologyEx(agree, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(agree, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= (
        max(64, MIN_AREA_FRACTION * height * width) if min_area is None else min_area
    )
    keep[0] = False
    if seeds is not None and len(seeds):
        grown = cv2.dilate(labels.astype(np.float32), np.ones((2 * window + 1, 2 * window + 1), np.uint8))
        x = np.clip(np.round(seeds[:, 0]).astype(int), 0, width - 1)
        y = np.clip(np.round(seeds[:, 1]).astype(int), 0, height - 1)
        touched = np.zeros(count, bool)
        touched[grown[y, x].astype(int)] = True
        keep &= touched
    copy = keep[labels]
    source = cv2.warpAffine(copy.astype(np.float32), inverse, (width, height), flags=cv2.INTER_LINEAR) >= 0.5
    # A periodic pattern (tiles, a fence, a printed texture) repeats once more: its source agrees with
    # what lies one more step back as well. The source of a copy does not.
    alone = source & ~copy
    if alone.any() and (raw & alone).sum() > ECHO * alone.sum():
        return np.zeros_like(copy), np.zeros_like(source)
    return copy, source


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """A 0/1 uint8 mask with every region it encloses set to 1 (flood-fills the outside from the border)."""
    padded = np.pad(mask, 1)
    outside = padded.copy()
    cv2.floodFill(outside, np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8), (0, 0), 2)
    return (outside != 2)[1:-1, 1:-1].astype(np.uint8)


def _verify_near(
    gray: np.ndarray,
    fine: np.ndarray,
    affine: np.ndarray,
    sources: np.ndarray,
    copies: np.ndarray,
    min_distance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`verify_transform` on the part of the image around the matched points (with a margin of their
    extent), so that a small copy in a large photo costs little; masks at full size."""
    height, width = gray.shape
    points = np.vstack([sources, copies])
    low, high = points.min(axis=0), points.max(axis=0)
    margin = max(32.0, float((high - low).max()))  # room for the source of the source (see ECHO)
    x0, y0 = (max(0, int(v - margin)) for v in low)
    x1, y1 = min(width, int(high[0] + margin) + 1), min(height, int(high[1] + margin) + 1)
    return verify_in_window(gray, fine, affine, (x0, y0, x1, y1), min_distance=min_distance, seeds=copies)


def verify_in_window(
    gray: np.ndarray,
    fine: np.ndarray,
    affine: np.ndarray,
    window: tuple[int, int, int, int],
    *,
    min_distance: float,
    seeds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`verify_transform` inside `window` (x0, y0, x1, y1) only; `affine` and `seeds` are in image
    coordinates, the copy and source masks come back at full size."""
    height, width = gray.shape
    x0, y0, x1, y1 = window
    shifted = affine.astype(np.float64).copy()
    # In window coordinates x' = x - o: the copy of s' is A (s' + o) + t - o.
    shifted[:, 2] += affine[:, :2] @ np.array([x0, y0], np.float64) - np.array([x0, y0], np.float64)
    copy_crop, source_crop = verify_transform(
        gray[y0:y1, x0:x1], fine[y0:y1, x0:x1], shifted.astype(np.float32), min_distance=min_distance,
        seeds=seeds - [x0, y0], min_area=max(64, MIN_AREA_FRACTION * height * width),
    )  # fmt: skip
    copy = np.zeros((height, width), bool)
    source = np.zeros((height, width), bool)
    copy[y0:y1, x0:x1] = copy_crop
    source[y0:y1, x0:x1] = source_crop
    return copy, source


def _copy_side(
    fine: np.ndarray, affine: np.ndarray, copy: np.ndarray, source: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(affine, copy, source) with the copy being the resampled side where the transform rotates or
    scales: resampling smooths, so the copy has the weaker fine residual. A pure shift says nothing and
    keeps the left-to-right order."""
    if np.abs(affine[:, :2] - np.eye(2)).max() < 0.02:
        return affine, copy, source
    if np.square(fine[copy]).mean() <= np.square(fine[source]).mean():
        return affine, copy, source
    return cv2.invertAffineTransform(affine), source, copy


def _cells(points: np.ndarray) -> int:
    return len(np.unique(np.floor(points / CELL).astype(np.int64), axis=0))


def mask_box(mask: np.ndarray) -> Region:
    """The bounding box of the largest connected part of a non-empty boolean mask."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    left, top, box_width, box_height, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    return Region(int(left), int(top), int(left + box_width), int(top + box_height), 1.0)


def copy_move(image: np.ndarray, *, min_inliers: int = 4, min_distance: float = 20.0) -> ForensicMap:
    """Find a region of the image copied to another place in it (moved, possibly rotated or scaled).

    Returns:
        A `ForensicMap`: ``map`` is 1 on the verified copy (the resampled one where the transform rotates
        or scales, else the right-hand or lower one of the pair: a pure shift does not tell which of the
        two was the original), ``data["source_map"]`` the same for its source
        (``map`` and ``source_map`` together are what copy-move ground truths marking both hold),
        ``score`` = min(1, inliers / (2 x min_inliers)), ``region`` the copy, ``data["source"]`` the
        source box, ``data["shift"]`` the translation, ``data["log10_nfa"]`` the a-contrario strength.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 32 x 32.
    """
    image = check_rgb(image, minimum=32, method="copy-move detection")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    shape = image.shape[:2]
    heat = np.zeros(shape, np.float32)
    source_heat = np.zeros(shape, np.float32)
    sources, copies = matched_pairs(gray, min_distance)
    data: dict = {"matches": len(sources), "source_map": source_heat, "log10_nfa": None}
    nothing = "No part of the image matches another part of it: no sign of copy-move."
    if len(sources) < min_inliers:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    fine = residual(gray)
    # A random match agrees with a fixed transform when its copy end falls in the tolerance disc.
    chance = min(1.0, math.pi * TOLERANCE**2 / (shape[0] * shape[1]))
    found: list[tuple[int, int, float, np.ndarray, np.ndarray, np.ndarray]] = []
    remaining = np.ones(len(sources), bool)
    strongest_nfa = math.inf
    for _ in range(MAX_TRANSFORMS):
        index = np.flatnonzero(remaining)
        if len(index) < min_inliers:
            break
        transform, inliers = cv2.estimateAffine2D(
            sources[index], copies[index], method=cv2.RANSAC, ransacReprojThreshold=TOLERANCE,
            maxIters=2000, confidence=0.99,
        )  # fmt: skip
        if transform is None or inliers is None:
            break
        keep = index[inliers.ravel().astype(bool)]
        remaining[keep] = False
        cells = min(_cells(sources[keep]), _cells(copies[keep]))
        count = len(keep)
        trials = _cells(sources[index])
        # Candidate transforms: every triple of matches could have proposed one.
        nfa = log10_nfa(max(trials - 3, 1), cells - 3, chance, math.comb(max(trials, 3), 3))
        strongest_nfa = min(strongest_nfa, nfa)
        if cells < min_inliers or nfa >= 0:
            break
        copy, source = _verify_near(gray, fine, transform, sources[keep], copies[keep], min_distance)
        # A copy agrees over most of the area its keypoints span; honestly repeated objects only in spots.
        span = cv2.contourArea(cv2.convexHull(copies[keep].astype(np.float32)))
        if copy.any() and copy.sum() >= MIN_COVERED * span:
            transform, copy, source = _copy_side(fine, transform, copy, source)
            found.append((count, cells, nfa, transform, copy, source))
    data["log10_nfa"] = None if math.isinf(strongest_nfa) else round(strongest_nfa, 2)
    if not found:
        if math.isfinite(strongest_nfa) and strongest_nfa < 0:
            nothing = (
                "Parts of the image look alike, but their fine detail differs: a repeated scene, not a copy."
            )
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    for *_, copy, source in found:
        heat[copy] = 1.0
        source_heat[source] = 1.0
    count, cells, nfa, transform, copy, source = max(found, key=lambda item: item[4].sum())
    copy_box, source_box = mask_box(copy), mask_box(source)
    shift = np.round(transform[:, 2]).astype(int).tolist()
    data.update(
        {
            "source": source_box.__dict__,
            "affine": np.round(transform, 4).tolist(),
            "shift": shift,
            "inliers": count,
            "inlier_cells": cells,
            "log10_nfa": round(nfa, 2),
            "copies": len(found),
        }
    )
    reading = (
        f"The region {copy_box.words()} repeats the region {source_box.words()} down to its fine "
        f"detail ({cells} matching keypoints agree on one transform, chance odds 1 in 10^{-nfa:.0f}): "
        "part of the image was probably copied and moved."
    )
    return ForensicMap(METHOD, heat, min(1.0, count / (2 * min_inliers)), reading, copy_box, data)
