"""A deterministic paragraph that explains a verdict from its evidence, strongest first.

The paragraph opens with the verdict and its score, cites every finding that points somewhere (its own
sentence, its source and strength, strongest first), names a conflict when strong findings point to
different answers, and ends with what was checked and found nothing. It only restates evidence: every
claim in it is one evidence item's finding.

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

from collections.abc import Sequence

from pixelsleuth.evidence.record import Evidence

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


def cited(evidence: Sequence[Evidence]) -> list[Evidence]:
    """The findings that point somewhere, strongest first (ties in source order)."""
    pointing = [item for item in evidence if item.points_to != "none" and item.strength > 0]
    return sorted(pointing, key=lambda item: -item.strength)


def explain(evidence: Sequence[Evidence], verdict: str, score: float | None = None) -> str:
    """The explanation paragraph (see the module docstring)."""
    opening = _OPENINGS.get(verdict, f"Verdict: {verdict}")
    parts = [f"{opening} (score {score:.2f})." if score is not None else f"{opening}."]
    pointing = cited(evidence)
    parts += [
        f"{_sentence(item.finding)} ({item.source}, strength {item.strength:.2f})." for item in pointing
    ]
    strong_sides: dict[str, list[str]] = {}
    for item in pointing:
        if item.strength >= STRONG:
            strong_sides.setdefault(item.points_to, []).append(item.source)
    if len(strong_sides) > 1:
        sides = "; ".join(f"{', '.join(sources)} to {side}" for side, sources in strong_sides.items())
        parts.append(f"These findings conflict: {sides}.")
    quiet = [item.source for item in evidence if item.points_to == "none" or item.strength == 0]
    silent = [source for source in dict.fromkeys(quiet) if source not in {item.source for item in pointing}]
    if silent:
        parts.append(f"Checked without a finding: {', '.join(silent)}.")
    return " ".join(parts)
