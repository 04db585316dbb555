"""Camera-origin consistency: does the file still look the way the camera named in its EXIF wrote it?

Three cheap checks, each on facts already in the `LoadedImage`:

1. **Quantization tables.** Cameras write tables of their own; libjpeg-based software (almost every
   program and web service) writes the Annex K tables scaled by the IJG quality formula; Adobe Photoshop
   writes its own recognisable ones. Tables that do not belong to the claimed camera say the file was
   re-saved after leaving it.
2. **EXIF thumbnail.** Cameras embed a ~160 x 120 preview. Many editors keep the old preview when
   they save, so a preview that shows a different picture, or a different framing, betrays an edit.
3. **Dimensions.** EXIF ``PixelXDimension``/``PixelYDimension`` record the size the camera wrote;
   a different real size means a resize or crop. Sizes never seen from the claimed camera are
   reported weakly.

Re-saving, resizing and cropping are not proof that the content was changed, and the findings say so.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from PIL import Image

from pixelsleuth.evidence.exif import ExifData, parse_exif
from pixelsleuth.evidence.quant_tables import (
    DATA_DIR,
    KnownTables,
    QuantTableReport,
    camera_key,
    identify_quant_tables,
    known_cameras,
)
from pixelsleuth.evidence.record import Evidence, PointsTo
from pixelsleuth.intake.image import LoadedImage
from pixelsleuth.intake.loader import apply_orientation

SOURCE = "camera-consistency"
RESOLUTIONS_FILE = DATA_DIR / "camera_resolutions.json"

# Thumbnail agreement thresholds, set from the real camera JPEGs in shared/data/real (31 with a
# thumbnail: correlation >= 0.946, worst tile <= 0.43) and edited copies of them (pasted blocks,
# crops, mirrors); see tests/test_camera.py and the report that came with this module.
THUMB_CLEAR_CORRELATION = 0.80
THUMB_CLEAR_TILE = 0.75
THUMB_PARTIAL_CORRELATION = 0.92
THUMB_PARTIAL_TILE = 0.55
THUMB_TILES = 6  # the thumbnail is compared on a THUMB_TILES x THUMB_TILES grid
DARK_BAR_LEVEL = 24.0  # letterbox bars: rows/columns darker than this on average ...
DARK_BAR_SPREAD = 6.0  # ... and this uniform

# Sizes a camera may legitimately write besides the ones we have seen: its smaller size settings,
# and its aspect-ratio crops (same long side).
SIZE_FACTORS = (1.0, 3 / 4, 2 / 3, 1 / 2, 1 / 3, 1 / 4, 1 / 8)
CROP_ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0)


@dataclass(frozen=True)
class ClaimedCamera:
    """The camera an image's EXIF names."""

    make: str
    model: str
    key: str

    @property
    def label(self) -> str:
        brand = self.make.split(" ")[0].lower()
        if brand and self.model.lower().startswith(brand):
            return self.model
        return f"{self.make} {self.model}".strip()


