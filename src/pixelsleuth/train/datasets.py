"""Labelled image datasets for training and evaluating detectors: find the images, then stream them.

`discover` recognises the layouts the literature ships its data in, and manifest files:

- **ForenSynths / CNNDetection** (Wang et al., CVPR 2020; used by NPR and most GAN-detection papers):
  ``ROOT/<subset>/<class>/0_real|1_fake/*`` (e.g. ``test/progan/airplane/0_real``) or, as several test
  sets and the training split are shipped, ``ROOT/<subset>/0_real|1_fake/*`` (``test/biggan/1_fake``,
  ``train/car/0_real``). `subset` is the first folder under ROOT (ROOT's own name when the label
  folders sit directly in it); the object class folder, when there is one, is kept in `generator`
  (the subset folder already names the generator there, so the field carries the finer split).
- **GenImage** (Zhu et al., NeurIPS 2023): ``ROOT/<generator>/<split>/ai|nature/*`` with split
  ``train`` or ``val``; also the layout the archives unpack to, with one more level
  (``ROOT/<generator>/imagenet_ai_0419_sdv4/train/ai``), and a single generator's folder given as
  ROOT (``ROOT/train/ai``). `subset` and `generator` are the generator folder.
- **Manifest**: a ``.csv``, ``.tsv`` or ``.jsonl`` file with columns (keys) ``path`` (or ``relpath``),
  ``label`` and optionally ``generator`` (or ``generator_or_set``) and ``subset``. Labels may be
  0/1, real/fake, real/generated or nature/ai; relative paths resolve against the manifest's folder.
  `subset` defaults to the generator column, else to the manifest's file name without extension.

`ImageDataset` then loads each image only when it is indexed, so a dataset of a million files costs
a list of paths in memory.
"""

from __future__ import annotations

import csv
import inspect
import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.intake import load_image

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
MANIFEST_SUFFIXES = frozenset({".csv", ".tsv", ".jsonl"})
FORENSYNTHS_LABELS = {"0_real": 0, "1_fake": 1}
GENIMAGE_LABELS = {"nature": 0, "ai": 1}
LABEL_NAMES = {0: "real", 1: "fake"}
_LABEL_WORDS = {
    "0": 0,
    "real": 0,
    "nature": 0,
    "authentic": 0,
    "1": 1,
    "fake": 1,
    "generated": 1,
    "ai": 1,
    "synthetic": 1,
}
_PATH_KEYS = ("path", "relpath")
_GENERATOR_KEYS = ("generator", "generator_or_set")
_EXPECTED_LAYOUTS = (
    "expected ROOT/<subset>/<class>/0_real|1_fake (or ROOT/<subset>/0_real|1_fake), "
    "ROOT/<generator>/<split>/ai|nature, or a manifest (.csv, .tsv, .jsonl) with path and label columns"
)


class DatasetError(PixelsleuthError):
    """A dataset could not be found or read as labelled images."""

    type = "dataset_error"


class DatasetNotFoundError(DatasetError):
    type = "dataset_not_found"


class EmptyDatasetError(DatasetError):
    type = "empty_dataset"


class BadLabelError(DatasetError):
    type = "bad_label"


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: int  # 0 real, 1 generated
    subset: str  # what per-subset numbers are grouped by (generator, test set or object class)
    generator: str | None  # the generator, or for ForenSynths the object class folder; None if unknown


def discover(
    source: str | Path,
    *,
    split: str = "train",
    skip_labels: Collection[str] = (),
) -> list[Sample]:
    """Find every labelled image under a dataset folder, or listed in a manifest file.

    Args:
        source: a dataset root (ForenSynths or GenImage layout) or a manifest file.
        split: which GenImage split to take (``"train"`` or ``"val"``); other layouts ignore it.
        skip_labels: manifest labels to leave out instead of refusing (e.g. ``{"manip"}`` for a
            set that also lists locally edited images).

    Returns:
        Samples sorted by path (deterministic across runs and machines).

    Raises:
        DatasetNotFoundError: `source` does not exist.
        EmptyDatasetError: no labelled image was found.
        BadLabelError: a manifest row has a label that is neither real nor generated.

    Example:
        >>> samples = discover("CNNDetection/test")  # doctest: +SKIP
        >>> samples[0].subset, samples[0].label  # doctest: +SKIP
        ('biggan', 0)
    """
    root = Path(source).expanduser()
    if not root.exists():
        raise DatasetNotFoundError(f"no dataset at {root}: the folder or manifest file does not exist")
    if root.is_file():
        if root.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DatasetError(
                f"{root} is a file but not a manifest: give a folder, or a .csv, .tsv or .jsonl manifest"
            )
        samples = _read_manifest(root, skip_labels)
    else:
        samples = _discover_folder(root, split)
    if not samples:
        raise EmptyDatasetError(f"no images found under {root}: {_EXPECTED_LAYOUTS}")
    return sorted(samples, key=lambda sample: str(sample.path))


