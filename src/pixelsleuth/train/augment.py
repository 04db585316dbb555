"""Training augmentations from the detection literature, as seeded pure functions on RGB uint8 arrays.

The recipe is CNNDetection's (Wang et al., "CNN-generated images are surprisingly easy to spot... for
now", CVPR 2020), which NPR and most later detectors inherit: with probability `blur_prob` a Gaussian
blur with sigma uniform in [0, 3]; with probability `jpeg_prob` a JPEG re-compression with quality
uniform in [30, 100], encoded by OpenCV or Pillow chosen at random; then a random crop and a random
horizontal flip. Validation only centre-crops. Every random choice comes from the NumPy Generator
passed in, so a seed fixes the result.

Two more steps, off by default, model what happens to images on their way to us: with probability
`resize_prob` the image is resized by a factor drawn log-uniformly from `resize_scale` (area
interpolation down, bilinear or bicubic up) and cut back to the crop size, and with probability
`noise_prob` Gaussian noise of `noise_sigma` grey levels is added. Resizing blurs away the up-sampling
traces that detectors such as NPR look for, which is the point: a transform never sees the label, so
a resized or re-saved genuine photo is seen as real as often as a resized generated image is seen as
generated, and "was resampled" cannot become the learned cue for "was generated".
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pixelsleuth.bench.perturb import gaussian_blur, gaussian_noise, jpeg
from pixelsleuth.train.config import AugmentConfig

JPEG_METHODS = ("cv2", "pil")
UP_FILTERS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad the bottom and right so both sides are at least `size` (no copy when they are).

    Example:
        >>> pad_to(np.zeros((10, 20, 3), np.uint8), 16).shape
        (16, 20, 3)
    """
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if not pad_h and not pad_w:
        return image
    # "symmetric" works for any pad width, even past the image's own size (it repeats the mirroring).
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A `size` x `size` crop at a uniformly random position (reflect-padded first if smaller).

    Example:
        >>> random_crop(np.zeros((40, 50, 3), np.uint8), 32, np.random.default_rng(0)).shape
        (32, 32, 3)
    """
    image = pad_to(image, size)
    height, width = image.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return image[top : top + size, left : left + size]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central `size` x `size` window (reflect-padded first if smaller).

    Example:
        >>> center_crop(np.zeros((40, 50, 3), np.uint8), 32).shape
        (32, 32, 3)
    """
    image = pad_to(image, size)
    height, width = image.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]


