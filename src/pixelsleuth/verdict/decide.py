"""One verdict from all the evidence: hard evidence decides alone, conflicts abstain, the rest is calibrated.

1. **Hard evidence** decides on its own: intact Content Credentials that declare generative AI (even
   from a signer not on a trust list; on the other side, a camera capture only from a trusted one), a
   generation record in the file's text, AI metadata from a known generator, a decoded Stable
   Diffusion watermark (`is_hard`).
2. **Conflicts** abstain: hard or strong evidence on one side and strong evidence on the other give
   "inconclusive", and the conflict is named.
3. Otherwise the **calibrated probability** decides: the fused detector score's log-odds plus each other
   source's (its strongest finding per side, read as log-odds and weighted by the verdict card's
   ranking), Platt-calibrated on held-apart whole images. At or above the card's threshold the image is
   called ai-generated or manipulated (whichever side weighed most), under `authentic_below` authentic,
   in between inconclusive. Without a fused detector score there is nothing calibrated to stand on, and
   the uncalibrated evidence combination of `verdict.fuse` is used as before.

Example:
    >>> from pixelsleuth.evidence.record import Evidence
    >>> record = Evidence("generator-text", "A1111 parameters", "ai-generated", 0.95)
    >>> decision = decide([record], VerdictCard.identity())
    >>> decision.label, decision.decided_by
    ('ai-generated', 'hard-evidence:generator-text')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.card import VerdictCard
from pixelsleuth.verdict.fuse import fuse
from pixelsleuth.verdict.stack import SOURCE as FUSED_SOURCE
from pixelsleuth.verdict.stack import logit

# Hard evidence: the smallest strength at which a source's finding decides on its own.
HARD_STRENGTH: dict[str, float] = {
    "generator-text": 0.7,  # even the generator's bare marker: no camera writes it
    "exif": 0.8,  # a known generator named in the metadata (evidence/data/ai_tools.json)
    "xmp": 0.8,
    "iptc": 0.8,
    "watermark": 0.9,  # decoded with a chance probability below about 1e-8
    "c2pa": 0.5,  # and only when the credentials are intact (see is_hard)
}
HARD_PROBABILITY = 0.99  # how sure a hard finding makes the verdict (measured by `assess` on dev)
STRONG = 0.5  # from this strength a finding that disagrees with another is a conflict worth naming
_VALID_C2PA = ("trusted", "valid")


@dataclass(frozen=True)
class Decision:
    label: str  # ai-generated | manipulated | authentic | inconclusive
    probability: float | None  # calibrated P(not authentic); None when nothing spoke
    decided_by: (
        str  # hard-evidence:<source> | calibrated-score | conflict | evidence-combination | no-evidence
    )
    operating_point: dict[str, Any] | None
    conflict: str = ""  # the conflict named, when there is one
    calibrated: bool = False
    note: str = ""  # why the score is not calibrated, when it is not
    drivers: tuple[str, ...] = ()  # sources that moved a calibrated verdict its way, most first


def is_hard(item: Evidence) -> bool:
    """Whether a finding decides the verdict on its own (see the module docstring)."""
    floor = HARD_STRENGTH.get(item.source)
    if floor is None or item.points_to == "none" or item.strength < floor:
        return False
    if item.source == "c2pa":
        if item.data.get("ingredient"):
            return False
        # A declaration of AI made by an unknown signer still decides (nobody forges an admission, and no
        # trust list ships offline); a claim of camera capture decides only when the signer is trusted.
        valid = _VALID_C2PA + (("untrusted",) if item.points_to == "ai-generated" else ())
        return item.data.get("signature_state") in valid and item.points_to in ("ai-generated", "authentic")
    return item.points_to == "ai-generated"


def _log_odds(strength: float) -> float:
    p = 0.5 + 0.5 * min(strength, 0.999)
    return math.log(p / (1.0 - p))


def contributions(evidence: Sequence[Evidence], card: VerdictCard) -> dict[tuple[str, str], float]:
    """Each (source, side)'s log-odds towards "not authentic" (negative: towards authentic).

    The fused detector score enters as its calibrated log-odds; every other source as its strongest
    finding per side, weighted by the card's trust in that source.
    """
    found: dict[tuple[str, str], float] = {}
    for item in evidence:
        if item.source == FUSED_SOURCE and "probability" in item.data:
            found[(FUSED_SOURCE, "ai-generated")] = logit(item.data["probability"])
            continue
        if item.points_to == "none" or item.strength <= 0.0:
            continue
        sign = -1.0 if item.points_to == "authentic" else 1.0
        value = sign * card.weight(item.source) * _log_odds(item.strength)
        key = (item.source, item.points_to)
        if abs(value) > abs(found.get(key, 0.0)):
            found[key] = value
    return found


def soft_score(
    evidence: Sequence[Evidence], card: VerdictCard
) -> tuple[dict[tuple[str, str], float], float] | None:
    """The contributions and the raw probability they add up to, which the card calibrates; None without
    a fused detector score (nothing calibrated to stand on)."""
    parts = contributions(evidence, card)
    if (FUSED_SOURCE, "ai-generated") not in parts:
        return None
    return parts, 1.0 / (1.0 + math.exp(-sum(parts.values())))


def _strong_sides(evidence: Sequence[Evidence]) -> dict[str, list[str]]:
    """Sources with a strong finding, per side: "not authentic" (ai-generated, manipulated) or "authentic"."""
    sides: dict[str, list[str]] = {}
    for item in evidence:
        if item.points_to == "none" or (item.strength < STRONG and not is_hard(item)):
            continue
        side = "authentic" if item.points_to == "authentic" else "not authentic"
        if item.source not in sides.setdefault(side, []):
            sides[side].append(item.source)
    return sides


def _conflict_text(sides: dict[str, list[str]]) -> str:
    return (
        f"{', '.join(sides['not authentic'])} point away from a genuine photo, "
        f"{', '.join(sides['authentic'])} towards one"
    )


def decide(evidence: Sequence[Evidence], card: VerdictCard) -> Decision:
    """The verdict for one image's evidence (see the module docstring)."""
    point = card.operating_point()
    sides = _strong_sides(evidence)
    conflict = _conflict_text(sides) if len(sides) == 2 else ""
    hard = [item for item in evidence if is_hard(item)]
    if hard:
        if conflict:
            return Decision("inconclusive", None, "conflict", point, conflict)
        strongest = max(hard, key=lambda item: item.strength)
        authentic = strongest.points_to == "authentic"
        probability = 1.0 - HARD_PROBABILITY if authentic else HARD_PROBABILITY
        return Decision(strongest.points_to, probability, f"hard-evidence:{strongest.source}", point)

    soft = soft_score(evidence, card)
    if soft is None or card.is_identity:
        verdict = fuse(evidence)  # nothing calibrated to stand on: the plain evidence combination
        note = "no verdict card is installed" if card.is_identity else "no fused detector score was available"
        if conflict:
            return Decision("inconclusive", verdict.score, "conflict", None, conflict, note=note)
        how = "evidence-combination" if verdict.score is not None else "no-evidence"
        return Decision(verdict.label, verdict.score, how, None, note=note)

    parts, raw = soft
    # No combination of soft findings is surer than hard evidence (the calibration never saw such extremes).
    probability = min(max(card.calibrate(raw), 1.0 - HARD_PROBABILITY), HARD_PROBABILITY)
    if conflict:
        return Decision("inconclusive", probability, "conflict", point, conflict, calibrated=True)
    if probability >= card.threshold:
        towards = {key: value for key, value in parts.items() if value > 0}
        side = max(towards, key=towards.__getitem__)[1] if towards else "ai-generated"
        label = "manipulated" if side == "manipulated" else "ai-generated"
    elif probability < card.authentic_below:
        label = "authentic"
    else:
        label = "inconclusive"
    sign = {"authentic": -1.0, "inconclusive": 0.0}.get(label, 1.0)
    pushing = sorted(
        (key for key, value in parts.items() if sign * value > 0), key=lambda k: -sign * parts[k]
    )
    drivers = tuple(dict.fromkeys(source for source, _ in pushing))
    return Decision(label, probability, "calibrated-score", point, calibrated=True, drivers=drivers)
