"""The calibrated verdict against the uncalibrated evidence combination it replaced, in the same run.

    python benchmarks/verdict_calibration.py DATASET [DATASET...] --store STORE [--localize] [--card CARD]

For each labelled set (analysed once, kept in STORE; `pixelsleuth assess` reads the same store): the
verdict's ECE, its false-positive rate on the genuine images and its TPR at the operating point, for
the shipped verdict card and for no card (the former noisy-OR evidence combination), and the ratio of
their ECEs; the same with localization evidence left out; the verdict's ECE per way of deciding (hard
evidence, calibrated score, ...); and whether every strong finding (strength >= 0.5) is cited in the
explanation.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from pixelsleuth.bench.assess import load_labelled
from pixelsleuth.bench.assess_command import analyse_labelled
from pixelsleuth.detectors.calibration import expected_calibration_error
from pixelsleuth.verdict.card import VerdictCard
from pixelsleuth.verdict.decide import decide
from pixelsleuth.verdict.explain import explain


def measure(evidence_lists, labels, card):
    decisions = [decide(items, card) for items in evidence_lists]
    p = np.array([0.5 if d.probability is None else d.probability for d in decisions])
    flagged = np.array([d.label in ("ai-generated", "manipulated") for d in decisions])
    authentic = np.array([d.label == "authentic" for d in decisions])
    return decisions, {
        "ece": expected_calibration_error(p, labels),
        "fpr": flagged[labels == 0].mean() if (labels == 0).any() else float("nan"),
        "tpr": flagged[labels == 1].mean() if (labels == 1).any() else float("nan"),
        "authentic_genuine": authentic[labels == 0].mean() if (labels == 0).any() else float("nan"),
        "authentic_generated": authentic[labels == 1].mean() if (labels == 1).any() else float("nan"),
    }


def line(name, row):
    return (
        f"  {name:34} ECE {row['ece']:.3f}  FPR {100 * row['fpr']:5.1f} %  TPR {100 * row['tpr']:5.1f} %  "
        f"called authentic: genuine {100 * row['authentic_genuine']:5.1f} %, "
        f"generated/edited {100 * row['authentic_generated']:5.1f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--localize", action="store_true")
    parser.add_argument("--card", type=Path, default=None, help="verdict card (default: the shipped one)")
    args = parser.parse_args()
    card = VerdictCard.load(args.card)
    for dataset in args.datasets:
        images = load_labelled(dataset)
        analyses = analyse_labelled(images, args.store, localize=args.localize)
        kept = [(i, a) for i, a in zip(images, analyses, strict=True) if a.verdict != "error"]
        labels = np.array([i.positive for i, _ in kept])
        evidence = [a.evidence for _, a in kept]
        print(f"{dataset}: {len(kept)} images ({int((labels == 0).sum())} genuine); operating point "
              f"{card.operating_point()['label']}")  # fmt: skip
        decisions, shipped = measure(evidence, labels, card)
        _, former = measure(evidence, labels, VerdictCard.identity())
        print(line("shipped verdict card", shipped))
        print(line("no card (former evidence combination)", former))
        print(f"  ECE ratio shipped / former: {shipped['ece'] / former['ece']:.2f}")
        if any(item.source == "localization" for items in evidence for item in items):
            stripped = [[item for item in items if item.source != "localization"] for items in evidence]
            print(line("shipped card, localization left out", measure(stripped, labels, card)[1]))
        groups = defaultdict(list)
        for decision, label in zip(decisions, labels, strict=True):
            groups[decision.decided_by.split(":")[0]].append((decision.probability, label))
        for how, rows in sorted(groups.items()):
            p = np.array([0.5 if v is None else v for v, _ in rows])
            y = np.array([label for _, label in rows])
            print(f"  decided by {how:22} n {len(rows):4d}  ECE {expected_calibration_error(p, y):.3f}  "
                  f"mean p {p.mean():.3f}  share positive {y.mean():.3f}")  # fmt: skip
        strong = missing = 0
        for items, decision in zip(evidence, decisions, strict=True):
            text = explain(items, decision, weights=card.weights)
            for item in items:
                if item.points_to != "none" and item.strength >= 0.5:
                    strong += 1
                    missing += item.finding.strip().rstrip(".") not in text
        print(f"  strong findings cited in the explanation: {strong - missing} of {strong}")


if __name__ == "__main__":
    main()
