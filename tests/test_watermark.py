"""Stable Diffusion invisible-watermark evidence and the vectorised dwtDct decoder."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from imwatermark import WatermarkDecoder, WatermarkEncoder
from PIL import Image
from scipy.stats import binom

from pixelsleuth.evidence import load_source
from pixelsleuth.evidence.watermark import (
    BLOCK_PIXELS,
    DETECTION_ALPHA,
    SCREEN_VOTES_PER_BIT,
    binomial_tail,
    bits_from_votes,
    decode_dwtdct_bits,
    dwtdct_votes,
    known_watermarks,
    match_known_watermarks,
    screening_band,
    watermark_cannot_survive,
    watermark_evidence,
)
from pixelsleuth.intake.image import JpegInfo, LoadedImage

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MESSAGES = {message.key: message for message in known_watermarks()}


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random colour field plus mild noise: natural-ish content, RGB uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (height // 32 + 2, width // 32 + 2, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0, 4, (height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def embed(rgb: np.ndarray, key: str, channel_order: str = "bgr") -> np.ndarray:
    """Mark an RGB image the way the reference scripts ("bgr") or diffusers SDXL ("rgb") do."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", list(MESSAGES[key].bits))
    if channel_order == "bgr":
        return np.ascontiguousarray(
            encoder.encode(np.ascontiguousarray(rgb[:, :, ::-1]), "dwtDct")[:, :, ::-1]
        )
    return np.ascontiguousarray(encoder.encode(rgb.copy(), "dwtDct"))


def loaded(rgb: np.ndarray, fmt: str = "PNG", data: bytes | None = None, **fields) -> LoadedImage:
    if data is None:
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, fmt, **({"compress_level": 1} if fmt == "PNG" else {}))
        data = buffer.getvalue()
    return LoadedImage(
        path=None,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        rgb=rgb,
        original_mode=fields.pop("original_mode", "RGB"),
        bit_depth=8,
        **fields,
    )


@pytest.fixture(scope="module")
def marked() -> dict[str, np.ndarray]:
    """One marked image per case; the reference encoder is slow, so each is made once."""
    return {
        "sd-v1": embed(texture(512, 512, 1), "sd-v1"),
        "sd-v2": embed(texture(512, 512, 2), "sd-v2"),
        "sdxl": embed(texture(512, 512, 3), "sdxl"),
        "sdxl-diffusers": embed(texture(512, 512, 4), "sdxl", channel_order="rgb"),
        "sdxl-odd": embed(texture(389, 517, 5), "sdxl"),
    }


def reference_bits(bgr: np.ndarray, length: int) -> np.ndarray:
    return np.asarray(
        WatermarkDecoder("bits", length).decode(np.ascontiguousarray(bgr), "dwtDct"), dtype=bool
    )


# --- the vectorised decoder equals imwatermark's --------------------------------------------------


def equality_images() -> list[np.ndarray]:
    posterized = texture(480, 640, 11) // 32 * 32  # many ties between block entries
    nines = texture(300, 700, 12) // 9 * 9  # many entries exactly on a decision boundary
    flats = [
        np.full((264, 264, 3), colour, np.uint8) for colour in [(126, 126, 126), (0, 0, 255), (9, 18, 27)]
    ]
    return [texture(512, 512, 10), texture(389, 517, 13), texture(257, 300, 14), posterized, nines, *flats]


@pytest.mark.parametrize("image", equality_images(), ids=lambda image: f"{image.shape[0]}x{image.shape[1]}")
def test_decoder_matches_imwatermark_bit_for_bit(image: np.ndarray) -> None:
    for length in (32, 48, 136):
        assert np.array_equal(decode_dwtdct_bits(image, length), reference_bits(image, length))