@dataclass(frozen=True)
class ThumbnailComparison:
    """How an EXIF thumbnail compares with the image it is embedded in.

    Attributes:
        verdict: "agree", "partial" (a region disagrees), "disagree" (a different picture),
            "shape" (a different framing: aspect ratios differ), "rotated" (same picture turned by
            90 degrees) or "undecodable".
        thumbnail_size: (width, height) of the decoded thumbnail, orientation applied.
        content_size: (width, height) after removing letterbox bars.
        aspect_image: width / height of the image.
        aspect_thumbnail: width / height of the thumbnail content.
        correlation: normalised correlation of the two luma pictures (None when not compared).
        worst_tile: largest mean residual of one tile, after fitting the image's luma to the
            thumbnail's linearly, in units of the thumbnail's standard deviation (None when not compared).
    """

    verdict: str
    thumbnail_size: tuple[int, int] | None = None
    content_size: tuple[int, int] | None = None
    aspect_image: float | None = None
    aspect_thumbnail: float | None = None
    correlation: float | None = None
    worst_tile: float | None = None

    def to_data(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(float(value), 4)

        return {
            "verdict": self.verdict,
            "thumbnail_size": list(self.thumbnail_size) if self.thumbnail_size else None,
            "content_size": list(self.content_size) if self.content_size else None,
            "aspect_image": rounded(self.aspect_image),
            "aspect_thumbnail": rounded(self.aspect_thumbnail),
            "correlation": rounded(self.correlation),
            "worst_tile": rounded(self.worst_tile),
        }


def camera_evidence(image: LoadedImage) -> list[Evidence]:
    """Camera-origin consistency findings for one image (source ``"camera-consistency"``).

    Parameters
    ----------
    image : LoadedImage
        The image after intake.

    Returns
    -------
    list of Evidence
        Zero or more findings: quantization tables, EXIF thumbnail, EXIF dimensions and known camera
        sizes. Never raises; a check that fails is reported as an informative finding.
    """
    if image.jpeg is None and not image.exif:
        return []
    exif = parse_exif(image.exif) if image.exif else ExifData()
    evidence: list[Evidence] = []
    for name, check in (
        ("quantization", quantization_evidence),
        ("thumbnail", thumbnail_evidence),
        ("dimensions", dimension_evidence),
    ):
        try:
            evidence.extend(check(image, exif))
        except Exception:  # a malformed file must not stop the other checks
            evidence.append(
                _evidence(
                    f"The {name} check could not be completed: the data it reads is damaged or unusual.",
                    data={"check": name, "completed": False},
                )
            )
    return evidence


def claimed_camera(exif: ExifData) -> ClaimedCamera | None:
    """The camera named by EXIF Make/Model, or None when neither is present."""
    make, model = _text(exif.get("Make")), _text(exif.get("Model"))
    key = camera_key(make, model)
    if key is None:
        return None
    return ClaimedCamera(make=make, model=model, key=key)


# --------------------------------------------------------------------------------------------------
# 1. Quantization tables


def quantization_evidence(image: LoadedImage, exif: ExifData | None = None) -> list[Evidence]:
    """What the JPEG quantization tables say about the last program that wrote the file.

    Parameters
    ----------
    image : LoadedImage
        The image after intake; only JPEGs (``image.jpeg`` set) are examined.
    exif : ExifData, optional
        Parsed EXIF; parsed from ``image.exif`` when not given.

    Returns
    -------
    list of Evidence
        One finding for a JPEG, none otherwise.
    """
    if image.jpeg is None or not image.jpeg.quantization_tables:
        return []
    exif = exif if exif is not None else parse_exif(image.exif)
    report = identify_quant_tables(image.jpeg.quantization_tables)
    camera = claimed_camera(exif)
    data: dict[str, Any] = {
        "check": "quantization",
        **report.to_data(),
        "claimed_camera": camera.label if camera else None,
        "claimed_camera_key": camera.key if camera else None,
    }
    quality = report.estimated_quality  # the exact quality when the tables are standard
    software = [entry for entry in report.known if entry.kind == "software"]
    # Plain IJG tables say nothing about which camera wrote them; only a camera's own tables do.
    own_tables = [entry for entry in report.known if entry.kind == "camera" and entry.ijg_quality is None]
    if camera is None:
        return [_quantization_without_camera(report, software, own_tables, quality, data)]
    return [_quantization_with_camera(report, camera, software, own_tables, quality, data)]


def _quantization_without_camera(
    report: QuantTableReport,
    software: list[KnownTables],
    own_tables: list[KnownTables],
    quality: int,
    data: dict[str, Any],
) -> Evidence:
    if software:
        name = _software_name(software)
        return _evidence(
            f"The JPEG was saved by {name}: its quantization tables are that program's.",
            "manipulated",
            0.2,
            "Saving in an editor says the file passed through it, not what was changed.",
            data,
        )
    if own_tables:
        cameras = ", ".join(sorted({entry.label for entry in own_tables}))
        return _evidence(
            f"The JPEG quantization tables are those written by the {cameras}, "
            "although the file names no camera.",
            "authentic",
            0.15,
            "The camera metadata may have been removed while the JPEG data itself was kept.",
            data,
        )
    if report.standard_ijg:
        return _evidence(
            f"The JPEG uses the standard libjpeg quantization tables at quality {quality}, "
            "as most software and web services write them.",
            data=data,
        )
    return _evidence(
        f"The JPEG quantization tables are not the standard libjpeg ones and not in our list of known "
        f"cameras and editors; they are closest to libjpeg quality {quality}.",
        data=data,
    )


def _quantization_with_camera(
    report: QuantTableReport,
    camera: ClaimedCamera,
    software: list[KnownTables],
    own_tables: list[KnownTables],
    quality: int,
    data: dict[str, Any],
) -> Evidence:
    label = camera.label
    matched = [entry for entry in report.known if entry.kind == "camera" and entry.camera == camera.key]
    known_for_camera = known_cameras().get(camera.key, ())
    camera_ijg_qualities = sorted({e.ijg_quality for e in known_for_camera if e.ijg_quality is not None})
    camera_has_own_tables = any(e.ijg_quality is None for e in known_for_camera)
    data["camera_known_ijg_qualities"] = camera_ijg_qualities
    data["camera_known_own_tables"] = camera_has_own_tables
    not_proof = "Re-saving alone does not prove that the picture's content was changed."

    if matched and any(entry.ijg_quality is None for entry in matched):
        return _evidence(
            f"The JPEG quantization tables are the ones the {label} is known to write, "
            "consistent with a file straight from that camera.",
            "authentic",
            0.35,
            "Tables can be copied by a careful forger, so this supports but does not prove camera origin.",
            data,
        )
    if matched:
        return _evidence(
            f"The JPEG uses standard libjpeg tables at quality {quality}, which the {label} is known to "
            "write; much software writes the same tables, so this neither confirms nor rules out a re-save.",
            "authentic",
            0.1,
            data=data,
        )
    if software:
        name = _software_name(software)
        return _evidence(
            f"EXIF names the camera {label}, but the JPEG was last saved by {name}: "
            "its quantization tables are that program's, not a camera's.",
            "manipulated",
            0.25,
            f"The file was opened and saved again in an editor after leaving the camera. {not_proof}",
            data,
        )
    if report.standard_ijg:
        if camera_ijg_qualities:
            known = ", ".join(str(q) for q in camera_ijg_qualities)
            return _evidence(
                f"The JPEG uses standard libjpeg tables at quality {quality}; the {label} is known to write "
                f"standard tables at quality {known}, so this may be another camera setting or a re-save.",
                "manipulated",
                0.15,
                not_proof,
                data,
            )
        # Re-saving is routine (messengers, CMSs, photo apps): on its own it must not decide "manipulated".
        strength = 0.35 if camera_has_own_tables else 0.3
        why = (
            f"The {label} writes quantization tables of its own, and these are not them."
            if camera_has_own_tables
            else "Cameras usually write tables of their own; a few cameras and phones do use the standard "
            "ones, and this camera model is not in our list."
        )
        return _evidence(
            f"EXIF names the camera {label}, but the JPEG was re-saved by software after leaving the camera "
            f"(standard libjpeg tables, quality ≈{quality}).",
            "manipulated",
            strength,
            f"{why} {not_proof}",
            data,
        )
    other_brands = {
        entry.camera.split("|")[0] for entry in own_tables if entry.camera and entry.camera != camera.key
    }
    claimed_brand = camera.key.split("|")[0]
    if other_brands and claimed_brand not in other_brands:
        others = ", ".join(sorted({entry.label for entry in own_tables}))
        return _evidence(
            f"EXIF names the camera {label}, but the JPEG quantization tables are those of the {others}.",
            "manipulated",
            0.3,
            "The metadata and the JPEG data appear to come from different cameras.",
            data,
        )
    if camera_has_own_tables:
        return _evidence(
            f"The JPEG quantization tables are not the ones we have seen from the {label} "
            f"(cameras have several quality settings, and some adapt their tables per picture); "
            f"they are closest to libjpeg quality {quality}.",
            data=data,
        )
    return _evidence(
        f"The JPEG quantization tables are not standard libjpeg tables and not in our list; "
        f"they are closest to libjpeg quality {quality}. The {label} is not in our list either.",
        data=data,
    )


def _software_name(entries: list[KnownTables]) -> str:
    labels = sorted({entry.label for entry in entries})
    settings = sorted({entry.setting for entry in entries if entry.setting})
    name = " or ".join(labels)
    return f"{name} ({' or '.join(settings)})" if settings else name


# --------------------------------------------------------------------------------------------------
# 2. EXIF thumbnail


def thumbnail_evidence(image: LoadedImage, exif: ExifData | None = None) -> list[Evidence]:
    """Compare the embedded EXIF thumbnail with the image.

    Parameters
    ----------
    image : LoadedImage
        The image after intake (orientation applied to ``rgb``).
    exif : ExifData, optional
        Parsed EXIF; parsed from ``image.exif`` when not given.

    Returns
    -------
    list of Evidence
        One finding when the EXIF carries a JPEG thumbnail, none otherwise.
    """
    exif = exif if exif is not None else parse_exif(image.exif)
    if not exif.thumbnail:
        return []
    orientation = image.orientation if image.orientation is not None else exif.get("Orientation")
    comparison = compare_thumbnail(image.rgb, exif.thumbnail, orientation)
    data = {"check": "thumbnail", **comparison.to_data()}
    verdict = comparison.verdict
    if verdict == "undecodable":
        return [_evidence("The embedded EXIF thumbnail could not be decoded.", data=data)]
    if verdict == "disagree":
        return [
            _evidence(
                "The embedded EXIF thumbnail shows a different picture from the image itself — "
                "the image was probably changed after the thumbnail was written.",
                "manipulated",
                0.5,
                "Cameras write the thumbnail and the image together; many editors keep the old thumbnail "
                "when they save.",
                data,
            )
        ]
    if verdict == "partial":
        return [
            _evidence(
                "Part of the image differs from its embedded EXIF thumbnail — a region may have been "
                "changed after the thumbnail was written.",
                "manipulated",
                0.3,
                "The difference is confined to part of the picture; strong local retouching or a "
                "thumbnail rendered with different processing can also cause it.",
                data,
            )
        ]
    if verdict == "shape":
        return [
            _evidence(
                "The embedded EXIF thumbnail has a different shape from the image "
                f"({comparison.aspect_thumbnail:.3f} vs {comparison.aspect_image:.3f} width/height) — "
                "the image was probably cropped after the thumbnail was written.",
                "manipulated",
                0.45,
                "Cropping is not proof that the content was changed, "
                "but the file is not as the camera wrote it.",
                data,
            )
        ]
    if verdict == "rotated":
        return [
            _evidence(
                "The embedded EXIF thumbnail shows the same picture turned by 90 degrees: "
                "the image was rotated by software that did not update the thumbnail.",
                data=data,
            )
        ]
    return [
        _evidence(
            "The embedded EXIF thumbnail agrees with the image.",
            "authentic",
            0.05,
            "Editors that regenerate the thumbnail also produce agreement, so this is weak.",
            data,
        )
    ]


MAX_THUMBNAIL_PIXELS = 1024 * 1024  # EXIF thumbnails are about 160 x 120; anything this big is not one


def compare_thumbnail(
    rgb: np.ndarray, thumbnail_jpeg: bytes, orientation: int | None = 1
) -> ThumbnailComparison:
    """Compare an image with an EXIF thumbnail.

    Parameters
    ----------
    rgb : numpy.ndarray
        H x W x 3 uint8 image, EXIF orientation applied.
    thumbnail_jpeg : bytes
        The thumbnail's JPEG bytes, as stored (not rotated).
    orientation : int, optional
        EXIF orientation (1..8) to apply to the thumbnail so it matches ``rgb``.

    Returns
    -------
    ThumbnailComparison
        Aspect ratios, luma correlation, worst local residual and a verdict.
    """
    try:  # the header alone: a thumbnail declaring a huge size must not be decoded (decompression bomb)
        with Image.open(io.BytesIO(thumbnail_jpeg)) as header:
            declared = header.size[0] * header.size[1]
    except Exception:
        return ThumbnailComparison("undecodable")
    if declared > MAX_THUMBNAIL_PIXELS:
        return ThumbnailComparison("undecodable")
    decoded = cv2.imdecode(np.frombuffer(thumbnail_jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    if decoded is None or decoded.size == 0 or rgb.ndim != 3 or min(rgb.shape[:2]) < 2:
        return ThumbnailComparison("undecodable")
    thumbnail = apply_orientation(decoded, orientation if isinstance(orientation, int) else 1)
    height, width = rgb.shape[:2]
    aspect_image = width / height

    candidates = [thumbnail]
    content = _strip_dark_bars(thumbnail)
    if content.shape != thumbnail.shape:
        candidates.insert(0, content)
    thumb_size = (int(thumbnail.shape[1]), int(thumbnail.shape[0]))
    upright = [
        _compare_candidate(rgb, candidate, aspect_image, thumb_size, 0)
        for candidate in candidates
        if _aspects_agree(aspect_image, _aspect(candidate, 0), candidate.shape)
    ]
    if any(c.verdict == "agree" for c in upright):
        return _best(upright)
    # Only when the upright reading fails: software may have rotated the pixels and kept the thumbnail.
    for rotation in (1, -1):
        for candidate in candidates:
            if _aspects_agree(aspect_image, _aspect(candidate, rotation), candidate.shape):
                turned = _compare_candidate(rgb, candidate, aspect_image, thumb_size, rotation)
                if turned.verdict == "rotated":
                    return turned
    if upright:
        return _best(upright)
    content = candidates[0]
    return ThumbnailComparison(
        "shape", thumb_size, (int(content.shape[1]), int(content.shape[0])), aspect_image, _aspect(content, 0)
    )


def _aspect(thumbnail: np.ndarray, rotation: int) -> float:
    height, width = thumbnail.shape[:2]
    return width / height if rotation == 0 else height / width


def _best(comparisons: list[ThumbnailComparison]) -> ThumbnailComparison:
    return max(comparisons, key=lambda c: (c.correlation or 0.0) - (c.worst_tile or 0.0))


def _compare_candidate(
    rgb: np.ndarray, candidate: np.ndarray, aspect_image: float, thumb_size: tuple[int, int], rotation: int
) -> ThumbnailComparison:
    """Compare with one reading of the thumbnail (bars kept or removed, turned by `rotation` quarter turns).

    A turned reading only counts when it agrees: it then means that software rotated the pixels
    and kept the old thumbnail.
    """
    turned = np.ascontiguousarray(np.rot90(candidate, rotation)) if rotation else candidate
    correlation, worst = _picture_agreement(rgb, turned)
    verdict = _verdict(correlation, worst)
    if rotation:
        verdict = "rotated" if verdict == "agree" else "disagree"
    content_size = (int(turned.shape[1]), int(turned.shape[0]))
    return ThumbnailComparison(
        verdict, thumb_size, content_size, aspect_image, _aspect(candidate, rotation), correlation, worst
    )


def _verdict(correlation: float, worst_tile: float) -> str:
    if correlation < THUMB_CLEAR_CORRELATION or worst_tile >= THUMB_CLEAR_TILE:
        return "disagree"
    if correlation < THUMB_PARTIAL_CORRELATION or worst_tile >= THUMB_PARTIAL_TILE:
        return "partial"
    return "agree"


def _strip_dark_bars(gray: np.ndarray) -> np.ndarray:
    """Remove uniform dark letterbox bars some cameras put around a thumbnail of another aspect."""
    values = gray.astype(np.float32)
    dark_rows = (values.mean(axis=1) < DARK_BAR_LEVEL) & (values.std(axis=1) < DARK_BAR_SPREAD)
    dark_cols = (values.mean(axis=0) < DARK_BAR_LEVEL) & (values.std(axis=0) < DARK_BAR_SPREAD)
    top, bottom = _edge_run(dark_rows), _edge_run(dark_rows[::-1])
    left, right = _edge_run(dark_cols), _edge_run(dark_cols[::-1])
    height, width = gray.shape
    if height - top - bottom < height // 2 or width - left - right < width // 2:
        return gray  # a dark picture, not bars
    return gray[top : height - bottom, left : width - right]


def _edge_run(mask: np.ndarray) -> int:
    """Length of the run of True values at the start of `mask`."""
    not_set = np.flatnonzero(~mask)
    return int(not_set[0]) if not_set.size else int(mask.size)


def _aspects_agree(aspect_image: float, aspect_thumbnail: float, thumb_shape: tuple[int, ...]) -> bool:
    # A thumbnail side of n pixels can only express the aspect to about 1/n.
    tolerance = max(0.02, 1.5 / min(thumb_shape[:2]))
    return abs(math.log(aspect_image / aspect_thumbnail)) <= tolerance


def _shrink(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average `rgb` down to width x height, cheaply.

    INTER_AREA at a non-integer factor costs ~4 ms on a megapixel; a bilinear step to twice the
    target followed by an exact 2 x 2 area average costs ~0.3 ms and agrees closely enough.
    """
    if rgb.shape[0] >= 4 * height and rgb.shape[1] >= 4 * width:
        rgb = cv2.resize(rgb, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _picture_agreement(rgb: np.ndarray, thumbnail: np.ndarray) -> tuple[float, float]:
    """Luma correlation and worst tile residual between the image (shrunk) and the thumbnail."""
    if rgb.shape[0] < thumbnail.shape[0] or rgb.shape[1] < thumbnail.shape[1]:
        # An image smaller than its thumbnail: compare at the image's size instead.
        thumbnail = cv2.resize(thumbnail, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
    height, width = thumbnail.shape
    small = _shrink(rgb, width, height)
    image_luma = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (3, 3), 0)
    thumb_luma = cv2.GaussianBlur(thumbnail.astype(np.float32), (3, 3), 0)
    image_centered = image_luma - image_luma.mean()
    thumb_centered = thumb_luma - thumb_luma.mean()
    image_energy = float((image_centered * image_centered).sum())
    thumb_energy = float((thumb_centered * thumb_centered).sum())
    pixels = image_luma.size
    if thumb_energy / pixels < 4.0 or image_energy / pixels < 4.0:
        # Flat pictures (std < 2 grey levels): compare brightness only.
        same = (
            abs(float(image_luma.mean()) - float(thumb_luma.mean())) < 12.0
            and max(thumb_energy, image_energy) / pixels < 4.0
        )
        return (1.0, 0.0) if same else (0.0, 1.0)
    cross = float((image_centered * thumb_centered).sum())
    correlation = cross / math.sqrt(image_energy * thumb_energy)
    # Fit image luma to thumbnail luma (gain only; means are removed) and look for the worst tile.
    residual = np.abs(thumb_centered - (cross / image_energy) * image_centered)
    tiles = THUMB_TILES if min(height, width) >= 2 * THUMB_TILES else 1
    tile_h, tile_w = height // tiles, width // tiles
    tile_means = (
        residual[: tile_h * tiles, : tile_w * tiles].reshape(tiles, tile_h, tiles, tile_w).mean(axis=(1, 3))
    )
    worst = float(tile_means.max()) / math.sqrt(thumb_energy / pixels)
    return correlation, worst


# --------------------------------------------------------------------------------------------------
# 3. Dimensions


def dimension_evidence(image: LoadedImage, exif: ExifData | None = None) -> list[Evidence]:
    """Compare the real size with the EXIF pixel dimensions and with sizes the claimed camera writes.

    Parameters
    ----------
    image : LoadedImage
        The image after intake.
    exif : ExifData, optional
        Parsed EXIF; parsed from ``image.exif`` when not given.

    Returns
    -------
    list of Evidence
        Up to two findings: EXIF dimensions vs pixels, and the size vs the known sizes of the camera.
    """
    exif = exif if exif is not None else parse_exif(image.exif)
    width, height = image.width, image.height
    evidence: list[Evidence] = []
    recorded = _exif_dimensions(exif)
    recorded_agrees = True
    if recorded is not None:
        finding = _recorded_dimension_finding(width, height, recorded)
        recorded_agrees = finding.points_to == "none"
        evidence.append(finding)
    camera = claimed_camera(exif)
    if camera is not None and recorded_agrees:
        finding = _camera_size_finding(width, height, camera)
        if finding is not None:
            evidence.append(finding)
    return evidence


def _exif_dimensions(exif: ExifData) -> tuple[int, int] | None:
    width, height = exif.get("ExifImageWidth"), exif.get("ExifImageHeight")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None


def _recorded_dimension_finding(width: int, height: int, recorded: tuple[int, int]) -> Evidence:
    # Cameras may record the size before rotation, and some encoders pad to the 8/16-pixel block.
    pairings = [recorded, (recorded[1], recorded[0])]
    data: dict[str, Any] = {"check": "dimensions", "size": [width, height], "exif_size": list(recorded)}
    for exif_w, exif_h in pairings:
        if abs(exif_w - width) < 16 and abs(exif_h - height) < 16:
            return _evidence("The image size matches the pixel dimensions recorded in its EXIF.", data=data)
    # Of the two pairings, compare against the one whose shape is closest.
    exif_w, exif_h = min(pairings, key=lambda p: abs(math.log((p[0] / p[1]) / (width / height))))
    aspect_change = abs(math.log((exif_w / exif_h) / (width / height)))
    scale = math.sqrt((width * height) / (exif_w * exif_h))
    data.update({"scale": round(scale, 4), "aspect_change": round(aspect_change, 4)})
    recorded_text = f"{recorded[0]}×{recorded[1]}"
    if aspect_change < 0.01:
        return _evidence(
            f"The image is {width}×{height} pixels but its EXIF records {recorded_text}: "
            f"it was resized to {scale:.0%} after capture.",
            "manipulated",
            0.2,
            "Resizing (for the web, for example) is routine and does not prove that the content was changed.",
            data,
        )
    return _evidence(
        f"The image is {width}×{height} pixels but its EXIF records {recorded_text}, a different shape: "
        "it was cropped after capture.",
        "manipulated",
        0.35,
        "Cropping is not proof of a content edit, but the file is not the one the camera wrote.",
        data,
    )


def _camera_size_finding(width: int, height: int, camera: ClaimedCamera) -> Evidence | None:
    known = _camera_resolutions().get(camera.key)
    if not known:
        return None
    sizes = [(int(r["width"]), int(r["height"])) for r in known["resolutions"]]
    data = {
        "check": "camera-resolution",
        "size": [width, height],
        "claimed_camera": camera.label,
        "known_sizes": [list(size) for size in sizes],
    }
    if any(_size_fits(width, height, size) for size in sizes):
        return _evidence(f"The image size {width}×{height} is one the {camera.label} produces.", data=data)
    known_text = ", ".join(f"{w}×{h}" for w, h in sizes)
    return _evidence(
        f"The {camera.label} is not known to produce {width}×{height} images "
        f"(sizes seen from it: {known_text}).",
        "manipulated",
        0.15,
        "Cameras offer several size and aspect settings and our list is incomplete, so this is weak: "
        "the image may have been resized or cropped.",
        data,
    )


def _size_fits(width: int, height: int, known: tuple[int, int]) -> bool:
    long_side, short_side = max(width, height), min(width, height)
    known_long, known_short = known
    for factor in SIZE_FACTORS:
        scaled_long, scaled_short = known_long * factor, known_short * factor
        if abs(long_side - scaled_long) <= 2 and abs(short_side - scaled_short) <= 2:
            return True
        if abs(long_side - scaled_long) <= 2 and any(
            abs(short_side - scaled_long / aspect) <= 2 for aspect in CROP_ASPECTS
        ):
            return True
        if long_side == short_side and abs(short_side - scaled_short) <= 2:  # 1:1 crop of the short side
            return True
    return False


@lru_cache(maxsize=1)
def _camera_resolutions() -> dict[str, Any]:
    with RESOLUTIONS_FILE.open(encoding="utf-8") as handle:
        return json.load(handle)["cameras"]


# --------------------------------------------------------------------------------------------------


def _evidence(
    finding: str,
    points_to: PointsTo = "none",
    strength: float = 0.0,
    detail: str = "",
    data: dict[str, Any] | None = None,
) -> Evidence:
    return Evidence(SOURCE, finding, points_to, strength, detail, data or {})


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        return ""
    return " ".join(value.replace("\x00", " ").split())


__all__ = [
    "SOURCE",
    "ClaimedCamera",
    "ThumbnailComparison",
    "camera_evidence",
    "claimed_camera",
    "compare_thumbnail",
    "dimension_evidence",
    "quantization_evidence",
    "thumbnail_evidence",
]
