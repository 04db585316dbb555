"""One fused, calibrated score from several pixel detectors, with an explicit operating point.

Each pixel detector (learned detectors and the spectral check) speaks in its own units and is right in
its own places. A small logistic regression, fitted on images held apart from every detector's
training (generators and photo sources not used to train them), stacks their scores into one
probability that the image is generated. The operating point is chosen on the held-apart genuine
photos for a stated false-positive rate (1 % by default): at or above `threshold` the fused evidence
decides "ai-generated"; between `inconclusive_from` and `threshold` it says "inconclusive"; below,
it leans weakly towards authentic (absence of traces proves little). Everything is stored as JSON (the
fusion card) and every result records the operating point it used.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> real = rng.normal(0, 1, (400, 2)); fake = rng.normal(2, 1, (400, 2))
    >>> stacker = fit_stacker(np.vstack([real, fake]), np.r_[np.zeros(400), np.ones(400)], ("a", "b"))
    >>> round(stacker.operating_point.measured_fpr, 3) <= 0.01
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.evidence.record import Evidence

SOURCE = "fused-detectors"
DEFAULT_FPR = 0.01
# Strength of the fused evidence at the operating point: decisive on its own (the verdict's bar is 0.5).
DECISIVE_STRENGTH = 0.6
AUTHENTIC_STRENGTH = 0.2  # below the band: no trace found, which is weak evidence
_PROBABILITY_EPSILON = 1e-6


@dataclass(frozen=True)
class OperatingPoint:
    """Where the fused probability turns into a verdict, and how it was chosen."""

    threshold: float  # fused probability at and above which the evidence says "ai-generated"
    inconclusive_from: float  # lower edge of the inconclusive band
    target_fpr: float
    measured_fpr: float  # fraction of the held-apart genuine photos at or above `threshold`
    n_real: int
    dataset: str = ""

    @property
    def label(self) -> str:
        return f"fpr={self.target_fpr:g} (threshold {self.threshold:.4f})"


def threshold_for_fpr(real_scores: np.ndarray, fpr: float) -> float:
    """The smallest threshold whose false-positive rate on `real_scores` is at most `fpr`.

    Example:
        >>> round(threshold_for_fpr(np.arange(100) / 100, 0.05), 4)  # 0.95 ... 0.99 lie above
        0.94
    """
    scores = np.sort(np.asarray(real_scores, dtype=np.float64))
    if not 0.0 < fpr < 1.0 or scores.size == 0:
        raise ValueError("need genuine-photo scores and a false-positive rate between 0 and 1")
    allowed = math.floor(fpr * scores.size)  # how many genuine photos may lie at or above the threshold
    if allowed == 0:
        return float(np.nextafter(scores[-1], np.inf))
    return float(np.nextafter(scores[-allowed - 1], np.inf))


def _logistic_fit(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 100) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method (the bias is not penalised)."""
    n, k = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    beta = np.zeros(k + 1)
    penalty = np.full(k + 1, l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        gradient = design.T @ (p - y) + penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty) + 1e-9 * np.eye(k + 1)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:-1], float(beta[-1])


@dataclass(frozen=True)
class Stacker:
    """Standardised features -> logistic regression -> P(generated), with its operating point."""

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    operating_point: OperatingPoint
    fitted_on: str = ""
    # Fused probabilities of the held-apart genuine photos, sorted: any other operating point can be
    # chosen later on the same photos (`at_fpr`).
    real_probabilities: tuple[float, ...] = ()

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(generated) for rows of feature values; NaN (a detector that could not run) counts as average."""
        z = (np.asarray(x, np.float64) - np.asarray(self.means)) / np.asarray(self.scales)
        z = np.nan_to_num(z, nan=0.0)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    def probability(self, values: dict[str, float]) -> float:
        row = np.array([[values.get(name, math.nan) for name in self.features]])
        return float(self.probabilities(row)[0])

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["features"] = list(self.features)
        record["real_probabilities"] = list(self.real_probabilities)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Stacker:
        point = OperatingPoint(**record["operating_point"])
        return cls(
            features=tuple(record["features"]),
            means=tuple(record["means"]),
            scales=tuple(record["scales"]),
            weights=tuple(record["weights"]),
            bias=float(record["bias"]),
            operating_point=point,
            fitted_on=record.get("fitted_on", ""),
            real_probabilities=tuple(record.get("real_probabilities", ())),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Stacker:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def with_operating_point(self, real_probabilities: np.ndarray, fpr: float, dataset: str = "") -> Stacker:
        """The same stacker with its operating point set for `fpr` on these genuine photos' probabilities."""
        real = np.sort(np.asarray(real_probabilities, np.float64))
        threshold = threshold_for_fpr(real, fpr)
        band = threshold_for_fpr(real, min(0.5, 10 * fpr))  # the top 10x-fpr of photos are "undecided"
        measured = float(np.mean(real >= threshold))
        point = OperatingPoint(threshold, min(band, threshold), fpr, measured, len(real), dataset)
        return replace(self, operating_point=point, real_probabilities=tuple(float(v) for v in real))

    def at_fpr(self, fpr: float) -> Stacker:
        """The operating point for another false-positive rate, on the photos the card was set on."""
        if not self.real_probabilities:
            raise ValueError(
                "this fusion card keeps no genuine-photo scores to set another operating point on"
            )
        return self.with_operating_point(np.array(self.real_probabilities), fpr, self.operating_point.dataset)

    def at_threshold(self, threshold: float) -> Stacker:
        """A fixed threshold chosen by the user; its false-positive rate is measured on the card's photos."""
        real = np.asarray(self.real_probabilities, np.float64)
        measured = float(np.mean(real >= threshold)) if real.size else math.nan
        point = OperatingPoint(
            threshold, threshold, math.nan, measured, int(real.size), self.operating_point.dataset
        )
        return replace(self, operating_point=point)