@pytest.mark.parametrize(
    "image", equality_images()[:5], ids=lambda image: f"{image.shape[0]}x{image.shape[1]}"
)
def test_every_block_vote_matches_imwatermark(image: np.ndarray) -> None:
    # With one bit per block, the reference decoder returns each block's vote unaveraged.
    votes = dwtdct_votes(image)
    assert votes.size == (image.shape[0] // 8) * (image.shape[1] // 8)
    assert np.array_equal(votes, reference_bits(image, votes.size))
    assert np.array_equal(dwtdct_votes(image[:, :, ::-1].copy(), channels="rgb"), votes)


def test_decoder_matches_on_marked_images(marked: dict[str, np.ndarray]) -> None:
    for name, rgb in marked.items():
        bgr = rgb[:, :, ::-1]
        for length in (32, 48, 136):
            assert np.array_equal(
                decode_dwtdct_bits(np.ascontiguousarray(bgr), length), reference_bits(bgr, length)
            ), (
                name,
                length,
            )


def test_bits_without_votes_read_as_zero() -> None:
    bits = bits_from_votes(np.ones(5, dtype=bool), 8)
    assert bits.tolist() == [True] * 5 + [False] * 3


def test_dwtdct_votes_rejects_non_images() -> None:
    with pytest.raises(ValueError):
        dwtdct_votes(np.zeros((64, 64), np.uint8))
    assert dwtdct_votes(np.zeros((4, 64, 3), np.uint8)).size == 0


# --- known messages -------------------------------------------------------------------------------


def test_known_messages_are_the_published_ones() -> None:
    def text_bits(text: str) -> tuple[int, ...]:
        return tuple(int(bit) for bit in np.unpackbits(np.frombuffer(text.encode(), np.uint8)))

    assert MESSAGES["sd-v1"].bits == text_bits("StableDiffusionV1")
    assert MESSAGES["sd-v2"].bits == text_bits("SDV2")
    assert MESSAGES["sdxl"].bits == tuple(int(bit) for bit in format(0xB3EC907BB19E, "048b"))
    assert [MESSAGES[key].length for key in ("sd-v1", "sd-v2", "sdxl")] == [136, 32, 48]
    assert all(message.sources for message in MESSAGES.values())


@pytest.mark.parametrize(("matches", "length"), [(0, 48), (24, 48), (41, 48), (48, 48), (30, 32), (100, 136)])
def test_binomial_tail_equals_scipy(matches: int, length: int) -> None:
    assert binomial_tail(matches, length) == pytest.approx(binom.sf(matches - 1, length, 0.5), rel=1e-9)


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "key", "channel_order"),
    [
        ("sd-v1", "sd-v1", "bgr"),
        ("sd-v2", "sd-v2", "bgr"),
        ("sdxl", "sdxl", "bgr"),
        ("sdxl-diffusers", "sdxl", "rgb"),
        ("sdxl-odd", "sdxl", "bgr"),
    ],
)
def test_marked_images_are_detected(
    marked: dict[str, np.ndarray], case: str, key: str, channel_order: str
) -> None:
    (evidence,) = watermark_evidence(loaded(marked[case]))
    best = evidence.data["best"]
    assert evidence.points_to == "ai-generated"
    assert evidence.data["detected"] is True
    assert best["key"] == key and best["channel_order"] == channel_order
    assert best["accuracy"] >= 0.85
    assert evidence.data["corrected_p_value"] < DETECTION_ALPHA
    assert 0.6 <= evidence.strength <= 0.95
    assert evidence.finding.startswith("Stable Diffusion invisible watermark found")
    assert f"of {MESSAGES[key].length} bits match" in evidence.finding
    json.dumps(evidence.to_dict())


def test_overwhelming_match_is_decisive(marked: dict[str, np.ndarray]) -> None:
    (evidence,) = watermark_evidence(loaded(marked["sd-v1"]))
    assert evidence.data["corrected_p_value"] < 1e-9
    assert evidence.strength == pytest.approx(0.95)


@pytest.mark.parametrize("seed", [20, 21, 22, 23])
def test_unmarked_images_are_not_detected(seed: int) -> None:
    (evidence,) = watermark_evidence(loaded(texture(512, 640, seed)))
    assert evidence.points_to == "none" and evidence.strength == 0.0
    assert evidence.data["checked"] is True and evidence.data["detected"] is False
    assert 0.0 < evidence.data["best"]["p_value"] <= 1.0
    assert evidence.data["n_hypotheses"] == 6
    assert "proves nothing" in evidence.detail
    json.dumps(evidence.to_dict())


def test_match_scores_every_message_and_channel_order() -> None:
    matches = match_known_watermarks(texture(512, 512, 30))
    assert {(match.key, match.channel_order) for match in matches} == {
        (key, order) for key in MESSAGES for order in ("bgr", "rgb")
    }
    assert [match.p_value for match in matches] == sorted(match.p_value for match in matches)


# --- images that cannot carry the mark ------------------------------------------------------------


def test_small_image_is_not_checked() -> None:
    (evidence,) = watermark_evidence(loaded(texture(200, 200, 40)))
    assert evidence.points_to == "none"
    assert evidence.data["checked"] is False
    assert "too small" in evidence.finding


