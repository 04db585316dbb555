"""Training-free localization maps on the restored manip set, per dataset, against a trivial baseline.

    python benchmarks/localization_manip.py [--manip ../data/manip] [--json results.json]
                                            [--manifest ../shared/data/manip/manifest.tsv]

For every manipulated image with a ground-truth mask of its size, each map (`ela` at JPEG quality 90,
`noise_inconsistency`, `copy_move`, `jpeg_ghost`) is scored with `localization_metrics` (every pixel
counts, no inversion; F1 / IoU / MCC at 0.5, pixel AUC, oracle F1 at the image's best threshold).
Printed per dataset: the mean of each. Baseline in the same run: the map that flags every pixel (its F1
is what a useless map gets from the size of the regions alone). On the pristine originals: the share of
pixels flagged at 0.5 and how many images score >= 0.5.

Masks: COVERAGE's ``*forged*`` mask (the pasted target), VIPP's target-only ``_tm`` mask, NIST16 masks
inverted where its manifest note says black is manipulated; NoSo marks source and copy both. The
set is small (56 manipulated images): read its numbers as orientation, not as a benchmark.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.bench.locset import INVERTED_MASK_NOTE, LocalizationSample, chosen_mask, load_truth
from pixelsleuth.intake import load_image
from pixelsleuth.localization.copymove import copy_move
from pixelsleuth.localization.ela import ela
from pixelsleuth.localization.ghost import jpeg_ghost
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.noise import noise_inconsistency
from pixelsleuth.localization.record import ForensicMap

ROOT = Path(__file__).resolve().parents[2]
MAPS: dict[str, Callable[[np.ndarray], ForensicMap]] = {
    "ela": lambda rgb: ela(rgb, quality=90),
    "noise": noise_inconsistency,
    "copy-move": copy_move,
    "ghost": jpeg_ghost,
}
KEYS = ("f1", "iou", "mcc", "auc", "best_f1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manip", type=Path, default=ROOT / "data" / "manip")
    parser.add_argument("--manifest", type=Path, default=ROOT / "shared" / "data" / "manip" / "manifest.tsv")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with args.manifest.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    masks: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["label"] == "mask":
            masks[row["pair"]].append(row)
    results: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    scores: dict[str, list[tuple[int, float]]] = defaultdict(list)
    skipped = 0
    for row in rows:
        if row["label"] not in ("manipulated", "pristine"):
            continue
        rgb = load_image(args.manip / row["relpath"]).rgb
        if row["label"] == "pristine":
            for name, method in MAPS.items():
                result = method(rgb)
                flagged = float((result.map >= 0.5).mean())
                results["pristine"][name].append({"false_alarm": flagged, "score": result.score})
                scores[name].append((0, result.score))
            continue
        mask_row = chosen_mask(masks.get(row["relpath"], []))
        if mask_row is None:
            skipped += 1
            continue
        inverted = INVERTED_MASK_NOTE in mask_row["note"]
        mask_path = args.manip / mask_row["relpath"]
        truth = load_truth(
            LocalizationSample(args.manip / row["relpath"], mask_path, "", invert_mask=inverted)
        )
        if truth.shape != rgb.shape[:2]:
            skipped += 1
            continue
        dataset = row["dataset"]
        for name, method in MAPS.items():
            result = method(rgb)
            results[dataset][name].append(localization_metrics(result.map, truth).to_dict())
            scores[name].append((1, result.score))
        results[dataset]["flag-everything"].append(
            localization_metrics(np.ones(truth.shape), truth).to_dict()
        )

    methods = [*MAPS, "flag-everything"]
    print(f"{skipped} manipulated image(s) without a usable mask of their size were left out\n")
    print("| dataset | n | " + " | ".join(f"{m} F1@0.5 / oracle F1 / AUC" for m in methods) + " |")
    print("|:---|---:|" + "---:|" * len(methods))
    summary: dict[str, Any] = {}
    for dataset, by_method in sorted(results.items()):
        if dataset == "pristine":
            continue
        cells, summary[dataset] = [dataset, str(len(by_method["ela"]))], {}
        for method in methods:
            means = {key: float(np.nanmean([r[key] for r in by_method[method]])) for key in KEYS}
            summary[dataset][method] = means
            cells.append(" / ".join(f"{100 * means[k]:.1f}" for k in ("f1", "best_f1", "auc")))
        print("| " + " | ".join(cells) + " |")
    pristine = results.get("pristine", {})
    for method in MAPS:
        flagged = [r["false_alarm"] for r in pristine.get(method, [])]
        called = sum(r["score"] >= 0.5 for r in pristine.get(method, []))
        print(
            f"pristine, {method}: {100 * np.mean(flagged):.1f} % of pixels flagged at 0.5 on average; "
            f"{called} of {len(flagged)} images score >= 0.5"
        )
    if args.json:
        args.json.write_text(json.dumps({"datasets": summary, "pristine": pristine}, indent=2) + "\n")


if __name__ == "__main__":
    main()
