"""Command-line entry points for detectors; heavy imports (torch) happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2


def convert_command(
    detector: Annotated[str, typer.Argument(help="Detector the checkpoint belongs to, e.g. npr.")],
    checkpoint: Annotated[Path, typer.Argument(help="The official checkpoint (.pth) to convert.")],
    output: Annotated[
        Path, typer.Argument(help="Weights to write (.safetensors); the model card goes beside.")
    ],
) -> None:
    """Convert an official checkpoint into pixelsleuth weights and a model card."""
    from pixelsleuth.detectors.convert import CONVERTERS, few

    converter = CONVERTERS.get(detector)
    if converter is None:
        known = ", ".join(sorted(CONVERTERS))
        typer.echo(f"no converter for {detector!r}; checkpoints can be converted for: {known}", err=True)
        raise typer.Exit(EXIT_USAGE)
    try:
        card = converter(checkpoint, output)
    except PixelsleuthError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(f"wrote {output} and its model card {card_path_for(output)}")
    for label, key in (
        ("dropped (unused by the model)", "dropped_keys"),
        ("filled with zeros", "filled_keys"),
    ):
        if card.extra.get(key):
            typer.echo(f"{label}: {few(card.extra[key], 8)}")


def export_onnx_command(
    output: Annotated[Path, typer.Argument(help="The .onnx file to write.")],
    detector: Annotated[str, typer.Option("--detector", "-d", help="Registered detector name.")] = "npr",
    weights: Annotated[
        Path | None, typer.Option("--weights", "-w", help="The detector's .safetensors weights.")
    ] = None,
    allow_untrained: Annotated[
        bool, typer.Option("--allow-untrained", help="Export random weights (only to test a deployment).")
    ] = False,
) -> None:
    """Export a detector's network to ONNX: dynamic batch, height and width; input normalised per its card."""
    from pixelsleuth.detectors import create
    from pixelsleuth.detectors.runtime import export_onnx

    try:
        model = create(detector, weights)
    except PixelsleuthError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if not model.trained and not allow_untrained:
        typer.echo(
            f"the {detector} detector has no trained weights: give them with --weights "
            "(or --allow-untrained to export random weights)",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    try:
        export_onnx(model.model, output)
    except ImportError as error:
        typer.echo(f"ONNX export needs the onnx extra: pip install 'pixelsleuth[onnx]' ({error})", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    model.card.save(card_path_for(output))
    typer.echo(f"wrote {output} and its model card {card_path_for(output)}")


def calibrate_command(
    weights: Annotated[Path, typer.Argument(help="The trained weights (.safetensors, card beside it).")],
    source: Annotated[
        Path,
        typer.Argument(
            help="Held-apart calibration images (dataset folder or manifest), never a test set you report."
        ),
    ],
    output: Annotated[
        Path, typer.Argument(help="Calibrated weights to write (.safetensors); the card goes beside.")
    ],
    detector: Annotated[str, typer.Option("--detector", "-d", help="Registered detector name.")] = "npr",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images scored together.")] = 32,
    split: Annotated[str, typer.Option("--split", help="GenImage split to read.")] = "val",
    max_strength: Annotated[
        float | None,
        typer.Option(
            "--max-strength",
            min=0.0,
            max=1.0,
            help="Cap on the evidence strength of this detector's score in `scan` (below 0.5: it never "
            "decides a verdict alone); record why in the card's notes.",
        ),
    ] = None,
) -> None:
    """Fit Platt calibration on held-apart images and write the weights with it in their model card.

    The raw score of every image in SOURCE (failures are left out and counted) is fitted against its
    label; the card of OUTPUT carries the two numbers (``extra.calibration``) and the expected
    calibration error before and after (``extra.calibration_fit``). `scan` then reports calibrated
    probabilities for this detector.
    """
    import shutil

    import numpy as np

    from pixelsleuth.bench.evaluate import score_samples
    from pixelsleuth.detectors import create
    from pixelsleuth.detectors.calibration import CalibrationDataError, fit_calibration
    from pixelsleuth.train.datasets import discover

    try:
        model = create(detector, weights)
        samples = discover(source, split=split)
    except PixelsleuthError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if not model.trained:
        typer.echo(f"the {detector} detector has no trained weights to calibrate", err=True)
        raise typer.Exit(EXIT_USAGE)
    run = score_samples(model, samples, batch_size=batch_size)
    scores = run.scores[0]
    labels = np.array([sample.label for sample in samples])
    try:
        fit = fit_calibration(scores, labels, data=str(source))
    except CalibrationDataError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    card = model.card
    card.extra["calibration"] = fit.calibration.to_dict()
    failed = int(np.isnan(scores).sum())
    card.extra["calibration_fit"] = fit.to_dict() | {"failed": failed}
    if max_strength is not None:
        card.extra["max_evidence_strength"] = max_strength
    output.parent.mkdir(parents=True, exist_ok=True)
    if Path(weights).resolve() != output.resolve():
        shutil.copyfile(weights, output)
    card.save(card_path_for(output))
    typer.echo(
        f"Platt calibration on {fit.n_real} real and {fit.n_fake} generated images"
        + (f" ({failed} unreadable, left out)" if failed else "")
        + f": slope {fit.calibration.slope:.4g}, intercept {fit.calibration.intercept:.4g}; "
        f"ECE {fit.ece_raw:.4f} raw, {fit.ece_calibrated:.4f} calibrated"
    )
    typer.echo(f"wrote {output} and its model card {card_path_for(output)}")
