"""The metrics generated-image detection papers report, as pure NumPy functions on ``(labels, scores)``.

Conventions used throughout:

- ``labels``: 1 = generated (fake, the positive class), 0 = real.
- ``scores``: the detector's P(generated); higher means "more likely generated".
- ``accuracy`` and its real / fake halves decide "generated" when ``score > 0.5`` (strictly), as the
  CNNDetection evaluation code and its descendants do.
- Curves and the thresholds they return decide "generated" when ``score >= threshold`` (the ROC
  convention of scikit-learn), so a threshold read off a curve is one you can apply as it is.
- ``average_precision`` is the step-wise AP of ``sklearn.metrics.average_precision_score`` (no
  interpolation); ``roc_auc`` is the trapezoidal area of the ROC curve, which counts a tie between a
  real and a generated score as half right; both treat tied scores as one threshold, like scikit-learn.

Measures that need both classes (AP, ROC-AUC, EER, TPR at a fixed FPR, the oracle accuracy) are NaN
on a set holding only one class, and `binary_metrics` says so in its ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pixelsleuth.errors import PixelsleuthError

NAN = float("nan")


class InvalidScoresError(PixelsleuthError):
    """Labels or scores that no metric can be computed from (NaN scores, labels other than 0/1, ...)."""

    type = "invalid_scores"


@dataclass(frozen=True)
class RocCurve:
    """ROC points from the strictest threshold to the most permissive.

    ``fpr[0] = tpr[0] = 0`` at ``thresholds[0] = inf``; point ``i`` decides "generated" when
    ``score >= thresholds[i]``. Every distinct score is a threshold (scikit-learn's
    ``roc_curve(..., drop_intermediate=False)``).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class PrCurve:
    """Precision-recall points in scikit-learn's order: recall decreasing, ending at (recall 0, precision 1).

    ``precision[i]`` and ``recall[i]`` belong to ``thresholds[i]`` (ascending) for ``i < len(thresholds)``.
    """

    precision: np.ndarray
    recall: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class OperatingPoint:
    """The TPR a detector reaches at a target false-positive rate.

    Attributes:
        target_fpr: the false-positive rate asked for (0.01 = 1 %).
        tpr: TPR on the ROC curve at exactly ``target_fpr``, linearly interpolated between the two ROC
            points around it (on a vertical segment, the top of it): the number papers report.
        threshold: the most permissive threshold whose FPR does not exceed ``target_fpr``; deciding
            "generated" when ``score >= threshold`` gives `achieved_fpr` and `achieved_tpr`.
        achieved_fpr: the FPR of that threshold (<= ``target_fpr``).
        achieved_tpr: the TPR of that threshold (<= ``tpr``).
    """

    target_fpr: float
    tpr: float
    threshold: float
    achieved_fpr: float
    achieved_tpr: float


@dataclass(frozen=True)
class BinaryMetrics:
    """Every metric of one set of images (a subset, or all of them), with its counts.

    Rates are fractions in [0, 1]; NaN where a metric is undefined (see ``notes``). ``oracle_*`` uses the
    threshold that maximises accuracy on these very labels: an upper bound, never a fair result.
    """

    n_real: int
    n_fake: int
    accuracy: float
    real_accuracy: float
    fake_accuracy: float
    average_precision: float
    roc_auc: float
    eer: float
    eer_threshold: float
    tpr_at_1pct_fpr: float
    threshold_at_1pct_fpr: float
    tpr_at_5pct_fpr: float
    threshold_at_5pct_fpr: float
    oracle_accuracy: float
    oracle_threshold: float
    notes: tuple[str, ...] = field(default=())

    @property
    def n(self) -> int:
        return self.n_real + self.n_fake

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: non-finite numbers (undefined metrics, an infinite threshold) become None."""
        record = asdict(self)
        record["notes"] = list(self.notes)
        for key, value in record.items():
            if isinstance(value, float) and not math.isfinite(value):
                record[key] = None
        return record


# The numeric fields of BinaryMetrics in table order (counts first), for writers and means.
METRIC_FIELDS: tuple[str, ...] = tuple(
    name for name in BinaryMetrics.__dataclass_fields__ if name not in ("n_real", "n_fake", "notes")
)
_THRESHOLD_FIELDS = frozenset(name for name in METRIC_FIELDS if "threshold" in name)


def _check(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    labels_array = np.asarray(labels)
    scores_array = np.asarray(scores, dtype=np.float64)
    if labels_array.ndim != 1 or scores_array.ndim != 1:
        raise InvalidScoresError(
            f"labels and scores must be flat lists, got shapes {labels_array.shape} and {scores_array.shape}"
        )
    if labels_array.shape != scores_array.shape:
        raise InvalidScoresError(
            f"there are {labels_array.size} labels but {scores_array.size} scores; they must pair up"
        )
    if labels_array.size == 0:
        raise InvalidScoresError("there are no scores to measure: the set of images is empty")
    if not np.isin(labels_array, (0, 1)).all():
        odd = sorted({str(value) for value in labels_array[~np.isin(labels_array, (0, 1))]})[:5]
        raise InvalidScoresError(f"labels must be 0 (real) or 1 (generated), found {', '.join(odd)}")
    bad = ~np.isfinite(scores_array)
    if bad.any():
        raise InvalidScoresError(
            f"{int(bad.sum())} of {scores_array.size} scores are NaN or infinite; a detector must give "
            "every image a finite probability"
        )
    return labels_array.astype(np.int64), scores_array


def _counts_at_thresholds(
    labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives when deciding ``score >= t`` for each distinct score t, descending."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # the last index of each run of equal scores: ties form one threshold
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_run]
    false_positives = (last_of_run + 1) - true_positives
    return false_positives.astype(np.float64), true_positives.astype(np.float64), sorted_scores[last_of_run]


def accuracy(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Fraction of images classified right when "generated" means ``score > threshold``.

    Example:
        >>> accuracy([0, 0, 1, 1], [0.2, 0.7, 0.9, 0.5])
        0.5
    """
    labels_array, scores_array = _check(labels, scores)
    return float(np.mean((scores_array > threshold) == (labels_array == 1)))


