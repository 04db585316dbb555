"""Learned detectors behind one registry: ``create(name, weights=...)``.

Names are resolved on first use (PEP 562), so importing a light submodule such as
``pixelsleuth.detectors.card`` does not import torch.

Example:
    >>> from pixelsleuth import detectors
    >>> "npr" in detectors.list_detectors()
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pixelsleuth._lazy import lazy_exports

_EXPORTS = {
    "Detector": "pixelsleuth.detectors.base",
    "IncompatibleWeightsError": "pixelsleuth.detectors.base",
    "PatchMap": "pixelsleuth.detectors.base",
    "Metric": "pixelsleuth.detectors.card",
    "ModelCard": "pixelsleuth.detectors.card",
    "Preprocessing": "pixelsleuth.detectors.card",
    "UnknownDetectorError": "pixelsleuth.detectors.registry",
    "WeightsNotFoundError": "pixelsleuth.detectors.registry",
    "create": "pixelsleuth.detectors.registry",
    "list_detectors": "pixelsleuth.detectors.registry",
    "register_detector": "pixelsleuth.detectors.registry",
}

if TYPE_CHECKING:
    from pixelsleuth.detectors.base import Detector, IncompatibleWeightsError, PatchMap
    from pixelsleuth.detectors.card import Metric, ModelCard, Preprocessing
    from pixelsleuth.detectors.registry import (
        UnknownDetectorError,
        WeightsNotFoundError,
        create,
        list_detectors,
        register_detector,
    )


__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Detector",
    "IncompatibleWeightsError",
    "Metric",
    "ModelCard",
    "PatchMap",
    "Preprocessing",
    "UnknownDetectorError",
    "WeightsNotFoundError",
    "create",
    "list_detectors",
    "register_detector",
]
