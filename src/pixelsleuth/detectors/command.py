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
