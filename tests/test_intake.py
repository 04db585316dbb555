"""Intake: every supported format loads right, metadata is kept, and every bad input gets a typed error."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps, JpegImagePlugin, PngImagePlugin

from imagegen import (
    animated_gif,
    asymmetric_rgb,
    encode,
    exif_block,
    fixture_set,
    marked_corner,
    photo_like_rgb,
    png_declaring_size,
    tiff_bytes,
    write,
)
from pixelsleuth.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    FileReadError,
    FileTooLargeError,
    IntakeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
    UsageError,
)
from pixelsleuth.intake import IntakeLimits, JpegInfo, LoadedImage, load_image, loader
from pixelsleuth.intake.jpeg import scan_jpeg_layout, subsampling_name
from pixelsleuth.intake.loader import apply_orientation, exif_orientation
from pixelsleuth.intake.sniff import cut_signature, extension_format, sniff

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# ITU-T T.81 Annex K.1: the example luminance and chrominance tables, natural (row-major) order.
# libjpeg's quality 50 uses them unscaled.
ANNEX_K_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
ANNEX_K_CHROMA = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)


def assert_valid_rgb(image: LoadedImage, height: int, width: int) -> None:
    assert image.rgb.shape == (height, width, 3)
    assert image.rgb.dtype == np.uint8
    assert image.rgb.flags["C_CONTIGUOUS"]
    assert not image.rgb.flags.writeable
    json.dumps(image.info)  # must be JSON-serialisable as is


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_name", ["PNG", "BMP", "TIFF"])
def test_lossless_formats_round_trip_exactly(format_name: str) -> None:
    rgb = photo_like_rgb(40, 24)
    image = load_image(encode(rgb, format_name))
    assert image.format == format_name
    assert image.original_mode == "RGB" and image.bit_depth == 8
    assert_valid_rgb(image, 24, 40)
    assert np.array_equal(image.rgb, rgb)


def test_lossless_webp_round_trips_exactly() -> None:
    rgb = photo_like_rgb(40, 24)
    image = load_image(encode(rgb, "WEBP", lossless=True))
    assert image.format == "WEBP"
    assert np.array_equal(image.rgb, rgb)


def test_jpeg_decodes_like_pillow() -> None:
    data = encode(photo_like_rgb(64, 48), "JPEG", quality=90)
    image = load_image(data)
    assert image.format == "JPEG" and image.original_mode == "RGB" and image.bit_depth == 8
    assert_valid_rgb(image, 48, 64)
    assert np.array_equal(image.rgb, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_sixteen_bit_grey_tiff_maps_to_high_byte() -> None:
    gradient = np.linspace(0, 65535, 32 * 256).astype(np.uint16).reshape(32, 256)
    image = load_image(tiff_bytes(gradient))
    assert image.original_mode == "I;16" and image.bit_depth == 16
    assert image.info["depth_reduction"] == "high_byte"
    expected = (gradient >> 8).astype(np.uint8)
    assert np.array_equal(image.rgb[..., 0], expected)
    assert np.array_equal(image.rgb[..., 2], expected)
    assert image.rgb[0, 0, 0] == 0 and image.rgb[-1, -1, 0] == 255  # scaled, not clipped


def test_sixteen_bit_grey_png_is_scaled() -> None:
    gradient = np.linspace(0, 65535, 16 * 64).astype(np.uint16).reshape(16, 64)
    image = load_image(encode(Image.fromarray(gradient), "PNG"))
    assert image.original_mode == "I;16" and image.bit_depth == 16
    assert np.array_equal(image.rgb[..., 1], (gradient >> 8).astype(np.uint8))


def test_sixteen_bit_rgb_tiff_keeps_channels_and_reports_depth() -> None:
    pytest.importorskip("tifffile")
    ramp = np.linspace(0, 65535, 16 * 64).astype(np.uint16).reshape(16, 64)
    rgb16 = np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 30000)], axis=-1)
    image = load_image(tiff_bytes(rgb16))
    assert image.bit_depth == 16
    assert np.array_equal(image.rgb, (rgb16 >> 8).astype(np.uint8))


def test_float_tiff_in_unit_range_is_scaled() -> None:
    values = np.linspace(0.0, 1.0, 16 * 64, dtype=np.float32).reshape(16, 64)
    image = load_image(tiff_bytes(values))
    assert image.original_mode == "F" and image.bit_depth == 32
    assert image.info["float_scaling"] == "scaled_0_1"
    assert image.rgb[0, 0, 0] == 0 and image.rgb[-1, -1, 0] == 255
    assert abs(int(image.rgb[8, 32, 0]) - round(float(values[8, 32]) * 255)) <= 1


def test_float_tiff_outside_unit_range_is_clipped() -> None:
    values = np.linspace(-50.0, 400.0, 16 * 64, dtype=np.float32).reshape(16, 64)
    image = load_image(tiff_bytes(values))
    assert image.info["float_scaling"] == "clipped_0_255"
    assert image.rgb[0, 0, 0] == 0 and image.rgb[-1, -1, 0] == 255
    middle = float(values[8, 10])
    assert 0 < middle < 255 and abs(int(image.rgb[8, 10, 0]) - middle) <= 1


def test_cmyk_jpeg_converts_to_rgb() -> None:
    image = load_image(encode(Image.new("CMYK", (24, 16), (0, 255, 0, 0)), "JPEG", quality=95))
    assert image.original_mode == "CMYK"
    assert image.jpeg is not None and image.jpeg.components == 4
    red, green, blue = (int(value) for value in image.rgb[8, 12])
    assert red > 240 and green < 15 and blue > 240  # magenta: Adobe inversion handled exactly once


def test_palette_png_with_transparency_drops_alpha_and_keeps_colours() -> None:
    palette_image = Image.new("P", (20, 10), 1)
    palette_image.putpalette([0, 0, 0, 200, 30, 40])
    palette_image.paste(0, (0, 0, 10, 10))
    image = load_image(encode(palette_image, "PNG", transparency=0))
    assert image.original_mode == "P" and image.info["had_alpha"] is True
    assert tuple(image.rgb[5, 15]) == (200, 30, 40)
    assert tuple(image.rgb[5, 5]) == (0, 0, 0)  # transparent index keeps its colour, no white matte


def test_palette_with_byte_transparency_loads_under_warnings_as_errors() -> None:
    quantized = Image.fromarray(photo_like_rgb(32, 16)).convert("RGBA").quantize(16)
    data = encode(quantized, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's convert("RGB") would warn here
        image = load_image(data)
    assert image.info["had_alpha"] is True
    expected = np.asarray(quantized.getpalette("RGB"), np.uint8).reshape(-1, 3)[np.asarray(quantized)]
    assert np.array_equal(image.rgb, expected)


def test_rgba_png_drops_alpha_without_compositing() -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = 10, 120, 230  # alpha 0 everywhere
    image = load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert image.original_mode == "RGBA" and image.info["had_alpha"] is True
    assert np.all(image.rgb == (10, 120, 230))


def test_grey_with_alpha_png() -> None:
    image = load_image(encode(Image.new("LA", (12, 8), (77, 9)), "PNG"))
    assert image.original_mode == "LA" and image.info["had_alpha"] is True
    assert np.all(image.rgb == 77)


def test_bilevel_png_maps_to_black_and_white() -> None:
    bilevel = Image.new("1", (16, 8), 0)
    bilevel.paste(1, (8, 0, 16, 8))
    image = load_image(encode(bilevel, "PNG"))
    assert image.original_mode == "1" and image.bit_depth == 1
    assert np.all(image.rgb[:, :8] == 0) and np.all(image.rgb[:, 8:] == 255)


def test_ycbcr_tiff_converts() -> None:
    rgb = photo_like_rgb(16, 8)
    ycbcr = Image.fromarray(rgb).convert("YCbCr")
    image = load_image(encode(ycbcr, "TIFF"))
    assert image.original_mode == "YCbCr"
    assert np.abs(image.rgb.astype(int) - np.asarray(ycbcr.convert("RGB")).astype(int)).max() == 0


def test_rgb_fast_path_and_its_fallback_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rgba = np.dstack([photo_like_rgb(30, 20), np.full((20, 30), 7, np.uint8)])
    for image in (Image.fromarray(photo_like_rgb(30, 20)), Image.fromarray(rgba, "RGBA")):
        fast = loader._rgb_array(image)
        monkeypatch.setattr(loader, "pyarrow", None)
        slow = loader._rgb_array(image)
        monkeypatch.undo()
        assert fast.shape == slow.shape == (20, 30, 3)
        assert np.array_equal(fast, slow) and np.array_equal(fast, np.asarray(image)[..., :3])


def test_fixture_set_loads_with_matching_extensions(tmp_path: Path) -> None:
    for name, path in fixture_set(tmp_path).items():
        image = load_image(path)
        assert "extension_mismatch" not in image.info, name
        assert image.rgb.size > 0


def test_bmp_loads() -> None:
    image = load_image(encode(photo_like_rgb(30, 20), "BMP"))
    assert image.format == "BMP"
    assert_valid_rgb(image, 20, 30)


def test_animated_gif_gives_first_frame_and_frame_count() -> None:
    image = load_image(animated_gif([(255, 0, 0), (0, 255, 0), (0, 0, 255)], size=(24, 16)))
    assert image.format == "GIF" and image.original_mode == "P"
    assert image.animated is True and image.n_frames == 3
    assert_valid_rgb(image, 16, 24)
    assert np.all(image.rgb == (255, 0, 0))


def test_still_gif_is_not_animated() -> None:
    image = load_image(encode(Image.new("RGB", (8, 8), (0, 0, 255)), "GIF"))
    assert image.animated is False and image.n_frames == 1


@pytest.mark.parametrize("format_name", ["PNG", "WEBP"])
def test_animated_png_and_webp_are_flagged(format_name: str) -> None:
    first, second = Image.new("RGB", (16, 8), (255, 0, 0)), Image.new("RGB", (16, 8), (0, 0, 255))
    image = load_image(encode(first, format_name, save_all=True, append_images=[second], lossless=True))
    assert image.animated is True and image.n_frames == 2
    assert np.all(image.rgb == (255, 0, 0))


def test_heic_loads() -> None:
    rgb = photo_like_rgb(64, 48)
    image = load_image(encode(rgb, "HEIF", quality=90))
    assert image.format == "HEIF" and image.bit_depth == 8
    assert_valid_rgb(image, 48, 64)
    assert np.abs(image.rgb.astype(int) - rgb.astype(int)).mean() < 8


def test_avif_loads() -> None:
    rgb = photo_like_rgb(64, 48)
    image = load_image(encode(rgb, "AVIF", quality=90))
    assert image.format == "AVIF"
    assert_valid_rgb(image, 48, 64)
    assert np.abs(image.rgb.astype(int) - rgb.astype(int)).mean() < 8


def test_multi_picture_jpeg_is_a_jpeg() -> None:
    rgb = photo_like_rgb(32, 16)
    image = load_image(encode(rgb, "MPO", save_all=True, append_images=[Image.fromarray(rgb)]))
    assert image.format == "JPEG" and image.info["multi_picture"] is True
    assert image.n_frames == 2 and image.animated is False
    assert image.jpeg is not None


# --- orientation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(1, "top-left"), (3, "bottom-right"), (6, "top-right"), (8, "bottom-left")],
)
def test_jpeg_exif_orientation_rotates(orientation: int, corner: str) -> None:
    stored = asymmetric_rgb(48, 32)
    image = load_image(encode(stored, "JPEG", quality=95, exif=exif_block(orientation)))
    assert image.orientation == orientation
    expected_shape = (48, 32, 3) if orientation in (6, 8) else (32, 48, 3)
    assert image.rgb.shape == expected_shape
    assert marked_corner(image.rgb) == corner
    assert image.rgb.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(orientation: int) -> None:
    stored = photo_like_rgb(13, 7)
    data = encode(stored, "PNG", exif=exif_block(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    image = load_image(data)
    assert image.orientation == orientation
    assert np.array_equal(image.rgb, expected)


@pytest.mark.parametrize("format_name", ["TIFF", "AVIF", "HEIF"])
def test_orientation_applied_exactly_once(format_name: str) -> None:
    # Pillow rotates TIFFs itself, libheif HEIFs; AVIF keeps it as container transforms that Pillow
    # reports as EXIF orientation: each must end up rotated once, never twice.
    image = load_image(encode(asymmetric_rgb(48, 32), format_name, exif=exif_block(6)))
    assert image.orientation == 6
    assert image.rgb.shape == (48, 32, 3)
    assert marked_corner(image.rgb) == "top-right"


def test_grey_image_is_oriented_then_expanded() -> None:
    grey = asymmetric_rgb(20, 12)[..., 0]
    image = load_image(encode(Image.fromarray(grey, "L"), "PNG", exif=exif_block(6)))
    assert image.rgb.shape == (20, 12, 3)
    assert np.array_equal(image.rgb[..., 0], np.rot90(grey, -1))


def test_apply_orientation_on_grey_and_colour() -> None:
    pixels = photo_like_rgb(5, 3)
    assert np.array_equal(apply_orientation(pixels, 6), np.rot90(pixels, -1))
    assert np.array_equal(apply_orientation(pixels[..., 0].copy(), 8), np.rot90(pixels[..., 0], 1))
    assert apply_orientation(pixels, 1) is pixels


def test_exif_orientation_parser() -> None:
    assert exif_orientation(exif_block(6)) == 6
    assert exif_block(3).startswith(b"Exif\x00\x00")
    assert exif_orientation(exif_block(3)[6:]) == 3  # bare TIFF structure, as WebP stores it
    little_endian = b"II*\x00\x08\x00\x00\x00" + bytes.fromhex("0100120103000100000008000000")
    assert exif_orientation(little_endian) == 8
    assert exif_orientation(exif_block(None, make="Canon")) is None
    assert exif_orientation(b"garbage") is None
    assert exif_orientation(b"MM\x00*\xff\xff\xff\xff") is None
    assert exif_orientation(None) is None


# --- JPEG facts ----------------------------------------------------------------------------------


def test_quantization_tables_are_in_natural_order() -> None:
    image = load_image(encode(photo_like_rgb(), "JPEG", quality=50))
    assert image.jpeg is not None
    assert image.jpeg.quantization_tables[0] == tuple(value for row in ANNEX_K_LUMA for value in row)
    assert image.jpeg.quantization_tables[1] == tuple(value for row in ANNEX_K_CHROMA for value in row)


def test_quantization_tables_match_the_ones_written() -> None:
    luma = [1 + (index * 7) % 50 for index in range(64)]  # deliberately asymmetric
    chroma = [2 + (index * 3) % 90 for index in range(64)]
    image = load_image(encode(photo_like_rgb(), "JPEG", qtables=[luma, chroma]))
    assert image.jpeg is not None
    assert image.jpeg.quantization_tables == {0: tuple(luma), 1: tuple(chroma)}


@pytest.mark.parametrize(("pillow_subsampling", "name"), [(0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")])
def test_subsampling_and_flags(pillow_subsampling: int, name: str) -> None:
    data = encode(photo_like_rgb(), "JPEG", quality=85, subsampling=pillow_subsampling)
    image = load_image(data)
    assert image.jpeg == JpegInfo(
        quantization_tables=image.jpeg.quantization_tables, subsampling=name, progressive=False, components=3
    )
    assert JpegImagePlugin.get_sampling(Image.open(io.BytesIO(data))) == pillow_subsampling


def test_progressive_and_grey_jpeg() -> None:
    progressive = load_image(encode(photo_like_rgb(), "JPEG", progressive=True))
    assert progressive.jpeg is not None and progressive.jpeg.progressive is True
    grey = load_image(encode(Image.fromarray(photo_like_rgb()[..., 1], "L"), "JPEG"))
    assert grey.jpeg is not None and grey.jpeg.subsampling == "gray" and grey.jpeg.components == 1
    assert grey.original_mode == "L"
    assert np.array_equal(grey.rgb[..., 0], grey.rgb[..., 2])


def test_subsampling_names() -> None:
    assert subsampling_name([(1, 2), (1, 1), (1, 1)]) == "4:4:0"
    assert subsampling_name([(4, 1), (1, 1), (1, 1)]) == "4:1:1"
    assert subsampling_name([(2, 2), (1, 1), (2, 1)]) == "other"
    assert subsampling_name([(3, 1), (2, 1), (2, 1)]) == "other"


def test_jpeg_layout_finds_the_scan_after_app_segments() -> None:
    data = encode(photo_like_rgb(), "JPEG", exif=exif_block(1, make="Canon"), comment=b"note")
    layout = scan_jpeg_layout(data)
    assert data[layout.sos_offset : layout.sos_offset + 2] == b"\xff\xda"
    assert layout.sof_marker == 0xC0 and layout.precision == 8 and layout.problem is None


# --- metadata ------------------------------------------------------------------------------------


def test_hash_bytes_and_path_are_recorded(tmp_path: Path) -> None:
    data = encode(photo_like_rgb(), "JPEG")
    path = write(tmp_path, "photo.jpg", data)
    from_path, from_bytes = load_image(path), load_image(data)
    assert from_path.sha256 == hashlib.sha256(data).hexdigest() == from_bytes.sha256
    assert from_path.data == data and from_path.path == str(path) and from_bytes.path is None
    assert np.array_equal(from_path.rgb, from_bytes.rgb)
    assert load_image(str(path)).sha256 == from_path.sha256
    assert load_image(bytearray(data)).sha256 == from_path.sha256


def test_png_text_chunks_and_xmp() -> None:
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("parameters", "a cat in a hat\nSteps: 20, Sampler: Euler a")
    chunks.add_text("Software", "ComfyUI", zip=True)
    chunks.add_itxt("Description", "crème brûlée", lang="fr")
    chunks.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    image = load_image(encode(photo_like_rgb(), "PNG", pnginfo=chunks))
    assert image.text_chunks == {
        "parameters": "a cat in a hat\nSteps: 20, Sampler: Euler a",
        "Software": "ComfyUI",
        "Description": "crème brûlée",
    }
    assert image.xmp is not None and image.xmp.startswith("<x:xmpmeta")
    assert "parameters" not in image.info  # moved to text_chunks, not duplicated


def test_jpeg_exif_xmp_icc_and_comments() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    data = encode(
        photo_like_rgb(),
        "JPEG",
        exif=exif_block(1, make="Canon", model="EOS 5D"),
        icc_profile=icc,
        xmp=xmp,
        comment="made with \u00e9\u00e8".encode(),
    )
    image = load_image(data)
    assert image.exif is not None and b"Canon" in image.exif
    assert image.icc_profile == icc
    assert image.xmp == xmp.decode()
    assert image.text_chunks == {"comment": "made with éè"}


def test_undecodable_comment_bytes_are_replaced_not_fatal() -> None:
    image = load_image(encode(photo_like_rgb(), "JPEG", comment=b"bad \xff\xfe bytes"))
    assert image.text_chunks["comment"].startswith("bad ") and "\ufffd" in image.text_chunks["comment"]


def test_gif_comment_and_webp_exif() -> None:
    gif = load_image(animated_gif([(1, 2, 3), (4, 5, 6)], comment=b"hello from gif"))
    assert gif.text_chunks == {"comment": "hello from gif"}
    webp = load_image(encode(photo_like_rgb(), "WEBP", exif=exif_block(1, software="Photoshop")))
    assert webp.exif is not None and b"Photoshop" in webp.exif


def test_info_is_json_friendly_for_every_format() -> None:
    samples = [
        encode(photo_like_rgb(), "JPEG", exif=exif_block(1, make="X"), progressive=True),
        encode(photo_like_rgb(), "PNG"),
        encode(photo_like_rgb(), "TIFF", compression="tiff_lzw"),
        encode(photo_like_rgb(), "BMP"),
        encode(photo_like_rgb(), "WEBP"),
        encode(photo_like_rgb(), "HEIF"),
        encode(photo_like_rgb(), "AVIF"),
        animated_gif([(1, 2, 3), (4, 5, 6)]),
    ]
    for data in samples:
        info = load_image(data).info
        assert json.loads(json.dumps(info)) == info


# --- failures ------------------------------------------------------------------------------------


def test_truncated_jpeg() -> None:
    data = encode(photo_like_rgb(200, 150), "JPEG", quality=90)
    cut = len(data) // 2
    with pytest.raises(TruncatedImageError) as caught:
        load_image(data[:cut])
    assert caught.value.message == (
        f"truncated JPEG: the data ends at byte {cut:,} without an end-of-image marker".replace(",", " ")
    )
    assert caught.value.type == "truncated_image"


def test_truncated_jpeg_header() -> None:
    data = encode(photo_like_rgb(), "JPEG", exif=exif_block(1, make="Canon"))
    with pytest.raises(TruncatedImageError, match="inside the header"):
        load_image(data[:40])


def test_truncation_is_found_even_with_an_end_marker_before_the_scan() -> None:
    # An FF D9 inside a comment (or an EXIF thumbnail) must not pass for the image's own EOI.
    data = encode(photo_like_rgb(200, 150), "JPEG", comment=b"\xff\xd9")
    with pytest.raises(TruncatedImageError, match="end-of-image"):
        load_image(data[: len(data) - 400])


def test_trailing_bytes_after_jpeg_end_are_fine() -> None:
    data = encode(photo_like_rgb(), "JPEG")
    image = load_image(data + b"\x00" * 100 + b"vendor trailer")
    assert image.rgb.shape == (64, 96, 3)


def test_truncated_png() -> None:
    data = encode(photo_like_rgb(200, 150), "PNG")
    expected = r"^truncated PNG: the data ends at byte [\d ]+ without an IEND chunk$"
    with pytest.raises(TruncatedImageError, match=expected):
        load_image(data[: len(data) - 20])


def test_png_missing_only_its_iend_is_still_truncated() -> None:
    data = encode(photo_like_rgb(), "PNG")
    with pytest.raises(TruncatedImageError, match="IEND"):
        load_image(data[:-12])


@pytest.mark.parametrize(
    ("format_name", "phrase"),
    [
        ("GIF", "GIF trailer"),
        ("WEBP", "RIFF header promises"),
        ("TIFF", "truncated TIFF"),
        ("BMP", "truncated BMP"),
    ],
)
def test_other_truncations(format_name: str, phrase: str) -> None:
    data = encode(photo_like_rgb(200, 150), format_name)
    with pytest.raises(TruncatedImageError, match=phrase):
        load_image(data[: len(data) * 2 // 3])


@pytest.mark.parametrize("format_name", ["HEIF", "AVIF"])
def test_truncated_heif_and_avif(format_name: str) -> None:
    data = encode(photo_like_rgb(64, 48), format_name)
    with pytest.raises(TruncatedImageError, match="box"):
        load_image(data[: len(data) - 100])


def test_a_few_bytes_of_a_signature_are_a_truncation() -> None:
    with pytest.raises(TruncatedImageError, match="WebP"):
        load_image(b"RIFF\x10\x00\x00\x00WE")
    with pytest.raises(TruncatedImageError, match="PNG"):
        load_image(b"\x89PN")
    assert cut_signature(b"hello") is None


def test_empty_file_and_bytes(tmp_path: Path) -> None:
    with pytest.raises(EmptyFileError, match=r"^empty file: 0 bytes$"):
        load_image(b"")
    with pytest.raises(EmptyFileError, match="0 bytes"):
        load_image(write(tmp_path, "empty.jpg", b""))


def test_wrong_extension_loads_and_is_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, "actually_png.jpg", encode(photo_like_rgb(), "PNG"))
    image = load_image(path)
    assert image.format == "PNG"
    mismatch = image.info["extension_mismatch"]
    assert "JPEG" in mismatch and "PNG" in mismatch and ".jpg" in mismatch
    right = load_image(write(tmp_path, "fine.png", encode(photo_like_rgb(), "PNG")))
    assert "extension_mismatch" not in right.info
    unknown = load_image(write(tmp_path, "upload.bin", encode(photo_like_rgb(), "PNG")))
    assert "extension_mismatch" not in unknown.info


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        (b"<!DOCTYPE html>\n<html><head><title>x</title></head><body></body></html>", "HTML"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 20 + b"notes.txt", "a ZIP archive"),
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 22 + b"word/document.xml", "Word document"),
        (b"Dear reader,\nthis is just a letter.\n", "plain text"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', "SVG vector images"),
        (b'<?xml version="1.0"?>\n<catalog><book id="1"/></catalog>', "XML"),
        (b'{"image": "not really"}', "JSON"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "GZIP"),
        (b"\x7fELF\x02\x01\x01\x00", "ELF"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "EXE"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "MP4/MOV"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "MP3"),
        (bytes(range(200, 256)) * 3, "unknown type"),
    ],
)
def test_non_images_are_named(data: bytes, phrase: str) -> None:
    with pytest.raises(NotAnImageError) as caught:
        load_image(data)
    assert caught.value.message.startswith("not an image")
    assert phrase in caught.value.message


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 20, "JPEG 2000"),
        (b"P6\n2 2\n255\n" + b"\x00" * 12, "Netpbm"),
        (b"8BPS\x00\x01" + b"\x00" * 30, "Photoshop"),
        (b"\x00\x00\x00\x1cftypcrx \x00\x00\x00\x01crx isom", "CR3"),
    ],
)
def test_known_but_unsupported_images(data: bytes, phrase: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=phrase):
        load_image(data)


def test_float_rgb_tiff_is_unsupported_not_a_crash() -> None:
    pytest.importorskip("tifffile")
    with pytest.raises(UnsupportedFormatError, match="TIFF"):
        load_image(tiff_bytes(np.zeros((4, 4, 3), np.float32)))


def test_decompression_bomb_is_refused_from_the_header() -> None:
    data = png_declaring_size(20000, 20000)
    assert len(data) < 200
    with pytest.raises(DecompressionBombError) as caught:
        load_image(data)
    assert caught.value.message == (
        "image is 20000 × 20000 = 400 megapixels, over the limit of 100 megapixels; "
        "raise --max-pixels to analyse it"
    )


def test_pixel_limit_is_per_call_and_inclusive() -> None:
    data = encode(photo_like_rgb(40, 25), "PNG")
    assert load_image(data, limits=IntakeLimits(max_pixels=1000)).rgb.shape == (25, 40, 3)
    with pytest.raises(DecompressionBombError) as caught:
        load_image(data, limits=IntakeLimits(max_pixels=999))
    assert caught.value.message == (
        "image is 40 × 25 = 1 000 pixels, over the limit of 999 pixels; raise --max-pixels to analyse it"
    )


@pytest.mark.parametrize(
    ("width", "height", "limit", "counts"),
    [
        (100_000, 100_000, 100_000_000, "10 000 megapixels, over the limit of 100 megapixels"),
        (4100, 3000, 12_000_000, "12.3 megapixels, over the limit of 12 megapixels"),
        (10_001, 10_000, 100_000_000, "100 010 000 pixels, over the limit of 100 000 000 pixels"),
    ],
)
def test_pixel_counts_are_written_for_people(width: int, height: int, limit: int, counts: str) -> None:
    with pytest.raises(DecompressionBombError) as caught:
        load_image(png_declaring_size(width, height), limits=IntakeLimits(max_pixels=limit))
    assert caught.value.message == (
        f"image is {width} × {height} = {counts}; raise --max-pixels to analyse it"
    )


def test_pillow_global_guards_do_not_interfere() -> None:
    assert Image.MAX_IMAGE_PIXELS is None  # our own per-call check replaces Pillow's global one
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_limits_are_thread_safe() -> None:
    data = encode(photo_like_rgb(40, 25), "PNG")
    outcomes: dict[str, object] = {}

    def run(name: str, limit: int) -> None:
        for _ in range(20):
            try:
                load_image(data, limits=IntakeLimits(max_pixels=limit))
                outcomes.setdefault(name, "loaded")
            except DecompressionBombError:
                outcomes.setdefault(name, "refused")

    threads = [
        threading.Thread(target=run, args=("small", 10)),
        threading.Thread(target=run, args=("big", 10**6)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {"small": "refused", "big": "loaded"}


def test_file_over_size_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "big.png", encode(photo_like_rgb(), "PNG"))
    with pytest.raises(FileTooLargeError, match=r"over the limit of 100 bytes; raise --max-file-mb"):
        load_image(path, limits=IntakeLimits(max_file_bytes=100))
    with pytest.raises(FileTooLargeError):
        load_image(path.read_bytes(), limits=IntakeLimits(max_file_bytes=100))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileReadError, match=r"cannot read .*nothing\.jpg: no such file"):
        load_image(tmp_path / "nothing.jpg")
    with pytest.raises(FileReadError, match="directory"):
        load_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_special_files_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    # Refused from its stat alone: opening a FIFO for reading would block until a writer appears.
    with pytest.raises(FileReadError, match="not a regular file"):
        load_image(fifo)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.jpg", encode(photo_like_rgb(), "JPEG"))
    path.chmod(0)
    with pytest.raises(FileReadError, match="permission denied"):
        load_image(path)


def test_wrong_source_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        load_image(12345)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        IntakeLimits(max_pixels=0)


_UNKNOWN = "corrupt PNG: the decoder could not make sense of the image data"
_HEADER = "corrupt PNG: the header is damaged"
_MEMORY = "PNG image needs more memory to decode than is available; lower its size or raise the limits"


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (ValueError("bad value"), _UNKNOWN),
        (
            OSError("broken data stream when reading image file"),
            "corrupt PNG: the compressed pixel data is damaged",
        ),
        (
            SyntaxError("not a PNG file"),
            "corrupt PNG: the data starts like a PNG file but its header is unreadable",
        ),
        (struct.error("unpack requires a buffer of 4 bytes"), _HEADER),
        (EOFError(), "truncated PNG: the data ends at byte {size} before the image is complete"),
        (IndexError("list index out of range"), _HEADER),
        (ZeroDivisionError("division by zero"), _UNKNOWN),
        (KeyError("I;99"), _HEADER),
        (TypeError("Missing dimensions"), "corrupt PNG: the image width or height is missing"),
        (RuntimeError("decoder failed"), _UNKNOWN),
        (MemoryError(), _MEMORY),
        (Image.DecompressionBombError("too big"), _MEMORY),
        (UserWarning("Corrupt EXIF data"), "corrupt PNG: its EXIF metadata is damaged"),
        (OSError("decoder error -2"), "corrupt PNG: the compressed pixel data is damaged"),
        (
            ValueError("Decompressed data too large for PngImagePlugin.MAX_TEXT_CHUNK"),
            "PNG image exceeds the decoder's safety limits: a compressed chunk expands to more than 1 MiB",
        ),
    ],
)
def test_any_decoder_exception_becomes_a_typed_error_in_our_words(
    monkeypatch: pytest.MonkeyPatch, raised: BaseException, message: str
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise raised

    data = encode(photo_like_rgb(), "PNG")
    monkeypatch.setattr(Image, "open", explode)
    with pytest.raises(IntakeError) as caught:
        load_image(data)
    assert caught.value.message == message.format(size=f"{len(data):,}".replace(",", " "))
    assert caught.value.type != "intake_error"  # always a specific subclass


def test_corrupt_png_header_names_the_reason() -> None:
    data = bytearray(encode(photo_like_rgb(), "PNG"))
    data[12:16] = b"XXXX"  # IHDR renamed
    with pytest.raises(CorruptImageError) as caught:
        load_image(bytes(data))
    assert caught.value.message == "corrupt PNG: the 'XXXX' chunk fails its checksum"


# --- sniffing ------------------------------------------------------------------------------------


def test_sniff_brands_of_iso_media() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"
    mif1_avif = b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf"
    mov = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  "
    assert sniff(heic).kind == "HEIF" and sniff(avif).kind == "AVIF" and sniff(mif1_avif).kind == "AVIF"
    assert sniff(mov).category == "not_image" and "QuickTime" in sniff(mov).description


def test_sniff_is_not_fooled_by_text_starting_with_bm() -> None:
    assert sniff(b"BMW is a car maker, not a bitmap.").kind == "TEXT"


def test_extension_format() -> None:
    assert extension_format("a/b/photo.JPEG") == "JPEG"
    assert extension_format(Path("x.heic")) == "HEIF"
    assert extension_format("notes.txt") is None and extension_format(None) is None


# --- real data (skipped without /work/shared/data) -----------------------------------------------


@pytest.mark.skipif(not (SHARED_DATA / "real").is_dir(), reason="needs /work/shared/data")
def test_real_photos_decode_like_pillow() -> None:
    photos = (
        sorted((SHARED_DATA / "real").rglob("*.jpg"))[:8] + sorted((SHARED_DATA / "real").rglob("*.png"))[:4]
    )
    assert photos
    for path in photos:
        image = load_image(path)
        with Image.open(path) as reference:
            expected = np.asarray(ImageOps.exif_transpose(reference).convert("RGB"))
        assert np.array_equal(image.rgb, expected), path


def test_images_over_one_pillow_block_are_copied_by_bands_with_the_same_pixels(tmp_path):
    rng = np.random.default_rng(3)
    pixels = np.repeat(rng.integers(0, 256, (1800, 75, 3), dtype=np.uint8), 32, axis=1)  # 4.3 MP
    path = tmp_path / "large.png"
    Image.fromarray(pixels).save(path, compress_level=1)
    image = load_image(path)
    assert image.rgb.shape == (1800, 2400, 3)
    assert np.array_equal(image.rgb, pixels)


def test_a_jpeg_too_short_for_its_declared_size_is_refused_before_decoding():
    data = bytearray(encode(Image.new("L", (8, 8), 128), "JPEG", quality=90))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (10000).to_bytes(2, "big") + (10000).to_bytes(2, "big")
    with pytest.raises(CorruptImageError, match="declares 10000 × 10000 pixels but the file holds only"):
        load_image(bytes(data))


def test_a_flat_large_jpeg_is_not_mistaken_for_a_short_one():
    data = encode(Image.new("RGB", (2048, 1536), (40, 90, 200)), "JPEG", quality=50)
    assert load_image(data).rgb.shape == (1536, 2048, 3)
