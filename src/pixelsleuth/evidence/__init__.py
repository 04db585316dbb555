"""Provenance evidence: what the file itself says about where it came from.

Each source is a function ``source(image: LoadedImage) -> list[Evidence]`` that never raises on
odd input (it reports what it could not read as an Evidence with ``points_to="none"``).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from pixelsleuth.evidence.record import Evidence, PointsTo
from pixelsleuth.intake.image import LoadedImage

EvidenceSource = Callable[[LoadedImage], list[Evidence]]

# name -> "module:function"; imported on first use so a slow or broken source costs nothing until run.
PROVENANCE_SOURCES: dict[str, str] = {
    "c2pa": "pixelsleuth.evidence.c2pa:c2pa_evidence",
    "metadata": "pixelsleuth.evidence.metadata:metadata_evidence",
    "generator-text": "pixelsleuth.evidence.generator_text:generator_text_evidence",
    "watermark": "pixelsleuth.evidence.watermark:watermark_evidence",
    "camera-consistency": "pixelsleuth.evidence.camera:camera_evidence",
}


# Training-free analyses of the pixels themselves (slower than provenance: they read every pixel).
PIXEL_SOURCES: dict[str, str] = {
    "spectral": "pixelsleuth.forensics.spectral:spectral_evidence",
}


# Sources run only when asked for (`scan --localize`): they cost seconds per megapixel.
OPTIONAL_SOURCES: dict[str, str] = {
    "localization": "pixelsleuth.localization.evidence:localization_evidence",
}


def load_source(name: str) -> EvidenceSource:
    """Return the evidence function registered under `name` (provenance or pixel source).

    A name of the form ``"package.module:function"`` loads a source from outside pixelsleuth (a plug-in;
    it is imported in every process that analyses, so it must be importable there).
    """
    sources = {**PROVENANCE_SOURCES, **PIXEL_SOURCES, **OPTIONAL_SOURCES}
    if name not in sources and ":" in name:
        sources[name] = name
    try:
        target = sources[name]
    except KeyError:
        known = ", ".join(sorted(sources))
        raise KeyError(f"no evidence source named {name!r}; known sources: {known}") from None
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


__all__ = [
    "OPTIONAL_SOURCES",
    "PIXEL_SOURCES",
    "PROVENANCE_SOURCES",
    "Evidence",
    "EvidenceSource",
    "PointsTo",
    "load_source",
]
