"""`pixelsleuth evaluate-localization`: every map and the fused answer, measured per dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2

DataOption = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Localization sets: a manifest.tsv (manip layout), or folders of images beside masks "
        "(CASIA, Columbia, COVERAGE, forge layouts).",
        show_default=False,
    ),
]
GenuineOption = Annotated[
    list[Path] | None,
    typer.Option("--genuine", help="A folder of genuine photos (repeatable): false alarms and image AUC."),
]
SplitOption = Annotated[
    str, typer.Option("--split", help="Of a manifest with a train/held-out split: train, heldout or all.")
]
LimitOption = Annotated[
    int | None,
    typer.Option("--limit", min=1, help="At most this many manipulated images per dataset (the first ones)."),
]
RootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Folder a manifest's relpaths are relative to (default: the manifest's)."),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(
        "--cache", help="Folder that keeps computed maps, so a second run reads instead of computing."
    ),
]
WorkersOption = Annotated[int, typer.Option("--workers", min=1, help="Processes measuring at once.")]


def evaluate_localization_command(
    data: DataOption = None,
    genuine: GenuineOption = None,
    split: SplitOption = "heldout",
    fusion: Annotated[
        Path | None, typer.Option("--fusion", help="Fusion card (default: the one shipped with pixelsleuth).")
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            "--methods", help="Measure these maps (comma-separated) with a uniform stand-in fusion."
        ),
    ] = None,
    limit: LimitOption = None,
    root: RootOption = None,
    cache: CacheOption = None,
    workers: WorkersOption = 1,
    output: Annotated[
        Path | None, typer.Option("--json", help="Write the summary and per-image rows here.")
    ] = None,
) -> None:
    """Measure localization per dataset: F1/IoU/MCC at 0.5, oracle F1, pixel AUC, image AUC of each map
    and of the fused answer, and how many genuine images are given a region."""
    from dataclasses import asdict

    from pixelsleuth.analysis import json_safe
    from pixelsleuth.bench.localization import analyse_samples, format_summary, summarise
    from pixelsleuth.bench.locset import gather_samples
    from pixelsleuth.localization.fuse import LocalizationFusion
    from pixelsleuth.localization.methods import parse_methods

    err = Console(stderr=True, soft_wrap=True)
    try:
        samples = gather_samples(list(data or []), list(genuine or []), split, limit, root)
        card = (
            LocalizationFusion.uniform(parse_methods(methods))
            if methods is not None
            else LocalizationFusion.load(fusion)
        )
    except PixelsleuthError as exc:
        err.print(exc.message, style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    err.print(f"measuring {len(samples)} images with maps {', '.join(card.methods)}", highlight=False)
    results = []
    for index, result in enumerate(analyse_samples(samples, card, workers=workers, cache=cache), start=1):
        results.append(result)
        if result.error:
            err.print(f"{result.relpath}: {result.error}", style="yellow", highlight=False, markup=False)
        if index % 25 == 0:
            err.print(f"{index}/{len(samples)}", highlight=False)
    summary = summarise(results)
    Console(soft_wrap=True).print(format_summary(summary), highlight=False, markup=False)
    if output is not None:
        rows = [
            {key: value for key, value in asdict(r).items() if key not in ("pixels", "pixel_labels")}
            for r in results
        ]
        record = json_safe({"summary": summary, "images": rows})
        output.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
