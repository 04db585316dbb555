"""Analyses for the service: N threads, each driving its own `IsolatedAnalyzer` worker process.

The event loop never runs an analysis: it awaits `AnalysisPool.analyze`, which hands the file to a
thread that waits on its worker process (with the per-file time budget). Requests beyond the free
workers wait in the executor's queue; `queued` and `in_flight` say how many.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pixelsleuth.analysis import Analysis
from pixelsleuth.evidence import PIXEL_SOURCES, PROVENANCE_SOURCES
from pixelsleuth.intake import IntakeLimits
from pixelsleuth.outputs.engine import usable_cores
from pixelsleuth.outputs.service.config import ServiceConfig
from pixelsleuth.outputs.worker import IsolatedAnalyzer
from pixelsleuth.pipeline import AnalyzerConfig, default_detector_specs, default_fusion_card


def analyzer_config(config: ServiceConfig, *, localize: bool) -> AnalyzerConfig:
    """The analysis a request gets: the service's detectors and limits, with or without localization."""
    sources = (*PROVENANCE_SOURCES, *PIXEL_SOURCES, *(("localization",) if localize else ()))
    detectors = default_detector_specs() if config.default_detectors else ()
    return AnalyzerConfig(
        limits=IntakeLimits(max_pixels=config.max_pixels, max_file_bytes=config.max_upload_bytes),
        sources=sources,
        detectors=detectors,
        fusion=default_fusion_card() if config.default_detectors else None,
    )


class AnalysisPool:
    """Runs analyses off the event loop, at most `workers` at a time, each in a worker process."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        # Each of the `workers` analyses that run at once gets its share of the cores.
        self.threads = max(1, usable_cores() // max(1, config.workers))
        self._configs = {flag: analyzer_config(config, localize=flag) for flag in (False, True)}
        self._executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="analysis")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._analyzers: list[IsolatedAnalyzer] = []
        self.queued = 0
        self.in_flight = 0
        self.completed = 0

    def version(self, *, localize: bool) -> str:
        return self._configs[localize].version

    def _analyzer(self, localize: bool) -> IsolatedAnalyzer:
        mine: dict[bool, IsolatedAnalyzer] = self._local.__dict__.setdefault("analyzers", {})
        if localize not in mine:
            timeout = self.config.localize_timeout_s if localize else self.config.analysis_timeout_s
            analyzer = IsolatedAnalyzer(self._configs[localize], file_timeout=timeout, threads=self.threads)
            with self._lock:
                self._analyzers.append(analyzer)
            mine[localize] = analyzer
        return mine[localize]

    def _run(self, path: str, localize: bool) -> Analysis:
        with self._lock:
            self.queued -= 1
            self.in_flight += 1
        try:
            return self._analyzer(localize).analyze(path)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.completed += 1

    async def analyze(self, path: str | Path, *, localize: bool) -> Analysis:
        """Analyse one file in a worker process; never blocks the event loop."""
        with self._lock:
            self.queued += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, str(path), localize)

    def close(self) -> None:
        """Stop every worker process (queued work is dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            analyzers, self._analyzers = self._analyzers, []
        for analyzer in analyzers:
            analyzer.close()
