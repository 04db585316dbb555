"""The JPEG-compression maps: aligned double quantization (adq), 8 x 8 grid (grid) and ghost false alarms.

Every image here is generated: smooth random texture with mild noise, which compresses like a photo.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from pixelsleuth.localization.adq import adq, lattice_step
from pixelsleuth.localization.dct import block_dct, clipped_blocks, luminance
from pixelsleuth.localization.ghost import jpeg_ghost
from pixelsleuth.localization.grid import jpeg_grid
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.record import LocalizationInputError

HEIGHT, WIDTH = 256, 320
BOX = (slice(64, 192), slice(96, 256))  # on the 8 x 8 grid
SHIFTED_BOX = (slice(67, 163), slice(101, 229))  # rows start at 3, columns at 5 modulo 8


def textured(seed: int, height: int = HEIGHT, width: int = WIDTH, noise: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = gaussian_filter(rng.normal(0, 1, (height, width, 3)), sigma=(6, 6, 0))
    pixels = 128 + 60 * smooth / smooth.std() + rng.normal(0, noise, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def photo_with_sky(seed: int) -> np.ndarray:
    """A smooth bright gradient above (sky), texture below, a dark flat band: the ghost map's usual traps."""
    image = textured(seed).astype(np.float32)
    rows = np.linspace(0, 1, HEIGHT // 2, dtype=np.float32)[:, None, None]
    image[: HEIGHT // 2] = (
        200 + 40 * rows + np.random.default_rng(seed).normal(0, 1.0, image[: HEIGHT // 2].shape)
    )
    image[200:224] = 12
    return np.clip(image, 0, 255).astype(np.uint8)


def saved(rgb: np.ndarray, quality: int, subsampling: int = 2) -> tuple[np.ndarray, list[int]]:
    """The image through a baseline JPEG at `quality` (4:2:0 unless told), and its luminance table."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB")).copy(), list(decoded.quantization[0])


def box_mask(box: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[box] = True
    return mask


def pasted_then_resaved(first: int, last: int) -> tuple[np.ndarray, list[int]]:
    """A q`first` JPEG with a never-compressed patch pasted in BOX, saved again at q`last`."""
    forged = saved(textured(0), first)[0].copy()
    forged[BOX] = textured(1)[BOX]
    return saved(forged, last)


def test_block_dct_matches_the_lattice_of_a_decoded_jpeg():
    decoded, table = saved(textured(3), 75)
    coefficients = block_dct(luminance(decoded))
    steps = np.array(table).reshape(8, 8)
    residual = np.abs(coefficients - steps * np.rint(coefficients / steps))[~clipped_blocks(decoded)]
    assert np.quantile(residual[:, :3, :3], 0.99) < 1.0  # rounding noise only
    assert lattice_step(coefficients[..., 0, 1][~clipped_blocks(decoded)]) == steps[0, 1]


@pytest.mark.parametrize("given", [False, True], ids=["estimated-table", "file-table"])
def test_adq_flags_a_patch_that_missed_the_first_compression(given):
    image, table = pasted_then_resaved(70, 90)
    result = adq(image, quantization=table if given else None)
    truth = box_mask(BOX)
    assert result.map.shape == truth.shape and result.map.dtype == np.float32
    assert result.map[truth].mean() > 0.7 and result.map[~truth].mean() < 0.15
    assert localization_metrics(result.map, truth).f1 > 0.8
    region = result.region
    assert region is not None and result.score > 0.9
    assert 80 <= region.left <= 104 and 248 <= region.right <= 272
    assert 48 <= region.top <= 72 and 184 <= region.bottom <= 208
    assert result.data["table_source"] == ("given" if given else "estimated")
    assert result.data["gain_per_block"] > 1.0
    assert "bears only the last compression" in result.reading


def test_adq_is_silent_on_a_jpeg_saved_once_and_on_a_never_compressed_image():
    for image in (saved(textured(2), 90)[0], saved(photo_with_sky(2), 75)[0], textured(2)):
        result = adq(image)
        assert result.region is None and result.score == 0.0 and not result.map.any()
        assert result.reading.startswith("The image shows no")


def test_adq_rejects_a_table_that_is_not_64_steps():
    image, _ = saved(textured(0), 90)
    with pytest.raises(LocalizationInputError, match="64 positive steps"):
        adq(image, quantization=[8] * 63)


def test_grid_finds_a_patch_pasted_off_the_grid():
    forged = saved(textured(0), 80)[0].copy()
    # Taken from another JPEG at (64, 96) and pasted at (67, 101): its grid is now at origin (3, 5).
    forged[SHIFTED_BOX] = saved(textured(1), 75)[0][64:160, 96:224]
    truth = box_mask(SHIFTED_BOX)
    for last in (None, 100):  # kept losslessly, or re-saved at quality 100
        image = forged if last is None else saved(forged, last)[0]
        result = jpeg_grid(image)
        assert result.data["main_grid"] == [0, 0]
        assert result.region is not None
        found = result.data["regions"][0]
        assert found["origin"] == [3, 5] and found["log10_nfa"] < -10
        assert result.map[truth].mean() > 0.8 and result.map[~truth].mean() < 0.2
        assert localization_metrics(result.map, truth).f1 > 0.8
        assert "JPEG grid at origin 3, 5" in result.reading


def test_grid_gives_no_region_on_untouched_images():
    for seed in (0, 5):
        photo = photo_with_sky(seed)
        jpeg = saved(photo, 85)[0]
        cropped = saved(photo, 85)[0][3:, 5:]  # a cropped JPEG: one grid, just not at (0, 0)
        results = {
            name: jpeg_grid(image) for name, image in (("jpeg", jpeg), ("png", photo), ("cropped", cropped))
        }
        for result in results.values():
            assert result.region is None and result.data["regions"] == []
            assert result.score == 0.0 and result.map.max() < 0.5
        assert results["jpeg"].data["main_grid"] == [0, 0]
        assert (
            results["cropped"].data["main_grid"] == [5, 3] and results["cropped"].data["main_log10_nfa"] < -10
        )


def test_ghost_gives_no_region_on_genuine_single_jpegs():
    for seed in (0, 1, 2):
        for quality in (75, 90):
            result = jpeg_ghost(saved(photo_with_sky(seed), quality, subsampling=0)[0])
            assert result.region is None and result.map.max() < 0.5
            assert "No region shows a JPEG ghost" in result.reading


def test_ghost_still_finds_a_region_saved_at_a_lower_quality():
    # 4:4:4 throughout: the ghost map re-saves without chroma subsampling (with 4:2:0 it misses this one).
    forged = saved(textured(0), 90, subsampling=0)[0].copy()
    forged[BOX] = saved(textured(1), 60, subsampling=0)[0][BOX]
    result = jpeg_ghost(saved(forged, 90, subsampling=0)[0])
    assert result.region is not None and result.data["ghost_quality"] in (55, 60, 65)
    assert result.data["region_z"] >= 5
    assert localization_metrics(result.map, box_mask(BOX)).f1 > 0.8


@pytest.mark.parametrize("mapper", [adq, jpeg_grid, jpeg_ghost], ids=["adq", "grid", "ghost"])
def test_the_jpeg_maps_refuse_what_they_cannot_read(mapper):
    with pytest.raises(LocalizationInputError, match="height x width x 3 array of 8-bit values"):
        mapper(np.zeros((80, 80, 3), np.float32))
    with pytest.raises(LocalizationInputError, match="height x width x 3"):
        mapper(np.zeros((80, 80, 4), np.uint8))
    with pytest.raises(LocalizationInputError, match="at least 64 x 64 pixels; this one is 40 x 30"):
        mapper(np.zeros((30, 40, 3), np.uint8))
