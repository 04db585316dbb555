"""`pixelsleuth train`: configuration, the loop, checkpoints and resume, and that training learns."""

import csv
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import typer
from PIL import Image
from rich.console import Console
from safetensors.torch import load_file
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from pixelsleuth.bench.metrics import average_precision
from pixelsleuth.detectors import (
    Detector,
    ModelCard,
    Preprocessing,
    create,
    list_detectors,
    register_detector,
    registry,
)
from pixelsleuth.train import loop
from pixelsleuth.train.command import train_command
from pixelsleuth.train.config import (
    ConfigError,
    DataConfig,
    EarlyStopConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    apply_overrides,
    load_config,
)
from pixelsleuth.train.datasets import EmptyDatasetError
from pixelsleuth.train.loop import (
    EarlyStopping,
    LearningRateSchedule,
    train,
)

REPO = Path(__file__).resolve().parents[1]

# --- A tiny detector, registered for this module only -----------------------------------------------


class TinyNet(torch.nn.Module):
    """Two 3 x 3 convolutions (the second strided) and a global max pool: tiny, yet it sees 2 x 2 blocks."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, padding=1, stride=2),
            torch.nn.ReLU(),
            torch.nn.AdaptiveMaxPool2d(1),
        )
        self.head = torch.nn.Linear(width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))


class TinyDetector(Detector):
    """A tiny CNN detector for the training tests."""

    name = "tiny-test"

    def __init__(self, *, device: str = "cpu", width: int = 8) -> None:
        card = ModelCard("tiny-test", "0", "tiny CNN for tests", Preprocessing(crop_multiple=2))
        super().__init__(TinyNet(width), card, device=device)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These tiny models run faster on one thread, and OpenMP does not spin on a busy machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module", autouse=True)
def tiny_detector():
    register_detector("tiny-test", "a tiny CNN for the training tests")(TinyDetector)
    yield
    registry._REGISTRY.pop("tiny-test", None)
    registry._DESCRIPTIONS.pop("tiny-test", None)


# --- Synthetic data: smooth textures; "generated" ones carry a 2x nearest-neighbour up-sampling ------


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = gaussian_filter(rng.normal(0, 1, (size, size, 3)), (1.0, 1.0, 0))
    noise = (noise - noise.mean()) / (noise.std() + 1e-8)
    return np.clip(128 + 40 * noise + rng.uniform(-60, 60), 0, 255).astype(np.uint8)


def upsampled(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    small = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def write_split(root: Path, per_label: int, seed: int, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True, exist_ok=True)
    for index in range(per_label):
        Image.fromarray(texture(rng, size)).save(root / "0_real" / f"{index:03d}.png")
        Image.fromarray(upsampled(texture(rng, size))).save(root / "1_fake" / f"{index:03d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("textures")
    return {
        "train": write_split(base / "train" / "textures", 24, seed=0),  # 48 images of 32 x 32
        "val": write_split(base / "val" / "textures", 12, seed=1),
        "test": write_split(base / "test" / "textures", 20, seed=2),
    }


def tiny_config(data: dict[str, Path], output: Path, **changes) -> TrainConfig:
    config = TrainConfig(
        detector="tiny-test",
        data=DataConfig(train=str(data["train"].parent), val=str(data["val"].parent)),
        crop_size=32,
        batch_size=8,
        epochs=3,
        optim=OptimConfig(lr=1e-2),
        output=str(output),
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


# --- Config -----------------------------------------------------------------------------------------

TOML = """
detector = "tiny-test"
crop_size = 32
epochs = 4

[detector_kwargs]
width = 4

[data]
train = "somewhere/train"
classes = ["car", "cat"]

[optim]
lr = 1e-3
betas = [0.5, 0.9]

