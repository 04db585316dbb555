"""The dev set's measuring harness: fixed-size crops, per-generator manifests, a content-blind check.

On the development set (``shared/data/dev``, see its README) the files differ in ways that have nothing
to do with how their pixels were made: generators write square PNGs in multiples of 64 pixels, cameras
write JPEGs of their own sizes. A logistic regression on file size, dimensions and format alone tells
the two apart there, so a number measured on the whole files may only measure that. The harness takes
it away:

- `prepare_dev_crops` cuts one centre crop of a fixed size from every image, with its offset on the
  8 x 8 JPEG grid (a JPEG's block grid stays where it was, and re-encoding lands on the same grid),
  saves it losslessly as PNG with no metadata, and saves a copy re-encoded as JPEG (quality 90, 4:2:0),
  so that every image arrives in the same two formats at the same size. Manifests in the format
  ``pixelsleuth evaluate`` reads have one subset per generator: all real crops plus that generator's.
- `content_blind_baseline` fits a cross-validated logistic regression on (file size, width, height,
  format) for each subset of a manifest and reports its ROC-AUC: near 0.5 means the content-blind
  cues are gone; on the original files it is the number that any detector has to beat to mean anything.

Images smaller than the crop are skipped and counted. The manipulated images (``dev/manip``) are left
out: they have no masks, and are neither real nor generated as a whole, so the binary metrics have no
place for them.

Example:
    >>> crops = prepare_dev_crops("shared/data/dev", "cache/dev-crops")  # doctest: +SKIP
    >>> baseline = content_blind_baseline(crops / "jpeg90" / "manifest.csv")  # doctest: +SKIP
    >>> baseline["stylegan2-ada-ffhq"]["auc"]  # doctest: +SKIP
    0.73
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.train.datasets import MANIFEST_SUFFIXES, DatasetError, Sample, discover

MANIFEST_NAME = "manifest.csv"
SUMMARY_NAME = "summary.json"
ORIGINALS = "originals"  # manifest of the original files, same subsets: for the content-blind baseline
PNG_FOLDER = "png"
GRID = 8
SKIPPED_LABELS = frozenset({"manip"})
MANIFEST_COLUMNS = ("path", "label", "subset", "generator")
FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "OTHER")


class DevSetError(PixelsleuthError):
    """The development set could not be found or prepared."""

    type = "dev_set_error"


@dataclass
class DevCropsSummary:
    """What `prepare_dev_crops` did, as written to ``summary.json`` beside the crops.

    Attributes:
        size: crop side in pixels.
        jpeg_quality: quality of the re-encoded copies.
        n_real: real crops written.
        n_fake: generated crops written, by generator.
        skipped_small: images smaller than the crop, by generator (or real set) name.
        failed: images that could not be read: relative path -> reason.
        left_out: images not cropped on purpose, by label (the manipulated ones).
        manifests: the manifests written, by variant (``"png"``, ``"jpeg90"``, ``"originals"``).
    """

    size: int
    jpeg_quality: int
    n_real: int = 0
    n_fake: dict[str, int] = field(default_factory=dict)
    skipped_small: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    manifests: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def aligned_center_crop_box(
    height: int, width: int, size: int, *, grid: int = GRID
) -> tuple[int, int] | None:
    """Top-left corner of the centre ``size`` x ``size`` crop, moved up-left onto `grid`; None if too small.

    Example:
        >>> aligned_center_crop_box(321, 481, 256)
        (32, 112)
        >>> aligned_center_crop_box(200, 481, 256) is None
        True
    """
    if height < size or width < size:
        return None
    top = (height - size) // 2 // grid * grid
    left = (width - size) // 2 // grid * grid
    return top, left


def jpeg_variant_name(quality: int) -> str:
    """Folder name of the re-encoded crops, e.g. ``"jpeg90"``.

    Example:
        >>> jpeg_variant_name(90)
        'jpeg90'
    """
    return f"jpeg{quality}"


def _dev_samples(dev_root: Path) -> tuple[list[Sample], Counter[str]]:
    """Samples of the dev manifest (real and generated), and how many rows of each left-out label."""
    manifest = dev_root / "manifest.tsv"
    if not manifest.is_file():
        raise DevSetError(
            f"no development set at {dev_root}: expected its manifest.tsv there (see shared/data/README.md)"
        )
    left_out: Counter[str] = Counter()
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            label = (row.get("label") or "").strip().lower()
            if label in SKIPPED_LABELS:
                left_out[label] += 1
    try:
        samples = discover(manifest, skip_labels=SKIPPED_LABELS)
    except DatasetError as exc:
        raise DevSetError(f"the development set's manifest could not be read: {exc.message}") from None
    return samples, left_out


def read_stored_rgb(path: Path) -> np.ndarray:
    """The file's pixels as stored (no EXIF rotation: the JPEG grid is the stored one), as RGB uint8."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            scaled = np.asarray(image, dtype=np.float64)
            scaled = scaled / max(1.0, float(scaled.max())) * 255.0 if scaled.max() > 255 else scaled
            return np.repeat(np.clip(scaled + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"))


def _write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)


def _per_generator_rows(
    entries: list[tuple[str, int, str]], generators: list[str]
) -> list[tuple[str, str, str, str]]:
    """One subset per generator: every real entry, then that generator's entries."""
    rows: list[tuple[str, str, str, str]] = []
    for generator in generators:
        rows += [(path, "real", generator, "") for path, label, _ in entries if label == 0]
        rows += [(path, "fake", generator, generator) for path, label, name in entries if name == generator]
    return rows


def prepare_dev_crops(
    dev_root: str | Path,
    out: str | Path,
    *,
    size: int = 256,
    jpeg_quality: int = 90,
    max_per_set: int | None = None,
) -> Path:
    """Write grid-aligned centre crops of the development set, as PNG and as JPEG, with manifests.

    For every real and generated image listed in ``dev_root/manifest.tsv``: the centre ``size`` x
    ``size`` crop, its top-left corner moved up and left onto the 8 x 8 grid, taken from the pixels
    as stored (alpha dropped, no EXIF rotation), is written as ``out/png/<relpath>.png`` (no
    metadata) and, re-encoded by Pillow at `jpeg_quality` with 4:2:0 chroma subsampling, as
    ``out/jpeg<quality>/<relpath>.jpg``. Each folder gets a ``manifest.csv`` (``path,label,subset,
    generator``, paths relative to it) whose subsets are the generators, each holding every real crop
    and that generator's crops, so per-subset metrics are per-generator metrics. (The real crops repeat
    in every subset, so the pooled row of an evaluation counts them once per generator.)
    ``out/originals/manifest.csv`` lists the original files of the same images with the same subsets,
    for `content_blind_baseline`. ``out/summary.json`` records the counts (`DevCropsSummary`).

    Images smaller than `size` on either side are skipped and counted; manipulated images are left
    out (no masks); an image that cannot be read is recorded with its reason. An existing `out` is
    replaced.

    Args:
        dev_root: the development set folder (holding ``manifest.tsv``).
        out: folder to write the crops and manifests into.
        size: crop side in pixels (a multiple of 8 keeps the grid whole).
        jpeg_quality: quality of the re-encoded copies (1-100).
        max_per_set: take at most this many images (the first by path) of each generator and of each
            real set, for a quick run; None takes them all.

    Returns:
        `out`, as a Path.

    Raises:
        DevSetError: no manifest.tsv in `dev_root`, bad arguments, or no image large enough to crop.

    Example:
        >>> out = prepare_dev_crops("shared/data/dev", "/tmp/dev-crops")  # doctest: +SKIP
        >>> sorted(path.name for path in out.iterdir())  # doctest: +SKIP
        ['jpeg90', 'originals', 'png', 'summary.json']
    """
    root = Path(dev_root).expanduser()
    target = Path(out).expanduser()
    if size < GRID:
        raise DevSetError(f"the crop size must be at least {GRID} pixels, got {size}")
    if not 1 <= jpeg_quality <= 100:
        raise DevSetError(f"the JPEG quality must lie in 1..100, got {jpeg_quality}")
    if max_per_set is not None and max_per_set < 1:
        raise DevSetError(f"max_per_set must be at least 1, got {max_per_set}")
    samples, left_out = _dev_samples(root)
    if max_per_set is not None:
        taken: Counter[str] = Counter()
        kept = []
        for sample in samples:
            name = sample.generator or sample.subset
            if taken[name] < max_per_set:
                taken[name] += 1
                kept.append(sample)
        samples = kept
    if target.exists():
        shutil.rmtree(target)
    jpeg_folder = jpeg_variant_name(jpeg_quality)
    summary = DevCropsSummary(size=size, jpeg_quality=jpeg_quality, left_out=dict(left_out))
    skipped: Counter[str] = Counter()
    fakes: Counter[str] = Counter()
    png_entries: list[tuple[str, int, str]] = []
    jpeg_entries: list[tuple[str, int, str]] = []
    original_entries: list[tuple[str, int, str]] = []
    for sample in samples:
        relative = sample.path.relative_to(root)
        name = sample.generator or sample.subset
        try:
            pixels = read_stored_rgb(sample.path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            summary.failed[relative.as_posix()] = f"{type(exc).__name__}: {exc}"
            continue
        corner = aligned_center_crop_box(pixels.shape[0], pixels.shape[1], size)
        if corner is None:
            skipped[name] += 1
            continue
        top, left = corner
        crop = Image.fromarray(np.ascontiguousarray(pixels[top : top + size, left : left + size]))
        png_path = target / PNG_FOLDER / relative.with_suffix(".png")
        jpeg_path = target / jpeg_folder / relative.with_suffix(".jpg")
        png_path.parent.mkdir(parents=True, exist_ok=True)
        jpeg_path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(png_path, format="PNG", optimize=False)
        crop.save(jpeg_path, format="JPEG", quality=jpeg_quality, subsampling="4:2:0")
        generator = name if sample.label == 1 else ""
        png_entries.append((png_path.relative_to(target / PNG_FOLDER).as_posix(), sample.label, generator))
        jpeg_entries.append((jpeg_path.relative_to(target / jpeg_folder).as_posix(), sample.label, generator))
        original_entries.append((str(sample.path.resolve()), sample.label, generator))
        if sample.label == 1:
            fakes[name] += 1
        else:
            summary.n_real += 1
    summary.n_fake = dict(sorted(fakes.items()))
    summary.skipped_small = dict(sorted(skipped.items()))
    if not summary.n_real or not fakes:
        raise DevSetError(
            f"no real or no generated image in {root} is at least {size} x {size} pixels: nothing to measure"
        )
    generators = sorted(fakes)
    for variant, entries in (
        (PNG_FOLDER, png_entries),
        (jpeg_folder, jpeg_entries),
        (ORIGINALS, original_entries),
    ):
        manifest = target / variant / MANIFEST_NAME
        _write_manifest(manifest, _per_generator_rows(entries, generators))
        summary.manifests[variant] = manifest.relative_to(target).as_posix()
    (target / SUMMARY_NAME).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return target


def file_features(path: str | Path) -> dict[str, Any]:
    """The content-blind facts of an image file: size in bytes, width, height, format (header only).

    Example:
        >>> import io
        >>> from tempfile import TemporaryDirectory
        >>> with TemporaryDirectory() as folder:
        ...     path = Path(folder) / "x.png"
        ...     Image.new("RGB", (16, 8)).save(path)
        ...     features = file_features(path)
        >>> features["width"], features["height"], features["format"]
        (16, 8, 'PNG')
    """
    file = Path(path)
    with Image.open(file) as image:
        width, height = image.size
        image_format = image.format if image.format in FORMATS else "OTHER"
    return {"bytes": file.stat().st_size, "width": width, "height": height, "format": image_format}


def _feature_matrix(records: list[dict[str, Any]]) -> np.ndarray:
    columns = [
        [math.log(max(record["bytes"], 1)) for record in records],
        [float(record["width"]) for record in records],
        [float(record["height"]) for record in records],
    ]
    columns += [[float(record["format"] == name) for record in records] for name in FORMATS]
    return np.array(columns, dtype=np.float64).T


def content_blind_baseline(
    manifest: str | Path, *, folds: int = 5, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """ROC-AUC of a cross-validated logistic regression on (file size, width, height, format), per subset.

    For each subset of the manifest, a standardised logistic regression (scikit-learn) is fitted on
    log file size, width, height and a one-hot format, in stratified `folds`-fold cross-validation
    (fewer folds when a class has fewer images), and the AUC is computed on the out-of-fold
    probabilities. Near 0.5 means these cues say nothing about the label; a detector measured where
    this is high may be reading them instead of the pixels.

    Args:
        manifest: a manifest `pixelsleuth.train.datasets.discover` reads (csv/tsv/jsonl with
            path, label, subset, generator).
        folds: cross-validation folds (at most).
        seed: seed of the fold assignment.

    Returns:
        ``{subset: {"auc", "n_real", "n_fake", "folds"}}``; ``auc`` is NaN where a subset has fewer
        than two images of a class.

    Raises:
        pixelsleuth.train.datasets.DatasetError: the manifest cannot be read or lists no image.

    Example:
        >>> content_blind_baseline("crops/png/manifest.csv")["stylegan2-ada-ffhq"]["auc"]  # doctest: +SKIP
        0.55
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pixelsleuth.bench.metrics import roc_auc

    source = Path(manifest)
    if source.suffix.lower() not in MANIFEST_SUFFIXES:
        raise DevSetError(f"{source} is not a manifest (.csv, .tsv or .jsonl)")
    samples = discover(source)
    features: dict[Path, dict[str, Any]] = {}
    by_subset: dict[str, list[Sample]] = {}
    for sample in samples:
        by_subset.setdefault(sample.subset, []).append(sample)
        if sample.path not in features:
            features[sample.path] = file_features(sample.path)
    results: dict[str, dict[str, Any]] = {}
    for subset, members in by_subset.items():
        labels = np.array([sample.label for sample in members])
        n_fake = int(labels.sum())
        n_real = int(labels.size - n_fake)
        n_folds = min(folds, n_real, n_fake)
        result: dict[str, Any] = {"auc": float("nan"), "n_real": n_real, "n_fake": n_fake, "folds": n_folds}
        if n_folds >= 2:
            matrix = _feature_matrix([features[sample.path] for sample in members])
            probabilities = np.zeros(labels.size)
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            for train, test in splitter.split(matrix, labels):
                model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
                model.fit(matrix[train], labels[train])
                probabilities[test] = model.predict_proba(matrix[test])[:, 1]
            result["auc"] = roc_auc(labels, probabilities)
        results[subset] = result
    return results


def score_manifest(
    manifest: str | Path,
    score_images: Callable[[Sequence[Path]], Sequence[float]],
) -> dict[str, dict[str, Any]]:
    """Per-subset AUC, AP and TPR at 1 % FPR of a scorer over a dev-crops manifest.

    Every file is scored once (the real crops repeat in every subset), by `score_images`, which takes
    the unique paths in manifest order and returns one score per path (higher = more likely
    generated; NaN for a file it could not score, left out of the metrics and counted).

    Example:
        >>> score_manifest("crops/png/manifest.csv", lambda paths: [0.5] * len(paths))  # doctest: +SKIP
        {'sd1x': {'n_real': 96, 'n_fake': 143, 'auc': 0.5, ...}, ...}
    """
    from pixelsleuth.bench.metrics import binary_metrics

    samples = discover(manifest)
    unique = list(dict.fromkeys(sample.path for sample in samples))
    scores = dict(zip(unique, np.asarray(score_images(unique), dtype=np.float64).reshape(-1), strict=True))
    results: dict[str, dict[str, Any]] = {}
    for subset in sorted({sample.subset for sample in samples}):
        members = [s for s in samples if s.subset == subset and np.isfinite(scores[s.path])]
        failed = sum(1 for s in samples if s.subset == subset and not np.isfinite(scores[s.path]))
        metrics = binary_metrics([s.label for s in members], [scores[s.path] for s in members])
        results[subset] = {
            "n_real": metrics.n_real,
            "n_fake": metrics.n_fake,
            "failed": failed,
            "auc": metrics.roc_auc,
            "ap": metrics.average_precision,
            "tpr_at_1pct_fpr": metrics.tpr_at_1pct_fpr,
            "fake_flagged_at_0.5": metrics.fake_accuracy,
            "real_flagged_at_0.5": 1.0 - metrics.real_accuracy,
        }
    return results