def _discover_folder(root: Path, split: str) -> list[Sample]:
    forensynths: list[Sample] = []
    genimage: list[Sample] = []
    genimage_splits: set[str] = set()
    for folder, dirnames, _ in os.walk(root, followlinks=True):
        dirnames.sort()
        here = Path(folder)
        name = here.name
        if here != root and name in FORENSYNTHS_LABELS:
            parts = here.relative_to(root).parts[:-1]
            subset = parts[0] if parts else root.name
            generator = "/".join(parts[1:]) or None
            label = FORENSYNTHS_LABELS[name]
            forensynths += [Sample(path, label, subset, generator) for path in _images_under(here)]
            dirnames.clear()
        elif here != root and name in GENIMAGE_LABELS:
            split_name = here.parent.name
            genimage_splits.add(split_name)
            if split_name == split:
                parts = here.relative_to(root).parts[:-2]
                subset = parts[0] if parts else root.name
                genimage += [Sample(p, GENIMAGE_LABELS[name], subset, subset) for p in _images_under(here)]
            dirnames.clear()
    if forensynths:
        return forensynths
    if genimage_splits and not genimage:
        raise EmptyDatasetError(
            f"no images for split {split!r} under {root}: the GenImage layout there has the split(s) "
            f"{', '.join(sorted(genimage_splits))}"
        )
    return genimage


def _images_under(folder: Path) -> Iterable[Path]:
    for current, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for filename in sorted(filenames):
            if Path(filename).suffix.lower() in IMAGE_EXTENSIONS and not filename.startswith("."):
                yield Path(current) / filename


def parse_label(value: Any, *, where: str = "") -> int:
    """A label as 0 (real) or 1 (generated), from 0/1, real/fake, real/generated or nature/ai.

    Example:
        >>> parse_label("AI"), parse_label(0), parse_label("real")
        (1, 0, 0)
    """
    word = str(value).strip().lower()
    if isinstance(value, bool) or word not in _LABEL_WORDS:
        place = f"{where}: " if where else ""
        raise BadLabelError(
            f"{place}label {value!r} is neither real nor generated; use 0/1, real/fake, "
            "real/generated or nature/ai"
        )
    return _LABEL_WORDS[word]


def _read_manifest(manifest: Path, skip_labels: Collection[str]) -> list[Sample]:
    skipped = {label.strip().lower() for label in skip_labels}
    base = manifest.parent
    samples: list[Sample] = []
    missing: list[Path] = []
    for line_number, row in _manifest_rows(manifest):
        where = f"{manifest} line {line_number}"
        path_value = _first_present(row, _PATH_KEYS)
        if path_value is None or "label" not in row:
            raise DatasetError(f"{where}: a manifest row needs a 'path' and a 'label' column (or key)")
        if str(row["label"]).strip().lower() in skipped:
            continue
        label = parse_label(row["label"], where=where)
        path = Path(str(path_value)).expanduser()
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            missing.append(path)
            continue
        generator = _first_present(row, _GENERATOR_KEYS)
        generator = str(generator) if generator not in (None, "") else None
        subset = row.get("subset") or generator or manifest.stem
        samples.append(Sample(path, label, str(subset), generator))
    if missing:
        logger.warning(
            "%d file(s) listed in %s do not exist and were left out, e.g. %s",
            len(missing),
            manifest,
            missing[0],
        )
    return samples


