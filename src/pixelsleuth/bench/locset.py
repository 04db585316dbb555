"""Localization sets: manipulated images paired with their ground-truth masks, and genuine images.

One reader for every layout `evaluate-localization` accepts, and the fixed train / held-out split of
the manip manifest (`../shared/data/manip/manifest.tsv`) that the learned localizer trains on and every
localization table is measured on.

Layouts (`discover_pairs`):

- **manifest**: a ``manifest.tsv`` with the manip columns (relpath, label, dataset, pair, note); the mask
  of each manipulated image is chosen by `chosen_mask` and inverted where its note says black marks
  the manipulation (NIST's convention).
- **CASIA** (``Tp/`` or ``images/`` with ``*_gt.png`` masks in ``masks/`` or ``gt/``), **Columbia**
  (``*_edgemask``/``*_mask`` files) and **COVERAGE** (``image/Nt.tif`` with ``mask/Nforged.tif``):
  the mask of ``images/NAME.ext`` is the file in a mask folder whose stem is NAME, NAME_gt, NAME_mask,
  NAMEforged (COVERAGE's ``Nt`` -> ``Nforged``) or NAME with ``_mask``; ``Au/``, ``authentic/`` and
  ``pristine/`` hold genuine images.

The split: within each dataset, manipulated images are ordered by a salted hash of their relpath and
the first half (rounded up) is held out; a pristine original goes with the forgeries made from it (so
no photo gives one forgery to training and another to measuring), and pristine images that pair with
nothing are split by the same hash.

Example:
    >>> manip_split("casia1/images/a.jpg") in ("train", "heldout")
    True
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsleuth.errors import UsageError
from pixelsleuth.localization.metrics import truth_mask

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})
MASK_DIRS = ("masks", "mask", "gt", "groundtruth", "ground_truth", "Gt", "GT")
IMAGE_DIRS = ("images", "image", "Tp", "tampered", "fake", "manipulated", "4cam_splc")
GENUINE_DIRS = ("Au", "authentic", "pristine", "real", "4cam_auth")
MASK_SUFFIXES = ("", "_gt", "_mask", "_edgemask", "forged", "_forged")
_SPLIT_SALT = b"pixelsleuth-manip-split-v1"
INVERTED_MASK_NOTE = "BLACK(0)=manipulated"  # the manifest's note on masks in NIST's convention


@dataclass(frozen=True)
class LocalizationSample:
    """One image of a localization set: manipulated with a mask, or genuine (mask None)."""

    image: Path
    mask: Path | None
    dataset: str
    manipulation: str = "unknown"
    invert_mask: bool = False
    split: str = ""  # "train" or "heldout" in the manip manifest; "" where a set has no split
    relpath: str = ""

    @property
    def genuine(self) -> bool:
        return self.mask is None


def _rank(relpath: str) -> str:
    return hashlib.sha256(_SPLIT_SALT + relpath.encode()).hexdigest()


def manip_split(relpath: str, dataset_members: list[str] | None = None) -> str:
    """ "heldout" or "train" for one relpath among its dataset's members (itself alone by default)."""
    members = sorted(set(dataset_members or [relpath]) | {relpath}, key=_rank)
    held = math.ceil(len(members) / 2)
    return "heldout" if members.index(relpath) < held else "train"


def chosen_mask(rows: list[dict[str, str]]) -> dict[str, str] | None:
    """The ground-truth mask among an image's mask rows: COVERAGE's *forged*, VIPP's _tm, else plain."""
    if not rows:
        return None
    for preferred in ("forged", "_tm"):
        picked = [row for row in rows if preferred in row["relpath"]]
        if picked:
            return picked[0]
    plain = [row for row in rows if "RGB colour map" not in row["note"]]
    return (plain or rows)[0]


def read_manifest(manifest: Path, root: Path) -> list[LocalizationSample]:
    """Every manipulated image with a mask and every pristine image of a manip-style manifest."""
    with manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    missing = {"relpath", "label", "dataset"} - set(rows[0] if rows else {})
    if missing:
        raise UsageError(
            f"{manifest} is not a localization manifest: it lacks the column(s) {sorted(missing)}"
        )
    masks: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["label"] == "mask":
            masks[row.get("pair", "")].append(row)
    members: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row["label"] == "manipulated":
            members[row["dataset"]].append(row["relpath"])
    samples: list[LocalizationSample] = []
    for row in rows:
        relpath, dataset = row["relpath"], row["dataset"]
        if row["label"] == "manipulated":
            mask_row = chosen_mask(masks.get(relpath, []))
            if mask_row is None:
                continue
            samples.append(
                LocalizationSample(
                    image=root / relpath,
                    mask=root / mask_row["relpath"],
                    dataset=dataset,
                    manipulation=row.get("manipulation", "unknown") or "unknown",
                    invert_mask=INVERTED_MASK_NOTE in mask_row.get("note", ""),
                    split=manip_split(relpath, members[dataset]),
                    relpath=relpath,
                )
            )
        elif row["label"] == "pristine":
            forgeries = [pair for pair in row.get("pair", "").split(";") if pair]
            if forgeries:
                # Held out when any forgery of this original is: the photo must not train anything measured.
                split = (
                    "heldout"
                    if any(manip_split(pair, members[dataset]) == "heldout" for pair in forgeries)
                    else "train"
                )
            else:
                split = manip_split(relpath)
            samples.append(LocalizationSample(root / relpath, None, dataset, "none", False, split, relpath))
    # A forgery whose original is held out is held out too (its original's other forgeries may be).
    held_originals = {
        pair
        for sample in samples
        if sample.genuine and sample.split == "heldout"
        for row in rows
        if row["relpath"] == sample.relpath
        for pair in row.get("pair", "").split(";")
        if pair
    }
    return [
        replace(sample, split="heldout") if sample.relpath in held_originals else sample for sample in samples
    ]


