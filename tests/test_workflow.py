"""The researcher's three commands, end to end with NPR: train, evaluate per generator, robustness."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.outputs.cli import app

runner = CliRunner()


def texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    coarse = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    image = image + rng.normal(0, 6, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def upsampled(image: np.ndarray, interpolation: int) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=interpolation)


@pytest.fixture
def forensynths(tmp_path):
    """ROOT/<split>/<subset>/0_real|1_fake with nearest / bilinear 2x up-sampling as the 'generators'."""
    rng = np.random.default_rng(0)
    layout = {
        "train": {"nearest": cv2.INTER_NEAREST},
        "val": {"nearest": cv2.INTER_NEAREST},
        "test": {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR},
    }
    for split, subsets in layout.items():
        for subset, interpolation in subsets.items():
            for label, folder in ((0, "0_real"), (1, "1_fake")):
                target = tmp_path / split / subset / folder
                target.mkdir(parents=True)
                for index in range(8):
                    image = texture(rng)
                    Image.fromarray(upsampled(image, interpolation) if label else image).save(
                        target / f"{index}.png"
                    )
    return tmp_path


def test_train_evaluate_robustness(forensynths, tmp_path):
    config = tmp_path / "npr.toml"
    config.write_text(
        'detector = "npr"\ncrop_size = 64\nbatch_size = 8\nepochs = 1\nnum_workers = 0\n'
        f'output = "{tmp_path / "run"}"\n'
        f'[data]\ntrain = "{forensynths / "train"}"\nval = "{forensynths / "val"}"\n'
    )
    trained = runner.invoke(app, ["train", str(config)])
    assert trained.exit_code == 0, trained.output
    weights = tmp_path / "run" / "best.safetensors"
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["detector"] == "npr" and card["metrics"]

    evaluated = runner.invoke(
        app, ["evaluate", str(forensynths / "test"), "-o", str(tmp_path / "eval"), "-w", str(weights)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["subsets"]) == {"nearest", "bilinear"}
    assert metrics["n_scored"] == 32 and metrics["n_failed"] == 0
    assert "bilinear" in evaluated.stdout and "nearest" in evaluated.stdout and "mean" in evaluated.stdout

    robust = runner.invoke(
        app,
        ["robustness", str(forensynths / "test"), "-o", str(tmp_path / "rob"), "-w", str(weights),
         "--families", "jpeg", "--limit-per-subset", "4"],
    )  # fmt: skip
    assert robust.exit_code == 0, robust.output
    rows = (tmp_path / "rob" / "robustness.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 + 8  # header, unperturbed, eight JPEG qualities
    assert (tmp_path / "rob" / "robustness.png").stat().st_size > 0
