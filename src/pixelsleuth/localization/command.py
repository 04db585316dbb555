"""`pixelsleuth localize`: where each image was manipulated, as a mask, a heatmap and an overlay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pixelsleuth.bench.localization_command import (
    CacheOption,
    DataOption,
    GenuineOption,
    LimitOption,
    RootOption,
    SplitOption,
    WorkersOption,
)
from pixelsleuth.errors import PixelsleuthError, unexpected

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def localize_command(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively) or globs.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for <stem>.mask/.heatmap/.overlay.png and .json.")
    ],
    fusion: Annotated[
        Path | None,
        typer.Option(
            "--fusion", help="Localization fusion card (default: the one shipped with pixelsleuth)."
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.0,
            max=1.0,
            help="Image probability from which regions are reported (default: the card's operating point).",
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="Write one JSON line per image to stdout instead of a summary.")
    ] = False,
) -> None:
    """Localize manipulations: for each image write <stem>.mask.png (8-bit, 255 = manipulated, the
    image's size), <stem>.heatmap.png, <stem>.overlay.png and <stem>.localization.json to --output.

    The mask is empty unless the image's calibrated probability of manipulation reaches the operating
    point; the JSON holds that probability, the regions and what each forensic map read.
    """
    from pixelsleuth.intake import load_image
    from pixelsleuth.localization.fuse import LocalizationFusion, localize
    from pixelsleuth.localization.render import output_stem, write_localization
    from pixelsleuth.outputs.collect import collect_paths

    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    try:
        card = LocalizationFusion.load(fusion)
        if threshold is not None:
            card = card.at_threshold(threshold)
        files, problems = collect_paths(paths)
    except PixelsleuthError as exc:
        err.print(exc.message, style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    for problem in problems:
        err.print(problem, style="red", highlight=False, markup=False)
    if not files:
        err.print("no images to localize", style="red")
        raise typer.Exit(EXIT_USAGE)
    failed = len(problems)
    taken: set[str] = set()
    for path in files:
        try:
            image = load_image(path)
            found = localize(image.rgb, card)
            stem = output_stem(output, path.stem, taken)
            record = {"path": str(path), "sha256": image.sha256, "width": image.width, "height": image.height}
            record.update(found.summary())
            record["reading"] = found.reading
            written = write_localization(output, stem, image.rgb, found, record)
        except PixelsleuthError as exc:
            failed += 1
            err.print(f"{path}: {exc.message}", style="red", highlight=False, markup=False)
            continue
        except OSError as exc:  # the output folder, not the image: the next image would fail alike
            err.print(f"cannot write to {output}: {exc.strerror or exc}", style="red", highlight=False)
            raise typer.Exit(EXIT_USAGE) from None
        except Exception as exc:  # a bug of ours must not stop the batch
            failed += 1
            err.print(f"{path}: {unexpected(exc, 'the localization').message}", style="red")
            continue
        if json_lines:
            record["files"] = {kind: str(where) for kind, where in written.items()}
            out.print(json.dumps(record, ensure_ascii=False), highlight=False, markup=False)
        else:
            out.print(f"{path}: {found.reading}", highlight=False, markup=False)
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def fit_localization_command(
    data: DataOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the fusion card (JSON).")],
    genuine: GenuineOption = None,
    split: SplitOption = "train",
    methods: Annotated[
        str | None, typer.Option("--methods", help="Maps to fuse, comma-separated (default: every map).")
    ] = None,
    target_fpr: Annotated[
        float,
        typer.Option(
            "--target-fpr", min=0.0, max=0.5, help="Share of the genuine images the operating point may flag."
        ),
    ] = 0.02,
    limit: LimitOption = None,
    root: RootOption = None,
    cache: CacheOption = None,
    workers: WorkersOption = 1,
) -> None:
    """Fit a localization fusion card: image and pixel logistic models over the maps, and an operating
    point that flags at most --target-fpr of the genuine images."""
    import shlex
    import sys
    from dataclasses import replace

    from pixelsleuth.bench.localization import analyse_samples
    from pixelsleuth.bench.locset import gather_samples
    from pixelsleuth.localization.fit import fit_fusion
    from pixelsleuth.localization.fuse import LocalizationFusion
    from pixelsleuth.localization.methods import parse_methods

    err = Console(stderr=True, soft_wrap=True)
    try:
        names = parse_methods(methods)
        samples = gather_samples(list(data), list(genuine or []), split, limit, root)
        stand_in = LocalizationFusion.uniform(names)
        results = []
        for index, result in enumerate(
            analyse_samples(samples, stand_in, workers=workers, keep_pixels=True, cache=cache), start=1
        ):
            results.append(result)
            if index % 25 == 0:
                err.print(f"{index}/{len(samples)}", highlight=False)
        card = fit_fusion(results, names, target_fpr=target_fpr)
    except PixelsleuthError as exc:
        err.print(exc.message, style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    usable = [result for result in results if result.error is None]
    card = replace(
        card,
        card={
            "reproduce": "pixelsleuth fit-localization " + shlex.join(sys.argv[2:]),
            "fitted_on": {
                "manipulated": sum(not result.genuine for result in usable),
                "genuine": sum(result.genuine for result in usable),
                "datasets": sorted({result.dataset for result in usable}),
                "split": split,
            },
        },
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    card.save(output)
    err.print(
        f"wrote {output}: threshold {card.threshold:.4f} for {100 * target_fpr:.1f} % FPR", highlight=False
    )
