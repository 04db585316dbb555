"""Training-free localization maps on generated forgeries: the edited region lights up, a clean image
does not, and every map is a [0, 1] array at image resolution with a sentence."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from pixelsleuth.localization.ela import ela
from pixelsleuth.localization.noise import noise_inconsistency
from pixelsleuth.localization.record import LocalizationInputError, strongest_region

BOX = (slice(64, 160), slice(96, 224))  # rows, cols of the edited region


def textured(height: int, width: int, seed: int, noise: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0, 1, (height, width, 3)), sigma=(6, 6, 0))
    pixels = 128 + 60 * smooth / smooth.std() + rng.normal(0, noise, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def inside_outside(heat: np.ndarray) -> tuple[float, float]:
    mask = np.zeros(heat.shape, bool)
    mask[BOX] = True
    return float(heat[mask].mean()), float(heat[~mask].mean())


def test_ela_finds_a_region_that_was_never_compressed():
    original = jpeg_roundtrip(textured(256, 320, 0), 75)
    forged = original.copy()
    forged[BOX] = textured(256, 320, 1)[BOX]  # pasted from an uncompressed source
    result = ela(forged, quality=75)
    inside, outside = inside_outside(result.map)
    assert result.map.shape == forged.shape[:2] and result.map.dtype == np.float32
    assert result.map.min() >= 0.0 and result.map.max() <= 1.0
    assert inside > 0.5 > outside + 0.3
    assert result.score > 0.8 and result.region is not None
    assert abs(result.region.left - 96) <= 16 and abs(result.region.bottom - 160) <= 16
    assert result.reading.startswith("The region x ") and result.reading.endswith(".")

    clean = ela(original, quality=75)
    assert clean.score < 0.5 and clean.region is None
    assert "even" in clean.reading


def test_noise_map_finds_a_pasted_region_with_other_noise():
    base = textured(256, 320, 2, noise=6.0)
    forged = base.copy()
    forged[BOX] = textured(256, 320, 3, noise=0.5)[BOX]  # a smoother source, e.g. denoised or generated
    result = noise_inconsistency(forged)
    inside, outside = inside_outside(result.map)
    assert result.map.shape == forged.shape[:2]
    assert inside > 0.5 and outside < 0.2
    assert result.score > 0.8 and result.region is not None
    assert "below the rest" in result.reading and result.data["region_noise_ratio"] < 0.5

    clean = noise_inconsistency(base)
    assert clean.score < 0.5 and clean.region is None


def test_flat_images_and_bad_input_are_handled_in_sentences():
    flat = np.full((128, 128, 3), 255, np.uint8)
    assert (
        noise_inconsistency(flat).reading == "The image is too flat or too saturated to read its noise level."
    )
    assert ela(flat).score == 0.0
    with pytest.raises(LocalizationInputError, match="at least 32 x 32 pixels; this one is 20 x 16"):
        ela(np.zeros((16, 20, 3), np.uint8))
    with pytest.raises(LocalizationInputError, match="8-bit"):
        noise_inconsistency(np.zeros((128, 128, 3), np.float32))
    grey = ela(textured(64, 64, 4)[..., 0])
    assert grey.map.shape == (64, 64)


def test_maps_are_deterministic_and_cover_every_pixel():
    image = textured(100, 131, 5)  # not a multiple of the block sizes
    for method in (ela, noise_inconsistency):
        first, second = method(image), method(image)
        assert first.map.shape == (100, 131)
        assert np.array_equal(first.map, second.map) and first.reading == second.reading


def test_strongest_region_picks_the_heaviest_component():
    heat = np.zeros((20, 20))
    heat[1:3, 1:3] = 1.0
    heat[10:18, 5:15] = 0.8
    region = strongest_region(heat)
    assert (region.left, region.top, region.right, region.bottom) == (5, 10, 15, 18)
    assert region.area == 80 and region.mean == pytest.approx(0.8)
    assert strongest_region(np.zeros((5, 5))) is None


def shapes_object(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An object with corners and blobs (filled circles and bars), what keypoints hold on to."""
    import cv2

    patch = np.full((height, width, 3), 90, np.uint8)
    for _ in range(25):
        colour = tuple(int(v) for v in rng.integers(0, 255, 3))
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(3, 12))
        if rng.random() < 0.5:
            cv2.circle(patch, (x, y), r, colour, -1)
        else:
            cv2.rectangle(patch, (x, y), (x + r, y + r // 2 + 2), colour, -1)
    return patch


def test_copy_move_names_the_copy_and_its_source():
    from pixelsleuth.localization.copymove import copy_move

    image = textured(240, 320, 8, noise=2.0)
    image[30:100, 20:110] = shapes_object(np.random.default_rng(7), 70, 90)
    forged = image.copy()
    forged[150:220, 200:290] = image[30:100, 20:110]  # copied 180 px right, 120 px down
    result = copy_move(forged)
    assert result.region is not None and result.score == 1.0
    assert result.region.left >= 200 and result.region.right <= 290
    assert result.region.top >= 150 and result.region.bottom <= 220
    source = result.data["source"]
    assert source["left"] >= 20 and source["right"] <= 110 and source["bottom"] <= 100
    assert result.data["shift"] == [180, 120]
    assert (
        result.map[190, 255] == 1.0
        and result.data["source_map"][70, 75] == 1.0
        and result.map[10, 300] == 0.0
    )
    assert result.reading.startswith("The region x ") and "copied and moved" in result.reading

    clean = copy_move(image)
    assert clean.region is None and clean.score == 0.0 and not clean.map.any()


def test_jpeg_ghost_finds_a_region_compressed_at_a_lower_quality():
    from pixelsleuth.localization.ghost import jpeg_ghost

    forged = jpeg_roundtrip(textured(256, 320, 0), 90).copy()
    forged[BOX] = jpeg_roundtrip(textured(256, 320, 1), 60)[BOX]  # pasted from a q60 JPEG
    result = jpeg_ghost(jpeg_roundtrip(forged, 90))
    inside, outside = inside_outside(result.map)
    assert inside > 0.8 and outside < 0.2
    assert result.region is not None and result.data["ghost_quality"] == 60
    assert (result.region.left, result.region.top, result.region.right, result.region.bottom) == (
        96,
        64,
        224,
        160,
    )
    assert "ghost at quality 60" in result.reading

    for clean in (jpeg_roundtrip(textured(256, 320, 0), 90), textured(256, 320, 0)):
        assert jpeg_ghost(clean).region is None
