"""FSD's speed on one core: today's descriptions against the pre-issue-12 ones, same tiles, same run.

    python benchmarks/fsd_speed.py [--tiles 32] [--rounds 3] [--source ../shared/data/real]

The embedded FSD detector scores 256-pixel tiles cut from the genuine photos in --source (seeded
textures when it is absent), one torch thread, `predict` 16 tiles at a time (the detectors' pixel
budget: one 1 MP image). Rounds alternate today's descriptions (`square_grams`, the grouped convolution)
and the pre-issue-12 ones (`benchmarks/fsd_before.py`); medians. Printed: ms per tile of each, the ratio,
the largest difference between their probabilities, the same for the Gram sums alone on the residual
maps of one tile batch at each scale, and the whole default analysis (`Analyzer.analyze`: intake,
provenance, the detectors within their pixel budget, the verdict) of --files 1 MP and 12 MP JPEGs made
from the photos, one core, each way.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import fsd_before
import numpy as np
import torch
from PIL import Image
from scan_throughput import SIZES, make_images, photo_files  # a sibling script, not a package

from pixelsleuth.detectors import create
from pixelsleuth.detectors.defaults import embedded_detectors
from pixelsleuth.forensics import selfdescription
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

TILE = 256


def tiles_from(source: Path | None, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    photos = photo_files(source)
    tiles = []
    for index in range(count):
        if photos:
            with Image.open(photos[index % len(photos)]) as photo:
                pixels = np.asarray(photo.convert("RGB"))
            if min(pixels.shape[:2]) >= TILE:
                top = int(rng.integers(0, pixels.shape[0] - TILE + 1))
                left = int(rng.integers(0, pixels.shape[1] - TILE + 1))
                tiles.append(np.ascontiguousarray(pixels[top : top + TILE, left : left + TILE]))
                continue
        tiles.append(rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--files", type=int, default=3, help="files of each size for the whole analysis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tiles = tiles_from(args.source if args.source.is_dir() else None, args.tiles)
    weights = dict(embedded_detectors())["fsd"]
    detector = create("fsd", weights)

    originals = (selfdescription.phase_grams, selfdescription._plane_major_residuals)

    def today() -> None:
        selfdescription.phase_grams, selfdescription._plane_major_residuals = originals

    runs: dict[str, list[float]] = {"today": [], "before": []}
    scores: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, switch in (("today", today), ("before", fsd_before.use_fsd_before_issue_12)):
            switch()
            detector.predict(tiles[:16], batch_size=16)  # warm-up
            start = time.perf_counter()
            scores[name] = detector.predict(tiles, batch_size=16)
            runs[name].append((time.perf_counter() - start) / len(tiles) * 1000)
    today()
    before_ms, today_ms = statistics.median(runs["before"]), statistics.median(runs["today"])
    print(f"{len(tiles)} tiles of {TILE} px, 1 thread, {args.rounds} rounds (medians)")
    print(
        f"fsd predict   before {before_ms:7.1f} ms/tile   today {today_ms:7.1f} ms/tile   "
        f"x {before_ms / today_ms:.2f}"
    )
    print(f"largest probability difference: {np.abs(scores['today'] - scores['before']).max():.2e}")

    pixels = torch.from_numpy(np.stack(tiles[:16])).permute(0, 3, 1, 2).float()
    config = selfdescription.DescriptionConfig()
    planes = selfdescription.channel_planes(pixels, config.channels)
    offsets = [*selfdescription.neighbour_offsets(config.radius), (0, 0)]
    bank = detector.model.filters
    for level, scaled in enumerate(selfdescription.average_pool_pyramid(planes, config.scales)):
        maps = selfdescription.prediction_residuals(scaled, bank[level]).flatten(0, 1)
        timings: dict[str, list[float]] = {"views": [], "square": []}
        for _ in range(args.rounds):
            for name in timings:
                start = time.perf_counter()
                if name == "views":
                    selfdescription._phase_grams_from_views(maps, offsets, config.radius, 1)
                else:
                    selfdescription.phase_grams(maps, offsets, config.radius)
                timings[name].append(time.perf_counter() - start)
        views, square = (statistics.median(timings[name]) * 1000 for name in ("views", "square"))
        print(
            f"Gram sums, scale {config.scales[level]} ({maps.shape[-1]} px maps, {maps.shape[0]} maps): "
            f"stacked views {views:6.1f} ms   square_grams {square:6.1f} ms   x {views / square:.2f}"
        )

    analyzer = Analyzer(AnalyzerConfig())
    with tempfile.TemporaryDirectory() as folder:
        for size_name, size in SIZES.items():
            paths = make_images(Path(folder), size, args.files, args.source if args.source.is_dir() else None)
            analyzer.analyze(paths[0])  # warm-up
            seconds: dict[str, list[float]] = {"today": [], "before": []}
            for _ in range(args.rounds):
                for name, switch in (("today", today), ("before", fsd_before.use_fsd_before_issue_12)):
                    switch()
                    for path in paths:
                        start = time.perf_counter()
                        analyzer.analyze(path)
                        seconds[name].append(time.perf_counter() - start)
            today()
            before_s, today_s = (statistics.median(seconds[name]) for name in ("before", "today"))
            print(
                f"whole analysis, {size_name}: before {before_s:6.2f} s   today {today_s:6.2f} s   "
                f"x {before_s / today_s:.2f}"
            )


if __name__ == "__main__":
    main()
