"""The learned localizer: shapes, tiling, weight errors, a few training steps, the CLI (generated data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.detectors.runtime import inference_model
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.forge.manipulate import splice
from pixelsleuth.localization.learned import (
    WEIGHTS,
    IncompatibleLocalizerWeightsError,
    Localizer,
    MissingLocalizerWeightsError,
    count_parameters,
    learned_map,
    load_localizer,
    predict_probabilities,
)
from pixelsleuth.localization.record import ForensicMap, LocalizationInputError
from pixelsleuth.train.localizer import edge_of, localizer_loss


def _photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random 'photo' with mild sensor-like noise."""
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC))
    noisy = smooth.astype(np.float32) + rng.normal(0, 3, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model() -> Localizer:
    torch.manual_seed(0)
    net = Localizer()
    # Random but non-trivial batch-norm statistics, so the folded inference path is exercised.
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_small_model(model: Localizer) -> None:
    assert count_parameters(model) < 750_000  # weights < 3 MB in float32


def test_map_shape_range_and_record(model: Localizer) -> None:
    image = _photo(np.random.default_rng(0), 75, 131)
    result = learned_map(image, model)
    assert isinstance(result, ForensicMap)
    assert result.map.shape == (75, 131) and result.map.dtype == np.float32
    assert float(result.map.min()) >= 0.0 and float(result.map.max()) <= 1.0
    assert 0.0 <= result.score <= 1.0
    assert result.reading.endswith(".") and "\n" not in result.reading
    assert result.method == "learned"


def test_grey_image_accepted_and_bad_input_refused(model: Localizer) -> None:
    assert learned_map(np.zeros((40, 40), np.uint8), model).map.shape == (40, 40)
    with pytest.raises(LocalizationInputError):
        learned_map(np.zeros((8, 40, 3), np.uint8), model)
    with pytest.raises(LocalizationInputError):
        learned_map(np.zeros((40, 40, 3), np.float32), model)


def test_folding_batch_norm_keeps_outputs(model: Localizer) -> None:
    pixels = torch.from_numpy(_photo(np.random.default_rng(1), 64, 96)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        plain, _ = model(pixels)
        folded, _ = inference_model(model)(pixels)
    assert torch.allclose(plain, folded, atol=1e-4)


def test_one_tile_equals_direct_pass(model: Localizer) -> None:
    image = _photo(np.random.default_rng(2), 160, 224)
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        logits, _ = model(pixels)
    direct = torch.sigmoid(logits[0, 0]).numpy()
    assert np.allclose(predict_probabilities(image, model, tile=512, overlap=64), direct, atol=1e-4)


@pytest.mark.parametrize("shape", [(203, 317), (161, 97)])
def test_tiling_matches_one_pass_on_odd_sizes(model: Localizer, shape: tuple[int, int]) -> None:
    image = _photo(np.random.default_rng(3), *shape)
    whole = predict_probabilities(image, model, tile=512, overlap=64)
    tiled = predict_probabilities(image, model, tile=96, overlap=32)
    assert tiled.shape == whole.shape == shape
    assert np.isfinite(tiled).all()
    assert float(np.abs(tiled - whole).mean()) < 0.03


def test_missing_weights_error_is_typed_and_readable(tmp_path: Path) -> None:
    with pytest.raises(MissingLocalizerWeightsError) as caught:
        load_localizer(tmp_path / "nothing.safetensors")
    assert isinstance(caught.value, PixelsleuthError)
    assert caught.value.type == "missing_localizer_weights"
    assert "train-localizer" in caught.value.message and "nothing.safetensors" in caught.value.message


def test_damaged_weights_error_is_typed(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(IncompatibleLocalizerWeightsError):
        load_localizer(broken)


def test_a_few_training_steps_reduce_the_loss() -> None:
    rng = np.random.default_rng(4)
    images, masks = [], []
    for _ in range(4):
        target, donor = _photo(rng, 64, 64), _photo(rng, 64, 64)
        donor = np.clip(donor.astype(np.int16) + rng.normal(0, 12, donor.shape), 0, 255).astype(np.uint8)
        image, mask = splice(target, donor, rng, kind="ellipse", area=(0.15, 0.3))
        images.append(image)
        masks.append(mask > 0)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mask = torch.from_numpy(np.stack(masks)).float()[:, None]
    edge = torch.from_numpy(np.stack([edge_of(m) for m in masks])).float()[:, None]
    torch.manual_seed(0)
    net = Localizer().train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, _ = localizer_loss(*net(pixels), mask, edge)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_edge_of_marks_the_boundary() -> None:
    mask = np.zeros((9, 9), bool)
    mask[3:6, 3:6] = True
    edge = edge_of(mask)
    assert edge[3, 3] and edge[2, 4] and not edge[4, 4] and not edge[0, 0]


def test_embedded_weights_load_and_run() -> None:
    if not WEIGHTS.is_file():
        pytest.skip("no embedded localizer weights in this checkout")
    net = load_localizer()
    result = learned_map(_photo(np.random.default_rng(5), 80, 120), net)
    assert result.map.shape == (80, 120) and 0.0 <= result.score <= 1.0
    card = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert card["detector"] == "localizer"
    assert card["training_command"].startswith("pixelsleuth train-localizer")


def test_train_localizer_cli_smoke(tmp_path: Path) -> None:
    from pixelsleuth.outputs.cli import app

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(6)
    for index in range(3):
        Image.fromarray(_photo(rng, 96, 112)).save(photos / f"p{index}.png")
    output = tmp_path / "out" / "localizer.safetensors"
    result = CliRunner().invoke(
        app,
        [
            "train-localizer",
            "--output",
            str(output),
            "--seconds",
            "3",
            "--max-steps",
            "2",
            "--photos",
            str(photos),
            "--batch",
            "2",
            "--crop",
            "64",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["detector"] == "localizer"
    assert card["extra"]["steps"] >= 1
    assert "--photos" in card["training_command"]
    net = load_localizer(output)
    assert learned_map(_photo(rng, 48, 48), net).map.shape == (48, 48)


def test_train_localizer_cli_refuses_without_photos(tmp_path: Path) -> None:
    from pixelsleuth.outputs.cli import app

    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        app, ["train-localizer", "--output", str(tmp_path / "l.safetensors"), "--photos", str(empty)]
    )
    assert result.exit_code == 2
