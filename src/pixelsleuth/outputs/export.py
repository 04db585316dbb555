"""Export stored results as JSON Lines, CSV or Parquet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from pixelsleuth.analysis import Analysis

if TYPE_CHECKING:
    import pyarrow as pa

ExportFormat = Literal["jsonl", "csv", "parquet"]
EXPORT_FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")

# Flat columns for tabular formats; the full evidence list travels as a JSON string.
COLUMNS: tuple[str, ...] = (
    "path",
    "sha256",
    "analysis_version",
    "width",
    "height",
    "format",
    "verdict",
    "score",
    "explanation",
    "decided_by",
    "operating_point",
    "top_finding",
    "top_points_to",
    "top_strength",
    "error_type",
    "error_message",
    "evidence_json",
)


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One stored record as a flat row for CSV and Parquet."""
    evidence = record.get("evidence") or []
    top = Analysis.from_dict(record).top_evidence  # the same choice the table shows
    error = record.get("error") or {}
    return {
        "path": record.get("path"),
        "sha256": record.get("sha256"),
        "analysis_version": record.get("analysis_version"),
        "width": record.get("width"),
        "height": record.get("height"),
        "format": record.get("format"),
        "verdict": record.get("verdict"),
        "score": record.get("score"),
        "explanation": record.get("explanation", ""),
        "decided_by": record.get("decided_by", ""),
        "operating_point": (record.get("operating_point") or {}).get("label"),
        "top_finding": top.finding if top else None,
        "top_points_to": top.points_to if top else None,
        "top_strength": top.strength if top else None,
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "evidence_json": json.dumps(evidence, ensure_ascii=False),
    }


def arrow_schema() -> pa.Schema:
    """The Arrow types of `COLUMNS`: the flat columns of a Parquet export (pyarrow imported on use)."""
    import pyarrow as pa

    return pa.schema(
        [
            (name, pa.int64() if name in ("width", "height") else pa.float64())
            if name in ("width", "height", "score", "top_strength")
            else (name, pa.string())
            for name in COLUMNS
        ]
    )


def write_export(records: Iterable[dict[str, Any]], fmt: ExportFormat, out: BinaryIO) -> int:
    """Write records to a binary stream in `fmt`; return how many were written."""
    if fmt == "jsonl":
        count = 0
        for record in records:
            out.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
            count += 1
        return count
    rows = [flatten(record) for record in records]
    if fmt == "csv":
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        out.write(text.getvalue().encode("utf-8"))
        return len(rows)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=arrow_schema())
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        out.write(buffer.getvalue())
        return len(rows)
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
