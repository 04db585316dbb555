"""`assess`: each source's capability on labelled images, the ranking, the report; `fit-verdict`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.analysis import Analysis
from pixelsleuth.bench.assess import (
    VERDICT,
    AssessmentError,
    LabelledImage,
    assess,
    load_labelled,
    load_ranking,
)
from pixelsleuth.bench.assess_report import render_assessment
from pixelsleuth.detectors.calibration import PlattCalibration
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.outputs.cli import app
from pixelsleuth.verdict.card import VerdictCard

CARD = VerdictCard(PlattCalibration(1.0, 0.0, 100), 0.8, 0.1, 0.01, 0.01, 0.05, 0.05)


def _image(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def _labelled_set(tmp_path, n=24, speaking=8):
    """Half genuine, half generated: the fused score separates them; exif speaks on the first `speaking`
    images, wrongly on the first half of them; a generation record speaks on the generated ones after 17."""
    rng = np.random.default_rng(3)
    images, analyses = [], []
    for index in range(n):
        generated = index % 2
        path = _image(tmp_path / f"{index}.png", index)
        probability = float(np.clip(0.75 * generated + 0.15 + rng.normal(0, 0.1), 0.01, 0.99))
        evidence = [Evidence("fused-detectors", "fused", data={"probability": probability})]
        if index < speaking:
            right = index >= speaking // 2
            side = ("authentic" if not generated else "ai-generated") if right else (
                "ai-generated" if not generated else "authentic")  # fmt: skip
            evidence.append(Evidence("exif", f"exif says {side}", side, 0.3))
        if generated and index > 17:
            evidence.append(Evidence("generator-text", "A1111 record", "ai-generated", 0.95))
        images.append(
            LabelledImage(path, "ai-generated" if generated else "authentic", "g" if generated else "r")
        )
        analyses.append(Analysis(str(path), "0" * 64, 32, 32, "PNG", evidence=evidence))
    return images, analyses


def test_each_source_is_measured_and_the_verdict_comes_first(tmp_path):
    images, analyses = _labelled_set(tmp_path)
    result = assess(images, analyses, CARD, dataset="synthetic")
    rows = {row.source: row for row in result.sources}
    assert result.sources[0].source == VERDICT and set(rows) == {
        VERDICT,
        "fused-detectors",
        "exif",
        "generator-text",
    }
    assert rows["fused-detectors"].auc > 0.95 and rows["fused-detectors"].ece is not None
    assert rows["exif"].coverage == pytest.approx(8 / 24) and rows["exif"].precision == pytest.approx(0.5)
    assert rows["generator-text"].tpr == pytest.approx(3 / 12) and rows["generator-text"].fpr == 0.0
    assert rows["exif"].weight is None  # spoke on fewer than MIN_SUPPORT images: not measured
    assert rows[VERDICT].reliability and sum(b["count"] for b in rows[VERDICT].reliability) == 24
    # failure cases are the images it gets most wrong, worst first
    failures = rows["exif"].failures
    assert failures and all((case["truth"] == "authentic") == (case["score"] > 0.5) for case in failures)
    assert result.subsets["g"]["n"] == 12 and result.subsets["g"]["hard"] == pytest.approx(3 / 12)


def test_ranking_gives_weights_the_verdict_card_reads(tmp_path):
    images, analyses = _labelled_set(tmp_path, n=60, speaking=20)
    ranking = assess(images, analyses, CARD).ranking()
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(ranking))
    weights = load_ranking(path)
    assert weights["exif"] == pytest.approx(0.0)  # right half the time
    assert weights["generator-text"] == pytest.approx(1.0)  # always right where it spoke
    assert "fused-detectors" not in weights  # a calibrated probability: never reweighted
    with pytest.raises(AssessmentError):
        (tmp_path / "other.json").write_text("{}")
        load_ranking(tmp_path / "other.json")


def test_report_is_self_contained_with_thumbnails_and_diagrams(tmp_path):
    images, analyses = _labelled_set(tmp_path)
    analyses[0].evidence[0].data["probability"] = 0.99  # a genuine image the fused score gets wrong
    page = render_assessment(assess(images, analyses, CARD, dataset="<script>x</script>"))
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "data:image/jpeg;base64," in page and "<svg" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_labelled_sets_come_from_manifests_or_folders(tmp_path):
    for folder, name in (("real/set-a", "a.png"), ("fake/gen-b", "b.png"), ("manip/m", "c.png")):
        (tmp_path / folder).mkdir(parents=True)
        _image(tmp_path / folder / name, 1)
    found = {(item.truth, item.subset) for item in load_labelled(tmp_path)}
    assert found == {("authentic", "set-a"), ("ai-generated", "gen-b"), ("manipulated", "m")}
    manifest = tmp_path / "m.tsv"
    manifest.write_text(
        "relpath\tlabel\tgenerator_or_set\nreal/set-a/a.png\treal\tx\nfake/gen-b/b.png\tfake\ty\n"
    )
    assert [(item.truth, item.path.is_file()) for item in load_labelled(manifest)] == [
        ("authentic", True),
        ("ai-generated", True),
    ]
    manifest.write_text("path,label\na.png,maybe\n")
    with pytest.raises(AssessmentError, match="row 2"):
        load_labelled(manifest)


def test_assess_and_fit_verdict_commands_end_to_end(tmp_path):
    data = tmp_path / "data"
    for index in range(6):
        folder = data / ("real" if index % 2 == 0 else "fake") / "s"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(index)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    store, card = tmp_path / "store.sqlite3", tmp_path / "verdict.json"
    runner = CliRunner()
    ranked = runner.invoke(
        app, ["assess", str(data), "--store", str(store), "--ranking", str(tmp_path / "r.json"),
              "--html", str(tmp_path / "a.html"), "--json", str(tmp_path / "a.json")],
    )  # fmt: skip
    assert ranked.exit_code == 0, ranked.output
    assert "verdict" in ranked.output and (tmp_path / "a.html").read_text().startswith("<!doctype html>")
    assert json.loads((tmp_path / "a.json").read_text())["n"] == 6
    fitted = runner.invoke(
        app, ["fit-verdict", str(data), str(card), "--store", str(store),
              "--ranking", str(tmp_path / "r.json"), "--fpr", "0.34", "--genuine", str(data)],
    )  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    written = VerdictCard.load(card)
    assert written.calibration.n == 6 and written.reproduce[0].startswith("pixelsleuth fit-verdict")
    assert written.measured_fpr <= 0.34 and len(written.real_probabilities) == 3  # --genuine: no photo twice
    missing = runner.invoke(app, ["assess", str(tmp_path / "nowhere"), "--store", str(store)])
    assert missing.exit_code == 2 and "no dataset" in missing.output