def real_accuracy(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Accuracy on the real images alone (their true-negative rate); NaN if there are none.

    Example:
        >>> real_accuracy([0, 0, 1, 1], [0.2, 0.7, 0.9, 0.5])
        0.5
    """
    labels_array, scores_array = _check(labels, scores)
    real = labels_array == 0
    return float(np.mean(scores_array[real] <= threshold)) if real.any() else NAN


def fake_accuracy(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> float:
    """Accuracy on the generated images alone (their true-positive rate); NaN if there are none.

    Example:
        >>> fake_accuracy([0, 0, 1, 1], [0.2, 0.7, 0.9, 0.5])
        0.5
    """
    labels_array, scores_array = _check(labels, scores)
    fake = labels_array == 1
    return float(np.mean(scores_array[fake] > threshold)) if fake.any() else NAN


def roc_curve(labels: ArrayLike, scores: ArrayLike) -> RocCurve:
    """The ROC curve at every distinct score, starting from (0, 0) at an infinite threshold.

    Rates over a missing class are NaN (an ROC curve needs both classes).

    Example:
        >>> curve = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> curve.fpr.tolist(), curve.tpr.tolist()
        ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    labels_array, scores_array = _check(labels, scores)
    false_positives, true_positives, thresholds = _counts_at_thresholds(labels_array, scores_array)
    false_positives = np.r_[0.0, false_positives]
    true_positives = np.r_[0.0, true_positives]
    n_real, n_fake = false_positives[-1], true_positives[-1]
    fpr = false_positives / n_real if n_real else np.full_like(false_positives, NAN)
    tpr = true_positives / n_fake if n_fake else np.full_like(true_positives, NAN)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=np.r_[np.inf, thresholds])


