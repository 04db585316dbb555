import csv
import io
import json

import pyarrow.parquet as pq
import pytest

from pixelsleuth.analysis import SCHEMA, Analysis
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.outputs.export import COLUMNS, write_export
from pixelsleuth.outputs.store import FileStamp, ResultStore


def make_analysis(sha: str, verdict: str = "ai-generated") -> Analysis:
    return Analysis(
        path=f"/images/{sha}.png",
        sha256=sha,
        width=64,
        height=48,
        format="PNG",
        verdict=verdict,
        score=0.97,
        evidence=[
            Evidence("generator-text", "Generation parameters found", "ai-generated", 0.95, data={"seed": 1}),
            Evidence("metadata", "no EXIF"),
        ],
    )


def test_analysis_round_trips_through_json():
    analysis = make_analysis("a" * 64)
    record = json.loads(analysis.to_json())
    assert record["schema"] == SCHEMA
    assert set(record) == {"schema", "path", "sha256", "width", "height", "format", "verdict", "score",
                           "evidence", "error", "explanation", "decided_by", "operating_point",
                           "narration"}  # fmt: skip
    assert set(record["evidence"][0]) == {"source", "finding", "points_to", "strength", "detail", "data"}
    assert Analysis.from_dict(record) == analysis


def test_store_put_get_and_no_duplicates(tmp_path):
    db = tmp_path / "r.sqlite3"
    with ResultStore(db) as store:
        stamp = FileStamp(f"/images/{'a' * 64}.png", 10, 5)
        store.put(make_analysis("a" * 64), "v1", stamp=stamp)
        store.put(make_analysis("a" * 64), "v1", stamp=stamp)
        store.put(make_analysis("a" * 64), "v2")
        assert store.count() == 2
        assert store.count("v1") == 1
        assert store.get("a" * 64, "v1").verdict == "ai-generated"
        assert store.get("b" * 64, "v1") is None
        assert store.lookup_file(stamp, "v1") is not None
        assert store.lookup_file(FileStamp(stamp.path, 10, 6), "v1") is None
        assert store.lookup_file(stamp, "v2") is None
    with ResultStore(db) as reopened:
        assert reopened.versions() == ["v1", "v2"]


def test_store_keeps_unreadable_files_once_per_path(tmp_path):
    error = {"type": "file_unreadable", "message": "cannot read x: not a regular file"}
    with ResultStore(tmp_path / "r.sqlite3") as store:
        store.put(Analysis(path="x", sha256=None, verdict="error", error=error), "v1")
        store.put(Analysis(path="x", sha256=None, verdict="error", error=error), "v1")
        store.put(Analysis(path="y", sha256=None, verdict="error", error=error), "v1")
        records = list(store.iter_records())
    assert [record["path"] for record in records] == ["x", "y"]
    assert all(record["sha256"] is None for record in records)


def test_store_refuses_analysis_without_hash_or_path(tmp_path):
    with ResultStore(tmp_path / "r.sqlite3") as store, pytest.raises(ValueError):
        store.put(Analysis(path=None, sha256=None, verdict="error"), "v1")


@pytest.fixture
def records(tmp_path):
    with ResultStore(tmp_path / "r.sqlite3") as store:
        store.put(make_analysis("a" * 64), "v1")
        error = Analysis(path="/bad.jpg", sha256="c" * 64, verdict="error",
                         error={"type": "truncated_image", "message": "truncated JPEG"})  # fmt: skip
        store.put(error, "v1")
        return list(store.iter_records())


def test_export_jsonl(records):
    out = io.BytesIO()
    assert write_export(records, "jsonl", out) == 2
    lines = out.getvalue().decode().splitlines()
    assert [json.loads(line)["sha256"] for line in lines] == ["a" * 64, "c" * 64]


def test_export_csv(records):
    out = io.BytesIO()
    write_export(records, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert tuple(rows[0]) == COLUMNS
    assert rows[0]["top_finding"] == "Generation parameters found"
    assert rows[1]["error_type"] == "truncated_image"


def test_export_parquet(records):
    out = io.BytesIO()
    write_export(records, "parquet", out)
    table = pq.read_table(io.BytesIO(out.getvalue()))
    assert table.num_rows == 2
    assert table.column("verdict").to_pylist() == ["ai-generated", "error"]
    assert table.column("score").to_pylist()[0] == pytest.approx(0.97)


def test_file_stamp(tmp_path):
    image = tmp_path / "x.png"
    image.write_bytes(b"12345")
    stamp = FileStamp.of(image)
    assert stamp is not None and stamp.size == 5 and stamp.path == str(image.absolute())
    assert FileStamp.of(tmp_path / "missing.png") is None


def test_two_links_to_one_file_are_two_files(tmp_path):
    (tmp_path / "target.png").write_bytes(b"12345")
    for name in ("a.png", "b.png"):
        (tmp_path / name).symlink_to(tmp_path / "target.png")
    first, second = FileStamp.of(tmp_path / "a.png"), FileStamp.of(tmp_path / "b.png")
    assert first.path != second.path and first.size == second.size == 5
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    assert FileStamp.of(tmp_path / "loop.png") is None
