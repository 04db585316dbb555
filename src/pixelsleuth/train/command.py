"""``pixelsleuth train``: a typer-compatible command around `pixelsleuth.train.loop.train`.

Register it with ``app.command("train")(train_command)``.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.train.config import load_config

EXIT_USAGE = 2


def train_command(
    config: Annotated[Path, typer.Argument(help="Training config (.toml, or .yaml with PyYAML installed).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config value, e.g. --set optim.lr=1e-4 (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in the output folder from its checkpoint.pt.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run folder (default: the config's `output`).")
    ] = None,
) -> None:
    """Train a detector on a labelled dataset; writes weights, model cards, metrics and curves."""
    from pixelsleuth.train.loop import train  # torch loads only when training runs

    err = Console(stderr=True)
    overrides = list(set_ or [])
    try:
        training = load_config(config, overrides)
        if output is not None:
            training = replace(training, output=str(output))
        result = train(training, resume=resume, command=_command_line(config, overrides, resume, output))
    except PixelsleuthError as exc:
        err.print(exc.message, style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    best = result.best_metric
    err.print(
        f"best {result.metric} {best:.4f} at epoch {result.best_epoch}: {result.best_weights}",
        highlight=False,
        markup=False,
    )


def _command_line(config: Path, overrides: list[str], resume: bool, output: Path | None) -> str:
    words = ["pixelsleuth", "train", str(config)]
    for override in overrides:
        words += ["--set", override]
    if output is not None:
        words += ["--output", str(output)]
    if resume:
        words.append("--resume")
    return shlex.join(words)
