"""Camera-origin consistency: quantization tables, EXIF thumbnail and dimensions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import piexif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from pixelsleuth.evidence import load_source
from pixelsleuth.evidence.camera import (
    SOURCE,
    camera_evidence,
    compare_thumbnail,
    dimension_evidence,
    quantization_evidence,
    thumbnail_evidence,
)
from pixelsleuth.evidence.exif import parse_exif
from pixelsleuth.evidence.quant_tables import (
    QUANT_TABLES_FILE,
    camera_key,
    identify_quant_tables,
    ijg_scaled_table,
    known_cameras,
    known_tables,
)
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake import load_image
from pixelsleuth.intake.image import LoadedImage

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO.parent / "shared" / "data" / "real"
SUBSAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}

CAMERA_MAKE, CAMERA_MODEL = "Canon", "Canon PowerShot SX60 HS"  # own tables in jpeg_quant_tables.json
UNKNOWN_MAKE, UNKNOWN_MODEL = "Examplecam", "EC-1000"


# ------------------------------------------------------------------------------------------ fixtures


def textured(width: int = 480, height: int = 360, seed: int = 0) -> np.ndarray:
    """A photo-like picture: smooth random structure at several scales."""
    rng = np.random.default_rng(seed)
    picture = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((4, 90.0), (12, 45.0), (40, 20.0)):
        coarse = rng.normal(0, 1, (cells * height // width + 2, cells + 2, 3)).astype(np.float32)
        picture += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(picture + 128, 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", **save)
    return buffer.getvalue()


def thumbnail_of(rgb: np.ndarray, size: tuple[int, int] = (160, 120)) -> bytes:
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return jpeg_bytes(small, quality=90)


def exif_block(
    make: str | None = None,
    model: str | None = None,
    size: tuple[int, int] | None = None,
    thumbnail: bytes | None = None,
    orientation: int | None = None,
) -> bytes:
    zeroth: dict[int, object] = {}
    if make:
        zeroth[piexif.ImageIFD.Make] = make.encode()
    if model:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if orientation:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    exif_ifd: dict[int, object] = {}
    if size:
        exif_ifd[piexif.ExifIFD.PixelXDimension] = size[0]
        exif_ifd[piexif.ExifIFD.PixelYDimension] = size[1]
    document: dict[str, object] = {"0th": zeroth, "Exif": exif_ifd}
    if thumbnail is not None:
        document.update({"1st": {}, "thumbnail": thumbnail})
    return piexif.dump(document)


def write_jpeg(tmp_path: Path, name: str, rgb: np.ndarray, **save: object) -> LoadedImage:
    path = tmp_path / name
    path.write_bytes(jpeg_bytes(rgb, **save))
    return load_image(path)


def own_camera_tables() -> list[list[int]]:
    entries = [e for e in known_cameras()[camera_key(CAMERA_MAKE, CAMERA_MODEL)] if e.ijg_quality is None]
    assert entries, "the fixture camera must have its own tables in jpeg_quant_tables.json"
    return [list(table) for table in entries[0].tables]


def only(evidence: list[Evidence], check: str) -> Evidence:
    matching = [e for e in evidence if e.data.get("check") == check]
    assert len(matching) == 1, [e.finding for e in evidence]
    return matching[0]


def assert_well_formed(evidence: list[Evidence]) -> None:
    for item in evidence:
        assert item.source == SOURCE
        assert item.finding.endswith(".")
        json.dumps(item.data)  # JSON-serialisable, no numpy types
        assert _plain(item.data), item.data


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


# ------------------------------------------------------------------------------ quantization tables


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_pillow_jpeg_is_standard_ijg_at_its_quality(tmp_path: Path, quality: int) -> None:
    image = write_jpeg(tmp_path, "q.jpg", textured(), quality=quality)
    report = identify_quant_tables(image.jpeg.quantization_tables)
    assert report.standard_ijg
    assert report.ijg_quality == quality
    assert report.estimated_quality == quality
    evidence = quantization_evidence(image)
    assert len(evidence) == 1
    assert evidence[0].points_to == "none" and evidence[0].strength == 0
    assert evidence[0].data["ijg_quality"] == quality
    assert evidence[0].data["standard_ijg"] is True
    assert f"quality {quality}" in evidence[0].finding


def test_every_pillow_quality_is_recognised() -> None:
    tiny = textured(32, 32)
    for quality in (1, 5, 10, 24, 25, 33, 49, 51, 66, 80, 95, 99, 100):
        with Image.open(io.BytesIO(jpeg_bytes(tiny, quality=quality))) as image:
            report = identify_quant_tables(image.quantization)
        assert report.standard_ijg and report.ijg_quality == quality, quality


def test_custom_tables_are_not_standard(tmp_path: Path) -> None:
    luma = [int(v) for v in np.clip(ijg_scaled_table(range(8, 72), 80) + np.arange(64) % 3, 1, 255)]
    chroma = [min(255, 6 + i) for i in range(64)]
    image = write_jpeg(tmp_path, "custom.jpg", textured(), qtables=[luma, chroma])
    report = identify_quant_tables(image.jpeg.quantization_tables)
    assert not report.standard_ijg
    assert report.ijg_quality is None
    assert 1 <= report.estimated_quality <= 100
    assert report.ijg_deviation > 0
    evidence = quantization_evidence(image)
    assert evidence[0].points_to == "none"
    assert "not the standard libjpeg" in evidence[0].finding


def test_near_scaled_tables_estimate_the_nearest_quality() -> None:
    base = ijg_scaled_table(json.loads(QUANT_TABLES_FILE.read_text())["ijg_base_tables"]["luminance"], 70)
    nudged = base.copy()
    nudged[10] += 1  # one entry off: no longer standard, still clearly quality 70
    chroma = ijg_scaled_table(json.loads(QUANT_TABLES_FILE.read_text())["ijg_base_tables"]["chrominance"], 70)
    report = identify_quant_tables({0: nudged.tolist(), 1: chroma.tolist()})
    assert not report.standard_ijg
    assert report.estimated_quality == 70
    assert report.near_ijg


def test_claimed_camera_with_its_own_tables_is_authentic(tmp_path: Path) -> None:
    exif = exif_block(CAMERA_MAKE, CAMERA_MODEL)
    image = write_jpeg(tmp_path, "cam.jpg", textured(), qtables=own_camera_tables(), subsampling=1, exif=exif)
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "authentic"
    assert 0.3 <= evidence.strength <= 0.4
    assert "PowerShot SX60 HS" in evidence.finding
    assert evidence.data["known"] and evidence.data["known"][0]["kind"] == "camera"
    assert evidence.data["standard_ijg"] is False


def test_claimed_camera_with_libjpeg_tables_was_resaved(tmp_path: Path) -> None:
    exif = exif_block(CAMERA_MAKE, CAMERA_MODEL)
    image = write_jpeg(tmp_path, "resaved.jpg", textured(), quality=85, exif=exif)
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "manipulated"
    assert 0.3 <= evidence.strength <= 0.4
    assert "re-saved by software" in evidence.finding and "quality ≈85" in evidence.finding
    assert "does not prove" in evidence.detail
    assert evidence.data["estimated_quality"] == 85
    assert evidence.data["camera_known_own_tables"] is True


def test_unknown_camera_with_libjpeg_tables_is_resaved_but_weaker(tmp_path: Path) -> None:
    image = write_jpeg(
        tmp_path, "u.jpg", textured(), quality=92, exif=exif_block(UNKNOWN_MAKE, UNKNOWN_MODEL)
    )
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "manipulated"
    assert evidence.strength < 0.35  # weaker than for a camera known to write its own tables
    assert evidence.strength >= 0.3


def test_camera_known_to_write_libjpeg_tables_is_not_called_resaved(tmp_path: Path) -> None:
    # GIMP's jpegqual.c lists the Sony DSC-W55 as writing exact IJG quality 99 tables.
    image = write_jpeg(tmp_path, "sony.jpg", textured(), quality=99, exif=exif_block("SONY", "DSC-W55"))
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "authentic" and evidence.strength <= 0.1
    assert "neither confirms nor rules out" in evidence.finding


def test_photoshop_tables_under_a_camera_claim_point_to_an_editor(tmp_path: Path) -> None:
    exif = exif_block(CAMERA_MAKE, CAMERA_MODEL)
    image = write_jpeg(tmp_path, "ps.jpg", textured(), quality="high", exif=exif)  # Pillow's Photoshop preset
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "manipulated"
    assert 0.1 <= evidence.strength <= 0.3
    assert "Adobe Photoshop" in evidence.finding
    assert any(entry["kind"] == "software" for entry in evidence.data["known"])


def test_photoshop_tables_without_camera_are_weak(tmp_path: Path) -> None:
    image = write_jpeg(tmp_path, "ps.jpg", textured(), quality="web_high")
    evidence = only(camera_evidence(image), "quantization")
    assert evidence.points_to == "manipulated" and evidence.strength <= 0.3
    assert "Adobe Photoshop" in evidence.finding


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 255), min_size=64, max_size=64), min_size=1, max_size=4))
def test_any_tables_are_classified_without_error(tables: list[list[int]]) -> None:
    report = identify_quant_tables(dict(enumerate(tables)))
    assert 1 <= report.estimated_quality <= 100
    assert report.n_tables == len(tables)
    json.dumps(report.to_data())


def test_camera_key_normalises_spellings() -> None:
    assert camera_key("EASTMAN KODAK COMPANY", "KODAK DC240 ZOOM DIGITAL CAMERA") == "kodak|dc240"
    assert camera_key("Canon", "Canon EOS 5D Mark III") == camera_key("CANON ", "EOS 5D Mark III\x00")
    assert camera_key("Jolla", "Jolla") == "jolla|jolla"
    assert camera_key("Eastman Kodak Company", "DC210 Zoom (V05.00)") == "kodak|dc210"
    assert camera_key(None, None) is None


def test_known_table_data_is_well_formed() -> None:
    document = json.loads(QUANT_TABLES_FILE.read_text())
    assert sum(document["ijg_base_tables"]["luminance"]) == 3688
    assert sum(document["ijg_base_tables"]["chrominance"]) == 5505
    for entry in document["entries"]:
        assert entry["kind"] in {"camera", "software"}
        assert entry["sources"], entry
        assert all(len(table) == 64 and all(1 <= v <= 255 for v in table) for table in entry["tables"])
        assert (entry["camera"] is not None) == (entry["kind"] == "camera")
    assert sum(len(entries) for entries in known_tables().values()) == len(document["entries"])
    labels = {entry["label"] for entry in document["entries"] if entry["kind"] == "software"}
    assert "Adobe Photoshop" in labels


# ---------------------------------------------------------------------------------- EXIF thumbnail


def with_thumbnail(tmp_path: Path, rgb: np.ndarray, thumbnail: bytes, **exif: object) -> LoadedImage:
    block = exif_block(CAMERA_MAKE, CAMERA_MODEL, thumbnail=thumbnail, **exif)  # type: ignore[arg-type]
    return write_jpeg(tmp_path, "thumb.jpg", rgb, quality=92, exif=block)


def test_thumbnail_of_the_same_image_agrees(tmp_path: Path) -> None:
    rgb = textured()
    image = with_thumbnail(tmp_path, rgb, thumbnail_of(rgb))
    evidence = only(camera_evidence(image), "thumbnail")
    assert evidence.data["verdict"] == "agree"
    assert evidence.points_to in {"authentic", "none"} and evidence.strength <= 0.1
    assert evidence.data["correlation"] > 0.95


def test_thumbnail_of_a_different_image_disagrees(tmp_path: Path) -> None:
    image = with_thumbnail(tmp_path, textured(seed=1), thumbnail_of(textured(seed=2)))
    evidence = only(camera_evidence(image), "thumbnail")
    assert evidence.data["verdict"] == "disagree"
    assert evidence.points_to == "manipulated" and 0.4 <= evidence.strength <= 0.6
    assert "different picture" in evidence.finding


def test_pasted_block_disagrees_with_the_thumbnail(tmp_path: Path) -> None:
    original = textured(seed=3)
    edited = original.copy()
    edited[90:270, 120:360] = textured(240, 180, seed=4)  # a quarter of the picture replaced
    image = with_thumbnail(tmp_path, edited, thumbnail_of(original))
    evidence = only(camera_evidence(image), "thumbnail")
    assert evidence.points_to == "manipulated"
    assert evidence.data["verdict"] in {"disagree", "partial"}
    assert evidence.data["worst_tile"] >= 0.55


def test_small_pasted_block_is_a_partial_disagreement() -> None:
    original = textured(seed=5)
    edited = original.copy()
    edited[120:210, 160:280] = 255 - edited[120:210, 160:280]  # one sixteenth of the picture inverted
    comparison = compare_thumbnail(edited, thumbnail_of(original))
    assert comparison.verdict in {"partial", "disagree"}
    assert comparison.worst_tile is not None and comparison.worst_tile >= 0.55


def test_mirrored_image_disagrees() -> None:
    original = textured(seed=6)
    comparison = compare_thumbnail(np.ascontiguousarray(original[:, ::-1]), thumbnail_of(original))
    assert comparison.verdict == "disagree"


def test_cropped_image_has_a_different_shape(tmp_path: Path) -> None:
    original = textured(seed=7)
    image = with_thumbnail(tmp_path, np.ascontiguousarray(original[:, 60:]), thumbnail_of(original))
    evidence = only(camera_evidence(image), "thumbnail")
    assert evidence.data["verdict"] == "shape"
    assert evidence.points_to == "manipulated" and 0.4 <= evidence.strength <= 0.5
    assert "cropped" in evidence.finding


def test_aspect_preserving_crop_disagrees() -> None:
    original = textured(seed=8)
    cropped = np.ascontiguousarray(original[36:324, 48:432])  # 80 %, same shape
    assert compare_thumbnail(cropped, thumbnail_of(original)).verdict in {"disagree", "partial"}


def test_rotated_pixels_with_old_thumbnail_are_reported_as_rotation(tmp_path: Path) -> None:
    original = textured(seed=9)
    image = with_thumbnail(tmp_path, np.ascontiguousarray(np.rot90(original)), thumbnail_of(original))
    evidence = only(camera_evidence(image), "thumbnail")
    assert evidence.data["verdict"] == "rotated"
    assert evidence.points_to == "none"


def test_letterboxed_thumbnail_agrees() -> None:
    original = textured(480, 320, seed=10)  # 3:2 picture
    thumb = np.zeros((120, 160, 3), np.uint8)
    thumb[7:113] = cv2.resize(original, (160, 106), interpolation=cv2.INTER_AREA)  # 4:3 box, black bars
    comparison = compare_thumbnail(original, jpeg_bytes(thumb, quality=95))
    assert comparison.verdict == "agree"
    assert comparison.content_size is not None and comparison.content_size[1] < 120


def test_orientation_is_applied_to_the_thumbnail(tmp_path: Path) -> None:
    stored = textured(seed=11)  # landscape pixels, displayed rotated (orientation 6)
    image = with_thumbnail(tmp_path, stored, thumbnail_of(stored), orientation=6)
    assert image.rgb.shape[:2] == (480, 360)
    evidence = only(thumbnail_evidence(image), "thumbnail")
    assert evidence.data["verdict"] == "agree"


def test_undecodable_thumbnail_is_informative() -> None:
    comparison = compare_thumbnail(textured(), b"\xff\xd8\xff\xdb" + b"\x00" * 40)
    assert comparison.verdict == "undecodable"


def test_flat_image_and_flat_thumbnail_agree() -> None:
    grey = np.full((240, 320, 3), 128, np.uint8)
    assert compare_thumbnail(grey, thumbnail_of(grey)).verdict == "agree"


# ------------------------------------------------------------------------------------- dimensions


def test_exif_dimensions_matching_are_informative(tmp_path: Path) -> None:
    image = write_jpeg(tmp_path, "d.jpg", textured(), quality=90, exif=exif_block(size=(480, 360)))
    evidence = only(dimension_evidence(image), "dimensions")
    assert evidence.points_to == "none"
    rotated = write_jpeg(tmp_path, "r.jpg", textured(), quality=90, exif=exif_block(size=(360, 480)))
    assert only(dimension_evidence(rotated), "dimensions").points_to == "none"


def test_exif_dimensions_of_a_resize(tmp_path: Path) -> None:
    image = write_jpeg(tmp_path, "d.jpg", textured(), quality=90, exif=exif_block(size=(1920, 1440)))
    evidence = only(camera_evidence(image), "dimensions")
    assert evidence.points_to == "manipulated" and 0.1 <= evidence.strength <= 0.3
    assert "resized to 25%" in evidence.finding
    assert evidence.data["exif_size"] == [1920, 1440]


def test_exif_dimensions_of_a_crop(tmp_path: Path) -> None:
    image = write_jpeg(tmp_path, "d.jpg", textured(), quality=90, exif=exif_block(size=(4000, 2250)))
    evidence = only(camera_evidence(image), "dimensions")
    assert evidence.points_to == "manipulated" and evidence.strength > 0.3
    assert "different shape" in evidence.finding


def test_size_never_seen_from_the_claimed_camera(tmp_path: Path) -> None:
    # The PowerShot SX60 HS is known at 2048x1536 in camera_resolutions.json; 480x360 is no
    # fraction or crop of that.
    image = write_jpeg(tmp_path, "s.jpg", textured(), quality=90, exif=exif_block(CAMERA_MAKE, CAMERA_MODEL))
    evidence = only(camera_evidence(image), "camera-resolution")
    assert evidence.points_to == "manipulated" and evidence.strength <= 0.2
    assert "2048×1536" in evidence.finding


def test_half_size_of_a_known_resolution_is_accepted(tmp_path: Path) -> None:
    image = write_jpeg(
        tmp_path, "h.jpg", textured(1024, 768), quality=90, exif=exif_block(CAMERA_MAKE, CAMERA_MODEL)
    )
    evidence = only(camera_evidence(image), "camera-resolution")
    assert evidence.points_to == "none"


# ---------------------------------------------------------------------------------- robustness


def test_png_without_exif_costs_nothing_and_says_nothing(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.fromarray(textured()).save(path)
    assert camera_evidence(load_image(path)) == []


def test_jpeg_without_exif_is_informative_only(tmp_path: Path) -> None:
    evidence = camera_evidence(write_jpeg(tmp_path, "n.jpg", textured(), quality=80))
    assert len(evidence) == 1
    assert all(e.points_to == "none" and e.strength == 0 for e in evidence)
    assert evidence[0].data["estimated_quality"] == 80


def test_png_with_exif_still_checks_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "exif.png"
    Image.fromarray(textured()).save(path, exif=exif_block(UNKNOWN_MAKE, UNKNOWN_MODEL, size=(960, 720)))
    evidence = camera_evidence(load_image(path))
    assert [e.data["check"] for e in evidence] == ["dimensions"]
    assert evidence[0].points_to == "manipulated"


def test_garbage_exif_and_broken_thumbnail_do_not_raise(tmp_path: Path) -> None:
    image = write_jpeg(tmp_path, "g.jpg", textured(), quality=90)
    image.exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff"
    assert_well_formed(camera_evidence(image))
    broken = with_thumbnail(tmp_path, textured(), thumbnail_of(textured()))
    assert broken.exif is not None
    stored = parse_exif(broken.exif).thumbnail
    assert stored is not None and stored in broken.exif
    broken.exif = broken.exif.replace(stored, stored[:2] + bytes(len(stored) - 2))  # SOI, then nothing
    evidence = camera_evidence(broken)
    assert_well_formed(evidence)
    assert only(evidence, "thumbnail").points_to == "none"


def test_registry_loads_this_source(tmp_path: Path) -> None:
    source = load_source("camera-consistency")
    rgb = textured()
    image = with_thumbnail(tmp_path, rgb, thumbnail_of(rgb), size=(480, 360))
    evidence = source(image)
    assert_well_formed(evidence)
    assert {e.data["check"] for e in evidence} >= {"quantization", "thumbnail", "dimensions"}


# ----------------------------------------------------------------- real camera files (skip if absent)

needs_shared = pytest.mark.skipif(not SHARED_REAL.is_dir(), reason="shared/data/real is not available")


@needs_shared
def test_real_camera_thumbnails_agree_and_mirrors_do_not() -> None:
    checked = 0
    for path in sorted(SHARED_REAL.rglob("*.jpg")):
        with Image.open(path) as image:
            if image.format != "JPEG":
                continue
            exif = parse_exif(image.info.get("exif"))
            if not exif.thumbnail:
                continue
            if image.width >= 2000:  # decode large photos at 1/4 scale, still far above thumbnail size
                image.draft("RGB", (image.width // 4, image.height // 4))
            rgb = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
        orientation = exif.get("Orientation")
        assert compare_thumbnail(rgb, exif.thumbnail, orientation).verdict == "agree", path.name
        mirrored = np.ascontiguousarray(rgb[:, ::-1])
        assert compare_thumbnail(mirrored, exif.thumbnail, orientation).verdict == "disagree", path.name
        checked += 1
    assert checked >= 20


@needs_shared
def test_build_script_is_deterministic_and_matches_the_data(tmp_path: Path) -> None:
    script = REPO / "scripts" / "build_camera_tables.py"
    data = SHARED_REAL.parent
    for out in (tmp_path / "a", tmp_path / "b"):
        subprocess.run(
            [sys.executable, str(script), "--data", str(data), "--out", str(out)],
            check=True,
            capture_output=True,
        )
    for name in ("jpeg_quant_tables.json", "camera_resolutions.json"):
        first, second = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
        assert first == second
        assert first == (QUANT_TABLES_FILE.parent / name).read_bytes(), (
            f"{name} is out of date: rerun the script"
        )
