"""The detector registry, the base class, model cards, preprocessing and patch maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from imagegen import photo_like_rgb
from pixelsleuth.detectors import (
    Detector,
    IncompatibleWeightsError,
    Metric,
    ModelCard,
    PatchMap,
    Preprocessing,
    UnknownDetectorError,
    WeightsNotFoundError,
    create,
    list_detectors,
)
from pixelsleuth.detectors.base import prepare
from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.detectors.npr import NPRDetector


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tensors here are tiny: one thread is as fast, and does not slow to a crawl on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------
# Registry.


def test_npr_is_registered_with_a_description():
    detectors = list_detectors()
    assert "npr" in detectors
    assert "Tan et al., CVPR 2024" in detectors["npr"]


def test_create_builds_an_untrained_detector():
    detector = create("npr")
    assert isinstance(detector, NPRDetector) and isinstance(detector, Detector)
    assert detector.trained is False
    assert detector.card.detector == "npr"
    assert detector.device == torch.device("cpu")
    assert not detector.model.training


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownDetectorError) as caught:
        create("nope")
    assert "no detector named 'nope'" in str(caught.value)
    assert "npr" in str(caught.value)
    assert caught.value.type == "unknown_detector"
    assert isinstance(caught.value, KeyError)


def test_missing_weights_file_is_a_clear_sentence(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(WeightsNotFoundError) as caught:
        create("npr", weights=missing)
    message = str(caught.value)
    assert str(missing) in message
    assert "never downloads weights" in message
    assert "pixelsleuth convert npr" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_keyword_arguments_reach_the_constructor():
    assert create("npr", min_side=64).min_side == 64


# ---------------------------------------------------------------------------------------------------
# Weights and model cards.


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(3)
    detector = create("npr")
    with torch.no_grad():
        for parameter in detector.model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    card = ModelCard(
        detector="npr",
        version="test-1",
        architecture="NPR",
        preprocessing=Preprocessing(crop_multiple=2),
        training_data="fixture images",
        metrics=[Metric(name="AP", value=0.91, dataset="fixtures", command="pixelsleuth bench ...")],
        extra={"seed": 3},
    )
    path = tmp_path / "model.safetensors"
    detector.save(path, card)
    assert card_path_for(path).is_file()

    loaded = create("npr", weights=path)
    assert loaded.trained is True
    assert loaded.card == card
    saved = load_file(str(path))
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    image = photo_like_rgb(64, 48, seed=1)
    np.testing.assert_allclose(loaded.predict([image]), detector.predict([image]), atol=1e-6)


def test_model_card_json_round_trip(tmp_path):
    card = ModelCard(
        detector="npr",
        version="v",
        architecture="a",
        preprocessing=Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), resize=256, center_crop=224),
        metrics=[Metric("ROC-AUC", 0.8, "dev", "cmd")],
    )
    card.save(tmp_path / "card.json")
    assert ModelCard.load(tmp_path / "card.json") == card


def test_weights_without_a_card_keep_the_default_card(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in create("npr").model.state_dict().items()}, str(path))
    loaded = create("npr", weights=path)
    assert loaded.trained and loaded.card.version == "untrained"


def test_incompatible_weights_are_a_typed_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"backbone.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(IncompatibleWeightsError) as caught:
        create("npr", weights=path)
    assert caught.value.type == "incompatible_weights"
    assert str(path) in caught.value.message and "npr" in caught.value.message


# ---------------------------------------------------------------------------------------------------
# predict


def test_predict_keeps_input_order_with_mixed_sizes():
    torch.manual_seed(0)
    detector = create("npr")
    images = [
        photo_like_rgb(64, 48, seed=0),
        photo_like_rgb(80, 40, seed=1),
        photo_like_rgb(64, 48, seed=2),
        photo_like_rgb(49, 57, seed=3),  # odd: cropped to 48 x 56
        photo_like_rgb(80, 40, seed=4),
    ]
    together = detector.predict(images, batch_size=2)
    alone = np.array([detector.predict([image])[0] for image in images])
    assert together.dtype == np.float32 and together.shape == (5,)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert len(np.unique(np.round(alone, 6))) == 5  # distinct values, so order mix-ups would show
    assert ((together >= 0) & (together <= 1)).all()


def test_predict_of_nothing_is_empty():
    assert create("npr").predict([]).shape == (0,)


def test_to_tensor_normalises_with_the_card():
    detector = create("npr")
    image = np.full((4, 6, 3), 255, np.uint8)
    batch = detector.to_tensor([image, image])
    assert batch.shape == (2, 3, 4, 6)
    expected = (1.0 - np.array(detector.preprocessing.mean)) / np.array(detector.preprocessing.std)
    np.testing.assert_allclose(batch[0, :, 0, 0].numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="one size"):
        detector.to_tensor([image, np.zeros((8, 8, 3), np.uint8)])


# ---------------------------------------------------------------------------------------------------
# Preprocessing via prepare.


def test_prepare_without_steps_returns_the_same_pixels():
    image = photo_like_rgb(30, 20)
    assert prepare(image, Preprocessing()) is image


def test_prepare_crop_multiple_drops_the_last_rows_and_columns():
    image = photo_like_rgb(31, 21)
    cropped = prepare(image, Preprocessing(crop_multiple=2))
    assert cropped.shape == (20, 30, 3)
    assert np.array_equal(cropped, image[:20, :30])
    assert prepare(image, Preprocessing(crop_multiple=8)).shape == (16, 24, 3)


def test_prepare_resize_scales_the_short_side():
    image = photo_like_rgb(200, 100)
    assert prepare(image, Preprocessing(resize=50)).shape == (50, 100, 3)
    assert prepare(image, Preprocessing(resize=300)).shape == (300, 600, 3)


def test_prepare_center_crop_takes_the_middle():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    cropped = prepare(image, Preprocessing(center_crop=4))
    assert cropped.shape == (4, 4, 3)
    assert np.array_equal(cropped, image[3:7, 4:8])


def test_prepare_applies_resize_then_crop_then_multiple():
    image = photo_like_rgb(400, 300)
    out = prepare(image, Preprocessing(resize=256, center_crop=225, crop_multiple=2))
    assert out.shape == (224, 224, 3)


def test_prepare_refuses_what_is_not_rgb_uint8():
    with pytest.raises(ValueError, match="uint8 RGB"):
        prepare(np.zeros((8, 8), np.uint8), Preprocessing())
    with pytest.raises(ValueError, match="uint8 RGB"):
        prepare(np.zeros((8, 8, 3), np.float32), Preprocessing())


# ---------------------------------------------------------------------------------------------------
# PatchMap


def test_patch_map_to_pixels_averages_overlapping_windows():
    scores = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    patch_map = PatchMap(scores=scores, window=4, stride=2, image_shape=(7, 7))
    pixels = patch_map.to_pixels()
    assert pixels.shape == (7, 7)
    assert pixels[0, 0] == 0.0  # only window (0, 0)
    assert pixels[0, 5] == 1.0  # only window (0, 1)
    assert pixels[5, 0] == 0.5  # only window (1, 0)
    assert pixels[3, 3] == pytest.approx((0.0 + 1.0 + 0.5 + 0.25) / 4)  # all four
    assert pixels[0, 3] == pytest.approx(0.5)  # windows (0, 0) and (0, 1)
    assert np.isnan(pixels[6]).all() and np.isnan(pixels[:, 6]).all()  # no window reaches row / column 6


def test_base_detector_has_no_map():
    detector = Detector(torch.nn.Linear(1, 1), ModelCard(detector="x", version="0", architecture="linear"))
    assert detector.predict_map(np.zeros((8, 8, 3), np.uint8)) is None
