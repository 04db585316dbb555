"""Spectral evidence on the forge protocol: per-family AUC, AP and TPR@1%FPR on a forged test split.

    python benchmarks/spectral_forge.py DATA [--split test] [--tile 64] [--json results.json]

DATA is a dataset written by `pixelsleuth forge` (the default detector's is made by the command in
configs/default_npr.toml). The training-free `spectral_score` is measured on every family's images of
the split (its own real crops and its fakes, all post-processed alike), next to the content-blind
baseline measured in the same run: a cross-validated logistic regression on file size, width, height
and format of the same files (the forge's format-shortcut check; near 50 means the post-processing
hides the format). 'x blind' = spectral AUC / content-blind AUC.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np
from spectral_dev import pct, spectral_scorer

from pixelsleuth.bench.devset import content_blind_baseline, score_manifest
from pixelsleuth.forensics.spectral import DEFAULT_TILE
from pixelsleuth.train.datasets import discover


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    samples = discover(args.data / args.split)
    with tempfile.TemporaryDirectory() as scratch:
        manifest = Path(scratch) / "manifest.csv"
        with manifest.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "subset"])
            writer.writerows([str(s.path.resolve()), s.label, s.subset] for s in samples)
        spectral = score_manifest(manifest, spectral_scorer(args.tile))
        blind = content_blind_baseline(manifest)

    print(f"spectral_score (tile {args.tile}) on {args.data / args.split}; values in %.\n")
    print("| subset | n real | n fake | AUC | AP | TPR@1% | content-blind AUC | x blind |")
    print("|:---|---:|---:|---:|---:|---:|---:|---:|")
    for subset, row in spectral.items():
        ratio = row["auc"] / blind[subset]["auc"] if blind[subset]["auc"] else float("nan")
        cells = [subset, str(row["n_real"]), str(row["n_fake"]), pct(row["auc"]), pct(row["ap"])]
        cells += [pct(row["tpr_at_1pct_fpr"]), pct(blind[subset]["auc"]), f"{ratio:.2f}"]
        print("| " + " | ".join(cells) + " |")
    mean_auc = float(np.mean([row["auc"] for row in spectral.values()]))
    print(f"\nmean AUC over subsets: {pct(mean_auc)}")
    if args.json:
        record = {"data": str(args.data), "split": args.split, "spectral": spectral, "content_blind": blind}
        args.json.write_text(json.dumps(record, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
