"""Batch scanning: analyse many files, store each result the moment it exists, skip what is done."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixelsleuth.analysis import Analysis
from pixelsleuth.outputs.store import FileStamp, ResultStore
from pixelsleuth.pipeline import Analyzer


@dataclass(frozen=True)
class ScanItem:
    analysis: Analysis
    cached: bool  # True when the result came from the store instead of a new analysis


def scan(
    paths: list[Path], analyzer: Analyzer, store: ResultStore | None = None, *, rescan: bool = False
) -> Iterator[ScanItem]:
    """Analyse each path in order, yielding results as they are finished.

    With a store, a file already analysed by the same analysis version (same absolute path, size
    and modification time) is not analysed again, and every new result is committed before it is yielded.
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
        if store is not None and analysis.sha256 is not None:
            store.put(analysis, version, stamp=stamp)
        yield ScanItem(analysis, cached=False)
