"""The embedded default: a fused ensemble shipped in the package, with complete cards, run by `scan`."""

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from imagegen import photo_like_rgb
from pixelsleuth.detectors import ModelCard, create
from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.detectors.defaults import embedded_detectors, embedded_fusion_card
from pixelsleuth.outputs.cli import app
from pixelsleuth.verdict.stack import SOURCE as FUSED_SOURCE
from pixelsleuth.verdict.stack import Stacker

runner = CliRunner()
MAX_WEIGHTS_BYTES = 20 * 2**20


def test_the_default_detectors_ship_with_complete_cards():
    defaults = embedded_detectors()
    assert [name for name, _ in defaults] == ["fsd", "patchnet"]
    for name, weights in defaults:
        assert weights.is_file() and weights.stat().st_size <= MAX_WEIGHTS_BYTES
        card = ModelCard.load(card_path_for(weights))
        assert card.detector == name
        assert card.training_command.startswith("pixelsleuth ")
        assert "pool" in card.training_data
        assert {metric.dataset.split(":")[0] for metric in card.metrics} >= {"pool-test", "dev-crops"}
        assert create(name, weights).trained


def test_the_fusion_card_states_its_operating_point_and_how_it_was_made():
    path = embedded_fusion_card()
    assert path is not None and path.is_file()
    stacker = Stacker.load(path)
    assert stacker.features == ("spectral", "detector:fsd", "detector:patchnet")
    point = stacker.operating_point
    assert point.target_fpr == 0.01 and point.measured_fpr <= 0.01 and point.n_real >= 1000
    assert point.inconclusive_from < point.threshold
    card = json.loads(path.read_text())
    assert any(step.startswith("pixelsleuth fit-fusion") for step in card["reproduce"])
    assert {"dev", "pool-test", "robustness"} <= set(card["measured"])


def _scan(path, *options):
    result = runner.invoke(app, ["scan", "--json", "--no-store", *options, str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.splitlines()[0])


def test_scan_runs_the_fused_default_at_its_operating_point(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo_like_rgb(160, 128)).save(path)
    record = _scan(path)
    (fused,) = [e for e in record["evidence"] if e["source"] == FUSED_SOURCE]
    assert set(fused["data"]["inputs"]) == {"spectral", "detector:fsd", "detector:patchnet"}
    assert fused["data"]["operating_point"]["target_fpr"] == 0.01
    assert 0.0 <= fused["data"]["probability"] <= 1.0
    stacked = [e for e in record["evidence"] if e["source"].startswith("detector:")]
    assert len(stacked) == 2 and all(e["points_to"] == "none" for e in stacked)
    assert record["verdict"] in {"ai-generated", "authentic", "inconclusive"}

    looser = _scan(path, "--operating-point", "fpr=5%")
    (item,) = [e for e in looser["evidence"] if e["source"] == FUSED_SOURCE]
    assert item["data"]["operating_point"]["target_fpr"] == 0.05
    assert item["data"]["operating_point"]["threshold"] < fused["data"]["operating_point"]["threshold"]

    skipped = _scan(path, "--no-default-detectors")
    assert not [e for e in skipped["evidence"] if e["source"].startswith("detector:")]
    assert not [e for e in skipped["evidence"] if e["source"] == FUSED_SOURCE]


def test_the_default_scores_differ_between_images():
    for name, weights in embedded_detectors():
        detector = create(name, weights)
        rng = np.random.default_rng(0)
        smooth = photo_like_rgb(128, 128, seed=1)
        blocky = np.kron(rng.integers(0, 256, (64, 64, 3)), np.ones((2, 2, 1))).astype(np.uint8)
        scores = detector.predict([smooth, blocky])
        assert np.all((scores >= 0) & (scores <= 1))
        assert abs(float(scores[0]) - float(scores[1])) > 1e-4, name
