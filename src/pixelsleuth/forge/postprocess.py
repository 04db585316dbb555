"""Post-processing shared by genuine and generated images, so that file properties are no shortcut.

A detector trained on a set where fakes are PNG squares and photos are JPEG of any size learns the
format and the size, not the generator (the held-out development set shows it: image dimensions alone
separate its classes with AUC 0.98). `PostProcess` therefore draws every property a file carries
besides its content (geometry, format, quality, chroma subsampling) from one distribution that does not
depend on the label, and the forge applies it to every image it writes, real or fake. Pixels are saved
without metadata (no EXIF, ICC, XMP or text chunks), so provenance cues are absent from both classes too.

The draw (`PostProcess.draw`) and the application (`PostProcess.apply`) are separate, so a mask can be
carried through the same geometry (`PostProcess.transform_mask`) and a record of the choices can be
written to the dataset manifest.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

FileFormat = Literal["png", "jpeg", "webp"]
EXTENSIONS: dict[str, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
RESAMPLERS: dict[str, Image.Resampling] = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class PostProcessRecord:
    """The choices made for one image: enough to redo the post-processing exactly.

    Attributes:
        input_size: ``(width, height)`` of the image given.
        geometry: ``"crop"`` (a window of `box`) or ``"resize"`` (the whole image to `output_size`).
        box: the crop window ``(left, top, right, bottom)`` in input pixels; the whole image for a resize.
        output_size: ``(width, height)`` of the saved image.
        resample: the interpolation of a resize (a key of `RESAMPLERS`), ``None`` for a crop.
        format: ``"png"``, ``"jpeg"`` or ``"webp"``.
        quality: the JPEG or WebP quality, ``None`` for PNG.
        subsampling: the JPEG chroma subsampling (``"4:2:0"`` or ``"4:4:4"``), ``None`` otherwise.
    """

    input_size: tuple[int, int]
    geometry: Literal["crop", "resize"]
    box: tuple[int, int, int, int]
    output_size: tuple[int, int]
    resample: str | None
    format: FileFormat
    quality: int | None
    subsampling: str | None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


@dataclass(frozen=True)
class ProcessedImage:
    """An encoded image file: its bytes, the extension to save it under and the choices made."""

    data: bytes
    extension: str
    record: PostProcessRecord


@dataclass(frozen=True)
class PostProcess:
    """A sampler of post-processing, identical for every image whatever its label.

    Args:
        side: the range each output side is drawn from, uniformly, as a fraction of the input's side
            (the forge gives every image at one size, the crop, so the output sizes have one distribution
            for both labels).
        square_probability: the chance that the height equals the width (generators emit squares,
            cameras rarely do; both classes get both).
        resize_probability: the chance of resizing the whole image to the drawn size instead of
            cropping a window of that size.
        resamplers: the interpolations a resize picks from, uniformly (keys of `RESAMPLERS`).
        formats: ``(format, probability)`` pairs; the probabilities must sum to 1.
        jpeg_quality: the range (inclusive) of JPEG qualities, drawn uniformly.
        webp_quality: the range (inclusive) of lossy WebP qualities, drawn uniformly.
        subsamplings: the JPEG chroma subsamplings, drawn uniformly.

    Example:
        >>> post = PostProcess()
        >>> out = post(np.zeros((256, 256, 3), np.uint8), np.random.default_rng(0))
        >>> out.extension in {".png", ".jpg", ".webp"}, 160 <= out.record.output_size[0] <= 256
        (True, True)
    """

    side: tuple[float, float] = (0.625, 1.0)
    square_probability: float = 0.5
    resize_probability: float = 0.5
    resamplers: tuple[str, ...] = ("bilinear", "bicubic", "lanczos", "area")
    formats: tuple[tuple[FileFormat, float], ...] = (("png", 0.3), ("jpeg", 0.5), ("webp", 0.2))
    jpeg_quality: tuple[int, int] = (65, 100)
    webp_quality: tuple[int, int] = (65, 100)
    subsamplings: tuple[str, ...] = ("4:2:0", "4:4:4")

    def __post_init__(self) -> None:
        if not 0 < self.side[0] <= self.side[1] <= 1:
            raise ValueError(f"side must be a range of fractions 0 < low <= high <= 1, got {self.side}")
        if abs(sum(probability for _, probability in self.formats) - 1.0) > 1e-6:
            raise ValueError(f"format probabilities must sum to 1, got {self.formats}")
        unknown = [name for name, _ in self.formats if name not in EXTENSIONS]
        unknown += [name for name in self.resamplers if name not in RESAMPLERS]
        if unknown:
            raise ValueError(f"unknown format or resampler: {', '.join(unknown)}")

    def draw(self, rng: np.random.Generator, width: int, height: int) -> PostProcessRecord:
        """Choose the post-processing of an image of `width` x `height`; the image itself is not needed.

        The number of random draws does not depend on the outcome, so two images processed with
        generators in the same state get the same choices whatever their content.
        """
        side_x, side_y = rng.uniform(*self.side, size=2)
        out_width, out_height = max(1, round(side_x * width)), max(1, round(side_y * height))
        if rng.random() < self.square_probability:
            out_height = min(out_width, height)
            out_width = out_height
        resize = bool(rng.random() < self.resize_probability)
        resample = self.resamplers[int(rng.integers(len(self.resamplers)))]
        offset_x, offset_y = rng.random(), rng.random()
        names = [name for name, _ in self.formats]
        file_format = names[int(rng.choice(len(names), p=[p for _, p in self.formats]))]
        jpeg_quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        webp_quality = int(rng.integers(self.webp_quality[0], self.webp_quality[1] + 1))
        subsampling = self.subsamplings[int(rng.integers(len(self.subsamplings)))]

        if resize:
            box = (0, 0, width, height)
        else:
            left = int(offset_x * (width - out_width + 1))
            top = int(offset_y * (height - out_height + 1))
            box = (left, top, left + out_width, top + out_height)
        return PostProcessRecord(
            input_size=(width, height),
            geometry="resize" if resize else "crop",
            box=box,
            output_size=(out_width, out_height),
            resample=resample if resize else None,
            format=file_format,
            quality={"png": None, "jpeg": jpeg_quality, "webp": webp_quality}[file_format],
            subsampling=subsampling if file_format == "jpeg" else None,
        )

    def apply(self, rgb: np.ndarray, record: PostProcessRecord) -> ProcessedImage:
        """Carry out `record` on `rgb` (H x W x 3 uint8) and encode the file, without metadata."""
        image = _geometry(
            Image.fromarray(np.ascontiguousarray(rgb)), record, RESAMPLERS[record.resample or "area"]
        )
        buffer = io.BytesIO()
        if record.format == "png":
            image.save(buffer, "PNG")
        elif record.format == "jpeg":
            image.save(buffer, "JPEG", quality=record.quality, subsampling=record.subsampling)
        else:
            image.save(buffer, "WEBP", quality=record.quality, method=4)
        return ProcessedImage(buffer.getvalue(), EXTENSIONS[record.format], record)

    def transform_mask(self, mask: np.ndarray, record: PostProcessRecord) -> np.ndarray:
        """Put an H x W mask through the geometry of `record` (nearest neighbour, so it stays binary)."""
        image = _geometry(Image.fromarray(np.ascontiguousarray(mask)), record, Image.Resampling.NEAREST)
        return np.asarray(image).copy()

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> ProcessedImage:
        """Draw the post-processing for `rgb` with `rng` and apply it."""
        return self.apply(rgb, self.draw(rng, rgb.shape[1], rgb.shape[0]))


def _geometry(image: Image.Image, record: PostProcessRecord, resample: Image.Resampling) -> Image.Image:
    if record.input_size != image.size:
        raise ValueError(f"the record is for an image of {record.input_size}, got one of {image.size}")
    if record.geometry == "crop":
        return image.crop(record.box)
    if record.output_size == image.size:
        return image
    return image.resize(record.output_size, resample)
