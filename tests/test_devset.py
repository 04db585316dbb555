"""The dev-set harness: aligned crops, stripped metadata, per-generator manifests, content-blind check."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pixelsleuth.bench.devset import (
    DevSetError,
    aligned_center_crop_box,
    content_blind_baseline,
    prepare_dev_crops,
)
from pixelsleuth.train.datasets import discover

REAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
COLUMNS = ["relpath", "label", "generator_or_set", "repo", "width", "height", "format"]
SIZE = 64  # crop side in these tests: small images, fast


def coordinate_image(width: int, height: int) -> np.ndarray:
    """Each pixel says where it is: R = x mod 256, G = y mod 256, B = the high bits of both."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x & 255, y & 255, (x >> 8) | ((y >> 8) << 4)], axis=-1).astype(np.uint8)


def write_image(path: Path, width: int, height: int, image_format: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = Image.fromarray(coordinate_image(width, height))
    if image_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", "a castle, Steps: 20, Sampler: k_lms")
        pixels.save(path, format="PNG", pnginfo=info)
    else:
        exif = Image.Exif()
        exif[0x010F] = "Canon"
        pixels.save(path, format="JPEG", quality=95, exif=exif.tobytes())


# (relpath, label, set, width, height, format)
FAKE_DEV = [
    ("real/kodak/a.png", "real", "kodak", 100, 90, "PNG"),
    ("real/kodak/b.png", "real", "kodak", 90, 100, "PNG"),
    ("real/camera/c.jpg", "real", "camera", 123, 97, "JPEG"),
    ("real/camera/d.jpg", "real", "camera", 131, 75, "JPEG"),
    ("real/camera/tiny.jpg", "real", "camera", 40, 60, "JPEG"),
    ("fake/gan/g1.png", "fake", "gan", 128, 128, "PNG"),
    ("fake/gan/g2.png", "fake", "gan", 128, 128, "PNG"),
    ("fake/gan/g3.png", "fake", "gan", 128, 128, "PNG"),
    ("fake/gan/g4.png", "fake", "gan", 128, 128, "PNG"),
    ("fake/diffusion/d1.png", "fake", "diffusion", 64, 64, "PNG"),
    ("fake/diffusion/d2.png", "fake", "diffusion", 192, 64, "PNG"),
    ("fake/diffusion/small.png", "fake", "diffusion", 48, 48, "PNG"),
    ("manip/copy-move/m.png", "manip", "copy-move", 96, 96, "PNG"),
]


@pytest.fixture(scope="module")
def fake_dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dev")
    with (root / "manifest.tsv").open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(COLUMNS)
        for relpath, label, name, width, height, image_format in FAKE_DEV:
            write_image(root / relpath, width, height, image_format)
            writer.writerow([relpath, label, name, "someone/repo", width, height, image_format])
    return root


@pytest.fixture(scope="module")
def crops(fake_dev: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_dev_crops(fake_dev, tmp_path_factory.mktemp("out") / "crops", size=SIZE, jpeg_quality=90)


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_summary_counts_crops_skips_and_left_out_images(crops: Path) -> None:
    summary = json.loads((crops / "summary.json").read_text())
    assert summary["size"] == SIZE and summary["jpeg_quality"] == 90
    assert summary["n_real"] == 4
    assert summary["n_fake"] == {"diffusion": 2, "gan": 4}
    assert summary["skipped_small"] == {"camera": 1, "diffusion": 1}
    assert summary["left_out"] == {"manip": 1}
    assert summary["failed"] == {}
    assert sorted(path.name for path in crops.iterdir()) == ["jpeg90", "originals", "png", "summary.json"]


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [(90, 100, (8, 16)), (100, 90, (16, 8)), (64, 64, (0, 0)), (97, 123, (16, 24)), (63, 100, None)],
)
def test_aligned_center_crop_box(height: int, width: int, expected: tuple[int, int] | None) -> None:
    box = aligned_center_crop_box(height, width, SIZE)
    assert box == expected
    if box is not None:
        top, left = box
        assert top % 8 == 0 and left % 8 == 0
        assert top + SIZE <= height and left + SIZE <= width
        # at most 7 pixels away from the true centre crop, towards the top-left
        assert 0 <= (height - SIZE) // 2 - top < 8 and 0 <= (width - SIZE) // 2 - left < 8


def test_png_crops_are_exact_grid_aligned_and_without_metadata(crops: Path) -> None:
    for relpath, label, _, width, height, image_format in FAKE_DEV:
        crop_path = crops / "png" / Path(relpath).with_suffix(".png")
        box = aligned_center_crop_box(height, width, SIZE)
        if label == "manip" or box is None:
            assert not crop_path.exists()
            continue
        with Image.open(crop_path) as crop:
            assert crop.format == "PNG" and crop.size == (SIZE, SIZE) and crop.mode == "RGB"
            assert (
                "parameters" not in crop.info and "exif" not in crop.info and "icc_profile" not in crop.info
            )
            pixels = np.asarray(crop)
        if image_format == "PNG":  # lossless source: the pixels tell where the crop was cut
            top, left = box
            assert np.array_equal(
                pixels, coordinate_image(width, height)[top : top + SIZE, left : left + SIZE]
            )
        x = int(pixels[0, 0, 0]) | ((int(pixels[0, 0, 2]) & 15) << 8)
        y = int(pixels[0, 0, 1]) | ((int(pixels[0, 0, 2]) >> 4) << 8)
        if image_format == "PNG":
            assert (y, x) == box and x % 8 == 0 and y % 8 == 0


def test_jpeg_copies_are_the_same_crops_reencoded(crops: Path) -> None:
    for row in read_manifest(crops / "jpeg90" / "manifest.csv"):
        path = crops / "jpeg90" / row["path"]
        assert path.suffix == ".jpg"
        with (
            Image.open(path) as jpeg,
            Image.open(crops / "png" / Path(row["path"]).with_suffix(".png")) as png,
        ):
            assert jpeg.format == "JPEG" and jpeg.size == (SIZE, SIZE)
            assert "exif" not in jpeg.info
            difference = np.abs(np.asarray(jpeg, np.int16) - np.asarray(png, np.int16)).mean()
        assert 0 < difference < 12  # lossy, but the same picture


@pytest.mark.parametrize("variant", ["png", "jpeg90", "originals"])
def test_manifests_hold_one_subset_per_generator_with_every_real_crop(crops: Path, variant: str) -> None:
    manifest = crops / variant / "manifest.csv"
    with manifest.open() as handle:
        assert handle.readline().strip() == "path,label,subset,generator"
    samples = discover(manifest)
    assert {sample.subset for sample in samples} == {"gan", "diffusion"}
    for generator, n_fake in (("gan", 4), ("diffusion", 2)):
        members = [sample for sample in samples if sample.subset == generator]
        assert sum(sample.label == 0 for sample in members) == 4
        assert sum(sample.label == 1 for sample in members) == n_fake
        assert {sample.generator for sample in members if sample.label == 1} == {generator}
        assert all(sample.path.is_file() for sample in members)
    reals = {sample.path for sample in samples if sample.label == 0}
    assert len(reals) == 4  # the same real crops in both subsets


def test_originals_manifest_points_at_the_source_files(crops: Path, fake_dev: Path) -> None:
    paths = {sample.path for sample in discover(crops / "originals" / "manifest.csv")}
    assert fake_dev.resolve() / "fake" / "gan" / "g1.png" in paths
    assert all(path.is_relative_to(fake_dev.resolve()) for path in paths)


def test_content_blind_baseline_reads_sizes_on_originals_and_not_on_crops(crops: Path) -> None:
    originals = content_blind_baseline(crops / "originals" / "manifest.csv")
    assert set(originals) == {"gan", "diffusion"}
    assert originals["gan"]["n_real"] == 4 and originals["gan"]["n_fake"] == 4
    assert originals["gan"]["folds"] == 4
    assert originals["gan"]["auc"] > 0.9  # square 128 PNGs against odd-sized photos: trivially apart
    cropped = content_blind_baseline(crops / "png" / "manifest.csv")
    assert 0.0 <= cropped["gan"]["auc"] <= 1.0
    assert cropped["diffusion"]["folds"] == 2


def test_content_blind_baseline_is_nan_with_a_single_image_of_a_class(tmp_path: Path) -> None:
    for index in range(3):
        Image.new("RGB", (16 + index, 16)).save(tmp_path / f"r{index}.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "f.png")
    manifest = tmp_path / "m.csv"
    rows = [f"r{index}.png,real,s," for index in range(3)] + ["f.png,fake,s,gen"]
    manifest.write_text("path,label,subset,generator\n" + "\n".join(rows) + "\n")
    result = content_blind_baseline(manifest)["s"]
    assert math.isnan(result["auc"]) and result["n_fake"] == 1


def test_max_per_set_takes_the_first_images_of_each_set(fake_dev: Path, tmp_path: Path) -> None:
    out = prepare_dev_crops(fake_dev, tmp_path / "quick", size=SIZE, max_per_set=1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_real"] == 2  # kodak/a and camera/c
    assert summary["n_fake"] == {"diffusion": 1, "gan": 1}


def test_errors_a_user_can_cause(fake_dev: Path, tmp_path: Path) -> None:
    with pytest.raises(DevSetError, match=r"manifest\.tsv"):
        prepare_dev_crops(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(DevSetError, match="nothing to measure"):
        prepare_dev_crops(fake_dev, tmp_path / "out", size=1024)
    with pytest.raises(DevSetError, match="quality"):
        prepare_dev_crops(fake_dev, tmp_path / "out", jpeg_quality=0)


@pytest.mark.skipif(not (REAL_DEV / "manifest.tsv").is_file(), reason="shared/data/dev is not available")
def test_real_dev_set(tmp_path: Path) -> None:
    out = prepare_dev_crops(REAL_DEV, tmp_path / "crops", max_per_set=2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == {}
    assert summary["left_out"] == {"manip": 14}
    assert set(summary["n_fake"]) == {
        "stable-diffusion-v1",
        "stylegan2-ada-ffhq",
        "stylegan2-ada-metfaces",
        "unknown-diffusion-invokeai-presets",
    }
    samples = discover(out / "jpeg90" / "manifest.csv")
    assert {sample.subset for sample in samples} == set(summary["n_fake"])
    for sample in samples[:10]:
        with Image.open(sample.path) as crop:
            assert crop.size == (256, 256) and crop.format == "JPEG"
    baseline = content_blind_baseline(out / "originals" / "manifest.csv")
    assert all(0.0 <= result["auc"] <= 1.0 for result in baseline.values())
