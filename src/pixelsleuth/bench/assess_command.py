"""`pixelsleuth assess` and `pixelsleuth fit-verdict`: measure each evidence source, fit the verdict card.

Both analyse a labelled set the way `scan` does (worker process, time budget per file) and keep the
results in a store, so a second run, or the other command on the same images, analyses nothing again.
The analyses are made without a verdict card; the verdict is decided afterwards from their evidence by
the card being assessed (or fitted).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from pixelsleuth.analysis import Analysis, json_safe
from pixelsleuth.bench.assess import (
    VERDICT,
    Assessment,
    LabelledImage,
    assess,
    load_labelled,
    load_ranking,
)
from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2
DatasetArgument = Annotated[
    Path,
    typer.Argument(help="A labelled manifest (path/relpath, label real|fake|manip) or a real/ fake/ folder."),
]
StoreOption = Annotated[
    Path | None,
    typer.Option("--store", help="Results store that keeps the analyses (default: your user data folder)."),
]
LocalizeOption = Annotated[
    bool,
    typer.Option("--localize", help="Also run localization (seconds per megapixel), as scan --localize."),
]
LimitOption = Annotated[int | None, typer.Option("--limit", help="Use only the first N images.")]


def analyse_labelled(
    images: list[LabelledImage], store_path: Path | None, *, localize: bool, file_timeout: float = 120.0
) -> list[Analysis]:
    """Every image's analysis (from the store when it is there), made without a verdict card."""
    from pixelsleuth.evidence import PIXEL_SOURCES, PROVENANCE_SOURCES
    from pixelsleuth.outputs.scan import scan
    from pixelsleuth.outputs.store import ResultStore, default_store_path
    from pixelsleuth.outputs.worker import IsolatedAnalyzer
    from pixelsleuth.pipeline import AnalyzerConfig

    sources = (*PROVENANCE_SOURCES, *PIXEL_SOURCES, *(("localization",) if localize else ()))
    config = AnalyzerConfig(sources=sources, verdict=None)
    store = ResultStore(store_path or default_store_path())
    try:
        with IsolatedAnalyzer(config, file_timeout=file_timeout) as analyzer:
            return [item.analysis for item in scan([image.path for image in images], analyzer, store)]
    finally:
        store.close()


def _card(card: Path | None, operating_point: str | None):
    from pixelsleuth.pipeline import (
        AnalyzerConfig,
        OperatingPointChoice,
        default_verdict_card,
        load_verdict_card,
    )

    choice = OperatingPointChoice.parse(operating_point) if operating_point else None
    path = str(card) if card is not None else default_verdict_card()
    return load_verdict_card(AnalyzerConfig(detectors=(), fusion=None, verdict=path, operating_point=choice))


def _load(dataset: Path, limit: int | None) -> list[LabelledImage]:
    images = load_labelled(dataset)
    return images[:limit] if limit is not None else images


def _percent(value: float | None) -> str:
    return "   —" if value is None or math.isnan(value) else f"{100 * value:5.1f}"


def print_assessment(assessment: Assessment) -> None:
    counts = ", ".join(f"{count} {truth}" for truth, count in assessment.counts.items())
    typer.echo(
        f"{assessment.dataset}: {assessment.n} images ({counts}); {len(assessment.unreadable)} unreadable"
    )
    typer.echo(f"verdict operating point: {assessment.operating_point['label']}")
    typer.echo(
        f"{'source':22} {'AUC':>5} {'cover':>5} {'TPR':>5} {'FPR':>5} {'right':>5} {'weight':>6} {'ECE':>6}"
    )
    for row in assessment.sources:
        weight = "     —" if row.weight is None else f"{row.weight:6.3f}"
        ece = "     —" if row.ece is None else f"{row.ece:6.3f}"
        typer.echo(
            f"{row.source:22} {_percent(row.auc)} {_percent(row.coverage)} {_percent(row.tpr)} "
            f"{_percent(row.fpr)} {_percent(row.precision)} {weight} {ece}"
        )
    for name, values in assessment.subsets.items():
        typer.echo(
            f"  {name:30} n {values['n']:4d}  verdict AUC {_percent(values['auc'])}  "
            f"TPR {_percent(values['tpr'])}  hard {_percent(values['hard'])}"
        )


