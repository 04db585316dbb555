"""Image perturbations for robustness tests and training augmentation: pure functions on RGB uint8.

Each takes an H x W x 3 uint8 array and returns a new one; none modifies its input. Random ones take
a NumPy Generator so that runs are reproducible.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

Perturbation = Callable[[np.ndarray], np.ndarray]


def jpeg(image: np.ndarray, quality: int, *, subsampling: str = "4:2:0") -> np.ndarray:
    """Re-encode as JPEG at `quality` (libjpeg scale, 1-100) with Pillow, as most web services do.

    Example:
        >>> jpeg(np.zeros((16, 16, 3), np.uint8), 75).shape
        (16, 16, 3)
    """
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=int(quality), subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def webp(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as lossy WebP at `quality` (0-100)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "WEBP", quality=int(quality), method=4)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize by `factor` (area interpolation down, bicubic up), as image software does."""
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interpolation)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` pixels (kernel of 6 sigma, odd)."""
    if sigma <= 0:
        return image.copy()
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def gaussian_noise(image: np.ndarray, sigma: float, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """Add zero-mean Gaussian noise of `sigma` grey levels, then round and clip to uint8."""
    rng = rng or np.random.default_rng(0)
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def center_crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central `fraction` of each side."""
    height, width = image.shape[:2]
    new_h, new_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return image[top : top + new_h, left : left + new_w].copy()


def social_media(image: np.ndarray, *, long_side: int = 1080, quality: int = 75) -> np.ndarray:
    """What a photo-sharing platform does: shrink so the long side is at most `long_side`, then JPEG."""
    height, width = image.shape[:2]
    factor = min(1.0, long_side / max(height, width))
    return jpeg(rescale(image, factor) if factor < 1.0 else image, quality)


@dataclass(frozen=True)
class PerturbationStep:
    """One point of a robustness grid: a family ("jpeg"), its strength (75) and the function."""

    family: str
    strength: float
    apply: Perturbation

    @property
    def label(self) -> str:
        return f"{self.family}:{self.strength:g}"


def robustness_grid(seed: int = 0) -> list[PerturbationStep]:
    """The standard grid: JPEG 95..30, WebP, downscale 0.9..0.5, upscale, blur sigma 0.5..3,
    Gaussian noise, centre crop and a social-media chain (resize + JPEG)."""
    steps: list[PerturbationStep] = [PerturbationStep("none", 0, lambda image: image)]
    jpeg_qualities = (95, 90, 80, 70, 60, 50, 40, 30)
    steps += [PerturbationStep("jpeg", q, lambda im, q=q: jpeg(im, q)) for q in jpeg_qualities]
    steps += [PerturbationStep("webp", q, lambda im, q=q: webp(im, q)) for q in (90, 75, 50)]
    steps += [PerturbationStep("downscale", f, lambda im, f=f: rescale(im, f)) for f in (0.9, 0.75, 0.5)]
    steps += [PerturbationStep("upscale", f, lambda im, f=f: rescale(im, f)) for f in (1.5, 2.0)]
    steps += [PerturbationStep("blur", s, lambda im, s=s: gaussian_blur(im, s)) for s in (0.5, 1.0, 2.0, 3.0)]
    steps += [
        PerturbationStep("noise", s, lambda im, s=s: gaussian_noise(im, s, rng=np.random.default_rng(seed)))
        for s in (2.0, 5.0, 10.0)
    ]
    steps += [PerturbationStep("crop", f, lambda im, f=f: center_crop(im, f)) for f in (0.9, 0.75, 0.5)]
    social = [lambda im, q=q: social_media(im, long_side=512, quality=q) for q in (85, 75)]
    steps += [PerturbationStep("social", q, apply) for q, apply in zip((85, 75), social, strict=True)]
    return steps
