"""Analyse files in a separate worker process, so no single file can stall or crash a batch.

The worker builds its own `Analyzer` once and then analyses one path at a time. The parent waits for
each result at most `file_timeout` seconds; a worker that takes longer is killed and replaced, and the
file gets a typed `timeout` error. A worker that dies (out of memory, a crash inside a native decoder)
costs only the file it was working on: that file gets an `analysis_crashed` error and the batch goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import AnalysisCrashError, AnalysisTimeoutError, PixelsleuthError, UsageError
from pixelsleuth.hashing import file_sha256
from pixelsleuth.pipeline import AnalyzerConfig

DEFAULT_FILE_TIMEOUT = 60.0
# Building the analyzer imports torch and loads the detectors' weights: seconds, never minutes.
_STARTUP_TIMEOUT = 600.0
STOP_GRACE = 2.0


def plugin_modules(config: AnalyzerConfig) -> tuple[str, ...]:
    """Modules outside pixelsleuth that registered a detector the config names.

    A worker is a fresh process: it must import them too before it can create those detectors. Only
    registrations already made in this process count (the registry is not imported for this).
    """
    registry = sys.modules.get("pixelsleuth.detectors.registry")
    if registry is None:
        return ()
    modules = []
    for spec in config.detectors:
        factory = registry._REGISTRY.get(spec.name)
        module = getattr(factory, "__module__", "") or ""
        if module and not module.startswith("pixelsleuth.") and module != "__main__":
            modules.append(module)
    return tuple(dict.fromkeys(modules))


def quiet_child() -> None:
    """What every worker process does first: leave Ctrl-C to the parent, keep stdout for its output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout carries the parent's JSON Lines only


def start_failure(exc: BaseException) -> dict[str, str]:
    """What a worker that could not start reports to its parent: a typed error with a sentence."""
    if isinstance(exc, PixelsleuthError):
        return exc.to_dict()
    reason = str(exc).strip("'\"") or "no reason given"
    return {"type": "internal_error", "message": f"the analysis engine could not start: {reason}"}


def _worker_main(
    connection: Connection, config: AnalyzerConfig, plugins: tuple[str, ...], threads: int | None = None
) -> None:
    """The worker's loop: build the analyzer, then answer each path with its Analysis."""
    quiet_child()
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from pixelsleuth.pipeline import Analyzer

    try:
        for module in plugins:
            importlib.import_module(module)
        analyzer = Analyzer(config)
    except Exception as exc:  # reported to the parent, which cannot scan without an engine
        connection.send(("failed", start_failure(exc)))
        return
    connection.send(("ready", {"torch_threads": torch.get_num_threads()}))
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        connection.send(("done", analyzer.analyze(path)))


def timeout_error(seconds: float) -> AnalysisTimeoutError:
    """The error of a file that overran its time budget."""
    return AnalysisTimeoutError(
        f"the analysis took longer than the per-file budget of {seconds:g} seconds "
        "and was stopped; raise --file-timeout to give it more time"
    )


def crash_error() -> AnalysisCrashError:
    """The error of a file whose analysing process died."""
    return AnalysisCrashError(
        "the process analysing this file stopped unexpectedly (out of memory, or a crash in an "
        "image decoder); the file was skipped"
    )


def error_result(path: str, error: PixelsleuthError, config: AnalyzerConfig) -> Analysis:
    """The result that stands for a file that could not be analysed."""
    sha256 = file_sha256(path, max_bytes=config.limits.max_file_bytes)
    return Analysis(path=path, sha256=sha256, verdict="error", error=error.to_dict())