def assess_command(
    dataset: DatasetArgument,
    store: StoreOption = None,
    localize: LocalizeOption = False,
    card: Annotated[
        Path | None, typer.Option("--card", help="Verdict card to assess (default: the shipped one).")
    ] = None,
    operating_point: Annotated[
        str | None, typer.Option("--operating-point", help="fpr=1% or threshold=0.8 (default: the card's).")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the whole assessment as JSON.")
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", help="Write a report with reliability diagrams and failure cases."),
    ] = None,
    ranking: Annotated[
        Path | None, typer.Option("--ranking", help="Write the sources' ranking (weights for fit-verdict).")
    ] = None,
    limit: LimitOption = None,
) -> None:
    """Measure each evidence source and the verdict on labelled images: AUC, coverage, TPR, ECE, failures."""
    from pixelsleuth.bench.assess_report import render_assessment

    try:
        images = _load(dataset, limit)
        verdict_card = _card(card, operating_point)
        analyses = analyse_labelled(images, store, localize=localize)
        assessment = assess(images, analyses, verdict_card, dataset=str(dataset))
    except PixelsleuthError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    print_assessment(assessment)
    outputs = {
        json_path: lambda: json.dumps(json_safe(assessment.to_dict()), indent=1) + "\n",
        html_path: lambda: render_assessment(assessment),
        ranking: lambda: json.dumps(json_safe(assessment.ranking()), indent=1) + "\n",
    }
    for path, text in outputs.items():
        if path is not None:
            _write(path, text())


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"cannot write {path}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def fit_verdict_command(
    dataset: DatasetArgument,
    output: Annotated[Path, typer.Argument(help="The verdict card to write (.json).")],
    ranking: Annotated[
        Path | None, typer.Option("--ranking", help="Source weights from `pixelsleuth assess --ranking`.")
    ] = None,
    fpr: Annotated[float, typer.Option("--fpr", help="False-positive rate on the genuine images.")] = 0.01,
    miss_rate: Annotated[
        float, typer.Option("--miss-rate", help="Share of generated images that may be called authentic.")
    ] = 0.05,
    genuine: Annotated[
        Path | None,
        typer.Option(
            "--genuine",
            help="More genuine photos (a labelled set; only its genuine images are used) that join in "
            "setting the threshold, not the calibration; images already in DATASET are not counted twice.",
        ),
    ] = None,
    store: StoreOption = None,
    localize: LocalizeOption = False,
    limit: LimitOption = None,
) -> None:
    """Fit the verdict card (calibration and operating points) on labelled images held apart from training."""
    from dataclasses import replace

    from pixelsleuth.bench.assess import redecide
    from pixelsleuth.detectors.calibration import expected_calibration_error
    from pixelsleuth.verdict.fit import fit_verdict_card

    try:
        images = _load(dataset, limit)
        weights = load_ranking(ranking) if ranking is not None else {}
        extra: list[LabelledImage] = []
        if genuine is not None:
            seen = {image.path.resolve() for image in images}
            extra = [i for i in load_labelled(genuine) if not i.positive and i.path.resolve() not in seen]
        # one analyzer (one worker start, one detector load) for both sets
        analysed = analyse_labelled([*images, *extra], store, localize=localize)
        analyses, extra_analyses = analysed[: len(images)], analysed[len(images) :]
        kept = [(image, a) for image, a in zip(images, analyses, strict=True) if a.verdict != "error"]
        labels = np.array([image.positive for image, _ in kept])
        more = [a for a in extra_analyses if a.verdict != "error"]
        fitted = fit_verdict_card(
            [a.evidence for _, a in kept],
            labels,
            weights=weights,
            fpr=fpr,
            miss_rate=miss_rate,
            fitted_on=str(dataset) + (f" + genuine photos of {genuine}" if genuine else ""),
            more_genuine=[a.evidence for a in more],
        )
    except PixelsleuthError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    decided = [redecide(a, fitted) for _, a in kept]
    probabilities = np.array([0.5 if a.score is None else a.score for a in decided])
    flagged = np.array([a.verdict in ("ai-generated", "manipulated") for a in decided])
    measured = {
        "n": len(kept),
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "fpr": round(float(flagged[labels == 0].mean()), 4),
        "tpr": round(float(flagged[labels == 1].mean()), 4),
        "authentic_among_generated": round(
            float(np.mean([a.verdict == "authentic" for a, y in zip(decided, labels, strict=True) if y])), 4
        ),
    }
    reproduce = f"pixelsleuth fit-verdict {dataset} {output}" + (f" --ranking {ranking}" if ranking else "")
    reproduce += f" --genuine {genuine}" if genuine else ""
    reproduce += f" --fpr {fpr:g} --miss-rate {miss_rate:g}"
    fitted = replace(fitted, reproduce=(reproduce,), measured={"on_fit_set": measured})
    _write(output, json.dumps(fitted.to_dict(), indent=1) + "\n")
    typer.echo(
        f"wrote {output}: Platt slope {fitted.calibration.slope:.3f}, "
        f"intercept {fitted.calibration.intercept:.3f} on {fitted.calibration.n} images; "
        f"threshold {fitted.threshold:.4f} (FPR {fitted.measured_fpr:.2%}), "
        f"authentic below {fitted.authentic_below:.4f} (misses {fitted.measured_miss_rate:.2%})"
    )
    typer.echo(f"on these images, verdict: {measured}")


__all__ = ["VERDICT", "analyse_labelled", "assess_command", "fit_verdict_command"]
