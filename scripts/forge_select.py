"""Select images of a forged dataset by their manifest fields, into a manifest `pixelsleuth train` reads.

    python scripts/forge_select.py data/forge --split train --where postprocess.geometry=crop \
        -o data/forge/train-crop.jsonl

Keeps the real and fake images (not manipulations or masks) of one split whose manifest fields match
every --where KEY=VALUE (dotted keys reach into nested fields, e.g. postprocess.format=png), and
writes path (relative to the dataset folder, where the output must be), label and generator.
The default detector trains on the crops that were not resized (`postprocess.geometry=crop`):
resizing erases the up-sampling traces NPR learns (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def field(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a dataset written by pixelsleuth forge")
    parser.add_argument("--split", required=True)
    parser.add_argument("--where", action="append", default=[], help="KEY=VALUE (repeatable)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    conditions = [condition.split("=", 1) for condition in args.where]
    if any(len(pair) != 2 for pair in conditions):
        parser.error("--where takes KEY=VALUE")
    if args.output.resolve().parent != args.data.resolve():
        parser.error("the output manifest must be written into the dataset folder (paths are relative to it)")
    kept = 0
    with (args.data / "manifest.jsonl").open(encoding="utf-8") as rows, args.output.open("w") as out:
        for line in rows:
            record = json.loads(line)
            if record.get("split") != args.split or record.get("label") not in ("real", "fake"):
                continue
            if all(str(field(record, key)) == value for key, value in conditions):
                row = {"path": record["path"], "label": record["label"], "generator": record["generator"]}
                out.write(json.dumps(row) + "\n")
                kept += 1
    print(f"{kept} images of {args.split} written to {args.output}")


if __name__ == "__main__":
    main()
