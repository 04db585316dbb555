"""Writing a batch of reports: one page per result as it arrives, and the index at the end.

A page that cannot be made (an unreadable record, a full disk, a bug) is counted and reported, its row
stays in the index without a link, and the other pages go on: making reports never stops a batch.

Example:
    >>> report_filename({"path": "/x/My photo (1).JPG", "sha256": "0123456789abcdef" * 4})
    '0123456789abcdef-My-photo-1'
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelsleuth.localization.render import output_stem
from pixelsleuth.outputs.report import record_view as view
from pixelsleuth.outputs.report.batch_report import BatchRow, render_batch_report
from pixelsleuth.outputs.report.image_report import render_image_report
from pixelsleuth.outputs.report.visuals import ReportOptions, build_visuals

INDEX = "index.html"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HEX = re.compile(r"[0-9a-f]{16,}")
_MAX_STEM = 48


def report_filename(record: dict[str, Any]) -> str:
    """A safe, content-named stem for a result's page: 16 hex digits of its SHA-256 and the file's stem.

    Only ASCII letters, digits, ``-`` and ``_`` are kept, so no name can leave the report folder or need
    escaping in a link. A result without a SHA-256 (an unreadable file) is named after its path's digest.
    """
    sha256 = str(record.get("sha256") or "").lower()
    if not _HEX.fullmatch(sha256):
        sha256 = hashlib.sha256(str(record.get("path") or "").encode("utf-8", "replace")).hexdigest()
    stem = Path(view.file_name(record)).stem
    safe = _UNSAFE.sub("-", stem).strip("-")[:_MAX_STEM].strip("-") or "image"
    return f"{sha256[:16]}-{safe}"


def _write_text(target: Path, text: str) -> None:
    """Write a file whole or not at all (a half-written page never replaces a good one)."""
    partial = target.with_name(target.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"an internal error ({type(exc).__name__}); please report it"


@dataclass
class WrittenReports:
    """What a batch of reports produced."""

    index: Path | None
    pages: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one sentence per page (or index) not written


class ReportWriter:
    """Writes each result's page as it comes (`add`) and the index when the batch is done (`finish`).

    Example:
        >>> import tempfile
        >>> writer = ReportWriter(tempfile.mkdtemp())
        >>> page = writer.add({"path": "gone.png", "sha256": "ab" * 32, "verdict": "inconclusive"})
        >>> page.name, writer.finish().name
        ('abababababababab-gone.html', 'index.html')
    """

    def __init__(self, folder: str | Path, options: ReportOptions | None = None) -> None:
        """Raises OSError when the folder cannot be created."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.options = options or ReportOptions()
        self.rows: list[BatchRow] = []
        self.written = WrittenReports(index=None)
        self._taken: set[str] = {Path(INDEX).stem}

    def add(self, record: dict[str, Any]) -> Path | None:
        """Write the page of one result; returns its path, or None (the failure is recorded). Never raises."""
        shown = str(record.get("path") or record.get("sha256") or "a result")
        try:
            name = output_stem(self.folder, report_filename(record), self._taken) + ".html"
            visuals = build_visuals(record, view.image_path(record), self.options)
            html = render_image_report(record, None, visuals=visuals, index_href=INDEX)
            target = self.folder / name
            _write_text(target, html)
        except Exception as exc:  # a report must never stop the batch
            logging.getLogger("pixelsleuth").warning("report of %s failed: %r", shown, exc)
            sentence = f"the report of {shown} could not be written: {_reason(exc)}"
            self.written.failures.append(sentence)
            with contextlib.suppress(Exception):  # not even a row: the failure sentence is all there is
                self.rows.append(BatchRow.from_record(record, None, note="no report: " + _reason(exc)))
            return None
        self.rows.append(BatchRow.from_record(record, name, visuals.thumbnail_uri))
        self.written.pages.append(target)
        return target

    def finish(self, title: str = "pixelsleuth batch report") -> Path | None:
        """Write the index of every result added; returns its path, or None (recorded). Never raises."""
        target = self.folder / INDEX
        try:
            _write_text(target, render_batch_report(self.rows, title=title))
        except Exception as exc:
            logging.getLogger("pixelsleuth").warning("report index failed: %r", exc)
            self.written.failures.append(f"the report index {target} could not be written: {_reason(exc)}")
            return None
        self.written.index = target
        return target


def write_reports(
    records: Iterable[dict[str, Any]], out_dir: str | Path, *, options: ReportOptions | None = None
) -> WrittenReports:
    """Write a page for every record and the index into `out_dir` (created if needed).

    Raises OSError only when `out_dir` cannot be created; every other failure is in the result.
    """
    writer = ReportWriter(out_dir, options)
    for record in records:
        writer.add(record)
    writer.finish()
    return writer.written
