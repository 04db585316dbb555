"""`pixelsleuth calibrate`: Platt calibration fitted on held-apart images, carried in the model card."""

import json

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.bench.devset import score_manifest
from pixelsleuth.detectors import Detector, ModelCard, create, register_detector
from pixelsleuth.detectors.calibration import CalibrationDataError, PlattCalibration, fit_calibration
from pixelsleuth.detectors.command import calibrate_command

runner = CliRunner()


class _Brightness(torch.nn.Module):
    """Logit = scale * (mean brightness - 0.5): an over-confident detector when scale is large."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(40.0))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.scale * (batch.mean(dim=(1, 2, 3)) - 0.5)


@register_detector("brightness-test", "test detector: brighter images score higher")
class BrightnessDetector(Detector):
    name = "brightness-test"

    def __init__(self, device: str = "cpu") -> None:
        card = ModelCard("brightness-test", "1", "mean brightness")
        card.preprocessing = type(card.preprocessing)(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        super().__init__(_Brightness(), card, device=device)


def _dataset(root, n: int = 40, seed: int = 0):
    """Real images a little darker than generated ones, with heavy overlap."""
    rng = np.random.default_rng(seed)
    for folder, centre in (("0_real", 0.47), ("1_fake", 0.53)):
        (root / folder).mkdir(parents=True)
        for index in range(n):
            level = np.clip(rng.normal(centre, 0.04), 0, 1)
            pixels = np.full((16, 16, 3), int(255 * level), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{index:03d}.png")
    return root


@pytest.fixture
def app():
    application = typer.Typer()
    application.command("calibrate")(calibrate_command)
    application.command("noop")(lambda: None)  # two commands: typer keeps "calibrate" as a subcommand
    return application


@pytest.fixture
def trained_weights(tmp_path):
    path = tmp_path / "w.safetensors"
    create("brightness-test").save(path)
    return path


def test_fit_calibration_improves_an_overconfident_score():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    raw = 1 / (1 + np.exp(-6 * (2 * labels - 1 + rng.normal(0, 1.2, 500))))
    fit = fit_calibration(raw, labels, data="synthetic")
    assert fit.n_real + fit.n_fake == 500
    assert 0 < fit.calibration.slope < 1
    assert fit.ece_calibrated < fit.ece_raw


def test_fit_calibration_leaves_out_unscored_images_and_refuses_one_class():
    scores = np.array([0.2, np.nan, 0.8] * 20)
    labels = np.array([0, 1, 1] * 20)
    assert fit_calibration(scores, labels).n_fake == 20
    with pytest.raises(CalibrationDataError, match="at least 10 real"):
        fit_calibration(np.full(30, 0.9), np.ones(30, dtype=int))


def test_calibrate_writes_weights_whose_card_carries_the_fit(tmp_path, app, trained_weights):
    data = _dataset(tmp_path / "calib")
    output = tmp_path / "out" / "calibrated.safetensors"
    result = runner.invoke(
        app, ["calibrate", str(trained_weights), str(data), str(output), "--detector", "brightness-test"]
    )
    assert result.exit_code == 0, result.output
    assert "Platt calibration on 40 real and 40 generated" in result.output
    card = json.loads(output.with_suffix(".json").read_text())
    calibration = PlattCalibration.from_dict(card["extra"]["calibration"])
    assert calibration.n == 80 and calibration.data == str(data)
    fit = card["extra"]["calibration_fit"]
    assert fit["ece_calibrated"] < fit["ece_raw"]
    assert output.read_bytes() == trained_weights.read_bytes()
    assert create("brightness-test", output).card.extra["calibration"]["slope"] == calibration.slope


def test_calibrate_refuses_untrained_weights_and_one_class_data(tmp_path, app, trained_weights):
    data = _dataset(tmp_path / "calib")
    untrained = runner.invoke(
        app, ["calibrate", str(tmp_path / "missing.safetensors"), str(data), str(tmp_path / "o.safetensors")]
    )
    assert untrained.exit_code == 2
    one_class = tmp_path / "fake-only"
    (one_class / "1_fake").mkdir(parents=True)
    for path in (data / "1_fake").iterdir():
        (one_class / "1_fake" / path.name).write_bytes(path.read_bytes())
    (one_class / "0_real").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(one_class / "0_real" / "only.png")
    result = runner.invoke(
        app,
        [
            "calibrate",
            str(trained_weights),
            str(one_class),
            str(tmp_path / "o.safetensors"),
            "-d",
            "brightness-test",
        ],
    )
    assert result.exit_code == 2
    assert "at least 10 real" in result.output


def test_score_manifest_scores_each_file_once_and_counts_failures(tmp_path):
    rows = ["path,label,subset,generator"]
    for index in range(6):
        Image.fromarray(np.full((8, 8, 3), index, np.uint8)).save(tmp_path / f"{index}.png")
    for subset in ("a", "b"):
        rows += [f"{i}.png,real,{subset},real" for i in range(3)]
        rows += [f"{i}.png,fake,{subset},{subset}" for i in ((3, 4) if subset == "a" else (4, 5))]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    seen: list[int] = []

    def score(paths):
        seen.append(len(paths))
        return [np.nan if path.name == "5.png" else int(path.stem) / 10 for path in paths]

    results = score_manifest(manifest, score)
    assert seen == [6]
    assert results["a"]["auc"] == 1.0 and results["a"]["n_fake"] == 2
    assert results["b"]["failed"] == 1 and results["b"]["n_fake"] == 1


def test_max_strength_in_the_card_caps_the_detectors_evidence(tmp_path, app, trained_weights):
    from pixelsleuth.detectors.evidence import detector_evidence

    data = _dataset(tmp_path / "calib")
    output = tmp_path / "capped.safetensors"
    arguments = ["calibrate", str(trained_weights), str(data), str(output), "-d", "brightness-test"]
    result = runner.invoke(app, [*arguments, "--max-strength", "0.3"])
    assert result.exit_code == 0, result.output
    detector = create("brightness-test", output)
    assert detector.card.extra["max_evidence_strength"] == 0.3
    bright = np.full((16, 16, 3), 250, np.uint8)
    item = detector_evidence(detector, bright)
    assert item.points_to == "ai-generated"
    assert item.strength == 0.3 and item.data["max_strength"] == 0.3
    uncapped = detector_evidence(create("brightness-test", trained_weights), bright)
    assert uncapped.strength > 0.9
