"""Fit a localization fusion card from maps measured on manipulated images (with masks) and genuine ones.

The image model is a logistic regression over each map's (score, named a region), standardised, with
balanced classes; its operating point is the smallest threshold that flags at most `target_fpr` of the
genuine images it was fitted on (the measured rate on other genuine photos is what the card reports).
The pixel model is a logistic regression over the maps' values at pixels sampled inside and outside
each mask (and on genuine images, all outside), with balanced classes.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.bench.localization import SampleResult
    >>> rng = np.random.default_rng(0)
    >>> def sample(genuine):
    ...     score = rng.uniform(0, 0.4) if genuine else rng.uniform(0.6, 1)
    ...     labels = np.zeros(20, bool) if genuine else np.arange(20) < 10
    ...     pixels = np.where(labels, 0.9, 0.1)[:, None].astype(np.float32)
    ...     return SampleResult("x", "d", genuine, features=[score, float(score > 0.5)],
    ...                         pixels=pixels, pixel_labels=labels)
    >>> card = fit_fusion([sample(i % 2 == 0) for i in range(40)], ["ela"], target_fpr=0.05)
    >>> card.methods, card.pixel_weights[0] > 0, 0 < card.threshold < 1
    (('ela',), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from pixelsleuth.bench.localization import SampleResult
from pixelsleuth.errors import UsageError
from pixelsleuth.localization.fuse import LocalizationFusion


def operating_threshold(genuine_probabilities: Sequence[float], target_fpr: float) -> float:
    """The smallest threshold above which at most `target_fpr` of the genuine probabilities lie."""
    values = np.sort(np.asarray(genuine_probabilities, np.float64))[::-1]
    allowed = math.floor(target_fpr * len(values))
    if allowed >= len(values):
        return 0.0
    # Flag `p >= threshold`: put the threshold just above the (allowed + 1)-th highest genuine value.
    return float(np.nextafter(values[allowed], np.inf))


def fit_fusion(
    results: Sequence[SampleResult], methods: Sequence[str], *, target_fpr: float = 0.02
) -> LocalizationFusion:
    """A fitted card from `analyse_sample(..., keep_pixels=True)` results (see the module docstring).

    Raises:
        UsageError: the results lack manipulated or genuine images, or were measured without pixels.
    """
    from sklearn.linear_model import LogisticRegression

    usable = [result for result in results if result.error is None and result.pixels is not None]
    labels = np.array([0 if result.genuine else 1 for result in usable])
    if labels.sum() == 0 or labels.sum() == len(labels):
        raise UsageError("fitting a localization fusion needs both manipulated images and genuine ones")
    features = np.array([result.features for result in usable], np.float64)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    image_model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    image_model.fit((features - mean) / scale, labels)

    pixels = np.concatenate([result.pixels for result in usable])
    pixel_labels = np.concatenate([result.pixel_labels for result in usable]).astype(int)
    pixel_model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    pixel_model.fit(pixels, pixel_labels)

    unthresholded = LocalizationFusion(
        methods=tuple(methods),
        image_weights=tuple(float(w) for w in image_model.coef_[0]),
        image_bias=float(image_model.intercept_[0]),
        image_mean=tuple(float(m) for m in mean),
        image_scale=tuple(float(s) for s in scale),
        pixel_weights=tuple(float(w) for w in pixel_model.coef_[0]),
        pixel_bias=float(pixel_model.intercept_[0]),
        threshold=0.5,
    )
    logits = ((features - mean) / scale) @ np.asarray(unthresholded.image_weights) + unthresholded.image_bias
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    threshold = operating_threshold(probabilities[labels == 0], target_fpr)
    return replace(unthresholded, threshold=max(threshold, 0.5), target_fpr=float(target_fpr))
