"""Manifests for training and measuring on the pool's crops (`pixelsleuth.bench.poolset.prepare_pool_crops`).

    python scripts/pool_manifests.py /work/data/pool-crops -o /work/data/pool-manifests

From ``CROPS/<variant>/<split>.csv`` (variants png and jpeg90) it writes ``OUT/train.csv`` and
``OUT/calib.csv``: the split's crops of every variant together (each crop once as PNG and once as JPEG
q90, a ``variant`` column says which), what ``configs/pool_*.toml`` train and validate on. The test
split stays as it is (``CROPS/<variant>/test.csv``), measured once per variant.

Paths are written relative to the manifest they are in, as `pixelsleuth.train.datasets.discover` reads
them. The crops must be complete: ``CROPS/summary.json`` marks a finished preparation.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from pixelsleuth.bench.poolset import VARIANTS, write_variant_manifest

COMBINED_SPLITS = ("train", "calib")


def read_rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def rebased(row: dict[str, str], manifest: Path, out_folder: Path, variant: str) -> dict[str, str]:
    """The row with its path made relative to `out_folder` (it was relative to `manifest`'s folder)."""
    absolute = (manifest.parent / row["path"]).resolve()
    return {**row, "path": os.path.relpath(absolute, out_folder.resolve()), "variant": variant}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("crops", type=Path, help="the folder prepare_pool_crops wrote")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if not (args.crops / "summary.json").is_file():
        parser.error(f"{args.crops} has no summary.json: the crops are missing or still being written")

    for split in COMBINED_SPLITS:
        rows = []
        for variant in VARIANTS:
            manifest = args.crops / variant / f"{split}.csv"
            rows += [rebased(row, manifest, args.output, variant) for row in read_rows(manifest)]
        count = write_variant_manifest(args.output / f"{split}.csv", rows)
        print(f"{split}: {count} crops ({', '.join(VARIANTS)}) -> {args.output / f'{split}.csv'}")


if __name__ == "__main__":
    main()
