"""`pixelsleuth benchmark leave-out`: train without a generator of the pool, test on it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2


def leave_out_command(
    crops: Annotated[
        Path, typer.Argument(help="The pool crops folder (CROPS/<png|jpeg90>/<train|calib|test>.csv).")
    ],
    config: Annotated[Path, typer.Option("--config", "-c", help="Training config (.toml) of the detector.")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder for the folds' runs and tables (reused on a rerun)."),
    ],
    by: Annotated[str, typer.Option("--by", help="Hold out one generator, or one family, per fold.")] = (
        "generator"
    ),
    holdout: Annotated[
        str | None,
        typer.Option("--holdout", help="Comma-separated generators (or families) to hold out; default all."),
    ] = None,
    minimum: Annotated[
        int, typer.Option("--minimum", min=1, help="Fewest generated test crops a held-out group needs.")
    ] = 8,
    stack: Annotated[
        list[str] | None,
        typer.Option("--stack", help="NAME=WEIGHTS of a fixed detector fused with the trained one."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a training config value, e.g. --set epochs=2 (repeatable)."),
    ] = None,
) -> None:
    """Leave-one-generator-out (or family-out) over the pool; prints the seen vs unseen table."""
    from pixelsleuth.bench.leaveout import LeaveOutRun, pool_folds, read_crops, report_markdown
    from pixelsleuth.train.config import load_config

    err = Console(stderr=True)
    words = ["pixelsleuth", "benchmark", "leave-out", str(crops), "--config", str(config)]
    words += ["--output", str(output), "--by", by] + (["--holdout", holdout] if holdout else [])
    for text in stack or []:
        words += ["--stack", text]
    for override in set_ or []:
        words += ["--set", override]
    try:
        training = load_config(config, list(set_ or []))
        names = [name.strip() for name in holdout.split(",") if name.strip()] if holdout else None
        folds = pool_folds(read_crops(crops, "test"), by=by, names=names, minimum=minimum)
        run = LeaveOutRun(
            crops=crops,
            config=training,
            folds=folds,
            output=output,
            stack=list(stack or []),
            say=lambda text: err.print(text, highlight=False),
            command=shlex.join(words),
        )
        report = run.run()
    except PixelsleuthError as error:
        typer.echo(error.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    report["command"] = shlex.join(words)
    output.mkdir(parents=True, exist_ok=True)
    (output / "leaveout.json").write_text(json.dumps(report, indent=2) + "\n")
    for variant in ("png", "jpeg90"):
        table = report_markdown(report, variant)
        (output / f"leaveout-{variant}.md").write_text(table + "\n")
        typer.echo(f"\n{variant} crops (values in %)\n\n{table}")
