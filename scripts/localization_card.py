"""Write the measured localization numbers into the fusion card, beside the command that measured them.

    python scripts/localization_card.py CARD --eval EVAL.json \
        --command "pixelsleuth evaluate-localization ..." [--name heldout]

EVAL.json is what `pixelsleuth evaluate-localization --json` writes. The card keeps, under
``measured[NAME]``: the command, and per dataset and method the mean F1@0.5, oracle F1, IoU, MCC, pixel
AUC, image AUC and share with a region named; and over genuine images the share given a region.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rounded(values: dict) -> dict:
    return {key: None if value is None else round(float(value), 4) for key, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("card", type=Path)
    parser.add_argument("--eval", type=Path, required=True)
    parser.add_argument("--command", required=True)
    parser.add_argument("--name", default="heldout")
    args = parser.parse_args()
    card = json.loads(args.card.read_text(encoding="utf-8"))
    summary = json.loads(args.eval.read_text(encoding="utf-8"))["summary"]
    card.setdefault("measured", {})[args.name] = {
        "command": args.command,
        "datasets": {
            dataset: {
                "images": entry["images"],
                **{method: rounded(values) for method, values in entry["methods"].items()},
            }
            for dataset, entry in summary["datasets"].items()
        },
        "genuine": {
            "images": summary["genuine"]["images"],
            **{method: rounded(values) for method, values in summary["genuine"]["methods"].items()},
        },
    }
    args.card.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
