"""Write the measured numbers of the embedded default detector into its model card.

    python scripts/default_card.py src/pixelsleuth/detectors/weights/npr-forge.safetensors \
        --forge-test runs/default-npr-forge-test/metrics.json --dev runs/default-npr-dev.json

--forge-test is the metrics.json of `pixelsleuth evaluate data/forge/test ...`, --dev the --json output
of `benchmarks/detector_dev.py`. Every number is recorded with the command that measured it; the card's
"reproduce" list gives the whole chain from photos to calibrated weights. Metrics the card already has
from a previous run of this script are replaced; those from training (validation ACC/AP/loss) are kept.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelsleuth.detectors import ModelCard
from pixelsleuth.detectors.card import Metric, card_path_for

REPRODUCE = [
    "pixelsleuth forge ../shared/data/real data/forge --models data/zoo --train-steps 360 "
    "--per-family 400 --crop 192 --manipulations 0 --workers 2 --seed 0",
    "python scripts/forge_select.py data/forge --split train --where postprocess.geometry=crop "
    "-o data/forge/train-crop.jsonl",
    "python scripts/forge_select.py data/forge --split val --where postprocess.geometry=crop "
    "-o data/forge/val-crop.jsonl",
    "pixelsleuth train configs/default_npr.toml",
    "pixelsleuth calibrate runs/default-npr/best.safetensors data/forge/val "
    "src/pixelsleuth/detectors/weights/npr-forge.safetensors --max-strength 0.45",
]
FORGE_COMMAND = (
    "pixelsleuth evaluate data/forge/test --weights src/pixelsleuth/detectors/weights/npr-forge.safetensors "
    "-o runs/default-npr-forge-test"
)
DEV_COMMAND = "python benchmarks/detector_dev.py --json runs/default-npr-dev.json"
MEASURED_PREFIXES = ("forge-test:", "dev-crops:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--forge-test", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    args = parser.parse_args()

    card_path = card_path_for(args.weights)
    card = ModelCard.load(card_path)
    metrics = [m for m in card.metrics if not m.dataset.startswith(MEASURED_PREFIXES)]
    forge = json.loads(args.forge_test.read_text())
    for subset, values in [*forge["subsets"].items(), ("mean", forge["mean"])]:
        for name, key in (("ROC-AUC", "roc_auc"), ("AP", "average_precision"), ("ACC", "accuracy")):
            if values.get(key) is not None:
                metrics.append(Metric(name, round(values[key], 4), f"forge-test:{subset}", FORGE_COMMAND))
    dev = json.loads(args.dev.read_text())
    for variant, rows in dev["detector_metrics"].items():
        for generator, values in rows.items():
            for name, key in (("ROC-AUC", "auc"), ("AP", "ap"), ("TPR@1%FPR", "tpr_at_1pct_fpr")):
                if values.get(key) is not None:
                    dataset = f"dev-crops:{variant}:{generator}"
                    metrics.append(Metric(name, round(values[key], 4), dataset, DEV_COMMAND))
    for variant, values in dev.get("calibration_on_dev", {}).items():
        metrics.append(
            Metric("ECE (calibrated)", round(values["ece"], 4), f"dev-crops:{variant}", DEV_COMMAND)
        )
    card.metrics = metrics
    card.extra["reproduce"] = REPRODUCE
    note = (
        "The forge dataset (docs/forge.md) is made from the genuine photos of shared/data/real by the "
        "first command of extra.reproduce; shared/data/dev was never used for training, epoch "
        "selection or calibration; it was used once, to choose training on the non-resized images "
        "over training on all of them (BENCHMARKS.md)."
    )
    if note not in card.training_data:
        card.training_data = f"{card.training_data}. {note}"
    card.save(card_path)
    print(f"{len(metrics)} metrics written to {card_path}")


if __name__ == "__main__":
    main()
