"""The fused score: stacking, the operating point chosen on genuine photos, and its evidence."""

import math

import numpy as np
import pytest

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict import fuse
from pixelsleuth.verdict.stack import (
    Stacker,
    feature_values,
    fit_stacker,
    fused_evidence,
    threshold_for_fpr,
)


def _scores(seed: int = 0, n: int = 500):
    rng = np.random.default_rng(seed)
    real = np.c_[rng.normal(-1, 1, n), rng.normal(0, 1, n), rng.normal(0, 1, n)]
    fake = np.c_[rng.normal(1.5, 1, n), rng.normal(1, 1, n), rng.normal(0, 1, n)]  # third: no signal
    return np.vstack([real, fake]), np.r_[np.zeros(n), np.ones(n)]


FEATURES = ("detector:a", "detector:b", "spectral")


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_threshold_keeps_the_false_positive_rate(fpr):
    real = np.random.default_rng(1).normal(size=1000)
    threshold = threshold_for_fpr(real, fpr)
    assert np.mean(real >= threshold) <= fpr
    assert np.mean(real >= np.nextafter(threshold, -np.inf) - 1e-9) > fpr - 0.002


def test_stack_weighs_informative_detectors_and_sets_its_operating_point():
    x, y = _scores()
    stacker = fit_stacker(x, y, FEATURES, dataset="synthetic calib")
    assert stacker.weights[0] > stacker.weights[1] > abs(stacker.weights[2])
    point = stacker.operating_point
    assert point.measured_fpr <= 0.01 and point.n_real == 500
    assert point.inconclusive_from <= point.threshold
    probabilities = stacker.probabilities(x)
    assert np.mean(probabilities[y == 0] >= point.threshold) <= 0.01
    assert np.mean(probabilities[y == 1] >= point.threshold) > 0.3


def test_stacker_round_trips_through_json(tmp_path):
    x, y = _scores()
    stacker = fit_stacker(x, y, FEATURES)
    stacker.save(tmp_path / "fusion.json")
    again = Stacker.load(tmp_path / "fusion.json")
    assert again == stacker
    assert np.allclose(again.probabilities(x), stacker.probabilities(x))


def test_a_missing_detector_counts_as_average_not_as_an_error():
    x, y = _scores()
    stacker = fit_stacker(x, y, FEATURES)
    full = stacker.probability({"detector:a": 3.0, "detector:b": 2.0, "spectral": 0.0})
    partial = stacker.probability({"detector:a": 3.0, "detector:b": 2.0})
    assert math.isfinite(partial) and partial == pytest.approx(
        stacker.probability({"detector:a": 3.0, "detector:b": 2.0, "spectral": stacker.means[2]})
    )
    assert full > 0.5


def _evidence(a: float, b: float, spectral: float) -> list[Evidence]:
    return [
        Evidence("detector:a", "a", data={"raw_probability": 1 / (1 + math.exp(-a))}),
        Evidence("detector:b", "b", data={"raw_probability": 1 / (1 + math.exp(-b))}),
        Evidence("spectral", "s", data={"score": spectral}),
    ]


def test_fused_evidence_decides_above_the_operating_point_and_hedges_below():
    x, y = _scores()
    stacker = fit_stacker(x, y, FEATURES)
    assert feature_values(_evidence(1.0, 2.0, 0.3)) == pytest.approx(
        {"detector:a": 1.0, "detector:b": 2.0, "spectral": 0.3}
    )
    high = fused_evidence(stacker, _evidence(6.0, 5.0, 0.0))
    assert high.points_to == "ai-generated" and fuse([high]).label == "ai-generated"
    assert high.data["operating_point"]["target_fpr"] == 0.01
    low = fused_evidence(stacker, _evidence(-4.0, -3.0, 0.0))
    assert low.points_to == "authentic" and fuse([low]).label == "inconclusive"
    assert fused_evidence(stacker, [Evidence("metadata", "nothing")]) is None


def test_another_operating_point_can_be_chosen_on_the_same_genuine_photos():
    x, y = _scores()
    stacker = fit_stacker(x, y, FEATURES)
    stricter = stacker.at_fpr(0.002)
    assert stricter.operating_point.threshold >= stacker.operating_point.threshold
    assert stricter.operating_point.measured_fpr <= 0.002
    fixed = stacker.at_threshold(0.9)
    assert fixed.operating_point.threshold == 0.9 and 0 <= fixed.operating_point.measured_fpr <= 1
    assert Stacker.from_dict(stricter.to_dict()).real_probabilities == pytest.approx(
        stricter.real_probabilities
    )
