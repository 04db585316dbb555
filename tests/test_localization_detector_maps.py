"""Local detector maps: window grids, robust z, and maps over generated photo-like images (no files)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pixelsleuth.detectors import create
from pixelsleuth.detectors.base import Detector
from pixelsleuth.forge.manipulate import ai_edit
from pixelsleuth.localization.detector_maps import (
    detector_maps,
    local_detector_map,
    robust_z,
    spectral_window_map,
    window_grid,
    windows_to_pixels,
    z_threshold,
)
from pixelsleuth.localization.record import LocalizationInputError

SIZE = 384


def random_patchnet(seed: int = 0) -> Detector:
    """A randomly initialised PatchNet, the same on every run."""
    torch.manual_seed(seed)
    return create("patchnet")


def camera_like(seed: int, size: int = SIZE) -> np.ndarray:
    """Content at several scales plus independent per-pixel noise: never up-sampled, like a photo."""
    rng = np.random.default_rng(seed)
    field = np.zeros((size, size, 3), np.float32)
    for sigma, amplitude in ((24, 60), (6, 25), (1.5, 12)):
        blurred = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 3)).astype(np.float32), (0, 0), sigma)
        field += amplitude * blurred / blurred.std()
    field += 128 + rng.normal(0, 3, field.shape)
    return np.clip(field + 0.5, 0, 255).astype(np.uint8)


def upsampled_square(image: np.ndarray, interpolation: int) -> tuple[np.ndarray, np.ndarray]:
    """The image with its central 128-pixel square rebuilt from half resolution (x2 up-sampling)."""
    edited, mask = image.copy(), np.zeros(image.shape[:2], bool)
    box = (slice(128, 256), slice(128, 256))
    small = cv2.resize(image[box], (64, 64), interpolation=cv2.INTER_AREA)
    edited[box] = cv2.resize(small, (128, 128), interpolation=interpolation)
    mask[box] = True
    return edited, mask


def test_window_grid_reaches_the_edges_and_thins_large_images() -> None:
    grid = window_grid((300, 260), 128, 64)
    assert grid.rows[-1] + 128 == 300 and grid.cols[-1] + 128 == 260
    sparse = window_grid((4000, 3000), 128, 64, max_windows=200)
    assert sparse.count <= 200 and sparse.stride > 64 and sparse.stride % 8 == 0


def test_robust_z_is_one_sided_and_reads_an_outlier() -> None:
    z, median, spread = robust_z(np.r_[np.linspace(-1, 1, 40), 10.0])
    assert z.min() == 0.0 and z.argmax() == 40 and z.max() > 8
    assert abs(median) < 0.1 and spread > 0


def test_z_threshold_grows_with_the_number_of_windows() -> None:
    assert z_threshold(9, floor=0) == pytest.approx(3.06, abs=0.01) and z_threshold(9) == 6.0
    assert z_threshold(10_000, floor=0) > z_threshold(1000, floor=0) > 4.0


def test_windows_to_pixels_averages_overlaps() -> None:
    grid = window_grid((8, 8), 4, 2)
    spread = windows_to_pixels(np.ones((3, 3)), grid, (8, 8))
    assert spread.shape == (8, 8) and np.allclose(spread, 1.0)


@pytest.mark.parametrize("interpolation", [cv2.INTER_NEAREST, cv2.INTER_LINEAR])
def test_spectral_map_ranks_an_upsampled_region_above_the_rest(interpolation: int) -> None:
    for seed in range(2):
        edited, mask = upsampled_square(camera_like(seed), interpolation)
        result = spectral_window_map(edited, window=64)
        assert result.map[mask].mean() > 2 * result.map[~mask].mean()


def test_spectral_map_catches_an_ai_edit_with_an_upsampling_reconstruction() -> None:
    def nearest_x2(rgb: np.ndarray) -> np.ndarray:
        half = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return cv2.resize(half, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST)

    edited, mask = ai_edit(
        camera_like(3), np.random.default_rng(0), nearest_x2, kind="ellipse", area=(0.15, 0.2)
    )
    result = spectral_window_map(edited, window=64)
    inside = mask > 0
    assert result.map[inside].mean() > result.map[~inside].mean()


def test_untouched_photos_get_no_region_and_well_formed_maps() -> None:
    patchnet = random_patchnet()
    for seed in range(3):
        image = camera_like(seed)
        for result in (spectral_window_map(image, window=64), local_detector_map(image, patchnet, window=64)):
            assert result.region is None, result.reading
            assert result.map.shape == image.shape[:2] and result.map.dtype == np.float32
            assert result.map.min() >= 0.0 and result.map.max() <= 1.0 and 0.0 <= result.score <= 1.0
            assert result.reading.endswith(".")


def test_a_random_patchnet_map_covers_the_image() -> None:
    image = camera_like(5, size=256)
    result = local_detector_map(image, random_patchnet(), window=64, stride=32)
    assert result.method == "patchnet-windows" and result.map.shape == (256, 256)
    assert result.data["windows"] == 49 and result.data["stride"] == 32


def test_embedded_detector_maps_name_every_map() -> None:
    image = camera_like(6, size=256)
    patchnet = random_patchnet()
    maps = detector_maps(image, detectors=(patchnet,), windows={"patchnet": 64, "spectral": 64})
    assert [m.method for m in maps] == ["patchnet-windows", "spectral-windows"]


@pytest.mark.parametrize("shape", [(100, 100, 3), (255, 400, 3)])
def test_small_images_are_refused_in_words(shape: tuple[int, int, int]) -> None:
    image = np.zeros(shape, np.uint8)
    with pytest.raises(LocalizationInputError, match="at least 256 x 256"):
        spectral_window_map(image, window=128)
    with pytest.raises(LocalizationInputError, match="needs images of at least"):
        local_detector_map(image, random_patchnet(), window=128)


def test_not_an_rgb_array_is_refused() -> None:
    with pytest.raises(LocalizationInputError, match="RGB"):
        spectral_window_map(np.zeros((300, 300, 4), np.uint8))


def test_windows_smaller_than_the_detector_reads_are_refused() -> None:
    torch.manual_seed(0)
    with pytest.raises(LocalizationInputError, match="too small for this detector"):
        local_detector_map(camera_like(7, size=256), create("fsd"), window=64)
