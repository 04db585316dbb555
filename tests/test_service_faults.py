"""`pixelsleuth serve` as a real process on 127.0.0.1: killed with SIGKILL mid-batch and started again
on the same store, the batch completes with every file exactly once; hostile uploads over real HTTP.

The server runs without the default detectors (fast). Readiness is read from uvicorn's own log line and
progress from the batch endpoint's long poll (`?wait=`), so the tests never sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the `serve` extra is not installed")
pytest.importorskip("fastapi", reason="the `serve` extra is not installed")
pytest.importorskip("uvicorn", reason="the `serve` extra is not installed")

from imagegen import encode, photo_like_rgb  # noqa: E402

COUNT = 6  # images in the killed batch
STARTUP_LINES = 200  # log lines read before giving up on the server's readiness line


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _server(
    store: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = _free_port()
    command = [sys.executable, "-m", "pixelsleuth", "serve", "--port", str(port), "--store", str(store)]
    command += ["--no-default-detectors", "--workers", "1", "--log-level", "info", *extra]
    environment = {**os.environ, "PIXELSLEUTH_RATE_LIMIT_PER_MINUTE": "0", **(env or {})}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment
    )
    try:
        assert process.stderr is not None
        for _ in range(STARTUP_LINES):
            line = process.stderr.readline()
            if not line or "Uvicorn running on" in line:
                break
        assert process.poll() is None, "the server stopped while starting"
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _batch_files(count: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        (
            "files",
            (
                f"img-{index:02d}.jpg",
                encode(photo_like_rgb(192, 144, seed=100 + index), "JPEG"),
                "image/jpeg",
            ),
        )
        for index in range(count)
    ]


def test_a_batch_survives_sigkill_and_completes_exactly_once(tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite3"
    files = _batch_files(COUNT)
    with _server(store) as (base, process):
        # with localization (about a second an image): the rest of the batch takes far longer than the
        # kill needs to land
        created = httpx.post(f"{base}/v1/batches", files=files, params={"localize": "true"}, timeout=60)
        assert created.status_code == 202, created.text
        job = created.json()["id"]
        partial = httpx.get(f"{base}/v1/batches/{job}", params={"wait": 30, "min_done": 1}, timeout=60).json()
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert 1 <= partial["done"] < partial["total"] == COUNT
    with sqlite3.connect(store) as db:  # what survived the kill
        done_at_kill = db.execute(
            "SELECT COUNT(*) FROM service_batch_items WHERE batch_id = ? AND done = 1", (job,)
        ).fetchone()[0]
    assert done_at_kill < COUNT

    with _server(store) as (base, _):
        final = httpx.get(f"{base}/v1/batches/{job}", params={"wait": 60}, timeout=90).json()
    assert final["status"] == "done" and final["done"] == final["total"] == COUNT and final["failed"] == 0
    assert [item["position"] for item in final["results"]] == list(range(COUNT))  # each file exactly once
    assert sorted(item["name"] for item in final["results"]) == [
        f"img-{index:02d}.jpg" for index in range(COUNT)
    ]
    ids = [item["id"] for item in final["results"]]
    assert len(set(ids)) == COUNT and all(ids)
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0] == COUNT  # no duplicates
        rows = db.execute("SELECT COUNT(*) FROM service_batch_items WHERE batch_id = ?", (job,)).fetchone()[0]
        assert rows == COUNT


def test_results_survive_a_restart_and_hostile_uploads_get_typed_errors(tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite3"
    image = encode(photo_like_rgb(128, 96, seed=7), "JPEG", quality=90)
    env = {"PIXELSLEUTH_MAX_UPLOAD_BYTES": str(256 * 1024)}
    with _server(store, env=env) as (base, _):
        first = httpx.post(f"{base}/v1/analyze", files={"file": ("a.jpg", image)}, timeout=60).json()
        hostile = {
            "empty": (b"", 400, "empty_file"),
            "text": (b"hello, I am not a picture\n" * 10, 415, "not_an_image"),
            "truncated": (image[: len(image) // 3], 422, "truncated_image"),
            "over-limit": (b"\xff\xd8\xff" + bytes(3 * 2**20), 413, "file_too_large"),
        }
        for label, (data, status, kind) in hostile.items():
            response = httpx.post(
                f"{base}/v1/analyze", files={"file": ("x.jpg", data, "image/jpeg")}, timeout=60
            )
            assert response.status_code == status, (label, response.text)
            assert response.json()["error"]["type"] == kind, label
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200  # still serving
    with _server(store, env=env) as (base, _):
        again = httpx.get(f"{base}/v1/analyses/{first['id']}", timeout=30).json()
        assert again["analysis"] == first["analysis"]
        assert httpx.get(f"{base}{first['image_url']}", timeout=30).status_code == 200
