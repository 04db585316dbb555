"""The learned localizer measured on held-out data only, beside a flag-everything baseline from the same run.

    .venv/bin/python benchmarks/localization_learned.py \
        --manip ../shared/data/manip/manifest.tsv --manip-root ../data/manip \
        --pool ../shared/data/pool/manifest.tsv --pool-root ../data/pool \
        --per-kind 10 --genuine 40 --max-side 1024 --seed 1 --speed --json /tmp/learned.json --write-card

(run from the repository root; the paths above are those of our machine). Three parts:

1. **locset held-out** (split == "heldout" of the manip manifest; the localizer trained on the other
   half only): per dataset, the mean over its manipulated images of pixel F1 at 0.5, oracle F1 (best
   threshold per image, uses the answer) and pixel AUC (`localization.metrics`), and the image-level
   AUC of the map's score (top-1 % mean) for that dataset's manipulated images against *all* genuine
   images of part 3 (most datasets have no genuine image of their own in the held-out half).
2. **forge held-out**: genuine photos of the pool's TEST split (never trained on, excluded by SHA-256
   in training), a window of at most `--max-side` pixels at full resolution, each edited once with one
   kind (splice from another test photo, splice from a test-split generated image, copy-move, inpaint
   telea/ns, ai-edit with a down-up-sampling reconstruction), saved losslessly; the same per-kind
   numbers, image AUC against the pool test genuine windows.
3. **genuine**: the held-out pristine images of the locset (full size) and `--genuine` pool test-split
   photos (windows of `--max-side`): share of images with any region (a pixel >= 0.5) and the mean
   share of flagged pixels.

Baseline: a map that flags every pixel (1 everywhere), scored by the same functions. `--speed` also
times the localizer on a 1 MP and a 12 MP photo-like image in fresh processes (seconds, s/MP, peak
resident memory of the child, its VmHWM: Python, numpy, OpenCV and torch included). `--write-card`
appends every number to ``localizer.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pixelsleuth.bench.locset import load_truth, read_manifest
from pixelsleuth.bench.metrics import roc_auc
from pixelsleuth.bench.poolset import read_pool_manifest, split_of
from pixelsleuth.detectors.card import Metric, ModelCard, card_path_for
from pixelsleuth.forge.manipulate import ManipulationError, ai_edit, copy_move, inpaint, splice
from pixelsleuth.intake import load_image
from pixelsleuth.localization.learned import WEIGHTS, learned_map, load_localizer
from pixelsleuth.localization.metrics import localization_metrics

FORGE_KINDS = ("splice", "generated-splice", "copy-move", "inpaint", "ai-edit")

SPEED_CHILD = r"""
import json, resource, sys, time
import numpy as np, cv2, torch
torch.set_num_threads(int(sys.argv[3]))
from pixelsleuth.localization.learned import learned_map, load_localizer
megapixels, weights = float(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5)); width = int(round(height * 4 / 3))
coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3)).astype(np.uint8)
image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
model = load_localizer(weights)
learned_map(image[:256, :256], model)
start = time.perf_counter(); learned_map(image, model); seconds = time.perf_counter() - start
# VmHWM is this process's own peak (ru_maxrss can carry the parent's high-water mark across fork + exec).
status = open("/proc/self/status").read() if sys.platform.startswith("linux") else ""
hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
peak = int(hwm[0]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"megapixels": height * width / 1e6, "seconds": seconds, "peak_rss_mib": peak}))
"""


def _window(rgb: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    height, width = rgb.shape[:2]
    top = int(rng.integers(0, max(1, height - side + 1)))
    left = int(rng.integers(0, max(1, width - side + 1)))
    return np.ascontiguousarray(rgb[top : top + side, left : left + side])


def _down_up(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    small = cv2.resize(rgb, (width // 3, height // 3), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _forge(kind: str, photo: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> tuple:
    if kind in ("splice", "generated-splice"):
        return splice(photo, donor, rng, blend=True)
    if kind == "copy-move":
        return copy_move(photo, rng)
    if kind == "inpaint":
        return inpaint(photo, rng, method=("telea", "ns")[int(rng.integers(2))])
    return ai_edit(photo, rng, _down_up)


def _mean(values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def _pixel_rows(records: list[dict]) -> dict[str, float]:
    return {
        "n": len(records),
        "f1": _mean([r["f1"] for r in records]),
        "oracle_f1": _mean([r["best_f1"] for r in records]),
        "pixel_auc": _mean([r["auc"] for r in records]),
        "base_f1": _mean([r["base_f1"] for r in records]),
        "base_oracle_f1": _mean([r["base_best_f1"] for r in records]),
        "base_pixel_auc": _mean([r["base_auc"] for r in records]),
    }


def _measure(image: np.ndarray, truth: np.ndarray, model) -> dict:
    result = learned_map(image, model)
    ours = localization_metrics(result.map, truth)
    base = localization_metrics(np.ones(truth.shape, np.float32), truth)
    return {
        "f1": ours.f1,
        "best_f1": ours.best_f1,
        "auc": ours.auc,
        "score": result.score,
        "base_f1": base.f1,
        "base_best_f1": base.best_f1,
        "base_auc": base.auc,
    }


def _genuine(image: np.ndarray, model) -> dict:
    result = learned_map(image, model)
    return {
        "score": result.score,
        "any_region": result.region is not None,
        "flagged": float((result.map >= 0.5).mean()),
    }


def _image_auc(manipulated: list[float], genuine: list[float]) -> float:
    labels = [1.0] * len(manipulated) + [0.0] * len(genuine)
    return roc_auc(np.array(labels), np.array(manipulated + genuine)) if manipulated and genuine else math.nan


def _speed(weights: Path, sizes: list[float], threads: int) -> list[dict]:
    rows = []
    for megapixels in sizes:
        done = subprocess.run(
            [sys.executable, "-c", SPEED_CHILD, str(megapixels), str(weights), str(threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--manip", type=Path, required=True)
    parser.add_argument("--manip-root", type=Path, required=True)
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--pool-root", type=Path, required=True)
    parser.add_argument("--per-kind", type=int, default=10)
    parser.add_argument("--genuine", type=int, default=40)
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-locset", type=int, default=None, help="debugging: at most N held-out images")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-card", action="store_true")
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/localization_learned.py", *sys.argv[1:]])
    import torch

    torch.set_num_threads(args.threads)
    model = load_localizer(args.weights)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()

    # 3 (first, its genuine scores serve the image AUCs): genuine images.
    pool_rows = read_pool_manifest(args.pool)
    test_real = [row for row in pool_rows if row.label == 0 and split_of(row) == "test"]
    test_fake = [row for row in pool_rows if row.label == 1 and split_of(row) == "test" and row.grid is None]
    test_fake = [row for row in test_fake if not row.is_mosaic]
    order = rng.permutation(len(test_real))
    pool_genuine, pool_windows = [], []
    for index in order:
        if len(pool_genuine) >= args.genuine:
            break
        rgb = load_image(args.pool_root / test_real[int(index)].relpath).rgb
        if min(rgb.shape[:2]) < 256:
            continue
        window = _window(rgb, args.max_side, rng)
        pool_windows.append(window)
        pool_genuine.append(_genuine(window, model))
    samples = read_manifest(args.manip, args.manip_root)
    held = [sample for sample in samples if sample.split == "heldout"][: args.max_locset]
    locset_genuine = [_genuine(load_image(s.image).rgb, model) for s in held if s.genuine]
    genuine_scores = [r["score"] for r in pool_genuine + locset_genuine]

    # 1: locset held-out manipulated images.
    by_dataset: dict[str, list[dict]] = defaultdict(list)
    for sample in held:
        if sample.genuine:
            continue
        rgb = load_image(sample.image).rgb
        truth = load_truth(sample)
        if truth is None or truth.shape != rgb.shape[:2]:
            continue
        by_dataset[sample.dataset].append(_measure(rgb, truth, model))
    locset_table = {}
    for dataset, records in sorted(by_dataset.items()):
        row = _pixel_rows(records)
        row["image_auc"] = _image_auc([r["score"] for r in records], genuine_scores)
        locset_table[dataset] = row
    everything = [r for records in by_dataset.values() for r in records]
    locset_table["all"] = _pixel_rows(everything) | {
        "image_auc": _image_auc([r["score"] for r in everything], genuine_scores)
    }

    # 2: forge manipulations of pool test-split photos.
    donors = [
        load_image(args.pool_root / test_fake[int(i)].relpath).rgb
        for i in rng.permutation(len(test_fake))[:30]
    ]
    spare = [
        row
        for position, row in enumerate(test_real)
        if position not in set(order[: len(pool_windows)].tolist())
    ]
    forge_table = {}
    pool_scores = [r["score"] for r in pool_genuine]
    for kind in FORGE_KINDS:
        records = []
        attempt = 0
        while len(records) < args.per_kind and attempt < 3 * args.per_kind:
            photo = pool_windows[attempt % len(pool_windows)]
            attempt += 1
            if kind == "splice":
                donor = load_image(args.pool_root / spare[int(rng.integers(len(spare)))].relpath).rgb
            elif kind == "generated-splice":
                donor = donors[int(rng.integers(len(donors)))]
            else:
                donor = photo
            try:
                edited, mask = _forge(kind, photo, donor, rng)
            except ManipulationError:
                continue
            records.append(_measure(edited, mask > 0, model))
        forge_table[kind] = _pixel_rows(records) | {
            "image_auc": _image_auc([r["score"] for r in records], pool_scores)
        }

    genuine_table = {
        name: {
            "n": len(rows),
            "with_region": _mean([float(r["any_region"]) for r in rows]),
            "flagged_share": _mean([r["flagged"] for r in rows]),
            "base_with_region": 1.0 if rows else math.nan,
            "base_flagged_share": 1.0 if rows else math.nan,
        }
        for name, rows in (("locset held-out pristine", locset_genuine), ("pool test genuine", pool_genuine))
    }
    speed = _speed(args.weights, [1.0, 12.0], args.threads) if args.speed else []
    report = {
        "command": command,
        "seconds": time.perf_counter() - started,
        "locset_heldout": locset_table,
        "forge_heldout": forge_table,
        "genuine": genuine_table,
        "speed": speed,
    }

    print(f"# {command}\n")
    print("| set | n | F1@0.5 | oracle F1 | pixel AUC | image AUC | base F1 | base oracle F1 | base AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for prefix, table in (("locset", locset_table), ("forge", forge_table)):
        for name, row in table.items():
            print(
                f"| {prefix}:{name} | {row['n']} | {row['f1']:.3f} | {row['oracle_f1']:.3f} | "
                f"{row['pixel_auc']:.3f} | {row['image_auc']:.3f} | {row['base_f1']:.3f} | "
                f"{row['base_oracle_f1']:.3f} | {row['base_pixel_auc']:.3f} |"
            )
    print("\n| genuine set | n | share with a region | mean flagged share | baseline (flag all) |")
    print("|---|---|---|---|---|")
    for name, row in genuine_table.items():
        print(
            f"| {name} | {row['n']} | {row['with_region']:.3f} | {row['flagged_share']:.4f} | 1.000 / 1.000 |"
        )
    for row in speed:
        print(
            f"\nspeed: {row['megapixels']:.1f} MP in {row['seconds']:.2f} s "
            f"({row['seconds'] / row['megapixels']:.2f} s/MP), peak RSS {row['peak_rss_mib']:.0f} MiB"
        )
    print(f"\n(total {report['seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.write_card:
        card_path = card_path_for(args.weights)
        card = ModelCard.load(card_path)
        card.metrics = [m for m in card.metrics if m.command != command]
        for prefix, table in (
            ("locset held-out", locset_table),
            ("forge held-out (pool test photos)", forge_table),
        ):
            for name, row in table.items():
                dataset = f"{prefix}: {name} (n={row['n']})"
                for key, label in (
                    ("f1", "pixel F1@0.5"),
                    ("oracle_f1", "oracle F1"),
                    ("pixel_auc", "pixel AUC"),
                    ("image_auc", "image AUC vs genuine"),
                    ("base_f1", "flag-everything pixel F1@0.5"),
                ):
                    card.metrics.append(Metric(label, round(float(row[key]), 4), dataset, command))
        for name, row in genuine_table.items():
            dataset = f"genuine: {name} (n={row['n']})"
            card.metrics.append(Metric("share with a region", round(row["with_region"], 4), dataset, command))
            card.metrics.append(
                Metric("mean flagged share", round(row["flagged_share"], 4), dataset, command)
            )
        for row in speed:
            dataset = f"speed: {row['megapixels']:.1f} MP synthetic photo, {args.threads} threads"
            card.metrics.append(
                Metric("seconds per MP", round(row["seconds"] / row["megapixels"], 3), dataset, command)
            )
            card.metrics.append(Metric("peak RSS MiB", round(row["peak_rss_mib"], 1), dataset, command))
        card.save(card_path)


if __name__ == "__main__":
    main()
