"""`scan --engine ray`: analyse many files on a Ray cluster with Ray Data.

The driver lists the files (local folders through `collect_paths`, object-store URIs such as
`s3://bucket/prefix/` through pyarrow's file systems, as Ray Data's readers do), drops those already
done (in the SQLite store, or in a finished Parquet partition of the output folder), and hands the rest
to `map_batches` over a pool of actors, each holding one `Analyzer` built once (in a worker process with
the per-file time budget, as the local scan does). Each batch comes back as one Parquet partition
(`parquet_results`), written by the driver the moment it arrives; at the end every partition of the
folder is merged into the store (idempotent). Killing a worker costs its batch (Ray retries it); killing
the driver costs the batches in flight: a re-run analyses only what no partition holds.

Ray is imported only here, and only when a Ray scan runs.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import FileReadError, FileTooLargeError, PixelsleuthError, UsageError, unexpected
from pixelsleuth.outputs.collect import IMAGE_SUFFIXES, collect_paths
from pixelsleuth.outputs.parquet_results import (
    FILE_COLUMNS,
    RECORD_COLUMN,
    FileKey,
    MergeCounts,
    finished_files,
    is_uri,
    merge_into_store,
    result_row,
    rows_table,
    write_partition,
)
from pixelsleuth.outputs.store import FileStamp, ResultStore
from pixelsleuth.outputs.worker import plugin_modules
from pixelsleuth.pipeline import AnalyzerConfig

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_BATCH_SIZE = 64  # files per batch, and rows per Parquet partition


@dataclass(frozen=True)
class FileTask:
    """One file to analyse: the path as the person typed it (what the record shows), where a worker opens
    it (an absolute path or a URI), and its stamp (None when it cannot be stat-ed: analysed every time)."""

    path: str
    location: str
    stamp: FileStamp | None

    def done_key(self, version: str) -> FileKey | None:
        stamp = self.stamp
        return None if stamp is None else FileKey(stamp.path, stamp.size, stamp.mtime_ns, version)


def list_files(arguments: Iterable[str]) -> tuple[list[FileTask], list[str]]:
    """Local files, folders and globs (as `scan` expands them) and object-store URIs (a single object,
    or every image under a prefix, recursively). Returns the tasks and the arguments that matched nothing.
    """
    tasks: list[FileTask] = []
    unmatched: list[str] = []
    local: list[str] = []
    for argument in arguments:
        if is_uri(argument):  # file:// URIs too: read through pyarrow, like any object store
            found = _list_uri(argument)
            tasks.extend(found)
            if not found:
                unmatched.append(argument)
        else:
            local.append(argument)
    paths, missing = collect_paths(local)
    unmatched.extend(missing)
    for path in paths:
        stamp = FileStamp.of(path)
        tasks.append(FileTask(str(path), stamp.path if stamp else str(Path(path).absolute()), stamp))
    unique = {task.location: task for task in tasks}  # in first-seen order, without repeats
    return list(unique.values()), unmatched


def _list_uri(uri: str) -> list[FileTask]:
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.File:
            infos = [info]
        elif info.type == pafs.FileType.Directory:
            selector = pafs.FileSelector(root, recursive=True)
            infos = sorted(
                (
                    item
                    for item in fs.get_file_info(selector)
                    if item.type == pafs.FileType.File
                    and not any(part.startswith(".") for part in item.path[len(root) :].split("/"))
                    and Path(item.base_name).suffix.lower() in IMAGE_SUFFIXES
                ),
                key=lambda item: item.path,
            )
        else:
            return []
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot list {uri}: {exc}") from None
    scheme = uri.partition("://")[0]
    tasks = []
    for item in infos:
        location = f"{scheme}://{item.path}"
        stamp = FileStamp(location, item.size or 0, item.mtime_ns or 0)
        tasks.append(FileTask(location, location, stamp))
    return tasks


def pending(
    tasks: list[FileTask], version: str, output: str | Path, store: ResultStore | None, *, rescan: bool
) -> tuple[list[FileTask], int]:
    """The tasks still to analyse, and how many are done already (in the store or in a partition)."""
    if rescan:
        return tasks, 0
    in_partitions = finished_files(output, version)
    todo = []
    for task in tasks:
        key = task.done_key(version)
        if key is not None and (
            key in in_partitions or (store is not None and store.lookup_file(task.stamp, version) is not None)
        ):
            continue
        todo.append(task)
    return todo, len(tasks) - len(todo)


class BatchAnalyzer:
    """A Ray Data actor: builds its analyzer once, then turns a batch of file tasks into partition rows.

    Local files are opened where they are (on a cluster, a file system every node mounts); object-store
    files are copied to a temporary file first, read through pyarrow's file systems.
    """

    def __init__(self, config: AnalyzerConfig, file_timeout: float, plugins: tuple[str, ...] = ()) -> None:
        import importlib

        from pixelsleuth.outputs.worker import IsolatedAnalyzer
        from pixelsleuth.pipeline import Analyzer

        for module in plugins:
            importlib.import_module(module)
        self.config = config
        self.analyzer: Any = (
            IsolatedAnalyzer(config, file_timeout=file_timeout) if file_timeout > 0 else Analyzer(config)
        )
        self._scratch = tempfile.TemporaryDirectory(prefix="pixelsleuth-ray-")

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = []
        for path, location, key, size, mtime_ns in zip(
            *(batch.column(name).to_pylist() for name in ("path", "location", *FILE_COLUMNS)), strict=True
        ):
            stamp = None if key is None else FileStamp(key, size, mtime_ns)
            analysis = self.analyze(path, location, size)
            rows.append(result_row(analysis, self.config.version, stamp))
        return rows_table(rows)

    def analyze(self, path: str, location: str, size: int | None) -> Analysis:
        try:
            if not is_uri(location):
                analysis = self.analyzer.analyze(location)
            else:
                analysis = self._analyze_remote(location, size)
        except Exception as exc:  # a batch never dies on one file
            error = exc if isinstance(exc, PixelsleuthError) else unexpected(exc, "the analysis of this file")
            analysis = _error_analysis(path, error)
        analysis.path = path
        return analysis

    def _analyze_remote(self, uri: str, size: int | None) -> Analysis:
        import pyarrow.fs as pafs

        limit = self.config.limits.max_file_bytes
        if size is not None and size > limit:
            raise FileTooLargeError(f"file too large: {size} bytes, over the limit of {limit} bytes")
        try:
            fs, remote = pafs.FileSystem.from_uri(uri)
            with fs.open_input_stream(remote) as stream:
                data = stream.read(limit + 1)  # intake refuses a file that grew past the limit
        except OSError as exc:
            raise FileReadError(f"cannot read {uri}: {exc}") from None
        local = Path(self._scratch.name) / ("object" + Path(remote).suffix.lower()[:16])
        local.write_bytes(data)
        try:
            return self.analyzer.analyze(local)
        finally:
            local.unlink(missing_ok=True)

    def __del__(self) -> None:
        close = getattr(getattr(self, "analyzer", None), "close", None)
        if close is not None:
            close()


def _error_analysis(path: str, error: PixelsleuthError) -> Analysis:
    explanation = f"The image could not be analysed: {error.message}"
    return Analysis(path=path, sha256=None, verdict="error", error=error.to_dict(), explanation=explanation)


@dataclass(frozen=True)
class WorkerPlan:
    """How many actors, and what each asks of Ray."""

    workers: int
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"


def plan_workers(workers: int | None, gpus_per_worker: float | None) -> WorkerPlan:
    """Size the actor pool from the cluster (call after `ray.init`).

    Without GPUs: one actor per CPU. With GPUs (and `gpus_per_worker` not given): the actors run on the
    GPU nodes, one per CPU there, sharing those nodes' GPUs in equal fractions (the analysis is mostly
    CPU work; the detectors run on the GPU). `gpus_per_worker=0` uses every CPU and no GPU.
    """
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cpus = sum(node["Resources"].get("CPU", 0) for node in nodes)
    gpu_nodes = [node for node in nodes if node["Resources"].get("GPU", 0) > 0]
    if gpus_per_worker is None:
        gpu_cpus = sum(node["Resources"].get("CPU", 0) for node in gpu_nodes)
        gpus = sum(node["Resources"]["GPU"] for node in gpu_nodes)
        if gpus and gpu_cpus:
            count = workers or int(gpu_cpus)
            return WorkerPlan(count, num_gpus=round(min(1.0, gpus / max(count, 1)), 4))
        gpus_per_worker = 0.0
    return WorkerPlan(workers or max(1, int(cpus)), num_gpus=gpus_per_worker)


@dataclass
class RayScanResult:
    files: int  # files listed
    skipped: int  # already done before this run (store or partitions)
    analysed: int  # analysed in this run
    partitions: int  # partitions written in this run
    counts: Counter[str] = field(default_factory=Counter)  # verdicts of the files analysed in this run
    merged: MergeCounts | None = None
    plan: WorkerPlan | None = None


def scan_on_ray(
    tasks: list[FileTask],
    config: AnalyzerConfig,
    output: str | Path,
    *,
    store: ResultStore | None = None,
    rescan: bool = False,
    file_timeout: float = 60.0,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    before_ray: Callable[[], object] | None = None,
) -> RayScanResult:
    """Analyse `tasks` on the Ray instance this process is connected to (`ray.init` first, or in
    `before_ray`, which is called only when some file is left to analyse).

    Results go to Parquet partitions in `output` (a folder or an object-store URI), then into `store` when
    one is given. `on_result` receives each new record (schema `pixelsleuth.analysis/1`) as its partition
    is written.

    Example:
        >>> import ray  # doctest: +SKIP
        >>> ray.init(address="auto")  # doctest: +SKIP
        >>> tasks, _ = list_files(["s3://bucket/images/"])  # doctest: +SKIP
        >>> scan_on_ray(tasks, AnalyzerConfig(), "s3://bucket/results/").analysed  # doctest: +SKIP
        1000
    """
    import pyarrow as pa
    import ray

    version = config.version
    todo, skipped = pending(tasks, version, output, store, rescan=rescan)
    result = RayScanResult(files=len(tasks), skipped=skipped, analysed=0, partitions=0)
    if todo:
        if before_ray is not None:
            before_ray()
        plan = plan_workers(workers, gpus_per_worker)
        result.plan = plan
        config = replace(config, device=plan.device)
        items = pa.table(
            {
                "path": [task.path for task in todo],
                "location": [task.location for task in todo],
                "file_key": [task.stamp.path if task.stamp else None for task in todo],
                "file_size": pa.array([task.stamp.size if task.stamp else None for task in todo], pa.int64()),
                "file_mtime_ns": pa.array(
                    [task.stamp.mtime_ns if task.stamp else None for task in todo], pa.int64()
                ),
            }
        )
        dataset = ray.data.from_arrow(items).repartition(math.ceil(len(todo) / batch_size))
        analysed = dataset.map_batches(
            BatchAnalyzer,
            fn_constructor_kwargs={
                "config": config,
                "file_timeout": file_timeout,
                "plugins": plugin_modules(config),
            },
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, min(plan.workers, len(todo)))),
            num_cpus=plan.num_cpus,
            num_gpus=plan.num_gpus,
        )
        for block in analysed.iter_batches(batch_size=None, batch_format="pyarrow"):
            if block.num_rows == 0:
                continue
            write_partition(output, block)
            result.partitions += 1
            result.analysed += block.num_rows
            result.counts.update(block.column("verdict").to_pylist())
            if on_result is not None:
                for text in block.column(RECORD_COLUMN).to_pylist():
                    on_result(json.loads(text))
    if store is not None:
        result.merged = merge_into_store(output, store, version)
    return result


def connect(address: str | None, *, quiet: bool) -> bool:
    """`ray.init` unless this process is connected already; True when this call connected it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance needs no token
    options: dict[str, Any] = {} if address else {"include_dashboard": False}  # a local instance
    try:
        ray.init(address=address, log_to_driver=not quiet, **options)
    except ConnectionError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    ray.data.DataContext.get_current().enable_progress_bars = not quiet
    return True


