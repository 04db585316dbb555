"""The embedded default detector: shipped in the package, calibrated, and run by `scan` with no options."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from imagegen import photo_like_rgb
from pixelsleuth.detectors import ModelCard, create
from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.detectors.defaults import embedded_detectors
from pixelsleuth.outputs.cli import app

runner = CliRunner()
MAX_WEIGHTS_BYTES = 20 * 2**20


def test_a_default_detector_ships_with_a_complete_card():
    defaults = embedded_detectors()
    assert defaults, "detectors/weights/defaults.json lists no default detector"
    for name, weights in defaults:
        assert weights.is_file() and weights.stat().st_size <= MAX_WEIGHTS_BYTES
        card = ModelCard.load(card_path_for(weights))
        assert card.detector == name
        assert card.training_command.startswith("pixelsleuth ")
        assert "forge" in card.training_data
        assert card.extra["calibration"]["method"] == "platt"
        assert card.extra["calibration"]["n"] > 100
        assert {metric.dataset.split(":")[0] for metric in card.metrics} >= {"forge-test", "dev-crops"}
        assert create(name, weights).trained


def _scan(path, *options):
    result = runner.invoke(app, ["scan", "--json", "--no-store", *options, str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[0])


def test_scan_runs_the_default_and_reports_a_calibrated_probability(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like_rgb(160, 128)).save(path)
    ((name, _),) = embedded_detectors()[:1]
    record = _scan(path)
    (item,) = [e for e in record["evidence"] if e["source"] == f"detector:{name}"]
    assert item["data"]["calibrated"] is True
    assert 0.0 <= item["data"]["probability"] <= 1.0
    assert record["verdict"] in {"ai-generated", "authentic", "inconclusive"}
    skipped = _scan(path, "--no-default-detectors")
    assert not [e for e in skipped["evidence"] if e["source"].startswith("detector:")]


def test_the_default_scores_differ_between_images(tmp_path):
    ((name, weights),) = embedded_detectors()[:1]
    detector = create(name, weights)
    rng = np.random.default_rng(0)
    smooth = photo_like_rgb(128, 128, seed=1)
    blocky = np.kron(rng.integers(0, 256, (64, 64, 3)), np.ones((2, 2, 1))).astype(np.uint8)
    scores = detector.predict([smooth, blocky])
    assert np.all((scores >= 0) & (scores <= 1))
    assert abs(float(scores[0]) - float(scores[1])) > 1e-4
