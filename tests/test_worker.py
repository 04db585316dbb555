"""Files analysed in a worker process: a file that hangs or kills its process costs only itself."""

from pathlib import Path

import pytest
from PIL import Image

from pixelsleuth.errors import UsageError
from pixelsleuth.outputs.scan import scan
from pixelsleuth.outputs.store import ResultStore
from pixelsleuth.outputs.worker import IsolatedAnalyzer
from pixelsleuth.pipeline import AnalyzerConfig

SENTENCE_CHARS = set("abcdefghijklmnopqrstuvwxyz ")


def _solid(folder: Path, name: str, colour: tuple[int, int, int]) -> Path:
    path = folder / name
    Image.new("RGB", (32, 32), colour).save(path)
    return path


def _config(*sources: str) -> AnalyzerConfig:
    return AnalyzerConfig(sources=("metadata", *sources), detectors=())


@pytest.fixture(scope="module")
def spinning_analyzer():
    with IsolatedAnalyzer(_config("plugin_sources:spin_on_red"), file_timeout=2) as analyzer:
        yield analyzer


def test_a_file_over_the_time_budget_gets_a_timeout_error_and_the_next_file_is_analysed(
    tmp_path, spinning_analyzer
):
    red = _solid(tmp_path, "red.png", (255, 0, 0))
    blue = _solid(tmp_path, "blue.png", (0, 0, 255))
    stalled = spinning_analyzer.analyze(red)
    assert stalled.verdict == "error"
    assert stalled.error["type"] == "timeout"
    assert "2 seconds" in stalled.error["message"]
    assert stalled.sha256 is not None  # the parent hashed the file: the store can keep the error
    after = spinning_analyzer.analyze(blue)
    assert after.error is None
    assert any(item.source == "spin" for item in after.evidence)
    assert spinning_analyzer.restarts == 1


def test_a_crashed_worker_costs_only_its_file(tmp_path):
    green = _solid(tmp_path, "green.png", (0, 255, 0))
    grey = _solid(tmp_path, "grey.png", (90, 90, 90))
    with IsolatedAnalyzer(_config("plugin_sources:die_on_green"), file_timeout=60) as analyzer:
        results = [analyzer.analyze(path) for path in (green, grey, green)]
    assert [r.error["type"] if r.error else r.verdict for r in results] == [
        "analysis_crashed",
        "inconclusive",
        "analysis_crashed",
    ]
    assert "stopped unexpectedly" in results[0].error["message"]


def test_a_batch_with_hanging_and_crashing_files_stores_a_result_for_every_file(tmp_path):
    paths = [
        _solid(tmp_path, "a-red.png", (255, 0, 0)),
        _solid(tmp_path, "b-grey.png", (80, 80, 80)),
        _solid(tmp_path, "c-green.png", (0, 255, 0)),
        tmp_path / "d-missing.png",
        _solid(tmp_path, "e-white.png", (255, 255, 255)),
    ]
    config = _config("plugin_sources:spin_on_red", "plugin_sources:die_on_green")
    with IsolatedAnalyzer(config, file_timeout=2) as analyzer, ResultStore(tmp_path / "s.sqlite3") as store:
        first = [item.analysis for item in scan(paths, analyzer, store)]
        again = list(scan(paths, analyzer, store))
        assert store.count() == len(paths)
    kinds = [r.error["type"] if r.error else "ok" for r in first]
    assert kinds == ["timeout", "ok", "analysis_crashed", "file_unreadable", "ok"]
    assert [item.cached for item in again] == [True, True, True, False, True]  # a missing file is retried


def test_a_worker_that_cannot_start_is_a_usage_error():
    with pytest.raises(UsageError, match="could not start"):
        IsolatedAnalyzer(_config("no_such_module_anywhere:source"), file_timeout=5)


def test_the_time_budget_must_be_positive():
    with pytest.raises(UsageError):
        IsolatedAnalyzer(_config(), file_timeout=0)


def test_the_worker_runs_with_the_torch_threads_it_was_given():
    with IsolatedAnalyzer(_config(), threads=1) as analyzer:
        assert analyzer.torch_threads == 1
    with pytest.raises(UsageError, match="at least one thread"):
        IsolatedAnalyzer(_config(), threads=0)


def test_the_service_gives_each_concurrent_analysis_its_share_of_the_cores(monkeypatch):
    from pixelsleuth.outputs.service import engine as service_engine
    from pixelsleuth.outputs.service.config import ServiceConfig

    monkeypatch.setattr(service_engine, "usable_cores", lambda: 8)
    assert service_engine.AnalysisPool(ServiceConfig(workers=2, default_detectors=False)).threads == 4
    assert service_engine.AnalysisPool(ServiceConfig(workers=16, default_detectors=False)).threads == 1
