"""Write a labelled training set from genuine photos and the generator zoo, with a manifest.

`forge_dataset` crops the photos, launders crops through each generator family (an autoencoder's
encode-decode: the content stays, the pixels are the generator's), samples fully synthetic images from
the families that can, makes local manipulations with their masks, puts every image through the same
`PostProcess` and writes::

    OUTPUT/<split>/<family>/0_real/00000.png            genuine crops
    OUTPUT/<split>/<family>/1_fake/00000.jpg            crops laundered by the family
    OUTPUT/<split>/<family>-synthetic/0_real|1_fake/*   genuine crops / the family's own samples
    OUTPUT/manipulated/<kind>/images/<split>-00000.webp locally edited crops
    OUTPUT/manipulated/<kind>/masks/<split>-00000.png   where they were edited (255)
    OUTPUT/manifest.jsonl                               one JSON line per file written

The ``<split>/<family>`` folders are the ForenSynths layout that `pixelsleuth.train.datasets.discover`
reads; the manifest reads too, with ``skip_labels={"manip", "mask"}``.

Choices that keep the set honest:

- **Split by photo.** Photos are assigned to train / val / test before any crop is drawn, so no photo
  gives crops to two splits. The assignment orders photos by a salted hash of their content (and drops
  byte-identical copies), so it does not depend on the seed or on file names: generator families trained
  on the train split of one forge stay valid for another forge of the same photos with another seed.
- **No pairing within a folder.** In each ``<split>/<family>`` folder the split's photos are shuffled
  and halved: laundered crops come from one half, genuine crops from the other, so the folder never
  holds a photo next to its own reconstruction (a classifier could otherwise match contents instead of
  learning generator traces, and any per-folder evaluation would compare a photo with itself). The
  halving is drawn again for every family, so pooled over families each photo appears about as often
  as real as it does as fake, and content predicts no label. A split with a single photo cannot be
  halved; its real and laundered crops then come from different random windows of that photo.
- **Same post-processing for both labels**, from one distribution (see `pixelsleuth.forge.postprocess`).
- **Deterministic.** Every image draws its randomness from a generator keyed by (seed, what it is, split,
  family, index), so the same seed writes byte-identical files, and adding a family or raising a count
  leaves the files already forged unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

from pixelsleuth.errors import IntakeError
from pixelsleuth.forge.families import ForgeError
from pixelsleuth.forge.manipulate import ManipulationError, ai_edit, copy_move, inpaint, splice
from pixelsleuth.forge.postprocess import PostProcess, PostProcessRecord
from pixelsleuth.intake import load_image

PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"})
DEFAULT_SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MANIPULATION_KINDS = (
    "splice",
    "splice-feather",
    "splice-poisson",
    "copy-move",
    "inpaint-telea",
    "inpaint-ns",
    "ai-edit",
)
SYNTHETIC_SUFFIX = "-synthetic"
# Changing the salt reshuffles which photo lands in which split; keep it fixed across releases.
_SPLIT_SALT = b"pixelsleuth-forge-split-v1"
_PHOTO_CACHE_SIZE = 4


class Family(Protocol):
    """What the forge needs of a generator family (`pixelsleuth.forge.families.GeneratorFamily`)."""

    @property
    def spec(self) -> Any: ...  # has a `name`

    def reconstruct(self, rgb: np.ndarray) -> np.ndarray | None: ...

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Photo:
    """A genuine photo the forge may crop: where it is, its name under the photo folder, its identity."""

    path: Path
    name: str  # relative path under the photo folder, with "/" separators
    sha256: str
    width: int
    height: int


@dataclass
class ForgeReport:
    """What `forge_dataset` wrote.

    Attributes:
        output: the dataset folder.
        manifest: its ``manifest.jsonl``.
        splits: the photo names (relative to the photo folder) of each split.
        skipped_photos: ``(name, reason)`` for each photo left out (unreadable, too small, a duplicate).
        counts: images written per folder (``"train/vae-f8"``, ``"manipulated/splice"``) and label.
        notes: things the forge could not do and went on without (a family that cannot sample, ...).
        files: the number of files written (images and masks).
        bytes: their total size.
        seconds: how long forging took.
    """

    output: Path
    manifest: Path
    splits: dict[str, list[str]]
    skipped_photos: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {
            "output": str(self.output),
            "manifest": str(self.manifest),
            "splits": self.splits,
            "skipped_photos": [list(item) for item in self.skipped_photos],
            "counts": self.counts,
            "notes": self.notes,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """A few lines for a person: photos per split, images per folder, files and time."""
        lines = [
            "photos per split: " + ", ".join(f"{name} {len(names)}" for name, names in self.splits.items())
        ]
        if self.skipped_photos:
            lines.append(
                f"photos left out: {len(self.skipped_photos)} (e.g. {': '.join(self.skipped_photos[0])})"
            )
        for folder, labels in self.counts.items():
            lines.append(f"  {folder}: " + ", ".join(f"{count} {label}" for label, count in labels.items()))
        lines += [f"note: {note}" for note in self.notes]
        size = f"{self.bytes / 2**20:.1f} MiB"
        lines.append(f"{self.files} files, {size} in {self.seconds:.1f} s; manifest {self.manifest}")
        return "\n".join(lines)


def allocate(total: int, fractions: Sequence[float]) -> list[int]:
    """Split `total` items into integer counts proportional to `fractions` (largest remainder).

    Every part with a positive fraction gets at least one item when `total` allows it.

    Example:
        >>> allocate(10, (0.8, 0.1, 0.1)), allocate(3, (0.8, 0.1, 0.1)), allocate(7, (0.5, 0.5))
        ([8, 1, 1], [1, 1, 1], [4, 3])
    """
    weights = np.asarray(fractions, np.float64)
    if total < 0 or weights.ndim != 1 or (weights < 0).any() or weights.sum() <= 0:
        raise ForgeError(f"cannot split {total} items by the fractions {tuple(fractions)}")
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    by_remainder = sorted(range(len(counts)), key=lambda index: (-(exact[index] - counts[index]), index))
    for index in by_remainder[: total - int(counts.sum())]:
        counts[index] += 1
    positive = [index for index in range(len(counts)) if weights[index] > 0]
    if total >= len(positive):
        for index in positive:
            if counts[index] == 0:
                counts[int(np.argmax(counts))] -= 1
                counts[index] = 1
    return [int(count) for count in counts]


def find_photos(folder: Path, *, min_side: int = 1) -> tuple[list[Photo], list[tuple[str, str]]]:
    """Every readable photo under `folder` (recursively) at least `min_side` pixels on its shorter side.

    Each photo is decoded once to check it (orientation applied, as the forge will crop it); byte-identical
    copies are kept once.

    Args:
        folder: the photo folder.
        min_side: the smallest usable shorter side, e.g. the crop size.

    Returns:
        ``(photos, skipped)``: the usable photos in name order, and ``(name, reason)`` for the others.

    Raises:
        ForgeError: `folder` is not a folder.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ForgeError(f"no photo folder at {folder}: give the folder of genuine photos to forge from")
    photos: list[Photo] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for path in _files_under(folder):
        name = path.relative_to(folder).as_posix()
        try:
            loaded = load_image(path)
        except IntakeError as exc:
            skipped.append((name, exc.message))
            continue
        if min(loaded.width, loaded.height) < min_side:
            reason = f"{loaded.width} x {loaded.height} is smaller than the {min_side}-pixel crop"
            skipped.append((name, reason))
        elif loaded.sha256 in seen:
            skipped.append((name, f"a byte-identical copy of {seen[loaded.sha256]}"))
        else:
            seen[loaded.sha256] = name
            photos.append(Photo(path, name, loaded.sha256, loaded.width, loaded.height))
    return photos, skipped


