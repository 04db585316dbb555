"""`pixelsleuth report`: HTML reports from the results store, and the `scan --report` hooks.

Example:
    >>> records = [{"path": "/a/x.png", "sha256": "abcdef" + "0" * 58},
    ...            {"path": "/b/y.png", "sha256": "1" * 64}]
    >>> chosen, unmatched = select_records(records, ["abcdef", "/nowhere"])
    >>> [record["path"] for record in chosen], unmatched
    (['/a/x.png'], ['/nowhere'])
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from pixelsleuth.errors import UsageError
from pixelsleuth.intake import IntakeLimits
from pixelsleuth.outputs.report import ReportOptions, ReportWriter, write_reports
from pixelsleuth.outputs.report.record_view import image_path
from pixelsleuth.outputs.store import ResultStore, default_store_path

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
_SHA_PREFIX = re.compile(r"[0-9a-fA-F]{6,64}")


def _absolute(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _matches(record: dict[str, Any], pattern: str) -> bool:
    sha256 = str(record.get("sha256") or "")
    if _SHA_PREFIX.fullmatch(pattern) and sha256.startswith(pattern.lower()):
        return True
    path = image_path(record)
    if not path:
        return False
    wanted, have = _absolute(pattern), _absolute(path)
    return have == wanted or have.startswith(wanted.rstrip(os.sep) + os.sep)


def select_records(
    records: Iterable[dict[str, Any]], patterns: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[str]]:
    """The newest record of each file (by SHA-256, else path), keeping those that match a pattern.

    A pattern is a file or folder as scanned (a folder matches everything under it) or a SHA-256 prefix
    of at least 6 hex digits. With no patterns every record is kept. Returns the records in store order
    and the patterns that matched nothing.
    """
    newest: dict[str, dict[str, Any]] = {}
    for record in records:  # store order: a later record of the same file replaces an earlier one
        key = str(record.get("sha256") or f"path:{record.get('path')}")
        newest.pop(key, None)
        newest[key] = record
    if not patterns:
        return list(newest.values()), []
    used: set[str] = set()
    chosen = []
    for record in newest.values():
        hits = [pattern for pattern in patterns if _matches(record, pattern)]
        used.update(hits)
        if hits:
            chosen.append(record)
    return chosen, [pattern for pattern in patterns if pattern not in used]


def report_command(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for index.html and one page per image (created).")
    ],
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only the results of these files or folders (as they were scanned), or SHA-256 prefixes "
            "(6+ hex digits). Default: every result in the store."
        ),
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="SQLite results store to read.")] = None,
    version: Annotated[
        str | None, typer.Option("--analysis-version", help="Only results of this analysis version.")
    ] = None,
) -> None:
    """Write self-contained HTML reports of stored results: a page per image and an index."""
    err = Console(stderr=True)
    store_path = store or default_store_path()
    if not Path(store_path).exists():
        err.print(Text(f"no results store at {store_path}", style="red"))
        raise typer.Exit(EXIT_USAGE)
    with ResultStore(store_path) as result_store:
        records, unmatched = select_records(result_store.iter_records(version), paths or ())
    for pattern in unmatched:
        err.print(Text(f"no stored result matches {pattern!r}", style="yellow"))
    if not records:
        err.print(Text(f"no results to report in {store_path}", style="red"))
        raise typer.Exit(EXIT_USAGE)
    try:
        written = write_reports(records, output)
    except OSError as exc:
        err.print(Text(f"cannot write reports to {output}: {exc.strerror or exc}", style="red"))
        raise typer.Exit(EXIT_USAGE) from None
    for sentence in written.failures:
        err.print(Text(sentence, style="red"))
    err.print(f"{len(written.pages)} report page(s) of {len(records)} result(s) in {output}")
    if written.index is not None:
        sys.stdout.write(f"{written.index}\n")
    raise typer.Exit(EXIT_SOME_FAILED if written.failures else EXIT_OK)


def open_scan_reports(folder: Path, limits: IntakeLimits) -> ReportWriter:
    """The report writer of `scan --report` (images read with the scan's limits).

    Raises:
        UsageError: the folder cannot be created.
    """
    try:
        return ReportWriter(folder, ReportOptions(limits=limits))
    except OSError as exc:
        raise UsageError(f"cannot write reports to {folder}: {exc.strerror or exc}") from None


def finish_scan_reports(reports: ReportWriter, err: Console) -> bool:
    """Write the index of `scan --report` and tell what failed; True when every page was written."""
    reports.finish()
    for sentence in reports.written.failures:
        err.print(Text(sentence, style="red"))
    if reports.written.index is not None:
        err.print(f"reports: {reports.written.index}")
    return not reports.written.failures
