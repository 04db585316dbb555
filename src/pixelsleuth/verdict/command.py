"""`pixelsleuth fit-fusion`: fit the fused score and its operating point on held-apart images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2


def score_features(manifest: Path, detectors: list[str], *, limit: int | None = None):
    """Each image's stack inputs (detector logits, spectral score) and label, from a labelled manifest."""
    from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, DetectorSpec
    from pixelsleuth.train.datasets import discover
    from pixelsleuth.verdict.stack import stack_inputs

    specs = tuple(DetectorSpec.parse(text) for text in detectors)
    analyzer = Analyzer(AnalyzerConfig(sources=("spectral",), detectors=specs, fusion=None))
    samples = discover(manifest)
    if limit is not None:
        samples = samples[:limit]
    features = ["spectral"] + [f"detector:{spec.name}" for spec in specs]
    rows, labels, failed = [], [], 0
    for sample in samples:
        try:
            values = stack_inputs(analyzer, sample.path)
        except PixelsleuthError:
            failed += 1
            continue
        rows.append([values.get(name, np.nan) for name in features])
        labels.append(sample.label)
    return np.array(rows, np.float64), np.array(labels, np.float64), features, failed


def fit_fusion_command(
    manifest: Annotated[
        Path, typer.Argument(help="Labelled images held apart from every detector's training.")
    ],
    output: Annotated[Path, typer.Argument(help="The fusion card to write (.json).")],
    detector: Annotated[
        list[str], typer.Option("--detector", help="NAME=WEIGHTS of a detector to stack (repeatable).")
    ],
    fpr: Annotated[
        float,
        typer.Option("--fpr", help="False-positive rate on the genuine images for the operating point."),
    ] = 0.01,
    l2: Annotated[float, typer.Option("--l2", help="Ridge penalty of the logistic stack.")] = 1.0,
    limit: Annotated[int | None, typer.Option("--limit", help="Use only the first N images.")] = None,
) -> None:
    """Fit the stack of detector and spectral scores and its operating point on held-apart images."""
    from pixelsleuth.bench.metrics import roc_auc
    from pixelsleuth.verdict.stack import fit_stacker

    try:
        x, y, features, failed = score_features(manifest, detector, limit=limit)
    except PixelsleuthError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if len(set(y.tolist())) < 2:
        typer.echo("the manifest needs both genuine and generated images", err=True)
        raise typer.Exit(EXIT_USAGE)
    stacker = fit_stacker(x, y, features, l2=l2, fpr=fpr, dataset=str(manifest))
    stacker.save(output)
    point = stacker.operating_point
    probabilities = stacker.probabilities(x)
    typer.echo(
        f"wrote {output}: {int((y == 0).sum())} genuine, {int((y == 1).sum())} generated, {failed} unreadable"
    )
    for column, (name, weight) in enumerate(zip(features, stacker.weights, strict=True)):
        alone = roc_auc(y, np.nan_to_num(x[:, column]))
        typer.echo(f"  {name:24} weight {weight:+.3f}  (alone: AUC {alone:.3f})")
    typer.echo(
        f"fused AUC on these images {roc_auc(y, probabilities):.3f}; operating point {point.label}: "
        f"FPR {point.measured_fpr:.3%}, TPR {np.mean(probabilities[y == 1] >= point.threshold):.1%}"
    )
