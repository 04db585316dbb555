"""Copy-move detectors (keypoint and dense) on generated forgeries of scikit-image's bundled photos and of
synthetic textures: the copy and its source are both found, genuine photos and honest repetitions are
not flagged, and bad input is refused with a typed error."""

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage import data

from pixelsleuth.localization.copymove import copy_move, log10_nfa
from pixelsleuth.localization.copymove_dense import dense_copy_move
from pixelsleuth.localization.record import LocalizationInputError


def rotated_patch(image: np.ndarray, top: int, left: int, size: int = 64, angle: float = 30.0) -> np.ndarray:
    """The size x size square at (top, left), its content rotated by `angle` degrees about its centre."""
    big = size * 3 // 2
    centre_y, centre_x = top + size // 2, left + size // 2
    crop = image[centre_y - big // 2 : centre_y + big // 2, centre_x - big // 2 : centre_x + big // 2]
    rotation = cv2.getRotationMatrix2D((big / 2 - 0.5, big / 2 - 0.5), angle, 1.0)
    rotated = cv2.warpAffine(crop, rotation, (big, big), flags=cv2.INTER_LINEAR)
    offset = (big - size) // 2
    return rotated[offset : offset + size, offset : offset + size]


def low_texture(height: int, width: int, seed: int) -> np.ndarray:
    """Gentle shading (a few grey levels per ten pixels) with sensor-like noise: no corners for SIFT."""
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0, 1, (height, width)), 12)
    shade = 120 + 25 * smooth / smooth.std()
    pixels = shade[..., None] + np.array([10, 0, -10]) + rng.normal(0, 2.0, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def box_iou(region, left: int, top: int, right: int, bottom: int) -> float:
    width = max(0, min(region.right, right) - max(region.left, left))
    height = max(0, min(region.bottom, bottom) - max(region.top, top))
    union = region.area + (right - left) * (bottom - top) - width * height
    return width * height / union


def test_keypoints_find_a_rotated_copy_and_its_source():
    image = data.astronaut()
    forged = image.copy()
    forged[272:336, 296:360] = rotated_patch(image, 176, 128)  # source centre (160, 208), turned 30 degrees
    result = copy_move(forged)
    assert result.region is not None and result.data["log10_nfa"] < 0
    assert box_iou(result.region, 296, 272, 360, 336) > 0.7
    # Resampling smooths the copy's fine detail a little; most of it still verifies.
    assert result.map[272:336, 296:360].mean() > 0.6 and result.map[:, :250].max() == 0.0
    source = result.data["source"]
    assert abs((source["left"] + source["right"]) / 2 - 160) < 8
    assert abs((source["top"] + source["bottom"]) / 2 - 208) < 8
    assert result.data["source_map"][208, 160] == 1.0 and result.data["source_map"][304, 328] == 0.0
    rotation = np.degrees(np.arctan2(result.data["affine"][1][0], result.data["affine"][0][0]))
    assert abs(abs(rotation) - 30) < 2
    assert result.reading.startswith("The region x 29") and "copied and moved" in result.reading


def test_dense_matching_finds_a_low_texture_copy_that_keypoints_miss():
    image = low_texture(256, 320, 1)
    forged = image.copy()
    forged[150:214, 200:264] = image[40:104, 40:104]
    assert copy_move(forged).region is None  # no keypoints to match
    result = dense_copy_move(forged)
    assert result.region is not None and result.data["shift"] == [160, 110]
    assert box_iou(result.region, 200, 150, 264, 214) > 0.7
    source = result.data["source"]
    assert abs(source["left"] - 40) <= 4 and abs(source["top"] - 40) <= 4
    assert result.data["log10_nfa"] < 0 and result.score > 0.5
    assert result.map[150:214, 200:264].mean() > 0.7 and result.map[:140].max() == 0.0
    assert result.data["source_map"][40:104, 40:104].mean() > 0.7

    assert dense_copy_move(image).region is None


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "camera"])
def test_genuine_photos_get_no_region(name):
    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    keypoint, dense = copy_move(image), dense_copy_move(image)
    assert keypoint.region is None and not keypoint.map.any() and keypoint.score == 0.0
    assert dense.region is None and not dense.map.any() and dense.score == 0.0


def test_a_scene_that_repeats_itself_is_not_a_copy():
    # The same object photographed twice: alike in shape and texture, but seen at another sub-pixel
    # position and each with its own noise.
    rng = np.random.default_rng(3)
    tile = cv2.GaussianBlur(data.astronaut()[160:288, 100:228].astype(np.float32), (0, 0), 1.5)
    nudged = cv2.warpAffine(
        tile, np.float32([[1, 0, 0.5], [0, 1, 0.5]]), (128, 128), borderMode=cv2.BORDER_REFLECT
    )
    scene = np.full((300, 420, 3), 90.0)
    scene[40:168, 20:148] = tile
    scene[140:268, 260:388] = nudged
    noisy = np.clip(scene + rng.normal(0, 3.0, scene.shape), 0, 255).astype(np.uint8)
    keypoint = copy_move(noisy)
    assert (
        keypoint.data["log10_nfa"] is not None and keypoint.data["log10_nfa"] < 0
    )  # matches are no accident
    assert keypoint.region is None and "repeated scene" in keypoint.reading
    assert dense_copy_move(noisy).region is None


def test_flat_areas_are_not_evidence():
    flat = np.full((200, 300, 3), 200, np.uint8)
    flat[:, 150:] = 40  # two flat halves: every block of one matches every other
    assert dense_copy_move(flat).region is None
    assert copy_move(flat).region is None


def test_log10_nfa_is_the_binomial_tail_times_the_tests():
    assert log10_nfa(10, 10, 0.5, 1.0) == pytest.approx(10 * np.log10(0.5))
    assert log10_nfa(10, 0, 0.5, 100.0) == pytest.approx(2.0)
    assert log10_nfa(10_000, 10_000, 1e-6, 1.0) == -300.0


@pytest.mark.parametrize("detector", [copy_move, dense_copy_move])
def test_bad_input_raises_a_localization_input_error(detector):
    with pytest.raises(LocalizationInputError, match="8-bit"):
        detector(np.zeros((128, 128, 3), np.float32))
    with pytest.raises(LocalizationInputError, match="height x width x 3"):
        detector(np.zeros((128, 128, 4), np.uint8))
    with pytest.raises(LocalizationInputError, match="at least"):
        detector(np.zeros((20, 400, 3), np.uint8))
