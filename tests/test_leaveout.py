"""Leave-one-generator-out over pool-style crops: folds, held-out training data, measurement, resume."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.bench.leaveout import (
    LeaveOutError,
    LeaveOutRun,
    pool_folds,
    read_crops,
    report_markdown,
)
from pixelsleuth.outputs.cli import app
from pixelsleuth.train.config import DataConfig, OptimConfig, TrainConfig
from test_patchnet import texture, upsampled

COLUMNS = ("path", "label", "subset", "generator", "family", "source", "crop")
# generator -> (family, how its images are made); genuine crops are plain textures.
GENERATORS = {"blocky": ("gan", 2), "blurry": ("diffusion-latent", 0)}


def _fake(kind: int, rng: np.random.Generator) -> np.ndarray:
    if kind == 2:
        return upsampled(64, rng)
    return np.clip(texture(64, rng).astype(float) * 0.6 + 50, 0, 255).astype(np.uint8)


def write_pool_crops(root: Path, per_split: dict[str, int]) -> Path:
    """CROPS/<png|jpeg90>/<split>.csv with genuine crops and two generators' crops in each split."""
    rng = np.random.default_rng(0)
    for split, count in per_split.items():
        rows = []
        for index in range(count * 2):
            rows.append(("real", "photo", "", f"real/{split}/{index}", texture(64, rng)))
        for generator, (family, kind) in GENERATORS.items():
            for index in range(count):
                rows.append((generator, family, generator, f"fake/{generator}/{index}", _fake(kind, rng)))
        for variant in ("png", "jpeg90"):
            folder = root / variant / split
            folder.mkdir(parents=True, exist_ok=True)
            with (root / variant / f"{split}.csv").open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS)
                for number, (subset, family, generator, source, rgb) in enumerate(rows):
                    name = f"{number}.{'png' if variant == 'png' else 'jpg'}"
                    options = {"quality": 90} if variant == "jpeg90" else {}
                    Image.fromarray(rgb).save(folder / name, **options)
                    label = "real" if family == "photo" else "fake"
                    writer.writerow((f"{split}/{name}", label, subset, generator, family, source, 0))
    return root


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return write_pool_crops(tmp_path_factory.mktemp("pool-crops"), {"train": 12, "calib": 10, "test": 8})


def tiny_config(output: Path) -> TrainConfig:
    return TrainConfig(
        detector="patchnet",
        data=DataConfig(train="unused", val="unused"),
        optim=OptimConfig(lr=1e-3),
        crop_size=64,
        batch_size=8,
        epochs=1,
        output=str(output),
    )


def test_folds_name_every_group_with_enough_test_crops(crops):
    test = read_crops(crops, "test")
    assert [fold.name for fold in pool_folds(test)] == ["all", "without-blocky", "without-blurry"]
    by_family = pool_folds(test, by="family", names=["gan"])
    assert [(fold.name, fold.held_out) for fold in by_family] == [("all", None), ("without-gan", "gan")]
    assert [fold.name for fold in pool_folds(test, minimum=100)] == ["all"]
    with pytest.raises(LeaveOutError, match="has no generator dalle"):
        pool_folds(test, names=["dalle"])
    with pytest.raises(LeaveOutError, match="missing"):
        read_crops(crops.parent / "nowhere", "test")


def test_a_fold_never_trains_on_its_held_out_generator_and_measures_it(crops, tmp_path):
    folds = pool_folds(read_crops(crops, "test"), names=["blocky"])
    said: list[str] = []
    run = LeaveOutRun(crops, tiny_config(tmp_path), folds, tmp_path / "out", say=said.append)
    report = run.run()

    with (tmp_path / "out" / "without-blocky" / "train.csv").open() as handle:
        trained_on = {row["generator"] for row in csv.DictReader(handle)}
    assert trained_on == {"", "blurry"}
    with (tmp_path / "out" / "all" / "train.csv").open() as handle:
        assert {row["generator"] for row in csv.DictReader(handle)} == {"", "blocky", "blurry"}

    held = report["folds"]["without-blocky"]["groups"]
    assert list(held) == ["blocky"]
    for variant in ("png", "jpeg90"):
        for scorer in ("detector", "fused"):
            record = held["blocky"][variant][scorer]
            assert record["n_real"] == 16 and record["n_fake"] == 8
            assert 0.0 <= record["auc"] <= 1.0 and math.isfinite(record["ap"])
        assert 0.0 <= held["blocky"][variant]["fused"]["fpr_at_operating_point"] <= 1.0
    assert set(report["folds"]["all"]["groups"]) == {"blocky", "blurry"}
    assert report["folds"]["all"]["stack"]["features"] == ["detector:patchnet", "spectral"]

    table = report_markdown(report, "png")
    assert table.splitlines()[2].startswith("| blocky | 16 / 8 |") and "**mean**" in table

    # A rerun reads the finished folds instead of training again.
    said.clear()
    again = LeaveOutRun(crops, tiny_config(tmp_path), folds, tmp_path / "out", say=said.append).run()
    assert all("finished earlier" in line for line in said)
    assert again["folds"] == json.loads(json.dumps(report["folds"]))

    # Folds by family share the reference run (not trained again) and measure it per family.
    said.clear()
    families = pool_folds(read_crops(crops, "test"), by="family", names=["gan"])
    by_family = LeaveOutRun(crops, tiny_config(tmp_path), families, tmp_path / "out", say=said.append).run()
    assert set(by_family["folds"]["all"]["groups"]) == {"gan", "diffusion-latent"}
    assert not any("training on" in line for line in said if line.startswith("fold all"))


def test_the_command_refuses_an_unknown_generator_in_a_sentence(crops, tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('detector = "patchnet"\ncrop_size = 64\nepochs = 1\n[data]\ntrain = "replaced.csv"\n')
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "leave-out",
            str(crops),
            "-c",
            str(config),
            "-o",
            str(tmp_path / "o"),
            "--holdout",
            "x",
        ],
    )
    assert result.exit_code == 2
    assert "the test split has no generator x" in result.output