def _mask_for(image: Path, mask_dirs: list[Path]) -> Path | None:
    stems = {image.stem + suffix for suffix in MASK_SUFFIXES}
    if image.stem.endswith("t"):  # COVERAGE: 12t.tif -> 12forged.tif
        stems.add(image.stem[:-1] + "forged")
    for folder in mask_dirs:
        for candidate in sorted(folder.iterdir()):
            if candidate.suffix.lower() in IMAGE_EXTENSIONS and candidate.stem in stems:
                return candidate
    return None


def discover_pairs(folder: Path, root: Path | None = None) -> list[LocalizationSample]:
    """Image/mask pairs and genuine images under `folder` in any layout the module docstring lists.

    A manifest's relpaths are read relative to `root` (default: the manifest's folder).

    Raises:
        UsageError: nothing usable was found, with what was looked for.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".tsv":
        return read_manifest(folder, root or folder.parent)
    if (folder / "manifest.tsv").is_file():
        return read_manifest(folder / "manifest.tsv", root or folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder or a manifest.tsv")
    samples: list[LocalizationSample] = []
    for parent in sorted({path.parent for path in folder.rglob("*") if path.is_dir()} | {folder}):
        mask_dirs = [parent / name for name in MASK_DIRS if (parent / name).is_dir()]
        dataset = parent.name if parent != folder else folder.name
        for name in IMAGE_DIRS:
            images = parent / name
            if not images.is_dir() or not mask_dirs:
                continue
            for image in sorted(images.iterdir()):
                if image.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                mask = _mask_for(image, mask_dirs)
                if mask is not None:
                    relpath = str(image.relative_to(folder))
                    samples.append(LocalizationSample(image, mask, dataset, relpath=relpath))
        for name in GENUINE_DIRS:
            genuine = parent / name
            if genuine.is_dir():
                samples.extend(
                    LocalizationSample(path, None, dataset, "none", relpath=str(path.relative_to(folder)))
                    for path in sorted(genuine.iterdir())
                    if path.suffix.lower() in IMAGE_EXTENSIONS
                )
    if not samples:
        raise UsageError(
            f"no image/mask pairs found under {folder}: expected a manifest.tsv, or image folders "
            f"({', '.join(IMAGE_DIRS)}) beside mask folders ({', '.join(MASK_DIRS)}) whose files share "
            "the image's name (optionally with _gt, _mask or forged)"
        )
    return samples


def load_truth(sample: LocalizationSample) -> np.ndarray | None:
    """The sample's ground truth as an H x W bool array (True = manipulated); None for a genuine image."""
    if sample.mask is None:
        return None
    with Image.open(sample.mask) as image:
        values = np.asarray(image.convert("L"))
    truth = truth_mask(values)
    return ~truth if sample.invert_mask else truth


def genuine_samples(folder: Path, dataset: str | None = None) -> list[LocalizationSample]:
    """Every image under `folder` (recursively) as a genuine sample of `dataset` (the folder's name)."""
    from pixelsleuth.outputs.collect import collect_paths

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder of genuine images")
    files, _ = collect_paths([str(folder)])
    name = dataset or f"genuine:{folder.name}"
    return [LocalizationSample(path, None, name, "none", relpath=str(path)) for path in files]


def gather_samples(
    data: list[Path],
    genuine: list[Path],
    split: str = "heldout",
    limit: int | None = None,
    root: Path | None = None,
) -> list[LocalizationSample]:
    """The samples of every localization set in `data` (of a manifest with a split: those of `split`,
    or "all") and of every genuine folder, at most `limit` per dataset (the first ones in a stable order).

    Raises:
        UsageError: an unknown split, or nothing found.
    """
    if split not in ("train", "heldout", "all"):
        raise UsageError(f"--split must be train, heldout or all, not {split!r}")
    samples: list[LocalizationSample] = []
    for folder in data:
        found = discover_pairs(folder, root)
        samples += [sample for sample in found if split == "all" or sample.split in (split, "")]
    for folder in genuine:
        samples += genuine_samples(folder)
    if limit is not None:  # manipulated images per dataset; genuine folders are taken whole
        counts: dict[str, int] = defaultdict(int)
        kept = []
        for sample in samples:
            counts[sample.dataset] += not sample.genuine
            if sample.genuine or counts[sample.dataset] <= limit:
                kept.append(sample)
        samples = kept
    if not samples:
        raise UsageError("no images to measure: check the localization sets, --genuine folders and --split")
    return samples
