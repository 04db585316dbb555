"""Peak memory and time of one analysis by image size and format, against the analyzer at rest.

Each case runs in a fresh process (the way `scan`'s worker does): build the default analyzer, note its
resident memory at rest (the baseline: Python, torch and the weights), analyse one image, note the
peak (VmHWM, Linux). Printed per case: peak RSS, the growth over the baseline, and the ratio
peak / baseline, all measured in the same run.

    python benchmarks/memory_budget.py [--cases 1mp-jpeg,12mp-jpeg,...] [--keep DIR]

Images are generated (smooth gradients plus noise, so encoders work at realistic speed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

_MEASURE = r"""
import json, sys, time
from pixelsleuth.pipeline import Analyzer

def high_water_mb():
    # VmHWM belongs to this process image; ru_maxrss would carry the parent's peak across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

analyzer = Analyzer()
at_rest = high_water_mb()
start = time.perf_counter()
analysis = analyzer.analyze(sys.argv[1])
seconds = time.perf_counter() - start
peak = high_water_mb()
print(json.dumps({"at_rest": at_rest, "peak": peak, "seconds": seconds,
                  "verdict": analysis.verdict, "error": analysis.error}))
"""


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour field with mild noise, built in bands so that 100 MP fits in little memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    x = np.linspace(0, 6.28, width, dtype=np.float32)
    for top in range(0, height, 512):
        rows = np.arange(top, min(top + 512, height), dtype=np.float32)[:, None] / height * 6.28
        for channel in range(3):
            field = 110 + 80 * np.sin(x[None, :] * (channel + 1) + rows * (3 - channel))
            field += rng.normal(0, 4, field.shape).astype(np.float32)
            out[top : top + len(rows), :, channel] = np.clip(field, 0, 255)
    return out


def _declared_huge_jpeg(path: Path) -> None:
    """A tiny JPEG whose frame header declares 10000 x 10000 (the data decodes to grey)."""
    small = Path(str(path) + ".src.jpg")
    Image.new("L", (8, 8), 128).save(small, quality=90)
    data = bytearray(small.read_bytes())
    small.unlink()
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (10000).to_bytes(2, "big") + (10000).to_bytes(2, "big")
    path.write_bytes(bytes(data))


def _image_case(width: int, height: int, fmt: str, **options: object) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        Image.fromarray(textured(width, height)).save(path, format=fmt, **options)

    return make


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "1mp-jpeg": ("jpg", _image_case(1152, 864, "JPEG", quality=90)),
    "12mp-jpeg": ("jpg", _image_case(4000, 3000, "JPEG", quality=90)),
    "12mp-png": ("png", _image_case(4000, 3000, "PNG", compress_level=1)),
    "24mp-jpeg": ("jpg", _image_case(6000, 4000, "JPEG", quality=90)),
    "100mp-jpeg": ("jpg", _image_case(12500, 8000, "JPEG", quality=85)),
    "100mp-png": ("png", _image_case(12500, 8000, "PNG", compress_level=1)),
    "declared-10000x10000-jpeg": ("jpg", _declared_huge_jpeg),
}


def measure(path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--keep", type=Path, help="keep the generated images in this folder")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pixelsleuth-memory-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"{'case':28} {'file MB':>8} {'at rest MB':>10} {'peak MB':>8} {'growth MB':>9} "
        f"{'peak/rest':>9} {'seconds':>8}  verdict"
    )
    for name in args.cases.split(","):
        extension, make = CASES[name]
        path = folder / f"{name}.{extension}"
        if not path.exists():
            make(path)
        row = measure(path)
        verdict = row["error"]["type"] if row["error"] else row["verdict"]
        print(
            f"{name:28} {path.stat().st_size / 2**20:8.2f} {row['at_rest']:10.0f} {row['peak']:8.0f} "
            f"{row['peak'] - row['at_rest']:9.0f} {row['peak'] / row['at_rest']:9.2f} "
            f"{row['seconds']:8.2f}  {verdict}",
            flush=True,
        )


if __name__ == "__main__":
    main()
