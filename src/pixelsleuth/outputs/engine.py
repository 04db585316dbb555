"""The batch engine: `scan --workers N` analyses many files at once, the detectors fed in batches.

Processes (all spawned, never forked; the parent is the only one that touches the store):

* **N intake workers** each decode one file at a time, run the evidence sources on it (provenance, the
  spectral check: `Analyzer.source_evidence`) and cut what the detectors read within the pixel budget
  (`budget_crops`: the whole image up to 512², else 16 tiles of 256²). They never import torch.
* **N detector workers**, one torch / ONNX Runtime thread each, score up to `batch_tiles` crops (one
  1 MP image's 16 tiles, or several small images whole) in one `Detector.predict` call, on the
  fastest runtime that gives the same scores (`choose_runtime`), and return each file's detector
  evidence (`evidence_from_probability`: the same items the one-at-a-time path makes).
* **The parent** hands out paths and batches over pipes, adds the fused score and the verdict
  (`Analyzer.fuse`, `Analyzer.conclude`), stores each result the moment it is finished, and yields
  results in input order.

The intake workers are idle most of the time on 1 MP files (decoding and the sources are about 2 % of
an analysis; the detectors are the rest), so N intake plus N detector processes keep N cores busy.

Per-file protections, as in `IsolatedAnalyzer`: a file that takes longer than `file_timeout` in its
intake worker gets a `timeout` error and the worker is replaced; one that kills its worker gets an
`analysis_crashed` error; the batch goes on. The detector stage has the same budget per batch: a batch
that overruns, or whose worker dies, gives each of its files that error (detectors read fixed-size
crops of decoded pixels, so this is not expected from a file). Every result is stored when it is
finished, so a killed scan loses only the files in flight and a re-run skips what is stored.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import UsageError
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.outputs.scan import ScanItem, store_or_stand_in
from pixelsleuth.outputs.store import FileStamp, ResultStore
from pixelsleuth.outputs.worker import (
    DEFAULT_FILE_TIMEOUT,
    STOP_GRACE,
    WorkerProcess,
    crash_error,
    error_result,
    plugin_modules,
    quiet_child,
    start_failure,
    timeout_error,
)
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, failed_evidence

if TYPE_CHECKING:
    from pixelsleuth.detectors import Detector

# Crops per detector batch: one 1 MP image's 16 tiles of 256², or up to 16 small images. Measured here
# (benchmarks/scan_throughput.py --batch-tiles 32): 1.13x the images/s of 32 crops (two images) a batch.
BATCH_TILES = 16
# ONNX Runtime is used for a detector only when its scores equal torch's within this on a probe batch.
RUNTIME_TOLERANCE = 1e-5
RUNTIME_CHOICES = ("auto", "torch")


@dataclass
class Prepared:
    """One decoded file, as an intake worker hands it to the parent: its facts, its sources' evidence
    and the crops the detectors read."""

    facts: Analysis  # path, sha256, width, height, format
    evidence: list[Evidence]
    crops: list[np.ndarray] = field(default_factory=list)
    tiled: bool = False


def _intake_main(connection: Connection, config: AnalyzerConfig, plugins: tuple[str, ...]) -> None:
    """An intake worker: decode, run the evidence sources, cut the detectors' crops; one file at a time."""
    quiet_child()
    from pixelsleuth.detectors.budget import budget_crops
    from pixelsleuth.intake import load_image

    try:
        with contextlib.suppress(ImportError):
            import cv2

            cv2.setNumThreads(1)  # one core per worker
        for module in plugins:
            importlib.import_module(module)
        analyzer = Analyzer(config, load_detectors=False)
    except Exception as exc:  # reported to the parent, which cannot scan without it
        connection.send(("failed", start_failure(exc)))
        return
    connection.send(("ready", None))
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        try:
            image = load_image(path, limits=config.limits)
            image.path = path
            facts = Analysis(
                path=path, sha256=image.sha256, width=image.width, height=image.height, format=image.format
            )
            prepared = Prepared(facts, analyzer.source_evidence(image))
            if config.detectors:
                crops, prepared.tiled = budget_crops(image.rgb)
                prepared.crops = [np.ascontiguousarray(crop) for crop in crops]
            message: tuple[str, Any] = ("prepared", prepared)
        except Exception as exc:  # the same typed error the one-at-a-time path gives
            message = ("done", analyzer.failed(path, exc))
        connection.send(message)


