"""Batch scanning: analyse many files, store each result the moment it exists, skip what is done."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import UnstorableResultError
from pixelsleuth.outputs.store import FileStamp, ResultStore


class PathAnalyzer(Protocol):
    """What a scan needs: `Analyzer` in this process, or `IsolatedAnalyzer` in a worker."""

    @property
    def version(self) -> str: ...

    def analyze(self, source: str | Path) -> Analysis: ...


@dataclass(frozen=True)
class ScanItem:
    analysis: Analysis
    cached: bool  # True when the result came from the store instead of a new analysis


def scan(
    paths: list[Path], analyzer: PathAnalyzer, store: ResultStore | None = None, *, rescan: bool = False
) -> Iterator[ScanItem]:
    """Analyse each path in order, yielding results as they are finished.

    With a store, a file already analysed by the same analysis version (same absolute path, size
    and modification time) is not analysed again, and every new result is committed before it is
    yielded; a result the store refuses is replaced by a stored `unstorable_result` error, so a
    re-run neither loses the file nor dies on it again.
    """
    version = analyzer.version
    for path in paths:
        stamp = FileStamp.of(path) if store is not None else None
        if store is not None and stamp is not None and not rescan:
            known = store.lookup_file(stamp, version)
            if known is not None:
                known.path = os.fspath(path)
                yield ScanItem(known, cached=True)
                continue
        analysis = analyzer.analyze(path)
        if store is not None:
            analysis = store_or_stand_in(store, analysis, version, stamp)
        yield ScanItem(analysis, cached=False)


def store_or_stand_in(
    store: ResultStore, analysis: Analysis, version: str, stamp: FileStamp | None
) -> Analysis:
    """Store `analysis`; if the store refuses it, store (and return) a typed error that stands in for it."""
    try:
        store.put(analysis, version, stamp=stamp)
        return analysis
    except (sqlite3.DataError, sqlite3.InterfaceError, ValueError, TypeError, OverflowError) as exc:
        reason = (
            "it holds values the store cannot represent"
            if not isinstance(exc, OverflowError)
            else ("it holds a number too large for the store")
        )
    error = UnstorableResultError(f"the result of this file could not be saved because {reason}")
    stand_in = Analysis(
        path=analysis.path,
        sha256=analysis.sha256,
        width=analysis.width,
        height=analysis.height,
        format=analysis.format,
        verdict="error",
        error=error.to_dict(),
    )
    store.put(stand_in, version, stamp=stamp)
    return stand_in
