"""A scan killed with SIGKILL mid-batch and run again completes without losing or duplicating results."""

import json
import signal
import sqlite3
import subprocess
import sys

import numpy as np
from PIL import Image

N_IMAGES = 60


def test_kill_and_resume(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for index in range(N_IMAGES):
        pixels = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:03d}.png")
    store = tmp_path / "results.sqlite3"
    command = [sys.executable, "-m", "pixelsleuth", "scan", "--json", "--store", str(store), str(folder)]

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    emitted = [json.loads(first.stdout.readline()) for _ in range(3)]  # each line is written after its commit
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL

    with sqlite3.connect(store) as db:
        rows_after_kill = dict(db.execute("SELECT sha256, created_at FROM analyses").fetchall())
    assert {record["sha256"] for record in emitted} <= set(rows_after_kill)
    assert len(rows_after_kill) < N_IMAGES, "the first scan finished before it was killed"

    second = subprocess.run(command, capture_output=True, text=True, check=False)
    assert second.returncode == 0, second.stderr
    lines = [json.loads(line) for line in second.stdout.splitlines()]
    assert len(lines) == N_IMAGES
    assert f"({len(rows_after_kill)} from the store)" in second.stderr

    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT sha256, created_at FROM analyses").fetchall()
    assert len(rows) == N_IMAGES
    assert len({sha for sha, _ in rows}) == N_IMAGES
    assert {line["sha256"] for line in lines} == {sha for sha, _ in rows}
    final = dict(rows)
    assert all(final[sha] == created for sha, created in rows_after_kill.items())  # kept, not redone
