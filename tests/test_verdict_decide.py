"""The verdict: hard evidence decides alone, conflicts abstain, the calibrated score decides the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pixelsleuth.detectors.calibration import PlattCalibration, expected_calibration_error
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.card import VerdictCard
from pixelsleuth.verdict.decide import HARD_PROBABILITY, decide, is_hard
from pixelsleuth.verdict.explain import explain
from pixelsleuth.verdict.fit import fit_verdict_card

# A fitted-looking card: identity calibration, threshold 0.8, authentic under 0.1.
CARD = VerdictCard(
    PlattCalibration(1.0, 0.0, 100), 0.8, 0.1, 0.01, 0.01, 0.05, 0.05,
    real_probabilities=tuple(np.linspace(0, 0.85, 101)),
)  # fmt: skip


def fused(probability: float) -> Evidence:
    above = probability >= CARD.threshold
    return Evidence(
        "fused-detectors",
        f"fused P = {probability}",
        "ai-generated" if above else "none",
        0.6 if above else 0.0,
        data={"probability": probability},
    )


def c2pa(points_to: str, state: str, strength: float = 0.9) -> Evidence:
    return Evidence(
        "c2pa", f"credentials say {points_to}", points_to, strength, data={"signature_state": state}
    )


RECORD = Evidence("generator-text", "AUTOMATIC1111 parameters", "ai-generated", 0.95)
WATERMARK = Evidence("watermark", "SDXL watermark decoded", "ai-generated", 0.95)
CAMERA = Evidence("exif", "Canon EOS", "authentic", 0.2)


@pytest.mark.parametrize(
    ("evidence", "label", "decided_by"),
    [
        # hard evidence decides alone, whatever the pixels say
        ([RECORD, fused(0.02)], "ai-generated", "hard-evidence:generator-text"),
        ([WATERMARK, fused(0.02), CAMERA], "ai-generated", "hard-evidence:watermark"),
        ([c2pa("ai-generated", "valid"), fused(0.3)], "ai-generated", "hard-evidence:c2pa"),
        ([c2pa("authentic", "trusted"), fused(0.3)], "authentic", "hard-evidence:c2pa"),
        # an AI declaration by an untrusted signer decides, a camera capture by one does not; weak
        # watermark matches are not hard: the calibrated score decides
        ([c2pa("ai-generated", "untrusted", 0.76), fused(0.02)], "ai-generated", "hard-evidence:c2pa"),
        ([c2pa("authentic", "untrusted", 0.6), fused(0.5)], "inconclusive", "calibrated-score"),
        ([Evidence("watermark", "weak match", "ai-generated", 0.7), fused(0.02)], "inconclusive",
         "calibrated-score"),
        # hard or strong evidence on both sides: abstain
        ([RECORD, c2pa("authentic", "valid")], "inconclusive", "conflict"),
        ([c2pa("authentic", "valid"), fused(0.95)], "inconclusive", "conflict"),
        ([Evidence("c2pa", "changed after signing", "manipulated", 0.55),
          Evidence("xmp", "camera", "authentic", 0.6), fused(0.5)], "inconclusive", "conflict"),
        # the calibrated score at the card's operating points
        ([fused(0.95)], "ai-generated", "calibrated-score"),
        ([fused(0.5)], "inconclusive", "calibrated-score"),
        ([fused(0.02)], "authentic", "calibrated-score"),
        ([fused(0.5), Evidence("localization", "region x 1–9", "manipulated", 0.97)], "manipulated",
         "calibrated-score"),
        # nothing calibrated to stand on: the plain evidence combination, as before the card
        ([CAMERA], "inconclusive", "evidence-combination"),
        ([Evidence("exif", "nothing")], "inconclusive", "no-evidence"),
    ],
)  # fmt: skip
def test_fusion_truth_table(evidence, label, decided_by):
    decision = decide(evidence, CARD)
    assert (decision.label, decision.decided_by) == (label, decided_by)
    if decision.calibrated:  # soft findings are never surer than hard evidence
        assert 1 - HARD_PROBABILITY <= decision.probability <= HARD_PROBABILITY
    if decided_by == "conflict":
        assert "point away from a genuine photo" in decision.conflict and "towards one" in decision.conflict
        assert "conflict" in explain(evidence, decision)
    if decided_by.startswith("hard"):
        expected = 1 - HARD_PROBABILITY if label == "authentic" else HARD_PROBABILITY
        assert decision.probability == pytest.approx(expected)
        assert "hard evidence" in explain(evidence, decision)


def test_hard_evidence_needs_valid_credentials_and_a_decisive_strength():
    assert is_hard(RECORD) and is_hard(WATERMARK) and is_hard(c2pa("ai-generated", "trusted"))
    assert not is_hard(c2pa("ai-generated", "invalid")) and not is_hard(c2pa("authentic", "untrusted"))
    assert not is_hard(CAMERA) and not is_hard(fused(0.99))
    ingredient = Evidence("c2pa", "ingredient", "ai-generated", 0.9, data={"signature_state": "valid",
                                                                          "ingredient": "a.jpg"})  # fmt: skip
    assert not is_hard(ingredient)


def test_every_result_records_its_operating_point_and_a_lower_ranked_source_counts_less():
    decision = decide([fused(0.5)], CARD)
    assert decision.operating_point["label"] == "fpr=0.01 (threshold 0.8000)"
    assert decision.operating_point["threshold"] == 0.8 and decision.operating_point["authentic_below"] == 0.1
    # a soft provenance finding moves the probability by its log-odds, times the ranking's weight
    soft = Evidence("exif", "edited in an AI tool", "ai-generated", 0.6)
    trusted = decide([fused(0.5), soft], CARD).probability
    distrusted = decide(
        [fused(0.5), soft], VerdictCard(**{**CARD.__dict__, "weights": {"exif": 0.0}})
    ).probability
    assert trusted > 0.5 and distrusted == pytest.approx(0.5)


def test_another_operating_point_is_chosen_on_the_cards_genuine_photos():
    stricter = CARD.at_fpr(0.005)
    real = np.array(CARD.real_probabilities)
    assert stricter.threshold > CARD.threshold or math.isclose(stricter.threshold, CARD.threshold)
    assert np.mean(real >= stricter.threshold) <= 0.005 and stricter.operating_point()["target_fpr"] == 0.005
    fixed = CARD.at_threshold(0.7)
    assert fixed.operating_point()["label"] == "threshold=0.7000"
    assert fixed.measured_fpr == pytest.approx(np.mean(real >= 0.7))


def test_card_round_trips_through_json(tmp_path):
    CARD.save(tmp_path / "card.json")
    assert VerdictCard.load(tmp_path / "card.json") == CARD


def test_calibration_lowers_ece_on_overconfident_synthetic_scores():
    rng = np.random.default_rng(7)

    def sample(n):
        labels = rng.integers(0, 2, n)
        true_log_odds = 1.5 * (2 * labels - 1) + rng.normal(0, 1.5, n)
        raw = 1 / (1 + np.exp(-4 * true_log_odds))  # four times too sure of itself
        return [[fused(float(p))] for p in raw], labels, raw

    evidence, labels, _ = sample(600)
    card = fit_verdict_card(evidence, labels, weights={}, fpr=0.01)
    test_evidence, test_labels, raw = sample(2000)
    calibrated = np.array([decide(items, card).probability for items in test_evidence])
    before = expected_calibration_error(raw, test_labels)
    after = expected_calibration_error(calibrated, test_labels)
    assert after < 0.5 * before and after < 0.05
    genuine = calibrated[test_labels == 0]
    assert np.mean(genuine >= card.threshold) <= 0.02  # the 1 % operating point holds on fresh photos


def test_a_calibrated_verdict_names_what_it_rests_on_even_a_score_inside_its_own_band():
    finding = "The detectors are undecided (fused P = 0.93)."
    in_band = Evidence("fused-detectors", finding, data={"probability": 0.93})
    camera = Evidence("exif", "Camera: Canon", "authentic", 0.2)
    decision = decide([in_band, camera], CARD)
    assert decision.label == "ai-generated" and decision.drivers == ("fused-detectors",)
    text = explain([in_band, camera], decision)
    assert "rests mostly on fused-detectors" in text and finding.rstrip(".") in text
    assert "Checked without a finding" not in text  # the driver is not listed as silent
    assert decide([fused(0.5)], CARD).drivers == ()  # inconclusive: nothing moved it either way


def test_every_scan_result_records_the_operating_point_it_used():
    from pathlib import Path

    from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, OperatingPointChoice

    sample = Path(__file__).resolve().parents[1] / "samples" / "camera-exif-resaved.jpg"
    default = Analyzer(AnalyzerConfig())
    stricter = Analyzer(AnalyzerConfig(operating_point=OperatingPointChoice.parse("fpr=0.5%")))
    first, second = default.analyze(sample), stricter.analyze(sample)
    assert first.operating_point["target_fpr"] == 0.01 and second.operating_point["target_fpr"] == 0.005
    assert second.operating_point["threshold"] >= first.operating_point["threshold"]
    assert default.version != stricter.version  # stored results are kept apart per operating point
    assert first.decided_by == "calibrated-score" and 0.01 <= first.score <= 0.99
