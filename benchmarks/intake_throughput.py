"""Intake + provenance throughput on 1-megapixel JPEGs, against bare Pillow decode of the same files.

Both are timed in the same run, alternating passes, and reported as a ratio (ours / bare, in images
per second; 1.0 means provenance analysis is free). Also prints where the time goes, per stage.

    python benchmarks/intake_throughput.py [--images 48] [--rounds 7] [--quality 90] [--subsampling 4:2:0]

Photos come from --source when it exists (centre-cropped and resized to 1152 x 864, saved as JPEG
with their EXIF kept); otherwise textured images are generated.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pixelsleuth.evidence import PROVENANCE_SOURCES, load_source
from pixelsleuth.intake import load_image
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

SIZE = (1152, 864)  # 0.995 megapixels


def upright_exif(exif: bytes) -> bytes:
    """Set EXIF orientation to 1 (the pixels were turned upright), keeping every other byte."""
    if not exif.startswith(b"Exif\0\0"):
        return exif
    tiff = bytearray(exif[6:])
    endian = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(endian + "I", tiff, 4)
        (count,) = struct.unpack_from(endian + "H", tiff, ifd)
        for index in range(count):
            entry = ifd + 2 + 12 * index
            if struct.unpack_from(endian + "H", tiff, entry)[0] == 0x0112:
                struct.pack_into(endian + "H", tiff, entry + 8, 1)
    except struct.error:
        return b""
    return b"Exif\0\0" + bytes(tiff)


def make_corpus(folder: Path, count: int, source: Path | None, quality: int, subsampling: str) -> list[Path]:
    photos = []
    if source is not None and source.is_dir():
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        if photos:
            with Image.open(photos[index % len(photos)]) as original:
                exif = upright_exif(original.info.get("exif", b""))
                image = ImageOps.fit(ImageOps.exif_transpose(original).convert("RGB"), SIZE)
        else:
            base = rng.normal(128, 40, (SIZE[1] // 8, SIZE[0] // 8, 3)).clip(0, 255).astype(np.uint8)
            image = Image.fromarray(base).resize(SIZE, Image.Resampling.BICUBIC)
            exif = b""
        path = folder / f"img{index:03d}.jpg"
        image.save(path, quality=quality, subsampling=subsampling, exif=exif)
        paths.append(path)
    return paths


def bare_decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def time_pass(function: Callable[[Path], object], paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        function(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the test files")
    parser.add_argument(
        "--subsampling",
        default="4:2:0",
        choices=["4:4:4", "4:2:2", "4:2:0"],
        help="chroma subsampling; 4:4:4 at high quality keeps a watermark readable: its check runs in full",
    )
    parser.add_argument(
        "--source", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real"
    )
    args = parser.parse_args()

    analyzer = Analyzer(AnalyzerConfig(sources=tuple(PROVENANCE_SOURCES), detectors=()))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_corpus(Path(tmp), args.images, args.source, args.quality, args.subsampling)
        megabytes = sum(p.stat().st_size for p in paths) / 2**20
        print(
            f"{len(paths)} JPEGs of {SIZE[0]}x{SIZE[1]}, quality {args.quality}, {args.subsampling} "
            f"({megabytes:.1f} MiB), {args.rounds} rounds"
        )
        for path in paths[:4]:  # warm caches and lazy imports
            bare_decode(path)
            analyzer.analyze(path)

        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(time_pass(bare_decode, paths))
            ours.append(time_pass(analyzer.analyze, paths))
        bare_s, ours_s = statistics.median(bare), statistics.median(ours)
        n = len(paths)
        print(f"bare Pillow decode:            {n / bare_s:7.1f} img/s ({1000 * bare_s / n:.2f} ms)")
        print(f"pixelsleuth intake+provenance: {n / ours_s:7.1f} img/s ({1000 * ours_s / n:.2f} ms)")
        print(f"ratio (ours / bare throughput): {bare_s / ours_s:.3f}")

        print("\nper stage, ms per image (median of rounds):")
        images = [load_image(p) for p in paths]
        stages: dict[str, Callable[[], object]] = {
            "intake (load_image)": lambda: [load_image(p) for p in paths],
        }
        for name in analyzer.config.sources:
            source = load_source(name)
            stages[name] = lambda source=source: [source(image) for image in images]
        for name, run in stages.items():
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            print(f"  {name:24s} {1000 * statistics.median(times) / len(paths):6.2f}")


if __name__ == "__main__":
    main()
