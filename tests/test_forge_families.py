"""The generator zoo: every family builds, keeps sizes, trains reproducibly, saves, and leaves its trace."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from imagegen import photo_like_rgb
from pixelsleuth.errors import PixelsleuthError, UsageError
from pixelsleuth.forge import FAMILIES, list_families, load_family, train_family, untrained_family
from pixelsleuth.forge.families import (
    NOMINAL_STEPS_PER_SECOND,
    FamilyWeightsNotFoundError,
    ForgeSettingError,
    IncompatibleFamilyWeightsError,
    NotAnRgbImageError,
    NoTrainingPhotosError,
    UnknownFamilyError,
    periodic_trace,
    planned_steps,
)

SAMPLING = [name for name in list_families() if FAMILIES[name].kind in ("vae", "gan")]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """A handful of small photo-like images of different sizes (one smaller than a crop)."""
    return [photo_like_rgb(width=40 + 8 * seed, height=36 + 4 * seed, seed=seed) for seed in range(5)] + [
        photo_like_rgb(width=12, height=10, seed=9)
    ]


def tiny_training(name: str, photos: list[np.ndarray], seed: int = 0, steps: int = 3):
    crop = 16 if FAMILIES[name].kind == "gan" else 8
    return train_family(name, photos, seconds=120, seed=seed, steps=steps, crop=crop, batch_size=2)


def state_of(family) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in family.model.state_dict().items()}


def test_catalogue_covers_every_upsampler_and_factor():
    autoencoders = [spec for spec in FAMILIES.values() if spec.kind == "autoencoder"]
    assert len(FAMILIES) >= 10
    assert list_families() == sorted(FAMILIES)
    assert all(name == spec.name for name, spec in FAMILIES.items())
    assert {spec.upsampler for spec in autoencoders if spec.factor == 2} == {
        "nearest",
        "bilinear",
        "bicubic",
        "transposed",
        "pixelshuffle",
    }
    assert {spec.factor for spec in autoencoders} == {2, 4, 8}
    for upsampler in ("nearest", "transposed"):
        assert {spec.factor for spec in autoencoders if spec.upsampler == upsampler} == {2, 4, 8}
    assert {spec.kind for spec in FAMILIES.values()} >= {"autoencoder", "vae", "gan"}
    assert set(NOMINAL_STEPS_PER_SECOND) == set(FAMILIES)


@pytest.mark.parametrize("name", list_families())
def test_family_builds_small_and_keeps_odd_sizes(name):
    family = untrained_family(name, seed=1)
    assert 50_000 <= family.parameters <= 650_000
    image = photo_like_rgb(width=37, height=29, seed=2)
    before = image.copy()
    rebuilt = family.reconstruct(image)
    if FAMILIES[name].kind == "gan":
        assert rebuilt is None
    else:
        assert rebuilt is not None and rebuilt.shape == image.shape and rebuilt.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # the input is never modified
    sample = family.sample(np.random.default_rng(0), 24)
    if name in SAMPLING:
        assert sample is not None and sample.shape == (24, 24, 3) and sample.dtype == np.uint8
    else:
        assert sample is None


@pytest.mark.parametrize("name", ["ae-nearest-x8", "vae-nearest-x4"])
def test_reconstruct_of_tiny_and_single_pixel_images(name):
    family = untrained_family(name)
    for shape in ((1, 1, 3), (3, 7, 3), (9, 2, 3)):
        assert family.reconstruct(np.full(shape, 90, np.uint8)).shape == shape


def test_tiled_reconstruction_matches_one_pass():
    family = untrained_family("ae-pixelshuffle-x2", seed=4)
    image = photo_like_rgb(width=90, height=75, seed=1)
    whole = family.reconstruct(image, tile=512).astype(int)
    tiled = family.reconstruct(image, tile=32).astype(int)
    assert np.abs(whole - tiled).max() <= 1
    assert np.mean(whole != tiled) < 0.01


@pytest.mark.parametrize("name", SAMPLING)
def test_samples_follow_the_generator_state(name):
    family = untrained_family(name)
    first = family.sample(np.random.default_rng(7), 40)
    np.testing.assert_array_equal(first, family.sample(np.random.default_rng(7), 40))
    assert not np.array_equal(first, family.sample(np.random.default_rng(8), 40))
    assert family.sample(np.random.default_rng(7), 100).shape == (100, 100, 3)  # larger than trained


def test_untrained_weights_follow_the_seed():
    same = [untrained_family("ae-transposed-x4", seed=5) for _ in range(2)]
    other = untrained_family("ae-transposed-x4", seed=6)
    for key, value in same[0].model.state_dict().items():
        assert torch.equal(value, same[1].model.state_dict()[key])
    assert any(
        not torch.equal(value, other.model.state_dict()[key])
        for key, value in same[0].model.state_dict().items()
    )


@pytest.mark.parametrize("name", ["ae-nearest-x2", "vae-nearest-x4", "gan-transposed-x16"])
def test_same_seed_and_steps_give_identical_weights(name, photos):
    runs = [tiny_training(name, photos, seed=3) for _ in range(2)]
    for key, value in state_of(runs[0]).items():
        assert torch.equal(value, state_of(runs[1])[key]), key
    probe = photo_like_rgb(width=33, height=31, seed=4)
    if FAMILIES[name].kind == "gan":
        outputs = [run.sample(np.random.default_rng(0), 32).tobytes() for run in runs]
    else:
        outputs = [run.reconstruct(probe).tobytes() for run in runs]
    assert outputs[0] == outputs[1]
    changed = tiny_training(name, photos, seed=4)
    assert any(not torch.equal(value, state_of(changed)[key]) for key, value in state_of(runs[0]).items())


def test_training_leaves_torch_global_state_alone(photos):
    rng_state = torch.get_rng_state()
    threads = torch.get_num_threads()
    tiny_training("ae-bilinear-x2", photos, steps=1)
    untrained_family("gan-nearest-x16", seed=2)
    assert torch.equal(rng_state, torch.get_rng_state())
    assert torch.get_num_threads() == threads


def test_training_reduces_the_l1_loss(photos):
    family = train_family("ae-nearest-x2", photos, seconds=120, steps=60, crop=16, batch_size=8)
    record = family.record
    assert record["steps"] == 60 and record["stopped_by"] == "steps"
    assert record["last_loss"] < 0.6 * record["first_loss"]
    untrained = untrained_family("ae-nearest-x2")
    image = photos[1]
    error_before = np.abs(untrained.reconstruct(image).astype(float) - image).mean()
    error_after = np.abs(family.reconstruct(image).astype(float) - image).mean()
    assert error_after < 0.6 * error_before


def test_nearest_x2_reconstruction_carries_a_period_two_trace(photos):
    family = train_family("ae-nearest-x2", photos, seconds=120, steps=20, crop=16, batch_size=8)
    image = photo_like_rgb(width=160, height=136, seed=11)
    rebuilt = family.reconstruct(image)
    assert periodic_trace(rebuilt, 2) > 5 * periodic_trace(image, 2)
    # Blurring the image without up-sampling leaves no such trace: the peak is the decoder's grid.
    blurred = ((image[:-1, :-1].astype(int) + image[1:, 1:]) // 2).astype(np.uint8)
    assert periodic_trace(blurred, 2) < 3 * periodic_trace(image, 2)


def test_periodic_trace_finds_the_grid_period():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    upsampled_by_four = small.repeat(4, axis=0).repeat(4, axis=1)
    assert periodic_trace(upsampled_by_four, 4) > 50
    assert periodic_trace(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8), 4) < 10
    with pytest.raises(ForgeSettingError):
        periodic_trace(upsampled_by_four, 3)


def test_save_and_load_round_trip(photos, tmp_path):
    family = tiny_training("vae-nearest-x4", photos, steps=2)
    weights = family.save(tmp_path / "zoo")
    assert weights == tmp_path / "zoo" / "vae-nearest-x4.safetensors" and weights.is_file()
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["spec"]["name"] == "vae-nearest-x4" and card["spec"]["kind"] == "vae"
    assert card["parameters"] == family.parameters
    assert card["seed"] == 0 and card["steps"] == 2 and card["data"]["photos"] == len(photos)
    assert math.isclose(card["trained_seconds"], family.trained_seconds, abs_tol=1e-3)

    loaded = load_family("vae-nearest-x4", tmp_path / "zoo")
    assert loaded.spec == family.spec and loaded.record["steps"] == 2
    probe = photo_like_rgb(width=30, height=22, seed=5)
    np.testing.assert_array_equal(loaded.reconstruct(probe), family.reconstruct(probe))
    np.testing.assert_array_equal(
        loaded.sample(np.random.default_rng(3), 32), family.sample(np.random.default_rng(3), 32)
    )


def test_gan_round_trip_keeps_batch_norm_statistics(photos, tmp_path):
    family = tiny_training("gan-nearest-x16", photos, steps=2)
    family.save(tmp_path)
    loaded = load_family("gan-nearest-x16", tmp_path)
    np.testing.assert_array_equal(
        loaded.sample(np.random.default_rng(1), 48), family.sample(np.random.default_rng(1), 48)
    )


def test_load_errors_are_typed(tmp_path):
    with pytest.raises(UnknownFamilyError, match="ae-nearest-x2"):
        load_family("ae-lanczos-x3", tmp_path)
    with pytest.raises(FamilyWeightsNotFoundError):
        load_family("ae-nearest-x2", tmp_path / "missing")
    weights = untrained_family("ae-nearest-x2").save(tmp_path)
    weights.rename(tmp_path / "ae-nearest-x4.safetensors")
    with pytest.raises(IncompatibleFamilyWeightsError):
        load_family("ae-nearest-x4", tmp_path)  # no card: the state dict itself does not fit
    weights.with_suffix(".json").rename(tmp_path / "ae-nearest-x4.json")
    with pytest.raises(IncompatibleFamilyWeightsError, match="nearest x2"):
        load_family("ae-nearest-x4", tmp_path)  # the card names another family


def test_bad_settings_are_typed(photos):
    with pytest.raises(NoTrainingPhotosError):
        train_family("ae-nearest-x2", [], seconds=10)
    with pytest.raises(ForgeSettingError):
        train_family("ae-nearest-x4", photos, seconds=10, crop=18)
    with pytest.raises(ForgeSettingError):
        train_family("gan-nearest-x16", photos, seconds=10, crop=24)
    with pytest.raises(ForgeSettingError):
        train_family("ae-nearest-x2", photos, seconds=0)
    with pytest.raises(UnknownFamilyError):
        untrained_family("diffusion-x2")
    with pytest.raises(NotAnRgbImageError):
        untrained_family("ae-nearest-x2").reconstruct(np.zeros((8, 8), np.uint8))
    with pytest.raises(NotAnRgbImageError):
        train_family("ae-nearest-x2", [np.zeros((8, 8, 3), np.float32)], seconds=10)
    with pytest.raises(ForgeSettingError):
        untrained_family("vae-nearest-x4").sample(np.random.default_rng(0), 0)
    assert issubclass(UnknownFamilyError, PixelsleuthError)


def test_step_budget_comes_from_seconds_and_time_only_caps_it(photos):
    assert planned_steps("ae-transposed-x2", 1.0) == math.floor(NOMINAL_STEPS_PER_SECOND["ae-transposed-x2"])
    quick = train_family("ae-transposed-x2", photos, seconds=0.6, crop=8, batch_size=2)
    assert quick.record["planned_steps"] == planned_steps("ae-transposed-x2", 0.6) == 2
    stopped = train_family("ae-transposed-x2", photos, seconds=1e-9, steps=1000, crop=8, batch_size=2)
    assert stopped.record["stopped_by"] == "time" and stopped.record["steps"] < 1000


def test_exact_step_counts_are_not_cut_short_by_time() -> None:
    from pixelsleuth.forge.command import parse_train_steps

    photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    family = train_family("ae-nearest-x2", [photo], seconds=math.inf, steps=2, crop=16, batch_size=2)
    assert family.record["steps"] == 2 and family.record["seconds_limit"] is None
    names = ["ae-nearest-x2", "vae-nearest-x4"]
    assert parse_train_steps("7", names) == {"ae-nearest-x2": 7, "vae-nearest-x4": 7}
    assert parse_train_steps("vae-nearest-x4=5", names) == {"vae-nearest-x4": 5}
    for bad in ("0", "x", "gan-nearest-x16=3", "vae-nearest-x4=-1"):
        with pytest.raises(UsageError):
            parse_train_steps(bad, names)
