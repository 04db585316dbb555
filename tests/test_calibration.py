"""Calibrated detector scores, and the default detectors shipped in the package."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsleuth.detectors import Detector, ModelCard, create, register_detector
from pixelsleuth.detectors.calibration import PlattCalibration, expected_calibration_error, fit_platt
from pixelsleuth.detectors.defaults import embedded_detectors
from pixelsleuth.detectors.evidence import detector_evidence
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, default_detector_specs


def overconfident(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    evidence = 2 * labels - 1 + rng.normal(0, 1, n)  # the true log-odds are 2 * evidence
    return 1 / (1 + np.exp(-3 * evidence)), labels


def test_platt_recovers_the_true_slope_and_lowers_calibration_error():
    raw, labels = overconfident(4000)
    calibration = fit_platt(raw, labels)
    assert calibration.slope == pytest.approx(2 / 3, abs=0.05)
    assert calibration.intercept == pytest.approx(0.0, abs=0.1)
    held_raw, held_labels = overconfident(4000, seed=1)
    before = expected_calibration_error(held_raw, held_labels)
    after = expected_calibration_error(calibration(held_raw), held_labels)
    assert after < before / 2


def test_platt_round_trips_and_refuses_one_class():
    calibration = PlattCalibration(0.5, -0.1, 10, "test")
    assert PlattCalibration.from_dict(calibration.to_dict()) == calibration
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.array([0.2, 0.9]), np.array([1, 1]))


class _Bias(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(batch.shape[0])


@register_detector("bias-calibration-test", "test detector: sigmoid(bias)")
class BiasDetector(Detector):
    name = "bias-calibration-test"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(_Bias(), ModelCard("bias-calibration-test", "1", "bias"), device=device)


@pytest.fixture
def calibrated_weights(tmp_path):
    detector = create("bias-calibration-test")
    with torch.no_grad():
        detector.model.bias.fill_(4.0)  # raw P = 0.982
    calibration = PlattCalibration(0.25, 0.0, 100).to_dict()
    card = ModelCard("bias-calibration-test", "1", "bias", extra={"calibration": calibration})
    detector.save(tmp_path / "bias.safetensors", card)
    return tmp_path / "bias.safetensors"


def test_detector_evidence_applies_the_cards_calibration(calibrated_weights):
    detector = create("bias-calibration-test", calibrated_weights)
    evidence = detector_evidence(detector, np.zeros((8, 8, 3), np.uint8))
    assert evidence.data["raw_probability"] == pytest.approx(0.982, abs=1e-3)
    assert evidence.data["probability"] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-3)  # sigmoid(0.25*4)
    assert evidence.data["calibrated"] is True
    assert "calibrated" in evidence.finding and "uncalibrated" not in evidence.finding


def test_embedded_defaults_are_read_from_the_weights_folder(tmp_path, calibrated_weights, monkeypatch):
    assert embedded_detectors(tmp_path) == []
    (tmp_path / "defaults.json").write_text(
        json.dumps([{"detector": "bias-calibration-test", "weights": calibrated_weights.name}])
    )
    assert embedded_detectors(tmp_path) == [("bias-calibration-test", calibrated_weights)]
    monkeypatch.setattr("pixelsleuth.detectors.defaults.embedded_weights_dir", lambda: tmp_path)
    specs = default_detector_specs()
    assert [spec.name for spec in specs] == ["bias-calibration-test"]
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    analysis = Analyzer(AnalyzerConfig()).analyze(image)
    assert any(item.source == "detector:bias-calibration-test" for item in analysis.evidence)
    assert "detectors:bias-calibration-test@" in AnalyzerConfig().version
