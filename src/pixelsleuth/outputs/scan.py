"""Batch scanning: analyse many files, store each result the moment it exists, skip what is done."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelsleuth.analysis import Analysis
from pixelsleuth.outputs.store import ResultStore
from pixelsleuth.pipeline import Analyzer


@dataclass(frozen=True)
class ScanItem:
    analysis: Analysis
    cached: bool  # True when the result came from the store instead of a new analysis


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def scan(
    paths: list[Path], analyzer: Analyzer, store: ResultStore | None = None, *, rescan: bool = False
) -> Iterator[ScanItem]:
    """Analyse each path in order, yielding results as they are finished.

    With a store, a file already analysed by the same analysis version (same path, size and
    modification time) is not analysed again, and every new result is committed before it is yielded.
    """
    version = analyzer.version
    for path in paths:
        key = os.fspath(path)
        stat = _stat(path)
        if store is not None and not rescan and stat is not None:
            known = store.lookup_file(key, stat[0], stat[1], version)
            if known is not None:
                known.path = key
                yield ScanItem(known, cached=True)
                continue
        analysis = analyzer.analyze(path)
        if store is not None and analysis.sha256 is not None:
            size, mtime_ns = stat if stat is not None else (None, None)
            store.put(analysis, version, size=size, mtime_ns=mtime_ns)
        yield ScanItem(analysis, cached=False)
