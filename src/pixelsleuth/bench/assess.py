"""How capable each evidence source is, measured on labelled images (X²-DFD's capability assessment).

For every source that spoke on a labelled set, and for the verdict itself: its AUC (each image's signed
evidence from that source as the score; silence counts as 0.5), how often it speaks (coverage), its TPR
and FPR at its own decisive level (a finding of strength ≥ 0.5 pointing away from a genuine photo; for
the verdict: a generated or manipulated verdict), how often it is right where it speaks, its ECE and
reliability diagram where it states a probability, and the images it gets most wrong. The ranking that
results gives each provenance source a weight, ``2 × precision − 1`` where it spoke on enough images,
which the verdict card uses to weigh that source's stated strength and the explanation to order
findings.

Example:
    >>> from pixelsleuth.evidence.record import Evidence
    >>> source_score([Evidence("exif", "Camera: Canon", "authentic", 0.2)], "exif")
    0.4
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.analysis import Analysis
from pixelsleuth.bench.metrics import roc_auc
from pixelsleuth.detectors.calibration import expected_calibration_error, reliability_bins
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.card import VerdictCard
from pixelsleuth.verdict.decide import decide

TRUTHS = ("authentic", "ai-generated", "manipulated")
RANKING_FORMAT = "pixelsleuth.evidence-ranking/1"
RANKING_KEYS = ("source", "weight", "precision", "n_spoke", "coverage", "auc")
VERDICT = "verdict"
DECISIVE = 0.5  # a finding at least this strong, pointing away from a genuine photo, "flags" the image
MIN_SUPPORT = 10  # a source must speak on this many images before its weight is measured
FAILURES_SHOWN = 6
_TRUTH_WORDS = {
    "0": "authentic",
    "real": "authentic",
    "genuine": "authentic",
    "authentic": "authentic",
    "nature": "authentic",
    "1": "ai-generated",
    "fake": "ai-generated",
    "generated": "ai-generated",
    "ai": "ai-generated",
    "ai-generated": "ai-generated",
    "synthetic": "ai-generated",
    "manip": "manipulated",
    "manipulated": "manipulated",
}


class AssessmentError(PixelsleuthError):
    type = "assessment_error"


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    truth: str  # authentic | ai-generated | manipulated
    subset: str

    @property
    def positive(self) -> int:
        return int(self.truth != "authentic")


def _rows(manifest: Path) -> list[dict[str, Any]]:
    if manifest.suffix.lower() == ".jsonl":
        lines = manifest.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    delimiter = "\t" if manifest.suffix.lower() == ".tsv" else ","
    with manifest.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def load_labelled(source: str | Path) -> list[LabelledImage]:
    """Labelled images from a manifest (.csv, .tsv, .jsonl with ``path`` or ``relpath``, ``label`` as
    real/fake/manip, and ``subset``, ``generator_or_set`` or ``generator``) or a folder with ``real/``,
    ``fake/`` and ``manip/`` below it (the subset is the next folder's name).

    Raises:
        AssessmentError: nothing labelled was found, or a label is not one of the three.
    """
    root = Path(source).expanduser()
    found: list[LabelledImage] = []
    if root.is_file():
        for number, row in enumerate(_rows(root), start=2):
            where = f"{root}, row {number}"
            value = row.get("path") or row.get("relpath")
            word = str(row.get("label", "")).strip().lower()
            if not value or word not in _TRUTH_WORDS:
                raise AssessmentError(f"{where}: needs a path and a label of real, fake or manip")
            path = Path(os.path.abspath(root.parent / value))  # normalised: the store keys on the path
            subset = row.get("subset") or row.get("generator_or_set") or row.get("generator") or word
            found.append(LabelledImage(path, _TRUTH_WORDS[word], str(subset)))
    elif root.is_dir():
        from pixelsleuth.outputs.collect import IMAGE_SUFFIXES

        for folder, truth in (("real", "authentic"), ("fake", "ai-generated"), ("manip", "manipulated")):
            for path in sorted((root / folder).rglob("*")) if (root / folder).is_dir() else []:
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    relative = path.relative_to(root / folder).parts
                    found.append(LabelledImage(path, truth, relative[0] if len(relative) > 1 else folder))
    else:
        raise AssessmentError(f"no dataset at {root}: give a manifest file or a folder with real/ and fake/")
    if not found:
        raise AssessmentError(f"no labelled images in {root}")
    return found


def source_score(evidence: Sequence[Evidence], source: str) -> float:
    """One source's evidence about one image as a number in [0, 1]: its stated probability where it has
    one (the fused score, each detector, localization), the spectral check's own score, else
    (1 + s) / 2 where s is its strongest finding away from a genuine photo minus its strongest towards
    one (0.5: the source said nothing)."""
    mine = [item for item in evidence if item.source == source]
    for item in mine:
        if "probability" in item.data:
            return float(item.data["probability"])
        if source == "spectral" and "score" in item.data:
            return float(min(max(item.data["score"], 0.0), 1.0))
    away = max(
        (item.strength for item in mine if item.points_to in ("ai-generated", "manipulated")), default=0.0
    )
    towards = max((item.strength for item in mine if item.points_to == "authentic"), default=0.0)
    return 0.5 + 0.5 * (away - towards)


def states_probability(evidence: Sequence[Sequence[Evidence]], source: str) -> bool:
    """Whether the source gives a probability (so that its calibration can be measured)."""
    return any(item.source == source and "probability" in item.data for items in evidence for item in items)


def _spoke(evidence: Sequence[Evidence], source: str) -> str | None:
    """The side a source's strongest finding points to, or None when it only informed."""
    pointing = [item for item in evidence if item.source == source and item.points_to != "none"]
    pointing = [item for item in pointing if item.strength > 0]
    return max(pointing, key=lambda item: item.strength).points_to if pointing else None


@dataclass
class SourceAssessment:
    """One source's capability on one labelled set."""

    source: str
    n: int
    coverage: float  # share of images it pointed somewhere on
    auc: float
    tpr: float  # share of generated or manipulated images it flags
    fpr: float  # share of genuine images it flags
    n_spoke: int
    precision: float  # share of its pointing findings that point the right way
    weight: float | None  # 2 × precision − 1, clipped to [0, 1]; None below MIN_SUPPORT
    ece: float | None = None  # where the source states a probability
    reliability: list[dict[str, float]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # the images it gets most wrong


@dataclass
class Assessment:
    dataset: str
    n: int
    counts: dict[str, int]
    sources: list[SourceAssessment]  # the verdict first, then the sources by AUC
    subsets: dict[str, dict[str, float]]  # per subset: the verdict's AUC against all genuine, TPR, n
    operating_point: dict[str, Any]
    unreadable: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ranking(self) -> dict[str, Any]:
        """The weights the verdict card takes (`pixelsleuth fit-verdict --ranking`)."""
        rows = [
            {
                key: getattr(item, key)
                for key in ("source", "weight", "precision", "n_spoke", "coverage", "auc")
            }
            for item in self.sources
            if item.source != VERDICT
        ]
        return {"format": RANKING_FORMAT, "dataset": self.dataset, "sources": rows}


def _failures(
    images: Sequence[LabelledImage], evidence: Sequence[Sequence[Evidence]], scores: np.ndarray, source: str
) -> list[dict[str, Any]]:
    labels = np.array([image.positive for image in images])
    wrongness = np.where(labels == 1, 1.0 - scores, scores)
    order = np.argsort(-wrongness, kind="stable")[:FAILURES_SHOWN]
    shown = []
    for index in order:
        if wrongness[index] <= 0.5:
            break
        mine = [item.finding for item in evidence[index] if item.source == source]
        shown.append(
            {
                "path": str(images[index].path),
                "truth": images[index].truth,
                "subset": images[index].subset,
                "score": round(float(scores[index]), 4),
                "finding": mine[0] if mine else "",
            }
        )
    return shown


def _assess_source(
    source: str,
    images: Sequence[LabelledImage],
    evidence: Sequence[Sequence[Evidence]],
    scores: np.ndarray,
    flags: np.ndarray,
    spoke: list[str | None],
    has_probability: bool,
) -> SourceAssessment:
    labels = np.array([image.positive for image in images])
    spoken = [(side, label) for side, label in zip(spoke, labels, strict=True) if side is not None]
    right = sum((side == "authentic") == (label == 0) for side, label in spoken)
    precision = right / len(spoken) if spoken else math.nan
    weight = min(max(2 * precision - 1, 0.0), 1.0) if len(spoken) >= MIN_SUPPORT else None
    result = SourceAssessment(
        source=source,
        n=len(images),
        coverage=len(spoken) / len(images),
        auc=roc_auc(labels, scores),
        tpr=float(flags[labels == 1].mean()) if (labels == 1).any() else math.nan,
        fpr=float(flags[labels == 0].mean()) if (labels == 0).any() else math.nan,
        n_spoke=len(spoken),
        precision=precision,
        weight=None if weight is None else round(weight, 4),
        failures=_failures(images, evidence, scores, source),
    )
    if has_probability:
        result.ece = expected_calibration_error(scores, labels)
        result.reliability = [asdict(row) for row in reliability_bins(scores, labels)]
    return result


def redecide(analysis: Analysis, card: VerdictCard) -> Analysis:
    """The analysis with its verdict decided again by `card` from its stored evidence."""
    decision = decide(analysis.evidence, card)
    analysis.verdict, analysis.score = decision.label, decision.probability
    analysis.decided_by, analysis.operating_point = decision.decided_by, decision.operating_point
    return analysis


def assess(
    images: Sequence[LabelledImage], analyses: Sequence[Analysis], card: VerdictCard, dataset: str = ""
) -> Assessment:
    """Assess every source and the verdict on analysed labelled images (errors are left out and listed)."""
    kept = [
        (image, redecide(analysis, card))
        for image, analysis in zip(images, analyses, strict=True)
        if analysis.verdict != "error"
    ]
    unreadable = [
        str(image.path)
        for image, analysis in zip(images, analyses, strict=True)
        if analysis.verdict == "error"
    ]
    if not kept:
        raise AssessmentError("none of the images could be analysed")
    chosen = [image for image, _ in kept]
    evidence = [analysis.evidence for _, analysis in kept]
    labels = np.array([image.positive for image in chosen])

    verdict_scores = np.array([0.5 if a.score is None else a.score for _, a in kept])
    verdict_flags = np.array([a.verdict in ("ai-generated", "manipulated") for _, a in kept])
    verdict_spoke = [
        None if a.verdict == "inconclusive" else ("authentic" if a.verdict == "authentic" else a.verdict)
        for _, a in kept
    ]
    rows = [_assess_source(VERDICT, chosen, evidence, verdict_scores, verdict_flags, verdict_spoke, True)]
    names = sorted({item.source for items in evidence for item in items})
    for name in names:
        scores = np.array([source_score(items, name) for items in evidence])
        flags = np.array(
            [
                any(
                    item.source == name
                    and item.points_to in ("ai-generated", "manipulated")
                    and item.strength >= DECISIVE
                    for item in items
                )
                for items in evidence
            ]
        )
        spoke = [_spoke(items, name) for items in evidence]
        rows.append(
            _assess_source(name, chosen, evidence, scores, flags, spoke, states_probability(evidence, name))
        )
    rows[1:] = sorted(rows[1:], key=lambda row: -(0.0 if math.isnan(row.auc) else row.auc))

    subsets: dict[str, dict[str, float]] = {}
    genuine = labels == 0
    for subset in sorted({image.subset for image in chosen if image.positive}):
        mine = np.array([image.subset == subset for image in chosen])
        both = mine | genuine
        subsets[subset] = {
            "n": int(mine.sum()),
            "auc": roc_auc(labels[both], verdict_scores[both]) if genuine.any() else math.nan,
            "tpr": float(verdict_flags[mine].mean()),
            "hard": float(
                np.mean([a.decided_by.startswith("hard") for (image, a) in kept if image.subset == subset])
            ),
        }
    counts = {truth: sum(image.truth == truth for image in chosen) for truth in TRUTHS}
    return Assessment(dataset, len(chosen), counts, rows, subsets, card.operating_point(), unreadable)


def load_ranking(path: str | Path) -> dict[str, float]:
    """The measured weights of a ranking file (sources without a measured weight are left out)."""
    record = json.loads(Path(path).read_text())
    if record.get("format") != RANKING_FORMAT:
        raise AssessmentError(f"{path} is not an evidence ranking ({RANKING_FORMAT})")
    return {row["source"]: float(row["weight"]) for row in record["sources"] if row.get("weight") is not None}
