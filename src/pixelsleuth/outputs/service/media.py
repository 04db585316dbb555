"""Pictures the service serves for a result: the display image and the map overlays.

They are made with the report's code (`outputs/report/assets.py`, `layers.py`) from the kept upload,
checked against the result's SHA-256, and cached beside it until the upload expires.

Example:
    >>> import numpy as np
    >>> png = map_png(np.full((40, 60, 3), 128, np.uint8), "ela")
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.intake import IntakeLimits, LoadedImage, load_image
from pixelsleuth.outputs.report.assets import DISPLAY_SIDE, display_size, downscale
from pixelsleuth.outputs.report.layers import layer_pixels

MAP_NAMES = ("ela", "noise", "fused")


class PictureUnavailable(Exception):
    """The image behind a result cannot be shown (gone, changed or unreadable); `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def load_checked(path: Path, sha256: str | None, limits: IntakeLimits) -> LoadedImage:
    """Read the kept image again; refuse one that is gone or whose bytes are not the analysed ones."""
    if not path.is_file():
        raise PictureUnavailable("the image is no longer kept on the server")
    try:
        image = load_image(path, limits=limits)
    except PixelsleuthError as exc:
        raise PictureUnavailable(f"the kept image could not be read again: {exc.message}") from None
    if sha256 and image.sha256 != sha256:
        raise PictureUnavailable("the kept file is not the image that was analysed (its SHA-256 differs)")
    return image


def display_jpeg(rgb: np.ndarray, max_side: int = DISPLAY_SIDE) -> bytes:
    """The image as a JPEG whose longer side is at most `max_side` pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(downscale(rgb, max_side))).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def map_png(rgb: np.ndarray, name: str, max_side: int = DISPLAY_SIDE) -> bytes:
    """An RGBA heat overlay (the report's layer colours and alpha) at the display image's size."""
    if name == "fused":
        from pixelsleuth.localization.fuse import localize

        values = localize(rgb).heat
    else:
        from pixelsleuth.localization.methods import run_maps

        maps, failures = run_maps(rgb, [name])
        if not maps:
            message = failures[0][1] if failures else f"the {name} map could not be computed"
            raise PictureUnavailable(message)
        values = maps[0].map
    size = display_size(rgb.shape[1], rgb.shape[0], max_side)
    buffer = io.BytesIO()
    Image.fromarray(layer_pixels(values, size), "RGBA").save(buffer, "PNG")
    return buffer.getvalue()
