"""`pixelsleuth scan --detector NAME=WEIGHTS` runs registered detectors and their scores enter the verdict."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.detectors import Detector, ModelCard, create, register_detector
from pixelsleuth.detectors.evidence import score_to_evidence
from pixelsleuth.outputs.cli import app
from pixelsleuth.pipeline import AnalyzerConfig, DetectorSpec

runner = CliRunner()


class _FixedLogit(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(batch.shape[0])


@register_detector("fixed-logit-test", "test detector whose score is sigmoid(bias)")
class FixedLogitDetector(Detector):
    name = "fixed-logit-test"

    def __init__(self, device: str = "cpu") -> None:
        super().__init__(_FixedLogit(), ModelCard("fixed-logit-test", "1", "bias only"), device=device)


def scan_with(weights, image):
    arguments = [
        "scan",
        "--json",
        "--no-store",
        "--no-default-detectors",
        "--detector",
        f"fixed-logit-test={weights}",
        str(image),
    ]
    return runner.invoke(app, arguments)


def weights_with_logit(path, logit: float):
    detector = create("fixed-logit-test")
    with torch.no_grad():
        detector.model.bias.fill_(logit)
    detector.save(path)
    return path


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_detector_score_enters_the_verdict(tmp_path, image):
    weights = weights_with_logit(tmp_path / "w.safetensors", 3.0)  # sigmoid(3) = 0.953
    result = runner.invoke(
        app,
        [
            "scan",
            "--json",
            "--no-store",
            "--no-default-detectors",
            "--detector",
            f"fixed-logit-test={weights}",
            str(image),
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[0])
    (item,) = [e for e in record["evidence"] if e["source"] == "detector:fixed-logit-test"]
    assert item["data"]["probability"] == pytest.approx(0.9526, abs=1e-3)
    assert item["points_to"] == "ai-generated"
    assert record["verdict"] == "ai-generated"


def test_low_score_is_weak_authentic_evidence(tmp_path, image):
    weights = weights_with_logit(tmp_path / "w.safetensors", -3.0)
    result = runner.invoke(
        app,
        [
            "scan",
            "--json",
            "--no-store",
            "--no-default-detectors",
            "--detector",
            f"fixed-logit-test={weights}",
            str(image),
        ],
    )
    record = json.loads(result.stdout.splitlines()[0])
    (item,) = [e for e in record["evidence"] if e["source"] == "detector:fixed-logit-test"]
    assert item["points_to"] == "authentic"
    assert item["strength"] <= 0.5
    assert record["verdict"] == "inconclusive"  # one detector's silence does not make an image authentic


def test_new_weights_mean_a_new_analysis_version(tmp_path):
    first = weights_with_logit(tmp_path / "a.safetensors", 1.0)
    second = weights_with_logit(tmp_path / "b.safetensors", 2.0)
    version_a = AnalyzerConfig(detectors=(DetectorSpec("fixed-logit-test", str(first)),)).version
    version_b = AnalyzerConfig(detectors=(DetectorSpec("fixed-logit-test", str(second)),)).version
    assert version_a != version_b
    assert "detectors:fixed-logit-test@" in version_a


def test_bad_detector_arguments_are_usage_errors(tmp_path, image):
    assert runner.invoke(app, ["scan", "--detector", "fixed-logit-test", str(image)]).exit_code == 2
    missing = f"fixed-logit-test={tmp_path / 'none.safetensors'}"
    assert runner.invoke(app, ["scan", "--detector", missing, str(image)]).exit_code == 2
    weights = weights_with_logit(tmp_path / "w.safetensors", 0.0)
    assert (
        runner.invoke(app, ["scan", "--detector", f"no-such-detector={weights}", str(image)]).exit_code == 2
    )


def test_score_to_evidence_is_symmetric_but_discounts_silence():
    high = score_to_evidence("x", 0.9, calibrated=True, version="1")
    low = score_to_evidence("x", 0.1, calibrated=True, version="1")
    assert high.points_to == "ai-generated" and high.strength == pytest.approx(0.8)
    assert low.points_to == "authentic" and low.strength == pytest.approx(0.4)


def test_detectors_command_lists_registered():
    result = runner.invoke(app, ["detectors"])
    assert result.exit_code == 0
    assert "fixed-logit-test" in result.stdout
