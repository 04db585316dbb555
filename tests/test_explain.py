"""The explanation paragraph: every pointing finding cited, strongest first, conflicts named."""

from __future__ import annotations

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.verdict.explain import cited, explain

ITEMS = [
    Evidence("exif", "Camera metadata names a Canon EOS 5D.", "authentic", 0.2),
    Evidence("c2pa", "Content Credentials say the image was made by Adobe Firefly.", "ai-generated", 0.95),
    Evidence("spectral", "No periodic peaks in the noise spectrum."),
    Evidence(
        "localization",
        "The region x 120–340, y 80–260 was probably manipulated.",
        "manipulated",
        0.7,
        data={"regions": [{"left": 120, "top": 80, "right": 340, "bottom": 260}]},
    ),
    Evidence("watermark", "No watermark found."),
]


def test_every_pointing_finding_is_cited_strongest_first_with_its_numbers_and_place():
    text = explain(ITEMS, "ai-generated", 0.91)
    assert text.startswith("The image was probably made by a generative model (score 0.91).")
    positions = [text.index(item.finding.rstrip(".")) for item in cited(ITEMS)]
    assert positions == sorted(positions) and len(positions) == 3
    assert "(c2pa, strength 0.95)" in text and "x 120–340, y 80–260" in text


def test_strong_findings_that_disagree_are_named_as_a_conflict():
    text = explain(ITEMS, "inconclusive", 0.5)
    assert "These findings conflict: c2pa to ai-generated; localization to manipulated." in text
    calm = explain(ITEMS[:3], "ai-generated", 0.9)
    assert "conflict" not in calm


def test_what_was_checked_without_a_finding_is_listed_once_and_the_text_is_deterministic():
    text = explain([*ITEMS, Evidence("spectral", "Again nothing.")], "ai-generated", 0.9)
    assert text.endswith("Checked without a finding: spectral, watermark.")
    assert explain(ITEMS, "ai-generated", 0.9) == explain(list(ITEMS), "ai-generated", 0.9)
    assert explain([], "error") == "The image could not be analysed."


def test_every_analysis_carries_an_explanation_that_cites_its_evidence(tmp_path):
    from pathlib import Path

    from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

    analyzer = Analyzer(AnalyzerConfig(detectors=(), fusion=None))
    sample = Path(__file__).resolve().parents[1] / "samples" / "a1111-parameters.png"
    analysis = analyzer.analyze(sample)
    for item in cited(analysis.evidence):
        assert item.finding.rstrip(".") in analysis.explanation
    assert analysis.explanation.startswith("The image was probably made by a generative model")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    failed = analyzer.analyze(tmp_path / "broken.png")
    assert failed.verdict == "error" and failed.explanation.startswith("The image could not be analysed: ")
