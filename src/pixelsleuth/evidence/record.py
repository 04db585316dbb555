"""The one result type every evidence source returns, whatever it looked at."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PointsTo = Literal["ai-generated", "manipulated", "authentic", "none"]
POINTS_TO: tuple[str, ...] = ("ai-generated", "manipulated", "authentic", "none")


@dataclass(frozen=True)
class Evidence:
    """One finding about one image.

    Attributes:
        source: which analysis produced it, e.g. "c2pa", "exif", "xmp", "generator-text",
            "watermark", "camera-consistency".
        finding: one plain sentence for a person ("Content Credentials say the image was made by
            Adobe Firefly").
        points_to: what the finding argues for.
        strength: how strongly, in [0, 1]; 0 for purely informative findings.
        detail: a longer explanation, optional.
        data: machine-readable facts behind the finding (JSON-serialisable).
    """

    source: str
    finding: str
    points_to: PointsTo = "none"
    strength: float = 0.0
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.points_to not in POINTS_TO:
            raise ValueError(f"points_to must be one of {POINTS_TO}, got {self.points_to!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {self.strength}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
