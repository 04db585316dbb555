"""PNG figures of an evaluation: ROC and precision-recall curves per subset, AP against perturbation strength.

Figures are drawn with Matplotlib's object API on the Agg canvas, so no display and no global pyplot
state are involved.

Example:
    >>> from pixelsleuth.bench.plots import plot_roc
    >>> plot_roc(report, "roc.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pixelsleuth.bench.evaluate import EvaluationReport
from pixelsleuth.bench.metrics import pr_curve, roc_curve
from pixelsleuth.bench.robustness import BASELINE, RobustnessReport

# Families whose strength grows as the number falls (quality, kept fraction): drawn right to left,
# so that "harder" is always to the right.
_DECREASING_FAMILIES = frozenset({"jpeg", "webp", "social", "downscale", "crop"})
_STRENGTH_LABELS = {
    "jpeg": "JPEG quality",
    "webp": "WebP quality",
    "social": "JPEG quality after resize",
    "downscale": "scale factor",
    "upscale": "scale factor",
    "blur": "Gaussian blur sigma (px)",
    "noise": "noise sigma (grey levels)",
    "crop": "kept fraction of each side",
}


def _subset_scores(report: EvaluationReport) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Labels and scores of every subset that has both classes (curves need both)."""
    grouped: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for item in report.scores:
        grouped[item.subset][0].append(item.label)
        grouped[item.subset][1].append(item.score)
    return {
        name: (np.array(labels), np.array(scores))
        for name, (labels, scores) in grouped.items()
        if 0 < sum(labels) < len(labels)
    }


def _save(figure: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=120)
    return Path(path)


def plot_roc(report: EvaluationReport, path: str | Path) -> Path:
    """ROC curves of every subset (with both classes) on one figure, AUC in the legend; written as PNG.

    Returns:
        The path written.

    Example:
        >>> plot_roc(report, "roc.png")  # doctest: +SKIP
        PosixPath('roc.png')
    """
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="0.75", linestyle=":", linewidth=1)
    for name, (labels, scores) in _subset_scores(report).items():
        curve = roc_curve(labels, scores)
        auc = report.subsets[name].roc_auc
        axes.plot(curve.fpr, curve.tpr, linewidth=1.5, label=f"{name} (AUC {100 * auc:.1f})")
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate", ylabel="true-positive rate")
    axes.set_title(f"ROC per subset{f' — {report.detector}' if report.detector else ''}")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def plot_pr(report: EvaluationReport, path: str | Path) -> Path:
    """Precision-recall curves of every subset (with both classes) on one figure, AP in the legend; PNG.

    Returns:
        The path written.

    Example:
        >>> plot_pr(report, "pr.png")  # doctest: +SKIP
        PosixPath('pr.png')
    """
    figure = Figure(figsize=(6, 6), layout="constrained")
    axes = figure.add_subplot()
    for name, (labels, scores) in _subset_scores(report).items():
        curve = pr_curve(labels, scores)
        ap = report.subsets[name].average_precision
        axes.step(
            curve.recall, curve.precision, where="post", linewidth=1.5, label=f"{name} (AP {100 * ap:.1f})"
        )
    axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision")
    axes.set_title(f"Precision-recall per subset{f' — {report.detector}' if report.detector else ''}")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower left", fontsize="small")
    return _save(figure, path)


def plot_robustness(report: RobustnessReport, path: str | Path) -> Path:
    """AP against perturbation strength, one panel per family; mean AP bold, subsets thin, baseline dashed.

    Returns:
        The path written.

    Example:
        >>> plot_robustness(report, "robustness.png")  # doctest: +SKIP
        PosixPath('robustness.png')
    """
    families = list(dict.fromkeys(row.family for row in report.rows if row.family != BASELINE))
    baseline = next((row.mean_ap for row in report.rows if row.family == BASELINE), math.nan)
    columns = min(3, max(1, len(families)))
    n_rows = max(1, math.ceil(len(families) / columns))
    figure = Figure(figsize=(4.2 * columns, 3.4 * n_rows), layout="constrained")
    panels = figure.subplots(n_rows, columns, squeeze=False).ravel()
    for axes, family in zip(panels, families, strict=False):
        rows = sorted((row for row in report.rows if row.family == family), key=lambda row: row.strength)
        strengths = [row.strength for row in rows]
        for subset in report.subsets:
            values = [100 * row.subset_ap(subset) for row in rows]
            axes.plot(strengths, values, linewidth=0.8, alpha=0.6, marker=".", label=subset)
        axes.plot(
            strengths,
            [100 * row.mean_ap for row in rows],
            color="black",
            linewidth=2,
            marker="o",
            label="mean",
        )
        if math.isfinite(baseline):
            axes.axhline(100 * baseline, color="0.4", linestyle="--", linewidth=1, label="no perturbation")
        axes.set(
            title=family, xlabel=_STRENGTH_LABELS.get(family, "strength"), ylabel="AP (%)", ylim=(0, 101)
        )
        if family in _DECREASING_FAMILIES:
            axes.invert_xaxis()
    for axes in panels[len(families) :]:
        axes.set_visible(False)
    if families:
        handles, labels = panels[0].get_legend_handles_labels()
        figure.legend(
            handles, labels, loc="outside lower center", ncols=min(6, len(labels)), fontsize="small"
        )
    else:
        panels[0].text(0.5, 0.5, "no perturbation family was run", ha="center", va="center")
        panels[0].set_axis_off()
    figure.suptitle(f"AP under perturbations{f' — {report.detector}' if report.detector else ''}")
    return _save(figure, path)
