"""The per-image result record, schema `pixelsleuth.analysis/1` (see docs/schema.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake.text import clean_text, display_path, path_bytes, path_from_bytes, path_is_text

SCHEMA = "pixelsleuth.analysis/1"


@dataclass
class Analysis:
    """What pixelsleuth concluded about one image, and why."""

    path: str | None
    sha256: str | None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    verdict: str = "inconclusive"
    score: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    error: dict[str, str] | None = None
    explanation: str = ""  # the verdict in words from its evidence (verdict/explain.py)
    # How the verdict was reached: "hard-evidence:<source>", "calibrated-score", "conflict" or "no-evidence".
    decided_by: str = ""
    operating_point: dict[str, Any] | None = None  # where the calibrated score turned into the verdict
    narration: dict[str, Any] | None = None  # optional language-model retelling (verdict/narrate.py)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data: always valid Unicode, finite numbers, lossless paths.

        A path that is not valid UTF-8 appears readably in ``path`` (undecodable bytes as ``\\xNN``)
        and exactly in ``path_bytes`` (hex of the file system's bytes).
        """
        record = {
            "schema": SCHEMA,
            "path": None if self.path is None else display_path(self.path),
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "verdict": self.verdict,
            "score": None if self.score is None else round(float(self.score), 6),
            "evidence": [item.to_dict() for item in self.evidence],
            "error": self.error,
            "explanation": self.explanation,
            "decided_by": self.decided_by,
            "operating_point": self.operating_point,
            "narration": self.narration,
        }
        if self.path is not None and not path_is_text(self.path):
            record["path_bytes"] = path_bytes(self.path).hex()
        return json_safe(record)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Analysis:
        if record.get("schema") != SCHEMA:
            raise ValueError(f"expected schema {SCHEMA!r}, got {record.get('schema')!r}")
        path = record["path"]
        if record.get("path_bytes"):
            path = path_from_bytes(bytes.fromhex(record["path_bytes"]))
        return cls(
            path=path,
            sha256=record["sha256"],
            width=record["width"],
            height=record["height"],
            format=record["format"],
            verdict=record["verdict"],
            score=record["score"],
            evidence=[Evidence(**item) for item in record["evidence"]],
            error=record["error"],
            # absent from results stored before they existed
            explanation=record.get("explanation", ""),
            decided_by=record.get("decided_by", ""),
            operating_point=record.get("operating_point"),
            narration=record.get("narration"),
        )

    @property
    def top_evidence(self) -> Evidence | None:
        """The strongest finding that points somewhere; when none does, the fused detector score (what a
        calibrated verdict then rests on), else the first informative finding."""
        if not self.evidence:
            return None
        return max(
            self.evidence,
            key=lambda item: (item.points_to != "none", item.strength, item.source == "fused-detectors"),
        )


def json_safe(value: Any) -> Any:
    """Data that `json.dumps` turns into valid UTF-8 JSON: strings cleaned of unencodable code points,
    NaN and infinities as None, tuples as lists, numpy scalars as Python numbers; anything else as text.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clean_text(value)[0]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {json_safe(str(key)): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    return clean_text(str(value))[0]
