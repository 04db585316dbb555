"""Build the whole-image sets the verdict card is fitted and measured on (the data of the shipped card).

    python scripts/verdict_sets.py --pool ../data/pool --out ../data/verdict

From the pool's calib and test splits (`bench.poolset.split_of`: images no detector trained on), whole
images as they are in the pool, metadata and all:
- ``{split}-balanced.csv``: every generated image of the split and as many genuine photos, chosen by a
  hash of their path (the calibration sees both classes equally often: its probabilities assume even
  odds);
- ``{split}-genuine.csv``: every genuine photo of the split (the threshold for a 1 % false-positive
  rate is set on all of calib's, and measured on all of test's).
Rows: path (relative to the manifest), label (real | fake), subset (generator or photo set). Partly
real images are left out.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from pathlib import Path

from pixelsleuth.bench.poolset import read_pool_manifest, split_of

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "subset"])
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=ROOT.parent / "data" / "pool", help="restored pool")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT.parent / "shared" / "data" / "pool" / "manifest.tsv"
    )
    parser.add_argument("--out", type=Path, default=ROOT.parent / "data" / "verdict")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = read_pool_manifest(args.manifest)
    for split in ("calib", "test"):
        chosen = [row for row in rows if split_of(row) == split and (args.pool / row.relpath).is_file()]
        where = {r.relpath: os.path.relpath(args.pool / r.relpath, args.out) for r in chosen}
        fake = [(where[r.relpath], "fake", r.source) for r in chosen if r.label == 1]
        real = [(where[r.relpath], "real", r.source) for r in chosen if r.label == 0]
        by_hash = sorted(real, key=lambda row: hashlib.sha256(row[0].encode()).hexdigest())
        _write(args.out / f"{split}-balanced.csv", fake + by_hash[: len(fake)])
        _write(args.out / f"{split}-genuine.csv", real)
        print(
            f"{split}: {len(fake)} generated, {len(real)} genuine ({len(fake)} of them in the balanced set)"
        )


if __name__ == "__main__":
    main()
