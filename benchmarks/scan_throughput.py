"""`scan` throughput: bare decode, the one-at-a-time scan and the batch engine, same files, same run.

    python benchmarks/scan_throughput.py [--images 48] [--images-12mp 8] [--rounds 1] [--workers N]
        [--sizes 1mp,12mp] [--source DIR] [--before] [--batch-tiles 32]

For each size, the same files are timed, alternating per round: bare decode
(`np.asarray(Image.open(path).convert("RGB"))`), today's one-at-a-time scan (`scan(paths,
IsolatedAnalyzer(config))`: one worker process, the file's whole default analysis — intake, provenance,
the spectral check, the embedded detectors within their pixel budget, the fused score, the verdict)
and the batch engine (`BatchEngine(config, workers=N).scan(paths)`, what `scan --workers N` runs).
Both scans are started and warmed on one file before timing (`scan` starts them once per batch; the
start-up is printed apart) and run without a store. Printed per size: images/s of each, the ratios
to the one-at-a-time scan and to decode, and CPU utilisation = CPU seconds of this process and its
workers / wall seconds / cores.

Photos come from --source when it exists (resized and centre-cropped to the size); otherwise textured
images are generated.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fsd_before import ENVIRONMENT_SWITCH, apply_if_switched
from PIL import Image

from pixelsleuth.outputs.engine import BatchEngine, default_workers
from pixelsleuth.outputs.scan import scan
from pixelsleuth.outputs.worker import IsolatedAnalyzer
from pixelsleuth.pipeline import AnalyzerConfig

SIZES = {"1mp": (1152, 864), "12mp": (4000, 3000)}
apply_if_switched()  # in the spawned worker of the --before scan


def textured(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.int16)
    image = image + rng.integers(-6, 7, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def photo_files(source: Path | None) -> list[Path]:
    """The JPEG and PNG files under `source`, sorted (none when it is None)."""
    if source is None:
        return []
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def make_images(folder: Path, size: tuple[int, int], count: int, source: Path | None) -> list[Path]:
    width, height = size
    photos = photo_files(source)
    paths = []
    for index in range(count):
        if photos:
            with Image.open(photos[index % len(photos)]) as photo:
                photo = photo.convert("RGB")
                scale = max(width / photo.width, height / photo.height)
                photo = photo.resize((round(photo.width * scale) + 1, round(photo.height * scale) + 1))
                left, top = (photo.width - width) // 2, (photo.height - height) // 2
                pixels = np.asarray(photo.crop((left, top, left + width, top + height)))
        else:
            pixels = textured(width, height, index)
        path = folder / f"{width}x{height}-{index:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its live child processes (from /proc)."""
    own = os.times()
    total = own.user + own.system
    tick = os.sysconf("SC_CLK_TCK")
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def timed(run, paths: list[Path]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its workers) of `run(paths)`."""
    cpu, start = tree_cpu_seconds(), time.perf_counter()
    run(paths)
    return time.perf_counter() - start, tree_cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48, help="1 MP files")
    parser.add_argument("--images-12mp", type=int, default=8, help="12 MP files")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=default_workers(2))
    parser.add_argument("--sizes", default="1mp,12mp")
    parser.add_argument("--source", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--before", action="store_true", help="also the scan as it was before issue 12")
    parser.add_argument(
        "--batch-tiles",
        default="",
        help="also the engine with these crops per detector batch, e.g. 32 (comma-separated)",
    )
    args = parser.parse_args()
    source = args.source if args.source.is_dir() else None
    cores = default_workers(2)
    config = AnalyzerConfig()

    def bare(paths: list[Path]) -> None:
        for path in paths:
            with Image.open(path) as image:
                np.asarray(image.convert("RGB"))

    before = None
    if args.before:
        os.environ[ENVIRONMENT_SWITCH] = "1"
        before = IsolatedAnalyzer(config)  # its worker starts (and switches) here
        del os.environ[ENVIRONMENT_SWITCH]
    started = time.perf_counter()
    one = IsolatedAnalyzer(config)
    one_start = time.perf_counter() - started
    started = time.perf_counter()
    engine = BatchEngine(config, workers=args.workers)
    engine_start = time.perf_counter() - started

    def one_at_a_time(paths: list[Path], analyzer: IsolatedAnalyzer = one) -> None:
        for item in scan(paths, analyzer):
            assert item.analysis.error is None, item.analysis.error

    def batched(paths: list[Path]) -> None:
        for item in engine.scan(paths):
            assert item.analysis.error is None, item.analysis.error

    print(f"detectors: {', '.join(spec.fingerprint for spec in config.detectors) or 'none'}; cores: {cores}")
    print(
        f"images from {source or 'generated textures'}; engine: {args.workers} intake + "
        f"{args.workers} detector workers, runtimes {engine.runtimes}"
    )
    print(f"start-up: one-at-a-time {one_start:.1f} s, engine {engine_start:.1f} s (not in the rates)")
    header = ("size", "images", "method", "img/s", "x one-at-a-time", "x before", "x decode", "CPU util")
    print(
        f"{header[0]:6} {header[1]:>6} {header[2]:>15} {header[3]:>8} {header[4]:>16} {header[5]:>9} "
        f"{header[6]:>9} {header[7]:>9}"
    )
    counts = {"1mp": args.images, "12mp": args.images_12mp}
    methods = {"decode": bare, "one-at-a-time": one_at_a_time, "batched": batched}
    for tiles in filter(None, args.batch_tiles.split(",")):

        def batched_with(paths: list[Path], tiles: int = int(tiles)) -> None:
            default, engine.batch_tiles = engine.batch_tiles, tiles
            try:
                batched(paths)
            finally:
                engine.batch_tiles = default

        methods[f"batched@{tiles}"] = batched_with
    if before is not None:
        methods["before"] = lambda paths: one_at_a_time(paths, before)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.sizes.split(","):
                paths = make_images(Path(tmp), SIZES[name], counts[name], source)
                one_at_a_time(paths[:1])  # warm-up: first-call costs are paid once per batch
                if before is not None:
                    one_at_a_time(paths[:1], before)
                batched(paths[:2])
                times: dict[str, list[tuple[float, float]]] = {method: [] for method in methods}
                for _ in range(args.rounds):
                    for method, run in methods.items():
                        times[method].append(timed(run, paths))
                rates, utilisation = {}, {}
                for method, runs in times.items():
                    wall = statistics.median(run[0] for run in runs)
                    cpu = statistics.median(run[1] for run in runs)
                    rates[method] = len(paths) / wall
                    utilisation[method] = cpu / wall / cores
                for method in methods:
                    versus_before = f"{rates[method] / rates['before']:9.2f}" if before else f"{'':9}"
                    print(
                        f"{name:6} {len(paths):6d} {method:>15} {rates[method]:8.2f} "
                        f"{rates[method] / rates['one-at-a-time']:16.2f} {versus_before} "
                        f"{rates[method] / rates['decode']:9.4f} {utilisation[method]:9.0%}",
                        flush=True,
                    )
    finally:
        one.close()
        engine.close()
        if before is not None:
            before.close()


if __name__ == "__main__":
    main()