def _manifest_rows(manifest: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    suffix = manifest.suffix.lower()
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        if suffix == ".jsonl":
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    message = f"{manifest} line {line_number} is not valid JSON: {exc.msg}"
                    raise DatasetError(message) from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{manifest} line {line_number}: expected a JSON object per line")
                yield line_number, record
        else:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                yield reader.line_num, {key.strip(): value for key, value in row.items() if key is not None}


def _first_present(row: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def label_counts(samples: Iterable[Sample]) -> dict[str, dict[str, int]]:
    """Real, fake and total counts per subset, subsets in sorted order.

    Example:
        >>> label_counts([Sample(Path("a.png"), 0, "progan", None), Sample(Path("b.png"), 1, "progan", None)])
        {'progan': {'real': 1, 'fake': 1, 'total': 2}}
    """
    counts: dict[str, dict[str, int]] = {}
    for sample in samples:
        row = counts.setdefault(sample.subset, {"real": 0, "fake": 0, "total": 0})
        row[LABEL_NAMES[sample.label]] += 1
        row["total"] += 1
    return dict(sorted(counts.items()))


def format_label_counts(counts: dict[str, dict[str, int]], *, title: str = "") -> str:
    """A plain-text table of `label_counts`, with a total row (printed before training).

    Example:
        >>> print(format_label_counts({"progan": {"real": 3, "fake": 2, "total": 5}}))
        subset  real  fake  total
        progan     3     2      5
        total      3     2      5
    """
    totals = {key: sum(row[key] for row in counts.values()) for key in ("real", "fake", "total")}
    rows = [*counts.items(), ("total", totals)]
    width = max(len("subset"), *(len(name) for name, _ in rows))
    lines = [f"{title}" if title else None, f"{'subset':<{width}}  {'real':>4}  {'fake':>4}  {'total':>5}"]
    for name, row in rows:
        lines.append(f"{name:<{width}}  {row['real']:>4}  {row['fake']:>4}  {row['total']:>5}")
    return "\n".join(line for line in lines if line is not None)


# f(image), f(image, rng) or f(image, *, rng): uint8 H x W x 3 -> uint8 H x W x 3
Transform = Callable[..., np.ndarray]


class UnreadableImagesError(DatasetError):
    type = "unreadable_images"


class ImageDataset(Dataset):
    """Stream labelled images from disk: each file is read only when its index is asked for.

    Item ``i`` is ``(image, label)``: `image` a uint8 tensor H x W x 3 (after `transform`), `label`
    an int. The transform receives a NumPy Generator seeded from ``(seed, epoch, i)`` when it takes
    a second required argument or one named ``rng``, so augmentations are the same for a given epoch
    whatever the number of DataLoader workers, and a resumed run sees exactly the images an
    uninterrupted one would.

    Unreadable files: with ``on_error="substitute"`` (the default) a file that fails to load is
    logged once and replaced by the next readable sample of the same label (deterministically, by
    index), so one corrupt file in a research dataset does not end a ten-hour run; the paths end up
    in `failures` (of the process that read them). ``on_error="raise"`` raises the intake error.

    Args:
        samples: from `discover`.
        transform: ``f(image)`` or ``f(image, rng)``; None returns the image as decoded.
        seed: base seed of the per-item generators.
        on_error: ``"substitute"`` or ``"raise"``.

    Example:
        >>> dataset = ImageDataset(discover("data/train"), transform=center_crop_224)  # doctest: +SKIP
        >>> image, label = dataset[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        transform: Transform | None = None,
        *,
        seed: int = 0,
        on_error: str = "substitute",
    ) -> None:
        if on_error not in ("substitute", "raise"):
            raise ValueError(f"on_error must be 'substitute' or 'raise', got {on_error!r}")
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed
        self.on_error = on_error
        self.epoch = 0
        self.failures: set[Path] = set()
        self._rng_passing = "none" if transform is None else _rng_passing(transform)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of `epoch` (call before iterating a DataLoader)."""
        self.epoch = epoch

    @property
    def labels(self) -> np.ndarray:
        return np.array([sample.label for sample in self.samples], dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample_index, image = self._load_readable(index)
        if self.transform is not None:
            if self._rng_passing == "none":
                image = self.transform(image)
            else:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                if self._rng_passing == "positional":
                    image = self.transform(image, rng)
                else:
                    image = self.transform(image, rng=rng)
        if not image.flags.writeable or not image.flags.c_contiguous:
            image = np.ascontiguousarray(image).copy()
        return torch.from_numpy(image), self.samples[sample_index].label

    def _load_readable(self, index: int) -> tuple[int, np.ndarray]:
        sample = self.samples[index]
        try:
            return index, load_image(sample.path).rgb
        except (PixelsleuthError, OSError) as exc:
            if self.on_error == "raise":
                raise
            self._note_failure(sample.path, exc)
        count = len(self.samples)
        for step in range(1, count):
            candidate_index = (index + step) % count
            candidate = self.samples[candidate_index]
            if candidate.label != sample.label or candidate.path in self.failures:
                continue
            try:
                return candidate_index, load_image(candidate.path).rgb
            except (PixelsleuthError, OSError) as exc:
                self._note_failure(candidate.path, exc)
        raise UnreadableImagesError(
            f"no readable {LABEL_NAMES[sample.label]} image is left to stand in for {sample.path}: "
            f"every one of them failed to load"
        )

    def _note_failure(self, path: Path, exc: BaseException) -> None:
        if path not in self.failures:
            self.failures.add(path)
            logger.warning("skipping unreadable image %s (%s); a neighbouring sample stands in", path, exc)


def _rng_passing(function: Callable[..., Any]) -> str:
    """How `function` takes the per-item generator: "positional", "keyword" (``rng=``) or "none"."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: call them with the image alone
        return "none"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]
    if len(required) >= 2:
        return "positional"
    if any(p.name == "rng" for p in parameters):
        return "keyword"
    return "none"


def holdout_split(
    samples: Sequence[Sample], fraction: float, *, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split off a seeded, label-stratified `fraction` of `samples` for validation.

    Each label keeps at least one training sample and gives at least one validation sample when it
    has two or more. Both parts stay sorted by path.

    Returns:
        ``(train, val)``.

    Example:
        >>> samples = [Sample(Path(f"{i}.png"), i % 2, "all", None) for i in range(20)]
        >>> train, val = holdout_split(samples, 0.2, seed=0)
        >>> len(train), len(val), sorted(label_counts(val)["all"].values())
        (16, 4, [2, 2, 4])
    """
    rng = np.random.default_rng(seed)
    held_out: set[int] = set()
    for label in (0, 1):
        indices = [i for i, sample in enumerate(samples) if sample.label == label]
        if len(indices) < 2:
            continue
        count = min(len(indices) - 1, max(1, round(fraction * len(indices))))
        held_out.update(int(i) for i in rng.permutation(indices)[:count])
    train = [sample for i, sample in enumerate(samples) if i not in held_out]
    val = [sample for i, sample in enumerate(samples) if i in held_out]
    return train, val