class WorkerProcess:
    """One child process, its pipe, and the job it holds (the keys it works on and their deadline)."""

    def __init__(self, context: Any, target: Any, args: tuple, name: str) -> None:
        self._context, self._target, self._args, self._name = context, target, args, name
        self.process: Any = None
        self.connection: Connection | None = None
        self.keys: list[int] = []
        self.deadline = 0.0
        self.info: Any = None

    def start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=self._target, args=(child_end, *self._args), name=self._name, daemon=True
        )
        process.start()
        child_end.close()
        self.process, self.connection = process, parent_end

    def await_ready(self) -> None:
        assert self.connection is not None
        if not self.connection.poll(_STARTUP_TIMEOUT):
            self.kill()
            raise UsageError("the analysis engine did not start within 10 minutes")
        try:
            kind, payload = self.connection.recv()
        except (EOFError, OSError):
            self.kill()
            raise UsageError("the analysis engine stopped while starting (out of memory?)") from None
        if kind == "failed":
            self.kill()
            raise UsageError(payload["message"])
        self.info = payload

    def restart(self) -> None:
        self.kill()
        self.start()
        self.await_ready()

    def give(self, keys: list[int], payload: Any, seconds: float) -> None:
        if self.connection is None:  # stopped when a scan was left part-way
            self.restart()
        assert self.connection is not None
        self.keys, self.deadline = keys, time.monotonic() + seconds
        self.connection.send(payload)

    def kill(self) -> None:
        self.keys = []
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
            self.process = None

    def ask_to_stop(self) -> None:
        if self.connection is not None and self.process is not None:
            with contextlib.suppress(OSError):
                self.connection.send(None)


class IsolatedAnalyzer:
    """An `Analyzer` in a worker process, with a per-file time budget.

    Same `version` and `analyze(path)` as `Analyzer`; `close()` (or a `with` block) stops the worker.
    `threads` sets the worker's torch threads (default: torch's own, one per core); give each of several
    workers that run at once its share of the cores, or their threads fight over them (measured: 5.5x
    slower per analysis with two workers of two threads each on 2 cores).

    Example:
        >>> with IsolatedAnalyzer(AnalyzerConfig(), file_timeout=60) as analyzer:  # doctest: +SKIP
        ...     analyzer.analyze("photo.jpg").verdict
        'inconclusive'
    """

    def __init__(
        self,
        config: AnalyzerConfig,
        *,
        file_timeout: float = DEFAULT_FILE_TIMEOUT,
        threads: int | None = None,
    ) -> None:
        if file_timeout <= 0:
            raise UsageError("the per-file time budget must be a positive number of seconds")
        if threads is not None and threads < 1:
            raise UsageError(f"a worker needs at least one thread, got {threads}")
        self.config = config
        self.file_timeout = float(file_timeout)
        context = multiprocessing.get_context("spawn")  # never fork a process that runs torch
        self._worker = WorkerProcess(
            context, _worker_main, (config, plugin_modules(config), threads), "pixelsleuth-worker"
        )
        self.restarts = 0
        self._start()

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def torch_threads(self) -> int | None:
        """The worker's torch threads, as it reported when it started (None before it has)."""
        info = self._worker.info
        return info.get("torch_threads") if isinstance(info, dict) else None

    def __enter__(self) -> IsolatedAnalyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        self._worker.start()
        self._worker.await_ready()

    def analyze(self, source: str | Path) -> Analysis:
        """Analyse one file in the worker; a timeout or a dead worker becomes a typed error result."""
        path = os.fspath(source)
        if self._worker.connection is None:
            self._start()
        connection = self._worker.connection
        assert connection is not None
        try:
            connection.send(path)
            if connection.poll(self.file_timeout):
                kind, analysis = connection.recv()
                if kind == "done":
                    return analysis
            else:
                return self._failed(path, timeout_error(self.file_timeout))
        except (EOFError, OSError, BrokenPipeError):
            pass
        return self._failed(path, crash_error())

    def _failed(self, path: str, error: PixelsleuthError) -> Analysis:
        self._worker.kill()
        self.restarts += 1
        return error_result(path, error, self.config)

    def close(self) -> None:
        """Ask the worker to finish, and kill it if it does not within a moment."""
        self._worker.ask_to_stop()
        if self._worker.process is not None:
            self._worker.process.join(STOP_GRACE)
        self._worker.kill()
