"""NPR against an independent reference that follows the authors' networks/resnet.py structure.

The reference below is written from the facts of the official code (module names, the nested
``F.interpolate`` helper, the 2/3 scaling, ``x.view`` before ``fc1``), not from our implementation: if
`NPRNet` drifted from the paper's network, converting the reference's state_dict and comparing outputs
would catch it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from typer.testing import CliRunner

from imagegen import photo_like_rgb
from pixelsleuth.detectors import IncompatibleWeightsError, PatchMap, create
from pixelsleuth.detectors.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from pixelsleuth.detectors.command import convert_command
from pixelsleuth.detectors.convert import (
    CheckpointKeysError,
    CheckpointShapeError,
    NotACheckpointError,
    convert_npr_checkpoint,
)
from pixelsleuth.detectors.npr import ImageTooSmallError, NPRDetector, NPRNet, count_parameters, npr_residual
from pixelsleuth.detectors.registry import WeightsNotFoundError
from pixelsleuth.errors import UsageError

# ---------------------------------------------------------------------------------------------------
# The reference: the official structure, independently written.


class RefBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, stride=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ReferenceNPR(nn.Module):
    """ResNet(Bottleneck, [3, 4, ...], num_classes=1) as the authors build it, cut after layer2."""

    def __init__(self):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, 1)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4)
            )
        layers = [RefBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [RefBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def interpolate(self, img, factor):
        down = F.interpolate(img, scale_factor=factor, mode="nearest", recompute_scale_factor=True)
        return F.interpolate(down, scale_factor=1 / factor, mode="nearest", recompute_scale_factor=True)

    def forward(self, x):
        npr = x - self.interpolate(x, 0.5)
        x = self.conv1(npr * 2.0 / 3.0)
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        x = x.view(x.size(0), -1)
        return self.fc1(x)


IMAGES = {  # height, width: square, odd, non-square, odd and non-square
    "square": photo_like_rgb(64, 64, seed=1),
    "odd": photo_like_rgb(67, 65, seed=2),
    "wide": photo_like_rgb(96, 48, seed=3),
    "tall-odd": photo_like_rgb(41, 97, seed=4),
}


def normalised(image: np.ndarray) -> torch.Tensor:
    """ToTensor + Normalize(ImageNet) on the image cropped to even sizes: what the authors feed."""
    height, width = image.shape[:2]
    cropped = image[: height - height % 2, : width - width % 2].astype(np.float32) / 255.0
    cropped = (cropped - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    return torch.from_numpy(cropped).permute(2, 0, 1).unsqueeze(0).contiguous()


def randomised_reference(seed: int = 0) -> ReferenceNPR:
    """A reference with random weights and random batch-norm statistics, logits spread around 0."""
    torch.manual_seed(seed)
    model = ReferenceNPR()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(1234)
        model.eval()
        # Scale the head so the test images get probabilities well inside (0, 1), not saturated ones.
        features = torch.cat([_features(model, normalised(image)) for image in IMAGES.values()])
        centred = features - features.mean(0)
        direction = centred[0] - centred[1]
        model.fc1.weight.copy_(direction / (centred @ direction).abs().max() * 2.0)
        model.fc1.bias.fill_(-(features.mean(0) @ model.fc1.weight[0]).item())
    return model


def _features(model: ReferenceNPR, x: torch.Tensor) -> torch.Tensor:
    x = model.conv1((x - model.interpolate(x, 0.5)) * 2.0 / 3.0)
    x = model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(x)))))
    return model.avgpool(x).flatten(1)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tensors here are tiny: one thread is as fast, and does not slow to a crawl on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference() -> ReferenceNPR:
    return randomised_reference()


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("npr")
    torch.save(reference.state_dict(), folder / "NPR.pth")
    out = folder / "npr.safetensors"
    convert_npr_checkpoint(folder / "NPR.pth", out)
    return out


def reference_probability(model: nn.Module, image: np.ndarray) -> float:
    with torch.no_grad():
        return torch.sigmoid(model(normalised(image))).item()


# ---------------------------------------------------------------------------------------------------
# Architecture facts.


def test_parameter_count_is_about_1_44_million():
    assert count_parameters(NPRNet()) == 1_437_761
    assert count_parameters(NPRNet()) == count_parameters(ReferenceNPR())


def test_parameter_names_and_shapes_equal_the_reference():
    ours = {key: tuple(value.shape) for key, value in NPRNet().state_dict().items()}
    theirs = {key: tuple(value.shape) for key, value in ReferenceNPR().state_dict().items()}
    assert ours == theirs
    NPRNet().load_state_dict(ReferenceNPR().state_dict(), strict=True)


def test_residual_of_a_nearest_upsampled_image_is_exactly_zero():
    torch.manual_seed(0)
    small = torch.rand(2, 3, 9, 13)
    upsampled = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert torch.count_nonzero(npr_residual(upsampled)) == 0
    noisy = torch.rand(1, 3, 18, 26)
    residual = npr_residual(noisy)
    assert torch.count_nonzero(residual[..., ::2, ::2]) == 0  # the kept pixel of each 2 x 2 block
    assert torch.count_nonzero(residual[..., 1::2, 1::2]) == residual[..., 1::2, 1::2].numel()


def test_residual_equals_the_reference_helper():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 30, 44)
    assert torch.equal(npr_residual(x), x - ReferenceNPR().interpolate(x, 0.5))


def test_residual_refuses_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        npr_residual(torch.zeros(1, 3, 31, 32))


# ---------------------------------------------------------------------------------------------------
# Official checkpoint -> convert -> create -> predict equals the reference.


def _save_variant(reference: ReferenceNPR, path: Path, variant: str) -> None:
    state = reference.state_dict()
    if variant == "raw":
        torch.save(state, path)
    elif variant == "model-wrapped":
        torch.save({"model": state, "total_steps": 10}, path)
    elif variant == "state_dict-wrapped":
        torch.save({"state_dict": state, "epoch": 3}, path)
    elif variant == "module-prefixed":
        torch.save({f"module.{key}": value for key, value in state.items()}, path)
    elif variant == "trainer":  # the authors' training checkpoint: DataParallel, unused fc, optimizer
        prefixed = {f"module.{key}": value for key, value in state.items()}
        prefixed["module.fc.weight"] = torch.zeros(1, 2048)
        prefixed["module.fc.bias"] = torch.zeros(1)
        torch.save(
            {"model": prefixed, "optimizer": {"state": {}, "param_groups": []}, "total_steps": 7}, path
        )
    elif variant == "no-batch-counts":  # older PyTorch saved no num_batches_tracked
        torch.save({key: value for key, value in state.items() if "num_batches_tracked" not in key}, path)


@pytest.mark.parametrize(
    "variant", ["raw", "model-wrapped", "state_dict-wrapped", "module-prefixed", "trainer", "no-batch-counts"]
)
def test_converted_checkpoint_predicts_like_the_reference(reference, tmp_path, variant):
    checkpoint = tmp_path / "NPR.pth"
    _save_variant(reference, checkpoint, variant)
    card = convert_npr_checkpoint(checkpoint, tmp_path / "npr.safetensors")
    detector = create("npr", weights=tmp_path / "npr.safetensors")

    predicted = detector.predict(list(IMAGES.values()))
    expected = np.array([reference_probability(reference, image) for image in IMAGES.values()])
    np.testing.assert_allclose(predicted, expected, atol=1e-4, rtol=0)
    assert expected.min() > 0.02 and expected.max() < 0.98, (
        "reference saturated: the comparison would be vacuous"
    )
    assert np.ptp(expected) > 0.1
    assert detector.trained
    if variant == "trainer":
        assert card.extra["dropped_keys"] == ["fc.weight", "fc.bias"]
    if variant == "no-batch-counts":
        batch_norms = [module for module in NPRNet().modules() if isinstance(module, nn.BatchNorm2d)]
        assert len(card.extra["filled_keys"]) == len(batch_norms) == 24
        assert all(key.endswith("num_batches_tracked") for key in card.extra["filled_keys"])


def test_logits_match_the_reference_closely(reference, converted):
    detector = create("npr", weights=converted)
    image = IMAGES["tall-odd"]
    with torch.no_grad():
        ours = detector.logits(detector.to_tensor([image]))
        theirs = reference(normalised(image)).reshape(-1)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5)


def test_model_card_records_the_source(converted):
    card = ModelCard.load(converted.with_suffix(".json"))
    source = converted.parent / "NPR.pth"
    assert card.detector == "npr"
    assert card.license == "see the checkpoint's source"
    assert card.training_data == "unknown (converted)"
    assert card.preprocessing.crop_multiple == 2
    assert card.preprocessing.resize is None and card.preprocessing.center_crop is None
    assert card.extra["source_file"] == "NPR.pth"
    assert card.extra["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert card.extra["dropped_keys"] == [] and card.extra["filled_keys"] == []
    assert "ResNet-50 cut after layer2" in card.architecture
    assert json.loads(converted.with_suffix(".json").read_text())["detector"] == "npr"


def test_batches_of_one_size_equal_single_predictions(converted):
    detector = create("npr", weights=converted)
    images = [photo_like_rgb(48, 40, seed=seed) for seed in range(5)]
    together = detector.predict(images, batch_size=2)
    alone = np.array([detector.predict([image])[0] for image in images])
    np.testing.assert_allclose(together, alone, atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# Sliding-window map.


def test_predict_map_equals_per_window_predict(converted):
    detector = create("npr", weights=converted)
    image = photo_like_rgb(161, 97, seed=7)  # odd sizes: the last row and column are cropped first
    patch_map = detector.predict_map(image, window=64, stride=32, batch_size=3)
    assert isinstance(patch_map, PatchMap)
    assert patch_map.scores.shape == ((96 - 64) // 32 + 1, (160 - 64) // 32 + 1) == (2, 4)
    assert (patch_map.window, patch_map.stride, patch_map.image_shape) == (64, 32, (97, 161))
    windows = [
        image[i * 32 : i * 32 + 64, j * 32 : j * 32 + 64] for i, j in np.ndindex(patch_map.scores.shape)
    ]
    np.testing.assert_allclose(patch_map.scores.ravel(), detector.predict(windows), atol=1e-5)
    assert np.ptp(patch_map.scores) > 0  # windows differ, so the map is not a constant
    assert patch_map.to_pixels().shape == (97, 161)


def test_predict_map_of_an_image_smaller_than_the_window_is_one_window(converted):
    detector = create("npr", weights=converted)
    image = IMAGES["odd"]
    patch_map = detector.predict_map(image)  # default window 256
    assert patch_map.scores.shape == (1, 1)
    assert patch_map.scores[0, 0] == pytest.approx(detector.predict([image])[0], abs=1e-5)
    assert not np.isnan(patch_map.to_pixels()[:66, :64]).any()


def test_predict_map_shrinks_the_window_when_one_side_is_short():
    detector = NPRDetector()
    patch_map = detector.predict_map(photo_like_rgb(300, 80, seed=8), window=256, stride=128)
    assert (patch_map.window, patch_map.stride) == (80, 80)
    assert patch_map.scores.shape == (1, 3)


def test_predict_map_refuses_bad_windows():
    detector = NPRDetector()
    with pytest.raises(UsageError, match="even"):
        detector.predict_map(photo_like_rgb(64, 64), window=63)
    with pytest.raises(UsageError, match="at least 32"):
        detector.predict_map(photo_like_rgb(64, 64), window=16)


# ---------------------------------------------------------------------------------------------------
# Typed errors.


def test_too_small_image_is_a_typed_error():
    detector = NPRDetector()
    assert detector.predict([photo_like_rgb(32, 33), photo_like_rgb(100, 33)]).shape == (2,)  # 33 crops to 32
    with pytest.raises(ImageTooSmallError, match="at least 32 x 32") as caught:
        detector.predict([photo_like_rgb(64, 64), photo_like_rgb(64, 31)])
    assert caught.value.type == "image_too_small"
    assert "64 x 31" in caught.value.message
    with pytest.raises(ImageTooSmallError):
        detector.predict_map(photo_like_rgb(20, 200))


def test_another_architecture_is_refused_naming_the_missing_keys(tmp_path):
    other = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 2))
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointKeysError) as caught:
        convert_npr_checkpoint(tmp_path / "other.pth", tmp_path / "out.safetensors")
    message = caught.value.message
    assert "not a npr checkpoint" in message
    assert "conv1.weight" in message and "0.weight" in message  # what is missing, what it has instead
    assert not (tmp_path / "out.safetensors").exists()


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path):
    state = NPRNet().state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 7, 7)  # torchvision's ResNet stem, not NPR's
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(
        CheckpointShapeError, match=r"conv1\.weight \(64, 3, 7, 7\) \(expected \(64, 3, 3, 3\)\)"
    ):
        convert_npr_checkpoint(tmp_path / "wrong.pth", tmp_path / "out.safetensors")


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(NotACheckpointError, match=r"text\.pth is not a PyTorch checkpoint"):
        convert_npr_checkpoint(tmp_path / "text.pth", tmp_path / "out.safetensors")
    torch.save(NPRNet(), tmp_path / "pickled-module.pth")  # a whole pickled module is never unpickled
    with pytest.raises(NotACheckpointError, match="read safely"):
        convert_npr_checkpoint(tmp_path / "pickled-module.pth", tmp_path / "out.safetensors")
    torch.save({"epoch": 3, "note": "no tensors"}, tmp_path / "empty.pth")
    with pytest.raises(NotACheckpointError, match="holds no tensors"):
        convert_npr_checkpoint(tmp_path / "empty.pth", tmp_path / "out.safetensors")
    with pytest.raises(WeightsNotFoundError, match="no checkpoint file"):
        convert_npr_checkpoint(tmp_path / "missing.pth", tmp_path / "out.safetensors")


def test_output_must_be_safetensors(tmp_path, reference):
    torch.save(reference.state_dict(), tmp_path / "NPR.pth")
    with pytest.raises(UsageError, match=r"\.safetensors"):
        convert_npr_checkpoint(tmp_path / "NPR.pth", tmp_path / "npr.json")


def test_weights_of_another_architecture_do_not_load(tmp_path):
    save_file({"conv1.weight": torch.zeros(64, 3, 7, 7)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match="do not fit the npr architecture"):
        create("npr", weights=tmp_path / "bad.safetensors")


# ---------------------------------------------------------------------------------------------------
# Command line and devices.


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("convert")(convert_command)

    @app.command()
    def other() -> None:  # a second command keeps "convert" a named subcommand
        pass

    return app


def test_convert_command(tmp_path, reference):
    torch.save({"model": reference.state_dict()}, tmp_path / "NPR.pth")
    out = tmp_path / "weights" / "npr.safetensors"
    result = CliRunner().invoke(_cli(), ["convert", "npr", str(tmp_path / "NPR.pth"), str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert "wrote" in result.output

    result = CliRunner().invoke(_cli(), ["convert", "dire", str(tmp_path / "NPR.pth"), str(out)])
    assert result.exit_code == 2
    assert "no converter for 'dire'" in result.output and "npr" in result.output

    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    result = CliRunner().invoke(_cli(), ["convert", "npr", str(tmp_path / "junk.pth"), str(out)])
    assert result.exit_code == 2
    assert "junk.pth is not a PyTorch checkpoint" in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(converted):
    on_cpu = create("npr", weights=converted)
    on_gpu = create("npr", weights=converted, device="cuda")
    images = list(IMAGES.values())
    np.testing.assert_allclose(on_gpu.predict(images), on_cpu.predict(images), atol=1e-4)
    image = photo_like_rgb(200, 136, seed=9)
    gpu_map = on_gpu.predict_map(image, window=64, stride=32)
    np.testing.assert_allclose(
        gpu_map.scores, on_cpu.predict_map(image, window=64, stride=32).scores, atol=1e-4
    )
