"""Training of the learned localizer (`pixelsleuth.localization.learned`) on the CPU, under a time budget.

Training pairs (image crop, exact mask) are made on the fly, deterministically from the seed:

- from genuine photos with the forge manipulations (`pixelsleuth.forge.manipulate`): a splice from
  another genuine photo, a splice from a real generator's image (the stand-in for AI inpainting:
  generated pixels pasted into a photo), copy-move, Telea / Navier-Stokes inpainting, and an AI-style
  edit whose "reconstruction" is the photo down- and up-sampled (the smoothing a VAE decoder leaves);
- from the train split of the manip manifest (`bench.locset`, split == "train" only): real forgeries
  with their masks, crops centred on the mask most of the time, and the train split's pristine images;
- unedited genuine crops with an empty mask, so the network learns to stay quiet.

Each manipulation is made on a window of the photo (full resolution, never downscaled before the edit);
afterwards, image and mask together may be resized (factor 0.75-1.25) and the image re-compressed as
JPEG (quality 65-98); then a `crop` x `crop` crop is taken. Loss: BCE + Dice on the mask plus BCE on the
mask's edge (a 2-pixel boundary band, auxiliary), AdamW, cosine learning-rate decay over the budget.

The budget is process CPU seconds (`time.process_time`, so other work on the machine slows training
without shortening it); the batches are a pure function of the seed and the step, so two runs of the
same command see the same data and differ only in how many steps their budget allowed.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from pixelsleuth.bench.perturb import jpeg
from pixelsleuth.errors import UsageError
from pixelsleuth.forge.manipulate import ManipulationError, ai_edit, copy_move, inpaint, splice
from pixelsleuth.localization.learned import Localizer, count_parameters

KINDS = ("splice", "generated-splice", "copy-move", "inpaint", "ai-edit", "locset", "genuine")
DEFAULT_WEIGHTS = {
    "splice": 0.18,
    "generated-splice": 0.18,
    "copy-move": 0.14,
    "inpaint": 0.12,
    "ai-edit": 0.14,
    "locset": 0.14,
    "genuine": 0.10,
}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif"})
WINDOW = 640  # photos are kept in memory as windows of at most this side, at full resolution


@dataclass
class LocalizerTraining:
    """Everything that decides a training run."""

    output: Path
    seconds: float = 1800.0
    seed: int = 0
    batch: int = 8
    crop: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    max_steps: int | None = None
    wall_limit: float | None = None  # a safety stop in wall-clock seconds of training (recorded when hit)
    photos: list[Path] = field(default_factory=list)  # folders of genuine photos
    pool: Path | None = None  # pool manifest: train-split genuine photos and generated donors
    pool_root: Path | None = None
    manip: Path | None = None  # manip manifest: its train split
    manip_root: Path | None = None
    max_photos: int = 400
    max_donors: int = 150
    threads: int = 2
    exclude_sha256: frozenset[str] = frozenset()  # e.g. the pool's test photos, never trained on


@dataclass
class Sources:
    photos: list[np.ndarray]
    donors: list[np.ndarray]
    forgeries: list[tuple[np.ndarray, np.ndarray]]  # locset train split: image, bool mask
    pristine: list[np.ndarray]
    described: dict[str, object]


def _window(rgb: np.ndarray, rng: np.random.Generator, side: int = WINDOW) -> np.ndarray:
    height, width = rgb.shape[:2]
    top = int(rng.integers(0, max(1, height - side + 1)))
    left = int(rng.integers(0, max(1, width - side + 1)))
    return np.ascontiguousarray(rgb[top : top + side, left : left + side])


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(path: Path) -> np.ndarray | None:
    from pixelsleuth.intake import load_image

    try:
        return load_image(path).rgb
    except Exception:  # an unreadable file is skipped, and counted in the card
        return None


def gather_sources(config: LocalizerTraining, rng: np.random.Generator) -> Sources:
    """Load the genuine photos, donors and locset train forgeries (windows of at most 640 pixels)."""
    photo_paths: list[Path] = []
    for folder in config.photos:
        if not folder.is_dir():
            raise UsageError(f"--photos {folder} is not a folder")
        photo_paths += _files(folder)
    donor_paths: list[Path] = []
    if config.pool is not None:
        from pixelsleuth.bench.poolset import read_pool_manifest, split_of

        root = config.pool_root or config.pool.parent
        for row in read_pool_manifest(config.pool):
            if split_of(row) != "train" or row.is_mosaic or row.grid is not None:
                continue
            (donor_paths if row.label == 1 else photo_paths).append(root / row.relpath)
    photo_paths = sorted(set(photo_paths))
    order = rng.permutation(len(photo_paths))
    photos: list[np.ndarray] = []
    skipped = Counter()
    minimum = config.crop
    for index in order:
        if len(photos) >= config.max_photos:
            break
        path = photo_paths[int(index)]
        if config.exclude_sha256 and _sha256(path) in config.exclude_sha256:
            skipped["excluded (pool test split)"] += 1
            continue
        rgb = _load(path)
        if rgb is None or min(rgb.shape[:2]) < minimum:
            skipped["unreadable or smaller than the crop"] += 1
            continue
        photos.append(_window(rgb, rng))
    donors: list[np.ndarray] = []
    for index in rng.permutation(len(donor_paths))[: config.max_donors]:
        rgb = _load(donor_paths[int(index)])
        if rgb is not None and min(rgb.shape[:2]) >= 64:
            donors.append(_window(rgb, rng))
    forgeries: list[tuple[np.ndarray, np.ndarray]] = []
    pristine: list[np.ndarray] = []
    if config.manip is not None:
        from pixelsleuth.bench.locset import load_truth, read_manifest

        root = config.manip_root or config.manip.parent
        for sample in read_manifest(config.manip, root):
            if sample.split != "train":  # the held-out half is for measuring only
                continue
            rgb = _load(sample.image)
            if rgb is None or min(rgb.shape[:2]) < 64:
                continue
            truth = load_truth(sample)
            if truth is None:
                pristine.append(rgb)
            elif truth.shape == rgb.shape[:2] and truth.any():
                forgeries.append((rgb, truth.astype(bool)))
    if len(photos) < 2:
        raise UsageError(
            f"the localizer needs at least 2 genuine photos of at least {minimum} pixels a side; "
            f"found {len(photos)} (give folders with --photos or a pool manifest with --pool)"
        )
    described = {
        "genuine photos": len(photos),
        "genuine photo folders": [str(folder) for folder in config.photos],
        "pool manifest (train split)": str(config.pool) if config.pool else None,
        "generated donors": len(donors),
        "locset train forgeries": len(forgeries),
        "locset train pristine": len(pristine),
        "skipped": dict(skipped),
    }
    return Sources(photos, donors, forgeries, pristine, described)


def _down_up(rng: np.random.Generator) -> object:
    factor = float(rng.uniform(2.0, 4.0))
    down = (cv2.INTER_AREA, cv2.INTER_LINEAR)[int(rng.integers(2))]
    up = (cv2.INTER_CUBIC, cv2.INTER_LINEAR)[int(rng.integers(2))]
    quality = int(rng.integers(70, 96)) if rng.random() < 0.5 else None

    def reconstruct(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        small = cv2.resize(
            rgb, (max(8, round(width / factor)), max(8, round(height / factor))), interpolation=down
        )
        if quality is not None:
            small = jpeg(small, quality)
        return cv2.resize(small, (width, height), interpolation=up)

    return reconstruct


def _crop_at(image: np.ndarray, mask: np.ndarray, side: int, rng: np.random.Generator) -> tuple:
    """A side x side crop, centred near a masked pixel 80 % of the time (padded by reflection if small)."""
    height, width = image.shape[:2]
    if height < side or width < side:
        pad = ((0, max(0, side - height)), (0, max(0, side - width)))
        image = np.pad(image, (*pad, (0, 0)), mode="reflect")
        mask = np.pad(mask, pad, mode="constant")
        height, width = image.shape[:2]
    if mask.any() and rng.random() < 0.8:
        rows, cols = np.nonzero(mask)
        pick = int(rng.integers(len(rows)))
        top = int(np.clip(rows[pick] - rng.integers(side // 4, 3 * side // 4), 0, height - side))
        left = int(np.clip(cols[pick] - rng.integers(side // 4, 3 * side // 4), 0, width - side))
    else:
        top = int(rng.integers(0, height - side + 1))
        left = int(rng.integers(0, width - side + 1))
    return image[top : top + side, left : left + side], mask[top : top + side, left : left + side]


def make_pair(
    kind: str, sources: Sources, rng: np.random.Generator, crop: int
) -> tuple[np.ndarray, np.ndarray]:
    """One training pair of `kind`: crop x crop x 3 uint8 image and crop x crop bool mask."""
    resize = float(rng.uniform(0.75, 1.25)) if rng.random() < 0.3 else 1.0
    # The edit is made on a window that the resize turns into (about) the crop.
    side = math.ceil(crop / resize) + 2
    if kind == "locset":
        if sources.pristine and rng.random() < 0.2:
            image = sources.pristine[int(rng.integers(len(sources.pristine)))]
            mask = np.zeros(image.shape[:2], bool)
        else:
            image, mask = sources.forgeries[int(rng.integers(len(sources.forgeries)))]
        image, mask = _crop_at(image, mask, side, rng)
    else:
        photo = sources.photos[int(rng.integers(len(sources.photos)))]
        base, _ = _crop_at(photo, np.zeros(photo.shape[:2], bool), side, rng)
        base = np.ascontiguousarray(base)
        if kind == "genuine":
            image, mask = base, np.zeros(base.shape[:2], bool)
        elif kind == "splice":
            donor = sources.photos[int(rng.integers(len(sources.photos)))]
            image, mask = splice(base, donor, rng, blend=[False, True][int(rng.integers(2))])
        elif kind == "generated-splice":
            donor = sources.donors[int(rng.integers(len(sources.donors)))]
            image, mask = splice(base, donor, rng, blend=[False, True][int(rng.integers(2))])
        elif kind == "copy-move":
            image, mask = copy_move(base, rng)
        elif kind == "inpaint":
            image, mask = inpaint(base, rng, method=("telea", "ns")[int(rng.integers(2))])
        elif kind == "ai-edit":
            image, mask = ai_edit(base, rng, _down_up(rng))
        else:
            raise UsageError(f"unknown training kind {kind!r}; choose from {', '.join(KINDS)}")
        mask = mask > 0
    if resize != 1.0:
        height, width = image.shape[:2]
        size = (max(crop, round(width * resize)), max(crop, round(height * resize)))
        interpolation = cv2.INTER_AREA if resize < 1 else cv2.INTER_CUBIC
        image = cv2.resize(image, size, interpolation=interpolation)
        mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    if rng.random() < 0.5:
        image = jpeg(np.ascontiguousarray(image), int(rng.integers(65, 99)))
    image, mask = _crop_at(image, mask, crop, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def edge_of(mask: np.ndarray) -> np.ndarray:
    """The boundary band of a bool mask (morphological gradient, 3 x 3): bool, same shape.

    Example:
        >>> mask = np.zeros((7, 7), bool); mask[2:5, 2:5] = True
        >>> int(edge_of(mask).sum())
        24
    """
    band = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    return band > 0


def make_batch(
    sources: Sources, seed: int, step: int, batch: int, crop: int, weights: dict[str, float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Counter]:
    """The batch of `step`: a pure function of the seed and the step (pixels, masks, edges, kinds)."""
    rng = np.random.default_rng([seed, step])
    kinds = [kind for kind in KINDS if weights.get(kind, 0) > 0]
    if not sources.donors:
        kinds = [kind for kind in kinds if kind != "generated-splice"]
    if not sources.forgeries:
        kinds = [kind for kind in kinds if kind != "locset"]
    probabilities = np.array([weights[kind] for kind in kinds])
    probabilities /= probabilities.sum()
    images, masks, counts = [], [], Counter()
    while len(images) < batch:
        kind = kinds[int(rng.choice(len(kinds), p=probabilities))]
        try:
            image, mask = make_pair(kind, sources, rng, crop)
        except ManipulationError:
            continue
        images.append(image)
        masks.append(mask)
        counts[kind] += 1
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mask_tensor = torch.from_numpy(np.stack(masks)).float()[:, None]
    edge_tensor = torch.from_numpy(np.stack([edge_of(mask) for mask in masks])).float()[:, None]
    return pixels.contiguous(memory_format=torch.channels_last), mask_tensor, edge_tensor, counts


def localizer_loss(
    mask_logits: torch.Tensor, edge_logits: torch.Tensor, mask: torch.Tensor, edge: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """BCE + soft Dice (over the batch) on the mask, plus half a BCE on the edge (positives weighted 4)."""
    bce = F.binary_cross_entropy_with_logits(mask_logits, mask)
    probability = torch.sigmoid(mask_logits)
    dice = 1 - (2 * (probability * mask).sum() + 1) / (probability.sum() + mask.sum() + 1)
    edge_bce = F.binary_cross_entropy_with_logits(edge_logits, edge, pos_weight=torch.tensor(4.0))
    total = bce + dice + 0.5 * edge_bce
    return total, {
        name: value.item()
        for name, value in (("bce", bce), ("dice", dice), ("edge", edge_bce), ("total", total))
    }


@dataclass
class TrainingResult:
    model: Localizer
    steps: int
    cpu_seconds: float
    wall_seconds: float
    load_seconds: float
    seen: Counter
    losses: list[float]  # mean total loss per 50 steps
    sources: dict[str, object]
    stopped_by_wall: bool = False


def train_localizer(
    config: LocalizerTraining, weights: dict[str, float] | None = None, log: object = None
) -> TrainingResult:
    """Train a fresh `Localizer` until the CPU-second budget (or `max_steps`) is spent."""
    weights = weights or DEFAULT_WEIGHTS
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    wall_start = time.perf_counter()
    sources = gather_sources(config, np.random.default_rng(config.seed))
    load_seconds = time.perf_counter() - wall_start
    model = Localizer().to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    warmup = 30
    cpu_start, wall_train = time.process_time(), time.perf_counter()
    seen: Counter = Counter()
    losses: list[float] = []
    window: list[float] = []
    step = 0
    stopped_by_wall = False
    while config.max_steps is None or step < config.max_steps:
        spent = time.process_time() - cpu_start
        if spent >= config.seconds:
            break
        if config.wall_limit is not None and time.perf_counter() - wall_train >= config.wall_limit:
            stopped_by_wall = True
            break
        progress = spent / config.seconds if config.seconds > 0 else 1.0
        if config.wall_limit is not None:  # anneal in time even when the wall clock ends the run
            progress = max(progress, (time.perf_counter() - wall_train) / config.wall_limit)
        lr = (
            config.lr
            * min(1.0, (step + 1) / warmup)
            * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixels, mask, edge, counts = make_batch(
            sources, config.seed, step, config.batch, config.crop, weights
        )
        seen.update(counts)
        mask_logits, edge_logits = model(pixels)
        loss, parts = localizer_loss(mask_logits, edge_logits, mask, edge)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(parts["total"])
        step += 1
        if step == 1 and log is not None:
            log(f"step 1: loss {parts['total']:.4f}, sources {sources.described}")
        if len(window) == 50:
            losses.append(float(np.mean(window)))
            window = []
            if log is not None:
                log(f"step {step}: loss {losses[-1]:.4f}, lr {lr:.2e}, cpu {spent:.0f} s")
    if window:
        losses.append(float(np.mean(window)))
    model = model.to(memory_format=torch.contiguous_format).eval()
    return TrainingResult(
        model=model,
        steps=step,
        cpu_seconds=time.process_time() - cpu_start,
        wall_seconds=time.perf_counter() - wall_train,
        load_seconds=load_seconds,
        seen=seen,
        losses=losses,
        sources=sources.described,
        stopped_by_wall=stopped_by_wall,
    )


def parameter_count() -> int:
    return count_parameters(Localizer())


__all__ = [
    "DEFAULT_WEIGHTS",
    "KINDS",
    "LocalizerTraining",
    "TrainingResult",
    "edge_of",
    "gather_sources",
    "localizer_loss",
    "make_batch",
    "make_pair",
    "train_localizer",
]