def _files_under(folder: Path) -> list[Path]:
    found = []
    for current, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for filename in sorted(filenames):
            if Path(filename).suffix.lower() in PHOTO_EXTENSIONS and not filename.startswith("."):
                found.append(Path(current) / filename)
    return found


def split_by_photo(
    photos: Sequence[Photo],
    splits: Sequence[str] = DEFAULT_SPLITS,
    fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
) -> dict[str, list[Photo]]:
    """Assign whole photos to splits, in the proportions `fractions`, by a salted hash of their content.

    The assignment does not depend on any seed or on file names, and every split gets at least one photo.

    Raises:
        ForgeError: fewer photos than splits, or `fractions` not matching `splits`.
    """
    if len(splits) != len(fractions) or len(set(splits)) != len(splits):
        raise ForgeError(f"give one fraction per split, and distinct split names: {splits} / {fractions}")
    if len(photos) < len(splits):
        raise ForgeError(
            f"{len(photos)} usable photo(s) cannot be split by photo into {', '.join(splits)}: "
            f"give at least {len(splits)}"
        )
    ordered = sorted(
        photos, key=lambda photo: hashlib.sha256(_SPLIT_SALT + photo.sha256.encode()).hexdigest()
    )
    assignment: dict[str, list[Photo]] = {}
    start = 0
    for name, count in zip(splits, allocate(len(ordered), fractions), strict=True):
        assignment[name] = sorted(ordered[start : start + count], key=lambda photo: photo.name)
        start += count
    return assignment


