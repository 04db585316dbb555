"""The JPEG-compression maps (double quantization, grid, ghost) on real forgeries and genuine photos.

    .venv/bin/python benchmarks/localization_jpeg.py [--split heldout] [--pool-sample 40] [--speed]
        [--speed-only] [--manifest /work/shared/data/manip/manifest.tsv] [--manip /work/data/manip]
        [--real /work/shared/data/real] [--pool /work/data/pool/real] [--json results.json]

Maps: `adq` given the file's own luminance table when the file is a JPEG (``adq-table``) and with the
table estimated from the pixels (``adq``), `jpeg_grid`, `jpeg_ghost`. On the manip set's `--split`
(held out by default) each manipulated image is scored with `localization_metrics` (every pixel counts,
no inversion): per dataset the mean F1 at 0.5, oracle F1 (best threshold per image) and pixel AUC.
Baseline in the same run: the map that flags every pixel. On genuine images (the manip set's pristine
originals of that split, the photos of `--real`, and every n-th of `--pool` so that `--pool-sample` are
taken): how many get a region, and the mean share of pixels at or above 0.5. `--speed` times each map
on a generated 12 MP JPEG-decoded photo-like image in a fresh subprocess and reports seconds per
megapixel, the subprocess's peak resident memory (VmHWM) and its peak before the map ran (interpreter,
libraries and the image), and the peak of memory allocated during a second run (tracemalloc). The manip set is
small: read it as orientation.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixelsleuth.bench.locset import load_truth, read_manifest
from pixelsleuth.intake import load_image
from pixelsleuth.localization.adq import adq
from pixelsleuth.localization.ghost import jpeg_ghost
from pixelsleuth.localization.grid import jpeg_grid
from pixelsleuth.localization.metrics import localization_metrics
from pixelsleuth.localization.record import ForensicMap

WORKSPACE = Path(__file__).resolve().parents[2]  # the folder that holds this checkout, shared/ and data/

Mapper = Callable[[np.ndarray, "list[int] | None"], ForensicMap]
MAPS: dict[str, Mapper] = {
    "adq-table": lambda rgb, table: adq(rgb, quantization=table),
    "adq": lambda rgb, table: adq(rgb),
    "grid": lambda rgb, table: jpeg_grid(rgb),
    "ghost": lambda rgb, table: jpeg_ghost(rgb),
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}

SPEED_SNIPPET = """
import io, sys, time
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
rng = np.random.default_rng(0)
# A 1000 x 1000 texture tiled 3 x 4 (flipped so that tiles differ): the map's peak, not the generator's.
smooth = gaussian_filter(rng.normal(0, 1, (1000, 1000, 3)).astype(np.float32), sigma=(6, 6, 0))
tile = np.clip(128 + 60 * smooth / smooth.std() + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8)
pixels = np.block([[[tile[::1 - 2 * ((r + c) % 2)]] for c in range(4)] for r in range(3)])
buffer = io.BytesIO(); Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
del smooth, tile, pixels
rgb = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
assert rgb.shape == (3000, 4000, 3), rgb.shape
def high_water_kib():
    # VmHWM starts afresh with the new process image (ru_maxrss would carry the parent's peak at fork).
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
before = high_water_kib()
name = sys.argv[1]
if name == "adq":
    from pixelsleuth.localization.adq import adq as run
elif name == "grid":
    from pixelsleuth.localization.grid import jpeg_grid as run
else:
    from pixelsleuth.localization.ghost import jpeg_ghost as run
