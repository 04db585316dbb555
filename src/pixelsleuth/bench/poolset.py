"""The training pool (``shared/data/pool``): splits by generator and photo source, and fixed-size crops.

The pool holds images from many real generators and genuine photos from many sources (see its README
for where they come from and their biases). This module turns it into what training, calibration and
the leave-one-generator-out protocol need:

- `split_of` puts each image in ``train``, ``calib`` (held apart for calibration and fusion) or
  ``test``. Generated images are split by file within each generator, so every generator with a few
  images appears in all three (the leave-one-generator-out protocol holds whole generators out on top
  of that). Photo sets that are many views of one scene are kept whole in one split, since their images
  are nearly the same; other photo sets are split by file. The split depends only on the file's hash.
- `image_crops` cuts aligned ``size`` x ``size`` crops spread over an image; images the README marks as
  grids (``grid RxC``) are first cut into their tiles, and mosaics are left out (their tiles are not
  on a grid).
- `prepare_pool_crops` writes the crops of every split as lossless PNG and as JPEG (quality 90), with
  no metadata, and one manifest per split and variant (``<variant>/<split>.csv``: path, label, subset,
  generator, family, source, crop) that ``pixelsleuth evaluate``/``train`` read.

Example:
    >>> split_of(PoolImage("fake/x/a.png", 1, "x", "gan", "", "ab" * 32))
    'test'
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

from pixelsleuth.bench.devset import read_stored_rgb
from pixelsleuth.errors import PixelsleuthError

SPLITS = ("train", "calib", "test")
VARIANTS = ("png", "jpeg90")
GRID = 8
# Photo sets that are many views of one scene or one camera's series: kept whole in one split.
SCENE_SETS = frozenset(
    {
        "instant-ngp-fox",
        "monstree",
        "sceaux-castle",
        "opensfm-lund-berlin",
        "superglue-samples",
        "cityscapes-train",
        "hloc-sacre-coeur",
        "pigallery2-assets",
        "restormer-dpdd",
        "lightglue-assets",
    }
)
# Generated images that are partly real photos (an outpainted photo, swapped faces): not "generated".
PARTLY_REAL = frozenset({"maskgit", "simswap"})
_GRID_NOTE = re.compile(r"grid (\d+)\s*x\s*(\d+)", re.IGNORECASE)
_TILE_MARGIN = 4  # pixels cut from each side of a grid tile (borders between tiles)


pillow_heif.register_heif_opener()  # the pool holds phone photos in HEIC and AVIF


class PoolError(PixelsleuthError):
    type = "pool_error"


@dataclass(frozen=True)
class PoolImage:
    """One row of the pool manifest."""

    relpath: str
    label: int  # 0 genuine photo, 1 generated
    source: str  # the generator, or the photo set
    family: str
    note: str
    sha256: str

    @property
    def grid(self) -> tuple[int, int] | None:
        """(rows, columns) when the image is a grid of samples."""
        match = _GRID_NOTE.search(self.note)
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def is_mosaic(self) -> bool:
        return "mosaic" in self.note.lower()


def read_pool_manifest(manifest: str | Path) -> list[PoolImage]:
    """The pool's rows (``manifest.tsv``), partly-real generated images left out."""
    path = Path(manifest)
    if not path.is_file():
        raise PoolError(f"no pool manifest at {path} (see shared/data/pool/README.md)")
    rows: list[PoolImage] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["generator_or_set"] in PARTLY_REAL:
                continue
            label = 1 if row["label"].strip().lower() == "fake" else 0
            rows.append(
                PoolImage(
                    row["relpath"], label, row["generator_or_set"], row["family"], row["note"], row["sha256"]
                )
            )
    return rows


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 10


def split_of(image: PoolImage) -> str:
    """``train`` (60 %), ``calib`` (20 %) or ``test`` (20 %) from the file hash, or from its scene set."""
    key = image.source if image.label == 0 and image.source in SCENE_SETS else image.sha256
    bucket = _bucket(key)
    return "train" if bucket < 6 else "calib" if bucket < 8 else "test"


def grid_tiles(rgb: np.ndarray, rows: int, cols: int, margin: int = _TILE_MARGIN) -> list[np.ndarray]:
    """The tiles of an image laid out as a rows x cols grid, each with `margin` pixels cut from its sides.

    Example:
        >>> [tile.shape for tile in grid_tiles(np.zeros((100, 300, 3), np.uint8), 1, 3)]
        [(92, 92, 3), (92, 92, 3), (92, 92, 3)]
    """
    height, width = rgb.shape[:2]
    tiles = []
    for row in range(rows):
        for col in range(cols):
            top, bottom = row * height // rows + margin, (row + 1) * height // rows - margin
            left, right = col * width // cols + margin, (col + 1) * width // cols - margin
            if bottom > top and right > left:
                tiles.append(rgb[top:bottom, left:right])
    return tiles


