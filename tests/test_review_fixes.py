"""Regression tests for defects found in review: each asserts the corrected behaviour."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.errors import FileReadError
from pixelsleuth.evidence.camera import compare_thumbnail
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake import IntakeLimits, load_image
from pixelsleuth.outputs.cli import app
from pixelsleuth.outputs.collect import collect_paths
from pixelsleuth.outputs.scan import scan
from pixelsleuth.outputs.store import ResultStore
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, DetectorSpec
from pixelsleuth.verdict import fuse

runner = CliRunner()


def png(path, size=64):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_raising_a_limit_re_analyses_a_refused_file(tmp_path):
    image = png(tmp_path / "a.png")
    with ResultStore(tmp_path / "r.sqlite3") as store:
        strict = Analyzer(AnalyzerConfig(limits=IntakeLimits(max_pixels=10)))
        (first,) = list(scan([image], strict, store))
        assert first.analysis.verdict == "error"
        (second,) = list(scan([image], Analyzer(AnalyzerConfig()), store))
        assert not second.cached and second.analysis.verdict != "error"


def test_a_changed_model_card_changes_the_analysis_version(tmp_path):
    weights, card = tmp_path / "w.safetensors", tmp_path / "w.json"
    weights.write_bytes(b"weights")
    card.write_text('{"calibration": 1}')
    before = DetectorSpec("x", str(weights)).fingerprint
    card.write_text('{"calibration": 2}')
    assert DetectorSpec("x", str(weights)).fingerprint != before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(FileReadError, match="not a regular file"):
        load_image(fifo)
    analysis = Analyzer().analyze(fifo)
    assert analysis.verdict == "error" and analysis.sha256 is None


def test_a_strong_authentic_side_is_not_overruled_by_a_weaker_generated_one():
    verdict = fuse(
        [
            Evidence("c2pa", "signed capture", "authentic", 0.95),
            Evidence("detector:x", "traces", "ai-generated", 0.55),
        ]
    )
    assert verdict.label == "authentic"
    assert verdict.score < 0.5


def test_thumbnail_declaring_a_huge_size_is_not_decoded():
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "JPEG", quality=10)
    comparison = compare_thumbnail(np.zeros((60, 80, 3), np.uint8), buffer.getvalue())
    assert comparison.verdict == "undecodable"


def test_paths_with_brackets_are_shown_literally(tmp_path):
    image = png(tmp_path / "[draft] cat.png")
    result = runner.invoke(app, ["scan", "--no-store", str(image)])
    assert result.exit_code == 0
    assert "[draft]" in result.stdout.replace("\n", "")


def test_unusable_store_is_a_usage_error(tmp_path):
    image = png(tmp_path / "a.png")
    result = runner.invoke(app, ["scan", "--store", str(tmp_path), str(image)])  # a folder, not a file
    assert result.exit_code == 2
    assert "cannot open the results store" in result.stderr


def test_damaged_weights_are_a_usage_error(tmp_path):
    image = png(tmp_path / "a.png")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    result = runner.invoke(app, ["scan", "--no-store", "--detector", f"npr={bad}", str(image)])
    assert result.exit_code == 2
    assert "not a readable safetensors file" in result.stderr


def test_folder_scans_include_every_extension_intake_reads(tmp_path):
    png(tmp_path / "a.apng")
    files, _ = collect_paths([str(tmp_path)])
    assert [path.name for path in files] == ["a.apng"]
