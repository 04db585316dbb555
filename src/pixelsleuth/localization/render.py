"""Pictures of a localization a person can look at: the mask, a heatmap and an overlay on the image.

All three are RGB or grey uint8 arrays at the image's size; `write_localization` saves them as PNG files
named after the image (``<stem>.mask.png``: 8-bit grey, 255 = manipulated; ``<stem>.heatmap.png``;
``<stem>.overlay.png``) next to a ``<stem>.localization.json`` with the regions and each map's reading.

Example:
    >>> import numpy as np
    >>> heat = np.zeros((4, 4), np.float32); heat[0, 0] = 1.0
    >>> heatmap(heat).shape, heatmap(heat)[0, 0].tolist() != heatmap(heat)[3, 3].tolist()
    ((4, 4, 3), True)
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pixelsleuth.localization.fuse import Localization

_BOX_COLOUR = (255, 210, 0)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """H x W uint8: 255 where manipulated, 0 elsewhere."""
    return np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8)


def heatmap(heat: np.ndarray) -> np.ndarray:
    """The [0, 1] map in the 'inferno' colour scale (dark = nothing, yellow = most suspicious)."""
    from matplotlib import colormaps

    colours = colormaps["inferno"](np.clip(np.asarray(heat, np.float32), 0.0, 1.0))[..., :3]
    return np.round(colours * 255).astype(np.uint8)


def overlay(image: np.ndarray, localization: Localization, opacity: float = 0.45) -> np.ndarray:
    """The image, greyed a little, with the fused map in red where it is high and a box per region."""
    base = np.asarray(image, np.float32)
    grey = base.mean(axis=-1, keepdims=True)
    muted = 0.6 * base + 0.4 * grey
    weight = (opacity * np.clip(localization.heat, 0.0, 1.0))[..., None]
    red = np.array([255.0, 32.0, 32.0], np.float32)
    blended = muted * (1 - weight) + red * weight
    result = np.ascontiguousarray(np.clip(np.round(blended), 0, 255).astype(np.uint8))
    thickness = max(2, round(min(result.shape[:2]) / 300))
    for found in localization.regions:
        box = found.region
        cv2.rectangle(
            result, (box.left, box.top), (box.right - 1, box.bottom - 1), _BOX_COLOUR, thickness, cv2.LINE_AA
        )
    return result


def output_stem(folder: Path, stem: str, taken: set[str]) -> str:
    """`stem`, or stem-2, stem-3... when an earlier image of this run already wrote under that name."""
    candidate, number = stem, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}"
    taken.add(candidate)
    return candidate


def write_localization(
    folder: Path, stem: str, image: np.ndarray, localization: Localization, record: dict
) -> dict[str, Path]:
    """Write the mask, heatmap, overlay and JSON of one image; returns what was written where."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "mask": folder / f"{stem}.mask.png",
        "heatmap": folder / f"{stem}.heatmap.png",
        "overlay": folder / f"{stem}.overlay.png",
        "json": folder / f"{stem}.localization.json",
    }
    Image.fromarray(mask_image(localization.mask), mode="L").save(paths["mask"])
    Image.fromarray(heatmap(localization.heat)).save(paths["heatmap"])
    Image.fromarray(overlay(image, localization)).save(paths["overlay"])
    paths["json"].write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths
