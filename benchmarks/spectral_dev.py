"""Spectral evidence on the development set: per-generator AUC, AP and TPR@1%FPR on fixed-size crops.

    python benchmarks/spectral_dev.py [--dev-root ../shared/data/dev] [--cache DIR] [--size 256]
                                      [--quality 90] [--tile 64] [--json results.json]

Prepares grid-aligned centre crops of every dev image (`pixelsleuth.bench.devset.prepare_dev_crops`:
lossless PNG, and the same crops re-encoded as JPEG), scores every crop with
`pixelsleuth.forensics.spectral.spectral_score` (its JPEG grid discounted for the JPEG crops), and
prints per generator (all real crops + that generator's) the AUC, AP and TPR at 1 % FPR for both
encodings, next to the content-blind baseline (logistic regression on file size, width, height and
format, cross-validated) measured in the same run on the original files and on both kinds of crops.
Also times `spectral_score` on a 1-megapixel image (1152 x 864, best and median of 30 runs).

The crops go to --cache when given (kept), else to a temporary folder (removed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.bench.devset import (
    ORIGINALS,
    PNG_FOLDER,
    content_blind_baseline,
    jpeg_variant_name,
    prepare_dev_crops,
    score_manifest,
)
from pixelsleuth.forensics.spectral import DEFAULT_TILE, spectral_score
from pixelsleuth.intake import load_image

DEFAULT_DEV_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"


METRIC_KEYS = ("auc", "ap", "tpr_at_1pct_fpr")
TABLE_START = (
    "| generator | n real | n fake | PNG AUC | PNG AP | PNG TPR@1% | JPEG AUC | JPEG AP | JPEG TPR@1% "
)


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; a dash where it is undefined."""
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def print_header(header: str) -> None:
    """A Markdown table header with the first column left-aligned and the others right-aligned."""
    print(header)
    print("|" + "|".join([":---"] + ["---:"] * (header.count("|") - 2)) + "|")


def metric_cells(subset: str, png: dict[str, Any], jpeg: dict[str, Any]) -> list[str]:
    """The first cells of a row: the subset, its counts, and AUC / AP / TPR@1% on PNG, then on JPEG."""
    cells = [subset, str(png["n_real"]), str(png["n_fake"])]
    return cells + [pct(row[key]) for row in (png, jpeg) for key in METRIC_KEYS]


def crop_variants(crops: Path, quality: int) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """The PNG and JPEG crop manifests, and the content-blind baseline on them and on the originals."""
    variants = {"png": PNG_FOLDER, "jpeg": jpeg_variant_name(quality)}
    manifests = {name: crops / folder / "manifest.csv" for name, folder in variants.items()}
    blind = {
        name: content_blind_baseline(crops / folder / "manifest.csv")
        for name, folder in {"originals": ORIGINALS, **variants}.items()
    }
    return manifests, blind


def spectral_scorer(tile: int) -> Callable[[Sequence[Path]], list[float]]:
    """Score paths with spectral_score (its JPEG grid discounted for JPEG files)."""

    def score(paths: Sequence[Path]) -> list[float]:
        scores = []
        for path in paths:
            image = load_image(path)
            scores.append(spectral_score(image.rgb, jpeg=image.jpeg is not None, tile=tile))
        return scores

    return score


def time_one_megapixel(tile: int, runs: int = 30) -> tuple[float, float]:
    """Best and median milliseconds of spectral_score on a 1152 x 864 textured image."""
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (864, 1152, 3)), 0, 255).astype(np.uint8)
    spectral_score(image, tile=tile)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        spectral_score(image, tile=tile)
        times.append(1000 * (time.perf_counter() - start))
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev-root", type=Path, default=DEFAULT_DEV_ROOT)
    parser.add_argument("--cache", type=Path, default=None, help="keep the crops here")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        crops = args.cache or Path(scratch) / "crops"
        start = time.perf_counter()
        prepare_dev_crops(args.dev_root, crops, size=args.size, jpeg_quality=args.quality)
        summary = json.loads((crops / "summary.json").read_text())
        print(
            f"crops prepared in {time.perf_counter() - start:.1f} s: {summary['n_real']} real, "
            f"{summary['n_fake']} generated; skipped (smaller than {args.size}): {summary['skipped_small']}; "
            f"left out: {summary['left_out']}; unreadable: {len(summary['failed'])}"
        )
        manifests, baseline = crop_variants(crops, args.quality)
        start = time.perf_counter()
        spectral = {
            name: score_manifest(manifest, spectral_scorer(args.tile)) for name, manifest in manifests.items()
        }
        scoring_seconds = time.perf_counter() - start
    best_ms, median_ms = time_one_megapixel(args.tile)

    print(
        f"\nspectral_score (tile {args.tile}) on {args.size} x {args.size} centre crops; "
        f"PNG = lossless crops, JPEG = the same crops at quality {args.quality}. Values in %.\n"
    )
    print_header(TABLE_START + "| blind AUC originals | blind AUC PNG | blind AUC JPEG |")
    for subset, png in spectral["png"].items():
        cells = metric_cells(subset, png, spectral["jpeg"][subset])
        cells += [pct(baseline[name][subset]["auc"]) for name in ("originals", "png", "jpeg")]
        print("| " + " | ".join(cells) + " |")
    n_scored = summary["n_real"] + sum(summary["n_fake"].values())
    print(
        f"\nscoring {2 * n_scored} crops took {scoring_seconds:.1f} s; spectral_score on 1 MP (1152 x 864): "
        f"best {best_ms:.1f} ms, median {median_ms:.1f} ms over 30 runs"
    )
    if args.json:
        record = {
            "summary": summary,
            "tile": args.tile,
            "spectral": spectral,
            "content_blind_baseline": baseline,
            "ms_per_megapixel": {"best": best_ms, "median": median_ms},
        }
        args.json.write_text(json.dumps(record, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
