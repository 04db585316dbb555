"""The per-image result record, schema `pixelsleuth.analysis/1` (see docs/schema.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pixelsleuth.evidence.record import Evidence

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "path": self.path,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "verdict": self.verdict,
            "score": None if self.score is None else round(float(self.score), 6),
            "evidence": [item.to_dict() for item in self.evidence],
            "error": self.error,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Analysis:
        if record.get("schema") != SCHEMA:
            raise ValueError(f"expected schema {SCHEMA!r}, got {record.get('schema')!r}")
        return cls(
            path=record["path"],
            sha256=record["sha256"],
            width=record["width"],
            height=record["height"],
            format=record["format"],
            verdict=record["verdict"],
            score=record["score"],
            evidence=[Evidence(**item) for item in record["evidence"]],
            error=record["error"],
        )

    @property
    def top_evidence(self) -> Evidence | None:
        """The strongest finding that points somewhere, or the first informative one."""
        if not self.evidence:
            return None
        return max(self.evidence, key=lambda item: (item.points_to != "none", item.strength))
