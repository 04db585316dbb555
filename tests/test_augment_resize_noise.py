"""Training augmentation: random resize (cut back to the crop), Gaussian noise, and their config keys."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pixelsleuth.train.augment import (
    TrainTransform,
    random_blur,
    random_crop,
    random_jpeg,
    random_noise,
    random_rescale_crop,
    rescale_crop,
    train_transform,
)
from pixelsleuth.train.config import ConfigError, DataConfig, TrainConfig, apply_overrides, load_config
from pixelsleuth.train.datasets import ImageDataset, Sample

REPO = Path(__file__).resolve().parents[1]


def noise_image(size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)


def everything_on(crop_size: int = 64) -> TrainTransform:
    return TrainTransform(
        crop_size=crop_size,
        blur_prob=1.0,
        blur_sigma=(0.5, 1.0),
        jpeg_prob=1.0,
        jpeg_quality=(60, 100),
        resize_prob=1.0,
        noise_prob=1.0,
    )


def test_rescale_crop_shrinks_by_area_and_enlarges_with_the_chosen_filter():
    image = noise_image(128)
    down = rescale_crop(image, 32, 0.5, 8, 16)
    assert np.array_equal(down, cv2.resize(image[8:72, 16:80], (32, 32), interpolation=cv2.INTER_AREA))
    for name, flag in (("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC)):
        up = rescale_crop(image, 32, 2.0, 8, 16, name)
        assert np.array_equal(up, cv2.resize(image[8:24, 16:32], (32, 32), interpolation=flag))
    assert np.array_equal(rescale_crop(image, 32, 1.0, 8, 16), image[8:40, 16:48])


def test_rescale_crop_clips_its_window_to_the_image():
    # Halving a 100-pixel image cannot fill a 96 crop: the whole image is shrunk to 96 instead.
    assert rescale_crop(noise_image(100), 96, 0.5, 50, 50).shape == (96, 96, 3)
    assert rescale_crop(noise_image(64), 96, 1.0, 0, 0).shape == (96, 96, 3)


def test_random_rescale_crop_changes_the_pixel_statistics_the_way_resizing_does():
    image = noise_image(256)
    identity = random_rescale_crop(image, 64, np.random.default_rng(0), scale_range=(1.0, 1.0))
    halved = random_rescale_crop(image, 64, np.random.default_rng(0), scale_range=(0.5, 0.5))
    doubled = random_rescale_crop(image, 64, np.random.default_rng(0), scale_range=(2.0, 2.0))

    def step(array: np.ndarray) -> float:  # mean absolute difference of horizontal neighbours
        return float(np.abs(np.diff(array.astype(np.float64), axis=1)).mean())

    assert identity.shape == halved.shape == doubled.shape == (64, 64, 3)
    assert identity.std() == pytest.approx(image.std(), rel=0.1)
    assert halved.std() == pytest.approx(image.std() / 2, rel=0.15)  # 2 x 2 area means of iid noise
    assert step(doubled) < 0.6 * step(identity)  # interpolated neighbours are close


def test_random_noise_adds_noise_of_the_drawn_sigma_and_draws_nothing_when_off():
    flat = np.full((128, 128, 3), 128, np.uint8)
    noisy = random_noise(flat, np.random.default_rng(0), prob=1.0, sigma_range=(3.0, 3.0))
    assert (noisy.astype(np.float64) - 128).std() == pytest.approx(3.0, rel=0.05)
    assert flat.max() == flat.min() == 128  # the input is untouched

    rng = np.random.default_rng(5)
    assert random_noise(flat, rng, prob=0.0) is flat
    assert rng.random() == np.random.default_rng(5).random()  # no number was drawn


def test_new_steps_off_keep_the_old_random_stream():
    """Configs without resize or noise get exactly the pixels they got before the steps existed."""
    image = noise_image(96)
    transform = TrainTransform(crop_size=64, blur_prob=0.5, jpeg_prob=0.5)
    for seed in range(8):
        rng = np.random.default_rng(seed)
        expected = random_blur(image, rng, prob=0.5)
        expected = random_jpeg(expected, rng, prob=0.5)
        expected = random_crop(expected, 64, rng)
        if rng.random() < 0.5:
            expected = expected[:, ::-1]
        assert np.array_equal(transform(image, np.random.default_rng(seed)), expected)


def test_transform_is_deterministic_per_seed_and_leaves_its_input_alone():
    image = noise_image(128)
    before = image.copy()
    transform = everything_on()
    first = transform(image, np.random.default_rng(3))
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8 and first.flags.c_contiguous
    assert np.array_equal(first, transform(image, np.random.default_rng(3)))
    assert not np.array_equal(first, transform(image, np.random.default_rng(4)))
    assert np.array_equal(image, before)


def test_real_and_generated_images_are_augmented_alike(tmp_path):
    """The label never reaches the transform: the same file at the same index gets the same pixels."""
    paths = []
    for index in range(4):
        path = tmp_path / f"{index}.png"
        Image.fromarray(noise_image(96, seed=index)).save(path)
        paths.append(path)
    transform = everything_on(48)
    as_labelled = ImageDataset([Sample(p, i % 2, "s", None) for i, p in enumerate(paths)], transform, seed=7)
    flipped = ImageDataset([Sample(p, 1 - i % 2, "s", None) for i, p in enumerate(paths)], transform, seed=7)
    for dataset in (as_labelled, flipped):
        dataset.set_epoch(2)
    for index in range(len(paths)):
        (one, label_one), (other, label_other) = as_labelled[index], flipped[index]
        assert label_one != label_other
        assert np.array_equal(one.numpy(), other.numpy())


def test_augment_config_keys_load_check_and_reach_the_transform(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'output = "out"\n[data]\ntrain = "somewhere"\n[augment]\njpeg_prob = 0.3\njpeg_quality = [60, 100]\n'
        "resize_prob = 0.4\nresize_scale = [0.5, 2.0]\nresize_up_filters = ['bicubic']\n"
        "noise_prob = 0.2\nnoise_sigma = [0.5, 3.0]\n"
    )
    config = load_config(path)
    transform = train_transform(config.augment, 96)
    assert transform.crop_size == 96 and transform.jpeg_quality == (60, 100)
    assert transform.resize_prob == 0.4 and transform.resize_scale == (0.5, 2.0)
    assert transform.resize_up_filters == ("bicubic",)
    assert transform.noise_prob == 0.2 and transform.noise_sigma == (0.5, 3.0)

    base = TrainConfig(data=DataConfig(train="x"))
    for override, message in (
        ("augment.resize_prob=1.5", r"augment\.resize_prob must be between 0 and 1"),
        ("augment.noise_prob=-0.1", r"augment\.noise_prob must be between 0 and 1"),
        ("augment.resize_scale=[0.0, 2.0]", r"augment\.resize_scale must be"),
        ("augment.noise_sigma=[3.0, 1.0]", r"augment\.noise_sigma must be"),
        ("augment.resize_up_filters=nearest", r"augment\.resize_up_filters must list"),
    ):
        with pytest.raises(ConfigError, match=message):
            apply_overrides(base, [override])


@pytest.mark.parametrize("name", ["pool_npr.toml", "pool_patchnet.toml"])
def test_pool_configs_augment_real_and_fake_alike(name):
    config = load_config(REPO / "configs" / name)
    augment = config.augment
    assert augment.jpeg_quality == (60, 100) and augment.resize_scale == (0.5, 2.0)
    assert min(augment.jpeg_prob, augment.resize_prob, augment.blur_prob, augment.noise_prob) > 0
    assert 96 <= config.crop_size <= 128
    assert "shared/data/dev" not in config.data.train + (config.data.val or "")
