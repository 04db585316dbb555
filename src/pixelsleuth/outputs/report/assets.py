"""Pictures as data: URIs, so a report page carries its images inside itself.

Example:
    >>> import numpy as np
    >>> png_data_uri(np.zeros((2, 2, 3), np.uint8)).startswith("data:image/png;base64,")
    True
    >>> downscale(np.zeros((100, 400, 3), np.uint8), 200).shape
    (50, 200, 3)
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
from PIL import Image

DISPLAY_SIDE = 1600  # the longest side of an image shown in a report
THUMBNAIL_SIDE = 96


def display_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most `max_side` (never scaled up)."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def downscale(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """An image (H x W or H x W x C) resized by area averaging so its longer side is at most `max_side`."""
    height, width = pixels.shape[:2]
    size = display_size(width, height, max_side)
    if size == (width, height):
        return pixels
    return cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)


def _data_uri(image: Image.Image, fmt: str, **options: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def png_data_uri(pixels: np.ndarray) -> str:
    """A PNG data: URI of a uint8 grey, RGB or RGBA array."""
    return _data_uri(Image.fromarray(np.ascontiguousarray(pixels)), "PNG", optimize=True)


def png_bytes_uri(data: bytes) -> str:
    """A data: URI of PNG file bytes."""
    return f"data:image/png;base64,{base64.b64encode(data).decode('ascii')}"


def jpeg_data_uri(rgb: np.ndarray, quality: int = 88) -> str:
    """A JPEG data: URI of a uint8 RGB array."""
    return _data_uri(Image.fromarray(np.ascontiguousarray(rgb)), "JPEG", quality=quality, optimize=True)


def thumbnail_uri(rgb: np.ndarray, side: int = THUMBNAIL_SIDE) -> str:
    """A small JPEG data: URI for tables (longest side `side` pixels)."""
    return jpeg_data_uri(downscale(rgb, side), quality=80)
