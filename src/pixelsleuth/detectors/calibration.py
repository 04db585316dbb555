"""Calibrating a detector's score so that "0.8" means 80 % of such images are generated.

Platt scaling (a logistic regression on the logit of the raw score) is fitted on a calibration split
held apart from training and from every reported test set; its two numbers travel in the model card
(``card.extra["calibration"]``) and `calibrate` applies them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

_EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPSILON, 1.0 - _EPSILON)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class PlattCalibration:
    """calibrated = sigmoid(slope * logit(raw) + intercept), fitted on `n` held-apart images."""

    slope: float
    intercept: float
    n: int
    data: str = ""  # what it was fitted on

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        z = self.slope * _logit(np.asarray(raw)) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", **asdict(self)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PlattCalibration:
        if record.get("method") != "platt":
            raise ValueError(f"unknown calibration method {record.get('method')!r}")
        return cls(
            float(record["slope"]), float(record["intercept"]), int(record["n"]), record.get("data", "")
        )


def fit_platt(
    scores: np.ndarray, labels: np.ndarray, *, data: str = "", iterations: int = 100
) -> PlattCalibration:
    """Fit Platt scaling by Newton's method on the log-loss (with Platt's smoothed targets).

    Each Newton step is halved until the loss goes down (Lin, Lin and Weng, "A note on Platt's
    probabilistic outputs for support vector machines", 2007), so saturated scores (many raw
    probabilities of exactly 0 or 1) cannot make it diverge.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(0, 2, 400)
        >>> evidence = 2 * labels - 1 + rng.normal(0, 1, 400)  # true log-odds: 2 * evidence
        >>> raw = 1 / (1 + np.exp(-3 * evidence))  # a detector that is too sure of itself
        >>> calibration = fit_platt(raw, labels)
        >>> 0 < calibration.slope < 1
        True
    """
    labels = np.asarray(labels, dtype=np.float64)
    x = _logit(scores)
    if x.shape != labels.shape or labels.size < 2 or len(np.unique(labels)) != 2:
        raise ValueError("Platt scaling needs scores and labels of one length with both classes present")
    positives, negatives = labels.sum(), labels.size - labels.sum()
    # Platt (1999): targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2) instead of 1 and 0, against overfitting.
    targets = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(slope: float, intercept: float) -> float:
        z = slope * x + intercept
        return float(np.sum(np.logaddexp(0.0, z) - targets * z))

    slope, intercept = 0.0, math.log((positives + 1) / (negatives + 1))
    current = loss(slope, intercept)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(slope * x + intercept)))
        gradient = np.array([np.sum((p - targets) * x), np.sum(p - targets)])
        if np.max(np.abs(gradient)) < 1e-8 * labels.size:
            break
        weight = p * (1 - p) + 1e-12
        hessian = np.array(
            [[np.sum(weight * x * x), np.sum(weight * x)], [np.sum(weight * x), np.sum(weight)]]
        ) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-10:
            trial = (slope - size * step[0], intercept - size * step[1])
            trial_loss = loss(*trial)
            if trial_loss < current + 1e-4 * size * float(gradient @ -step):
                break
            size /= 2
        else:
            break
        slope, intercept = trial
        if current - trial_loss < 1e-12 * max(1.0, abs(current)):
            current = trial_loss
            break
        current = trial_loss
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise ValueError("Platt scaling did not converge (are the classes perfectly separated?)")
    return PlattCalibration(float(slope), float(intercept), int(labels.size), data)


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: images whose probability fell in [low, high)."""

    low: float
    high: float
    count: int
    mean_probability: float  # NaN when the bin is empty
    positive_rate: float  # fraction of those images that are positive; NaN when empty


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10
) -> list[ReliabilityBin]:
    """The reliability diagram's bins: equal-width probability bins, the last one closed at 1.

    Example:
        >>> [(b.count, b.positive_rate) for b in reliability_bins([0.1, 0.15, 0.9], [0, 1, 1], bins=2)]
        [(2, 0.5), (1, 1.0)]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        chosen = which == b
        count = int(chosen.sum())
        rows.append(
            ReliabilityBin(
                float(edges[b]),
                float(edges[b + 1]),
                count,
                float(probabilities[chosen].mean()) if count else math.nan,
                float(labels[chosen].mean()) if count else math.nan,
            )
        )
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by bin size."""
    rows = reliability_bins(probabilities, labels, bins=bins)
    total = sum(row.count for row in rows)
    if total == 0:
        return math.nan
    return float(
        sum(row.count * abs(row.positive_rate - row.mean_probability) for row in rows if row.count) / total
    )


@dataclass(frozen=True)
class CalibrationFit:
    """A Platt fit and how well calibrated the scores were before and after it, on the same images."""

    calibration: PlattCalibration
    n_real: int
    n_fake: int
    ece_raw: float
    ece_calibrated: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "ece_raw": round(self.ece_raw, 6),
            "ece_calibrated": round(self.ece_calibrated, 6),
        }


class CalibrationDataError(ValueError):
    """The calibration images cannot support a fit (one class missing, or too few images)."""


def fit_calibration(
    scores: np.ndarray, labels: np.ndarray, *, data: str = "", min_per_class: int = 10
) -> CalibrationFit:
    """Fit Platt scaling on raw scores of held-apart images and measure the ECE before and after.

    Raises:
        CalibrationDataError: fewer than `min_per_class` real or generated images with a score.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> labels = rng.integers(0, 2, 300)
        >>> raw = 1 / (1 + np.exp(-4 * (2 * labels - 1 + rng.normal(0, 1, 300))))
        >>> fit = fit_calibration(raw, labels)
        >>> fit.ece_calibrated < fit.ece_raw
        True
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    usable = np.isfinite(scores)
    scores, labels = scores[usable], labels[usable]
    n_fake = int(labels.sum())
    n_real = int(labels.size - n_fake)
    if min(n_real, n_fake) < min_per_class:
        raise CalibrationDataError(
            f"calibration needs at least {min_per_class} real and {min_per_class} generated images with a "
            f"score; got {n_real} real and {n_fake} generated"
        )
    calibration = fit_platt(scores, labels, data=data)
    return CalibrationFit(
        calibration,
        n_real,
        n_fake,
        expected_calibration_error(scores, labels),
        expected_calibration_error(calibration(scores), labels),
    )