def test_grayscale_image_is_not_checked() -> None:
    gray = np.repeat(texture(300, 300, 41)[:, :, :1], 3, axis=2)
    (evidence,) = watermark_evidence(loaded(gray, original_mode="L"))
    assert evidence.data["checked"] is False
    assert "grayscale" in evidence.data["reason"]


def ijg_tables(quality: int) -> dict[int, tuple[int, ...]]:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as image:
        return {key: tuple(values) for key, values in image.quantization.items()}


@pytest.mark.parametrize(
    ("subsampling", "quality", "skipped"),
    [
        ("4:2:0", 75, True),
        ("4:2:0", 92, True),
        ("4:2:0", 98, False),
        ("4:2:2", 80, True),
        ("4:4:4", 75, False),
    ],
)
def test_jpeg_settings_that_erase_the_mark(subsampling: str, quality: int, skipped: bool) -> None:
    info = JpegInfo(
        quantization_tables=ijg_tables(quality), subsampling=subsampling, progressive=False, components=3
    )
    image = loaded(texture(300, 300, 42), fmt="JPEG", jpeg=info)
    assert (watermark_cannot_survive(image) is not None) == skipped
    (evidence,) = watermark_evidence(image)
    assert evidence.data["checked"] is (not skipped)


def test_odd_input_never_raises() -> None:
    image = loaded(texture(300, 300, 43))
    image.rgb = image.rgb.astype(np.float32)
    (evidence,) = watermark_evidence(image)
    assert evidence.points_to == "none" and evidence.data["checked"] is False


def test_registered_under_watermark() -> None:
    assert load_source("watermark") is watermark_evidence


# --- real files, when the shared data set is present -----------------------------------------------


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data set not present")
def test_shared_data_stable_diffusion_v1_marks_and_clean_photos() -> None:
    fakes = sorted((SHARED_DATA / "dev" / "fake" / "stable-diffusion-v1").glob("*.png"))[:8]
    reals = sorted((SHARED_DATA / "dev" / "real" / "kodak24").glob("*.png"))[:5]
    if not fakes or not reals:
        pytest.skip("expected folders missing from the shared data set")

    def evidence_for(path: Path):
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        return watermark_evidence(loaded(rgb, data=data))[0]

    detected = [evidence_for(path) for path in fakes]
    assert any(item.points_to == "ai-generated" for item in detected)
    assert all(item.data["best"]["key"] == "sd-v1" for item in detected if item.points_to == "ai-generated")
    assert all(evidence_for(path).points_to == "none" for path in reals)


# --- screening large images on a band of block rows ----------------------------------------------


def test_band_votes_equal_the_whole_image_votes_of_those_blocks() -> None:
    image = texture(864, 1152, seed=40)
    full = dwtdct_votes(image)
    cols = 1152 // BLOCK_PIXELS
    first, stop = 30, 52
    band = dwtdct_votes(image[first * BLOCK_PIXELS : stop * BLOCK_PIXELS])
    np.testing.assert_array_equal(band, full[first * cols : stop * cols])
    for length in (48, 136):
        grouped = bits_from_votes(band, length, first_block=first * cols)
        bit_of_block = (first * cols + np.arange(band.size)) % length
        expected = np.array([band[bit_of_block == bit].mean() * 255 > 127 for bit in range(length)])
        np.testing.assert_array_equal(grouped, expected)


def test_screening_band_only_for_large_images() -> None:
    assert screening_band(512, 512) is None
    first, stop = screening_band(864, 1152)
    assert 0 < first < stop < 864 // BLOCK_PIXELS
    assert (stop - first) * (1152 // BLOCK_PIXELS) >= SCREEN_VOTES_PER_BIT * 136


@pytest.mark.parametrize(("key", "order"), [("sd-v1", "bgr"), ("sdxl", "rgb")])
def test_large_marked_image_passes_the_screen_and_is_detected(key: str, order: str) -> None:
    rgb = embed(texture(864, 1152, seed=41), key, order)
    evidence = watermark_evidence(loaded(rgb))[0]
    assert evidence.points_to == "ai-generated"
    assert evidence.data["screened_only"] is False
    assert evidence.data["blocks_examined"] == (864 // 8) * (1152 // 8)
    assert evidence.data["best"]["key"] == key


def test_large_unmarked_image_is_settled_by_the_screen() -> None:
    evidence = watermark_evidence(loaded(texture(864, 1152, seed=42)))[0]
    assert evidence.points_to == "none"
    assert evidence.data["screened_only"] is True
    assert evidence.data["blocks_examined"] < evidence.data["n_blocks"] / 4
