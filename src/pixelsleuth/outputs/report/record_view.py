"""A `pixelsleuth.analysis/1` record as the plain values a report page shows (pure functions, no HTML).

Every key is read with `.get`: results stored by older versions lack the newer ones (explanation,
decided_by, operating_point, narration, analysis_version). Text is returned as it is; the templates
escape it.

Example:
    >>> verdict_view({"verdict": "manipulated"}).title
    'Manipulated'
    >>> flatten({"camera": {"make": "Canon"}, "gps": False})
    [('camera.make', 'Canon'), ('gps', 'no')]
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pixelsleuth.intake.text import path_from_bytes

PROVENANCE_SOURCES = ("c2pa", "exif", "xmp", "iptc", "generator-text", "watermark", "camera-consistency")
MAX_TABLE_ROWS = 40
MAX_LIST_ITEMS = 2  # entries of a list of records shown in a table (all are in the evidence data)
MAX_VALUE_CHARS = 400
MAX_DATA_CHARS = 20_000


@dataclass(frozen=True)
class VerdictView:
    key: str
    title: str
    words: str
    colour: str  # CSS colour of the verdict banner (white text reads on it)


VERDICTS: dict[str, VerdictView] = {
    "ai-generated": VerdictView(
        "ai-generated", "AI-generated", "Probably made by a generative model.", "#b71c1c"
    ),
    "manipulated": VerdictView(
        "manipulated", "Manipulated", "Probably edited: part of the image was changed.", "#c43e00"
    ),
    "authentic": VerdictView(
        "authentic", "Authentic", "The evidence points to an image straight from a camera.", "#1b5e20"
    ),
    "inconclusive": VerdictView(
        "inconclusive", "Inconclusive", "The evidence does not decide either way.", "#455a64"
    ),
    "error": VerdictView("error", "Error", "The image could not be analysed.", "#6a1b9a"),
}
VERDICT_ORDER = tuple(VERDICTS)

_DECIDED_BY = {
    "calibrated-score": "the calibrated score at its operating point",
    "conflict": "a conflict between strong findings",
    "evidence-combination": "the findings combined (no calibrated score was available)",
    "no-evidence": "no evidence either way",
}


@dataclass(frozen=True)
class EvidenceRow:
    source: str
    points_to: str
    colour: str
    strength: float
    percent: int  # strength as a bar width, 0..100
    finding: str
    detail: str
    data_json: str  # the machine-readable facts, pretty-printed (may be cut short)


@dataclass(frozen=True)
class Box:
    """A region from localization evidence, in the analysed image's pixels."""

    left: int
    top: int
    right: int
    bottom: int
    label: str


@dataclass(frozen=True)
class Table:
    title: str
    rows: list[tuple[str, str]]
    more: int = 0  # rows left out


def verdict_view(record: dict[str, Any]) -> VerdictView:
    verdict = str(record.get("verdict") or "inconclusive")
    return VERDICTS.get(verdict, VerdictView(verdict, verdict, "", "#455a64"))


def score_text(score: Any, *, probability: bool = True) -> str | None:
    """The score as a percentage ("96.3 %"; as "0.963" when it is not a probability), or None."""
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    return f"{100 * float(score):.1f} %" if probability else f"{float(score):.3f}"


def score_meaning(decided_by: Any) -> str:
    """What the score is, in words, as far as the record says."""
    if decided_by == "evidence-combination":
        return "an uncalibrated combination of the findings, not a probability"
    if decided_by == "calibrated-score":
        return "the calibrated probability that the image is not authentic"
    return "how likely the image is not authentic"


def decided_by_text(decided_by: Any) -> str:
    """How the verdict was reached, in words ("" when the result does not say)."""
    text = str(decided_by or "")
    if text.startswith("hard-evidence:"):
        return f"hard evidence from {text.split(':', 1)[1]}"
    return _DECIDED_BY.get(text, text)


