"""Map layers of a report: forensic maps of the image as translucent colour pictures at display size.

A layer is the map in the 'inferno' scale of `localization.render.heatmap`, with an alpha channel that
grows with the map (0.2 where the map is 0, opaque where it is 1), so the photo shows through where the
maps see nothing. The fused localization map is recomputed from the image file with the shipped card
(`localization.fuse.localize`) when the result has localization evidence; the quick maps (ELA and noise
by default) always run (`localization.methods.run_maps`).

Example:
    >>> import numpy as np
    >>> layer_pixels(np.ones((4, 4), np.float32), (2, 2)).shape
    (2, 2, 4)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.localization.record import ForensicMap
from pixelsleuth.localization.render import heatmap
from pixelsleuth.outputs.report.assets import display_size, png_data_uri

MAP_LABELS: dict[str, str] = {
    "fused": "fused localization (calibrated)",
    "ela": "ELA: error level analysis",
    "noise": "noise inconsistency",
    "jpeg-ghost": "JPEG ghost",
    "jpeg-double": "double JPEG",
    "jpeg-grid": "JPEG grid",
    "copy-move": "copy-move (keypoints)",
    "copy-move-dense": "copy-move (dense)",
    "window-fsd": "fsd detector windows",
    "window-patchnet": "patchnet detector windows",
    "window-spectral": "spectral windows",
    "learned": "learned localizer",
}
_MIN_ALPHA = 0.2
LAYER_SIDE = 800  # maps are smooth at this size; the browser scales them to the picture


@dataclass(frozen=True)
class MapLayer:
    """One choice of the report's map selector."""

    name: str
    label: str
    uri: str  # PNG data: URI, RGBA at the displayed image's size
    reading: str  # the map's own sentence


def layer_pixels(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H x W map in [0, 1] as RGBA uint8 at `size` (width, height): inferno colours, alpha from the map."""
    heat = np.clip(np.nan_to_num(np.asarray(values, np.float32)), 0.0, 1.0)
    if (heat.shape[1], heat.shape[0]) != size:
        heat = np.clip(cv2.resize(heat, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    alpha = np.round(255 * (_MIN_ALPHA + (1 - _MIN_ALPHA) * heat)).astype(np.uint8)
    return np.dstack([heatmap(heat), alpha])


def _layer(name: str, values: np.ndarray, reading: str, size: tuple[int, int]) -> MapLayer:
    return MapLayer(name, MAP_LABELS.get(name, name), png_data_uri(layer_pixels(values, size)), reading)


def map_layers(
    rgb: np.ndarray, *, quick_maps: Sequence[str], fused: bool
) -> tuple[list[MapLayer], list[str]]:
    """The layers for an image (fused map first when `fused`), and a sentence per map that could not run.

    Layers are at most `LAYER_SIDE` pixels on their longer side.
    """
    from pixelsleuth.localization.methods import run_maps

    size = display_size(rgb.shape[1], rgb.shape[0], LAYER_SIDE)
    layers: list[MapLayer] = []
    notes: list[str] = []
    maps: list[ForensicMap] = []
    if fused:
        from pixelsleuth.localization.fuse import localize

        try:
            found = localize(rgb)
        except PixelsleuthError as exc:
            notes.append(f"The fused localization map could not be recomputed: {exc.message}")
        else:
            layers.append(_layer("fused", found.heat, found.reading, size))
            maps = list(found.maps)
    have = {item.method for item in maps}
    extra, failures = run_maps(rgb, [name for name in quick_maps if name not in have])
    notes.extend(f"The {name} map could not be computed: {message}" for name, message in failures)
    by_name = {item.method: item for item in [*maps, *extra]}
    for name in dict.fromkeys([*quick_maps, *(item.method for item in maps)]):  # quick maps first
        if name not in by_name:
            continue
        item = by_name[name]
        try:
            layers.append(_layer(name, item.map, item.reading, size))
        except Exception as exc:  # one odd map must not lose the page
            logging.getLogger("pixelsleuth").warning("the %s map could not be drawn: %r", name, exc)
            notes.append(f"The {name} map could not be drawn.")
    return layers, notes
