"""Whatever a file holds, output is valid UTF-8 JSON, paths survive losslessly, and the store never
loses a result."""

import json
import os
import sqlite3

import pytest
from PIL import Image
from typer.testing import CliRunner

from pixelsleuth.analysis import Analysis, json_safe
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake.text import clean_text, decode_bytes, display_path, loads_json
from pixelsleuth.outputs.cli import app
from pixelsleuth.outputs.scan import scan, store_or_stand_in
from pixelsleuth.outputs.store import FileStamp, ResultStore
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

BAD_NAME = os.fsdecode(b"bad_\xff\xfe.png")


def _surrogate_analysis(path: str = "x.png") -> Analysis:
    evidence = Evidence(
        source="generator-text", finding="prompt x\udc80y", data={"p": ["\ud800"], "v": float("inf")}
    )
    return Analysis(path=path, sha256="a" * 64, verdict="inconclusive", evidence=[evidence])


def test_text_cleaning_replaces_and_counts_unencodable_code_points():
    assert clean_text("a\udc80b\ud800") == ("a\ufffdb\ufffd", 2)
    assert clean_text("plain") == ("plain", 0)
    assert decode_bytes(b"ok\xff\xfe") == ("ok\ufffd\ufffd", 2)
    assert loads_json('{"prompt": "x\\udc80y", "k\\ud800": 1}') == {"prompt": "x\ufffdy", "k\ufffd": 1}


def test_json_line_is_valid_utf8_whatever_the_evidence_holds():
    line = _surrogate_analysis().to_json()
    line.encode("utf-8")  # would raise on a lone surrogate
    record = json.loads(line)
    assert record["evidence"][0]["finding"] == "prompt x\ufffdy"
    assert record["evidence"][0]["data"] == {"p": ["\ufffd"], "v": None}  # infinity is not JSON


def test_json_safe_turns_numpy_and_tuples_into_plain_json():
    np = pytest.importorskip("numpy")
    assert json_safe({"a": (np.float32(0.5), np.int64(3)), 1: float("nan")}) == {"a": [0.5, 3], "1": None}


def test_non_utf8_path_is_readable_and_lossless_in_json():
    analysis = Analysis(path="/data/" + BAD_NAME, sha256="b" * 64, verdict="inconclusive")
    record = json.loads(analysis.to_json())
    assert record["path"] == "/data/bad_\\xff\\xfe.png"
    assert bytes.fromhex(record["path_bytes"]) == b"/data/bad_\xff\xfe.png"
    assert Analysis.from_dict(record).path == analysis.path
    assert "path_bytes" not in json.loads(Analysis(path="/ok/é.png", sha256=None).to_json())
    assert display_path("/ok/é.png") == "/ok/é.png"


def test_store_keeps_and_finds_a_non_utf8_file_name(tmp_path):
    path = os.path.join(
        os.fsdecode(bytes(tmp_path)) if isinstance(tmp_path, bytes) else str(tmp_path), BAD_NAME
    )
    Image.new("RGB", (16, 16), (1, 2, 3)).save(path, format="PNG")
    analyzer = Analyzer(AnalyzerConfig(sources=("metadata",), detectors=()))
    with ResultStore(tmp_path / "s.sqlite3") as store:
        (first,) = scan([path], analyzer, store)
        (second,) = scan([path], analyzer, store)
        (record,) = store.iter_records()
    assert first.analysis.error is None and not first.cached
    assert second.cached and second.analysis.path == path
    assert record["path"].endswith("bad_\\xff\\xfe.png")
    assert bytes.fromhex(record["path_bytes"]).endswith(b"bad_\xff\xfe.png")


def test_a_result_the_store_refuses_is_replaced_by_a_stored_typed_error(tmp_path):
    class Refusing(ResultStore):
        def put(self, analysis, version, *, stamp=None):
            if analysis.error is None:
                raise sqlite3.InterfaceError("Error binding parameter 3: type 'object' is not supported")
            super().put(analysis, version, stamp=stamp)

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with Refusing(tmp_path / "s.sqlite3") as store:
        stand_in = store_or_stand_in(store, _surrogate_analysis(str(tmp_path / "a.png")), "v1",
                                     FileStamp.of(tmp_path / "a.png"))  # fmt: skip
        (record,) = store.iter_records()
    assert stand_in.verdict == "error"
    assert stand_in.error["type"] == "unstorable_result"
    assert record["error"]["type"] == "unstorable_result"
    assert record["sha256"] == "a" * 64


def test_scan_cli_survives_surrogate_text_and_bad_names(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (24, 24), (9, 9, 9)).save(os.path.join(str(folder), BAD_NAME))
    Image.new("RGB", (24, 24), (200, 9, 9)).save(folder / "good.png")
    store = tmp_path / "s.sqlite3"
    arguments = ["scan", str(folder), "--json", "--store", str(store), "--no-default-detectors"]
    arguments += ["--file-timeout", "0"]
    for _ in range(2):  # the second run answers from the store
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout_bytes.decode("utf-8").splitlines()]
        assert sorted(line["path"].rsplit("/", 1)[1] for line in lines) == ["bad_\\xff\\xfe.png", "good.png"]


def test_a_source_returning_unencodable_text_is_stored_and_printed(tmp_path):
    Image.new("RGB", (16, 16), (4, 5, 6)).save(tmp_path / "a.png")
    analyzer = Analyzer(AnalyzerConfig(sources=("plugin_sources:lone_surrogate",), detectors=()))
    with ResultStore(tmp_path / "s.sqlite3") as store:
        (item,) = scan([tmp_path / "a.png"], analyzer, store)
        (record,) = store.iter_records()
    assert item.analysis.error is None
    assert record["evidence"][0]["finding"] == "prompt x\ufffdy"
    assert record["evidence"][0]["data"] == {"prompt": "\ufffd", "nan": None}
