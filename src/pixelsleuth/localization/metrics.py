"""Pixel-level localization metrics, with the conventions stated (papers differ on them).

Ours: every pixel counts (no border is ignored around mask edges); the map is never inverted (we do
not take the better of the map and 1 - map, as some papers do); a pixel is "manipulated" in the ground
truth when its mask value is above half of the mask's range. F1, IoU and MCC are reported at a fixed
threshold (0.5 by default) and F1 also at the best threshold for that image, labelled *oracle* because
it uses the answer to choose. For a genuine image (empty mask) only the false-alarm rate is defined:
the fraction of pixels the map flags.

Example:
    >>> import numpy as np
    >>> truth = np.zeros((4, 4), bool); truth[:2] = True
    >>> heat = np.where(truth, 0.9, 0.1)
    >>> m = localization_metrics(heat, truth)
    >>> m.f1, m.iou, m.mcc, m.auc, m.best_f1
    (1.0, 1.0, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pixelsleuth.bench.metrics import roc_auc
from pixelsleuth.localization.record import LocalizationInputError


@dataclass(frozen=True)
class LocalizationMetrics:
    """One image's scores; NaN where undefined (F1, IoU, MCC, AUC on an image with an empty mask)."""

    f1: float
    iou: float
    mcc: float
    auc: float
    best_f1: float  # oracle: the threshold chosen on this image's own mask
    best_threshold: float
    false_alarm: float  # fraction of the image's genuine pixels flagged at the threshold
    manipulated_fraction: float  # of the ground truth
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def truth_mask(mask: np.ndarray) -> np.ndarray:
    """A ground-truth mask (bool, 0/1, 0/255, or H x W x C) as bool: above half of its range."""
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.max(axis=-1)
    if array.dtype == bool:
        return array
    top = 1.0 if array.max() <= 1 else 255.0
    return array.astype(np.float64) > top / 2


def _counts(flagged: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.count_nonzero(flagged & truth))
    fp = int(np.count_nonzero(flagged & ~truth))
    fn = int(np.count_nonzero(~flagged & truth))
    tn = truth.size - tp - fp - fn
    return tp, fp, fn, tn


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan


def _mcc(tp: int, fp: int, fn: int, tn: int) -> float:
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def best_f1(heat: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """The highest F1 over every threshold of the map (flagging ``heat >= t``), and that threshold."""
    scores = heat.ravel().astype(np.float64)
    labels = truth.ravel()
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Cut only between distinct scores: the last index of each run of equal values.
    ends = np.r_[np.nonzero(np.diff(sorted_scores))[0], scores.size - 1]
    tp = np.cumsum(sorted_labels)[ends]
    flagged = ends + 1
    positives = int(labels.sum())
    f1 = 2 * tp / (flagged + positives)
    best = int(np.argmax(f1))
    return float(f1[best]), float(sorted_scores[ends[best]])


def localization_metrics(heat: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> LocalizationMetrics:
    """Pixel F1, IoU, MCC at `threshold`, pixel AUC, oracle F1 and false alarms of a [0, 1] map.

    Raises:
        LocalizationInputError: the map and the mask differ in size.
    """
    heat = np.asarray(heat, np.float64)
    truth = truth_mask(mask)
    if heat.shape != truth.shape:
        raise LocalizationInputError(
            f"the map is {heat.shape[1]} x {heat.shape[0]} but the mask is "
            f"{truth.shape[1]} x {truth.shape[0]}: they must cover the same pixels"
        )
    flagged = heat >= threshold
    tp, fp, fn, tn = _counts(flagged, truth)
    false_alarm = fp / (fp + tn) if fp + tn else math.nan
    fraction = float(truth.mean())
    if not truth.any():
        nan = math.nan
        return LocalizationMetrics(nan, nan, nan, nan, nan, nan, false_alarm, 0.0, threshold)
    iou = tp / (tp + fp + fn)
    auc = roc_auc(truth.ravel().astype(np.float64), heat.ravel()) if not truth.all() else math.nan
    oracle, at = best_f1(heat, truth)
    return LocalizationMetrics(
        _f1(tp, fp, fn), iou, _mcc(tp, fp, fn, tn), auc, oracle, at, false_alarm, fraction, threshold
    )
