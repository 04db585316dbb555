"""The fused score inside an analysis: fitted by `fit-fusion`, applied by the analyzer, operating points."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.detectors import Detector, ModelCard, create, register_detector
from pixelsleuth.errors import UsageError
from pixelsleuth.intake import load_image
from pixelsleuth.outputs.cli import app
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, DetectorSpec, OperatingPointChoice
from pixelsleuth.verdict import fuse


class _Brightness(torch.nn.Module):
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return 20.0 * (batch.mean(dim=(1, 2, 3)) - 0.5)


@register_detector("fusion-brightness-test", "test detector: brighter images score higher")
class BrightnessDetector(Detector):
    name = "fusion-brightness-test"

    def __init__(self, device: str = "cpu") -> None:
        card = ModelCard("fusion-brightness-test", "1", "mean brightness")
        card.preprocessing = type(card.preprocessing)(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        super().__init__(_Brightness(), card, device=device)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("fusion")
    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for index in range(60):
        for label, centre in ((0, 0.42), (1, 0.58)):
            level = np.clip(rng.normal(centre, 0.05), 0, 1)
            noise = rng.normal(0, 6, (64, 64, 3))
            pixels = np.clip(255 * level + noise, 0, 255).astype(np.uint8)
            name = f"{label}-{index:03d}.png"
            Image.fromarray(pixels).save(root / name)
            rows.append(f"{name},{label}")
    (root / "calib.csv").write_text("\n".join(rows) + "\n")
    weights = root / "w.safetensors"
    create("fusion-brightness-test").save(weights)
    card = root / "fusion.json"
    result = CliRunner().invoke(
        app,
        ["fit-fusion", str(root / "calib.csv"), str(card), "--detector", f"fusion-brightness-test={weights}"],
    )
    assert result.exit_code == 0, result.output
    return root, weights, card, result.output


def test_fit_fusion_writes_a_card_with_its_operating_point(fitted):
    _, _, card, output = fitted
    record = json.loads(card.read_text())
    assert record["features"] == ["spectral", "detector:fusion-brightness-test"]
    assert record["operating_point"]["target_fpr"] == 0.01
    assert record["operating_point"]["measured_fpr"] <= 0.01
    assert len(record["real_probabilities"]) == 60
    assert "operating point fpr=0.01" in output


def _analyzer(weights, card, point=None) -> Analyzer:
    spec = DetectorSpec("fusion-brightness-test", str(weights))
    config = AnalyzerConfig(sources=("spectral",), detectors=(spec,), fusion=str(card), operating_point=point)
    return Analyzer(config)


def test_the_fused_score_decides_and_the_stacked_scores_become_information(fitted, tmp_path):
    _, weights, card, _ = fitted
    Image.fromarray(np.full((64, 64, 3), 235, np.uint8)).save(tmp_path / "bright.png")
    evidence = _analyzer(weights, card).evidence(load_image(tmp_path / "bright.png"))
    fused = [item for item in evidence if item.source == "fused-detectors"]
    assert len(fused) == 1 and fused[0].points_to == "ai-generated"
    detector = next(item for item in evidence if item.source == "detector:fusion-brightness-test")
    assert detector.points_to == "none" and "Counted in the fused score" in detector.detail
    assert fuse(evidence).label == "ai-generated"


def test_an_other_operating_point_is_recorded_and_changes_the_version(fitted):
    _, weights, card, _ = fitted
    default, strict = (
        _analyzer(weights, card),
        _analyzer(weights, card, OperatingPointChoice.parse("fpr=0.5%")),
    )
    assert default.version != strict.version and "operating-point:fpr=0.005" in strict.version
    assert strict._stacker.operating_point.target_fpr == 0.005


@pytest.mark.parametrize(
    "text,expected",
    [("fpr=1%", (0.01, None)), ("fpr=0.005", (0.005, None)), ("threshold=0.8", (None, 0.8))],
)
def test_operating_point_choices_parse(text, expected):
    choice = OperatingPointChoice.parse(text)
    assert (choice.fpr, choice.threshold) == expected


@pytest.mark.parametrize("text", ["fpr=2", "threshold=x", "recall=0.9", "fpr="])
def test_bad_operating_points_are_usage_errors(text):
    with pytest.raises(UsageError, match="operating point"):
        OperatingPointChoice.parse(text)
