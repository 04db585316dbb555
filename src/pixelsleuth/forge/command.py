"""``pixelsleuth forge``: a typer-compatible command around `pixelsleuth.forge.build.forge_dataset`.

Register it with ``app.command("forge")(forge_command)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pixelsleuth.errors import PixelsleuthError, UsageError

if TYPE_CHECKING:
    import numpy as np

    from pixelsleuth.forge.families import GeneratorFamily

EXIT_USAGE = 2


def forge_command(
    photos: Annotated[
        Path, typer.Argument(help="Folder of genuine photos to forge from (searched recursively).")
    ],
    output: Annotated[Path, typer.Argument(help="New (or empty) folder to write the dataset into.")],
    families: Annotated[
        str | None,
        typer.Option("--families", help="Comma-separated generator families (default: every family)."),
    ] = None,
    per_family: Annotated[
        int,
        typer.Option("--per-family", help="Fake images per family folder over all splits (as many real)."),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    train_seconds: Annotated[
        float, typer.Option("--train-seconds", help="Training budget per family, in seconds.")
    ] = 60.0,
    train_steps: Annotated[
        str | None,
        typer.Option(
            "--train-steps",
            help="Exact training steps, with no time limit: N for every family, or NAME=N,NAME=N,... "
            "(families not listed train for --train-seconds).",
        ),
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option(
            "--models",
            help="Folder of trained families to reuse; a family missing there is trained and saved there.",
        ),
    ] = None,
    crop: Annotated[int, typer.Option("--crop", help="Side of the square crops taken from photos.")] = 256,
    manipulations_per_kind: Annotated[
        int, typer.Option("--manipulations", help="Manipulated images per kind over all splits (0: none).")
    ] = 50,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Processes forging at once (one per CPU core); same files for any number.",
        ),
    ] = 1,
) -> None:
    """Build a labelled dataset: genuine crops, crops laundered by each generator family, the families'
    own samples and local manipulations with masks, all post-processed alike, with a manifest.

    Families are trained on the photos of the train split only (the split is by photo and does not
    depend on the seed), unless `--models` already holds them.
    """
    # torch and the generator zoo load only when the command runs.
    from pixelsleuth.forge.build import (
        DEFAULT_SPLIT_FRACTIONS,
        DEFAULT_SPLITS,
        find_photos,
        forge_dataset,
        split_by_photo,
    )
    from pixelsleuth.forge.families import list_families
    from pixelsleuth.intake import load_image

    err = Console(stderr=True)

    def say(line: str) -> None:
        err.print(line, highlight=False, markup=False)

    try:
        names = _family_names(families, list_families())
        steps_by_family = parse_train_steps(train_steps, names)
        pixels: list[np.ndarray] = []  # found and decoded only if some family has to be trained

        def training_pixels() -> list[np.ndarray]:
            if not pixels:
                usable, _ = find_photos(photos, min_side=crop)
                train_photos = split_by_photo(usable, DEFAULT_SPLITS, DEFAULT_SPLIT_FRACTIONS)[
                    DEFAULT_SPLITS[0]
                ]
                pixels.extend(load_image(photo.path).rgb for photo in train_photos)
            return pixels

        zoo = [
            _family(
                name, models, training_pixels, train_seconds, steps_by_family.get(name), seed, photos, say
            )
            for name in names
        ]
        report = forge_dataset(
            photos,
            output,
            families=zoo,
            per_family=per_family,
            seed=seed,
            crop=crop,
            manipulations_per_kind=manipulations_per_kind,
            log=say,
            workers=workers,
        )
    except PixelsleuthError as exc:
        err.print(exc.message, style="red", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    say(report.summary())


def parse_train_steps(value: str | None, names: list[str]) -> dict[str, int]:
    """``"300"`` -> every family 300 steps; ``"a=300,b=250"`` -> those families only.

    Example:
        >>> parse_train_steps("ae-nearest-x2=290", ["ae-nearest-x2", "vae-nearest-x4"])
        {'ae-nearest-x2': 290}
    """
    if value is None or not value.strip():
        return {}
    text = value.strip()
    if "=" not in text:
        if not text.isdigit() or int(text) < 1:
            raise UsageError(f"--train-steps must be a positive whole number or NAME=N pairs, got {value!r}")
        return dict.fromkeys(names, int(text))
    steps: dict[str, int] = {}
    for pair in text.split(","):
        name, _, count = pair.strip().partition("=")
        if name not in names:
            raise UsageError(f"--train-steps names {name!r}, which is not among the families being forged")
        if not count.strip().isdigit() or int(count) < 1:
            raise UsageError(f"--train-steps for {name} must be a positive whole number, got {count!r}")
        steps[name] = int(count)
    return steps


def _family_names(requested: str | None, known: list[str]) -> list[str]:
    if requested is None:
        return known
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise UsageError(f"unknown generator family {given}; known families: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _family(
    name: str,
    models: Path | None,
    training_pixels: Callable[[], list[np.ndarray]],
    seconds: float,
    steps: int | None,
    seed: int,
    photos: Path,
    say: Callable[[str], None],
) -> GeneratorFamily:
    """The family `name`: loaded from `models` when saved there, else trained (and saved there)."""
    from pixelsleuth.forge.families import load_family, train_family

    if models is not None and (Path(models) / f"{name}.safetensors").is_file():
        say(f"{name}: reusing the weights in {models}")
        return load_family(name, Path(models))
    say(f"{name}: training for {seconds:g} s" if steps is None else f"{name}: training for {steps} steps")
    family = train_family(
        name,
        training_pixels(),
        seconds=seconds if steps is None else math.inf,  # an exact step count is not cut short by time
        seed=seed,
        steps=steps,
        data_note=f"train split of {photos}",
    )
    if models is not None:
        family.save(Path(models))
    return family
