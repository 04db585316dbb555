"""The fused detector score and each of its inputs, per generator, on dev crops and held-out pool crops.

    python benchmarks/fused_dev.py [--fusion CARD.json --detector NAME=WEIGHTS ...] [--full-images]
                                   [--dev-root ../shared/data/dev] [--dev-cache DIR]
                                   [--pool-crops /work/data/pool-crops] [--json results.json]

Without --fusion it measures the fusion card and detectors `pixelsleuth scan` uses by default. Every
crop is scored once by every input (the spectral check, each detector's raw logit) and by the fused
probability. Printed per generator, for each scorer: ROC-AUC, AP and TPR at 1 % FPR (the threshold
set on that table's genuine crops), on PNG crops and on the same crops as JPEG q90; then, for the fused
score, the false-positive rate on the genuine crops at the card's operating point (set on the pool's
calib split, never on these) with the true-positive rate there, and the expected calibration error.
With --full-images, the dev originals are scored whole as well (for information: their sizes and
formats differ between genuine and generated images, which the crops remove).
Baseline in the same run: the content-blind regression (file size, width, height, format).

Dev crops come from `prepare_dev_crops` (grid-aligned centre crops, no metadata); pool crops from the
test split written by `pixelsleuth.bench.poolset.prepare_pool_crops` (first crop of each image).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spectral_dev import DEFAULT_DEV_ROOT, crop_variants, pct, print_header

from pixelsleuth.bench.devset import ORIGINALS, content_blind_baseline, prepare_dev_crops, score_manifest
from pixelsleuth.bench.poolset import per_generator_manifest
from pixelsleuth.detectors.calibration import expected_calibration_error
from pixelsleuth.detectors.defaults import embedded_detectors, embedded_fusion_card
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, DetectorSpec
from pixelsleuth.train.datasets import discover
from pixelsleuth.verdict.stack import Stacker, stack_inputs

WORKSPACE = Path(__file__).resolve().parents[2]  # the folder that holds this checkout, shared/ and data/


class FeatureCache:
    """Every crop's stack inputs, computed once; scorers read one column, or the fused probability."""

    def __init__(self, analyzer: Analyzer, stacker: Stacker) -> None:
        self.analyzer, self.stacker = analyzer, stacker
        self.rows: dict[Path, np.ndarray] = {}

    def _row(self, path: Path) -> np.ndarray:
        if path not in self.rows:
            values = stack_inputs(self.analyzer, path)
            self.rows[path] = np.array([values.get(name, np.nan) for name in self.stacker.features])
        return self.rows[path]

    def scorer(self, column: str) -> Callable[[Sequence[Path]], list[float]]:
        def score(paths: Sequence[Path]) -> list[float]:
            matrix = np.stack([self._row(path) for path in paths])
            if column == "fused":
                return self.stacker.probabilities(matrix).tolist()
            return matrix[:, self.stacker.features.index(column)].tolist()

        return score


def fusion_inputs(
    fusion: Path | None, detectors: Sequence[str] | None
) -> tuple[Path, tuple[DetectorSpec, ...], Stacker, Analyzer]:
    """The fusion card, its detectors, the stacker and an analyzer computing its inputs; without a card,
    the ones `pixelsleuth scan` uses by default."""
    if fusion is None:
        fusion = embedded_fusion_card()
        specs = tuple(DetectorSpec(name, str(path)) for name, path in embedded_detectors())
    else:
        specs = tuple(DetectorSpec.parse(text) for text in detectors or ())
    if fusion is None or not specs:
        raise SystemExit("no fusion card: pass --fusion CARD and --detector NAME=WEIGHTS")
    analyzer = Analyzer(AnalyzerConfig(sources=("spectral",), detectors=specs, fusion=None))
    return fusion, specs, Stacker.load(fusion), analyzer


def operating_rates(manifest: Path, cache: FeatureCache) -> dict[str, Any]:
    """FPR and TPR of the fused score at the card's operating point, and its ECE, over a manifest's crops."""
    unique = {sample.path: sample.label for sample in discover(manifest)}
    labels = np.array(list(unique.values()))
    probability = np.array(cache.scorer("fused")(list(unique)))
    threshold = cache.stacker.operating_point.threshold
    return {
        "fpr_at_operating_point": float(np.mean(probability[labels == 0] >= threshold)),
        "tpr_at_operating_point": float(np.mean(probability[labels == 1] >= threshold)),
        "ece": expected_calibration_error(probability, labels),
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
    }


