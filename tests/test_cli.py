import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from typer.testing import CliRunner

from pixelsleuth.analysis import SCHEMA
from pixelsleuth.outputs.cli import app

runner = CliRunner()


def textured(seed: int, size: int = 96) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    (images / "nested").mkdir(parents=True)
    textured(1).save(images / "plain.png")
    info = PngInfo()
    info.add_text(
        "parameters",
        "a cat in a hat\nNegative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 96x96, Model: v1-5-pruned-emaonly",
    )
    textured(2).save(images / "nested" / "a1111.png", pnginfo=info)
    textured(3).save(images / "photo.jpg", quality=90)
    (images / "notes.txt").write_text("not scanned: not an image extension")
    return images


def scan_json(*args: str):
    result = runner.invoke(app, ["scan", "--json", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result, lines


def test_scan_folder_json_lines(folder, tmp_path):
    result, lines = scan_json("--store", str(tmp_path / "r.sqlite3"), str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(line["path"].rsplit("/", 1)[-1] for line in lines) == [
        "a1111.png",
        "photo.jpg",
        "plain.png",
    ]
    for line in lines:
        assert line["schema"] == SCHEMA
        assert line["error"] is None
        assert len(line["sha256"]) == 64
        assert line["verdict"] in {"ai-generated", "manipulated", "authentic", "inconclusive"}
    by_name = {line["path"].rsplit("/", 1)[-1]: line for line in lines}
    assert by_name["a1111.png"]["verdict"] == "ai-generated"
    assert by_name["a1111.png"]["score"] > 0.9
    assert by_name["plain.png"]["format"] == "PNG"


def test_failed_file_gives_exit_1_and_batch_goes_on(folder, tmp_path):
    data = (folder / "photo.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 2])
    (folder / "empty.png").write_bytes(b"")
    result, lines = scan_json("--no-store", str(folder), str(tmp_path / "missing.jpg"))
    assert result.exit_code == 1
    assert len(lines) == 6
    errors = {line["path"].rsplit("/", 1)[-1]: line["error"] for line in lines if line["verdict"] == "error"}
    assert errors["broken.jpg"]["type"] == "truncated_image"
    assert errors["empty.png"]["type"] == "empty_file"
    assert errors["missing.jpg"]["type"] == "file_unreadable"
    assert all(error["message"] and "Traceback" not in error["message"] for error in errors.values())


def test_usage_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["scan"]).exit_code == 2
    assert runner.invoke(app, ["scan", str(tmp_path / "*.nothing")]).exit_code == 2
    assert runner.invoke(app, ["scan", "--no-such-flag", str(tmp_path)]).exit_code == 2
    assert runner.invoke(app, ["scan", str(tmp_path)]).exit_code == 2  # empty folder: nothing to scan


def test_glob_argument(folder):
    result, lines = scan_json("--no-store", str(folder / "*.png"))
    assert result.exit_code == 0
    assert [line["path"].rsplit("/", 1)[-1] for line in lines] == ["plain.png"]


def test_rescan_uses_store(folder, tmp_path):
    store = str(tmp_path / "r.sqlite3")
    _, first_lines = scan_json("--store", store, str(folder))
    second, second_lines = scan_json("--store", store, str(folder))
    assert second.exit_code == 0
    assert "3 from the store" in second.stderr
    assert first_lines == second_lines


def test_table_output(folder):
    result = runner.invoke(app, ["scan", "--no-store", str(folder)])
    assert result.exit_code == 0
    assert "ai-generated" in result.stdout
    assert "AUTOMATIC1111" in result.stdout or "Generation parameters" in result.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_command(folder, tmp_path, fmt):
    store = str(tmp_path / "r.sqlite3")
    assert runner.invoke(app, ["scan", "--json", "--store", store, str(folder)]).exit_code == 0
    out = tmp_path / f"out.{fmt}"
    result = runner.invoke(app, ["export", "--store", store, "--format", fmt, "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    if fmt == "jsonl":
        assert len(out.read_text().splitlines()) == 3


def test_export_usage_errors(tmp_path):
    assert runner.invoke(app, ["export", "--store", str(tmp_path / "none.sqlite3")]).exit_code == 2
    assert runner.invoke(app, ["export", "--format", "xml", "--store", str(tmp_path / "x")]).exit_code == 2


def test_store_recognises_files_under_another_spelling_of_their_path(folder, tmp_path, monkeypatch):
    store = str(tmp_path / "r.sqlite3")
    assert scan_json("--store", store, str(folder))[0].exit_code == 0
    monkeypatch.chdir(folder)
    result, lines = scan_json("--store", store, ".")
    assert result.exit_code == 0
    assert "3 from the store" in result.stderr
    assert sorted(line["path"] for line in lines) == ["nested/a1111.png", "photo.jpg", "plain.png"]