def fit_stacker(
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    *,
    l2: float = 1.0,
    fpr: float = DEFAULT_FPR,
    dataset: str = "",
) -> Stacker:
    """Fit the stack on held-apart scores `x` (rows: images, columns: `features`; NaN where a detector
    could not run) with labels `y` (1 generated), and set the operating point on its genuine rows."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    means = np.nanmean(x, axis=0)
    scales = np.nanstd(x, axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = np.nan_to_num((x - means) / scales, nan=0.0)
    weights, bias = _logistic_fit(z, y, l2)
    stacker = Stacker(
        tuple(features),
        tuple(float(v) for v in means),
        tuple(float(v) for v in scales),
        tuple(float(v) for v in weights),
        bias,
        OperatingPoint(0.5, 0.5, fpr, math.nan, 0, dataset),
        dataset,
    )
    return stacker.with_operating_point(stacker.probabilities(x[y == 0]), fpr, dataset)


def logit(probability: float) -> float:
    p = min(max(float(probability), _PROBABILITY_EPSILON), 1.0 - _PROBABILITY_EPSILON)
    return math.log(p / (1.0 - p))


def feature_values(evidence: Sequence[Evidence]) -> dict[str, float]:
    """The stack's inputs read from an analysis's evidence: each detector's raw logit, the spectral score."""
    values: dict[str, float] = {}
    for item in evidence:
        if item.source.startswith("detector:") and "raw_probability" in item.data:
            values[item.source] = logit(item.data["raw_probability"])
        elif item.source == "spectral" and "score" in item.data:
            values["spectral"] = float(item.data["score"])
    return values


def stack_inputs(analyzer: Any, path: str | Path) -> dict[str, float]:
    """The stack's inputs for one image file, as `scan` computes them (an `Analyzer`'s evidence).

    Raises:
        PixelsleuthError: the file cannot be read as an image.
    """
    from pixelsleuth.intake import load_image

    return feature_values(analyzer.evidence(load_image(path)))


def fused_evidence(stacker: Stacker, evidence: Sequence[Evidence]) -> Evidence | None:
    """One evidence item for the fused score at the stacker's operating point; None when no input spoke."""
    values = feature_values(evidence)
    present = [name for name in stacker.features if name in values]
    if not present:
        return None
    probability = stacker.probability(values)
    point = stacker.operating_point
    data = {
        "probability": round(probability, 6),
        "operating_point": asdict(point),
        "inputs": {name: round(values[name], 4) for name in present},
        "missing_inputs": [name for name in stacker.features if name not in values],
    }
    where = (
        f"operating point: {point.target_fpr:.1%} of held-apart genuine photos score at least "
        f"{point.threshold:.2f}"
    )
    if probability >= point.threshold:
        return Evidence(
            SOURCE,
            f"The pixel detectors together find generation traces (fused P(generated) = "
            f"{probability:.2f}, at or above the {point.threshold:.2f} that only "
            f"{point.measured_fpr:.1%} of genuine photos reach).",
            "ai-generated",
            DECISIVE_STRENGTH,
            detail=f"Stacked from {', '.join(present)}; {where}.",
            data=data,
        )
    if probability >= point.inconclusive_from:
        return Evidence(
            SOURCE,
            f"The pixel detectors together give fused P(generated) = {probability:.2f}, between the "
            f"{point.inconclusive_from:.2f} and {point.threshold:.2f} that "
            + (
                f"{min(0.5, 10 * point.target_fpr):.0%} and {point.target_fpr:.0%} of genuine 256² crops "
                "reach."
                if math.isfinite(point.target_fpr)
                else "mark the stack's undecided band."
            ),
            detail=f"Stacked from {', '.join(present)}; {where}.",
            data=data,
        )
    return Evidence(
        SOURCE,
        f"The pixel detectors together find no generation traces (fused P(generated) = {probability:.2f}).",
        "authentic",
        AUTHENTIC_STRENGTH,
        detail="Absence of the traces these detectors know is weak evidence: generators they never saw "
        f"may leave others. {where[0].upper() + where[1:]}.",
        data=data,
    )
