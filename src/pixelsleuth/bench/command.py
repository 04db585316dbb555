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


def generalization_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="A dataset folder written by `pixelsleuth forge` (train/, val/, test/ and manifest.jsonl)."
        ),
    ],
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Training config (.toml), e.g. configs/generalization_npr.toml."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Folder for the folds' runs and the tables (reused on a rerun)."),
    ],
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            help="leave-one-out (train on all families but one, per family), single (train on one, test on "
            "all, per family) or all (train on every family).",
        ),
    ] = "leave-one-out",
    families: Annotated[
        str | None,
        typer.Option(
            "--families", help="Comma-separated generator families (default: every family of DATA)."
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="Hold out a group of families together: NAME=a,b (repeatable; leave-one-out only, one fold "
            "per group).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a training config value, e.g. --set epochs=3 (repeatable)."),
    ] = None,
    robustness: Annotated[
        str | None,
        typer.Option(
            "--robustness",
            help="Comma-separated perturbations for the held-out families, as labelled by the robustness "
            "grid (jpeg:70, downscale:0.5, blur:1, webp:75, ...); 'none' for no perturbation. "
            "Default: jpeg:70,downscale:0.5,blur:1.",
        ),
    ] = None,
    limit_per_subset: LimitOption = None,
    batch_size: BatchSizeOption = 32,
) -> None:
    """Cross-generator generalisation: train one detector per fold of generator families, test every family.

    Prints the fold x test-family AUC table (unseen families bold) and the robustness table, and writes
    generalization.md, .csv, .json and generalization.png into --output, beside one run folder per fold.
    Run it again with the same --output to resume: finished folds are read, not retrained.
    """
    import shlex

    from pixelsleuth.bench.generalization import (
        DEFAULT_PERTURBATIONS,
        dataset_families,
        make_folds,
        plot_generalization,
        run_generalization,
    )
    from pixelsleuth.train.config import load_config

    err = Console(stderr=True)
    overrides = list(set_ or [])
    try:
        training = load_config(config, overrides)
        known = sorted(set(dataset_families(data).values()))
        chosen = _protocol_families(families, known)
        folds = make_folds(protocol, chosen, _groups(group or []))
        perturbations = DEFAULT_PERTURBATIONS if robustness is None else _names(robustness)
        words = ["pixelsleuth", "benchmark", "generalization", str(data), "--config", str(config)]
        words += ["--output", str(output), "--protocol", protocol]
        for override in overrides:
            words += ["--set", override]
        report = run_generalization(
            data,
            training,
            folds,
            output,
            robustness=perturbations,
            limit_per_subset=limit_per_subset,
            batch_size=batch_size,
            console=err,
            command=shlex.join(words),
        )
    except PixelsleuthError as error:
        raise _fail(error) from None
    files = report.save(output)
    files["plot"] = plot_generalization(report, Path(output) / "generalization.png")
    typer.echo(report.to_markdown())
    failed = sum(int(fold.evaluation.get("n_failed", 0)) for fold in report.folds)
    if failed:
        err.print(
            f"[yellow]{failed} test image(s) could not be scored and are left out (see each fold.json)[/]"
        )
    err.print(f"wrote {', '.join(path.name for path in files.values())} to {output}", highlight=False)


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return [] if [name.lower() for name in names] == ["none"] else names


def _protocol_families(requested: str | None, known: list[str]) -> list[str]:
    if requested is None:
        return known
    names = list(dict.fromkeys(_names(requested)))
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        given = ", ".join(unknown) or "(none given)"
        raise UsageError(f"the dataset has no generator family {given}; its families are {', '.join(known)}")
    return names


def _groups(texts: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for text in texts:
        name, separator, members = text.partition("=")
        name = name.strip()
        if not separator or not name or not _names(members):
            raise UsageError(
                f"--group {text!r} is not NAME=family,family (e.g. --group x8=ae-nearest-x8,ae-transposed-x8)"
            )
        if name in groups:
            raise UsageError(f"the group {name!r} is given twice")
        groups[name] = _names(members)
    return groups
