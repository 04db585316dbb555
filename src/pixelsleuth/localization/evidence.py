"""Localization as evidence for `scan`: the regions an image was probably manipulated in.

One `Evidence` with source "localization". It points to "manipulated", with the calibrated probability
as strength, only when that probability passes the fusion card's operating point and the fused map
names at least one region; otherwise it is informative (``points_to="none"``) and still says what was
checked. ``data`` holds the probability, the operating point, the regions (boxes with a confidence and
the maps that agree) and each map's score and reading.
"""

from __future__ import annotations

from functools import lru_cache

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake.image import LoadedImage
from pixelsleuth.localization.fuse import LocalizationFusion, localize

SOURCE = "localization"


@lru_cache(maxsize=1)
def _shipped_card() -> LocalizationFusion:
    return LocalizationFusion.load()


def localization_version() -> str:
    """A short digest of the shipped card and of everything its maps read (results depend on them)."""
    import hashlib

    from pixelsleuth.localization.fuse import DEFAULT_CARD
    from pixelsleuth.localization.methods import map_version

    digest = hashlib.sha256(DEFAULT_CARD.read_bytes() if DEFAULT_CARD.is_file() else b"absent")
    try:
        methods = LocalizationFusion.load().methods
    except PixelsleuthError:
        methods = ()
    for method in methods:
        digest.update(map_version(method).encode())
    return digest.hexdigest()[:12]


def localization_evidence(image: LoadedImage, fusion: LocalizationFusion | None = None) -> list[Evidence]:
    """The localization finding for one image (see the module docstring); never raises on odd input."""
    try:
        card = fusion or _shipped_card()
        found = localize(image.rgb, card)
    except PixelsleuthError as exc:
        return [Evidence(SOURCE, f"no localization: {exc.message}", data={"error": exc.type})]
    data = found.summary()
    if found.manipulated and found.regions:
        return [
            Evidence(
                SOURCE,
                found.reading,
                points_to="manipulated",
                strength=round(min(max(found.probability, 0.0), 1.0), 4),
                detail=" ".join(item.reading for item in found.maps if item.region is not None),
                data=data,
            )
        ]
    checked = ", ".join(item.method for item in found.maps)
    return [Evidence(SOURCE, found.reading, detail=f"Maps checked: {checked}.", data=data)]
