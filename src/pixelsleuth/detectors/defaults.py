"""The detectors `scan` runs by default: weights shipped inside the package, listed in weights/defaults.json.

``defaults.json`` is a list of ``{"detector": NAME, "weights": FILE}`` with FILE relative to the
``weights`` folder; each FILE has its model card (``.json``) beside it. No file, no default detectors.
An entry ``{"fusion": FILE}`` names the fusion card that stacks their scores (verdict/stack.py).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def embedded_weights_dir() -> Path:
    return Path(str(resources.files("pixelsleuth.detectors"))) / "weights"


def embedded_detectors(folder: Path | None = None) -> list[tuple[str, Path]]:
    """(detector name, weights path) for every default detector shipped with the package.

    Example:
        >>> isinstance(embedded_detectors(), list)
        True
    """
    folder = folder or embedded_weights_dir()
    listing = folder / "defaults.json"
    if not listing.is_file():
        return []
    entries = json.loads(listing.read_text())
    return [(entry["detector"], folder / entry["weights"]) for entry in entries if "detector" in entry]


def embedded_fusion_card(folder: Path | None = None) -> Path | None:
    """The fusion card (``{"fusion": FILE}`` in defaults.json) that stacks the default detectors, if any."""
    folder = folder or embedded_weights_dir()
    listing = folder / "defaults.json"
    if not listing.is_file():
        return None
    cards = [folder / entry["fusion"] for entry in json.loads(listing.read_text()) if "fusion" in entry]
    return cards[0] if cards else None
