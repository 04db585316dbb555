"""Build the localization fit and test sets from the pool's genuine photos (the data of the shipped card).

    python scripts/localization_sets.py --pool ../data/pool --out ../data [--forge]

1. ``OUT/locforge-photos/{calib,test}/``: links to the pool's genuine photos of its calib and test
   splits (`bench.poolset.split_of`), so nothing forged for fitting shares a photo with the test set,
   and neither shares one with the pool's train split that the learned localizer trained on.
2. With ``--forge``: ``pixelsleuth forge`` on each (384² crops, 50 manipulations per kind, the
   ae-bicubic-x2 family for the AI edits, trained for 60 s; 300 genuine crops), into ``OUT/locforge/``.
   The family's training is time-bound, so its AI edits differ slightly between machines; the other
   manipulations are seed-determined.
3. ``OUT/locsets/fit-genuine`` (the first 200 genuine calib crops) and ``OUT/locsets/test-genuine``
   (the first 60 genuine crops of each split of the test forge): links to the genuine crops, which went
   through the same post-processing as the manipulated ones.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from pixelsleuth.bench.poolset import read_pool_manifest, split_of

ROOT = Path(__file__).resolve().parents[1]


def link(source: Path, target: Path) -> None:
    if not target.exists():
        os.symlink(source.resolve(), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, default=ROOT.parent / "data" / "pool")
    parser.add_argument(
        "--manifest", type=Path, default=ROOT.parent / "shared" / "data" / "pool" / "manifest.tsv"
    )
    parser.add_argument("--out", type=Path, default=ROOT.parent / "data")
    parser.add_argument("--forge", action="store_true")
    args = parser.parse_args()
    photos = args.out / "locforge-photos"
    for row in read_pool_manifest(args.manifest):
        split = split_of(row)
        if row.label == 0 and split in ("calib", "test") and (args.pool / row.relpath).is_file():
            (photos / split).mkdir(parents=True, exist_ok=True)
            link(args.pool / row.relpath, photos / split / row.relpath.replace("/", "__"))
    for split in ("calib", "test"):
        forged = args.out / "locforge" / split
        if args.forge and not (forged / "manifest.jsonl").is_file():
            subprocess.run(
                [Path(sys.executable).parent / "pixelsleuth", "forge", photos / split, forged,
                 "--families", "ae-bicubic-x2", "--per-family", "300", "--manipulations", "50",
                 "--crop", "384", "--train-seconds", "60"],
                check=True,
            )  # fmt: skip
    genuine = args.out / "locsets"
    for name, folders, count in (
        ("fit-genuine", [args.out / "locforge/calib/train/ae-bicubic-x2/0_real"], 200),
        (
            "test-genuine",
            [args.out / f"locforge/test/{s}/ae-bicubic-x2/0_real" for s in ("train", "val", "test")],
            60,
        ),
    ):
        (genuine / name).mkdir(parents=True, exist_ok=True)
        for folder in folders:
            prefix = "" if name == "fit-genuine" else folder.parts[-3] + "-"
            for crop in sorted(folder.iterdir())[:count] if folder.is_dir() else []:
                link(crop, genuine / name / f"{prefix}{crop.name}")
        print(f"{genuine / name}: {len(list((genuine / name).iterdir()))} genuine crops")


if __name__ == "__main__":
    main()
