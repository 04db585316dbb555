"""Fit the verdict card on analysed, labelled whole images held apart from every detector's training.

Images decided by hard evidence are left out of the fit (their probability does not come from the
calibration), and so are images without a fused detector score (a detector could not run). On the
rest, Platt scaling maps the combined evidence's raw probability to a calibrated one; the threshold is
then set for `fpr` on the genuine images and `authentic_below` so that at most `miss_rate` of the
generated or manipulated images fall under it.

Example:
    >>> from pixelsleuth.evidence.record import Evidence
    >>> def fused(p): return [Evidence("fused-detectors", "", data={"probability": p})]
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 300)
    >>> evidence = [fused(float(p)) for p in 1 / (1 + np.exp(-(4 * labels - 2 + rng.normal(0, 2, 300))))]
    >>> card = fit_verdict_card(evidence, labels, weights={}, fpr=0.05)
    >>> card.measured_fpr <= 0.05 and 0 < card.authentic_below <= card.threshold
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pixelsleuth.detectors.calibration import PlattCalibration, fit_platt
from pixelsleuth.errors import UsageError
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.card import DEFAULT_FPR, DEFAULT_MISS_RATE, VerdictCard, set_operating_points
from pixelsleuth.verdict.decide import is_hard, soft_score


def raw_probability(evidence: Sequence[Evidence], card: VerdictCard) -> float | None:
    """The combined evidence's raw probability, or None when the verdict would not be calibrated for it
    (hard evidence, or no fused detector score)."""
    if any(is_hard(item) for item in evidence):
        return None
    soft = soft_score(evidence, card)
    return None if soft is None else soft[1]


def fit_verdict_card(
    evidence: Sequence[Sequence[Evidence]],
    labels: Sequence[int] | np.ndarray,
    *,
    weights: dict[str, float],
    fpr: float = DEFAULT_FPR,
    miss_rate: float = DEFAULT_MISS_RATE,
    fitted_on: str = "",
    more_genuine: Sequence[Sequence[Evidence]] = (),
) -> VerdictCard:
    """The verdict card fitted on these images' evidence and labels (1: not authentic).

    `more_genuine`: evidence of further genuine photos that join the fit's own genuine images in setting
    the threshold (a 1 % false-positive rate needs a few hundred photos to be set at all precisely) but
    not in the calibration (which should see the classes as often as they are in the fit set).

    Raises:
        UsageError: fewer than two genuine or two other images remain for the fit.
    """
    unfitted = VerdictCard(
        PlattCalibration(1.0, 0.0, 0), 0.5, 0.0, fpr, math.nan, miss_rate, math.nan, dict(weights)
    )
    raw, kept = [], []
    for items, label in zip(evidence, labels, strict=True):
        value = raw_probability(items, unfitted)
        if value is not None:
            raw.append(value)
            kept.append(int(label))
    y = np.array(kept)
    if (y == 0).sum() < 2 or (y == 1).sum() < 2:
        raise UsageError("the verdict needs at least two genuine and two other images with a fused score")
    calibration = fit_platt(np.array(raw), y, data=fitted_on)
    card = VerdictCard(
        calibration, 0.5, 0.0, fpr, math.nan, miss_rate, math.nan, dict(weights), fitted_on=fitted_on
    )
    calibrated = calibration(np.array(raw))
    extra = [
        value for value in (raw_probability(items, unfitted) for items in more_genuine) if value is not None
    ]
    real = np.concatenate([calibrated[y == 0], calibration(np.array(extra)) if extra else []])
    return set_operating_points(card, real, calibrated[y == 1], fpr=fpr, miss_rate=miss_rate)
