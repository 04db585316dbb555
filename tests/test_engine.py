"""The batch engine (`scan --workers N`): the same results as the one-at-a-time scan, in input order, with the
same per-file protections (time budget, crash isolation, typed errors, resumable)."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from imagegen import photo_like_rgb
from pixelsleuth.errors import UsageError
from pixelsleuth.outputs.cli import app
from pixelsleuth.outputs.engine import BatchEngine, choose_runtime, default_workers
from pixelsleuth.outputs.scan import scan
from pixelsleuth.outputs.store import ResultStore
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, default_detector_specs

TOLERANCE = 1e-5  # detector probabilities: batches of other sizes, ONNX Runtime for patchnet


def _images(folder: Path) -> list[Path]:
    """Photo-like files the analysis treats differently: tiled, whole, too small for fsd, truncated."""
    paths = []
    for index, (width, height, suffix) in enumerate(
        [(1152, 864, "jpg"), (400, 300, "png"), (1024, 768, "jpg"), (80, 80, "png"), (700, 500, "jpg")]
    ):
        path = folder / f"{index}.{suffix}"
        Image.fromarray(photo_like_rgb(width, height, seed=index)).save(path, quality=90)
        paths.append(path)
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(paths[0].read_bytes()[:3000])
    paths.insert(2, truncated)
    return paths


def _same(engine_value, sequential_value, where: str = "") -> None:
    """Equal, numbers within TOLERANCE."""
    if isinstance(sequential_value, float) and isinstance(engine_value, float):
        assert engine_value == pytest.approx(sequential_value, abs=TOLERANCE), where
    elif isinstance(sequential_value, dict):
        assert isinstance(engine_value, dict) and engine_value.keys() == sequential_value.keys(), where
        for key in sequential_value:
            _same(engine_value[key], sequential_value[key], f"{where}.{key}")
    elif isinstance(sequential_value, list):
        assert isinstance(engine_value, list) and len(engine_value) == len(sequential_value), where
        for index, (a, b) in enumerate(zip(engine_value, sequential_value, strict=True)):
            _same(a, b, f"{where}[{index}]")
    else:
        assert engine_value == sequential_value, where


@pytest.fixture(scope="module")
def both_scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine")
    paths = _images(folder)
    config = AnalyzerConfig()
    sequential = [item.analysis for item in scan(paths, Analyzer(config))]
    with BatchEngine(config, workers=2) as engine:
        batched = [item.analysis for item in engine.scan(paths)]
        runtimes = engine.runtimes
    return paths, sequential, batched, runtimes


def test_the_engine_gives_the_results_of_the_one_at_a_time_scan(both_scans):
    paths, sequential, batched, _ = both_scans
    assert [analysis.path for analysis in batched] == [str(path) for path in paths]  # input order
    for engine_result, sequential_result in zip(batched, sequential, strict=True):
        assert engine_result.verdict == sequential_result.verdict
        _same(engine_result.to_dict(), sequential_result.to_dict(), engine_result.path or "")
    detectors = {item.source for analysis in batched for item in analysis.evidence}
    assert {"detector:fsd", "detector:patchnet", "fused-detectors"} <= detectors


def test_a_truncated_file_gets_its_typed_error_and_the_rest_go_on(both_scans):
    _, sequential, batched, _ = both_scans
    assert [a.error["type"] if a.error else None for a in batched] == [
        a.error["type"] if a.error else None for a in sequential
    ]
    assert batched[2].verdict == "error" and "truncated" in batched[2].error["message"]
    assert sum(analysis.verdict != "error" for analysis in batched) == len(batched) - 1
    too_small = next(item for item in batched[4].evidence if item.source == "detector:fsd")
    assert "could not run" in too_small.finding  # a detector refusing one file costs only that item


def test_the_detectors_run_on_onnx_runtime_where_it_gives_the_same_scores(both_scans):
    assert both_scans[3] == {"fsd": "torch", "patchnet": "onnxruntime"}


def test_without_onnx_runtime_the_detectors_fall_back_to_torch(monkeypatch):
    spec = next(spec for spec in default_detector_specs() if spec.name == "patchnet")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    assert choose_runtime(spec.name, spec.weights).runtime == "torch"
    assert choose_runtime(spec.name, spec.weights, runtime="torch").runtime == "torch"


def _solid(folder: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = folder / name
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def test_a_hanging_file_hits_the_time_budget_and_a_crashing_one_costs_only_itself(tmp_path):
    config = AnalyzerConfig(
        sources=("metadata", "plugin_sources:spin_on_red", "plugin_sources:die_on_green"), detectors=()
    )
    paths = [
        _solid(tmp_path, "red.png", (255, 0, 0)),
        _solid(tmp_path, "blue.png", (0, 0, 255)),
        _solid(tmp_path, "green.png", (0, 255, 0)),
        _solid(tmp_path, "grey.png", (90, 90, 90)),
    ]
    with BatchEngine(config, workers=2, file_timeout=2) as engine:
        results = [item.analysis for item in engine.scan(paths)]
        assert engine.restarts == 2
    assert [r.path for r in results] == [str(path) for path in paths]  # the hung first file keeps its place
    assert [r.error["type"] if r.error else r.verdict for r in results] == [
        "timeout",
        "inconclusive",
        "analysis_crashed",
        "inconclusive",
    ]
    assert "2 seconds" in results[0].error["message"] and results[0].sha256 is not None


def test_a_scan_stopped_part_way_resumes_without_repeating_or_duplicating(tmp_path):
    config = AnalyzerConfig(sources=("metadata",), detectors=())
    paths = []
    for index in range(6):
        path = tmp_path / f"{index}.png"
        Image.fromarray(photo_like_rgb(40, 30, seed=index)).save(path)
        paths.append(path)
    store = ResultStore(tmp_path / "results.sqlite3")
    with BatchEngine(config, workers=2) as engine:
        first = engine.scan(paths, store)
        done = [next(first) for _ in range(3)]
        first.close()  # the scan is stopped with files in flight
        resumed = list(engine.scan(paths, store))
    assert [item.analysis.path for item in resumed] == [str(path) for path in paths]
    assert all(item.cached for item in resumed[:3]) and len(done) == 3
    assert store.count() == 6
    store.close()


def test_scan_with_workers_prints_the_lines_of_the_single_worker_scan_in_input_order(tmp_path):
    for index in range(4):
        Image.fromarray(photo_like_rgb(48, 40, seed=index)).save(tmp_path / f"{index}.png")
    runner = CliRunner()
    lines = {}
    for workers in ("1", "2"):
        result = runner.invoke(
            app,
            [
                "scan",
                str(tmp_path),
                "--json",
                "--no-store",
                "--no-default-detectors",
                "--workers",
                workers,
            ],
        )
        assert result.exit_code == 0, result.output
        lines[workers] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines["2"] == lines["1"] and len(lines["2"]) == 4
    assert [Path(record["path"]).name for record in lines["2"]] == ["0.png", "1.png", "2.png", "3.png"]


def test_the_engine_needs_two_workers_and_a_positive_budget():
    config = AnalyzerConfig(detectors=())
    with pytest.raises(UsageError):
        BatchEngine(config, workers=1)
    with pytest.raises(UsageError):
        BatchEngine(config, workers=2, file_timeout=0)
    assert default_workers(1) == 1 and default_workers(5) >= 1
