"""Make the README's localization example: an edited photo beside what `pixelsleuth localize` shows.

    python scripts/localization_example.py [--output docs/images/localization-example.jpg]

The photo is scikit-image's bundled `astronaut()` (NASA, public domain). A 64 x 64 square is copied,
rotated by 30 degrees and pasted elsewhere in it, and a patch of another photo (`coffee()`) is spliced
in; the result stays lossless (as exported from an editor). The picture shows the edited image, the overlay
`localize` writes (with the shipped fusion card) and the ground truth, side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pixelsleuth.localization.fuse import localize
from pixelsleuth.localization.render import overlay


def edited_photo() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    photo = data.astronaut().copy()
    truth = np.zeros(photo.shape[:2], bool)
    # A 96-pixel window around (x 160, y 208), turned 30 degrees; its central 64 x 64 pasted lower right.
    window = photo[160:256, 112:208]
    turn = cv2.getRotationMatrix2D((47.5, 47.5), 30, 1.0)
    photo[272:336, 296:360] = cv2.warpAffine(window, turn, (96, 96))[16:80, 16:80]
    truth[272:336, 296:360] = True
    photo[20:120, 20:120] = data.coffee()[150:250, 380:480]  # a spoon spliced in from another photo
    truth[20:120, 20:120] = True
    return photo, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/images/localization-example.jpg"))
    args = parser.parse_args()
    image, truth = edited_photo()
    found = localize(image)
    truth_picture = np.repeat(np.where(truth, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
    gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
    strip = np.concatenate([image, gap, overlay(image, found), gap, truth_picture], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(args.output, quality=85, optimize=True)
    print(found.reading)
    for region in found.regions:
        print(region.to_dict())


if __name__ == "__main__":
    main()
