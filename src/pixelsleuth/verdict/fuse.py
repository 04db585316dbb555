"""Turn a list of evidence into one verdict and one score."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pixelsleuth.evidence.record import Evidence

VerdictLabel = Literal["ai-generated", "manipulated", "authentic", "inconclusive", "error"]
VERDICTS: tuple[str, ...] = ("ai-generated", "manipulated", "authentic", "inconclusive", "error")

# A side must reach this combined strength before it decides the verdict.
DECISIVE = 0.5
# Strength is capped below 1 so that one finding never yields an infinite log-odds.
_MAX_STRENGTH = 0.999


@dataclass(frozen=True)
class Verdict:
    label: VerdictLabel
    score: float | None  # probability-like score that the image is not authentic; None when nothing spoke
    combined: dict[str, float]  # noisy-OR strength per side: ai-generated, manipulated, authentic


def combined_strength(strengths: Iterable[float]) -> float:
    """Noisy-OR: the chance at least one of several independent findings is right."""
    missing = 1.0
    for strength in strengths:
        missing *= 1.0 - min(strength, _MAX_STRENGTH)
    return 1.0 - missing


def _log_odds(strength: float) -> float:
    # A finding of strength s is read as "s of the way from a coin flip to certainty".
    p = 0.5 + 0.5 * min(strength, _MAX_STRENGTH)
    return math.log(p / (1.0 - p))


def fuse(evidence: Iterable[Evidence]) -> Verdict:
    """Fuse evidence into a verdict.

    Within one source only the strongest finding per side counts. The score adds the log-odds of
    those findings (towards "not authentic" for ai-generated and manipulated findings, away from it
    for authentic ones). The label follows the strongest side whose combined
    strength reaches 0.5; a generative or manipulation finding outranks an authentic one of equal
    strength, since metadata that says "camera" is easy to forge. With no finding of any strength the
    verdict is "inconclusive" and the score is None.

    Example:
        >>> fuse([Evidence("c2pa", "made by AI", "ai-generated", 0.95)]).label
        'ai-generated'
    """
    # Findings of one source usually restate one event (a web re-save changes both the quantization
    # tables and the size), so per source and side only the strongest finding counts.
    strongest: dict[tuple[str, str], float] = {}
    for item in evidence:
        if item.points_to == "none" or item.strength <= 0.0:
            continue
        key = (item.source, item.points_to)
        strongest[key] = max(strongest.get(key, 0.0), item.strength)

    by_side: dict[str, list[float]] = {"ai-generated": [], "manipulated": [], "authentic": []}
    log_odds = 0.0
    for (_, side), strength in strongest.items():
        by_side[side].append(strength)
        log_odds += (-1.0 if side == "authentic" else 1.0) * _log_odds(strength)
    spoke = bool(strongest)
    combined = {side: combined_strength(values) for side, values in by_side.items()}
    if not spoke:
        return Verdict("inconclusive", None, combined)

    score = 1.0 / (1.0 + math.exp(-log_odds))
    ai, manipulated, authentic = combined["ai-generated"], combined["manipulated"], combined["authentic"]
    label: VerdictLabel = "inconclusive"
    if max(ai, manipulated) >= DECISIVE and max(ai, manipulated) >= authentic:
        label = "ai-generated" if ai >= manipulated else "manipulated"
    elif authentic >= DECISIVE and score < 0.5:
        label = "authentic"
    return Verdict(label, score, combined)
