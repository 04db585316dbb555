"""Forge throughput: 256 x 256 crops laundered through each generator family and post-processed,
against plain Pillow decode + PNG encode of the same crops, timed in the same run.

For every family that reconstructs, one pass decodes each crop (PNG bytes in memory), runs
``family.reconstruct`` and `PostProcess` (crop or resize, then PNG / JPEG / WebP), as `forge_dataset`
does for each fake; the baseline pass decodes the same crops and encodes them as PNG. Passes alternate,
each is repeated --rounds times, and the median is reported in images per second with the ratio
(forge / baseline throughput; 1.0 would mean laundering is as cheap as re-saving the crop).

    python benchmarks/forge_throughput.py [--images 24] [--rounds 3] [--families a,b] [--models DIR]

Crops come from --source when it exists, else textured images are generated. Families are untrained
unless --models holds their weights (the speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelsleuth.forge.build import PHOTO_EXTENSIONS
from pixelsleuth.forge.families import list_families, load_family, untrained_family
from pixelsleuth.forge.postprocess import PostProcess
from pixelsleuth.intake import load_image

CROP = 256


def make_crops(count: int, source: Path | None) -> list[bytes]:
    """`count` 256 x 256 crops as PNG bytes: random windows of photos from `source`, or generated."""
    rng = np.random.default_rng(0)
    photos = []
    if source is not None and source.is_dir():
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in PHOTO_EXTENSIONS)
    crops = []
    index = 0
    while len(crops) < count:
        if photos:
            rgb = load_image(photos[index % len(photos)]).rgb
            index += 1
            if min(rgb.shape[:2]) < CROP:
                continue
            top = int(rng.integers(0, rgb.shape[0] - CROP + 1))
            left = int(rng.integers(0, rgb.shape[1] - CROP + 1))
            rgb = rgb[top : top + CROP, left : left + CROP]
        else:
            coarse = rng.normal(128, 50, (CROP // 8, CROP // 8, 3)).clip(0, 255).astype(np.uint8)
            smooth = np.asarray(Image.fromarray(coarse).resize((CROP, CROP), Image.Resampling.BICUBIC))
            rgb = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "PNG")
        crops.append(buffer.getvalue())
    return crops


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def baseline(data: bytes, rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(decode(data)).save(buffer, "PNG")
    return buffer.getvalue()


def forge_one(family: object, post: PostProcess) -> Callable[[bytes, np.random.Generator], bytes]:
    def run(data: bytes, rng: np.random.Generator) -> bytes:
        return post(family.reconstruct(decode(data)), rng).data  # type: ignore[attr-defined]

    return run


def time_pass(function: Callable[[bytes, np.random.Generator], bytes], crops: list[bytes]) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for data in crops:
        function(data, rng)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--families", default=None, help="comma-separated (default: every family that reconstructs)"
    )
    parser.add_argument("--models", type=Path, default=None, help="folder of trained families")
    parser.add_argument(
        "--source", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/real"
    )
    args = parser.parse_args()

    names = args.families.split(",") if args.families else list_families()
    families = []
    for name in names:
        weights = args.models / f"{name}.safetensors" if args.models else None
        family = load_family(name, args.models) if weights and weights.is_file() else untrained_family(name)
        if family.reconstruct(np.zeros((8, 8, 3), np.uint8)) is not None:
            families.append(family)
    crops = make_crops(args.images, args.source)
    post = PostProcess()
    threads = torch.get_num_threads()
    print(f"{len(crops)} crops of {CROP} x {CROP}, {args.rounds} rounds, torch threads {threads}")
    for data in crops[:2]:  # warm caches and lazy initialisation
        baseline(data, np.random.default_rng(0))
        for family in families:
            forge_one(family, post)(data, np.random.default_rng(0))

    times: dict[str, list[float]] = {"baseline": [], **{family.name: [] for family in families}}
    for _ in range(args.rounds):
        times["baseline"].append(time_pass(baseline, crops))
        for family in families:
            times[family.name].append(time_pass(forge_one(family, post), crops))
    count = len(crops)
    base = statistics.median(times["baseline"])
    print(f"{'Pillow decode + PNG encode':28s} {count / base:8.1f} img/s ({1000 * base / count:7.2f} ms)")
    for family in families:
        seconds = statistics.median(times[family.name])
        print(
            f"{family.name:28s} {count / seconds:8.1f} img/s ({1000 * seconds / count:7.2f} ms)  "
            f"ratio {base / seconds:.3f}"
        )
    total = sum(statistics.median(times[family.name]) for family in families)
    laundered = len(families) * count
    print(
        f"all families in turn: {laundered / total:.1f} img/s, ratio {laundered * base / (count * total):.3f}"
    )


if __name__ == "__main__":
    main()
