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
_STOP_GRACE = 2.0


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


def _worker_main(connection: Connection, config: AnalyzerConfig, plugins: tuple[str, ...]) -> None:
    """The worker's loop: build the analyzer, then answer each path with its Analysis."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stdout carries the parent's JSON Lines only
    from pixelsleuth.pipeline import Analyzer

    try:
        for module in plugins:
            importlib.import_module(module)
        analyzer = Analyzer(config)
    except PixelsleuthError as exc:
        connection.send(("failed", exc.to_dict()))
        return
    except Exception as exc:  # reported to the parent, which cannot scan without an engine
        connection.send(("failed", {"type": "internal_error", "message": _startup_failure(exc)}))
        return
    connection.send(("ready", None))
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        if path is None:
            return
        connection.send(("done", analyzer.analyze(path)))


def _startup_failure(exc: BaseException) -> str:
    reason = str(exc).strip("'\"") or "no reason given"
    return f"the analysis engine could not start: {reason}"


class IsolatedAnalyzer:
    """An `Analyzer` in a worker process, with a per-file time budget.

    Same `version` and `analyze(path)` as `Analyzer`; `close()` (or a `with` block) stops the worker.

    Example:
        >>> with IsolatedAnalyzer(AnalyzerConfig(), file_timeout=60) as analyzer:  # doctest: +SKIP
        ...     analyzer.analyze("photo.jpg").verdict
        'inconclusive'
    """

    def __init__(self, config: AnalyzerConfig, *, file_timeout: float = DEFAULT_FILE_TIMEOUT) -> None:
        if file_timeout <= 0:
            raise UsageError("the per-file time budget must be a positive number of seconds")
        self.config = config
        self.file_timeout = float(file_timeout)
        self._context = multiprocessing.get_context("spawn")  # never fork a process that runs torch
        self._process: Any = None
        self._connection: Connection | None = None
        self.restarts = 0
        self._start()

    @property
    def version(self) -> str:
        return self.config.version

    def __enter__(self) -> IsolatedAnalyzer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self.config, plugin_modules(self.config)),
            name="pixelsleuth-worker",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._connection = process, parent_end
        if not parent_end.poll(_STARTUP_TIMEOUT):
            self._kill()
            raise UsageError("the analysis engine did not start within 10 minutes")
        try:
            kind, payload = parent_end.recv()
        except (EOFError, OSError):
            self._kill()
            raise UsageError("the analysis engine stopped while starting (out of memory?)") from None
        if kind == "failed":
            self._kill()
            raise UsageError(payload["message"])

    def _kill(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
            self._process = None

    def analyze(self, source: str | Path) -> Analysis:
        """Analyse one file in the worker; a timeout or a dead worker becomes a typed error result."""
        path = os.fspath(source)
        if self._connection is None:
            self._start()
        assert self._connection is not None
        try:
            self._connection.send(path)
            if self._connection.poll(self.file_timeout):
                kind, analysis = self._connection.recv()
                if kind == "done":
                    return analysis
            else:
                error: PixelsleuthError = AnalysisTimeoutError(
                    f"the analysis took longer than the per-file budget of {self.file_timeout:g} seconds "
                    "and was stopped; raise --file-timeout to give it more time"
                )
                return self._failed(path, error)
        except (EOFError, OSError, BrokenPipeError):
            pass
        error = AnalysisCrashError(
            "the process analysing this file stopped unexpectedly (out of memory, or a crash in an "
            "image decoder); the file was skipped"
        )
        return self._failed(path, error)

    def _failed(self, path: str, error: PixelsleuthError) -> Analysis:
        self._kill()
        self.restarts += 1
        sha256 = file_sha256(path, max_bytes=self.config.limits.max_file_bytes)
        return Analysis(path=path, sha256=sha256, verdict="error", error=error.to_dict())

    def close(self) -> None:
        """Ask the worker to finish, and kill it if it does not within a moment."""
        if self._connection is not None and self._process is not None:
            with contextlib.suppress(OSError):
                self._connection.send(None)
            self._process.join(_STOP_GRACE)
        self._kill()