def _probe_tiles(count: int = 4, side: int = 256) -> list[np.ndarray]:
    """Photo-like seeded tiles (smooth colour fields plus noise) to compare runtimes on."""
    rng = np.random.default_rng(12)
    coarse = rng.uniform(0, 255, (count, side // 32 + 1, side // 32 + 1, 3))
    fine = np.repeat(np.repeat(coarse, 32, axis=1), 32, axis=2)[:, :side, :side]
    return list(np.clip(fine + rng.normal(0, 8, fine.shape), 0, 255).astype(np.uint8))


def choose_runtime(name: str, weights: str, *, device: str = "cpu", runtime: str = "auto") -> Detector:
    """The detector on the fastest runtime that gives the same scores: ONNX Runtime when the detector
    exports to it, onnxruntime is installed and its scores on a probe batch equal torch's within
    `RUNTIME_TOLERANCE`; otherwise torch (always, for `runtime="torch"` or a device other than the CPU).

    ONNX Runtime: 3.9x plain eager for NPR, and no slower than torch for patchnet on one thread
    (BENCHMARKS.md); fsd does not export (its least squares) and stays on torch.
    """
    from pixelsleuth.detectors import create

    detector = create(name, weights, device=device)
    if runtime != "auto" or device != "cpu":
        return detector
    try:
        fast = create(name, weights, device=device, runtime="onnxruntime")
        probe = _probe_tiles()
        difference = np.abs(fast.predict(probe) - detector.predict(probe)).max()
    except Exception:  # does not export, onnxruntime missing, export failed: torch it is
        return detector
    return fast if difference <= RUNTIME_TOLERANCE else detector


def score_batch(detectors: Sequence[Detector], batch: list[tuple[int, list[np.ndarray], bool]]) -> dict:
    """Each file's detector evidence (in detector order) for a batch of (key, crops, tiled)."""
    from pixelsleuth.detectors.base import prepare
    from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET
    from pixelsleuth.detectors.evidence import evidence_from_probability, pooled_probability

    out: dict[int, list[Evidence]] = {key: [] for key, _, _ in batch}
    for detector in detectors:
        source = f"detector:{detector.name}"
        found: dict[int, Evidence] = {}
        scorable = []
        for key, crops, tiled in batch:
            try:  # what predict refuses (e.g. an image too small) is refused here, file by file
                for crop in crops:
                    detector.check_input(prepare(crop, detector.preprocessing), crop)
                scorable.append((key, crops, tiled))
            except Exception as exc:
                found[key] = failed_evidence(source, exc)
        try:
            flat = [crop for _, crops, _ in scorable for crop in crops]
            scores = detector.predict(flat, batch_size=BATCH_TILES) if flat else np.empty(0, np.float32)
            start = 0
            for key, crops, tiled in scorable:
                raw, how = pooled_probability(crops, scores[start : start + len(crops)], tiled)
                found[key] = evidence_from_probability(detector, raw, how)
                start += len(crops)
        except Exception:  # find the file it was, as the one-at-a-time path would
            for key, crops, tiled in scorable:
                try:
                    batch_size = DEFAULT_PIXEL_BUDGET.batch if tiled else BATCH_TILES
                    raw, how = pooled_probability(
                        crops, detector.predict(crops, batch_size=batch_size), tiled
                    )
                    found[key] = evidence_from_probability(detector, raw, how)
                except Exception as exc:
                    found[key] = failed_evidence(source, exc)
        for key in out:
            out[key].append(found[key])
    return out


def _detector_main(
    connection: Connection, config: AnalyzerConfig, plugins: tuple[str, ...], runtime: str
) -> None:
    """A detector worker: score batches of crops, one thread."""
    quiet_child()
    try:
        import torch

        torch.set_num_threads(1)  # before any ONNX Runtime session is made: it takes torch's count
        for module in plugins:
            importlib.import_module(module)
        detectors = [
            choose_runtime(spec.name, spec.weights, device=config.device, runtime=runtime)
            for spec in config.detectors
        ]
    except Exception as exc:
        connection.send(("failed", start_failure(exc)))
        return
    connection.send(("ready", {detector.name: detector.runtime for detector in detectors}))
    while True:
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        connection.send(("scored", score_batch(detectors, batch)))


class BatchEngine:
    """Analyse many files on `workers` cores: intake in worker processes, the detectors batched.

    Same results as `scan(paths, IsolatedAnalyzer(config))` (verdict, score, evidence; detector
    probabilities within 1e-5), in the same order, with the same per-file protections.

    Example:
        >>> with BatchEngine(AnalyzerConfig(), workers=2) as engine:  # doctest: +SKIP
        ...     for item in engine.scan(paths, store):
        ...         print(item.analysis.verdict)
    """

    def __init__(
        self,
        config: AnalyzerConfig,
        *,
        workers: int,
        file_timeout: float = DEFAULT_FILE_TIMEOUT,
        runtime: str = "auto",
        batch_tiles: int = BATCH_TILES,
    ) -> None:
        if workers < 2:
            raise UsageError("the batch engine needs at least 2 workers (one analyses files one at a time)")
        if file_timeout <= 0:
            raise UsageError("the per-file time budget must be a positive number of seconds")
        if runtime not in RUNTIME_CHOICES:
            raise UsageError(f"runtime must be one of {', '.join(RUNTIME_CHOICES)}, got {runtime!r}")
        self.config = config
        self.file_timeout = float(file_timeout)
        self.batch_tiles = max(1, batch_tiles)
        self._finisher = Analyzer(config, load_detectors=False)  # fuses and decides; no torch here
        context = multiprocessing.get_context("spawn")  # never fork a process that runs torch
        plugins = plugin_modules(config)
        self._intake = [
            WorkerProcess(context, _intake_main, (config, plugins), "pixelsleuth-intake")
            for _ in range(workers)
        ]
        self._detect = [
            WorkerProcess(context, _detector_main, (config, plugins, runtime), "pixelsleuth-detectors")
            for _ in range(workers if config.detectors else 0)
        ]
        self.restarts = 0
        try:
            for worker in self._workers:
                worker.start()
            for worker in self._workers:
                worker.await_ready()
        except BaseException:
            self.close()
            raise
        self.runtimes: dict[str, str] = self._detect[0].info if self._detect else {}

    @property
    def _workers(self) -> list[WorkerProcess]:
        return [*self._intake, *self._detect]

    @property
    def version(self) -> str:
        return self.config.version

    def __enter__(self) -> BatchEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Ask every worker to finish, and kill those that do not within a moment."""
        for worker in self._workers:
            worker.ask_to_stop()
        deadline = time.monotonic() + STOP_GRACE
        for worker in self._workers:
            if worker.process is not None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()

    def _conclude(self, prepared: Prepared, detector_items: list[Evidence]) -> Analysis:
        path = prepared.facts.path or ""
        try:
            evidence = self._finisher.fuse([*prepared.evidence, *detector_items])
            return self._finisher.conclude(prepared.facts, evidence)
        except Exception as exc:  # last resort so that a batch goes on
            return self._finisher.failed(path, exc)

    def scan(
        self, paths: Sequence[str | Path], store: ResultStore | None = None, *, rescan: bool = False
    ) -> Iterator[ScanItem]:
        """Analyse every path, yielding results in input order; what the store holds is not redone.

        Like `outputs.scan.scan`: a file already analysed by this version (same absolute path, size and
        modification time) comes from the store, and every new result is stored before it is yielded
        (results are stored as they finish, which may be out of order).
        """
        version = self.version
        names = [os.fspath(path) for path in paths]
        stamps: dict[int, FileStamp | None] = {}
        results: dict[int, ScanItem] = {}
        prepared: dict[int, Prepared] = {}
        todo = deque(range(len(names)))
        ready: deque[int] = deque()  # decoded, waiting for the detectors
        max_ready_crops = 2 * self.batch_tiles * max(1, len(self._detect))

        def ready_crops() -> int:
            return sum(len(prepared[index].crops) for index in ready)

        def next_batch() -> list[int]:
            """Ready files in order while their crops fit one batch (always at least one file)."""
            keys = [ready.popleft()]
            crops = len(prepared[keys[0]].crops)
            while ready and crops + len(prepared[ready[0]].crops) <= self.batch_tiles:
                crops += len(prepared[ready[0]].crops)
                keys.append(ready.popleft())
            return keys

        def finish(index: int, analysis: Analysis) -> None:
            prepared.pop(index, None)
            if store is not None:
                analysis = store_or_stand_in(store, analysis, version, stamps.get(index))
            results[index] = ScanItem(analysis, cached=False)

        def next_file() -> int | None:
            while todo:
                index = todo.popleft()
                stamp = FileStamp.of(names[index]) if store is not None else None
                stamps[index] = stamp
                known = (
                    None if store is None or stamp is None or rescan else store.lookup_file(stamp, version)
                )
                if known is None:
                    return index
                known.path = names[index]
                results[index] = ScanItem(known, cached=True)
            return None

        def received(worker: WorkerProcess) -> None:
            keys = worker.keys
            worker.keys = []
            try:
                assert worker.connection is not None
                kind, payload = worker.connection.recv()
            except (EOFError, OSError):
                self.restarts += 1
                for index in keys:
                    finish(index, error_result(names[index], crash_error(), self.config))
                worker.restart()
                return
            if kind == "done":
                finish(keys[0], payload)
            elif kind == "prepared" and not self._detect:
                finish(keys[0], self._conclude(payload, []))
            elif kind == "prepared":
                prepared[keys[0]] = payload
                ready.append(keys[0])
            else:  # "scored"
                for index in keys:
                    finish(index, self._conclude(prepared[index], payload[index]))

        next_out = 0
        try:
            while next_out < len(names):
                for worker in self._intake:
                    if not worker.keys and ready_crops() < max_ready_crops:
                        index = next_file()
                        if index is not None:
                            worker.give([index], names[index], self.file_timeout)
                for worker in self._detect:
                    if not worker.keys and ready:
                        keys = next_batch()
                        batch = [(key, prepared[key].crops, prepared[key].tiled) for key in keys]
                        worker.give(keys, batch, self.file_timeout)
                while next_out in results:
                    yield results.pop(next_out)
                    next_out += 1
                busy = [worker for worker in self._workers if worker.keys]
                if not busy:
                    continue
                timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
                answered = wait([worker.connection for worker in busy if worker.connection], timeout)
                now = time.monotonic()
                for worker in busy:
                    if worker.connection in answered:
                        received(worker)
                    elif now >= worker.deadline:
                        keys = worker.keys
                        self.restarts += 1
                        worker.restart()
                        for index in keys:
                            finish(
                                index,
                                error_result(names[index], timeout_error(self.file_timeout), self.config),
                            )
        finally:  # stopped part-way: workers still holding files are stopped (restarted when next needed)
            for worker in self._workers:
                if worker.keys:
                    worker.kill()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers(files: int) -> int:
    """`scan`'s default: every core this process may use when there is more than one file, else 1."""
    return usable_cores() if files > 1 else 1