def spread_crops(rgb: np.ndarray, size: int, count: int, *, grid: int = GRID) -> list[np.ndarray]:
    """Up to `count` crops of ``size`` x ``size``, the first at the centre, the others spread towards the
    corners; corners on multiples of `grid` (the JPEG block grid stays where it was); none if too small.

    Example:
        >>> [crop.shape for crop in spread_crops(np.zeros((600, 800, 3), np.uint8), 256, 3)]
        [(256, 256, 3), (256, 256, 3), (256, 256, 3)]
    """
    height, width = rgb.shape[:2]
    if height < size or width < size:
        return []
    span_y, span_x = height - size, width - size
    anchors = [(0.5, 0.5), (0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (1.0, 0.0), (0.5, 0.0), (0.5, 1.0)]
    corners: list[tuple[int, int]] = []
    for fy, fx in anchors:
        corner = (int(span_y * fy) // grid * grid, int(span_x * fx) // grid * grid)
        if corner not in corners:
            corners.append(corner)
        if len(corners) == count:
            break
    return [rgb[top : top + size, left : left + size] for top, left in corners]


def image_crops(rgb: np.ndarray, image: PoolImage, size: int, count: int) -> list[np.ndarray]:
    """Crops of one pool image: from each grid tile (one per tile, centre), or spread over the image."""
    if image.is_mosaic:
        return []
    if image.grid is not None:
        tiles = grid_tiles(rgb, *image.grid)
        crops = [crop for tile in tiles for crop in spread_crops(tile, size, 1, grid=1)]
        return crops[:count]
    return spread_crops(rgb, size, count)


@dataclass(frozen=True)
class CropRow:
    path: str
    label: str
    subset: str
    generator: str
    family: str
    source: str
    crop: int


MANIFEST_COLUMNS = ("path", "label", "subset", "generator", "family", "source", "crop")
# Manifests that mix the PNG and JPEG copies of the crops say which each row is.
VARIANT_MANIFEST_COLUMNS = (*MANIFEST_COLUMNS, "variant")


def _crop_rows(
    pool_root: Path, out: Path, images: list[PoolImage], size: int, per_fake: int, per_real: int, quality: int
) -> Iterator[tuple[str, str, CropRow] | tuple[str, str, str]]:
    """Write every crop in both variants; yield (split, variant, row) or ("skipped", reason, relpath)."""
    for image in images:
        split = split_of(image)
        try:
            rgb = read_stored_rgb(pool_root / image.relpath)
        except Exception:  # a damaged file is counted, not fatal
            yield ("skipped", "unreadable", image.relpath)
            continue
        crops = image_crops(rgb, image, size, per_fake if image.label else per_real)
        if not crops:
            yield ("skipped", "mosaic" if image.is_mosaic else "smaller than the crop", image.relpath)
            continue
        stem = hashlib.sha256(image.relpath.encode()).hexdigest()[:16]
        for index, crop in enumerate(crops):
            name = f"{'fake' if image.label else 'real'}/{image.source}/{stem}-{index}"
            for variant in VARIANTS:
                target = out / variant / split / f"{name}.{'png' if variant == 'png' else 'jpg'}"
                target.parent.mkdir(parents=True, exist_ok=True)
                picture = Image.fromarray(np.ascontiguousarray(crop))
                if variant == "png":
                    picture.save(target, format="PNG", compress_level=1)
                else:
                    picture.save(target, format="JPEG", quality=quality, subsampling="4:2:0")
                row = CropRow(
                    str(target.relative_to(out / variant)),
                    "fake" if image.label else "real",
                    image.source,
                    image.source if image.label else "",
                    image.family,
                    image.relpath,
                    index,
                )
                yield (split, variant, row)


def prepare_pool_crops(
    pool_root: str | Path,
    manifest: str | Path,
    out: str | Path,
    *,
    size: int = 256,
    per_fake: int = 4,
    per_real: int = 2,
    jpeg_quality: int = 90,
) -> dict:
    """Cut, write and list the crops of every pool image; returns (and writes) a summary.

    Generated images give up to `per_fake` crops (they are fewer and larger), photos up to `per_real`.
    """
    pool_root, out = Path(pool_root), Path(out)
    images = read_pool_manifest(manifest)
    rows: dict[tuple[str, str], list[CropRow]] = {(s, v): [] for s in SPLITS for v in VARIANTS}
    skipped: Counter[str] = Counter()
    for first, second, third in _crop_rows(pool_root, out, images, size, per_fake, per_real, jpeg_quality):
        if first == "skipped":
            skipped[second] += 1
        else:
            rows[(first, second)].append(third)  # type: ignore[arg-type]
    for (split, variant), items in rows.items():
        path = out / variant / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows(
                (r.path, r.label, r.subset, r.generator, r.family, r.source, r.crop) for r in items
            )
    summary = {
        "size": size,
        "jpeg_quality": jpeg_quality,
        "crops": {split: dict(Counter(row.label for row in rows[(split, "png")])) for split in SPLITS},
        "generators": {
            split: dict(Counter(row.generator for row in rows[(split, "png")] if row.generator))
            for split in SPLITS
        },
        "skipped_images": dict(skipped),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def write_variant_manifest(path: Path, rows: Iterable[dict[str, str]]) -> int:
    """Write crop rows (dicts with `VARIANT_MANIFEST_COLUMNS`, extra keys ignored) as a CSV manifest;
    returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, VARIANT_MANIFEST_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def per_generator_manifest(
    split_manifest: str | Path, output: str | Path, *, first_crop_only: bool = True
) -> Path:
    """A split's crops as the dev harness lays them out: one subset per generator, holding every genuine
    crop and that generator's crops (for per-generator AUC against the same photos). With
    `first_crop_only`, one crop per image, so that no image counts more than once."""
    source, output = Path(split_manifest), Path(output)
    with source.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if not first_crop_only or row["crop"] == "0"]
    base = source.parent
    real = [row for row in rows if row["label"] == "real"]
    generators = sorted({row["generator"] for row in rows if row["label"] == "fake"})
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "label", "subset", "generator"))
        for generator in generators:
            fakes = [row for row in rows if row["label"] == "fake" and row["generator"] == generator]
            for row in real + fakes:
                writer.writerow(
                    (str((base / row["path"]).resolve()), row["label"], generator, row["generator"])
                )
    return output
