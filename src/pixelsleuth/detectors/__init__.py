"""Learned detectors behind one registry: ``create(name, weights=...)``.

Example:
    >>> from pixelsleuth import detectors
    >>> "npr" in detectors.list_detectors()  # doctest: +SKIP
    True
"""

from pixelsleuth.detectors.base import Detector, IncompatibleWeightsError, PatchMap
from pixelsleuth.detectors.card import Metric, ModelCard, Preprocessing
from pixelsleuth.detectors.registry import (
    UnknownDetectorError,
    WeightsNotFoundError,
    create,
    list_detectors,
    register_detector,
)

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
