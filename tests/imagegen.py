"""Generate small fixture images for tests, in memory or into a folder (never committed binaries).

Every helper is deterministic, so tests that use them are reproducible.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Where `asymmetric_rgb` puts its marker, and its colour.
MARK_COLOUR = (255, 0, 0)


def photo_like_rgb(width: int = 96, height: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise: compresses like a photo, not like flat art."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 127 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def asymmetric_rgb(width: int = 48, height: int = 32, mark: int = 8) -> np.ndarray:
    """Grey image with a red `mark` x `mark` square in its top-left corner (no symmetry at all)."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:mark, :mark] = MARK_COLOUR
    return pixels


def marked_corner(rgb: np.ndarray, mark: int = 8) -> str:
    """Which corner of `rgb` holds the red marker: "top-left", "top-right", "bottom-left", "bottom-right"."""
    height, width = rgb.shape[:2]
    corners = {
        "top-left": rgb[: mark // 2, : mark // 2],
        "top-right": rgb[: mark // 2, width - mark // 2 :],
        "bottom-left": rgb[height - mark // 2 :, : mark // 2],
        "bottom-right": rgb[height - mark // 2 :, width - mark // 2 :],
    }
    red = {name: float(block[..., 0].mean()) - float(block[..., 1].mean()) for name, block in corners.items()}
    return max(red, key=red.__getitem__)


def exif_block(orientation: int | None = None, **tags: Any) -> bytes:
    """A raw EXIF block (TIFF structure) holding `orientation` and tags by Pillow tag id name."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    names = {"make": 0x010F, "model": 0x0110, "software": 0x0131}
    for name, value in tags.items():
        exif[names[name]] = value
    return exif.tobytes()


def encode(image: Image.Image | np.ndarray, format: str, **options: Any) -> bytes:
    """Encode an image (or array) with Pillow and return the file bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def write(folder: Path, name: str, data: bytes) -> Path:
    """Write `data` to `folder / name` and return the path."""
    path = Path(folder) / name
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose IHDR claims `width` x `height` (a decompression-bomb header)."""
    data = bytearray(encode(np.zeros((2, 2, 3), np.uint8), "PNG"))
    ihdr_start = 8  # after the signature: length(4) "IHDR"(4) payload(13) crc(4)
    payload = bytearray(data[ihdr_start + 8 : ihdr_start + 8 + 13])
    payload[0:8] = struct.pack(">II", width, height)
    data[ihdr_start : ihdr_start + 25] = png_chunk(b"IHDR", bytes(payload))
    return bytes(data)


def animated_gif(
    colours: list[tuple[int, int, int]], size: tuple[int, int] = (24, 16), **options: Any
) -> bytes:
    """An animated GIF with one flat frame per colour."""
    frames = [Image.new("RGB", size, colour) for colour in colours]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0, **options)
    return buffer.getvalue()


def tiff_bytes(array: np.ndarray, **options: Any) -> bytes:
    """A TIFF holding `array` exactly (16-bit and float included), written with Pillow or tifffile."""
    if array.ndim == 3 and array.dtype != np.uint8:
        import tifffile  # Pillow cannot write 16-bit RGB; tifffile is only a test-time helper

        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, photometric="rgb", **options)
        return buffer.getvalue()
    return encode(Image.fromarray(array), "TIFF", **options)


def fixture_set(folder: Path) -> dict[str, Path]:
    """Write one small valid file per supported format into `folder`; returns name -> path."""
    rgb = photo_like_rgb(64, 48)
    files = {
        "jpeg": write(folder, "photo.jpg", encode(rgb, "JPEG", quality=90)),
        "png": write(folder, "photo.png", encode(rgb, "PNG")),
        "gif": write(folder, "anim.gif", animated_gif([(255, 0, 0), (0, 255, 0)])),
        "webp": write(folder, "photo.webp", encode(rgb, "WEBP", quality=90)),
        "tiff": write(folder, "photo.tiff", encode(rgb, "TIFF")),
        "bmp": write(folder, "photo.bmp", encode(rgb, "BMP")),
    }
    return files