[augment]
blur_prob = 0.1
jpeg_quality = [60, 90]
"""


def test_toml_config_loads_with_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    config = load_config(path)
    assert config.detector == "tiny-test" and config.detector_kwargs == {"width": 4}
    assert config.epochs == 4 and config.crop_size == 32 and config.batch_size == 32
    assert config.data.train == "somewhere/train" and config.data.val is None
    assert config.data.classes == ["car", "cat"]
    assert config.optim.lr == 1e-3 and config.optim.betas == (0.5, 0.9)
    assert config.augment.blur_prob == 0.1 and config.augment.jpeg_quality == (60, 90)
    assert config.schedule == ScheduleConfig()  # NPR's step decay by default


def test_overrides_with_dotted_keys_and_type_checks(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    config = load_config(
        path,
        ["optim.lr=1e-4", "epochs=3", "data.val=held/out", "data.classes=horse,chair", "augment.flip=false"],
    )
    assert config.optim.lr == 1e-4 and config.epochs == 3
    assert config.data.val == "held/out" and config.data.classes == ["horse", "chair"]
    assert config.augment.flip is False
    assert apply_overrides(config, ["data.val=none", "data.train=2024"]).data.val is None
    assert apply_overrides(config, ["data.train=2024"]).data.train == "2024"
    assert apply_overrides(config, ["detector_kwargs.width=16"]).detector_kwargs == {"width": 16}

    with pytest.raises(
        ConfigError, match=r"unknown key 'optim.lrr'; valid keys under 'optim': name, lr, betas"
    ):
        apply_overrides(config, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'; valid keys at the top level: detector, "):
        apply_overrides(config, ["epoch=1"])
    with pytest.raises(ConfigError, match=r"epochs must be an integer, got 3.5"):
        apply_overrides(config, ["epochs=3.5"])
    with pytest.raises(ConfigError, match=r"optim.lr must be a number, got 'fast'"):
        apply_overrides(config, ["optim.lr=fast"])
    with pytest.raises(ConfigError, match=r"optim.betas must be a list of 2 values"):
        apply_overrides(config, ["optim.betas=[0.9]"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(config, ["epochs"])
    with pytest.raises(ConfigError, match=r"augment\.blur_prob must be between 0 and 1"):
        apply_overrides(config, ["augment.blur_prob=1.5"])
    with pytest.raises(ConfigError, match=r"schedule\.name must be one of step, plateau, none"):
        apply_overrides(config, ["schedule.name=cosine"])


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="no training config"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[data]\ntrain = "x"\nshuffle = true\n')
    with pytest.raises(ConfigError, match=r"unknown key 'data.shuffle'; valid keys under 'data': train, val"):
        load_config(wrong)
    yaml_config = tmp_path / "run.yaml"
    yaml_config.write_text("epochs: 2\ndata:\n  train: somewhere\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="needs the PyYAML package"):
            load_config(yaml_config)
    else:
        assert load_config(yaml_config).epochs == 2


def test_example_config_reproduces_npr_recipe():
    config = load_config(REPO / "configs" / "npr_forensynths.toml")
    assert config.detector == "npr"
    assert (config.optim.name, config.optim.lr, config.optim.betas) == ("adam", 2e-4, (0.9, 0.999))
    assert (config.batch_size, config.epochs, config.crop_size) == (32, 50, 224)
    assert (config.schedule.name, config.schedule.every, config.schedule.factor) == ("step", 10, 0.8)
    assert config.data.classes == ["car", "cat", "chair", "horse"]


# --- Pieces of the loop -----------------------------------------------------------------------------


def test_step_schedule_decays_like_npr():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    schedule = LearningRateSchedule(optimizer, ScheduleConfig(name="step", every=10, factor=0.8))
    rates = []
    for epoch_index in range(50):
        rates.append(schedule.lr)
        schedule.end_of_epoch(epoch_index)
    # NPR: `if epoch % delr_freq == 0 and epoch != 0` after 0-based epochs 10, 20, 30, 40.
    assert rates[:11] == [2e-4] * 11
    assert rates[11] == pytest.approx(1.6e-4) and rates[21] == pytest.approx(1.28e-4)
    assert rates[49] == pytest.approx(2e-4 * 0.8**4)
    assert schedule.on_plateau() is False  # only the plateau schedule decays on a plateau


def test_plateau_schedule_and_early_stopping_state():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = LearningRateSchedule(optimizer, ScheduleConfig(name="plateau", factor=0.1, min_lr=5e-5))
    assert schedule.on_plateau() is True and schedule.lr == pytest.approx(1e-4)
    assert schedule.on_plateau() is False and schedule.lr == pytest.approx(1e-4)

    stopper = EarlyStopping(EarlyStopConfig(metric="loss", patience=2, min_delta=0.01))
    assert stopper.update(0.50, 1) is True
    assert stopper.update(0.495, 2) is True and stopper.counter == 1  # better, but by less than min_delta
    assert stopper.update(0.60, 3) is False and stopper.plateaued
    assert stopper.update(math.nan, 4) is False and stopper.best == 0.495 and stopper.best_epoch == 2


def test_detector_normalise_accepts_a_dataloader_batch():
    detector = create("tiny-test")
    images = [np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in range(3)]
    batch = torch.from_numpy(np.stack(images))
    torch.testing.assert_close(detector.normalise(batch), detector.to_tensor(images))


def test_train_writes_a_complete_run_folder(data, tmp_path):
    output = tmp_path / "run"
    console = quiet()
    result = train(tiny_config(data, output), command="pixelsleuth train run.toml", console=console)

    printed = console.file.getvalue()
    assert printed.index("training images") < printed.index("validation images") < printed.index("epoch 1/3")
    assert "textures    24    24     48" in printed

    for name in (
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "last.json",
        "checkpoint.pt",
        "curves.png",
    ):
        assert (output / name).is_file(), name
    assert (output / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(output.glob("*partial*"))

    with (output / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "train_loss", "val_loss", "val_acc", "val_ap", "lr", "seconds"]
    summary = json.loads((output / "metrics.json").read_text())
    assert [record["epoch"] for record in summary["epochs"]] == [1, 2, 3]
    assert summary["best_epoch"] == result.best_epoch and summary["metric"] == "acc"

    card = json.loads((output / "best.json").read_text())
    assert card["training_command"] == "pixelsleuth train run.toml"
    assert card["extra"]["config"]["optim"]["lr"] == 1e-2
    assert card["extra"]["label_counts"]["train"] == {"textures": {"real": 24, "fake": 24, "total": 48}}
    assert "24 real, 24 fake" in card["training_data"]
    assert {metric["name"] for metric in card["metrics"]} == {"ACC", "AP", "BCE loss"}
    assert card["extra"]["epoch"] == result.best_epoch

    best = create("tiny-test", weights=output / "best.safetensors")
    last = create("tiny-test", weights=output / "last.safetensors")
    assert best.trained and best.card.extra["epoch"] == result.best_epoch and last.card.extra["epoch"] == 3
    last_state = load_file(output / "last.safetensors")
    assert all(torch.equal(last.model.state_dict()[key], value) for key, value in last_state.items())
    image = np.zeros((32, 32, 3), np.uint8)
    assert 0.0 <= float(best.predict([image])[0]) <= 1.0


def test_resume_after_a_crash_reaches_the_same_weights(data, tmp_path, monkeypatch):
    config = tiny_config(data, tmp_path / "straight")
    config.augment.blur_prob = config.augment.jpeg_prob = 0.5  # exercise the augmentation RNG too
    straight = train(config, console=quiet())

    interrupted = tiny_config(data, tmp_path / "interrupted")
    interrupted.augment = config.augment
    real_write_curves = loop._write_curves
    calls = []

    def crash_after_second_epoch(path, history):
        calls.append(len(history))
        real_write_curves(path, history)
        if len(history) == 2:
            raise KeyboardInterrupt  # the checkpoint of epoch 2 is already on disk

    monkeypatch.setattr(loop, "_write_curves", crash_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, console=quiet())
    monkeypatch.setattr(loop, "_write_curves", real_write_curves)

    with pytest.raises(ConfigError, match="already holds a training run"):
        train(interrupted, console=quiet())
    changed = apply_overrides(interrupted, ["optim.lr=5e-3"])
    with pytest.raises(ConfigError, match=r"another configuration \(optim.lr differ"):
        train(changed, resume=True, console=quiet())

    console = quiet()
    resumed = train(interrupted, resume=True, console=console)
    assert "resuming" in console.file.getvalue() and "epoch 3/3" in console.file.getvalue()
    assert "epoch 1/3" not in console.file.getvalue()
    assert calls == [1, 2]

    expected = load_file(tmp_path / "straight" / "last.safetensors")
    actual = load_file(tmp_path / "interrupted" / "last.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert [(r.train_loss, r.val_loss, r.val_ap) for r in resumed.history] == [
        (r.train_loss, r.val_loss, r.val_ap) for r in straight.history
    ]
    assert resumed.best_epoch == straight.best_epoch


def test_resume_without_a_checkpoint_is_a_typed_error(data, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(tiny_config(data, tmp_path / "fresh"), resume=True, console=quiet())


def test_early_stopping_ends_the_run(data, tmp_path):
    # min_delta 0.6: no epoch after the first can improve enough, so patience 1 stops at epoch 2.
    config = tiny_config(data, tmp_path / "stop", epochs=6)
    config.early_stop = EarlyStopConfig(metric="acc", patience=1, min_delta=0.6)
    result = train(config, console=quiet())
    assert result.stopped_early and result.epochs_run == 2
    assert json.loads((tmp_path / "stop" / "metrics.json").read_text())["stopped_early"] is True
    again = train(config, resume=True, console=quiet())  # a finished run stays finished
    assert again.epochs_run == 2


def test_plateau_schedule_decays_then_stops(data, tmp_path):
    config = tiny_config(data, tmp_path / "plateau", epochs=6, optim=OptimConfig(lr=1e-3))
    config.schedule = ScheduleConfig(name="plateau", factor=0.1, min_lr=5e-5)
    config.early_stop = EarlyStopConfig(metric="acc", patience=1, min_delta=0.6)
    result = train(config, console=quiet())
    assert [record.lr for record in result.history] == pytest.approx([1e-3, 1e-3, 1e-4])
    assert result.stopped_early and result.epochs_run == 3


def test_one_sided_data_is_refused(data, tmp_path):
    only_real = write_split(tmp_path / "only-real" / "textures", 2, seed=3)
    for path in (only_real / "1_fake").iterdir():
        path.unlink()
    config = tiny_config(data, tmp_path / "one-sided")
    config.data.val = str(only_real.parent)
    with pytest.raises(EmptyDatasetError, match=r"validation images \(.*\) hold no fake images"):
        train(config, console=quiet())


def test_holdout_validation_and_class_selection(data, tmp_path):
    config = tiny_config(data, tmp_path / "holdout", epochs=1)
    config.data = DataConfig(train=str(data["train"].parent), val_fraction=0.25, classes=["textures"])
    console = quiet()
    train(config, console=console)
    card = json.loads((tmp_path / "holdout" / "last.json").read_text())
    assert card["extra"]["label_counts"]["val"] == {"textures": {"real": 6, "fake": 6, "total": 12}}
    assert card["extra"]["label_counts"]["train"]["textures"]["total"] == 36
    config.data.classes = ["horse"]
    with pytest.raises(EmptyDatasetError, match=r"none of the classes horse is in .*; it has: textures"):
        train(apply_overrides(config, ["output=" + str(tmp_path / "other")]), console=quiet())


def test_training_separates_upsampled_from_real_textures(data, tmp_path):
    """The key learning test: held-out textures with a nearest-neighbour 2x up-sampling trace are found."""
    torch.manual_seed(0)
    config = tiny_config(data, tmp_path / "learn", epochs=8)
    result = train(config, console=quiet())
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0] - 0.1

    detector = create("tiny-test", weights=result.best_weights)
    test_samples = sorted(data["test"].rglob("*.png"))
    images = [np.asarray(Image.open(path).convert("RGB")) for path in test_samples]
    labels = np.array([int(path.parent.name == "1_fake") for path in test_samples])
    scores = detector.predict(images)
    held_out_ap = average_precision(labels, scores)
    held_out_acc = float(np.mean((scores > 0.5) == (labels == 1)))
    print(
        f"held-out AP {held_out_ap:.3f}, ACC {held_out_acc:.3f}, train loss {losses[0]:.3f}->{losses[-1]:.3f}"
    )
    assert held_out_ap > 0.9
    assert held_out_acc > 0.75


@pytest.mark.skipif("npr" not in list_detectors(), reason="the NPR detector is not registered")
def test_npr_trains_through_the_same_loop(tmp_path):
    data_root = tmp_path / "npr"
    write_split(data_root / "train" / "textures", 2, seed=0)
    write_split(data_root / "val" / "textures", 1, seed=1)
    config = TrainConfig(
        detector="npr",
        data=DataConfig(train=str(data_root / "train"), val=str(data_root / "val")),
        crop_size=32,
        batch_size=4,
        epochs=1,
        output=str(tmp_path / "run"),
    )
    result = train(config, console=quiet())
    assert result.epochs_run == 1 and math.isfinite(result.history[0].train_loss)
    detector = create("npr", weights=result.last_weights)
    assert detector.card.detector == "npr" and detector.card.extra["epoch"] == 1


# --- The command ------------------------------------------------------------------------------------


def command_app() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train_command)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the app into one command
        """Nothing."""

    return app


def test_train_command(data, tmp_path):
    config_path = tmp_path / "run.toml"
    config_path.write_text(
        f'detector = "tiny-test"\ncrop_size = 32\nbatch_size = 8\nepochs = 3\n'
        f'output = "{tmp_path / "unused"}"\n'
        f'[data]\ntrain = "{data["train"].parent}"\nval = "{data["val"].parent}"\n'
    )
    runner = CliRunner()
    output = tmp_path / "cli-run"
    args = ["train", str(config_path), "--set", "epochs=1", "--set", "optim.lr=1e-3", "--output", str(output)]
    result = runner.invoke(command_app(), args)
    assert result.exit_code == 0, result.output
    card = json.loads((output / "last.json").read_text())
    assert (
        card["training_command"]
        == f"pixelsleuth train {config_path} --set epochs=1 --set optim.lr=1e-3 --output {output}"
    )
    assert card["extra"]["config"]["epochs"] == 1 and card["extra"]["config"]["output"] == str(output)
    assert not (tmp_path / "unused").exists()

    more = [*args[:3], "epochs=2", *args[4:], "--set", "num_workers=1", "--resume"]
    resumed = runner.invoke(command_app(), more)
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((output / "last.json").read_text())["extra"]["epoch"] == 2

    bad = runner.invoke(command_app(), ["train", str(config_path), "--set", "optim.lrr=1"])
    assert bad.exit_code == 2
    assert "unknown key 'optim.lrr'" in bad.output
    missing = runner.invoke(
        command_app(), ["train", str(config_path), "--output", str(tmp_path / "new"), "--resume"]
    )
    assert missing.exit_code == 2 and "nothing to resume" in missing.output
