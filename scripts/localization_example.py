"""Make the README's localization example: an edited photo beside what `pixelsleuth localize` shows.

    python scripts/localization_example.py [--output docs/images/localization-example.png]

The photo is scikit-image's bundled `coffee()` (public domain). A 96 x 96 patch is copied, rotated by
20 degrees and pasted elsewhere in it, and another photo's patch (`astronaut()`) is spliced in; the
result is saved as JPEG q90 the way such images travel. The picture shows the edited image, the overlay
`localize` writes (with the shipped fusion card) and the ground truth, side by side.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pixelsleuth.localization.fuse import localize
from pixelsleuth.localization.render import overlay


def edited_photo() -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    photo = data.coffee().copy()
    truth = np.zeros(photo.shape[:2], bool)
    patch = photo[40:136, 300:396]
    turn = cv2.getRotationMatrix2D((48, 48), 20, 1.0)
    rotated = cv2.warpAffine(patch, turn, (96, 96), borderMode=cv2.BORDER_REFLECT)
    disc = np.hypot(*np.mgrid[-48:48, -48:48]) < 44
    target = photo[250:346, 60:156]
    target[disc] = rotated[disc]
    truth[250:346, 60:156] |= disc
    donor = data.astronaut()[60:160, 180:280]
    photo[100:200, 460:560] = donor
    truth[100:200, 460:560] = True
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=90)
    return np.asarray(Image.open(buffer).convert("RGB")), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/images/localization-example.png"))
    args = parser.parse_args()
    image, truth = edited_photo()
    found = localize(image)
    truth_picture = np.repeat(np.where(truth, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
    gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
    strip = np.concatenate([image, gap, overlay(image, found), gap, truth_picture], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(args.output, optimize=True)
    print(found.reading)
    for region in found.regions:
        print(region.to_dict())


if __name__ == "__main__":
    main()
