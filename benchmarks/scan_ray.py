"""Local engine vs Ray engine on the same folder of generated 1 MP JPEGs, in the same run.

    python benchmarks/scan_ray.py [--images 24] [--cpus 2] [--node-cpus 16] [--node-price 0.68]

Measured, in this order:
  local  - `Analyzer` built once, warmed up on one image, then every image in this process (what
           `scan --file-timeout 0` does), with --local-threads torch threads (default 1, as one Ray
           actor has: on a machine shared with other work, torch's default of one thread per core
           oversubscribes it and ran 15.6 s per image here instead of about 2);
  batch  - the local batch engine (`scan --workers --cpus`, the default of `scan` on several files):
           intake in --cpus worker processes, the detectors batched; started and warmed up first;
  ray    - `ray.init(num_cpus=--cpus)` (the start-up cost, alone), then `scan_on_ray` twice into fresh
           output folders: on --cpus images (one per actor: the fixed cost of a run, i.e. actors
           importing torch and building their analyzer, scheduling, writing a partition) and on all
           images. Steady-state rate = (images - cpus) / (time of the big run - time of the small run).
Per-image cost = CPU-seconds per image in the Ray steady state (actors x seconds / images).

Then a projection (not a measurement) of wall time and cost for 1 M images on N nodes, from that
per-image cost, under the assumptions printed with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_throughput import textured  # a sibling script, not a package

from pixelsleuth.pipeline import Analyzer, AnalyzerConfig


def make_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"1mp-{index:04d}.jpg"
        Image.fromarray(textured(1152, 864, index)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--local-threads", type=int, default=1, help="torch threads of the local run")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance (= actors)")
    parser.add_argument("--node-cpus", type=int, default=16, help="projection: CPUs (actors) per node")
    parser.add_argument("--node-price", type=float, default=0.68, help="projection: USD per node-hour")
    parser.add_argument("--nodes", default="1,4,16,64", help="projection: cluster sizes")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    config = AnalyzerConfig()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = make_images(folder, args.images)
        print(f"{len(paths)} generated 1 MP JPEGs (1152 x 864, q90); {os.cpu_count()} CPUs visible")

        import torch

        torch.set_num_threads(args.local_threads)
        start = time.perf_counter()
        analyzer = Analyzer(config)
        analyzer.analyze(paths[0])
        local_build = time.perf_counter() - start
        start = time.perf_counter()
        for path in paths:
            assert analyzer.analyze(path).error is None
        local_time = time.perf_counter() - start
        local_rate = len(paths) / local_time
        del analyzer

        from pixelsleuth.outputs.engine import BatchEngine

        start = time.perf_counter()
        with BatchEngine(config, workers=args.cpus, file_timeout=60) as engine:
            list(engine.scan(paths[:1]))
            batch_build = time.perf_counter() - start
            start = time.perf_counter()
            assert not any(item.analysis.error for item in engine.scan(paths))
            batch_time = time.perf_counter() - start
        batch_rate = len(paths) / batch_time

        import ray

        from pixelsleuth.outputs.ray_engine import list_files, scan_on_ray

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - start
        ray.data.DataContext.get_current().enable_progress_bars = False
        tasks, _ = list_files([str(folder)])
        small = sorted(tasks, key=lambda task: task.path)[: args.cpus]
        start = time.perf_counter()
        scan_on_ray(small, config, Path(tmp) / "out-small", file_timeout=0, batch_size=1)
        small_time = time.perf_counter() - start
        start = time.perf_counter()
        result = scan_on_ray(tasks, config, Path(tmp) / "out-all", file_timeout=0, batch_size=2)
        big_time = time.perf_counter() - start
        ray.shutdown()
        assert result.analysed == len(paths) and not result.counts["error"], result

    steady_rate = (len(paths) - args.cpus) / max(big_time - small_time, 1e-9)
    cpu_s = args.cpus / steady_rate  # CPU-seconds per image, one actor per CPU
    print()
    print(f"{'engine':28} {'wall s':>8} {'img/s':>8}")
    local_label = f"local ({args.local_threads} torch thread)"
    print(f"{local_label:28} {local_time:8.2f} {local_rate:8.2f}   (+ {local_build:.1f} s to build)")
    batch_label = f"local batch engine ({args.cpus} cores)"
    print(f"{batch_label:28} {batch_time:8.2f} {batch_rate:8.2f}   (+ {batch_build:.1f} s to start)")
    print(f"{f'ray end to end ({args.cpus} actors)':28} {big_time:8.2f} {len(paths) / big_time:8.2f}")
    print(f"{'ray steady state':28} {'':8} {steady_rate:8.2f}")
    print(
        f"ray.init (local instance): {ray_start:.1f} s; fixed cost of a Ray run ({args.cpus} images): "
        f"{small_time:.1f} s"
    )
    print(f"per image: local {1 / local_rate:.2f} s wall; ray {cpu_s:.2f} CPU-s ({args.cpus} actors x 1 CPU)")

    print()
    print("PROJECTION for 1,000,000 images (not a measurement). Assumptions: images like these (1 MP")
    print(f"JPEG, default analysis, no --localize); {cpu_s:.2f} CPU-s per image as measured here, on every")
    print(f"CPU of every node; {args.node_cpus} actors per node (one per CPU); linear scaling (files are")
    print("independent; the driver only writes partitions); reading the files costs nothing extra (same")
    print("region object store or shared disk); a fixed start of the measured Ray run plus 60 s for")
    print(f"nodes to join; ${args.node_price:.2f} per node-hour, billed by the second.")
    print(f"{'nodes':>6} {'actors':>7} {'wall h':>8} {'USD':>8}")
    for nodes in (int(text) for text in args.nodes.split(",")):
        actors = nodes * args.node_cpus
        wall = 1_000_000 * cpu_s / actors + small_time + ray_start + 60
        print(f"{nodes:6d} {actors:7d} {wall / 3600:8.2f} {nodes * args.node_price * wall / 3600:8.2f}")


if __name__ == "__main__":
    main()