def forge_dataset(
    photos: Path,
    output: Path,
    *,
    families: Sequence[Family],
    per_family: int,
    seed: int,
    crop: int = 256,
    manipulations_per_kind: int = 0,
    splits: Sequence[str] = DEFAULT_SPLITS,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    manipulation_kinds: Sequence[str] = MANIPULATION_KINDS,
    postprocess: PostProcess | None = None,
    log: Callable[[str], None] | None = None,
    workers: int = 1,
) -> ForgeReport:
    """Forge a labelled dataset from the genuine photos in `photos` into the new folder `output`.

    Images are written one at a time (nothing but a few decoded photos is held in memory); see the
    module documentation for the layout and the choices that keep the set honest.

    Args:
        photos: a folder of genuine photos (searched recursively).
        output: the dataset folder to write; it must not exist yet, or be empty.
        families: the generator families (`pixelsleuth.forge.families.GeneratorFamily`); each launders
            crops if it can reconstruct and gets a ``-synthetic`` folder if it can sample.
        per_family: fake images per family folder over all splits (and as many real ones), divided
            between the splits by `split_fractions`.
        seed: the seed of every random choice.
        crop: the side of the square crops taken from the photos, in pixels; smaller photos are left out.
        manipulations_per_kind: manipulated images per kind over all splits (0: none).
        splits: the split names.
        split_fractions: the share of photos, and of images, of each split.
        manipulation_kinds: the kinds to make, from `MANIPULATION_KINDS`.
        postprocess: the post-processing of every image (default `PostProcess()`).
        log: called with a line of progress per folder.
        workers: processes forging family folders at once (each with one torch thread); the files
            and the manifest are byte-identical for any number of workers.

    Returns:
        A `ForgeReport`.

    Raises:
        ForgeError: no photo folder, too few usable photos, an output folder that is not empty, a
            family name used twice, an unknown manipulation kind, a negative count or seed.

    Example:
        >>> from pixelsleuth.forge.families import untrained_family  # doctest: +SKIP
        >>> zoo = [untrained_family("ae-nearest-x2"), untrained_family("vae-nearest-x4")]  # doctest: +SKIP
        >>> report = forge_dataset("photos", "forged", families=zoo, per_family=100, seed=0)  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    started = time.perf_counter()
    say = log or (lambda line: None)
    postprocess = postprocess or PostProcess()
    names = [str(family.spec.name) for family in families]
    _check_settings(names, per_family, seed, crop, manipulations_per_kind, manipulation_kinds)
    if workers < 1:
        raise ForgeError(f"the number of workers must be at least 1, got {workers}")
    output = Path(output).expanduser()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ForgeError(f"{output} exists and is not an empty folder: give a new folder for the dataset")

    usable, skipped = find_photos(photos, min_side=crop)
    by_split = split_by_photo(usable, splits, split_fractions)
    output.mkdir(parents=True, exist_ok=True)
    report = ForgeReport(
        output=output,
        manifest=output / "manifest.jsonl",
        splits={name: [photo.name for photo in members] for name, members in by_split.items()},
        skipped_photos=skipped,
    )
    say(f"{len(usable)} photos: " + ", ".join(f"{name} {len(members)}" for name, members in by_split.items()))
    with report.manifest.open("w", encoding="utf-8") as manifest:
        forge = _Forge(output, manifest, postprocess, seed, crop, report)
        fake_counts = allocate(per_family, split_fractions)
        tasks = [
            _FolderTask(output, postprocess, seed, crop, split, tuple(by_split[split]), family, name, count)
            for split, count in zip(splits, fake_counts, strict=True)
            for family, name in zip(families, names, strict=True)
        ]
        for task, result in zip(tasks, _run_folder_tasks(tasks, workers), strict=True):
            result.merge_into(report, manifest)
            for folder in (f"{task.split}/{task.name}", f"{task.split}/{task.name}{SYNTHETIC_SUFFIX}"):
                if folder in report.counts:
                    say(f"{folder}: {report.counts[folder]}")
        manipulation_counts = allocate(manipulations_per_kind, split_fractions)
        for kind in manipulation_kinds:
            for split, count in zip(splits, manipulation_counts, strict=True):
                forge.manipulations(kind, split, by_split[split], families, names, count)
            say(f"manipulated/{kind}: {report.counts.get(f'manipulated/{kind}', {})}")
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _FolderTask:
    """One family's folders of one split: what a worker needs to forge them on its own."""

    output: Path
    postprocess: PostProcess
    seed: int
    crop: int
    split: str
    pool: tuple[Photo, ...]
    family: Family
    name: str
    count: int


