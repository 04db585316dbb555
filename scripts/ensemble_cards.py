"""Write the measured numbers and the rebuild chain of the embedded fused default into its cards.

    python scripts/ensemble_cards.py src/pixelsleuth/detectors/weights \
        --fused ../data/measure/fused_dev.json --robustness ../data/measure/fused_robustness.json \
        --leave-out ../data/logo/patchnet

--fused is the --json of `benchmarks/fused_dev.py` (dev crops and the pool's test split), --robustness
that of `benchmarks/fused_robustness.py`, --leave-out the output folder of `pixelsleuth benchmark
leave-out`. The fusion card gains ``reproduce`` (every command from the restored pool to the card) and
``measured`` (each table with the command that measured it); each detector's model card gains its own
dev and pool-test metrics. Numbers from an earlier run of this script are replaced.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pixelsleuth.detectors import ModelCard
from pixelsleuth.detectors.card import Metric, card_path_for
from pixelsleuth.detectors.defaults import embedded_detectors, embedded_fusion_card

WEIGHTS = "src/pixelsleuth/detectors/weights"
REPRODUCE = [
    "python ../shared/data/pool/restore.py --out ../data/pool  # after fetching its --list-repos",
    "python -c 'from pixelsleuth.bench.poolset import prepare_pool_crops; "
    'prepare_pool_crops("../data/pool", "../shared/data/pool/manifest.tsv", "../data/pool-crops")\'',
    "python scripts/pool_manifests.py ../data/pool-crops -o ../data/pool-manifests",
    "OMP_NUM_THREADS=1 pixelsleuth fit-fsd ../data/pool-crops/png/train.csv fsd-pool.safetensors "
    "--also ../data/pool-crops/jpeg90/train.csv --also ../shared/data/real --crops-per-image 4 "
    "--attribution ../data/pool-crops/png/train.csv "
    "--attribution ../data/pool-crops/jpeg90/train.csv --seed 0",
    "OMP_NUM_THREADS=1 pixelsleuth train configs/pool_patchnet.toml",
    "pixelsleuth calibrate ../data/runs/pool-patchnet/best.safetensors ../data/pool-manifests/calib.csv "
    f"{WEIGHTS}/patchnet-pool.safetensors --max-strength 0.45",
    f"pixelsleuth fit-fusion ../data/pool-manifests/calib.csv {WEIGHTS}/fusion-pool.json "
    f"--detector fsd={WEIGHTS}/fsd-pool.safetensors --detector patchnet={WEIGHTS}/patchnet-pool.safetensors",
]
FUSED_COMMAND = "cd benchmarks && python fused_dev.py --dev-cache ../../data/dev-crops --full-images --json F"
ROBUSTNESS_COMMAND = "cd benchmarks && python fused_robustness.py --json F"
MEASURED_PREFIXES = ("dev-crops:", "pool-test:")


def _table(record: dict[str, Any], scorer: str) -> dict[str, dict[str, Any]]:
    """variant -> subset -> {auc, ap, tpr_at_1pct_fpr, n_real, n_fake} of one scorer."""
    return {
        variant: {
            subset: {key: row.get(key) for key in ("auc", "ap", "tpr_at_1pct_fpr", "n_real", "n_fake")}
            for subset, row in by_scorer[scorer].items()
        }
        for variant, by_scorer in record["metrics"].items()
    }


def detector_metrics(fused: dict[str, Any], scorer: str) -> list[Metric]:
    metrics = []
    for name, prefix in (("dev", "dev-crops"), ("pool-test", "pool-test")):
        if name not in fused:
            continue
        for variant, rows in _table(fused[name], scorer).items():
            for subset, values in rows.items():
                for metric, key in (("ROC-AUC", "auc"), ("AP", "ap"), ("TPR@1%FPR", "tpr_at_1pct_fpr")):
                    if values.get(key) is not None:
                        dataset = f"{prefix}:{variant}:{subset}"
                        metrics.append(Metric(metric, round(values[key], 4), dataset, FUSED_COMMAND))
    return metrics


def leave_out_summary(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    report = folder / "leaveout.json"
    if report.is_file():
        summary["command"] = json.loads(report.read_text()).get("command")
    for variant in ("png", "jpeg90"):
        table = folder / f"leaveout-{variant}.md"
        if table.is_file():
            summary[f"table_{variant}"] = table.read_text()
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--fused", type=Path, required=True)
    parser.add_argument("--robustness", type=Path, default=None)
    parser.add_argument("--leave-out", type=Path, action="append", default=[])
    args = parser.parse_args()

    fused = json.loads(args.fused.read_text())
    for name, weights in embedded_detectors(args.weights):
        path = card_path_for(weights)
        card = ModelCard.load(path)
        kept = [m for m in card.metrics if not m.dataset.startswith(MEASURED_PREFIXES)]
        card.metrics = kept + detector_metrics(fused, f"detector:{name}")
        card.save(path)
    card_path = embedded_fusion_card(args.weights)
    if card_path is None:
        raise SystemExit(f"{args.weights}/defaults.json names no fusion card")
    card = json.loads(card_path.read_text())
    card["reproduce"] = REPRODUCE
    measured: dict[str, Any] = {}
    for name in ("dev", "pool-test", "dev-full-images"):
        if name in fused:
            measured[name] = {
                "command": FUSED_COMMAND,
                "fused": _table(fused[name], "fused"),
                "operating_point": fused[name]["operating_point"],
            }
    if args.robustness:
        measured["robustness"] = {
            "command": ROBUSTNESS_COMMAND,
            "results": json.loads(args.robustness.read_text()),
        }
    for folder in args.leave_out:
        measured[f"leave-out:{folder.name}"] = leave_out_summary(folder)
    card["measured"] = measured
    card_path.write_text(json.dumps(card, indent=2, default=float) + "\n")
    print(f"wrote {card_path} and the detectors' cards")


if __name__ == "__main__":
    main()
