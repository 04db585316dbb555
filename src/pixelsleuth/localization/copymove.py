"""Copy-move detection by keypoints: a part of the image repeated elsewhere in it, as a source/copy pair.

SIFT keypoints are matched against the image's own keypoints with the generalised 2-nearest-neighbour
test (Amerini et al., 2011): a keypoint's nearest other keypoint counts as a match only when it is much
closer than the next one. Matches between points closer than `min_distance` are dropped (a keypoint's
neighbours on the same edge are not copies). The matched pairs are oriented the same way (left to
right) and one affine transform is fitted to them with RANSAC; at least `min_inliers` pairs that agree
on it are a copy-move. Both regions are drawn as the convex hulls of their inlier keypoints.

Keypoints need texture: flat copied areas (sky, walls) go unseen, and scenes that repeat themselves
(windows, tiles, crowds of similar objects) can match honestly; `min_inliers` keeps chance matches out.

Example:
    >>> import numpy as np
    >>> result = copy_move(np.zeros((64, 64, 3), np.uint8))
    >>> result.score, result.region is None
    (0.0, True)
"""

from __future__ import annotations

import cv2
import numpy as np

from pixelsleuth.localization.record import ForensicMap, Region, check_rgb

METHOD = "copy-move"
RATIO = 0.6
MAX_KEYPOINTS = 4000


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


def _hull_region(points: np.ndarray, shape: tuple[int, int], heat: np.ndarray) -> Region:
    hull = cv2.convexHull(points.astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(heat, hull, 1.0)
    left, top = np.floor(points.min(axis=0)).astype(int)
    right, bottom = np.ceil(points.max(axis=0)).astype(int) + 1
    return Region(int(left), int(top), int(min(right, shape[1])), int(min(bottom, shape[0])), 1.0)


def copy_move(image: np.ndarray, *, min_inliers: int = 8, min_distance: float = 20.0) -> ForensicMap:
    """Find a region of the image copied to another place in it (moved, possibly rotated or scaled).

    Returns:
        A `ForensicMap`: ``map`` is 1 inside the hulls of the copy and of its source (both, as copy-move
        ground truths usually mark them), ``score`` = min(1, inliers / (2 x min_inliers)), ``region`` the
        copy (``data["source"]`` the source box), and a sentence naming both.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or smaller than 32 x 32.
    """
    image = check_rgb(image, minimum=32, method="copy-move detection")
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    heat = np.zeros(image.shape[:2], np.float32)
    sources, copies = matched_pairs(gray, min_distance)
    data: dict = {"matches": len(sources)}
    nothing = "No part of the image matches another part of it: no sign of copy-move."
    if len(sources) < min_inliers:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    transform, inliers = cv2.estimateAffine2D(
        sources, copies, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=2000, confidence=0.99
    )
    count = int(inliers.sum()) if inliers is not None else 0
    data["inliers"] = count
    if transform is None or count < min_inliers:
        return ForensicMap(METHOD, heat, 0.0, nothing, None, data)
    keep = inliers.ravel().astype(bool)
    source = _hull_region(sources[keep], image.shape[:2], heat)
    copy = _hull_region(copies[keep], image.shape[:2], heat)
    shift = np.round(transform[:, 2]).astype(int).tolist()
    data.update({"source": source.__dict__, "affine": np.round(transform, 4).tolist(), "shift": shift})
    reading = (
        f"The region {copy.words()} repeats the region {source.words()} ({count} matching keypoints "
        "agree on one transform): part of the image was probably copied and moved."
    )
    return ForensicMap(METHOD, heat, min(1.0, count / (2 * min_inliers)), reading, copy, data)
