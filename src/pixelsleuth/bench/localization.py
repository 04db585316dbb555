"""Measure localization: every map alone and the fused answer, per dataset, with the metrics of
`pixelsleuth.localization.metrics` and the image-level questions (AUC, false alarms on genuine photos).

Per manipulated image, for each map and for the fused map: F1, IoU and MCC at 0.5, pixel AUC and the
oracle F1 (best threshold for that image). ``fused`` is what `localize` reports: the fused map where the
image passes the operating point and nothing elsewhere; ``fused-map`` is the fused map ungated (its
oracle F1 and AUC say how well it ranks pixels whatever the gate decides); ``flag-everything`` is the
baseline map that marks every pixel (its F1 comes from the size of the regions alone). Per dataset,
the image-level AUC of each map's score (and of the fused probability) against every genuine image of
the run. Over genuine images: the share given any region and the mean share of pixels flagged.

Example:
    >>> import math
    >>> summary = summarise([])
    >>> summary["datasets"], summary["genuine"]["images"]
    ({}, 0)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.bench.locset import LocalizationSample, load_truth
from pixelsleuth.bench.metrics import roc_auc
from pixelsleuth.localization.fuse import LocalizationFusion, fuse_maps, image_features, pixel_stack
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.record import ForensicMap, Region

PIXEL_KEYS = ("f1", "iou", "mcc", "auc", "best_f1")
FUSED, FUSED_MAP, FLAG_EVERYTHING = "fused", "fused-map", "flag-everything"
PIXELS_PER_CLASS = 1000  # pixels sampled inside and outside each mask to fit the pixel model


@dataclass
class SampleResult:
    """What the maps and the fusion made of one image (no arrays kept)."""

    relpath: str
    dataset: str
    genuine: bool
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value
    scores: dict[str, float] = field(default_factory=dict)  # method -> image score; fused: probability
    regions: dict[str, bool] = field(default_factory=dict)  # method -> named a region
    flagged: dict[str, float] = field(default_factory=dict)  # method -> share of pixels >= 0.5
    features: list[float] = field(default_factory=list)  # image_features, for fitting
    pixels: np.ndarray | None = None  # sampled pixel_stack rows, for fitting
    pixel_labels: np.ndarray | None = None
    error: str | None = None


class MapCache:
    """Maps already computed, on disk: one .npz per (image content, map name, what the map depends on).

    What a map depends on is its module's source and the files it reads (`methods.map_dependencies`);
    a change to either computes it again. The map is kept as float16 (enough for every metric here).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._versions: dict[str, str] = {}

    def _version(self, method: str) -> str:
        if method not in self._versions:
            from pixelsleuth.localization.methods import map_version

            self._versions[method] = map_version(method)
        return self._versions[method]

    def path(self, sha256: str, method: str) -> Path:
        return self.folder / f"{sha256[:24]}-{method}-{self._version(method)}.npz"

    def get(self, sha256: str, method: str) -> ForensicMap | None:
        path = self.path(sha256, method)
        if not path.is_file():
            return None
        with np.load(path) as stored:
            box = stored["region"].tolist()
            region = Region(*[int(v) for v in box[:4]], float(box[4])) if len(box) == 5 else None
            return ForensicMap(method, stored["map"].astype(np.float32), float(stored["score"]), "", region)

    def put(self, sha256: str, item: ForensicMap) -> None:
        box = item.region
        region = [] if box is None else [box.left, box.top, box.right, box.bottom, box.mean]
        partial = self.path(sha256, item.method).with_suffix(".partial.npz")
        np.savez_compressed(
            partial, map=item.map.astype(np.float16), score=item.score, region=np.array(region)
        )
        partial.replace(self.path(sha256, item.method))


def _maps_for(
    image: np.ndarray, sha256: str, methods: Sequence[str], cache: MapCache | None
) -> tuple[list[ForensicMap], list[tuple[str, str]]]:
    from pixelsleuth.localization.methods import run_maps

    if cache is None:
        return run_maps(image, methods)
    maps: list[ForensicMap] = []
    failures: list[tuple[str, str]] = []
    for method in methods:
        item = cache.get(sha256, method)
        if item is None:
            found, failed = run_maps(image, [method])
            failures += failed
            for item in found:
                cache.put(sha256, item)
            maps += found
        else:
            maps.append(item)
    return maps, failures


def analyse_sample(
    sample: LocalizationSample,
    fusion: LocalizationFusion,
    *,
    keep_pixels: bool = False,
    seed: int = 0,
    cache: MapCache | None = None,
) -> SampleResult:
    """Run the card's maps on one image and score them (and the fused answer) against its mask."""
    from pixelsleuth.errors import PixelsleuthError
    from pixelsleuth.intake import load_image

    result = SampleResult(sample.relpath or str(sample.image), sample.dataset, sample.genuine)
    try:
        loaded = load_image(sample.image)
        rgb = loaded.rgb
        truth = load_truth(sample)
    except (PixelsleuthError, OSError) as exc:
        result.error = getattr(exc, "message", str(exc))
        return result
    shape = rgb.shape[:2]
    if truth is not None and truth.shape != shape:
        result.error = f"the mask is {truth.shape[1]} x {truth.shape[0]}, the image {shape[1]} x {shape[0]}"
        return result
    maps, failures = _maps_for(rgb, loaded.sha256, fusion.methods, cache)
    found = fuse_maps(maps, fusion, shape, failures)
    heats = {item.method: item.map for item in maps}
    heats[FUSED] = np.where(found.mask, found.heat, np.minimum(found.heat, 0.49))
    heats[FUSED_MAP] = found.heat
    for item in maps:
        result.scores[item.method] = float(item.score)
        result.regions[item.method] = item.region is not None
    result.scores[FUSED] = found.probability
    result.regions[FUSED] = bool(found.regions)
    for method, heat in heats.items():
        result.flagged[method] = float((heat >= 0.5).mean())
        if truth is not None:
            result.metrics[method] = localization_metrics(heat, truth).to_dict()
    if truth is not None:  # the baseline: what a map gets from the size of the regions alone
        result.metrics[FLAG_EVERYTHING] = localization_metrics(np.ones(shape, np.float32), truth).to_dict()
    if keep_pixels:
        result.features = image_features(maps, fusion.methods).tolist()
        stack = pixel_stack(maps, fusion.methods, shape).reshape(-1, len(fusion.methods))
        labels = np.zeros(stack.shape[0], bool) if truth is None else truth.ravel()
        rng = np.random.default_rng([seed, len(result.relpath)])
        picks = []
        for value in (True, False):
            where = np.flatnonzero(labels == value)
            if where.size:
                picks.append(rng.choice(where, min(PIXELS_PER_CLASS, where.size), replace=False))
        chosen = np.concatenate(picks)
        result.pixels, result.pixel_labels = stack[chosen].astype(np.float32), labels[chosen]
    return result