import tracemalloc
start = time.perf_counter(); run(rgb); seconds = time.perf_counter() - start
peak = high_water_kib()
tracemalloc.start(); run(rgb); traced = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
print(seconds, before, peak, traced / 1024)
"""


def quantization_table(path: Path) -> list[int] | None:
    """The luminance table of a JPEG file (row order, as Pillow gives it), else None."""
    with Image.open(path) as image:
        tables = getattr(image, "quantization", None)
        return list(tables[0]) if image.format == "JPEG" and tables else None


def read(path: Path) -> tuple[np.ndarray, list[int] | None]:
    return load_image(path).rgb, quantization_table(path)


def genuine_paths(real: Path, pool: Path, pool_sample: int) -> dict[str, list[Path]]:
    found = {
        "real": sorted(p for p in real.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
        "pool": sorted(p for p in pool.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
    }
    if found["pool"] and pool_sample:
        step = max(1, len(found["pool"]) // pool_sample)
        found["pool"] = found["pool"][::step][:pool_sample]
    return found


def run_manip(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, list[tuple[Path, str]]]]:
    samples = [s for s in read_manifest(args.manifest, args.manip) if s.split == args.split]
    scores: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    pristine = [s.image for s in samples if s.genuine and s.image.exists()]
    for sample in samples:
        if sample.genuine or not sample.image.exists():
            continue
        rgb, table = read(sample.image)
        truth = load_truth(sample)
        if truth is None or truth.shape != rgb.shape[:2]:
            continue
        scores[sample.dataset]["flag-everything"].append(
            localization_metrics(np.ones(truth.shape), truth).to_dict()
        )
        for name, mapper in MAPS.items():
            if name == "adq-table" and table is None:
                continue
            scores[sample.dataset][name].append(localization_metrics(mapper(rgb, table).map, truth).to_dict())
    table_out: dict[str, Any] = {}
    for dataset, per_map in sorted(scores.items()):
        for name, rows in per_map.items():
            table_out[f"{dataset}/{name}"] = {
                "n": len(rows),
                **{key: float(np.nanmean([r[key] for r in rows])) for key in ("f1", "best_f1", "auc")},
            }
    return table_out, {"manip-pristine": [(p, "") for p in pristine]}


def run_genuine(groups: dict[str, list[Path]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for group, paths in groups.items():
        hits: dict[str, list[float]] = defaultdict(list)
        flagged: dict[str, list[float]] = defaultdict(list)
        for path in paths:
            try:
                rgb, table = read(path)
            except Exception as error:  # a file the intake refuses is skipped and named
                print(f"skipped {path}: {error}", file=sys.stderr)
                continue
            if min(rgb.shape[:2]) < 64:
                continue
            for name, mapper in MAPS.items():
                if name == "adq-table" and table is None:
                    continue
                result = mapper(rgb, table)
                hits[name].append(float(result.region is not None))
                flagged[name].append(float((result.map >= 0.5).mean()))
        for name in MAPS:
            if hits[name]:
                out[f"{group}/{name}"] = {
                    "n": len(hits[name]),
                    "with_region": int(sum(hits[name])),
                    "flagged_share": float(np.mean(flagged[name])),
                }
    return out


def run_speed() -> dict[str, Any]:
    out = {}
    for name in ("adq", "grid", "ghost"):
        done = subprocess.run(
            [sys.executable, "-c", SPEED_SNIPPET, name], capture_output=True, text=True, check=True
        )
        seconds, before, peak, traced = (float(v) for v in done.stdout.split())
        out[name] = {
            "s_per_mp": seconds / 12.0,
            "seconds_12mp": seconds,
            "peak_rss_mib": peak / 1024,
            "rss_before_mib": before / 1024,
            "traced_peak_mib": traced / 1024,
        }
    return out


def show(title: str, rows: dict[str, Any]) -> None:
    print(f"\n## {title}")
    for key, values in rows.items():
        cells = "  ".join(
            f"{k}={v:.3f}" if isinstance(v, float) and not math.isnan(v) else f"{k}={v}"
            for k, v in values.items()
        )
        print(f"{key:32s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=WORKSPACE / "shared/data/manip/manifest.tsv")
    parser.add_argument("--manip", type=Path, default=WORKSPACE / "data/manip")
    parser.add_argument("--real", type=Path, default=WORKSPACE / "shared/data/real")
    parser.add_argument("--pool", type=Path, default=WORKSPACE / "data/pool/real")
    parser.add_argument("--pool-sample", type=int, default=40)
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--skip-genuine", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the 12 MP timing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results: dict[str, Any] = {}
    if args.speed_only:
        results["speed"] = run_speed()
        show("speed on a 12 MP JPEG-decoded image (fresh subprocess each)", results["speed"])
        return
    manip, pristine = run_manip(args)
    results["manip"] = manip
    show(f"manip set, split {args.split}: mean F1@0.5, oracle F1, pixel AUC", manip)
    if not args.skip_genuine:
        groups = {"manip-pristine": [p for p, _ in pristine["manip-pristine"]]}
        groups.update(genuine_paths(args.real, args.pool, args.pool_sample))
        results["genuine"] = run_genuine(groups)
        show("genuine images: images with a region, mean share of pixels >= 0.5", results["genuine"])
    if args.speed:
        results["speed"] = run_speed()
        show("speed on a 12 MP JPEG-decoded image (fresh subprocess each)", results["speed"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
