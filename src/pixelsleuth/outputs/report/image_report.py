"""One self-contained HTML page per analysis: the verdict and why, the image with its maps, the evidence.

Example:
    >>> record = {"path": "x.png", "sha256": "ab" * 32, "verdict": "error",
    ...           "error": {"type": "truncated_image", "message": "truncated PNG: the file ends early"}}
    >>> "truncated PNG: the file ends early" in render_image_report(record, None)
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelsleuth import __version__
from pixelsleuth.outputs.report import record_view as view
from pixelsleuth.outputs.report.page import render_page
from pixelsleuth.outputs.report.visuals import ImageVisuals, ReportOptions, build_visuals


def render_image_report(
    record: dict[str, Any],
    image_path: str | Path | None,
    *,
    options: ReportOptions | None = None,
    visuals: ImageVisuals | None = None,
    index_href: str | None = None,
) -> str:
    """The HTML report of one `pixelsleuth.analysis/1` record.

    Args:
        record: the result as `Analysis.to_dict()` or the store gives it (with `analysis_version`).
        image_path: the analysed file, read again for the picture, maps and spectrum; None, a missing
            file or one whose SHA-256 differs from the record's gives a report without them.
        options: what to compute from the image (see `ReportOptions`).
        visuals: pictures already computed by `build_visuals` (then `image_path` is not read).
        index_href: relative link to the batch index, if there is one.

    Returns:
        A complete HTML document that loads nothing from anywhere.
    """
    if visuals is None:
        visuals = build_visuals(record, image_path, options)
    error = record.get("error") if isinstance(record.get("error"), dict) else None
    is_error = record.get("verdict") == "error" or error is not None
    point = record.get("operating_point")
    narration = record.get("narration") if isinstance(record.get("narration"), dict) else None
    width, height = record.get("width"), record.get("height")
    calibrated = record.get("decided_by") != "evidence-combination"  # else the score is no probability
    return render_page(
        "image.html.j2",
        "image.js",
        verdict=view.verdict_view(record),
        score=view.score_text(record.get("score"), probability=calibrated),
        score_meaning=view.score_meaning(record.get("decided_by")),
        calibrated=calibrated,
        name=view.file_name(record),
        path=str(record.get("path") or "(no path)"),
        sha256=str(record.get("sha256") or "not recorded (the file could not be read)"),
        format=str(record.get("format") or ""),
        dimensions=f"{width} x {height} pixels" if width and height else "",
        is_error=is_error,
        error_type=str((error or {}).get("type") or "error"),
        error_message=str((error or {}).get("message") or "The image could not be analysed."),
        decided_by=view.decided_by_text(record.get("decided_by")),
        operating_point_label=str(point.get("label") or "") if isinstance(point, dict) else "",
        operating_point_rows=view.operating_point_rows(point),
        explanation=str(record.get("explanation") or ""),
        narration=str((narration or {}).get("text") or ""),
        narration_model=str((narration or {}).get("model") or ""),
        narration_error=_narration_error(narration),
        visuals=visuals,
        boxes=view.region_boxes(record) if visuals.available else [],
        evidence=view.evidence_rows(record),
        tables=view.provenance_tables(record),
        versions=view.version_rows(record, __version__),
        index_href=index_href,
        pixelsleuth_version=__version__,
    )


def _narration_error(narration: dict[str, Any] | None) -> str:
    """The sentence of a narration that was asked for and failed ("" when none failed)."""
    error = (narration or {}).get("error")
    if not isinstance(error, dict) or (narration or {}).get("text"):
        return ""
    return str(error.get("message") or "the narration failed")
