"""Evaluation, robustness, their writers, plots and commands, with a deterministic brightness "detector"."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.bench.command import evaluate_command, robustness_command
from pixelsleuth.bench.evaluate import (
    MEAN_ROW,
    POOLED_ROW,
    NothingToEvaluateError,
    evaluate,
    limit_per_subset,
    percent,
)
from pixelsleuth.bench.metrics import METRIC_FIELDS, binary_metrics
from pixelsleuth.bench.perturb import PerturbationStep, robustness_grid
from pixelsleuth.bench.plots import plot_pr, plot_robustness, plot_roc
from pixelsleuth.bench.robustness import UnknownFamilyError, robustness
from pixelsleuth.detectors import Detector, ModelCard, Preprocessing, register_detector
from pixelsleuth.train.datasets import Sample, discover

MIN_SIDE = 8


@register_detector("tiny-eval-test", "Test detector: P(generated) = mean brightness / 255")
class BrightnessDetector(Detector):
    """Scores an image by its mean brightness; refuses images smaller than 8 pixels on a side."""

    name = "tiny-eval-test"

    def __init__(self, *, device: str = "cpu") -> None:
        card = ModelCard(
            "tiny-eval-test", "0", "mean brightness", Preprocessing(mean=(0, 0, 0), std=(1, 1, 1))
        )
        super().__init__(torch.nn.Linear(1, 1), card, device=device)
        self.largest_batch = 0

    def predict(self, images, *, batch_size: int = 32) -> np.ndarray:
        self.largest_batch = max(self.largest_batch, len(images))
        for image in images:
            if min(image.shape[:2]) < MIN_SIDE:
                raise ValueError(f"image of {image.shape[1]} x {image.shape[0]} is too small")
        return np.array([image.mean() / 255.0 for image in images])


# Grey levels of the uniform fixture images: subset -> (real levels, generated levels).
LEVELS = {
    "gan_a": ((20, 60, 130), (110, 170, 220)),
    "gan_b": ((30, 90, 160, 200), (120, 140, 230)),
}


def _write_png(path: Path, level: int, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), level, np.uint8)).save(path)


@pytest.fixture
def forensynths(tmp_path: Path) -> Path:
    """A ForenSynths-style test tree of uniform grey images, plus one unreadable and one too-small file."""
    root = tmp_path / "test"
    for subset, (real, fake) in LEVELS.items():
        for label, levels in (("0_real", real), ("1_fake", fake)):
            for index, level in enumerate(levels):
                size = (16, 16) if index % 2 == 0 else (20, 24)  # two sizes in one batch
                _write_png(root / subset / label / f"{index:02d}.png", level, size)
    (root / "gan_b" / "1_fake" / "broken.png").write_bytes(b"this is not an image")
    _write_png(root / "gan_a" / "0_real" / "tiny.png", 250, (4, 4))
    return root


@pytest.fixture
def clean_forensynths(forensynths: Path) -> Path:
    """The same tree without the unreadable and the too-small file."""
    (forensynths / "gan_b" / "1_fake" / "broken.png").unlink()
    (forensynths / "gan_a" / "0_real" / "tiny.png").unlink()
    return forensynths


def expected_metrics(subset: str):
    real, fake = LEVELS[subset]
    return binary_metrics([0] * len(real) + [1] * len(fake), [level / 255 for level in (*real, *fake)])


def assert_same_metrics(ours, expected) -> None:
    assert (ours.n_real, ours.n_fake) == (expected.n_real, expected.n_fake)
    for name in METRIC_FIELDS:
        a, b = getattr(ours, name), getattr(expected, name)
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), name


def test_evaluate_per_subset_numbers_equal_metrics_computed_directly(forensynths):
    detector = BrightnessDetector()
    report = evaluate(detector, discover(forensynths), batch_size=4)
    assert list(report.subsets) == ["gan_a", "gan_b"]
    for subset in LEVELS:
        assert_same_metrics(report.subsets[subset], expected_metrics(subset))
    # pooled = every image together
    labels = [item.label for item in report.scores]
    scores = [item.score for item in report.scores]
    assert_same_metrics(report.pooled, binary_metrics(labels, scores))
    assert len(report.scores) == sum(len(real) + len(fake) for real, fake in LEVELS.values())
    # the unreadable file and the too-small image are listed, not fatal
    failed = {Path(failure.path).name: failure for failure in report.failures}
    assert set(failed) == {"broken.png", "tiny.png"}
    assert failed["broken.png"].stage == "load" and failed["broken.png"].error_type == "not_an_image"
    assert failed["tiny.png"].stage == "score" and "too small" in failed["tiny.png"].message
    assert detector.largest_batch <= 4  # read and scored a batch at a time


def test_mean_row_is_the_mean_of_the_subset_rows(forensynths):
    report = evaluate(BrightnessDetector(), discover(forensynths))
    for name in METRIC_FIELDS:
        values = [getattr(metrics, name) for metrics in report.subsets.values()]
        if "threshold" in name:
            assert math.isnan(getattr(report.mean, name))
        else:
            assert getattr(report.mean, name) == pytest.approx(np.mean(values)), name
    assert report.mean.n_real == sum(metrics.n_real for metrics in report.subsets.values())


def test_writers_produce_parseable_markdown_csv_json(forensynths, tmp_path):
    report = evaluate(BrightnessDetector(), discover(forensynths))
    files = report.save(tmp_path / "out")
    assert {path.name for path in files.values()} == {
        "metrics.md",
        "metrics.csv",
        "metrics.json",
        "scores.csv",
    }

    table = [line for line in files["markdown"].read_text().splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[:3] == ["subset", "n real", "n fake"] and "oracle ACC" in header and "TPR@1%FPR" in header
    body = {
        cells[0].strip("* "): cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:])
    }
    assert list(body) == ["gan_a", "gan_b", MEAN_ROW, POOLED_ROW]
    assert body["gan_a"][header.index("AP")] == percent(report.subsets["gan_a"].average_precision)
    assert body["gan_b"][header.index("n fake")] == "3"
    assert (
        "oracle" in files["markdown"].read_text()
        and "2 image(s) could not be read" in files["markdown"].read_text()
    )

    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    assert [row["subset"] for row in rows] == ["gan_a", "gan_b", MEAN_ROW, POOLED_ROW]
    assert float(rows[1]["roc_auc"]) == pytest.approx(report.subsets["gan_b"].roc_auc)
    assert math.isnan(float(rows[2]["eer_threshold"]))

    record = json.loads(files["json"].read_text())
    assert record["schema"] == "pixelsleuth.evaluation/1" and record["detector"] == "tiny-eval-test"
    assert record["subsets"]["gan_a"]["accuracy"] == pytest.approx(report.subsets["gan_a"].accuracy)
    assert record[MEAN_ROW]["eer_threshold"] is None and record["n_failed"] == 2

    scores = list(csv.DictReader(io.StringIO(files["scores"].read_text())))
    assert len(scores) == len(report.scores)
    by_name = {(row["subset"], row["label"], Path(row["path"]).name): float(row["score"]) for row in scores}
    assert by_name[("gan_b", "1", "02.png")] == pytest.approx(230 / 255)


def test_single_class_subset_gives_nan_ap_and_keeps_accuracy(tmp_path):
    _write_png(tmp_path / "a.png", 200, (16, 16))
    _write_png(tmp_path / "b.png", 100, (16, 16))
    _write_png(tmp_path / "c.png", 10, (16, 16))
    samples = [
        Sample(tmp_path / "a.png", 1, "only_fake", None),
        Sample(tmp_path / "b.png", 1, "only_fake", None),
        Sample(tmp_path / "a.png", 1, "both", None),
        Sample(tmp_path / "c.png", 0, "both", None),
    ]
    report = evaluate(BrightnessDetector(), samples)
    only_fake = report.subsets["only_fake"]
    assert math.isnan(only_fake.average_precision) and only_fake.accuracy == 0.5
    assert report.mean.average_precision == report.subsets["both"].average_precision == 1.0
    markdown = report.to_markdown()
    assert "only_fake: only generated images" in markdown and "| only_fake | 0 | 2 | 50.0 | — |" in markdown


def test_nothing_to_evaluate_is_a_typed_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(NothingToEvaluateError, match="none of the 1 image"):
        evaluate(BrightnessDetector(), [Sample(tmp_path / "x.png", 1, "s", None)])


def test_limit_per_subset_is_seeded_and_keeps_both_classes(forensynths):
    samples = discover(forensynths)
    chosen = limit_per_subset(samples, 2, seed=3)
    assert chosen == limit_per_subset(samples, 2, seed=3)
    for subset in LEVELS:
        labels = sorted(sample.label for sample in chosen if sample.subset == subset)
        assert labels == [0, 1]
    draws = {tuple(sample.path for sample in limit_per_subset(samples, 2, seed=seed)) for seed in range(6)}
    assert len(draws) > 1
    assert len(limit_per_subset(samples, 100)) == len(samples)


def test_plots_are_non_empty_pngs(forensynths, tmp_path):
    report = evaluate(BrightnessDetector(), discover(forensynths))
    for plot, name in ((plot_roc, "roc.png"), (plot_pr, "pr.png")):
        path = plot(report, tmp_path / name)
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300
            pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 5  # something is drawn


def test_robustness_one_row_per_step_and_perturbations_are_applied(clean_forensynths, tmp_path):
    samples = discover(clean_forensynths)
    report = robustness(BrightnessDetector(), samples, families=["blur", "noise"], per_subset=2, batch_size=3)
    grid = robustness_grid()
    expected_steps = [
        (step.family, float(step.strength)) for step in grid if step.family in ("none", "blur", "noise")
    ]
    assert [(row.family, row.strength) for row in report.rows] == expected_steps
    assert report.n_images == 4 and report.subsets == ["gan_a", "gan_b"]

    originals = {}
    for item in report.rows[0].report.scores:
        with Image.open(item.path) as image:
            originals[item.path] = np.asarray(image.convert("RGB"))
    steps = {(step.family, float(step.strength)): step for step in grid}
    baseline = {item.path: item.score for item in report.rows[0].report.scores}
    for row in report.rows[1:]:
        step = steps[(row.family, row.strength)]
        for item in row.report.scores:
            # the detector saw the perturbed image: its score is the perturbed image's brightness
            assert item.score == pytest.approx(step.apply(originals[item.path]).mean() / 255)
            if row.family == "blur":  # blurring a uniform image keeps its brightness
                assert item.score == pytest.approx(baseline[item.path])
        if row.family == "noise":
            assert any(item.score != baseline[item.path] for item in row.report.scores)

    table = [line for line in report.to_markdown().splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(expected_steps) and "AP gan_b" in table[0]
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert len(rows) == len(expected_steps)
    assert float(rows[0]["ap_gan_a"]) == report.rows[0].subset_ap("gan_a")
    assert not math.isnan(report.rows[0].subset_ap("gan_a"))  # the draw kept one real and one fake
    record = json.loads(report.to_json())
    assert [step["family"] for step in record["steps"]] == [family for family, _ in expected_steps]
    path = plot_robustness(report, tmp_path / "robustness.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 5


def test_robustness_step_that_breaks_every_image_is_a_row_not_a_crash(forensynths):
    grid = [
        PerturbationStep("none", 0, lambda image: image),
        PerturbationStep("shrink", 2, lambda image: image[:2, :2]),  # too small for the detector
    ]
    report = robustness(BrightnessDetector(), discover(forensynths), grid)
    baseline, shrink = report.rows
    assert baseline.report is not None and len(baseline.report.scores) == 13
    assert shrink.report is None and math.isnan(shrink.mean_ap) and len(shrink.failures) == 15
    assert {failure.stage for failure in shrink.failures} == {"load", "score"}
    assert "| shrink | 2 | — | — | — | — | 15 |" in report.to_markdown()
    assert json.loads(report.to_json())["steps"][1]["mean"] is None


def test_unknown_family_is_refused(forensynths):
    with pytest.raises(UnknownFamilyError, match="choose from jpeg"):
        robustness(BrightnessDetector(), discover(forensynths), families=["jpg"])


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("evaluate")(evaluate_command)
    app.command("robustness")(robustness_command)
    return app


def test_evaluate_command_writes_every_file_and_prints_the_table(forensynths, tmp_path):
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        _cli(), ["evaluate", str(forensynths), "-o", str(out), "-d", "tiny-eval-test", "--allow-untrained"]
    )
    assert result.exit_code == 0, result.output
    assert "| subset | n real | n fake | ACC |" in result.stdout
    names = {"metrics.md", "metrics.csv", "metrics.json", "scores.csv", "roc.png", "pr.png"}
    assert names <= {path.name for path in out.iterdir()}
    assert all((out / name).stat().st_size > 0 for name in names)
    assert json.loads((out / "metrics.json").read_text())["n_scored"] == 13


def test_evaluate_command_refuses_untrained_weights_and_accepts_saved_ones(forensynths, tmp_path):
    runner, app = CliRunner(), _cli()
    result = runner.invoke(
        app, ["evaluate", str(forensynths), "-o", str(tmp_path / "a"), "-d", "tiny-eval-test"]
    )
    assert result.exit_code == 2 and "--weights" in result.output and "random weights" in result.output
    assert not (tmp_path / "a").exists()

    weights = tmp_path / "tiny.safetensors"
    BrightnessDetector().save(weights)
    result = runner.invoke(
        app,
        [
            *("evaluate", str(forensynths), "-o", str(tmp_path / "b"), "-d", "tiny-eval-test"),
            *("-w", str(weights), "--limit-per-subset", "2"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["n_scored"] <= 4


def test_evaluate_command_reports_a_missing_dataset_in_a_sentence(tmp_path):
    result = CliRunner().invoke(
        _cli(),
        [
            "evaluate",
            str(tmp_path / "nope"),
            "-o",
            str(tmp_path / "o"),
            "-d",
            "tiny-eval-test",
            "--allow-untrained",
        ],
    )
    assert result.exit_code == 2 and "no dataset at" in result.output and "Traceback" not in result.output


def test_robustness_command(clean_forensynths, tmp_path):
    out = tmp_path / "robust"
    args = ["robustness", str(clean_forensynths), "-o", str(out), "-d", "tiny-eval-test", "--allow-untrained"]
    result = CliRunner().invoke(_cli(), [*args, "--families", "jpeg,blur", "--limit-per-subset", "2"])
    assert result.exit_code == 0, result.output
    assert {"robustness.md", "robustness.csv", "robustness.json", "robustness.png"} <= {
        p.name for p in out.iterdir()
    }
    steps = json.loads((out / "robustness.json").read_text())["steps"]
    assert {step["family"] for step in steps} == {"none", "jpeg", "blur"}
    assert "| jpeg | 30 |" in result.stdout

    result = CliRunner().invoke(_cli(), [*args, "--families", "sepia"])
    assert result.exit_code == 2 and "unknown perturbation family sepia" in result.output
