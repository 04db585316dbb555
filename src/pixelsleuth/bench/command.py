"""`pixelsleuth evaluate` and `pixelsleuth robustness`: measure a detector on a labelled dataset.

Plain typer-compatible functions; `pixelsleuth.outputs.cli` registers them as commands. Both refuse a
detector that has no trained weights (its numbers would describe random initialisation) unless
``--allow-untrained`` is given.

Example:
    >>> import typer
    >>> app = typer.Typer()
    >>> _ = app.command("evaluate")(evaluate_command)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pixelsleuth.errors import PixelsleuthError, UsageError

if TYPE_CHECKING:
    from pixelsleuth.bench.evaluate import FailedImage
    from pixelsleuth.detectors import Detector

# torch, matplotlib and the datasets are imported inside the commands, so that registering them
# does not slow down the start of every other `pixelsleuth` command.

EXIT_USAGE = 2

SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="Dataset folder (ForenSynths ROOT/<subset>/[<class>/]0_real|1_fake, or GenImage "
        "ROOT/<generator>/<split>/ai|nature) or a .csv/.tsv/.jsonl manifest with path and label columns."
    ),
]
DetectorOption = Annotated[str, typer.Option("--detector", "-d", help="Registered detector name.")]
WeightsOption = Annotated[
    Path | None, typer.Option("--weights", "-w", help="The detector's .safetensors weights (card beside it).")
]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="Folder to write the results into.")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Images read and scored together.")]
DeviceOption = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda, cuda:1, ...")]
RuntimeOption = Annotated[
    str, typer.Option("--runtime", help="torch, or onnxruntime (CPU float32; fastest on CPUs, same scores).")
]
SplitOption = Annotated[
    str, typer.Option("--split", help="GenImage split to evaluate (its test images are in 'val').")
]
LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit-per-subset", min=1, help="Score at most this many images per subset (seeded, both classes)."
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the --limit-per-subset draw.")]
AllowUntrainedOption = Annotated[
    bool,
    typer.Option(
        "--allow-untrained", help="Evaluate a detector without trained weights (only to test the pipeline)."
    ),
]


def _detector(
    name: str, weights: Path | None, device: str, allow_untrained: bool, runtime: str = "torch"
) -> Detector:
    from pixelsleuth.detectors import create

    options = {"runtime": runtime} if runtime != "torch" else {}  # detectors without runtimes stay valid
    detector = create(name, weights, device=device, **options)
    if not getattr(detector, "trained", True) and not allow_untrained:
        raise UsageError(
            f"the {name} detector has no trained weights, and measuring random weights means nothing: "
            "give its weights with --weights PATH.safetensors (or pass --allow-untrained to run anyway, "
            "e.g. to test the pipeline)"
        )
    return detector


def _fail(error: PixelsleuthError) -> typer.Exit:
    Console(stderr=True).print(f"[red]{error.message}[/]", highlight=False)
    return typer.Exit(EXIT_USAGE)


def _report_failures(err: Console, failures: list[FailedImage], total: int) -> None:
    if not failures:
        return
    err.print(f"[yellow]{len(failures)} of {total} image(s) could not be read or scored and are left out:[/]")
    for failure in failures[:5]:
        err.print(f"  {failure.path}: {failure.message}", highlight=False, markup=False)
    if len(failures) > 5:
        err.print(f"  ... and {len(failures) - 5} more (listed in metrics.json)")


def evaluate_command(
    source: SourceArgument,
    output: OutputOption,
    detector: DetectorOption = "npr",
    weights: WeightsOption = None,
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = "cpu",
    runtime: RuntimeOption = "torch",
    split: SplitOption = "val",
    limit_per_subset: LimitOption = None,
    seed: SeedOption = 0,
    allow_untrained: AllowUntrainedOption = False,
) -> None:
    """Measure a detector on a labelled dataset: ACC, AP, AUC, EER, TPR@FPR per subset, their mean, pooled.

    Writes metrics.md, metrics.csv, metrics.json, scores.csv, roc.png and pr.png into --output and
    prints the Markdown table.
    """
    from pixelsleuth.bench.evaluate import evaluate
    from pixelsleuth.bench.evaluate import limit_per_subset as draw_per_subset
    from pixelsleuth.bench.plots import plot_pr, plot_roc
    from pixelsleuth.train.datasets import discover

    err = Console(stderr=True)
    try:
        scorer = _detector(detector, weights, device, allow_untrained, runtime)
        samples = discover(source, split=split)
        if limit_per_subset is not None:
            samples = draw_per_subset(samples, limit_per_subset, seed=seed)
        report = evaluate(scorer, samples, batch_size=batch_size, progress=err.is_terminal)
    except PixelsleuthError as error:
        raise _fail(error) from None
    files = report.save(output)
    files["roc"] = plot_roc(report, Path(output) / "roc.png")
    files["pr"] = plot_pr(report, Path(output) / "pr.png")
    typer.echo(report.to_markdown())
    _report_failures(err, report.failures, len(samples))
    err.print(f"wrote {', '.join(path.name for path in files.values())} to {output}", highlight=False)


def robustness_command(
    source: SourceArgument,
    output: OutputOption,
    detector: DetectorOption = "npr",
    weights: WeightsOption = None,
    families: Annotated[
        str | None,
        typer.Option(
            "--families",
            help="Comma-separated perturbation families (jpeg, webp, downscale, upscale, blur, noise, "
            "crop, social); default: all.",
        ),
    ] = None,
    limit_per_subset: LimitOption = None,
    batch_size: BatchSizeOption = 32,
    device: DeviceOption = "cpu",
    runtime: RuntimeOption = "torch",
    split: SplitOption = "val",
    seed: SeedOption = 0,
    allow_untrained: AllowUntrainedOption = False,
) -> None:
    """Measure how AP and accuracy fall as every image is re-compressed, resized, blurred, noised or cropped.

    Writes robustness.md, robustness.csv, robustness.json and robustness.png into --output and prints
    the Markdown table. Use --limit-per-subset and --families to keep the run affordable.
    """
    from pixelsleuth.bench.plots import plot_robustness
    from pixelsleuth.bench.robustness import robustness
    from pixelsleuth.train.datasets import discover

    err = Console(stderr=True)
    try:
        scorer = _detector(detector, weights, device, allow_untrained, runtime)
        samples = discover(source, split=split)
        report = robustness(
            scorer,
            samples,
            families=None if families is None else families.split(","),
            per_subset=limit_per_subset,
            seed=seed,
            batch_size=batch_size,
            progress=err.is_terminal,
        )
    except PixelsleuthError as error:
        raise _fail(error) from None
    files = report.save(output)
    files["plot"] = plot_robustness(report, Path(output) / "robustness.png")
    typer.echo(report.to_markdown())
    failed = sum(len(row.failures) for row in report.rows)
    if failed:
        err.print(f"[yellow]{failed} image-perturbation pair(s) could not be scored (see robustness.json)[/]")
    err.print(f"wrote {', '.join(path.name for path in files.values())} to {output}", highlight=False)