def jpeg_opencv(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at `quality` with OpenCV's libjpeg (4:2:0), as CNNDetection's cv2 branch does.

    Example:
        >>> jpeg_opencv(np.zeros((16, 16, 3), np.uint8), 75).shape
        (16, 16, 3)
    """
    ok, encoded = cv2.imencode(".jpg", image[:, :, ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on empty images
        raise ValueError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1])


def random_blur(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    prob: float,
    sigma_range: tuple[float, float] = (0.0, 3.0),
) -> np.ndarray:
    """With probability `prob`, a Gaussian blur with sigma uniform in `sigma_range`; else the input.

    Example:
        >>> image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        >>> bool((random_blur(image, np.random.default_rng(0), prob=1.0, sigma_range=(1, 2)) != image).any())
        True
    """
    if rng.random() >= prob:
        return image
    sigma = float(rng.uniform(*sigma_range))
    return gaussian_blur(image, sigma)


def random_jpeg(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    prob: float,
    quality_range: tuple[int, int] = (30, 100),
    methods: tuple[str, ...] = JPEG_METHODS,
) -> np.ndarray:
    """With probability `prob`, JPEG re-compression at a quality uniform in `quality_range` (inclusive),
    by an encoder drawn from `methods` ("cv2" for OpenCV, "pil" for Pillow); else the input.

    Example:
        >>> image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        >>> random_jpeg(image, np.random.default_rng(0), prob=1.0).shape
        (16, 16, 3)
    """
    if rng.random() >= prob:
        return image
    method = methods[int(rng.integers(0, len(methods)))]
    quality = int(rng.integers(quality_range[0], quality_range[1] + 1))
    if method == "cv2":
        return jpeg_opencv(image, quality)
    if method == "pil":
        return jpeg(image, quality)
    raise ValueError(f"unknown JPEG method {method!r}; choose from {', '.join(JPEG_METHODS)}")


def _chance(rng: np.random.Generator, prob: float) -> bool:
    # No draw at probability 0, so a config without the newer steps keeps its exact random stream
    # (and its byte-identical weights).
    return prob > 0 and rng.random() < prob


def rescale_crop(
    image: np.ndarray, size: int, scale: float, top: int, left: int, up_filter: str = "bicubic"
) -> np.ndarray:
    """The `size` x `size` crop at (`top`, `left`) of the image resized by `scale`, computed by resizing
    only the window that lands in the crop (a ``size / scale`` square of the original).

    Shrinking uses area interpolation, enlarging `up_filter` (``"bilinear"`` or ``"bicubic"``). The window
    is clipped to the image, so a factor too small for the image enlarges less than asked.

    Example:
        >>> rescale_crop(np.zeros((256, 256, 3), np.uint8), 96, 0.5, 10, 20).shape
        (96, 96, 3)
    """
    height, width = image.shape[:2]
    window = min(max(1, round(size / scale)), height, width)
    top, left = min(top, height - window), min(left, width - window)
    region = image[top : top + window, left : left + window]
    if window == size:
        return region.copy()
    interpolation = cv2.INTER_AREA if window > size else UP_FILTERS[up_filter]
    return cv2.resize(region, (size, size), interpolation=interpolation)


def random_rescale_crop(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    *,
    scale_range: tuple[float, float] = (0.5, 2.0),
    up_filters: tuple[str, ...] = tuple(UP_FILTERS),
) -> np.ndarray:
    """A random `size` x `size` crop of the image resized by a factor drawn log-uniformly from
    `scale_range` (halving as likely as doubling), enlarged with a filter drawn from `up_filters`.

    Example:
        >>> image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
        >>> random_rescale_crop(image, 64, np.random.default_rng(0)).shape
        (64, 64, 3)
    """
    low, high = scale_range
    scale = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    up_filter = up_filters[int(rng.integers(0, len(up_filters)))]
    height, width = image.shape[:2]
    window = min(max(1, round(size / scale)), height, width)
    top = int(rng.integers(0, height - window + 1))
    left = int(rng.integers(0, width - window + 1))
    return rescale_crop(image, size, scale, top, left, up_filter)


def random_noise(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    prob: float,
    sigma_range: tuple[float, float] = (1.0, 5.0),
) -> np.ndarray:
    """With probability `prob`, zero-mean Gaussian noise with sigma uniform in `sigma_range` grey levels
    (rounded and clipped to uint8); else the input.

    Example:
        >>> image = np.full((16, 16, 3), 128, np.uint8)
        >>> bool((random_noise(image, np.random.default_rng(0), prob=1.0) != image).any())
        True
    """
    if not _chance(rng, prob):
        return image
    sigma = float(rng.uniform(*sigma_range))
    return gaussian_noise(image, sigma, rng=rng)


@dataclass(frozen=True)
class TrainTransform:
    """Training augmentation: resize, blur, noise, JPEG, random crop, horizontal flip, in that order.

    Resizing (when drawn) cuts the `crop_size` crop itself, so blur, noise and JPEG then work on the
    crop, as they would on a resized image saved again. Call it as ``transform(image, rng)``; it
    returns a new `crop_size` x `crop_size` uint8 image and never modifies its input. It is given no
    label, so real and generated images are augmented alike.

    Example:
        >>> transform = TrainTransform(crop_size=32, blur_prob=0.1, jpeg_prob=0.1, resize_prob=0.5)
        >>> image = np.zeros((48, 48, 3), np.uint8)
        >>> transform(image, np.random.default_rng(0)).shape
        (32, 32, 3)
    """

    crop_size: int
    flip: bool = True
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    jpeg_methods: tuple[str, ...] = JPEG_METHODS
    resize_prob: float = 0.0
    resize_scale: tuple[float, float] = (0.5, 2.0)
    resize_up_filters: tuple[str, ...] = tuple(UP_FILTERS)
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 5.0)

    def __post_init__(self) -> None:
        unknown = set(self.jpeg_methods) - set(JPEG_METHODS)
        if unknown or not self.jpeg_methods:
            raise ValueError(f"jpeg_methods must be taken from {JPEG_METHODS}, got {self.jpeg_methods}")
        if set(self.resize_up_filters) - set(UP_FILTERS) or not self.resize_up_filters:
            raise ValueError(
                f"resize_up_filters must be taken from {tuple(UP_FILTERS)}, got {self.resize_up_filters}"
            )
        if not 0 < self.resize_scale[0] <= self.resize_scale[1]:
            raise ValueError(f"resize_scale must be (low, high), 0 < low <= high; got {self.resize_scale}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if _chance(rng, self.resize_prob):
            image = random_rescale_crop(
                image, self.crop_size, rng, scale_range=self.resize_scale, up_filters=self.resize_up_filters
            )
        image = random_blur(image, rng, prob=self.blur_prob, sigma_range=self.blur_sigma)
        image = random_noise(image, rng, prob=self.noise_prob, sigma_range=self.noise_sigma)
        image = random_jpeg(
            image, rng, prob=self.jpeg_prob, quality_range=self.jpeg_quality, methods=self.jpeg_methods
        )
        image = random_crop(image, self.crop_size, rng)
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        return np.array(image, order="C", copy=True)


def train_transform(augment: AugmentConfig, crop_size: int) -> TrainTransform:
    """The training transform an ``[augment]`` config section describes.

    Example:
        >>> train_transform(AugmentConfig(noise_prob=0.2), 96).noise_prob
        0.2
    """
    return TrainTransform(
        crop_size=crop_size,
        flip=augment.flip,
        blur_prob=augment.blur_prob,
        blur_sigma=augment.blur_sigma,
        jpeg_prob=augment.jpeg_prob,
        jpeg_quality=augment.jpeg_quality,
        jpeg_methods=tuple(augment.jpeg_methods),
        resize_prob=augment.resize_prob,
        resize_scale=augment.resize_scale,
        resize_up_filters=tuple(augment.resize_up_filters),
        noise_prob=augment.noise_prob,
        noise_sigma=augment.noise_sigma,
    )


@dataclass(frozen=True)
class EvalTransform:
    """Validation and test preprocessing: a centre crop only (deterministic; `rng` is ignored).

    Example:
        >>> EvalTransform(crop_size=32)(np.zeros((40, 60, 3), np.uint8)).shape
        (32, 32, 3)
    """

    crop_size: int

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return np.array(center_crop(image, self.crop_size), order="C", copy=True)
