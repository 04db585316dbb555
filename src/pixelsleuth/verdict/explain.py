"""A deterministic paragraph that explains a verdict from its evidence, strongest first.

The paragraph opens with the verdict and its probability and says how it was reached (hard evidence
alone, the calibrated score at its operating point, or a conflict), cites every finding that points
somewhere (its own sentence, its source and strength; strongest first, as weighed by the verdict card's
ranking of the sources), names a conflict when strong findings point to different answers, and ends
with what was checked and found nothing. It only restates evidence: every claim in it is one evidence
item's finding.

Example:
    >>> from pixelsleuth.evidence.record import Evidence
    >>> items = [Evidence("watermark", "The SDXL invisible watermark is present.", "ai-generated", 0.97),
    ...          Evidence("exif", "No camera metadata.")]
    >>> text = explain(items, "ai-generated", 0.97)
    >>> for sentence in text.split(". "):
    ...     print(sentence)
    The image was probably made by a generative model (score 0.97)
    The SDXL invisible watermark is present (watermark, strength 0.97)
    Checked without a finding: exif.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pixelsleuth.evidence.record import Evidence

if TYPE_CHECKING:
    from pixelsleuth.verdict.decide import Decision

STRONG = 0.5  # strength from which two findings that disagree are a conflict worth naming

_OPENINGS = {
    "ai-generated": "The image was probably made by a generative model",
    "manipulated": "The image was probably edited",
    "authentic": "The evidence points to a genuine, unedited photo",
    "inconclusive": "The evidence does not decide what made this image",
    "error": "The image could not be analysed",
}


def _sentence(text: str) -> str:
    return text.strip().rstrip(".")


def cited(evidence: Sequence[Evidence], weights: Mapping[str, float] | None = None) -> list[Evidence]:
    """The findings that point somewhere, strongest first (strength times the source's weight in the
    ranking, 1 when unranked; ties in source order)."""
    weights = weights or {}
    pointing = [item for item in evidence if item.points_to != "none" and item.strength > 0]
    return sorted(pointing, key=lambda item: -item.strength * weights.get(item.source, 1.0))


def _how(decision: Decision) -> str:
    point = decision.operating_point or {}
    if decision.decided_by.startswith("hard-evidence:"):
        source = decision.decided_by.split(":", 1)[1]
        return f"Decided by hard evidence from {source}, which settles the question on its own."
    if decision.decided_by == "calibrated-score" and point:
        return (
            f"Operating point {point['label']}: images at or above {point['threshold']:.2f} are called "
            f"generated or edited, below {point['authentic_below']:.2f} authentic, and in between "
            "inconclusive."
        )
    if decision.decided_by == "evidence-combination":
        reason = decision.note or "nothing calibrated was available"
        return f"This score is an uncalibrated combination of the findings ({reason})."
    return ""


def explain(
    evidence: Sequence[Evidence],
    decision: Decision | str,
    score: float | None = None,
    *,
    weights: Mapping[str, float] | None = None,
) -> str:
    """The explanation paragraph (see the module docstring); `decision` is a `Decision` or a bare label."""
    label = decision if isinstance(decision, str) else decision.label
    if not isinstance(decision, str):
        score = decision.probability
    opening = _OPENINGS.get(label, f"Verdict: {label}")
    parts = [f"{opening} (score {score:.2f})." if score is not None else f"{opening}."]
    how = "" if isinstance(decision, str) else _how(decision)
    if how:
        parts.append(how)
    pointing = cited(evidence, weights)
    drivers = () if isinstance(decision, str) else decision.drivers
    if drivers:
        parts.append(f"The probability rests mostly on {', '.join(drivers)}.")
        # a driver that informs without pointing (the fused score inside its own undecided band) is cited too
        speaking = {item.source for item in pointing}
        parts += [
            f"{_sentence(item.finding)} ({item.source})."
            for item in evidence
            if item.source in drivers and item.source not in speaking and item.finding
        ]
    parts += [
        f"{_sentence(item.finding)} ({item.source}, strength {item.strength:.2f})." for item in pointing
    ]
    strong_sides: dict[str, list[str]] = {}
    for item in pointing:
        if item.strength >= STRONG:
            strong_sides.setdefault(item.points_to, []).append(item.source)
    if not isinstance(decision, str) and decision.conflict:
        parts.append(f"These findings conflict: {decision.conflict}; the verdict abstains.")
    elif len(strong_sides) > 1:
        sides = "; ".join(f"{', '.join(sources)} to {side}" for side, sources in strong_sides.items())
        parts.append(f"These findings conflict: {sides}.")
    quiet = [item.source for item in evidence if item.points_to == "none" or item.strength == 0]
    spoke = {item.source for item in pointing} | set(drivers)
    silent = [source for source in dict.fromkeys(quiet) if source not in spoke]
    if silent:
        parts.append(f"Checked without a finding: {', '.join(silent)}.")
    return " ".join(parts)