def run_scan_command(
    arguments: list[str],
    config: AnalyzerConfig,
    *,
    output: str,
    store_path: Path | None,
    address: str | None,
    rescan: bool,
    file_timeout: float,
    workers: int | None,
    gpus_per_worker: float | None,
    batch_size: int,
    json_lines: bool,
    err: Any,
) -> int:
    """`pixelsleuth scan --engine ray`: returns the exit status (0, or 1 when a file failed)."""
    import sys

    try:
        import ray
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray Data: pip install 'pixelsleuth[ray]' (or 'ray[data]')"
        ) from None
    tasks, unmatched = list_files(arguments)
    for pattern in unmatched:
        err.print(f"[yellow]nothing matches {pattern!r}[/]")
    if not tasks:
        raise UsageError("no image files to scan")

    def emit(record: dict[str, Any]) -> None:
        sys.stdout.buffer.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        sys.stdout.buffer.flush()

    store = None if store_path is None else ResultStore(store_path)
    started = []

    def start_ray() -> None:  # only when something is left to analyse
        started.append(connect(address, quiet=json_lines or not err.is_terminal))

    try:
        result = scan_on_ray(
            tasks,
            config,
            output,
            store=store,
            rescan=rescan,
            file_timeout=file_timeout,
            workers=workers,
            gpus_per_worker=gpus_per_worker,
            batch_size=batch_size,
            on_result=emit if json_lines else None,
            before_ray=start_ray,
        )
    finally:
        if store is not None:
            store.close()
        if any(started):
            import ray

            ray.shutdown()
    summary = (
        ", ".join(f"{count} {verdict}" for verdict, count in sorted(result.counts.items())) or "nothing new"
    )
    done = f" ({result.skipped} done before)" if result.skipped else ""
    err.print(f"{result.files} file(s): {summary}{done}", soft_wrap=True)
    where = f"results in {output} ({result.partitions} new partition(s))"
    if result.merged is not None:
        where += f"; {result.merged.added} added to the store {store_path}"
    err.print(where, soft_wrap=True)
    return 1 if result.counts["error"] else 0
