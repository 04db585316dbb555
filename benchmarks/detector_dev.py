"""A trained detector on the development set: per-generator AUC, AP and TPR@1%FPR on fixed-size crops.

    python benchmarks/detector_dev.py [--weights PATH.safetensors] [--detector npr]
                                      [--dev-root ../shared/data/dev] [--cache DIR] [--size 256]
                                      [--quality 90] [--json results.json]

Without --weights it measures the embedded default detector(s) `pixelsleuth scan` uses. Crops come
from `pixelsleuth.bench.devset.prepare_dev_crops` (grid-aligned centre crops, metadata gone: lossless
PNG, and the same crops re-encoded as JPEG), so the pixels alone decide. Measured in the same run, as
baselines: the training-free spectral check and the content-blind regression (file size, width,
height, format), and the ratio of the detector's AUC to the spectral check's. When the card carries
a calibration (fitted on held-apart forge images, never on dev), the expected calibration error of
the calibrated probabilities on dev and the share of real and generated crops above 0.5.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spectral_dev import (
    DEFAULT_DEV_ROOT,
    TABLE_START,
    crop_variants,
    metric_cells,
    pct,
    print_header,
    spectral_scorer,
)

from pixelsleuth.bench.devset import (
    prepare_dev_crops,
    score_manifest,
)
from pixelsleuth.detectors import Detector, create
from pixelsleuth.detectors.calibration import PlattCalibration, expected_calibration_error
from pixelsleuth.detectors.defaults import embedded_detectors
from pixelsleuth.forensics.spectral import DEFAULT_TILE
from pixelsleuth.intake import load_image
from pixelsleuth.train.datasets import discover


def detector_scorer(detector: Detector, batch_size: int = 32) -> Callable[[Sequence[Path]], list[float]]:
    """Score paths with the detector's raw probability, a batch at a time; each path is scored once
    (`calibration_on` reads the same scores back)."""
    scored: dict[Path, float] = {}

    def score(paths: Sequence[Path]) -> list[float]:
        missing = [path for path in paths if path not in scored]
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            images = [load_image(path).rgb for path in batch]
            scored.update(zip(batch, detector.predict(images, batch_size=batch_size).tolist(), strict=True))
        return [scored[path] for path in paths]

    return score


def calibration_on(
    manifest: Path, score: Callable[[Sequence[Path]], list[float]], calibration: PlattCalibration
) -> dict[str, Any]:
    """ECE and flag rates at 0.5 of the calibrated probability over the unique crops of a manifest."""
    unique = {sample.path: sample.label for sample in discover(manifest)}
    labels = np.array(list(unique.values()))
    probability = calibration(np.asarray(score(list(unique)), dtype=np.float64))
    return {
        "ece": expected_calibration_error(probability, labels),
        "real_above_0.5": float((probability[labels == 0] > 0.5).mean()),
        "fake_above_0.5": float((probability[labels == 1] > 0.5).mean()),
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="default: the embedded default")
    parser.add_argument("--detector", default="npr")
    parser.add_argument("--dev-root", type=Path, default=DEFAULT_DEV_ROOT)
    parser.add_argument("--cache", type=Path, default=None, help="keep the crops here")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    if args.weights is None:
        defaults = embedded_detectors()
        if not defaults:
            raise SystemExit("no embedded default detector is installed: pass --weights")
        args.detector, args.weights = defaults[0]
    detector = create(args.detector, args.weights)
    calibration_record = detector.card.extra.get("calibration")
    calibration = PlattCalibration.from_dict(calibration_record) if calibration_record else None

    with tempfile.TemporaryDirectory() as scratch:
        crops = args.cache or Path(scratch) / "crops"
        if not (crops / "summary.json").is_file():
            prepare_dev_crops(args.dev_root, crops, size=args.size, jpeg_quality=args.quality)
        summary = json.loads((crops / "summary.json").read_text())
        manifests, blind = crop_variants(crops, args.quality)
        spectral = {
            name: score_manifest(manifest, spectral_scorer(DEFAULT_TILE))
            for name, manifest in manifests.items()
        }
        scorer = detector_scorer(detector, args.batch_size)
        start = time.perf_counter()
        results = {name: score_manifest(manifest, scorer) for name, manifest in manifests.items()}
        seconds = time.perf_counter() - start
        calibrated = (
            {name: calibration_on(manifest, scorer, calibration) for name, manifest in manifests.items()}
            if calibration
            else {}
        )

    print(
        f"{args.detector} ({args.weights}) on {args.size} x {args.size} centre crops of {args.dev_root}: "
        f"{summary['n_real']} real, {summary['n_fake']} generated; PNG = lossless, JPEG = quality "
        f"{args.quality}. Values in %; 'x spectral' = detector AUC / spectral-check AUC, same run.\n"
    )
    print_header(
        TABLE_START + "| spectral AUC PNG / JPEG | x spectral PNG / JPEG | blind AUC orig / PNG / JPEG |"
    )
    for subset, png in results["png"].items():
        cells = metric_cells(subset, png, results["jpeg"][subset])
        spectral_auc = [spectral[name][subset]["auc"] for name in ("png", "jpeg")]
        cells.append(" / ".join(pct(value) for value in spectral_auc))
        ratios = [
            results[name][subset]["auc"] / value
            for name, value in zip(("png", "jpeg"), spectral_auc, strict=True)
        ]
        cells.append(" / ".join(f"{ratio:.2f}" for ratio in ratios))
        cells.append(" / ".join(pct(blind[name][subset]["auc"]) for name in ("originals", "png", "jpeg")))
        print("| " + " | ".join(cells) + " |")
    n_scored = summary["n_real"] + sum(summary["n_fake"].values())
    print(f"\nscoring {2 * n_scored} crops took {seconds:.1f} s")
    for name, record in calibrated.items():
        print(
            f"calibrated probability on dev {name}: ECE {record['ece']:.3f}; above 0.5: "
            f"{pct(record['real_above_0.5'])} % of real, {pct(record['fake_above_0.5'])} % of generated"
        )
    if args.json:
        record = {
            "detector": args.detector,
            "weights": str(args.weights),
            "summary": summary,
            "detector_metrics": results,
            "spectral": spectral,
            "content_blind_baseline": blind,
            "calibration_on_dev": calibrated,
        }
        args.json.write_text(json.dumps(record, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
