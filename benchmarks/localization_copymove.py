"""Copy-move maps (keypoint, dense, both combined) on the real manip set and on genuine photos.

    .venv/bin/python benchmarks/localization_copymove.py [--split heldout] [--pool 40]
        [--speed [--speed-image PHOTO ...]] [--genuine-only] [--skip-genuine]
        [--manifest /work/shared/data/manip/manifest.tsv] [--manip /work/data/manip]
        [--real /work/shared/data/real] [--pool-dir /work/data/pool/real] [--json out.json]

Manipulated images: the copy-move forgeries of the chosen split (``heldout`` by default; thresholds were
set on ``train`` and on genuine photos only) of COVERAGE, NoSo, VIPP and CASIA2 (its ``Tp_S`` files).
Each map is scored with `localization_metrics` (every pixel counts, no inversion): F1 at 0.5, oracle F1
(the image's best threshold), pixel AUC; printed per dataset as means. ``combined`` is the pixel-wise max
of keypoint and dense. COVERAGE and VIPP masks mark the copy only, NoSo's mark source and copy: for
every dataset ``+source`` also scores the map that marks both (``map`` max ``data["source_map"]``).
Baseline in the same run: the map that flags every pixel.

Genuine images: the set's pristine originals (of the chosen split), every image under ``--real`` and
``--pool`` images from ``--pool-dir`` (the first ones in sorted order, spread over its folders): how
many get any region from each detector.

``--speed`` instead times the dense matcher on a 12 MP image (4000 x 3000, a photo-like synthetic
texture with sensor noise and one moved low-texture patch) and prints wall and CPU seconds (per
megapixel) and the peak resident memory during the call (Linux: the peak is reset just before it);
each ``--speed-image`` photo is timed the same way.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from pixelsleuth.bench.locset import load_truth, read_manifest
from pixelsleuth.intake import load_image
from pixelsleuth.localization.copymove import copy_move
from pixelsleuth.localization.copymove_dense import dense_copy_move
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.record import ForensicMap

WORKSPACE = Path(__file__).resolve().parents[2]  # the folder that holds this checkout, shared/ and data/

DATASETS = ("coverage", "noso-cmfd", "vipp-cmfd-samples", "casia2")
KEYS = ("f1", "best_f1", "auc")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}


def _maps(rgb: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, bool]]:
    """name -> (map, map of the source, has a region)."""
    keypoint, dense = copy_move(rgb), dense_copy_move(rgb)
    combined = np.maximum(keypoint.map, dense.map)
    combined_source = np.maximum(keypoint.data["source_map"], dense.data["source_map"])
    return {
        "keypoint": (keypoint.map, keypoint.data["source_map"], keypoint.region is not None),
        "dense": (dense.map, dense.data["source_map"], dense.region is not None),
        "combined": (combined, combined_source, keypoint.region is not None or dense.region is not None),
    }


def manipulated(args: argparse.Namespace) -> dict:
    samples = read_manifest(args.manifest, args.manip)
    scores: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for sample in samples:
        if sample.dataset not in DATASETS or sample.mask is None or sample.split != args.split:
            continue
        if sample.manipulation != "copy-move":
            continue
        rgb = load_image(sample.image).rgb
        truth = load_truth(sample)
        if truth is None or truth.shape != rgb.shape[:2]:
            print(f"skip {sample.relpath}: mask missing or of another size")
            continue
        baseline = localization_metrics(np.ones(truth.shape, np.float32), truth)
        scores[(sample.dataset, "flag everything")].append(baseline.to_dict())
        for name, (heat, source, found) in _maps(rgb).items():
            plain = localization_metrics(heat, truth).to_dict()
            both = localization_metrics(np.maximum(heat, source), truth).to_dict()
            scores[(sample.dataset, name)].append({**plain, "found": found})
            scores[(sample.dataset, name + " +source")].append({**both, "found": found})
        print(f"  {sample.dataset} {sample.relpath}: done", flush=True)
    table = {}
    print(f"\nmanipulated ({args.split} split): mean F1@0.5 / oracle F1 / pixel AUC, images with a region")
    print(f"{'dataset':20s} {'map':22s} {'n':>3s} {'F1':>6s} {'oracle':>7s} {'AUC':>6s} {'found':>6s}")
    for (dataset, name), rows in sorted(scores.items()):
        means = {key: float(np.nanmean([row[key] for row in rows])) for key in KEYS}
        found = sum(row.get("found", True) for row in rows)
        table[f"{dataset}/{name}"] = {**means, "n": len(rows), "found": found}
        print(
            f"{dataset:20s} {name:22s} {len(rows):3d} {100 * means['f1']:6.1f} {100 * means['best_f1']:7.1f} "
            f"{100 * means['auc']:6.1f} {found:6d}"
        )
    return table


def _images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in EXTENSIONS)


def genuine(args: argparse.Namespace) -> dict:
    pristine = [
        sample.image
        for sample in read_manifest(args.manifest, args.manip)
        if sample.mask is None and sample.split == args.split
    ]
    pool: list[Path] = []
    folders = sorted(path for path in args.pool_dir.iterdir() if path.is_dir())
    per_folder = [_images(folder) for folder in folders]
    while len(pool) < args.pool and any(per_folder):
        for files in per_folder:
            if files and len(pool) < args.pool:
                pool.append(files.pop(0))
    groups = {"locset pristine": pristine, "shared real": _images(args.real), "pool real": pool}
    table = {}
    print("\ngenuine images with a region (keypoint / dense / either)")
    for group, paths in groups.items():
        counts = {"keypoint": 0, "dense": 0, "either": 0}
        used = 0
        for path in paths:
            try:
                rgb = load_image(path).rgb
            except Exception as error:  # an unreadable file is skipped, not counted
                print(f"  skip {path}: {error}")
                continue
            if min(rgb.shape[:2]) < 64:
                continue
            used += 1
            keypoint, dense = copy_move(rgb), dense_copy_move(rgb)
            counts["keypoint"] += keypoint.region is not None
            counts["dense"] += dense.region is not None
            counts["either"] += keypoint.region is not None or dense.region is not None
            if keypoint.region is not None or dense.region is not None:
                which = [name for name, result in (("keypoint", keypoint), ("dense", dense)) if result.region]
                print(f"  region on {path}: {', '.join(which)}")
        table[group] = {"images": used, **counts}
        print(f"{group:18s} {used:4d} images: {counts['keypoint']} / {counts['dense']} / {counts['either']}")
    return table


def speed(photos: list[Path]) -> dict:
    import cv2
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    small = gaussian_filter(rng.normal(0, 1, (750, 1000)), 4).astype(np.float32)
    large = cv2.resize(small / small.std(), (4000, 3000), interpolation=cv2.INTER_CUBIC)  # smooth, photo-like
    noise = rng.normal(0, 2.0, (3000, 4000, 3)).astype(np.float32)
    image = np.clip(120 + 30 * large[..., None] + noise, 0, 255).astype(np.uint8)
    image[2000:2200, 2500:2800] = image[400:600, 600:900]
    result, timing = _timed_dense(image)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    print(
        f"dense on {image.shape[1]} x {image.shape[0]} ({megapixels:.0f} MP): {timing['seconds']:.2f} s wall "
        f"({timing['seconds'] / megapixels:.2f} s/MP), {timing['cpu_seconds']:.2f} s CPU; peak RSS "
        f"{timing['peak_rss_mib']:.0f} MiB, {timing['added_mib']:.0f} MiB above the image already in memory; "
        f"found {result.region} shift {result.data.get('shift')} (planted: 1900, 1600)"
    )
    timings = {"synthetic": timing}
    for path in photos:
        rgb = load_image(path).rgb
        result, timings[path.name] = _timed_dense(rgb)
        seconds, megapixels = timings[path.name]["seconds"], rgb.shape[0] * rgb.shape[1] / 1e6
        print(
            f"dense on {path.name} ({megapixels:.1f} MP): {seconds:.2f} s wall ({seconds / megapixels:.2f} "
            f"s/MP), {timings[path.name]['cpu_seconds']:.2f} s CPU; {timings[path.name]['added_mib']:.0f} "
            f"MiB above the image; region {result.region}"
        )
    return timings


def _timed_dense(image: np.ndarray) -> tuple[ForensicMap, dict[str, float]]:
    """`dense_copy_move(image)` with its wall and CPU time and its memory peak (reset first, Linux)."""
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current size
    start, cpu = time.perf_counter(), time.process_time()
    result = dense_copy_move(image)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    peak = _status_kib("VmHWM")
    timing = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mib": peak / 1024,
        "added_mib": (peak - before) / 1024,
    }
    return result, timing


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=WORKSPACE / "shared/data/manip/manifest.tsv")
    parser.add_argument("--manip", type=Path, default=WORKSPACE / "data/manip")
    parser.add_argument("--real", type=Path, default=WORKSPACE / "shared/data/real")
    parser.add_argument("--pool-dir", type=Path, default=WORKSPACE / "data/pool/real")
    parser.add_argument("--pool", type=int, default=40)
    parser.add_argument("--split", choices=("train", "heldout"), default="heldout")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--speed-image", type=Path, action="append", default=[], help="a photo to time too")
    parser.add_argument("--skip-genuine", action="store_true")
    parser.add_argument("--genuine-only", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.speed:
        results = {"speed": speed(args.speed_image)}
    else:
        results = {} if args.genuine_only else {"manipulated": manipulated(args)}
        if not args.skip_genuine:
            results["genuine"] = genuine(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