def pr_curve(labels: ArrayLike, scores: ArrayLike) -> PrCurve:
    """Precision and recall at every distinct score (scikit-learn's ``precision_recall_curve`` points).

    Recall is NaN when there is no generated image.

    Example:
        >>> curve = pr_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> curve.precision.round(3).tolist(), curve.recall.tolist()
        ([0.5, 0.667, 0.5, 1.0, 1.0], [1.0, 1.0, 0.5, 0.5, 0.0])
    """
    labels_array, scores_array = _check(labels, scores)
    false_positives, true_positives, thresholds = _counts_at_thresholds(labels_array, scores_array)
    precision = true_positives / (true_positives + false_positives)
    n_fake = true_positives[-1]
    recall = true_positives / n_fake if n_fake else np.full_like(true_positives, NAN)
    return PrCurve(
        precision=np.r_[precision[::-1], 1.0], recall=np.r_[recall[::-1], 0.0], thresholds=thresholds[::-1]
    )


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise average precision: ``sum_k (R_k - R_{k-1}) * P_k`` over distinct thresholds.

    Equal to ``sklearn.metrics.average_precision_score`` (ties included) when both classes are present.
    NaN with one class: undefined without generated images, and a meaningless 1.0 without real ones.

    Example:
        >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.8333
    """
    labels_array, scores_array = _check(labels, scores)
    if labels_array.min() == labels_array.max():
        return NAN
    false_positives, true_positives, _ = _counts_at_thresholds(labels_array, scores_array)
    precision = true_positives / (true_positives + false_positives)
    recall_steps = np.diff(np.r_[0.0, true_positives]) / true_positives[-1]
    return float(np.sum(recall_steps * precision))


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve by the trapezoidal rule (a real-fake tie counts half); NaN with one class.

    Equal to ``sklearn.metrics.roc_auc_score``.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    labels_array, scores_array = _check(labels, scores)
    if labels_array.min() == labels_array.max():
        return NAN
    curve = roc_curve(labels_array, scores_array)
    return float(np.trapezoid(curve.tpr, curve.fpr))


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """The equal error rate and a threshold near it; NaN for both with one class.

    The EER is where the false-positive rate equals the false-negative rate (1 - TPR) on the ROC curve
    drawn as straight segments between its points: the first segment on which ``FPR + TPR`` reaches 1 is
    interpolated linearly, and the EER is the FPR there. The threshold is that of the ROC point where
    ``|FPR - FNR|`` is smallest (an interpolated point has no threshold of its own); decide "generated"
    when ``score >= threshold``.

    Returns:
        ``(eer, threshold)``.

    Example:
        >>> equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
        (0.5, 0.6)
    """
    labels_array, scores_array = _check(labels, scores)
    if labels_array.min() == labels_array.max():
        return NAN, NAN
    curve = roc_curve(labels_array, scores_array)
    gap = curve.fpr + curve.tpr - 1.0  # FPR - FNR; non-decreasing from -1 at (0, 0) to +1 at (1, 1)
    after = int(np.argmax(gap >= 0))
    if gap[after] == 0:
        eer = curve.fpr[after]
    else:
        before = after - 1
        weight = -gap[before] / (gap[after] - gap[before])
        eer = curve.fpr[before] + weight * (curve.fpr[after] - curve.fpr[before])
    nearest = int(np.argmin(np.abs(gap)))
    return float(eer), float(curve.thresholds[nearest])


def tpr_at_fpr(labels: ArrayLike, scores: ArrayLike, target_fpr: float = 0.01) -> OperatingPoint:
    """TPR at a fixed false-positive rate, read off the ROC curve; NaN fields with one class.

    The ROC points are joined by straight lines and the TPR is taken at exactly ``target_fpr`` (the top
    of a vertical segment sitting at that FPR). The threshold returned is the most permissive one whose
    own FPR stays at or below the target; see `OperatingPoint`.

    Example:
        >>> point = tpr_at_fpr([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.8, 0.9], target_fpr=0.125)
        >>> point.tpr, point.threshold, point.achieved_tpr
        (0.75, 0.9, 0.5)
    """
    if not 0.0 <= target_fpr <= 1.0:
        raise InvalidScoresError(f"the target false-positive rate must lie in [0, 1], got {target_fpr}")
    labels_array, scores_array = _check(labels, scores)
    if labels_array.min() == labels_array.max():
        return OperatingPoint(target_fpr, NAN, NAN, NAN, NAN)
    curve = roc_curve(labels_array, scores_array)
    last = int(np.searchsorted(curve.fpr, target_fpr, side="right")) - 1  # last point with FPR <= target
    if curve.fpr[last] == target_fpr or last == curve.fpr.size - 1:
        tpr = curve.tpr[last]
    else:
        nxt = last + 1
        weight = (target_fpr - curve.fpr[last]) / (curve.fpr[nxt] - curve.fpr[last])
        tpr = curve.tpr[last] + weight * (curve.tpr[nxt] - curve.tpr[last])
    return OperatingPoint(
        target_fpr=float(target_fpr),
        tpr=float(tpr),
        threshold=float(curve.thresholds[last]),
        achieved_fpr=float(curve.fpr[last]),
        achieved_tpr=float(curve.tpr[last]),
    )


def best_threshold_accuracy(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """Oracle accuracy: the best accuracy any threshold reaches, with the threshold chosen on these labels.

    It tells how separable the scores are when the decision threshold is not calibrated, and is an upper
    bound that no deployed detector gets, so label it "oracle" wherever it is shown. Deciding "generated"
    when ``score >= threshold``; the threshold is ``inf`` when calling everything real is best. NaN for
    both with one class (any threshold that calls everything that class would be "perfect").

    Returns:
        ``(oracle_accuracy, threshold)``.

    Example:
        >>> best_threshold_accuracy([0, 0, 1, 1], [0.6, 0.7, 0.8, 0.9])
        (1.0, 0.8)
    """
    labels_array, scores_array = _check(labels, scores)
    if labels_array.min() == labels_array.max():
        return NAN, NAN
    false_positives, true_positives, thresholds = _counts_at_thresholds(labels_array, scores_array)
    n_real = false_positives[-1]
    correct = np.r_[n_real, true_positives + (n_real - false_positives)]  # first: threshold = inf
    best = int(np.argmax(correct))
    return float(correct[best] / labels_array.size), float(np.r_[np.inf, thresholds][best])


def binary_metrics(labels: ArrayLike, scores: ArrayLike) -> BinaryMetrics:
    """Every metric of `BinaryMetrics` for one set of images.

    Raises:
        InvalidScoresError: empty input, labels other than 0/1, NaN or infinite scores, or mismatched lengths.

    Example:
        >>> metrics = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
        >>> metrics.accuracy, metrics.roc_auc, metrics.eer
        (0.5, 0.75, 0.5)
        >>> binary_metrics([1, 1], [0.7, 0.2]).average_precision
        nan
    """
    labels_array, scores_array = _check(labels, scores)
    n_fake = int(labels_array.sum())
    n_real = int(labels_array.size - n_fake)
    notes: list[str] = []
    if n_real == 0 or n_fake == 0:
        present = "generated" if n_real == 0 else "real"
        notes.append(
            f"only {present} images: AP, ROC-AUC, EER, TPR@FPR and oracle accuracy need both classes and are "
            "undefined (NaN); ACC is still measured"
        )
    eer, eer_threshold = equal_error_rate(labels_array, scores_array)
    at_1pct = tpr_at_fpr(labels_array, scores_array, 0.01)
    at_5pct = tpr_at_fpr(labels_array, scores_array, 0.05)
    oracle, oracle_threshold = best_threshold_accuracy(labels_array, scores_array)
    return BinaryMetrics(
        n_real=n_real,
        n_fake=n_fake,
        accuracy=accuracy(labels_array, scores_array),
        real_accuracy=real_accuracy(labels_array, scores_array),
        fake_accuracy=fake_accuracy(labels_array, scores_array),
        average_precision=average_precision(labels_array, scores_array),
        roc_auc=roc_auc(labels_array, scores_array),
        eer=eer,
        eer_threshold=eer_threshold,
        tpr_at_1pct_fpr=at_1pct.tpr,
        threshold_at_1pct_fpr=at_1pct.threshold,
        tpr_at_5pct_fpr=at_5pct.tpr,
        threshold_at_5pct_fpr=at_5pct.threshold,
        oracle_accuracy=oracle,
        oracle_threshold=oracle_threshold,
        notes=tuple(notes),
    )


def mean_metrics(rows: Sequence[BinaryMetrics], names: Sequence[str] | None = None) -> BinaryMetrics:
    """The mean row papers print under a per-subset table: each metric averaged over the subsets.

    Subsets where a metric is undefined (NaN) are left out of that metric's mean, and a note names them.
    Thresholds are not averaged (a mean of thresholds is no one's threshold): they are NaN. Counts are sums.

    Args:
        rows: the per-subset metrics.
        names: the subsets' names, used in the notes (defaults to their positions).

    Example:
        >>> a = binary_metrics([0, 1], [0.2, 0.9])
        >>> b = binary_metrics([0, 1], [0.6, 0.9])
        >>> mean_metrics([a, b]).accuracy
        0.75
    """
    if not rows:
        raise InvalidScoresError("there are no subsets to average")
    names = list(names) if names is not None else [str(index) for index in range(len(rows))]
    values: dict[str, float] = {}
    notes: list[str] = []
    for name in METRIC_FIELDS:
        if name in _THRESHOLD_FIELDS:
            values[name] = NAN
            continue
        column = np.array([getattr(row, name) for row in rows], dtype=np.float64)
        defined = np.isfinite(column)
        values[name] = float(column[defined].mean()) if defined.any() else NAN
        if defined.any() and not defined.all():
            left_out = ", ".join(names[index] for index in np.flatnonzero(~defined))
            notes.append(f"{name} leaves out {left_out} (undefined there)")
    return BinaryMetrics(
        n_real=sum(row.n_real for row in rows),
        n_fake=sum(row.n_fake for row in rows),
        notes=tuple(notes),
        **values,
    )