def print_table(title: str, results: dict[str, dict[str, dict[str, Any]]], scorers: list[str]) -> None:
    variants = list(results)
    print(f"\n{title} (values in %: AUC / AP / TPR@1%FPR, {' then '.join(variants)})\n")
    print_header("| generator | n real | n fake | " + " | ".join(scorers) + " |")
    first = results[variants[0]]
    for subset in first[scorers[0]]:
        row = first[scorers[0]][subset]
        cells = [subset, str(row["n_real"]), str(row["n_fake"])]
        for scorer in scorers:
            parts = []
            for variant in variants:
                record = results[variant][scorer][subset]
                parts.append("/".join(pct(record[key]) for key in ("auc", "ap", "tpr_at_1pct_fpr")))
            cells.append(" · ".join(parts))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", type=Path, default=None)
    parser.add_argument("--detector", action="append", default=None, help="NAME=WEIGHTS (repeatable)")
    parser.add_argument("--dev-root", type=Path, default=DEFAULT_DEV_ROOT)
    parser.add_argument("--dev-cache", type=Path, default=None)
    parser.add_argument("--pool-crops", type=Path, default=WORKSPACE / "data/pool-crops")
    parser.add_argument("--full-images", action="store_true", help="also the dev originals, whole")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    args.fusion, specs, stacker, analyzer = fusion_inputs(args.fusion, args.detector)
    cache = FeatureCache(analyzer, stacker)
    scorers = ["fused", *stacker.features]
    record: dict[str, Any] = {"fusion": str(args.fusion), "detectors": [s.fingerprint for s in specs]}
    point = stacker.operating_point
    print(f"fusion card {args.fusion}: operating point {point.label}, set on {point.dataset}")
    print(f"({point.n_real} genuine photos held apart from every detector's training)")

    with tempfile.TemporaryDirectory() as scratch:
        sets: dict[str, dict[str, Path]] = {}
        crops = args.dev_cache or Path(scratch) / "dev-crops"
        if args.dev_root.is_dir():
            if not (crops / "summary.json").is_file():
                prepare_dev_crops(args.dev_root, crops, size=256, jpeg_quality=90)
            manifests, blind = crop_variants(crops, 90)
            sets["dev"] = manifests
            record["dev_content_blind"] = blind
            if args.full_images:
                sets["dev-full-images"] = {"full": crops / ORIGINALS / "manifest.csv"}
        if (args.pool_crops / "png" / "test.csv").is_file():
            sets["pool-test"] = {
                name: per_generator_manifest(
                    args.pool_crops / variant / "test.csv", Path(scratch) / f"pool-{name}.csv"
                )
                for name, variant in (("png", "png"), ("jpeg", "jpeg90"))
            }
            record["pool_content_blind"] = {
                name: content_blind_baseline(path) for name, path in sets["pool-test"].items()
            }
        for name, manifests in sets.items():
            results = {
                variant: {scorer: score_manifest(manifest, cache.scorer(scorer)) for scorer in scorers}
                for variant, manifest in manifests.items()
            }
            rates = {variant: operating_rates(manifest, cache) for variant, manifest in manifests.items()}
            record[name] = {"metrics": results, "operating_point": rates}
            print_table(name, results, scorers)
            for variant, rate in rates.items():
                fpr, tpr = pct(rate["fpr_at_operating_point"]), pct(rate["tpr_at_operating_point"])
                print(
                    f"{name} {variant}: at the operating point FPR {fpr} % of {rate['n_real']} genuine, "
                    f"TPR {tpr} % of {rate['n_fake']} generated; ECE {rate['ece']:.3f}"
                )
            blind = record.get(f"{name.split('-')[0]}_content_blind", {})
            if blind:
                means = {
                    variant: np.nanmean([row["auc"] for row in table.values()])
                    for variant, table in blind.items()
                }
                print(
                    f"{name} content-blind baseline, mean AUC: "
                    + ", ".join(f"{k} {pct(v)}" for k, v in means.items())
                )
    if args.json:
        args.json.write_text(json.dumps(record, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
