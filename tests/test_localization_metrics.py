"""Pixel localization metrics: exact values on small cases, the oracle F1 never below the fixed one."""

import math

import numpy as np
import pytest

from pixelsleuth.localization.metrics import best_f1, localization_metrics, truth_mask
from pixelsleuth.localization.record import LocalizationInputError


def test_fixed_threshold_counts_are_exact():
    truth = np.zeros((10, 10), bool)
    truth[:5, :4] = True  # 20 manipulated pixels
    heat = np.zeros((10, 10))
    heat[:5, :2] = 0.9  # 10 true positives
    heat[9, :5] = 0.7  # 5 false positives
    m = localization_metrics(heat, truth)
    assert m.f1 == pytest.approx(2 * 10 / (2 * 10 + 5 + 10))
    assert m.iou == pytest.approx(10 / 25)
    assert m.false_alarm == pytest.approx(5 / 80) and m.manipulated_fraction == pytest.approx(0.2)
    tp, fp, fn, tn = 10, 5, 10, 75
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m.mcc == pytest.approx(expected)


def test_oracle_f1_searches_every_threshold():
    rng = np.random.default_rng(0)
    truth = rng.random((30, 30)) < 0.3
    heat = np.clip(truth * 0.3 + rng.random((30, 30)) * 0.7, 0, 1)
    m = localization_metrics(heat, truth)
    assert m.best_f1 >= m.f1
    brute = max(localization_metrics(heat, truth, threshold=t).f1 for t in np.unique(heat))
    assert m.best_f1 == pytest.approx(brute)
    assert best_f1(np.where(truth, 0.8, 0.2), truth) == (1.0, 0.8)


def test_genuine_images_and_conventions():
    clean = localization_metrics(np.full((8, 8), 0.6), np.zeros((8, 8), np.uint8))
    assert clean.false_alarm == 1.0 and math.isnan(clean.f1) and math.isnan(clean.auc)
    assert truth_mask(np.array([[0, 255], [128, 127]])).tolist() == [[False, True], [True, False]]
    assert truth_mask(np.array([[0, 1]])).tolist() == [[False, True]]
    assert truth_mask(np.dstack([np.zeros((2, 2)), np.full((2, 2), 255)])).all()
    with pytest.raises(LocalizationInputError, match="the map is 3 x 2 but the mask is 2 x 2"):
        localization_metrics(np.zeros((2, 3)), np.zeros((2, 2)))
