import pytest

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict import fuse


def ev(points_to: str, strength: float, source: str | None = None) -> Evidence:
    source = source or f"source-{points_to}-{strength}"
    return Evidence(source=source, finding="f", points_to=points_to, strength=strength)  # type: ignore[arg-type]


def test_no_evidence_is_inconclusive_without_score():
    verdict = fuse([])
    assert verdict.label == "inconclusive"
    assert verdict.score is None


def test_informative_evidence_only_is_inconclusive():
    verdict = fuse([Evidence("exif", "no EXIF")])
    assert verdict.label == "inconclusive"
    assert verdict.score is None


def test_decisive_ai_evidence():
    verdict = fuse([ev("ai-generated", 0.95)])
    assert verdict.label == "ai-generated"
    assert verdict.score > 0.95


def test_weak_evidence_alone_does_not_decide():
    verdict = fuse([ev("authentic", 0.2)])
    assert verdict.label == "inconclusive"
    assert verdict.score < 0.5


def test_strong_ai_outweighs_weak_camera_claim():
    verdict = fuse([ev("authentic", 0.2), ev("ai-generated", 0.8)])
    assert verdict.label == "ai-generated"
    assert 0.5 < verdict.score < fuse([ev("ai-generated", 0.8)]).score


def test_manipulated_when_it_is_the_stronger_side():
    verdict = fuse([ev("manipulated", 0.6), ev("ai-generated", 0.3)])
    assert verdict.label == "manipulated"


def test_authentic_needs_combined_strength():
    assert fuse([ev("authentic", 0.3), ev("authentic", 0.4)]).label == "authentic"


def test_combined_strength_is_noisy_or():
    verdict = fuse([ev("ai-generated", 0.5, "c2pa"), ev("ai-generated", 0.5, "xmp")])
    assert verdict.combined["ai-generated"] == pytest.approx(0.75)


def test_evidence_rejects_bad_values():
    with pytest.raises(ValueError):
        Evidence("x", "y", points_to="fake", strength=0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Evidence("x", "y", points_to="authentic", strength=1.5)


def test_one_source_counts_once_per_side():
    same_source = fuse([ev("manipulated", 0.4, "camera"), ev("manipulated", 0.2, "camera")])
    assert same_source.combined["manipulated"] == pytest.approx(0.4)
    assert same_source.label == "inconclusive"
    two_sources = fuse([ev("manipulated", 0.4, "camera"), ev("manipulated", 0.2, "xmp")])
    assert two_sources.combined["manipulated"] == pytest.approx(1 - 0.6 * 0.8)