def _analyse(args: tuple[LocalizationSample, LocalizationFusion, bool, Path | None]) -> SampleResult:
    sample, fusion, keep, cache = args
    return analyse_sample(sample, fusion, keep_pixels=keep, cache=None if cache is None else MapCache(cache))


def analyse_samples(
    samples: Sequence[LocalizationSample],
    fusion: LocalizationFusion,
    *,
    workers: int = 1,
    keep_pixels: bool = False,
    cache: Path | None = None,
) -> Iterator[SampleResult]:
    """`analyse_sample` over many images, in `workers` processes (results in the samples' order), with
    maps kept in and read from a `MapCache` folder when `cache` is given."""
    jobs = [(sample, fusion, keep_pixels, cache) for sample in samples]
    if workers <= 1:
        yield from map(_analyse, jobs)
        return
    from multiprocessing import get_context

    from pixelsleuth.forge.build import one_torch_thread

    # Spawned, so that no torch thread pool is forked.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=one_torch_thread) as pool:
        yield from pool.map(_analyse, jobs, chunksize=1)


def _mean(values: Iterable[float]) -> float:
    kept = [value for value in values if not math.isnan(value)]
    return float(np.mean(kept)) if kept else math.nan


def summarise(results: Sequence[SampleResult]) -> dict[str, Any]:
    """Per dataset and method: mean pixel metrics and image-level AUC; over genuine images: false alarms."""
    usable = [result for result in results if result.error is None]
    genuine = [result for result in usable if result.genuine]
    by_dataset: dict[str, list[SampleResult]] = defaultdict(list)
    for result in usable:
        if not result.genuine:
            by_dataset[result.dataset].append(result)
    datasets: dict[str, Any] = {}
    for dataset, items in sorted(by_dataset.items()):
        methods = sorted({method for item in items for method in item.metrics})
        table: dict[str, Any] = {}
        for method in methods:
            rows = [item.metrics[method] for item in items if method in item.metrics]
            table[method] = {key: _mean(row[key] for row in rows) for key in PIXEL_KEYS}
            score_method = FUSED if method == FUSED_MAP else method
            positives = [item.scores[score_method] for item in items if score_method in item.scores]
            negatives = [item.scores[score_method] for item in genuine if score_method in item.scores]
            table[method]["image_auc"] = (
                roc_auc(np.r_[np.ones(len(positives)), np.zeros(len(negatives))], np.r_[positives, negatives])
                if positives and negatives
                else math.nan
            )
            table[method]["detected"] = _mean(
                float(item.regions[score_method]) for item in items if score_method in item.regions
            )
        datasets[dataset] = {"images": len(items), "methods": table}
    methods = sorted({method for item in genuine for method in item.regions})
    false_alarms = {
        method: {
            "with_region": _mean(float(item.regions.get(method, False)) for item in genuine),
            "pixels_flagged": _mean(item.flagged.get(method, math.nan) for item in genuine),
        }
        for method in methods
    }
    return {
        "datasets": datasets,
        "genuine": {"images": len(genuine), "methods": false_alarms},
        "errors": [(result.relpath, result.error) for result in results if result.error is not None],
    }


def _cell(value: float, scale: float = 100.0) -> str:
    return "–" if value is None or math.isnan(value) else f"{scale * value:.1f}"


def format_summary(summary: dict[str, Any]) -> str:
    """Markdown tables: per dataset and method F1@0.5 / oracle F1 / pixel AUC / image AUC; false alarms."""
    lines = [
        "| dataset | n | method | F1@0.5 | oracle F1 | IoU | MCC | pixel AUC | image AUC | region named |",
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, entry in summary["datasets"].items():
        for method, values in entry["methods"].items():
            cells = [
                _cell(values[key]) for key in ("f1", "best_f1", "iou", "mcc", "auc", "image_auc", "detected")
            ]
            lines.append(f"| {dataset} | {entry['images']} | {method} | " + " | ".join(cells) + " |")
    genuine = summary["genuine"]
    if genuine["images"]:
        lines += [
            "",
            f"Genuine images: {genuine['images']}",
            "",
            "| method | images given a region (%) | pixels flagged at 0.5 (%) |",
            "|:---|---:|---:|",
        ]
        for method, values in genuine["methods"].items():
            lines.append(f"| {method} | {_cell(values['with_region'])} | {_cell(values['pixels_flagged'])} |")
    return "\n".join(lines)
