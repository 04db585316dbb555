"""Default `scan` analysis throughput against bare decode, on 1 MP JPEGs and 12 MP photos, same run.

    python benchmarks/scan_throughput.py [--images 8] [--rounds 3] [--sizes 1mp,12mp] [--source DIR]

For each size, the same files are timed twice per round, alternating: bare decode
(`np.asarray(Image.open(path).convert("RGB"))`) and the whole default analysis of one file
(`Analyzer().analyze(path)`: intake, provenance, the spectral check, the embedded detectors within
their pixel budget, the fused score, the verdict). Printed: images/s of each, the ratio analysis / bare
(how many decodes one analysis costs), and seconds per image. The analyzer is built (and warmed up on
one image) before timing: `scan` builds it once per batch.

Photos come from --source when it exists (resized and centre-cropped to the size); otherwise textured
images are generated.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixelsleuth.pipeline import Analyzer

SIZES = {"1mp": (1152, 864), "12mp": (4000, 3000)}


def textured(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), dtype=np.int16)
    image = image + rng.integers(-6, 7, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_images(folder: Path, size: tuple[int, int], count: int, source: Path | None) -> list[Path]:
    width, height = size
    photos = (
        sorted(p for p in source.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if source
        else []
    )
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


def timed(function, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        function(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", default="1mp,12mp")
    parser.add_argument("--source", type=Path, default=Path("../shared/data/real"))
    args = parser.parse_args()
    source = args.source if args.source.is_dir() else None
    analyzer = Analyzer()

    def bare(path: Path) -> None:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB"))

    def analyse(path: Path) -> None:
        analysis = analyzer.analyze(path)
        assert analysis.error is None, analysis.error

    print(f"detectors: {', '.join(spec.fingerprint for spec in analyzer.config.detectors) or 'none'}")
    print(f"fusion card: {analyzer.config.fusion or 'none'}; images from {source or 'generated textures'}")
    columns = ("images", "bare img/s", "scan img/s", "scan / bare", "s per scan")
    print(f"{'size':6} " + " ".join(f"{column:>11}" for column in columns))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sizes.split(","):
            paths = make_images(Path(tmp), SIZES[name], args.images, source)
            analyse(paths[0])  # warm-up: first-call costs (fast model build) are paid once per batch
            bare_times, scan_times = [], []
            for _ in range(args.rounds):
                bare_times.append(timed(bare, paths))
                scan_times.append(timed(analyse, paths))
            bare_rate = len(paths) / statistics.median(bare_times)
            scan_rate = len(paths) / statistics.median(scan_times)
            print(
                f"{name:6} {len(paths):11d} {bare_rate:11.2f} {scan_rate:11.2f} "
                f"{scan_rate / bare_rate:11.4f} {1 / scan_rate:11.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
