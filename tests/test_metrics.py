"""The bench metrics: equal to scikit-learn where it has them, hand-checked where it does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelsleuth.bench.metrics import (
    InvalidScoresError,
    accuracy,
    average_precision,
    best_threshold_accuracy,
    binary_metrics,
    equal_error_rate,
    fake_accuracy,
    mean_metrics,
    pr_curve,
    real_accuracy,
    roc_auc,
    roc_curve,
    tpr_at_fpr,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")

# Hand-made cases with and without ties (ties across classes and within one class).
KNOWN_CASES = [
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]),
    ([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]),
    ([0, 1, 0, 1, 1, 0], [0.3, 0.3, 0.7, 0.7, 0.9, 0.1]),
    ([1, 1, 0, 0, 1], [0.2, 0.2, 0.2, 0.9, 0.9]),
    ([0, 0, 0, 1], [0.9, 0.8, 0.7, 0.1]),  # perfectly wrong
    ([0, 1, 1, 1, 0, 0, 0], [0.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.0]),
]


def random_case(seed: int, n: int = 200, tie_levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    if tie_levels is not None:
        scores = np.round(scores * tie_levels) / tie_levels
    return labels, scores


RANDOM_CASES = [random_case(seed) for seed in range(5)] + [
    random_case(seed, tie_levels=7) for seed in range(5)
]


@pytest.mark.parametrize(("labels", "scores"), KNOWN_CASES + RANDOM_CASES)
def test_average_precision_and_auc_equal_sklearn(labels, scores):
    assert average_precision(labels, scores) == pytest.approx(
        sklearn_metrics.average_precision_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize(("labels", "scores"), KNOWN_CASES + RANDOM_CASES)
def test_curves_equal_sklearn(labels, scores):
    fpr, tpr, thresholds = sklearn_metrics.roc_curve(labels, scores, drop_intermediate=False)
    ours = roc_curve(labels, scores)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_allclose(ours.thresholds[1:], thresholds[1:])
    assert ours.thresholds[0] == np.inf

    precision, recall, pr_thresholds = sklearn_metrics.precision_recall_curve(labels, scores)
    ours_pr = pr_curve(labels, scores)
    np.testing.assert_allclose(ours_pr.precision, precision)
    np.testing.assert_allclose(ours_pr.recall, recall)
    np.testing.assert_allclose(ours_pr.thresholds, pr_thresholds)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40).filter(
        lambda pairs: len({label for label, _ in pairs}) == 2
    )
)
def test_heavily_tied_scores_equal_sklearn(pairs):
    labels = np.array([int(label) for label, _ in pairs])
    scores = np.array([level / 6 for _, level in pairs])
    assert average_precision(labels, scores) == pytest.approx(
        sklearn_metrics.average_precision_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_accuracies_use_strict_threshold_like_the_reference_code():
    labels = [0, 0, 1, 1, 1]
    scores = [0.5, 0.2, 0.5, 0.51, 0.9]  # 0.5 counts as real
    assert accuracy(labels, scores) == pytest.approx(4 / 5)
    assert real_accuracy(labels, scores) == 1.0
    assert fake_accuracy(labels, scores) == pytest.approx(2 / 3)
    assert accuracy(labels, scores) == sklearn_metrics.accuracy_score(labels, np.array(scores) > 0.5)


def test_equal_error_rate_on_a_crossing_at_a_roc_point():
    # ROC: (0,0) (0,.5) (.5,.5) (.5,1) (1,1); FPR = FNR = 0.5 at the point of threshold 0.6
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == (0.5, 0.6)


def test_equal_error_rate_interpolates_between_roc_points():
    # 3 real, 2 fake. ROC: (0,0) (0,1/2) (1/3,1/2) (1/3,1) (2/3,1) (1,1); FPR + TPR - 1 runs
    # -1, -1/2, -1/6, +1/3: it crosses zero on the vertical segment at FPR = 1/3 (where TPR = 2/3).
    eer, threshold = equal_error_rate([1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.2, 0.1])
    assert eer == pytest.approx(1 / 3)
    assert threshold == 0.8  # the vertex nearest the crossing, |FPR - FNR| = 1/6
    # A diagonal segment from ties: 0.5 holds one real and one fake. ROC: (0,0) (0,0.5) (0.5,1) (1,1).
    # FPR + TPR - 1 goes -0.5 -> +0.5 along (0,0.5)->(0.5,1); zero at the middle, FPR = 0.25.
    eer, _ = equal_error_rate([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1])
    assert eer == pytest.approx(0.25)


def test_equal_error_rate_is_zero_and_one_at_the_extremes():
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == 0.0
    assert equal_error_rate([0, 0, 1, 1], [0.8, 0.9, 0.1, 0.2])[0] == 1.0


def test_tpr_at_fpr_hand_cases():
    # 4 real, 2 fake; the tie at 0.8 joins (0, 0.5) and (0.25, 1) with a diagonal.
    labels, scores = [0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.8, 0.9]
    point = tpr_at_fpr(labels, scores, 0.125)
    assert point.tpr == pytest.approx(0.75)
    assert (point.threshold, point.achieved_fpr, point.achieved_tpr) == (0.9, 0.0, 0.5)
    # exactly at a vertex: the top of the vertical segment there
    labels, scores = [0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.7, 0.9]
    point = tpr_at_fpr(labels, scores, 0.25)
    assert (point.tpr, point.threshold, point.achieved_fpr) == (1.0, 0.7, 0.25)
    # 100 real scores 0..99, 10 fake scores: 5 above every real one, 5 at the bottom
    labels = [0] * 100 + [1] * 10
    scores = [*range(100), 200, 201, 202, 203, 204, -1, -2, -3, -4, -5]
    at_1pct = tpr_at_fpr(labels, scores, 0.01)
    assert at_1pct.tpr == 0.5 and at_1pct.threshold == 99 and at_1pct.achieved_fpr == 0.01
    assert tpr_at_fpr(labels, scores, 0.05).tpr == 0.5


def test_tpr_at_fpr_rejects_a_rate_outside_0_1():
    with pytest.raises(InvalidScoresError, match="false-positive rate"):
        tpr_at_fpr([0, 1], [0.1, 0.9], 5)


def test_oracle_accuracy_hand_case():
    # At 0.5 only 3 of 6 are right; every score is shifted low, threshold 0.3 separates all but one.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.05, 0.1, 0.35, 0.3, 0.4, 0.45]
    assert accuracy(labels, scores) == 0.5
    oracle, threshold = best_threshold_accuracy(labels, scores)
    assert oracle == pytest.approx(5 / 6)
    assert threshold in (0.3, 0.4)
    predicted = np.array(scores) >= threshold
    assert np.mean(predicted == np.array(labels, bool)) == pytest.approx(oracle)
    # calling everything real is best: threshold infinity
    assert best_threshold_accuracy([0, 0, 0, 1], [0.9, 0.8, 0.7, 0.1]) == (0.75, math.inf)


def test_single_class_gives_nan_ranking_metrics_but_keeps_accuracy():
    metrics = binary_metrics([1, 1, 1], [0.9, 0.4, 0.7])
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert metrics.fake_accuracy == pytest.approx(2 / 3)
    assert math.isnan(metrics.real_accuracy)
    for name in ("average_precision", "roc_auc", "eer", "tpr_at_1pct_fpr", "oracle_accuracy"):
        assert math.isnan(getattr(metrics, name)), name
    assert metrics.notes and "only generated images" in metrics.notes[0]
    assert (metrics.n_real, metrics.n_fake, metrics.n) == (0, 3, 3)
    only_real = binary_metrics([0, 0], [0.1, 0.7])
    assert only_real.accuracy == 0.5 and math.isnan(only_real.average_precision)
    record = only_real.to_dict()
    assert record["average_precision"] is None and record["accuracy"] == 0.5


def test_binary_metrics_bundles_the_functions():
    labels, scores = random_case(11, tie_levels=10)
    metrics = binary_metrics(labels, scores)
    assert metrics.average_precision == pytest.approx(sklearn_metrics.average_precision_score(labels, scores))
    assert metrics.roc_auc == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    assert metrics.accuracy == accuracy(labels, scores)
    assert metrics.eer == equal_error_rate(labels, scores)[0]
    assert metrics.tpr_at_5pct_fpr == tpr_at_fpr(labels, scores, 0.05).tpr
    assert metrics.oracle_accuracy >= metrics.accuracy
    assert (metrics.n_real, metrics.n_fake) == (int((labels == 0).sum()), int(labels.sum()))
    assert metrics.notes == ()


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 1], [0.2, float("nan")], "NaN"),
        ([0, 1], [0.2, float("inf")], "NaN or infinite"),
        ([0, 2], [0.2, 0.3], "labels must be 0"),
        ([0, 1, 1], [0.2, 0.3], "pair up"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_raise_a_typed_error(labels, scores, message):
    with pytest.raises(InvalidScoresError, match=message) as caught:
        binary_metrics(labels, scores)
    assert caught.value.type == "invalid_scores"


def test_mean_metrics_skips_undefined_subsets_and_says_so():
    both = binary_metrics([0, 1, 0, 1], [0.1, 0.9, 0.6, 0.8])
    one_class = binary_metrics([1, 1], [0.9, 0.2])
    mean = mean_metrics([both, one_class], names=["gan", "diffusion"])
    assert mean.accuracy == pytest.approx((both.accuracy + one_class.accuracy) / 2)
    assert mean.average_precision == both.average_precision  # the NaN subset is left out
    assert any("average_precision leaves out diffusion" in note for note in mean.notes)
    assert math.isnan(mean.eer_threshold) and (mean.n_real, mean.n_fake) == (2, 4)
