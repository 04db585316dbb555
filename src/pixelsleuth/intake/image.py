"""The record intake produces: decoded pixels plus everything the file says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class JpegInfo:
    """Facts read from the JPEG bitstream itself.

    `quantization_tables` maps the DQT table id (0 = luma, 1 = chroma, ...) to its 64 values
    in natural (row-major, de-zigzagged) order.
    """

    quantization_tables: dict[int, tuple[int, ...]]
    subsampling: str  # "4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1", "gray" or "other"
    progressive: bool
    components: int


@dataclass
class LoadedImage:
    """An image after intake: 8-bit RGB pixels, orientation applied, with its origin recorded."""

    path: str | None
    data: bytes
    sha256: str
    format: str  # JPEG, PNG, WEBP, TIFF, BMP, GIF, HEIF, AVIF
    rgb: np.ndarray  # H x W x 3 uint8, EXIF orientation applied; read-only (shared by every source)
    original_mode: str  # Pillow mode before normalisation (e.g. "CMYK", "I;16", "F", "P")
    bit_depth: int  # bits per sample of the original (8, 16, 32)
    orientation: int | None = None  # EXIF orientation tag that was applied (1..8)
    animated: bool = False
    n_frames: int = 1
    jpeg: JpegInfo | None = None
    exif: bytes | None = None  # raw EXIF block (starts with b"Exif\0\0" or b"II*\0"/b"MM\0*")
    xmp: str | None = None  # XMP packet as text
    icc_profile: bytes | None = None
    # Text that the container carries: PNG tEXt/iTXt/zTXt, JPEG COM, WebP/other comments.
    text_chunks: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # Pillow's remaining info, for sources that need it

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])
