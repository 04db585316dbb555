"""The fused score under re-encoding, resizing, blur and a social-media chain, on held-out pool crops.

    python benchmarks/fused_robustness.py [--fusion CARD.json --detector NAME=WEIGHTS ...]
                                          [--pool-crops /work/data/pool-crops] [--dev-cache DIR]
                                          [--json results.json]

Every crop (the pool's test split, first crop of each image; with --dev-cache, the dev crops too) is
perturbed alike for genuine and generated images and written as a file the way it would reach us (a
JPEG step as a JPEG file of that quality, the others as PNG), then analysed as `pixelsleuth scan` does:
each input of the fused score (the spectral check, each detector's raw logit) and the fused probability.
Printed per perturbation: the fused score's ROC-AUC and TPR at 1 % FPR (threshold set on that row's
genuine crops), the false-positive and true-positive rates at the card's operating point (set on the
unperturbed calib split, never on these), and each input's AUC. The first row (none) is the baseline
measured in the same run.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fused_dev import FeatureCache, fusion_inputs
from PIL import Image
from scipy.ndimage import gaussian_filter
from spectral_dev import pct, print_header

from pixelsleuth.bench.metrics import roc_auc, tpr_at_fpr
from pixelsleuth.bench.perturb import rescale
from pixelsleuth.intake import load_image

WORKSPACE = Path(__file__).resolve().parents[2]  # the folder that holds this checkout, shared/ and data/


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(gaussian_filter(rgb.astype(np.float32), (sigma, sigma, 0)) + 0.5, 0, 255).astype(np.uint8)


# label -> (pixel change, JPEG quality of the written file or None for PNG)
Step = tuple[Callable[[np.ndarray], np.ndarray], int | None]
STEPS: dict[str, Step] = {
    "none": (lambda rgb: rgb, None),
    "jpeg:95": (lambda rgb: rgb, 95),
    "jpeg:90": (lambda rgb: rgb, 90),
    "jpeg:80": (lambda rgb: rgb, 80),
    "jpeg:70": (lambda rgb: rgb, 70),
    "jpeg:60": (lambda rgb: rgb, 60),
    "jpeg:50": (lambda rgb: rgb, 50),
    "resize:0.5": (lambda rgb: rescale(rgb, 0.5), None),
    "resize:0.75": (lambda rgb: rescale(rgb, 0.75), None),
    "resize:1.5": (lambda rgb: rescale(rgb, 1.5), None),
    "resize:2": (lambda rgb: rescale(rgb, 2.0), None),
    "blur:1": (lambda rgb: blurred(rgb, 1.0), None),
    # A social-media chain on a crop: downscaled by 0.75 (area), then re-saved as JPEG q75.
    "social:0.75x+q75": (lambda rgb: rescale(rgb, 0.75), 75),
}


def crop_rows(pool_crops: Path, dev_cache: Path | None) -> list[dict[str, Any]]:
    rows = []
    manifest = pool_crops / "png" / "test.csv"
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["crop"] == "0":
                rows.append(
                    {"set": "pool-test", "path": manifest.parent / row["path"], "label": row["label"]}
                )
    if dev_cache is not None:
        manifest = dev_cache / "png" / "manifest.csv"
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows.append({"set": "dev", "path": manifest.parent / row["path"], "label": row["label"]})
    return rows


def write_perturbed(rows: list[dict[str, Any]], step: Step, folder: Path) -> list[Path]:
    change, quality = step
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, row in enumerate(rows):
        rgb = change(load_image(row["path"]).rgb)
        path = folder / f"{index}.{'jpg' if quality else 'png'}"
        options = {"quality": quality} if quality else {}
        Image.fromarray(rgb).save(path, **options)
        paths.append(path)
    return paths


def measure(cache: FeatureCache, paths: list[Path], labels: np.ndarray) -> dict[str, Any]:
    fused = np.array(cache.scorer("fused")(paths))
    threshold = cache.stacker.operating_point.threshold
    record: dict[str, Any] = {
        "auc": roc_auc(labels, fused),
        "tpr_at_1pct_fpr": tpr_at_fpr(labels, fused, 0.01).tpr,
        "fpr_at_operating_point": float(np.mean(fused[labels == 0] >= threshold)),
        "tpr_at_operating_point": float(np.mean(fused[labels == 1] >= threshold)),
        "inputs": {},
    }
    for name in cache.stacker.features:
        column = np.nan_to_num(np.array(cache.scorer(name)(paths)))
        record["inputs"][name] = roc_auc(labels, column)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", type=Path, default=None)
    parser.add_argument("--detector", action="append", default=None, help="NAME=WEIGHTS (repeatable)")
    parser.add_argument("--pool-crops", type=Path, default=WORKSPACE / "data/pool-crops")
    parser.add_argument("--dev-cache", type=Path, default=None)
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    args.fusion, _, stacker, analyzer = fusion_inputs(args.fusion, args.detector)
    rows = crop_rows(args.pool_crops, args.dev_cache)
    sets = sorted({row["set"] for row in rows})
    results: dict[str, dict[str, Any]] = {name: {} for name in sets}
    print(f"fusion card {args.fusion}: operating point {stacker.operating_point.label}")
    with tempfile.TemporaryDirectory() as scratch:
        for label in args.steps.split(","):
            cache = FeatureCache(analyzer, stacker)
            paths = write_perturbed(rows, STEPS[label], Path(scratch) / label.replace(":", "-"))
            for name in sets:
                chosen = [i for i, row in enumerate(rows) if row["set"] == name]
                labels = np.array([rows[i]["label"] == "fake" for i in chosen], np.float64)
                results[name][label] = measure(cache, [paths[i] for i in chosen], labels)
    for name in sets:
        real = sum(row["label"] == "real" for row in rows if row["set"] == name)
        print(f"\n{name}: {real} genuine, {sum(row['set'] == name for row in rows) - real} generated crops\n")
        inputs = stacker.features
        print_header(
            "| perturbation | fused AUC | fused TPR@1% | FPR / TPR at op. point | "
            + " | ".join(f"{feature} AUC" for feature in inputs)
            + " |"
        )
        for label, record in results[name].items():
            cells = [
                label,
                pct(record["auc"]),
                pct(record["tpr_at_1pct_fpr"]),
                f"{pct(record['fpr_at_operating_point'])} / {pct(record['tpr_at_operating_point'])}",
            ] + [pct(record["inputs"][feature]) for feature in inputs]
            print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
