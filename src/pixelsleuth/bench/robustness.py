"""How a detector's AP and accuracy hold up when every image is re-compressed, resized, blurred, ...

Each step of `pixelsleuth.bench.perturb.robustness_grid` (JPEG 95..30, WebP, down/upscale, blur, noise,
crop, a social-media chain) is applied to every image, real and generated alike, before scoring, and
the same evaluation as `pixelsleuth.bench.evaluate.evaluate` runs on the result. Each image is read
from disk once and perturbed in memory for every step.

Example:
    >>> from pixelsleuth.bench.robustness import robustness
    >>> report = robustness(detector, samples, families=["jpeg", "blur"], per_subset=50)  # doctest: +SKIP
    >>> print(report.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelsleuth.bench.evaluate import (
    EvaluationReport,
    FailedImage,
    LabelledImage,
    NothingToEvaluateError,
    Scorer,
    detector_name,
    limit_per_subset,
    percent,
    report_from_scores,
    score_samples,
)
from pixelsleuth.bench.perturb import PerturbationStep, robustness_grid
from pixelsleuth.errors import PixelsleuthError

SCHEMA = "pixelsleuth.robustness/1"
BASELINE = "none"  # the grid's unperturbed step, always run as the reference


class UnknownFamilyError(PixelsleuthError):
    type = "unknown_perturbation_family"


@dataclass
class RobustnessRow:
    """The evaluation under one perturbation step.

    ``report`` is None when no image could be scored under this step (``failures`` says why).
    """

    family: str
    strength: float
    report: EvaluationReport | None
    failures: list[FailedImage] = field(default_factory=list)

    @property
    def mean_ap(self) -> float:
        return self.report.mean.average_precision if self.report else math.nan

    @property
    def mean_accuracy(self) -> float:
        return self.report.mean.accuracy if self.report else math.nan

    def subset_ap(self, subset: str) -> float:
        if self.report is None or subset not in self.report.subsets:
            return math.nan
        return self.report.subsets[subset].average_precision


@dataclass
class RobustnessReport:
    """One `RobustnessRow` per grid step, the unperturbed baseline first."""

    rows: list[RobustnessRow]
    subsets: list[str]
    detector: str = ""
    n_images: int = 0

    def to_markdown(self) -> str:
        """Table: family, strength, mean AP, mean ACC, AP of each subset, failed images (values in %)."""
        header = [
            "family",
            "strength",
            "mean AP",
            "mean ACC",
            *(f"AP {name}" for name in self.subsets),
            "failed",
        ]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        for row in self.rows:
            cells = [row.family, f"{row.strength:g}", percent(row.mean_ap), percent(row.mean_accuracy)]
            cells += [percent(row.subset_ap(name)) for name in self.subsets]
            cells.append(str(len(row.failures)))
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Values in %, on {self.n_images} image(s). Every image, real and generated, is perturbed before "
            "scoring. Mean AP / ACC average the subsets equally; ACC calls an image generated when "
            "P(generated) > 0.5.",
        ]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """Wide CSV matching the table; rates are fractions, NaN as ``nan``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(
            ["family", "strength", "mean_ap", "mean_accuracy", "pooled_ap", "n_scored", "n_failed"]
            + [f"ap_{name}" for name in self.subsets]
        )
        for row in self.rows:
            pooled_ap = row.report.pooled.average_precision if row.report else math.nan
            n_scored = len(row.report.scores) if row.report else 0
            writer.writerow(
                [row.family, f"{row.strength:g}", repr(row.mean_ap), repr(row.mean_accuracy), repr(pooled_ap)]
                + [n_scored, len(row.failures)]
                + [repr(row.subset_ap(name)) for name in self.subsets]
            )
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every metric of every subset, the mean and pooled rows, for each step."""
        steps = []
        for row in self.rows:
            record: dict[str, Any] = {"family": row.family, "strength": row.strength}
            if row.report is not None:
                report = row.report.to_dict()
                record.update({key: report[key] for key in ("n_scored", "subsets", "mean", "all")})
            else:
                record.update({"n_scored": 0, "subsets": {}, "mean": None, "all": None})
            record["n_failed"] = len(row.failures)
            record["failures"] = [asdict(failure) for failure in row.failures]
            steps.append(record)
        return {
            "schema": SCHEMA,
            "detector": self.detector,
            "n_images": self.n_images,
            "subsets": self.subsets,
            "steps": steps,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``robustness.md``, ``robustness.csv`` and ``robustness.json`` into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "markdown": (folder / "robustness.md", self.to_markdown()),
            "csv": (folder / "robustness.csv", self.to_csv()),
            "json": (folder / "robustness.json", self.to_json()),
        }
        for path, text in files.values():
            path.write_text(text, encoding="utf-8")
        return {kind: path for kind, (path, _) in files.items()}


def select_families(
    grid: Sequence[PerturbationStep], families: Sequence[str] | None
) -> list[PerturbationStep]:
    """The steps of `grid` in `families` (all when None), always with the unperturbed baseline first.

    Raises:
        UnknownFamilyError: a family the grid does not have.

    Example:
        >>> [step.label for step in select_families(robustness_grid(), ["blur"])]
        ['none:0', 'blur:0.5', 'blur:1', 'blur:2', 'blur:3']
    """
    known = list(dict.fromkeys(step.family for step in grid))
    if families is None:
        wanted = set(known)
    else:
        wanted = {name.strip().lower() for name in families if name.strip()}
        unknown = sorted(wanted - set(known))
        if unknown:
            raise UnknownFamilyError(
                f"unknown perturbation famil{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                f"choose from {', '.join(name for name in known if name != BASELINE)}"
            )
    baseline = [step for step in grid if step.family == BASELINE]
    return baseline + [step for step in grid if step.family in wanted and step.family != BASELINE]


def robustness(
    detector: Scorer,
    samples: Sequence[LabelledImage],
    grid: Sequence[PerturbationStep] | None = None,
    *,
    families: Sequence[str] | None = None,
    per_subset: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = False,
) -> RobustnessReport:
    """Evaluate `detector` on `samples` under each perturbation step of `grid`.

    Args:
        detector: a `pixelsleuth.detectors.Detector` (or anything with its ``predict``).
        samples: labelled images, e.g. from `pixelsleuth.train.datasets.discover`.
        grid: perturbation steps; None = `pixelsleuth.bench.perturb.robustness_grid()`.
        families: keep only these families (e.g. ``["jpeg", "blur"]``); the baseline always runs.
        per_subset: score at most this many images per subset (drawn with `seed`, both classes kept)
            to make the run affordable; None = every image.
        seed: the seed of that draw.
        batch_size: images read and scored together.
        progress: show a progress bar on stderr.

    Returns:
        A `RobustnessReport` with one row per selected step, baseline first.

    Raises:
        NothingToEvaluateError: there are no samples.
        UnknownFamilyError: a family not in the grid.

    Example:
        >>> import numpy as np
        >>> class Brightness:
        ...     def predict(self, images, *, batch_size=32):
        ...         return np.array([image.mean() / 255 for image in images])
        >>> robustness(Brightness(), [], families=["jpeg"])
        Traceback (most recent call last):
        ...
        pixelsleuth.bench.evaluate.NothingToEvaluateError: there are no images to evaluate
    """
    steps = select_families(robustness_grid() if grid is None else grid, families)
    if not samples:
        raise NothingToEvaluateError("there are no images to evaluate")
    if per_subset is not None:
        samples = limit_per_subset(samples, per_subset, seed=seed)
    run = score_samples(
        detector,
        samples,
        transforms=[None if step.family == BASELINE else step.apply for step in steps],
        batch_size=batch_size,
        progress=progress,
        description=f"scoring x {len(steps)} perturbations",
    )
    name = detector_name(detector)
    rows = []
    for step, scores, failures in zip(steps, run.scores, run.failures, strict=True):
        try:
            report = report_from_scores(samples, scores, failures, detector=name)
        except NothingToEvaluateError:
            report = None
        rows.append(RobustnessRow(step.family, float(step.strength), report, list(failures)))
    subsets = list(dict.fromkeys(str(sample.subset) for sample in samples))
    return RobustnessReport(rows=rows, subsets=subsets, detector=name, n_images=len(samples))
