"""PatchNet: registration, any-size input, typed refusal, strict save/load, determinism, learning."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from scipy.ndimage import gaussian_filter

from pixelsleuth.detectors import IncompatibleWeightsError, create, list_detectors
from pixelsleuth.detectors.npr import ImageTooSmallError
from pixelsleuth.detectors.patchnet import (
    PatchNet,
    PatchNetDetector,
    aggregate_logits,
    count_parameters,
    split_patches,
)
from pixelsleuth.errors import UsageError
from pixelsleuth.train.config import DataConfig, OptimConfig, TrainConfig
from pixelsleuth.train.loop import train


def texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour texture with a little sensor-like noise."""
    smooth = gaussian_filter(rng.normal(0, 1, (size, size, 3)), sigma=(3, 3, 0))
    smooth = 128 + 50 * smooth / smooth.std() + rng.normal(0, 2, (size, size, 3))
    return np.clip(smooth, 0, 255).astype(np.uint8)


def upsampled(size: int, rng: np.random.Generator) -> np.ndarray:
    """A texture made at half size and enlarged by nearest neighbour: 2 x 2 blocks of equal pixels."""
    return texture(size // 2, rng).repeat(2, axis=0).repeat(2, axis=1)


def synthetic_batch(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    images = np.stack([upsampled(size, rng) if label else texture(size, rng) for label in labels])
    return images, labels


def test_registered_small_and_created_by_name():
    assert "patchnet" in list_detectors()
    detector = create("patchnet")
    assert isinstance(detector, PatchNetDetector) and not detector.trained
    assert 100_000 < count_parameters(detector.model) < 1_000_000
    assert detector.preprocessing.crop_multiple == 32
    assert create("patchnet", patch=64).preprocessing.crop_multiple == 64


@pytest.mark.parametrize("shape", [(32, 32), (64, 100), (250, 333), (32, 200)])
def test_scores_any_size_of_at_least_one_patch(shape):
    detector = create("patchnet")
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    scores = detector.predict([image, image[: shape[0], : shape[1] // 2 * 2]])
    assert scores.shape == (2,) and np.isfinite(scores).all()
    patch_map = detector.predict_map(image)
    assert patch_map.scores.shape == (shape[0] // 32, shape[1] // 32)


@pytest.mark.parametrize("shape", [(20, 48), (31, 100), (100, 31)])
def test_images_under_one_patch_are_a_typed_error(shape):
    with pytest.raises(ImageTooSmallError, match="at least 32 x 32"):
        create("patchnet").predict([np.zeros((*shape, 3), np.uint8)])


def test_image_logit_aggregates_the_patch_logits():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 96)
    net = PatchNet(aggregate="mean").eval()
    patch_logits, attention = net.patch_outputs(images)
    assert patch_logits.shape == (2, 2, 3) and attention is None
    assert torch.allclose(net(images)[:, 0], patch_logits.flatten(1).mean(1), atol=1e-6)
    top = aggregate_logits(patch_logits.flatten(1), "topk", topk_fraction=0.3)  # 2 of 6 patches
    assert torch.allclose(top, patch_logits.flatten(1).topk(2, dim=1).values.mean(1))
    # One patch's pixels move only that patch's logit: patches are scored independently of each
    # other apart from the 2-pixel border the residual filters read across.
    changed = images.clone()
    changed[:, :, 40:60, 70:90] += 1.0
    moved = (net.patch_outputs(changed)[0] - patch_logits).abs() > 1e-6
    assert moved[:, 1, 2].all() and not moved[:, 0, :2].any()
    attention_net = PatchNet(aggregate="attention").eval()
    logits, weights = attention_net.patch_outputs(images)
    expected = (torch.softmax(weights.flatten(1), 1) * logits.flatten(1)).sum(1)
    assert torch.allclose(attention_net(images)[:, 0], expected, atol=1e-6)


def test_split_patches_keeps_each_patch_whole():
    features = torch.arange(2 * 64 * 96, dtype=torch.float32).reshape(2, 1, 64, 96)
    patches = split_patches(features, 32)
    assert torch.equal(patches[4], features[0, :, 32:64, 32:64])  # image 0, row 1, column 1
    assert torch.equal(patches[6], features[1, :, :32, :32])


def test_fast_inference_path_matches_the_network():
    torch.manual_seed(1)
    detector = create("patchnet")
    images, _ = synthetic_batch(4, 64, seed=2)
    with torch.no_grad():
        expected = torch.sigmoid(detector.model.eval()(detector.normalise(images))).numpy().reshape(-1)
    np.testing.assert_allclose(detector.predict(list(images)), expected, atol=1e-5)


def one_step_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    detector = create("patchnet")
    model = detector.model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = synthetic_batch(8, 64, seed=0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        detector.logits(detector.normalise(images)), torch.from_numpy(labels).float()
    )
    loss.backward()
    optimizer.step()
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_a_training_step_is_deterministic_for_a_seed():
    first, again, other = one_step_state(0), one_step_state(0), one_step_state(1)
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_learns_a_synthetic_separation_in_a_few_steps():
    torch.manual_seed(0)
    detector = create("patchnet")
    model = detector.model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(25):
        images, labels = synthetic_batch(16, 64, seed=100 + step)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            detector.logits(detector.normalise(images)), torch.from_numpy(labels).float()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    images, labels = synthetic_batch(40, 96, seed=999)  # held out, and a size it never saw
    scores = detector.predict(list(images))
    accuracy = float(np.mean((scores > 0.5) == (labels == 1)))
    assert accuracy >= 0.9, (accuracy, scores)


def test_weights_save_and_load_strictly(tmp_path):
    torch.manual_seed(0)
    detector = create("patchnet", aggregate="attention")
    detector.card.extra["detector_kwargs"] = {"aggregate": "attention"}
    weights = tmp_path / "patchnet.safetensors"
    detector.save(weights)
    loaded = create("patchnet", weights=weights)  # the card's detector_kwargs rebuild the attention head
    assert loaded.trained and loaded.model.aggregate == "attention"
    images, _ = synthetic_batch(2, 64, seed=3)
    np.testing.assert_allclose(loaded.predict(list(images)), detector.predict(list(images)), atol=1e-6)
    with pytest.raises(IncompatibleWeightsError, match="do not fit the patchnet architecture"):
        create("patchnet", weights=weights, aggregate="mean")
    plain = tmp_path / "plain.safetensors"
    create("patchnet").save(plain)
    with pytest.raises(IncompatibleWeightsError, match="do not fit the npr architecture"):
        create("npr", weights=plain)


def test_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="aggregate must be one of"):
        create("patchnet", aggregate="max")
    with pytest.raises(UsageError, match="window"):
        create("patchnet").predict_map(np.zeros((64, 64, 3), np.uint8), window=64)


def write_folder(root: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label, folder in ((0, "0_real"), (1, "1_fake")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = upsampled(64, rng) if label else texture(64, rng)
            Image.fromarray(image).save(root / folder / f"{index}.png")


def test_trains_through_the_training_loop(tmp_path):
    write_folder(tmp_path / "data" / "train", 8, seed=0)
    write_folder(tmp_path / "data" / "val", 4, seed=1)
    config = TrainConfig(
        detector="patchnet",
        detector_kwargs={"aggregate": "topk"},
        data=DataConfig(train=str(tmp_path / "data" / "train"), val=str(tmp_path / "data" / "val")),
        optim=OptimConfig(lr=1e-3),
        crop_size=64,
        batch_size=8,
        epochs=2,
        output=str(tmp_path / "run"),
    )
    result = train(config, console=Console(quiet=True))
    assert result.epochs_run == 2 and all(math.isfinite(r.train_loss) for r in result.history)
    detector = create("patchnet", weights=result.best_weights)
    assert detector.card.detector == "patchnet" and detector.model.aggregate == "topk"
