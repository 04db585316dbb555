"""Seconds per megapixel of every localization map, and its peak memory on a 12 MP photo.

    python benchmarks/localization_speed.py [--photo PATH] [--sizes 1,12] [--repeat 2] [--json out.json]

Each map runs in a fresh process (so its peak resident memory is its own: ``ru_maxrss`` of the child,
which includes Python, numpy, OpenCV and torch once imported) on a photo resized to each size (default: a
bundled scikit-image photo, tiled and lightly noised up to the size, then saved as JPEG q90 and decoded,
so the maps see a real JPEG). Reported: the best of `repeat` runs after one warm-up. The baseline,
measured in the same run and the same way: decoding that JPEG (`pixelsleuth.intake.load_image`); each map
is printed as seconds, seconds per MP and its ratio to the decode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pixelsleuth.intake import load_image
path, name, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
image = load_image(path).rgb
if name == "decode":
    run = lambda: load_image(path)
elif name == "fused":
    from pixelsleuth.localization.fuse import LocalizationFusion, localize
    card = LocalizationFusion.load()
    run = lambda: localize(image, card)
else:
    from pixelsleuth.localization.methods import load_method
    function = load_method(name)
    run = lambda: function(image)
run()
times = []
for _ in range(repeat):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": min(times), "peak_mb": peak}))
"""


def make_photo(megapixels: float, folder: Path, photo: Path | None) -> Path:
    import numpy as np
    from PIL import Image

    if photo is not None:
        from pixelsleuth.intake import load_image

        base = load_image(photo).rgb
    else:
        from skimage import data

        base = data.astronaut()
    side_ratio = 4 / 3
    height = round((megapixels * 1e6 / side_ratio) ** 0.5)
    width = round(height * side_ratio)
    reps = (-(-height // base.shape[0]), -(-width // base.shape[1]), 1)
    tiled = np.tile(base, reps)[:height, :width]
    noisy = np.clip(tiled + np.random.default_rng(0).normal(0, 2, tiled.shape), 0, 255).astype(np.uint8)
    path = folder / f"photo-{megapixels:g}mp.jpg"
    Image.fromarray(noisy).save(path, "JPEG", quality=90)
    return path


def measure(path: Path, name: str, repeat: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), name, str(repeat)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from pixelsleuth.localization.fuse import DEFAULT_CARD
    from pixelsleuth.localization.methods import list_methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=None)
    parser.add_argument("--sizes", default="1,12")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--maps", default=None, help="comma-separated (default: every registered map)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    names = args.maps.split(",") if args.maps else list_methods()
    if DEFAULT_CARD.is_file() and not args.maps:
        names.append("fused")
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in [float(value) for value in args.sizes.split(",")]:
            path = make_photo(size, Path(folder), args.photo)
            decode = measure(path, "decode", args.repeat)
            results[f"{size:g} MP"] = {"decode": decode}
            print(
                f"\n{size:g} MP: decode {decode['seconds']:.3f} s (baseline), peak {decode['peak_mb']:.0f} MB"
            )
            print("| map | seconds | s / MP | × decode | peak MB |")
            print("|:---|---:|---:|---:|---:|")
            for name in names:
                found = measure(path, name, args.repeat)
                results[f"{size:g} MP"][name] = found
                if "error" in found:
                    print(f"| {name} | failed: {found['error']} | | | |")
                    continue
                ratio = found["seconds"] / decode["seconds"]
                print(
                    f"| {name} | {found['seconds']:.2f} | {found['seconds'] / size:.2f} | {ratio:.0f}× | "
                    f"{found['peak_mb']:.0f} |"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
