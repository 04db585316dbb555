"""The `pixelsleuth` command line."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from pixelsleuth import __version__
from pixelsleuth.analysis import Analysis, json_safe
from pixelsleuth.errors import PixelsleuthError, UsageError
from pixelsleuth.evidence import PIXEL_SOURCES, PROVENANCE_SOURCES
from pixelsleuth.intake import IntakeLimits
from pixelsleuth.outputs.collect import collect_paths
from pixelsleuth.outputs.engine import BatchEngine, default_workers
from pixelsleuth.outputs.export import EXPORT_FORMATS, write_export
from pixelsleuth.outputs.report_command import finish_scan_reports, open_scan_reports, report_command
from pixelsleuth.outputs.scan import scan as run_scan
from pixelsleuth.outputs.serve_command import serve_command
from pixelsleuth.outputs.store import ResultStore, default_store_path
from pixelsleuth.outputs.worker import DEFAULT_FILE_TIMEOUT, IsolatedAnalyzer
from pixelsleuth.pipeline import (
    Analyzer,
    AnalyzerConfig,
    DetectorSpec,
    OperatingPointChoice,
    default_detector_specs,
    default_fusion_card,
)

if TYPE_CHECKING:
    from pixelsleuth.verdict.narrate import NarrationConfig

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
LOCALIZE_FILE_TIMEOUT = 600.0

app = typer.Typer(
    name="pixelsleuth",
    help="Was this image made or edited by a generative model, where, and why do we think so?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_VERDICT_STYLE = {
    "ai-generated": "bold red",
    "manipulated": "bold yellow",
    "authentic": "bold green",
    "inconclusive": "dim",
    "error": "bold magenta",
}


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pixelsleuth {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """pixelsleuth: detect, localise and explain generated or edited images."""


def _summary_line(analysis: Analysis) -> str:
    if analysis.error:
        return analysis.error["message"]
    top = analysis.top_evidence
    return top.finding if top else "no evidence either way"


def _table(items: list[Analysis]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("file", overflow="fold", max_width=48)
    table.add_column("verdict")
    table.add_column("score", justify="right")
    table.add_column("strongest evidence", overflow="fold")
    for analysis in items:
        score = "—" if analysis.score is None else f"{analysis.score:.2f}"
        style = _VERDICT_STYLE.get(analysis.verdict, "")
        verdict = Text(analysis.verdict, style=style)
        record = analysis.to_dict()  # valid Unicode whatever the file held; readable paths
        summary = record["error"]["message"] if record["error"] else _summary_line(analysis)
        table.add_row(Text(record["path"] or ""), verdict, score, Text(json_safe(summary)))
    return table


@app.command()
def scan(
    paths: Annotated[
        list[str], typer.Argument(help="Image files, folders (scanned recursively) or glob patterns.")
    ],
    json_lines: Annotated[
        bool, typer.Option("--json", help="Write JSON Lines (schema pixelsleuth.analysis/1) to stdout.")
    ] = False,
    store: Annotated[
        Path | None, typer.Option("--store", help="SQLite results store (default: your user data folder).")
    ] = None,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not read or write a results store.")
    ] = False,
    rescan: Annotated[
        bool, typer.Option("--rescan", help="Analyse again even if the store has a result.")
    ] = False,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, help="Refuse images with more pixels (decompression bombs).")
    ] = IntakeLimits().max_pixels,
    max_file_mb: Annotated[
        float, typer.Option("--max-file-mb", min=0.001, help="Refuse files larger than this many MiB.")
    ] = IntakeLimits().max_file_bytes / 2**20,
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            help="Run a detector: NAME=WEIGHTS.safetensors (repeatable; see `pixelsleuth detectors`).",
        ),
    ] = None,
    no_default_detectors: Annotated[
        bool, typer.Option("--no-default-detectors", help="Skip the detectors shipped with pixelsleuth.")
    ] = False,
    operating_point: Annotated[
        str | None,
        typer.Option(
            "--operating-point",
            help="Where the fused detector score turns into a verdict: fpr=0.5% (a false-positive rate on "
            "the genuine photos the fusion card was set on) or threshold=0.8. Default: the card's own.",
        ),
    ] = None,
    localize: Annotated[
        bool,
        typer.Option(
            "--localize",
            help="Also look for manipulated regions (the `localize` maps; seconds per megapixel): a region "
            "found is evidence pointing to `manipulated`, with its box in the result.",
        ),
    ] = False,
    file_timeout: Annotated[
        float | None,
        typer.Option(
            "--file-timeout",
            min=0.0,
            help=f"Seconds one file may take (default {DEFAULT_FILE_TIMEOUT:g}, "
            f"{LOCALIZE_FILE_TIMEOUT:g} with --localize); a file that takes longer gets a `timeout` error "
            "and the batch goes on. Files are analysed in a worker process; 0 analyses in this process, "
            "without a time budget.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write an HTML report of each image into this folder as its result arrives, and "
            "index.html at the end (see `pixelsleuth report`).",
        ),
    ] = None,
    narrate: Annotated[
        bool,
        typer.Option(
            "--narrate",
            help="Add a language-model retelling of each result, through the OpenAI-compatible endpoint in "
            "PIXELSLEUTH_NARRATION_URL (off by default; the image is sent only with "
            "PIXELSLEUTH_NARRATION_SEND_IMAGE=1; every sentence must cite the evidence; docs/narration.md).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (this machine) or ray: a Ray cluster with Ray Data, for large folders and s3://… "
            "prefixes; results go to Parquet partitions in --output-dir, then the store (docs/ray.md).",
        ),
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster to join (e.g. auto); default: a local one.")
    ] = None,
    output_dir: Annotated[
        str, typer.Option("--output-dir", help="--engine ray: folder or URI for the Parquet partitions.")
    ] = "pixelsleuth-ray",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="--engine ray: analyzers (default: one per CPU). local: cores to analyse on, files decoded "
            "in worker processes and the detectors fed in batches (default: every core when there is more "
            "than one file; 1: one file at a time in one worker; ignored with --file-timeout 0).",
            show_default=False,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option("--gpus-per-worker", min=0.0, help="--engine ray: GPUs per analyzer (default: auto)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="--engine ray: files per batch and partition.")
    ] = 64,
) -> None:
    """Analyse images and report a verdict with its evidence for each."""
    err = Console(stderr=True)
    if engine not in ("local", "ray") or (engine == "ray" and (report is not None or narrate)):
        err.print("[red]--engine is local or ray; --report and --narrate need the local engine[/]")
        raise typer.Exit(EXIT_USAGE)
    files, unmatched = collect_paths(paths) if engine == "local" else ([Path()], [])
    for pattern in unmatched:
        err.print(Text(f"nothing matches {pattern!r}", style="yellow"))
    if not files:
        err.print("[red]no image files to scan[/]")
        raise typer.Exit(EXIT_USAGE)
    try:
        specs = () if no_default_detectors else default_detector_specs()
        specs += tuple(DetectorSpec.parse(text) for text in detector or ())
        limits = IntakeLimits(max_pixels=max_pixels, max_file_bytes=int(max_file_mb * 2**20))
        point = OperatingPointChoice.parse(operating_point) if operating_point else None
        reports = open_scan_reports(report, limits) if report is not None else None
        narration = _narration_config() if narrate else None
        fusion = None if no_default_detectors else default_fusion_card()
        sources = (*PROVENANCE_SOURCES, *PIXEL_SOURCES, *(("localization",) if localize else ()))
        config = AnalyzerConfig(
            limits=limits, sources=sources, detectors=specs, fusion=fusion, operating_point=point
        )
        if file_timeout is None:  # localizing a 12 MP photo takes about a minute on 2 cores
            file_timeout = LOCALIZE_FILE_TIMEOUT if localize else DEFAULT_FILE_TIMEOUT
        if engine == "ray":  # Ray is imported only here
            from pixelsleuth.outputs.ray_engine import run_scan_command

            store_path = None if no_store else store or default_store_path()
            raise typer.Exit(
                run_scan_command(
                    paths,
                    config,
                    output=output_dir,
                    store_path=store_path,
                    address=address,
                    rescan=rescan,
                    file_timeout=file_timeout,
                    workers=workers,
                    gpus_per_worker=gpus_per_worker,
                    batch_size=batch_size,
                    json_lines=json_lines,
                    err=err,
                )
            )
        cores = default_workers(len(files)) if workers is None else workers
        analyzer: Analyzer | IsolatedAnalyzer | BatchEngine = (
            Analyzer(config)
            if file_timeout <= 0
            else BatchEngine(config, workers=cores, file_timeout=file_timeout)
            if cores >= 2
            else IsolatedAnalyzer(config, file_timeout=file_timeout)
        )
    except PixelsleuthError as exc:
        err.print(Text(exc.message, style="red"))
        raise typer.Exit(EXIT_USAGE) from None

    try:
        result_store = None if no_store else ResultStore(store or default_store_path())
    except (sqlite3.Error, OSError) as exc:
        _close(analyzer)
        err.print(Text(f"cannot open the results store {store or default_store_path()}: {exc}", style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    out = None if json_lines else Console()
    if out is not None and not out.is_terminal:
        out = Console(width=160)  # piped or redirected: do not squeeze the table into 80 columns
    results: list[Analysis] = []
    counts: Counter[str] = Counter()
    cached = 0
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=len(files) < 2 or not err.is_terminal,
    )
    try:
        with progress:
            task = progress.add_task("scanning", total=len(files))
            items = (
                analyzer.scan(files, result_store, rescan=rescan)
                if isinstance(analyzer, BatchEngine)
                else run_scan(files, analyzer, result_store, rescan=rescan)
            )
            for item in items:
                analysis = item.analysis
                if narration is not None and analysis.narration is None:
                    _add_narration(analysis, narration, result_store, analyzer.version)
                counts[analysis.verdict] += 1
                cached += item.cached
                if json_lines:
                    sys.stdout.flush()  # anything printed before goes first
                    sys.stdout.buffer.write(analysis.to_json().encode("utf-8") + b"\n")
                    sys.stdout.buffer.flush()
                else:
                    results.append(analysis)
                if reports is not None:  # never raises: a failed page is counted, the batch goes on
                    reports.add({**analysis.to_dict(), "analysis_version": analyzer.version})
                progress.advance(task)
    finally:
        _close(analyzer)
        if result_store is not None:
            result_store.close()
        reports_ok = reports is None or finish_scan_reports(reports, err)

    if out is not None:
        out.print(_table(results))
    summary = ", ".join(f"{count} {verdict}" for verdict, count in sorted(counts.items()))
    note = f" ({cached} from the store)" if cached else ""
    err.print(f"{len(files)} file(s): {summary}{note}", soft_wrap=True)  # one line, for scripts that read it
    raise typer.Exit(EXIT_SOME_FAILED if counts["error"] or not reports_ok else EXIT_OK)


def _narration_config() -> NarrationConfig:
    from pixelsleuth.verdict.narrate import NarrationConfig

    config = NarrationConfig.from_env()
    if config is None:
        raise UsageError(
            "--narrate needs an OpenAI-compatible endpoint: set PIXELSLEUTH_NARRATION_URL and "
            "PIXELSLEUTH_NARRATION_MODEL (see docs/narration.md)"
        )
    return config


def _add_narration(
    analysis: Analysis, config: NarrationConfig, store: ResultStore | None, version: str
) -> None:
    """Narrate in this process (a slow endpoint must not eat a file's time budget) and keep it stored."""
    from pixelsleuth.verdict.narrate import narration_record

    analysis.narration = narration_record(analysis, config, image_path=analysis.path)
    if analysis.narration is not None and store is not None:
        # the verdict is stored already; the narration is in this run's output even if the store refuses it
        with contextlib.suppress(sqlite3.Error, ValueError, TypeError, OverflowError):
            store.put(analysis, version)


def _close(analyzer: object) -> None:
    if isinstance(analyzer, IsolatedAnalyzer | BatchEngine):
        analyzer.close()


@app.command()
def export(
    store: Annotated[Path | None, typer.Option("--store", help="SQLite results store to read.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--analysis-version", help="Only results of this analysis version.")
    ] = None,
) -> None:
    """Export stored results."""
    err = Console(stderr=True)
    if fmt not in EXPORT_FORMATS:
        err.print(f"[red]unknown format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}[/]")
        raise typer.Exit(EXIT_USAGE)
    store_path = store or default_store_path()
    if not Path(store_path).exists():
        err.print(f"[red]no results store at {store_path}[/]")
        raise typer.Exit(EXIT_USAGE)
    with ResultStore(store_path) as result_store:
        records = result_store.iter_records(version)
        if output is None:
            count = write_export(records, fmt, sys.stdout.buffer)  # type: ignore[arg-type]
            sys.stdout.buffer.flush()
        else:
            with open(output, "wb") as handle:
                count = write_export(records, fmt, handle)  # type: ignore[arg-type]
    err.print(f"exported {count} result(s)")


app.command("report")(report_command)
app.command("serve")(serve_command)


@app.command("detectors")
def detectors_command() -> None:
    """List the registered detectors."""
    from pixelsleuth.detectors import list_detectors

    table = Table(header_style="bold")
    table.add_column("name")
    table.add_column("description")
    for name, description in list_detectors().items():
        table.add_row(name, description)
    Console().print(table)


def _register_research_commands() -> None:
    # The research workflow lives in train/ and bench/; its commands join the one CLI here.
    from pixelsleuth.bench.assess_command import assess_command, fit_verdict_command
    from pixelsleuth.bench.command import evaluate_command, generalization_command, robustness_command
    from pixelsleuth.bench.leaveout_command import leave_out_command
    from pixelsleuth.bench.localization_command import evaluate_localization_command
    from pixelsleuth.detectors.command import calibrate_command, convert_command, export_onnx_command
    from pixelsleuth.detectors.fsd_command import attribute_command, fit_fsd_command
    from pixelsleuth.forge.command import forge_command
    from pixelsleuth.localization.command import fit_localization_command, localize_command
    from pixelsleuth.train.command import train_command
    from pixelsleuth.train.localizer_command import train_localizer_command
    from pixelsleuth.verdict.command import fit_fusion_command

    app.command("convert")(convert_command)
    app.command("export-onnx")(export_onnx_command)
    app.command("calibrate")(calibrate_command)
    app.command("fit-fsd")(fit_fsd_command)
    app.command("attribute")(attribute_command)
    app.command("forge")(forge_command)
    app.command("train")(train_command)
    app.command("train-localizer")(train_localizer_command)
    app.command("fit-fusion")(fit_fusion_command)
    app.command("assess")(assess_command)
    app.command("fit-verdict")(fit_verdict_command)
    app.command("evaluate")(evaluate_command)
    app.command("robustness")(robustness_command)
    app.command("localize")(localize_command)
    app.command("fit-localization")(fit_localization_command)
    app.command("evaluate-localization")(evaluate_localization_command)
    benchmark_app = typer.Typer(
        name="benchmark",
        help="Benchmark protocols that train and measure detectors (cross-generator generalisation).",
        no_args_is_help=True,
    )
    benchmark_app.command("generalization")(generalization_command)
    benchmark_app.command("leave-out")(leave_out_command)
    app.add_typer(benchmark_app, name="benchmark")


_register_research_commands()


def main() -> None:
    """Console-script entry point: maps usage errors to exit status 2."""
    app()


if __name__ == "__main__":
    main()
