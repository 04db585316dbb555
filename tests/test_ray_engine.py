"""`scan --engine ray`: the same results as the local engine, resuming, typed errors, object-store URIs.

One local Ray instance (2 CPUs) serves the whole test session; every test skips when Ray is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from imagegen import photo_like_rgb
from pixelsleuth.outputs.parquet_results import (
    iter_partition_results,
    list_partitions,
    merge_into_store,
    result_row,
    rows_table,
    write_partition,
)
from pixelsleuth.outputs.scan import scan
from pixelsleuth.outputs.store import FileStamp, ResultStore
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own DataContext warnings

A1111 = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 256x192, Model: v1-5-pruned-emaonly"


@pytest.fixture(scope="session")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'pixelsleuth[ray]')")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Six images (photo-like JPEGs and PNGs, one PNG carrying a generation record) and one bad file."""
    folder = tmp_path_factory.mktemp("ray-images")
    for index in range(4):
        Image.fromarray(photo_like_rgb(256, 192, seed=index)).save(folder / f"photo{index}.jpg", quality=90)
    Image.fromarray(photo_like_rgb(200, 160, seed=9)).save(folder / "plain.png")
    info = PngInfo()
    info.add_text("parameters", A1111)
    Image.fromarray(photo_like_rgb(256, 192, seed=5)).save(folder / "generated.png", pnginfo=info)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")  # a JPEG cut off in its header
    return folder


@pytest.fixture(scope="module")
def config() -> AnalyzerConfig:
    return AnalyzerConfig()


@pytest.fixture(scope="module")
def local(images, config) -> dict[str, dict]:
    """The local engine's records, by path."""
    analyzer = Analyzer(config)
    return {str(path): analyzer.analyze(path).to_dict() for path in sorted(images.iterdir())}


def _same(record: dict, expected: dict) -> None:
    for key in ("path", "sha256", "verdict", "score", "evidence", "error", "explanation", "decided_by"):
        assert record[key] == expected[key], (record["path"], key)


def test_same_results_as_the_local_engine(ray_instance, images, config, local, tmp_path):
    from pixelsleuth.outputs.ray_engine import list_files, scan_on_ray

    tasks, unmatched = list_files([str(images)])
    assert unmatched == [] and len(tasks) == 7
    store = ResultStore(tmp_path / "results.sqlite3")
    result = scan_on_ray(tasks, config, tmp_path / "out", store=store, file_timeout=0, batch_size=3)
    assert (result.analysed, result.skipped, result.merged.added) == (7, 0, 7)
    assert result.counts["error"] == 1 and result.counts["ai-generated"] == 1

    rows = {analysis.path: analysis.to_dict() for analysis, _, _ in iter_partition_results(tmp_path / "out")}
    assert rows.keys() == local.keys()
    for path, record in rows.items():
        _same(record, local[path])
    broken = rows[str(images / "broken.jpg")]
    assert broken["verdict"] == "error" and broken["error"]["type"] == "truncated_image"

    # The merged store is what the local engine reads: it finds every file and analyses none again.
    items = list(scan(sorted(images.iterdir()), Analyzer(config), store))
    assert all(item.cached for item in items)
    for item in items:
        _same(item.analysis.to_dict(), local[item.analysis.path])
    assert store.count() == 7
    store.close()


def test_resume_analyses_only_what_no_partition_or_store_holds(ray_instance, images, config, local, tmp_path):
    from pixelsleuth.outputs.ray_engine import list_files, scan_on_ray

    tasks, _ = list_files([str(images)])
    by_path = {task.path: task for task in tasks}
    paths = sorted(by_path)
    out = tmp_path / "out"
    # A run that died: one finished partition of three files, and a partition it was still writing.
    earlier = [
        result_row(Analyzer(config).analyze(path), config.version, by_path[path].stamp) for path in paths[:3]
    ]
    write_partition(out, rows_table(earlier))
    (out / ".part-0123.parquet.8f2c.tmp").write_bytes(b"PAR1 half written")
    # One more file is in the SQLite store already (a local scan did it).
    store = ResultStore(tmp_path / "results.sqlite3")
    store.put(Analyzer(config).analyze(paths[3]), config.version, stamp=FileStamp.of(paths[3]))

    result = scan_on_ray(tasks, config, out, store=store, file_timeout=30, batch_size=2)
    assert (result.skipped, result.analysed) == (4, 3)  # the IsolatedAnalyzer path: per-file time budget
    new = {analysis.path for analysis, _, _ in iter_partition_results(out)} - set(paths[:3])
    assert new == set(paths[4:])
    assert (result.merged.added, result.merged.present) == (6, 0)  # the store had the seventh
    assert merge_into_store(out, store).added == 0  # merging again duplicates nothing
    assert store.count() == 7
    rows = store._db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM analyses").fetchone()
    assert rows == (7, 7)
    for record in store.iter_records():
        _same(record, local[record["path"]])

    partitions = list_partitions(out)
    again = scan_on_ray(tasks, config, out, store=store, file_timeout=0)
    assert (again.skipped, again.analysed, again.partitions) == (7, 0, 0)
    assert list_partitions(out) == partitions
    store.close()


def test_cli_engine_ray_reads_uris_through_pyarrow(ray_instance, images, local, tmp_path):
    """file:// URIs take the object-store path (listing and reading through pyarrow), like s3://."""
    from typer.testing import CliRunner

    from pixelsleuth.outputs.cli import app

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("generated.png", "broken.jpg"):
        (folder / name).write_bytes((images / name).read_bytes())
    out, store = tmp_path / "out", tmp_path / "results.sqlite3"
    arguments = ["scan", "--engine", "ray", "--json", "--file-timeout", "0"]
    arguments += ["--output-dir", str(out), "--store", str(store), folder.as_uri() + "/"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1, result.output  # the broken file failed, the other went on
    records = {record["path"]: record for record in map(json.loads, result.stdout.splitlines())}
    assert set(records) == {(folder / "generated.png").as_uri(), (folder / "broken.jpg").as_uri()}
    generated = records[(folder / "generated.png").as_uri()]
    expected = local[str(images / "generated.png")]
    for key in ("sha256", "verdict", "score", "evidence", "decided_by"):
        assert generated[key] == expected[key]
    assert records[(folder / "broken.jpg").as_uri()]["error"]["type"] == "truncated_image"
    with ResultStore(store) as results:
        assert results.count() == 2


def test_local_scan_never_imports_ray(images):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from pixelsleuth.outputs.cli import app\n"
        "result = CliRunner().invoke(\n"
        f"    app, ['scan', '--no-store', '--no-default-detectors', '--file-timeout', '0', {str(images)!r}]\n"
        ")\n"
        "assert result.exit_code == 1, result.output\n"
        "assert 'ray' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_worker_plan_puts_actors_on_gpu_nodes_when_there_are_some(monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'pixelsleuth[ray]')")
    from pixelsleuth.outputs.ray_engine import WorkerPlan, plan_workers

    def node(cpus: int, gpus: int = 0) -> dict:
        return {"Alive": True, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}

    monkeypatch.setattr(ray, "nodes", lambda: [node(16), node(16), node(8, 1), {"Alive": False}])
    assert plan_workers(None, None) == WorkerPlan(8, num_gpus=0.125)  # one per CPU of the GPU node
    assert plan_workers(None, 0) == WorkerPlan(40)  # every CPU, no GPU
    assert plan_workers(None, None).device == "cuda" and plan_workers(4, 0).device == "cpu"
    monkeypatch.setattr(ray, "nodes", lambda: [node(2)])
    assert plan_workers(None, None) == WorkerPlan(2)
