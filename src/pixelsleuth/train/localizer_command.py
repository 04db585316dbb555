"""`pixelsleuth train-localizer`: train the learned localizer and write its weights and model card.

Heavy imports (torch, OpenCV) happen inside the command.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from pixelsleuth.errors import PixelsleuthError

EXIT_USAGE = 2
DEFAULT_OUTPUT = Path("src/pixelsleuth/localization/weights/localizer.safetensors")


def _pool_test_sha256(pool: Path) -> frozenset[str]:
    from pixelsleuth.bench.poolset import read_pool_manifest, split_of

    return frozenset(row.sha256 for row in read_pool_manifest(pool) if split_of(row) != "train")


def train_localizer_command(
    output: Annotated[
        Path, typer.Option("--output", help="Weights to write (.safetensors); the model card goes beside.")
    ] = DEFAULT_OUTPUT,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.0, help="Budget in CPU seconds of this process (all threads).")
    ] = 1800.0,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps at the latest.")
    ] = None,
    wall_limit: Annotated[
        float | None,
        typer.Option(
            "--wall-limit", min=1.0, help="Also stop after this many wall-clock seconds of training."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice (data and weights).")] = 0,
    photos: Annotated[
        list[Path] | None,
        typer.Option("--photos", help="Folder of genuine photos to manipulate (repeatable)."),
    ] = None,
    pool: Annotated[
        Path | None,
        typer.Option(
            "--pool",
            help="Pool manifest.tsv: its train-split genuine photos are manipulated and its train-split "
            "generated images are the donors of generated splices; photos of its other splits are "
            "excluded everywhere (by SHA-256).",
        ),
    ] = None,
    pool_root: Annotated[
        Path | None, typer.Option("--pool-root", help="Folder the pool manifest's relpaths are under.")
    ] = None,
    manip: Annotated[
        Path | None,
        typer.Option("--manip", help="Manip manifest.tsv: its train split (real forgeries) is used."),
    ] = None,
    manip_root: Annotated[
        Path | None, typer.Option("--manip-root", help="Folder the manip manifest's relpaths are under.")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Crops per step.")] = 8,
    crop: Annotated[
        int, typer.Option("--crop", min=32, help="Crop side in pixels (a multiple of 16).")
    ] = 256,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak AdamW learning rate.")] = 3e-3,
    max_photos: Annotated[
        int, typer.Option("--max-photos", min=2, help="Genuine photos kept in memory.")
    ] = 400,
    threads: Annotated[int, typer.Option("--threads", min=1, help="Torch CPU threads.")] = 2,
) -> None:
    """Train the learned localizer on generated manipulations of genuine photos (CPU, time budget)."""
    import torch

    from pixelsleuth.detectors.card import ModelCard, Preprocessing
    from pixelsleuth.localization.learned import architecture_text, save_localizer
    from pixelsleuth.train.localizer import DEFAULT_WEIGHTS, LocalizerTraining, train_localizer

    if crop % 16:
        typer.echo(f"--crop must be a multiple of 16, got {crop}", err=True)
        raise typer.Exit(EXIT_USAGE)
    words = ["pixelsleuth", "train-localizer", "--output", str(output), "--seconds", f"{seconds:g}"]
    words += ["--max-steps", str(max_steps)] if max_steps is not None else []
    words += ["--wall-limit", f"{wall_limit:g}"] if wall_limit is not None else []
    words += ["--seed", str(seed)]
    for folder in photos or []:
        words += ["--photos", str(folder)]
    for flag, value in (
        ("--pool", pool),
        ("--pool-root", pool_root),
        ("--manip", manip),
        ("--manip-root", manip_root),
    ):
        words += [flag, str(value)] if value is not None else []
    words += ["--batch", str(batch), "--crop", str(crop), "--lr", f"{lr:g}", "--max-photos", str(max_photos)]
    words += ["--threads", str(threads)]
    command = shlex.join(words)
    config = LocalizerTraining(
        output=output,
        seconds=seconds,
        seed=seed,
        batch=batch,
        crop=crop,
        lr=lr,
        max_steps=max_steps,
        wall_limit=wall_limit,
        photos=list(photos or []),
        pool=pool,
        pool_root=pool_root,
        manip=manip,
        manip_root=manip_root,
        max_photos=max_photos,
        threads=threads,
    )
    try:
        if pool is not None:
            config.exclude_sha256 = _pool_test_sha256(pool)
        result = train_localizer(config, log=lambda line: typer.echo(line, err=True))
    except PixelsleuthError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_USAGE) from None
    card = ModelCard(
        detector="localizer",
        version=f"forge-locset-seed{seed}-{result.steps}steps",
        architecture=architecture_text(),
        preprocessing=Preprocessing(),
        training_data=(
            "generated on the fly (seed-determined): crops of genuine photos edited by pixelsleuth.forge."
            "manipulate (splice from another photo, splice from a generated image, copy-move, telea/ns "
            "inpainting, ai_edit with a down-up-sampling reconstruction), random resize and JPEG; plus the "
            "train split of the manip manifest; plus unedited genuine crops with empty masks. Sources: "
            f"{result.sources}"
        ),
        training_command=command,
        notes=(
            "Per-pixel probability of 'edited'. Trained on the CPU under a time budget; the held-out "
            "measurements are added by benchmarks/localization_learned.py --write-card."
        ),
        extra={
            "seed": seed,
            "steps": result.steps,
            "stopped_by": "wall-clock limit" if result.stopped_by_wall else "CPU budget or max steps",
            "batch": batch,
            "crop": crop,
            "crops_seen_by_kind": dict(sorted(result.seen.items())),
            "kind_weights": DEFAULT_WEIGHTS,
            "cpu_seconds": round(result.cpu_seconds, 1),
            "wall_seconds_training": round(result.wall_seconds, 1),
            "wall_seconds_loading": round(result.load_seconds, 1),
            "threads": threads,
            "torch": torch.__version__,
            "loss_per_50_steps": [round(value, 4) for value in result.losses],
        },
    )
    save_localizer(result.model, output, card)
    typer.echo(
        f"{result.steps} steps in {result.cpu_seconds:.0f} CPU s ({result.wall_seconds:.0f} s wall): "
        f"{output}",
        err=True,
    )
