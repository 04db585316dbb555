"""A detector's score as evidence, in the one result type every source shares."""

from __future__ import annotations

import numpy as np

from pixelsleuth.detectors.base import Detector
from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET, PixelBudget, budget_crops
from pixelsleuth.detectors.calibration import PlattCalibration
from pixelsleuth.evidence.record import Evidence

# A detector that finds no generation trace has not shown the image is genuine: it may simply not
# know the generator. So scores below 0.5 count half as much (towards authentic) as scores above.
AUTHENTIC_SIDE_WEIGHT = 0.5


def score_to_evidence(
    detector_name: str,
    probability: float,
    *,
    calibrated: bool,
    version: str,
    extra: dict | None = None,
    max_strength: float = 1.0,
) -> Evidence:
    """Turn P(generated) from a detector into an Evidence item.

    `max_strength` caps how much the score can weigh (a model card sets it for a detector measured to
    be unreliable on generators it never saw: below 0.5 it cannot decide a verdict on its own).

    Example:
        >>> score_to_evidence("npr", 0.9, calibrated=False, version="1").points_to
        'ai-generated'
        >>> score_to_evidence("npr", 0.99, calibrated=True, version="1", max_strength=0.45).strength
        0.45
    """
    probability = float(np.clip(probability, 0.0, 1.0))
    source = f"detector:{detector_name}"
    data = {"probability": round(probability, 6), "calibrated": calibrated, "weights_version": version}
    data.update(extra or {})
    kind = "calibrated" if calibrated else "uncalibrated"
    if max_strength < 1.0:
        data["max_strength"] = max_strength
    if probability >= 0.5:
        return Evidence(
            source=source,
            finding=f"The {detector_name} detector finds generation traces in the pixels "
            f"(P(generated) = {probability:.2f}, {kind}).",
            points_to="ai-generated",
            strength=round(min(2.0 * probability - 1.0, max_strength), 6),
            detail="A learned detector's score; its model card says what it saw and where it fails.",
            data=data,
        )
    return Evidence(
        source=source,
        finding=f"The {detector_name} detector finds no generation traces "
        f"(P(generated) = {probability:.2f}, {kind}).",
        points_to="authentic",
        strength=round(min(AUTHENTIC_SIDE_WEIGHT * (1.0 - 2.0 * probability), max_strength), 6),
        detail="Absence of the traces this detector knows is weak evidence: "
        "generators it never saw may leave others.",
        data=data,
    )


def pooled_probability(crops: list[np.ndarray], scores: np.ndarray, tiled: bool) -> tuple[float, dict]:
    """One image's P(generated) from the scores of its `budget_crops`, and how it was read."""
    if not tiled:
        return float(scores[0]), {"read": "whole image"}
    height, width = crops[0].shape[:2]
    how = {
        "read": f"{len(crops)} tiles of {width} x {height} pixels spread over the image",
        "tile_probability_max": round(float(scores.max()), 6),
        "tile_probability_min": round(float(scores.min()), 6),
    }
    return float(scores.mean()), how


def budgeted_probability(
    detector: Detector, rgb: np.ndarray, budget: PixelBudget = DEFAULT_PIXEL_BUDGET
) -> tuple[float, dict]:
    """P(generated) for one image within the pixel budget, and how it was read (whole, or which tiles)."""
    crops, tiled = budget_crops(rgb, budget)
    scores = detector.predict(crops, batch_size=budget.batch) if tiled else detector.predict(crops)
    return pooled_probability(crops, scores, tiled)


def evidence_from_probability(detector: Detector, raw: float, how: dict) -> Evidence:
    """A detector's raw P(generated) for one image as evidence (calibrated if its card says how)."""
    calibration = detector.card.extra.get("calibration")
    probability = float(PlattCalibration.from_dict(calibration)(raw)) if calibration else raw
    return score_to_evidence(
        detector.name,
        probability,
        calibrated=calibration is not None,
        version=detector.card.version,
        extra={"raw_probability": round(raw, 6), **how},
        max_strength=float(detector.card.extra.get("max_evidence_strength", 1.0)),
    )


def detector_evidence(
    detector: Detector, rgb: np.ndarray, budget: PixelBudget = DEFAULT_PIXEL_BUDGET
) -> Evidence:
    """Run one detector on one image within `budget` and report its score as evidence (calibrated if
    its card says how)."""
    raw, how = budgeted_probability(detector, rgb, budget)
    return evidence_from_probability(detector, raw, how)
