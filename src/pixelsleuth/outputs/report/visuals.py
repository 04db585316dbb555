"""What a report shows of the image itself: the picture, its map layers, its spectrum and a thumbnail.

All of it is computed at report time from the image file, which is read again with the same intake as
the analysis and checked against the result's SHA-256: a file that is gone, unreadable or changed
gives a report without pictures and a sentence saying why, never pixels that were not the ones analysed.

Example:
    >>> visuals = build_visuals({"sha256": "0" * 64}, "/nonexistent/photo.png")
    >>> visuals.available, "no longer there" in visuals.notes[0]
    (False, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.intake import IntakeLimits, load_image
from pixelsleuth.intake.text import display_path
from pixelsleuth.outputs.report.assets import (
    DISPLAY_SIDE,
    downscale,
    jpeg_data_uri,
    png_bytes_uri,
    thumbnail_uri,
)
from pixelsleuth.outputs.report.layers import MapLayer, map_layers
from pixelsleuth.outputs.report.spectrum import spectrum_png

QUICK_MAPS = ("ela", "noise")


@dataclass(frozen=True)
class ReportOptions:
    """How much a report computes from the image file.

    Attributes:
        limits: intake limits for reading the image again (those of the scan).
        quick_maps: maps always computed (`localization.methods` names).
        fused_map: recompute the fused localization map when the result has localization evidence
            (as long as `scan --localize` took for the image).
        display_side: the longest side of the picture in the page, in pixels.
    """

    limits: IntakeLimits = field(default_factory=IntakeLimits)
    quick_maps: tuple[str, ...] = QUICK_MAPS
    fused_map: bool = True
    display_side: int = DISPLAY_SIDE


@dataclass(frozen=True)
class ImageVisuals:
    """The pictures of one report; `image_uri` is None when the image could not be shown (see `notes`)."""

    image_uri: str | None = None
    width: int = 0  # the analysed image's pixels (region boxes are in these coordinates)
    height: int = 0
    display_width: int = 0
    display_height: int = 0
    layers: tuple[MapLayer, ...] = ()
    spectrum_uri: str | None = None
    thumbnail_uri: str | None = None
    notes: tuple[str, ...] = ()  # what could not be shown, and why

    @property
    def available(self) -> bool:
        return self.image_uri is not None


def has_localization(record: dict[str, Any]) -> bool:
    """True when the result holds localization evidence that ran (not one that reports an error)."""
    return any(
        item.get("source") == "localization" and "error" not in (item.get("data") or {})
        for item in record.get("evidence") or []
    )


def build_visuals(
    record: dict[str, Any], image_path: str | Path | None, options: ReportOptions | None = None
) -> ImageVisuals:
    """The pictures for `record`'s report, from the image at `image_path` (see the module docstring)."""
    options = options or ReportOptions()
    if record.get("verdict") == "error":
        return ImageVisuals(notes=("The image could not be analysed, so it is not shown.",))
    if image_path is None:
        return ImageVisuals(notes=("No image file was given: the report shows the stored result only.",))
    shown_path = display_path(image_path)
    if not Path(image_path).is_file():
        return ImageVisuals(
            notes=(
                f"The image file {shown_path} is no longer there: the report shows the stored result "
                "without the image, its maps and its spectrum.",
            )
        )
    try:
        loaded = load_image(image_path, limits=options.limits)
    except PixelsleuthError as exc:
        return ImageVisuals(notes=(f"The image file could not be read again: {exc.message}",))
    expected = record.get("sha256")
    if expected and loaded.sha256 != expected:
        return ImageVisuals(
            notes=(
                f"The file {shown_path} has changed since it was analysed (its SHA-256 differs), so its "
                "pixels are not shown: they are not the ones the result is about.",
            )
        )
    return _pictures(loaded.rgb, jpeg=loaded.jpeg is not None, record=record, options=options)


def _pictures(rgb: np.ndarray, *, jpeg: bool, record: dict[str, Any], options: ReportOptions) -> ImageVisuals:
    height, width = rgb.shape[:2]
    shown = downscale(rgb, options.display_side)
    size = (shown.shape[1], shown.shape[0])
    notes: list[str] = []
    try:
        layers, failures = map_layers(
            rgb, quick_maps=options.quick_maps, fused=options.fused_map and has_localization(record)
        )
        notes.extend(failures)
    except Exception as exc:  # a bug in a map must not lose the report
        logging.getLogger("pixelsleuth").warning("report maps failed: %r", exc)
        layers = []
        notes.append("The forensic maps could not be computed for this image.")
    try:
        spectrum = png_bytes_uri(spectrum_png(rgb, jpeg=jpeg))
    except PixelsleuthError as exc:
        spectrum = None
        notes.append(f"No spectrum: {exc.message}")
    except Exception as exc:
        logging.getLogger("pixelsleuth").warning("report spectrum failed: %r", exc)
        spectrum = None
        notes.append("The spectrum could not be computed for this image.")
    return ImageVisuals(
        image_uri=jpeg_data_uri(shown, quality=90),
        width=width,
        height=height,
        display_width=size[0],
        display_height=size[1],
        layers=tuple(layers),
        spectrum_uri=spectrum,
        thumbnail_uri=thumbnail_uri(rgb),
        notes=tuple(notes),
    )
