"""Load test of `pixelsleuth serve`: N concurrent clients upload images for a fixed time.

Starts a real server (`pixelsleuth serve`, its own store in a temporary folder) on a free port of
127.0.0.1, warms it with one request, then runs `--clients` threads, each with its own httpx client,
uploading for `--seconds`. Every upload is a distinct file (a JPEG comment carries a counter), so the
store never answers from a previous result. Prints the count, throughput, p50/p99 latency, every
status other than 200 (5xx separately), the server's peak RSS (and its worker processes'), and the
in-process `Analyzer.analyze` cost of the same image measured in the same run, with their ratio.

    python benchmarks/service_load.py [--clients 4] [--seconds 30] [--workers 1] [--size 1024x768]
                                      [--no-default-detectors]
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from pixelsleuth.outputs.service.config import ServiceConfig
from pixelsleuth.outputs.service.engine import analyzer_config
from pixelsleuth.pipeline import Analyzer


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([255 * x / width, 255 * y / height, 127 + 100 * np.sin(x / 7) * np.cos(y / 5)], -1)
    return np.clip(pixels + rng.normal(0, 6, pixels.shape) + 0.5, 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    path = Path(tempfile.mkstemp(suffix=".jpg")[1])
    Image.fromarray(rgb).save(path, "JPEG", quality=90)
    data = path.read_bytes()
    path.unlink()
    return data


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: the same pixels, a different SHA-256."""
    payload = text.encode("ascii")
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of one process, in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [grandchild for child in found for grandchild in children(child)]


def start_server(store: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    command = [sys.executable, "-m", "pixelsleuth", "serve", "--port", str(port), "--store", str(store)]
    command += ["--workers", str(args.workers), "--log-level", "warning"]
    if args.no_default_detectors:
        command.append("--no-default-detectors")
    env = {**os.environ, "PIXELSLEUTH_RATE_LIMIT_PER_MINUTE": "0", "PIXELSLEUTH_MAX_CONCURRENT_PER_KEY": "0"}
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--no-default-detectors", action="store_true")
    parser.add_argument("--inprocess-rounds", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    base_jpeg = jpeg_bytes(photo_like(width, height))
    counter = itertools.count()

    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = start_server(Path(folder) / "results.sqlite3", port, args)
        url = f"http://127.0.0.1:{port}/v1/analyze"
        try:
            warm = httpx.post(url, files={"file": ("warm.jpg", with_comment(base_jpeg, "warm"))}, timeout=600)
            warm.raise_for_status()
            latencies: list[float] = []
            statuses: Counter[int] = Counter()
            lock = threading.Lock()
            stop_at = time.monotonic() + args.seconds

            def client(index: int) -> None:
                with httpx.Client(timeout=600) as http:
                    while time.monotonic() < stop_at:
                        data = with_comment(base_jpeg, f"load {index} {next(counter)}")
                        started = time.perf_counter()
                        try:
                            status = http.post(
                                url, files={"file": ("load.jpg", data, "image/jpeg")}
                            ).status_code
                        except httpx.HTTPError:
                            status = 599  # connection-level failure, counted as a 5xx
                        elapsed = time.perf_counter() - started
                        with lock:
                            latencies.append(elapsed)
                            statuses[status] += 1

            began = time.monotonic()
            threads = [threading.Thread(target=client, args=(index,)) for index in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.monotonic() - began
            server_peak = peak_rss_kib(server.pid)
            worker_peaks = [peak_rss_kib(child) for child in children(server.pid)]
        finally:
            server.terminate()
            server.wait(timeout=30)

    # The same image analysed in this process, the way `scan --file-timeout 0` does.
    config = analyzer_config(
        ServiceConfig(
            store=Path(tempfile.gettempdir()) / "unused.sqlite3",
            default_detectors=not args.no_default_detectors,
        ),
        localize=False,
    )
    analyzer = Analyzer(config)
    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        handle.write(with_comment(base_jpeg, "in-process"))
        handle.flush()
        analyzer.analyze(handle.name)  # warm
        costs = []
        for _ in range(args.inprocess_rounds):
            started = time.perf_counter()
            analyzer.analyze(handle.name)
            costs.append(time.perf_counter() - started)
    in_process = statistics.median(costs)

    ok = statuses[200]
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] if ordered else float("nan")
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")
    fivexx = sum(count for status, count in statuses.items() if status >= 500)
    detectors = "without default detectors" if args.no_default_detectors else "default detectors"
    setup = f"{args.clients} clients x {args.seconds:g} s, {args.workers} worker(s), {width}x{height} JPEG"
    print(f"service load: {setup}, {detectors}")
    print(f"  requests: {len(latencies)} ({ok} ok, {fivexx} 5xx, statuses {dict(sorted(statuses.items()))})")
    print(f"  throughput: {ok / wall:.2f} analyses/s")
    print(f"  latency: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    workers_mib = [round(kib / 1024) for kib in worker_peaks]
    print(f"  peak RSS: server {server_peak / 1024:.0f} MiB, its child processes {workers_mib} MiB")
    print(f"  in-process Analyzer.analyze: {in_process * 1000:.0f} ms (median of {args.inprocess_rounds})")
    print(f"  ratio p50 latency / in-process: {p50 / in_process:.2f}")
    per_analysis = wall / max(ok, 1) * args.workers
    ratio = per_analysis / in_process
    print(f"  ratio worker time per served analysis (wall / ok x workers) / in-process: {ratio:.2f}")


if __name__ == "__main__":
    main()