def value_text(value: Any) -> str:
    """A value for a table cell: numbers to 4 significant digits, yes/no, lists joined, long text cut."""
    if value is None:
        text = "—"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list) and all(not isinstance(item, dict | list) for item in value):
        text = ", ".join(value_text(item) for item in value) or "—"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, text) for every leaf of nested dicts and lists of dicts (the first few of a list)."""
    rows: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) or (
                isinstance(value, list) and value and all(isinstance(item, dict) for item in value)
            ):
                rows.extend(flatten(value, name))
            else:
                rows.append((name, value_text(value)))
    elif isinstance(data, list):
        for index, value in enumerate(data[:MAX_LIST_ITEMS]):
            rows.extend(flatten(value, f"{prefix}[{index}]"))
        if len(data) > MAX_LIST_ITEMS:
            rows.append((prefix, f"… {len(data) - MAX_LIST_ITEMS} more"))
    else:
        rows.append((prefix or "value", value_text(data)))
    return rows


def evidence_items(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in record.get("evidence") or [] if isinstance(item, dict)]


def _strength(item: dict[str, Any]) -> float:
    value = item.get("strength")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def evidence_rows(record: dict[str, Any]) -> list[EvidenceRow]:
    """Every finding, those that point somewhere first, strongest first."""
    items = evidence_items(record)
    items.sort(key=lambda item: (item.get("points_to") == "none", -_strength(item)))
    rows = []
    for item in items:
        points_to = str(item.get("points_to") or "none")
        strength = min(max(_strength(item), 0.0), 1.0)
        data_json = json.dumps(item.get("data") or {}, indent=1, ensure_ascii=False)
        if len(data_json) > MAX_DATA_CHARS:
            data_json = data_json[:MAX_DATA_CHARS] + "\n… (cut short)"
        rows.append(
            EvidenceRow(
                source=str(item.get("source") or ""),
                points_to=points_to,
                colour=VERDICTS[points_to].colour if points_to in VERDICTS else "#607d8b",
                strength=strength,
                percent=round(100 * strength),
                finding=str(item.get("finding") or ""),
                detail=str(item.get("detail") or ""),
                data_json=data_json,
            )
        )
    return rows


def top_finding(record: dict[str, Any]) -> str:
    """The error sentence, or the strongest pointing finding, or the first informative one."""
    error = record.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    items = evidence_items(record)
    if not items:
        return "no evidence either way"
    best = max(items, key=lambda item: (item.get("points_to", "none") != "none", _strength(item)))
    return str(best.get("finding") or "")


def provenance_tables(record: dict[str, Any]) -> list[Table]:
    """One table per metadata or provenance finding that carries data."""
    tables = []
    for item in evidence_items(record):
        source = str(item.get("source") or "")
        data = item.get("data")
        if source not in PROVENANCE_SOURCES or not isinstance(data, dict) or not data:
            continue
        rows = flatten(data)
        tables.append(Table(source, rows[:MAX_TABLE_ROWS], max(0, len(rows) - MAX_TABLE_ROWS)))
    return tables


def operating_point_rows(point: Any) -> list[tuple[str, str]]:
    if not isinstance(point, dict):
        return []
    return [(str(key), value_text(value)) for key, value in point.items() if key != "label"]


def region_boxes(record: dict[str, Any]) -> list[Box]:
    """The regions of localization evidence (boxes with their confidence and the maps that agree)."""
    boxes = []
    for item in evidence_items(record):
        if item.get("source") != "localization":
            continue
        for region in (item.get("data") or {}).get("regions") or []:
            try:
                left, top, right, bottom = (int(region[key]) for key in ("left", "top", "right", "bottom"))
            except (KeyError, TypeError, ValueError):
                continue
            methods = ", ".join(str(name) for name in region.get("methods") or []) or "fused map"
            confidence = region.get("confidence")
            sure = f" (confidence {confidence:.2f})" if isinstance(confidence, int | float) else ""
            label = f"x {left}–{right}, y {top}–{bottom}: {methods}{sure}"
            boxes.append(Box(left, top, right, bottom, label))
    return boxes


def version_rows(record: dict[str, Any], pixelsleuth_version: str) -> list[tuple[str, str]]:
    """Which analysis and which models made the result, and which pixelsleuth drew the report."""
    rows = [
        ("analysis version", str(record.get("analysis_version") or "not recorded")),
        ("report made by", f"pixelsleuth {pixelsleuth_version}"),
        ("schema", str(record.get("schema") or "pixelsleuth.analysis/1")),
    ]
    for item in evidence_items(record):
        data = item.get("data") or {}
        if isinstance(data, dict) and data.get("weights_version"):
            rows.append((f"{item.get('source')} weights", str(data["weights_version"])))
    narration = record.get("narration")
    if isinstance(narration, dict) and narration.get("model"):
        rows.append(("narration model", str(narration["model"])))
    return rows


def image_path(record: dict[str, Any]) -> str | None:
    """The file system path of the analysed file (exact even when its name is not valid UTF-8)."""
    raw = record.get("path_bytes")
    if raw:
        try:
            return path_from_bytes(bytes.fromhex(raw))
        except ValueError:
            pass
    path = record.get("path")
    return os.fspath(path) if path else None


def file_name(record: dict[str, Any]) -> str:
    path = str(record.get("path") or "")
    return path.replace("\\", "/").rsplit("/", 1)[-1] or "(no file name)"
