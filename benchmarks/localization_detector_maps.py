"""Local detector maps (`pixelsleuth.localization.detector_maps`) on forge-made AI edits of genuine photos.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/localization_detector_maps.py --photos 40 \\
        [--size 512] [--seed 0] [--maps fsd,patchnet,spectral] [--fsd-stride 128] [--json out.json]

Photos: the first `--photos` images of at least `--size` pixels a side, taken round-robin over the
sub-folders of ``/work/shared/data/real`` and ``/work/data/pool/real`` (sorted names), resized with
area averaging so the short side is `--size` and centre-cropped square. Never the dev set.

Each photo is scored three times: unedited; (i) ``forge.manipulate.ai_edit`` whose reconstruction is an
up-sampling chain (area down-scale by 2, bicubic up-scale back); (ii) a "generated splice":
``forge.manipulate.splice`` with a feathered edge, the donor a real generator's image from
``/work/data/pool/fake/<generator>/`` (generators round-robin, donors of at least `--size` a side so
the pasted pixels keep their own statistics, not an enlargement's).

Per map and edit: mean pixel F1 at 0.5, mean oracle F1 (best threshold per image), mean pixel AUC
(`localization.metrics`), image-level AUC (map score of the edited photo against the same photo
unedited), how many edited photos get a region, and on the unedited photos how many get any region.
``max`` is the pixel-wise maximum of the maps. Baseline in the same run: the map that flags every pixel.
FSD is slow on the CPU (about 0.3 s per 128-pixel window), so by default its windows do not overlap
(``--fsd-stride 128``); the other maps use half-overlapping windows.

Result of the command above (seed 0, 2026-12-02, 2 shared CPU cores, 1579 s):

    ai_edit_upsampling (edited fraction 0.120)   F1@0.5 oracle F1 pixel AUC image AUC regions
    fsd                                           0.080     0.308     0.523     0.550   15/40
    patchnet                                      0.000     0.301     0.575     0.488    0/40
    spectral                                      0.058     0.567     0.841     0.797   14/40
    max                                           0.125     0.458     0.751     0.664   24/40
    flag-everything                               0.209     0.209     0.500     0.500   40/40
    generated_splice (edited fraction 0.135)
    fsd                                           0.043     0.368     0.579     0.532   14/40
    patchnet                                      0.000     0.437     0.663     0.524    0/40
    spectral                                      0.000     0.302     0.560     0.517    1/40
    max                                           0.043     0.388     0.639     0.512   15/40
    flag-everything                               0.231     0.231     0.500     0.500   40/40
    unedited photos with any region: fsd 10, patchnet 0, spectral 1, max 11 (of 40)
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pixelsleuth.bench.metrics import roc_auc
from pixelsleuth.forge.manipulate import ai_edit, splice
from pixelsleuth.intake import load_image
from pixelsleuth.localization.detector_maps import (
    EMBEDDED_WINDOWS,
    embedded_window_detectors,
    local_detector_map,
    spectral_window_map,
)
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.record import ForensicMap, strongest_region

WORKSPACE = Path(__file__).resolve().parents[2]  # the folder that holds this checkout, shared/ and data/

REAL_ROOTS = (WORKSPACE / "shared/data/real", WORKSPACE / "data/pool/real")
FAKE_ROOT = WORKSPACE / "data/pool/fake"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def _round_robin(folders: list[Path]) -> list[Path]:
    listings = [
        sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for folder in folders
    ]
    out: list[Path] = []
    for index in range(max((len(files) for files in listings), default=0)):
        out += [files[index] for files in listings if index < len(files)]
    return out


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.ascontiguousarray(load_image(path).rgb)
    except Exception:  # an unreadable file is skipped, not a benchmark failure
        return None


def square(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = size / min(height, width)
    resized = cv2.resize(
        image,
        (max(size, round(width * scale)), max(size, round(height * scale))),
        interpolation=cv2.INTER_AREA,
    )
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return np.ascontiguousarray(resized[top : top + size, left : left + size])


def genuine_photos(count: int, size: int) -> list[tuple[str, np.ndarray]]:
    folders = sorted(p for root in REAL_ROOTS if root.is_dir() for p in root.iterdir() if p.is_dir())
    photos: list[tuple[str, np.ndarray]] = []
    for path in _round_robin(folders):
        image = _load(path)
        if image is not None and min(image.shape[:2]) >= size:
            photos.append((f"{path.parent.name}/{path.name}", square(image, size)))
        if len(photos) == count:
            break
    return photos


def generated_donors(count: int, size: int) -> list[tuple[str, np.ndarray]]:
    folders = sorted(p for p in FAKE_ROOT.iterdir() if p.is_dir())
    donors: list[tuple[str, np.ndarray]] = []
    for path in _round_robin(folders):
        image = _load(path)
        if image is not None and min(image.shape[:2]) >= size:
            donors.append((path.parent.name, image))
        if len(donors) == count:
            break
    return donors


def upsampling_chain(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def compute_maps(image: np.ndarray, names: list[str], fsd_stride: int) -> dict[str, ForensicMap]:
    detectors = {detector.name: detector for detector in embedded_window_detectors()}
    maps: dict[str, ForensicMap] = {}
    for name in names:
        if name == "spectral":
            maps[name] = spectral_window_map(image, window=EMBEDDED_WINDOWS["spectral"])
        else:
            window = EMBEDDED_WINDOWS.get(name, 128)
            stride = fsd_stride if name == "fsd" else window // 2
            maps[name] = local_detector_map(image, detectors[name], window=window, stride=stride)
    return maps


def combined(maps: dict[str, ForensicMap]) -> ForensicMap:
    heat = np.max([m.map for m in maps.values()], axis=0)
    region = strongest_region(heat) if heat.max() >= 0.5 else None
    return ForensicMap("max", heat, float(heat.max()), "", region)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maps", default="fsd,patchnet,spectral")
    parser.add_argument("--fsd-stride", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = [name.strip() for name in args.maps.split(",") if name.strip()]
    photos = genuine_photos(args.photos, args.size)
    donors = generated_donors(args.photos, args.size)
    print(f"{len(photos)} photos, {len(donors)} donors from {len({g for g, _ in donors})} generators")
    rng = np.random.default_rng(args.seed)
    edits = ("ai_edit_upsampling", "generated_splice")
    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    genuine_regions: dict[str, int] = defaultdict(int)
    started = time.perf_counter()
    for index, (label, photo) in enumerate(photos):
        variants: dict[str, tuple[np.ndarray, np.ndarray | None]] = {"unedited": (photo, None)}
        variants["ai_edit_upsampling"] = ai_edit(photo, rng, upsampling_chain)
        variants["generated_splice"] = splice(photo, donors[index % len(donors)][1], rng, blend="feather")
        for variant, (image, mask) in variants.items():
            maps = compute_maps(image, names, args.fsd_stride)
            maps["max"] = combined(maps)
            for name, result in maps.items():
                scores[(variant, name)].append(result.score)
                if mask is None:
                    genuine_regions[name] += result.region is not None
                    continue
                metrics = localization_metrics(result.map, mask)
                row = per[(variant, name)]
                row["f1"].append(0.0 if np.isnan(metrics.f1) else metrics.f1)
                row["oracle_f1"].append(metrics.best_f1)
                row["pixel_auc"].append(metrics.auc)
                row["region"].append(float(result.region is not None))
                row["fraction"].append(metrics.manipulated_fraction)
            if mask is not None:
                baseline = localization_metrics(np.ones(mask.shape, np.float32), mask)
                per[(variant, "flag-everything")]["f1"].append(baseline.f1)
                per[(variant, "flag-everything")]["oracle_f1"].append(baseline.best_f1)
                per[(variant, "flag-everything")]["pixel_auc"].append(0.5)
                per[(variant, "flag-everything")]["region"].append(1.0)
        print(f"[{index + 1}/{len(photos)}] {label} ({time.perf_counter() - started:.0f} s)", flush=True)
    count = len(photos)
    results: dict[str, Any] = {"photos": count, "size": args.size, "seed": args.seed, "edits": {}}
    for edit in edits:
        fraction = np.mean(per[(edit, "max")]["fraction"])
        print(f"\n{edit} (mean over {count} photos; edited fraction {fraction:.3f})")
        print(f"{'map':16} {'F1@0.5':>7} {'oracle F1':>9} {'pixel AUC':>9} {'image AUC':>9} {'regions':>8}")
        results["edits"][edit] = {}
        for name in [*names, "max", "flag-everything"]:
            row = per[(edit, name)]
            if name == "flag-everything":
                image_auc = 0.5
            else:
                labels = [0] * count + [1] * count
                image_auc = roc_auc(labels, scores[("unedited", name)] + scores[(edit, name)])
            summary = {
                "f1": float(np.mean(row["f1"])),
                "oracle_f1": float(np.mean(row["oracle_f1"])),
                "pixel_auc": float(np.nanmean(row["pixel_auc"])),
                "image_auc": float(image_auc),
                "regions": int(np.sum(row["region"])),
            }
            results["edits"][edit][name] = summary
            print(
                f"{name:16} {summary['f1']:7.3f} {summary['oracle_f1']:9.3f} {summary['pixel_auc']:9.3f} "
                f"{summary['image_auc']:9.3f} {summary['regions']:5d}/{count}"
            )
    print(f"\nunedited photos with any region (of {count}):")
    for name in [*names, "max"]:
        print(f"  {name:12} {genuine_regions[name]}")
    print("  flag-everything", count)
    results["unedited_with_region"] = dict(genuine_regions)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