@dataclass
class _FolderResult:
    manifest_lines: str
    counts: dict[str, dict[str, int]]
    notes: list[str]
    files: int
    bytes: int

    def merge_into(self, report: ForgeReport, manifest: Any) -> None:
        manifest.write(self.manifest_lines)
        for folder, labels in self.counts.items():
            merged = report.counts.setdefault(folder, {})
            for label, count in labels.items():
                merged[label] = merged.get(label, 0) + count
        for note in self.notes:
            if note not in report.notes:
                report.notes.append(note)
        report.files += self.files
        report.bytes += self.bytes


def _forge_folders(task: _FolderTask) -> _FolderResult:
    """Write one family's laundered and synthetic folders of one split; the manifest lines come back."""
    lines = io.StringIO()
    report = ForgeReport(output=task.output, manifest=task.output / "manifest.jsonl", splits={})
    forge = _Forge(task.output, lines, task.postprocess, task.seed, task.crop, report)
    forge.laundered_folder(task.split, task.pool, task.family, task.name, task.count)
    forge.synthetic_folder(task.split, task.pool, task.family, task.name, task.count)
    return _FolderResult(lines.getvalue(), report.counts, report.notes, report.files, report.bytes)


def one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _run_folder_tasks(tasks: Sequence[_FolderTask], workers: int) -> Iterator[_FolderResult]:
    """Results in task order; with several workers, forged in parallel processes (spawned, so that no
    torch thread pool is forked)."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_forge_folders, tasks)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    context = get_context("spawn")
    size = min(workers, len(tasks))
    with ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=one_torch_thread) as pool:
        yield from pool.map(_forge_folders, tasks)


def _check_settings(
    names: list[str], per_family: int, seed: int, crop: int, manipulations: int, kinds: Sequence[str]
) -> None:
    if len(set(names)) != len(names):
        raise ForgeError(f"each family may be given once; got {', '.join(names)}")
    if any(name.endswith(SYNTHETIC_SUFFIX) or name == "manipulated" for name in names):
        raise ForgeError(f"a family name may not be 'manipulated' or end in {SYNTHETIC_SUFFIX!r}")
    if per_family < 0 or manipulations < 0:
        raise ForgeError("image counts cannot be negative")
    if seed < 0:
        raise ForgeError(f"the seed must be a non-negative integer, got {seed}")
    if crop < 16:
        raise ForgeError(f"the crop must be at least 16 pixels, got {crop}")
    unknown = sorted(set(kinds) - set(MANIPULATION_KINDS))
    if unknown:
        raise ForgeError(
            f"unknown manipulation kind(s) {', '.join(unknown)}; known: {', '.join(MANIPULATION_KINDS)}"
        )


def _seeded(seed: int, *words: str | int) -> np.random.Generator:
    """A generator keyed by the seed and a path of words, independent of every other key."""
    keys = [int.from_bytes(hashlib.sha256(str(word).encode()).digest()[:8], "little") for word in words]
    return np.random.default_rng([seed, *keys])


def _crop_box(photo: Photo, crop: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    left = int(rng.integers(0, photo.width - crop + 1))
    top = int(rng.integers(0, photo.height - crop + 1))
    return left, top, left + crop, top + crop


@dataclass
class _Item:
    """One image to forge: its index in its folder, the photo and window it starts from, its randomness."""

    index: int
    rng: np.random.Generator
    photo: Photo | None = None
    box: tuple[int, int, int, int] | None = None


class _Forge:
    """The writing side of `forge_dataset`: crops photos, encodes images, keeps the manifest."""

    def __init__(
        self, output: Path, manifest: Any, postprocess: PostProcess, seed: int, crop: int, report: ForgeReport
    ):
        self.output, self.manifest, self.postprocess = output, manifest, postprocess
        self.seed, self.crop, self.report = seed, crop, report
        self._photos: OrderedDict[Path, np.ndarray] = OrderedDict()

    def note(self, line: str) -> None:
        if line not in self.report.notes:
            self.report.notes.append(line)

    # Reading.
    def pixels(self, photo: Photo, box: tuple[int, int, int, int]) -> np.ndarray:
        rgb = self._photos.get(photo.path)
        if rgb is None:
            rgb = load_image(photo.path).rgb
            self._photos[photo.path] = rgb
            if len(self._photos) > _PHOTO_CACHE_SIZE:
                self._photos.popitem(last=False)
        self._photos.move_to_end(photo.path)
        left, top, right, bottom = box
        return np.array(rgb[top:bottom, left:right])

    def plan(self, what: str, split: str, folder: str, count: int, pool: Sequence[Photo]) -> list[_Item]:
        """Draw the photo and window of `count` images; ordered by photo so each is decoded once."""
        items = []
        for index in range(count):
            rng = _seeded(self.seed, what, split, folder, index)
            photo = pool[int(rng.integers(len(pool)))] if pool else None
            items.append(_Item(index, rng, photo, _crop_box(photo, self.crop, rng) if photo else None))
        return sorted(items, key=lambda item: (item.photo.name if item.photo else "", item.index))

    # Writing.
    def write(self, relative: str, rgb: np.ndarray, record: PostProcessRecord, fields: dict[str, Any]) -> str:
        processed = self.postprocess.apply(rgb, record)
        path = f"{relative}{processed.extension}"
        self._write_file(path, processed.data, record, fields)
        return path

    def _write_file(self, path: str, data: bytes, record: PostProcessRecord, fields: dict[str, Any]) -> None:
        target = self.output / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        line = {
            "path": path,
            **fields,
            "width": record.output_size[0],
            "height": record.output_size[1],
            "postprocess": record.to_dict(),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        self.manifest.write(json.dumps(line, sort_keys=False) + "\n")
        self.report.files += 1
        self.report.bytes += len(data)
        folder = (
            str(Path(path).parent.parent)
            if Path(path).parent.name in _LEAF_FOLDERS
            else str(Path(path).parent)
        )
        labels = self.report.counts.setdefault(folder, {})
        labels[fields["label"]] = labels.get(fields["label"], 0) + 1

    def _fields(
        self, label: str, split: str, generator: str, family: str | None, kind: str, item: _Item
    ) -> dict:
        return {
            "label": label,
            "split": split,
            "generator": generator,
            "family": family,
            "kind": kind,
            "source_photo": item.photo.name if item.photo else None,
            "crop_box": list(item.box) if item.box else None,
        }

    def real_crops(self, split: str, folder: str, pool: Sequence[Photo], count: int) -> None:
        for item in self.plan("real", split, folder, count, pool):
            assert item.photo is not None and item.box is not None
            rgb = self.pixels(item.photo, item.box)
            record = self.postprocess.draw(item.rng, self.crop, self.crop)
            fields = self._fields("real", split, folder, None, "real", item)
            self.write(f"{split}/{folder}/0_real/{item.index:05d}", rgb, record, fields)

    # The three kinds of folder.
    def laundered_folder(
        self, split: str, pool: Sequence[Photo], family: Family, name: str, count: int
    ) -> None:
        if count == 0:
            return
        launder_pool, real_pool = _halves(pool, _seeded(self.seed, "halves", split, name))
        written = 0
        for item in self.plan("launder", split, name, count, launder_pool):
            assert item.photo is not None and item.box is not None
            rendered = family.reconstruct(self.pixels(item.photo, item.box))
            if rendered is None:
                if written == 0:
                    self.note(f"{name} cannot reconstruct, so it launders no photos")
                    return
                raise ForgeError(f"{name} reconstructed an image and then refused to reconstruct another")
            rendered = _to_crop_size(np.asarray(rendered), self.crop)
            record = self.postprocess.draw(item.rng, self.crop, self.crop)
            fields = self._fields("fake", split, name, name, "laundered", item)
            self.write(f"{split}/{name}/1_fake/{item.index:05d}", rendered, record, fields)
            written += 1
        self.real_crops(split, name, real_pool, written)

    def synthetic_folder(
        self, split: str, pool: Sequence[Photo], family: Family, name: str, count: int
    ) -> None:
        if count == 0:
            return
        folder = f"{name}{SYNTHETIC_SUFFIX}"
        written = 0
        for item in self.plan("synthetic", split, folder, count, ()):
            sampled = family.sample(item.rng, self.crop)
            if sampled is None:
                if item.index == 0:
                    return  # a family without a sampler (an autoencoder) has no synthetic folder
                raise ForgeError(f"{name} sampled an image and then refused to sample another")
            sampled = _to_crop_size(np.asarray(sampled), self.crop)
            record = self.postprocess.draw(item.rng, self.crop, self.crop)
            fields = self._fields("fake", split, folder, name, "synthetic", item)
            self.write(f"{split}/{folder}/1_fake/{item.index:05d}", sampled, record, fields)
            written += 1
        self.real_crops(split, folder, pool, written)

    def manipulations(
        self,
        kind: str,
        split: str,
        pool: Sequence[Photo],
        families: Sequence[Family],
        names: Sequence[str],
        count: int,
    ) -> None:
        folder = f"manipulated/{kind}"
        for item in self.plan("manipulate", split, kind, count, pool):
            assert item.photo is not None and item.box is not None
            image = self.pixels(item.photo, item.box)
            fields = self._fields("manip", split, kind, None, kind, item)
            edited = self._manipulate(kind, image, item, pool, families, names, fields)
            if edited is None:
                self.note(f"no family can reconstruct, so there are no {kind} images")
                return
            edited_rgb, mask = edited
            record = self.postprocess.draw(item.rng, self.crop, self.crop)
            stem = f"{split}-{item.index:05d}"
            mask_path = f"{folder}/masks/{stem}.png"
            image_path = self.write(
                f"{folder}/images/{stem}", edited_rgb, record, {**fields, "mask": mask_path}
            )
            mask_record = replace(record, format="png", quality=None, subsampling=None)
            moved_mask = self.postprocess.transform_mask(mask, record)
            mask_fields = {
                **fields,
                "label": "mask",
                "image": image_path,
                "changed_fraction": _fraction(moved_mask),
            }
            self._write_file(mask_path, _png(moved_mask), mask_record, mask_fields)

    def _manipulate(
        self,
        kind: str,
        image: np.ndarray,
        item: _Item,
        pool: Sequence[Photo],
        families: Sequence[Family],
        names: Sequence[str],
        fields: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        rng = item.rng
        if kind.startswith("splice"):
            others = [photo for photo in pool if photo != item.photo] or list(pool)
            donor_photo = others[int(rng.integers(len(others)))]
            donor_box = _crop_box(donor_photo, self.crop, rng)
            fields.update(donor_photo=donor_photo.name, donor_box=list(donor_box))
            blend = {"splice": False, "splice-feather": "feather", "splice-poisson": "poisson"}[kind]
            return splice(image, self.pixels(donor_photo, donor_box), rng, blend=blend)
        if kind == "copy-move":
            return copy_move(image, rng)
        if kind.startswith("inpaint"):
            return inpaint(image, rng, method="telea" if kind == "inpaint-telea" else "ns")
        # ai-edit: a random family; the next one in a random order when it cannot reconstruct.
        for position in rng.permutation(len(families)):
            edit_rng = _seeded(self.seed, "ai-edit", fields["split"], item.index, names[position])
            try:
                edited = ai_edit(image, edit_rng, families[position].reconstruct)
            except ManipulationError:
                continue
            fields.update(family=names[position])
            return edited
        return None


_LEAF_FOLDERS = {"0_real", "1_fake", "images", "masks"}


def _halves(pool: Sequence[Photo], rng: np.random.Generator) -> tuple[list[Photo], list[Photo]]:
    if len(pool) < 2:
        return list(pool), list(pool)
    order = [pool[index] for index in rng.permutation(len(pool))]
    middle = math.ceil(len(order) / 2)
    return order[:middle], order[middle:]


def _to_crop_size(rgb: np.ndarray, crop: int) -> np.ndarray:
    """A generator's output at the crop size (resized in the rare case a family pads or trims)."""
    if rgb.shape[:2] == (crop, crop):
        return rgb
    return cv2.resize(rgb, (crop, crop), interpolation=cv2.INTER_AREA)


def _fraction(mask: np.ndarray) -> float:
    return round(float(np.count_nonzero(mask)) / max(mask.size, 1), 6)


def _png(mask: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, "PNG")
    return buffer.getvalue()
