"""What every localization map returns, and the small array helpers the maps share.

A map is a float array in [0, 1] at the image's resolution (1 = most suspicious), an image-level score
in [0, 1] (how strongly the map says that part of the image differs from the rest) and one sentence a
person can read. Maps are pure functions of an RGB uint8 array (scikit-image style): no state, no I/O.

Example:
    >>> import numpy as np
    >>> region = strongest_region(np.pad(np.ones((4, 6)), 2))
    >>> (region.left, region.top, region.right, region.bottom)
    (2, 2, 8, 6)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from pixelsleuth.errors import PixelsleuthError


class LocalizationInputError(PixelsleuthError):
    """The array cannot be analysed by a localization map (wrong shape, too small)."""

    type = "localization_input"


@dataclass(frozen=True)
class Region:
    """A box in pixel coordinates (right and bottom exclusive) with the map's mean value inside."""

    left: int
    top: int
    right: int
    bottom: int
    mean: float

    @property
    def area(self) -> int:
        return (self.right - self.left) * (self.bottom - self.top)

    def block_slices(self, block: int) -> tuple[slice, slice]:
        """(rows, cols) of a per-block grid that the box touches."""
        return (
            slice(self.top // block, -(-self.bottom // block)),
            slice(self.left // block, -(-self.right // block)),
        )

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    def words(self) -> str:
        return f"x {self.left}–{self.right}, y {self.top}–{self.bottom}"


@dataclass(frozen=True)
class ForensicMap:
    """One training-free (or learned) map over an image."""

    method: str
    map: np.ndarray  # H x W float32 in [0, 1], 1 = most suspicious
    score: float  # image-level: 0 = uniform, 1 = a part clearly differs from the rest
    reading: str  # one sentence
    region: Region | None = None  # the strongest connected region above the map's own threshold
    data: dict[str, Any] = field(default_factory=dict)


def check_rgb(image: np.ndarray, *, minimum: int, method: str) -> np.ndarray:
    """The image as H x W x 3 uint8, or a LocalizationInputError that says what is wrong."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise LocalizationInputError(
            f"{method} needs an RGB image as a height x width x 3 array of 8-bit values, got shape "
            f"{array.shape} of {array.dtype}"
        )
    if min(array.shape[:2]) < minimum:
        raise LocalizationInputError(
            f"{method} needs images of at least {minimum} x {minimum} pixels; this one is "
            f"{array.shape[1]} x {array.shape[0]}"
        )
    return array


def block_view(values: np.ndarray, block: int) -> np.ndarray:
    """rows x cols x block x block view of the whole blocks of a 2-D array (the remainder dropped)."""
    rows, cols = values.shape[0] // block, values.shape[1] // block
    trimmed = values[: rows * block, : cols * block]
    return trimmed.reshape(rows, block, cols, block).swapaxes(1, 2)


def blocks_to_pixels(grid: np.ndarray, block: int, shape: tuple[int, int]) -> np.ndarray:
    """A per-block grid spread back to an image of `shape` (edge blocks extended over the remainder)."""
    pixels = np.repeat(np.repeat(grid, block, axis=0), block, axis=1)
    pad_rows, pad_cols = shape[0] - pixels.shape[0], shape[1] - pixels.shape[1]
    return np.pad(pixels, ((0, max(pad_rows, 0)), (0, max(pad_cols, 0))), mode="edge")[: shape[0], : shape[1]]


def strongest_region(heat: np.ndarray, threshold: float = 0.5) -> Region | None:
    """Bounding box of the connected part of ``heat >= threshold`` with the largest summed heat."""
    mask = heat >= threshold
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    sums = ndimage.sum(heat, labels, index=np.arange(1, count + 1))
    best = int(np.argmax(sums)) + 1
    rows, cols = np.nonzero(labels == best)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    inside = heat[top:bottom, left:right][labels[top:bottom, left:right] == best]
    return Region(int(left), int(top), int(right), int(bottom), float(inside.mean()))
