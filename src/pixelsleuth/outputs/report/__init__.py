"""Self-contained HTML reports: one page per analysis and an index for a batch.

Every page is a single file: CSS, JavaScript and images (data: URIs) are inline and nothing is loaded
from anywhere else, so a report can be mailed, archived or opened offline. Every string that came from
an image file is escaped (Jinja2 autoescaping), and a Content-Security-Policy lets only the page's own
script run.

Example:
    >>> from pixelsleuth.outputs.report import render_image_report
    >>> record = {"path": "a.png", "sha256": "ab" * 32, "verdict": "inconclusive", "evidence": []}
    >>> "<!doctype html>" in render_image_report(record, None)
    True
"""

from pixelsleuth.outputs.report.batch_report import BatchRow, render_batch_report
from pixelsleuth.outputs.report.image_report import render_image_report
from pixelsleuth.outputs.report.visuals import ImageVisuals, ReportOptions, build_visuals
from pixelsleuth.outputs.report.writer import ReportWriter, WrittenReports, report_filename, write_reports

__all__ = [
    "BatchRow",
    "ImageVisuals",
    "ReportOptions",
    "ReportWriter",
    "WrittenReports",
    "build_visuals",
    "render_batch_report",
    "render_image_report",
    "report_filename",
    "write_reports",
]
