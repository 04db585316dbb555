"""The assessment as one self-contained HTML page: the source table, reliability diagrams, failure cases.

No network access from the page: the diagrams are inline SVG and the thumbnails data: URIs.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
from PIL import Image

from pixelsleuth.bench.assess import Assessment, SourceAssessment

THUMBNAIL = 128
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}.fail{display:inline-block;width:150px;margin:4px;
vertical-align:top;font-size:12px}.fail img{max-width:140px;max-height:140px;display:block}
h3{margin-top:1.6em}
"""


def thumbnail_uri(path: str, size: int = THUMBNAIL) -> str | None:
    """A small JPEG of the image file as a data: URI, or None when it cannot be read."""
    from pixelsleuth.outputs.report.assets import thumbnail_uri as encode_thumbnail

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale
            rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return encode_thumbnail(rgb, size)


def reliability_svg(rows: list[dict[str, float]], width: int = 220) -> str:
    """A reliability diagram: bars at each bin's share of positives, the diagonal for perfect calibration."""
    scale = width - 30
    parts = [
        f'<svg width="{width}" height="{width}" role="img" aria-label="reliability diagram">',
        f'<rect x="20" y="10" width="{scale}" height="{scale}" fill="#fafafa" stroke="#999"/>',
        f'<line x1="20" y1="{10 + scale}" x2="{20 + scale}" y2="10" stroke="#bbb" stroke-dasharray="4"/>',
    ]
    for row in rows:
        if not row["count"] or math.isnan(row["positive_rate"]):
            continue
        x = 20 + row["low"] * scale
        bar = row["positive_rate"] * scale
        wide = (row["high"] - row["low"]) * scale - 1
        parts.append(
            f'<rect x="{x:.1f}" y="{10 + scale - bar:.1f}" width="{wide:.1f}" '
            f'height="{bar:.1f}" fill="#4a7bd0" opacity=".75"><title>{row["count"]} images, mean p '
            f"{row['mean_probability']:.2f}, positive {row['positive_rate']:.2f}</title></rect>"
        )
    parts.append(f'<text x="20" y="{width - 2}" font-size="10">predicted probability →</text></svg>')
    return "".join(parts)


def _number(value: Any, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.1f}" if percent else f"{value:.3f}"


def _source_row(row: SourceAssessment) -> str:
    cells = [
        html.escape(row.source),
        _number(row.auc, True),
        _number(row.coverage, True),
        _number(row.tpr, True),
        _number(row.fpr, True),
        _number(row.precision, True),
        _number(row.weight),
        _number(row.ece),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _failures(row: SourceAssessment) -> str:
    cards = []
    for case in row.failures:
        uri = thumbnail_uri(case["path"])
        picture = (
            f'<img src="{uri}" alt="{html.escape(case["truth"])} image {html.escape(case["path"])}">'
            if uri
            else "<em>image not readable</em>"
        )
        cards.append(
            f'<div class="fail">{picture}{html.escape(case["truth"])} ({html.escape(case["subset"])}), '
            f"score {case['score']:.2f}<br>{html.escape(case['finding'][:160])}</div>"
        )
    return "".join(cards) or "<p>No image on the wrong side of 0.5.</p>"


def render_assessment(assessment: Assessment) -> str:
    """The whole page."""
    header = "".join(
        f"<th>{name}</th>"
        for name in ("source", "AUC", "coverage", "TPR", "FPR", "right when speaking", "weight", "ECE")
    )
    table = "".join(_source_row(row) for row in assessment.sources)
    subsets = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{values['n']}</td><td>{_number(values['auc'], True)}</td>"
        f"<td>{_number(values['tpr'], True)}</td><td>{_number(values['hard'], True)}</td></tr>"
        for name, values in assessment.subsets.items()
    )
    sections = []
    for row in assessment.sources:
        diagram = reliability_svg(row.reliability) if row.reliability else ""
        sections.append(f"<h3>{html.escape(row.source)}</h3>{diagram}<h4>Most wrong</h4>{_failures(row)}")
    counts = ", ".join(f"{count} {truth}" for truth, count in assessment.counts.items())
    point = html.escape(str(assessment.operating_point.get("label", "")))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>pixelsleuth assessment</title>"
        f"<style>{_STYLE}</style></head><body><h1>Evidence assessment</h1>"
        f"<p>{html.escape(assessment.dataset)}: {assessment.n} images ({counts}); verdict operating point "
        f"{point}; {len(assessment.unreadable)} could not be analysed.</p>"
        f"<table><tr>{header}</tr>{table}</table>"
        "<h2>Verdict per subset</h2><table><tr><th>subset</th><th>n</th><th>AUC vs genuine</th>"
        f"<th>TPR</th><th>decided by hard evidence</th></tr>{subsets}</table>"
        f"{''.join(sections)}</body></html>"
    )
