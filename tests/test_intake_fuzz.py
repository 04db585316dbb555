"""Fuzz intake with damaged JPEG/PNG/GIF/WebP bytes: it returns a valid image or raises an IntakeError."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagegen import animated_gif, encode, exif_block, photo_like_rgb
from pixelsleuth.errors import IntakeError
from pixelsleuth.intake import IntakeLimits, LoadedImage, load_image

# Small limits keep a mutated header that declares a large image from costing real time or memory.
LIMITS = IntakeLimits(max_pixels=1_000_000, max_file_bytes=1_000_000)

_RGB = photo_like_rgb(48, 32, seed=3)
SEEDS: dict[str, bytes] = {
    "jpeg": encode(_RGB, "JPEG", quality=80, exif=exif_block(6, make="Canon"), comment=b"hi"),
    "progressive_jpeg": encode(_RGB, "JPEG", quality=70, progressive=True, subsampling=0),
    "png": encode(_RGB, "PNG"),
    "palette_png": encode(_RGB[:, :, 0], "PNG", transparency=3),
    "gif": animated_gif([(255, 0, 0), (0, 128, 255)], size=(20, 12), comment=b"gif"),
    "webp": encode(_RGB, "WEBP", quality=60),
    "lossless_webp": encode(_RGB, "WEBP", lossless=True),
}


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "header", "delete"]))
        if not data:
            break
        offset = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[offset] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[offset:]
        elif kind == "insert":
            data[offset:offset] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[offset : offset + draw(st.integers(1, 32))]
        else:  # header corruption: overwrite bytes among the first 64
            start = draw(st.integers(0, min(63, len(data) - 1)))
            patch = draw(st.binary(min_size=1, max_size=8))
            data[start : start + len(patch)] = patch
    return bytes(data)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(damaged())
def test_damaged_bytes_give_an_image_or_an_intake_error(data: bytes) -> None:
    try:
        image = load_image(data, limits=LIMITS)
    except IntakeError as error:
        assert error.message and error.type != "intake_error"
        return
    assert isinstance(image, LoadedImage)
    assert image.rgb.dtype == np.uint8 and image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert image.rgb.size > 0 and image.rgb.flags["C_CONTIGUOUS"]
    assert image.format in {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "HEIF", "AVIF"}


def test_seeds_themselves_load() -> None:
    for name, data in SEEDS.items():
        assert load_image(data, limits=LIMITS).rgb.size > 0, name
