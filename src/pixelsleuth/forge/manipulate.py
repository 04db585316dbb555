"""Local manipulations with exact ground-truth masks: splicing, copy-move, inpainting and AI edits.

Pure functions on RGB uint8 arrays (H x W x 3). Each takes a `numpy.random.Generator`, never modifies
its input and returns ``(image, mask)``: the edited image and an H x W uint8 mask that is 255 exactly
where a pixel value changed and 0 elsewhere, so ``mask == 255 * (image != original).any(axis=-1)``.

Every edit first chooses a *region* (`random_region_mask`), computes the edited content, and composites
it into the original through a weight that is zero outside the region (or outside its feathered edge),
so pixels outside are bit-identical. The returned mask is the changed pixels, not the region: where an
edit happens to reproduce a pixel exactly (inpainting a flat sky, a blend weight that rounds away) that
pixel is not marked, because nothing there can be found. For a blended splice the mask therefore lies
inside the area where the blend weight is above zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np

from pixelsleuth.errors import PixelsleuthError

RegionKind = Literal["ellipse", "polygon", "brush"]
REGION_KINDS: tuple[RegionKind, ...] = ("ellipse", "polygon", "brush")
SpliceBlend = Literal["feather", "poisson"]
InpaintMethod = Literal["telea", "ns"]
Reconstruct = Callable[[np.ndarray], "np.ndarray | None"]

_INPAINT_FLAGS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class ManipulationError(PixelsleuthError):
    """A manipulation cannot be made from the inputs it was given."""

    type = "manipulation_error"


def changed_mask(original: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """255 where any channel of `edited` differs from `original`, else 0 (H x W uint8).

    Example:
        >>> a = np.zeros((2, 3, 3), np.uint8); b = a.copy(); b[1, 2, 0] = 9
        >>> changed_mask(a, b).tolist()
        [[0, 0, 0], [0, 0, 255]]
    """
    return np.where((original != edited).any(axis=-1), 255, 0).astype(np.uint8)


def random_region_mask(
    shape: tuple[int, ...],
    rng: np.random.Generator,
    kind: RegionKind = "ellipse",
    area: tuple[float, float] = (0.02, 0.2),
) -> np.ndarray:
    """A random binary region covering about a fraction `area` of the image.

    Args:
        shape: the image shape; only the first two entries (height, width) are used.
        rng: the source of randomness.
        kind: ``"ellipse"`` (rotated, aspect ratio 1:2 to 2:1), ``"polygon"`` (a star-shaped polygon of 5
            to 12 vertices) or ``"brush"`` (thick random-walk strokes, like a mask painted by hand).
        area: the range the target fraction of the image is drawn from (uniformly). Ellipses and
            polygons shrink when needed to lie inside the image; brush strokes stop at the border.

    Returns:
        H x W uint8, 255 inside the region and 0 outside; never empty.

    Example:
        >>> mask = random_region_mask((64, 96, 3), np.random.default_rng(0), kind="polygon")
        >>> mask.shape, mask.dtype, set(np.unique(mask).tolist()) == {0, 255}
        ((64, 96), dtype('uint8'), True)
    """
    height, width = int(shape[0]), int(shape[1])
    if height < 4 or width < 4:
        raise ManipulationError(f"an image of {width} x {height} pixels is too small to hold a region")
    low, high = area
    if not 0 < low <= high < 1:
        raise ManipulationError(f"area must be a range of fractions with 0 < low <= high < 1, got {area}")
    target = rng.uniform(low, high) * height * width
    mask = np.zeros((height, width), np.uint8)
    if kind == "ellipse":
        _draw_ellipse(mask, rng, target)
    elif kind == "polygon":
        _draw_polygon(mask, rng, target)
    elif kind == "brush":
        _draw_brush(mask, rng, target)
    else:
        raise ManipulationError(f"unknown region kind {kind!r}; expected one of {', '.join(REGION_KINDS)}")
    if not mask.any():  # only possible for degenerate sizes; keep the promise of a non-empty region
        mask[height // 2, width // 2] = 255
    return mask


def _fitting_center(rng: np.random.Generator, radius: float, height: int, width: int) -> tuple[int, int]:
    x = rng.uniform(radius, max(radius, width - 1 - radius))
    y = rng.uniform(radius, max(radius, height - 1 - radius))
    return round(x), round(y)


def _draw_ellipse(mask: np.ndarray, rng: np.random.Generator, target: float) -> None:
    height, width = mask.shape
    ratio = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    semi_x, semi_y = np.sqrt(target / np.pi * ratio), np.sqrt(target / np.pi / ratio)
    # Any rotation must fit, so the longer semi-axis is bounded by half the shorter side.
    shrink = min(1.0, (min(height, width) / 2 - 1) / max(semi_x, semi_y))
    semi_x, semi_y = max(1, round(semi_x * shrink)), max(1, round(semi_y * shrink))
    center = _fitting_center(rng, max(semi_x, semi_y), height, width)
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(mask, center, (semi_x, semi_y), angle, 0, 360, 255, thickness=-1)


def _draw_polygon(mask: np.ndarray, rng: np.random.Generator, target: float) -> None:
    height, width = mask.shape
    count = int(rng.integers(5, 13))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(0.45, 1.0, count)
    xs, ys = radii * np.cos(angles), radii * np.sin(angles)
    unit_area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
    scale = np.sqrt(target / max(unit_area, 1e-3))
    scale = min(scale, (min(height, width) / 2 - 1) / radii.max())
    center_x, center_y = _fitting_center(rng, scale * radii.max(), height, width)
    points = np.stack([center_x + scale * xs, center_y + scale * ys], axis=1)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 255)


def _draw_brush(mask: np.ndarray, rng: np.random.Generator, target: float) -> None:
    height, width = mask.shape
    thickness = max(2, round(np.sqrt(target) * rng.uniform(0.15, 0.35)))
    step = 1.5 * thickness
    for _stroke in range(8):
        x, y = rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height
        heading = rng.uniform(0, 2 * np.pi)
        for _segment in range(int(rng.integers(3, 10))):
            heading += rng.normal(0, 0.6)
            end_x = float(np.clip(x + step * np.cos(heading), 0, width - 1))
            end_y = float(np.clip(y + step * np.sin(heading), 0, height - 1))
            cv2.line(mask, (round(x), round(y)), (round(end_x), round(end_y)), 255, thickness)
            x, y = end_x, end_y
            if np.count_nonzero(mask) >= target:
                return


def _random_region(
    shape: tuple[int, ...], rng: np.random.Generator, kind: RegionKind | None, area: tuple[float, float]
) -> np.ndarray:
    chosen = kind if kind is not None else REGION_KINDS[int(rng.integers(len(REGION_KINDS)))]
    return random_region_mask(shape, rng, kind=chosen, area=area)


def _check_rgb(image: np.ndarray, name: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ManipulationError(
            f"{name} must be an H x W x 3 uint8 RGB array, got {image.dtype} {image.shape}"
        )


def _composite(original: np.ndarray, edited: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blend `edited` over `original` by `weight` (H x W, 0..1); return the image and its changed mask."""
    if weight.dtype == bool:
        result = np.where(weight[..., None], edited, original)
    else:
        alpha = weight.astype(np.float32)[..., None]
        blended = alpha * edited.astype(np.float32) + (1 - alpha) * original.astype(np.float32)
        result = np.where(alpha > 0, np.clip(np.rint(blended), 0, 255), original).astype(np.uint8)
    return result, changed_mask(original, result)


def _feather(region: np.ndarray, sigma: float) -> np.ndarray:
    """Soft version of a 0/255 region: a Gaussian-blurred copy in 0..1, exactly 0 far from the region."""
    size = 2 * int(np.ceil(3 * sigma)) + 1
    soft = cv2.GaussianBlur(region.astype(np.float32) / 255.0, (size, size), sigmaX=sigma, sigmaY=sigma)
    soft[soft < 1e-3] = 0.0  # the Gaussian's far tail would only move pixels by rounding noise
    return soft


def splice(
    target: np.ndarray,
    donor: np.ndarray,
    rng: np.random.Generator,
    *,
    blend: bool | SpliceBlend = False,
    kind: RegionKind | None = None,
    area: tuple[float, float] = (0.02, 0.2),
) -> tuple[np.ndarray, np.ndarray]:
    """Paste a region of another photo (`donor`) into `target`.

    The region's shape is drawn in target coordinates and filled with the donor's pixels from a random
    window of the donor (the donor is enlarged first when it is smaller than the target).

    Args:
        target: the image to edit, H x W x 3 uint8.
        donor: the photo the pasted content comes from, any size, RGB uint8.
        rng: the source of randomness.
        blend: ``False`` pastes with a hard edge; ``"feather"`` blends through a Gaussian-feathered
            edge (sigma 1 to 4 pixels); ``"poisson"`` uses Poisson image editing (``cv2.seamlessClone``,
            Pérez et al., SIGGRAPH 2003), which also shifts the pasted colours toward the target's;
            ``True`` picks one of the two blends at random.
        kind: the region shape (see `random_region_mask`); random when ``None``.
        area: the range of region sizes, as fractions of the image.

    Returns:
        ``(image, mask)``: the spliced image and the pixels that changed.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> target, donor = np.full((64, 64, 3), 40, np.uint8), np.full((80, 90, 3), 200, np.uint8)
        >>> image, mask = splice(target, donor, rng, blend="feather")
        >>> bool((image[mask == 0] == target[mask == 0]).all()), bool(mask.any())
        (True, True)
    """
    _check_rgb(target, "target")
    _check_rgb(donor, "donor")
    height, width = target.shape[:2]
    if blend is True:
        blend = ("feather", "poisson")[int(rng.integers(2))]
    region = _random_region(target.shape, rng, kind, area)
    window = _donor_window(donor, height, width, rng)
    if blend is False:
        return _composite(target, window, region > 0)
    if blend == "feather":
        return _composite(target, window, _feather(region, float(rng.uniform(1.0, 4.0))))
    if blend == "poisson":
        return _composite(target, _poisson_clone(window, target, region), region > 0)
    raise ManipulationError(f"unknown splice blend {blend!r}; expected False, True, 'feather' or 'poisson'")


def _donor_window(donor: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    donor_height, donor_width = donor.shape[:2]
    enlarge = max(height / donor_height, width / donor_width)
    if enlarge > 1:
        size = (
            max(width, int(np.ceil(donor_width * enlarge))),
            max(height, int(np.ceil(donor_height * enlarge))),
        )
        donor = cv2.resize(donor, size, interpolation=cv2.INTER_CUBIC)
        donor_height, donor_width = donor.shape[:2]
    top = int(rng.integers(0, donor_height - height + 1))
    left = int(rng.integers(0, donor_width - width + 1))
    return np.ascontiguousarray(donor[top : top + height, left : left + width])


def _poisson_clone(source: np.ndarray, destination: np.ndarray, region: np.ndarray) -> np.ndarray:
    # seamlessClone needs the region's bounding box strictly inside the image; the box centre given
    # as `p` places the source's region exactly over the same pixels of the destination.
    region = region.copy()
    region[:2], region[-2:], region[:, :2], region[:, -2:] = 0, 0, 0, 0
    if not region.any():
        return destination.copy()
    left, top, box_width, box_height = cv2.boundingRect(region)
    center = (left + box_width // 2, top + box_height // 2)
    # seamlessClone writes into the mask it is given, hence the copy.
    cloned = cv2.seamlessClone(
        np.ascontiguousarray(source),
        np.ascontiguousarray(destination),
        region.copy(),
        center,
        cv2.NORMAL_CLONE,
    )
    # Only the region's pixels are taken from the clone (the caller composites with the full region;
    # the two border rows removed above keep the target's values).
    return np.where(region[..., None] > 0, cloned, destination)


def copy_move(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    rotate_deg: tuple[float, float] = (-30.0, 30.0),
    scale: tuple[float, float] = (0.8, 1.2),
    kind: RegionKind | None = None,
    area: tuple[float, float] = (0.02, 0.1),
) -> tuple[np.ndarray, np.ndarray]:
    """Copy a region of `image` to another place in the same image, rotated and scaled.

    The destination is chosen, among a few random placements that keep it inside the image, as the one
    overlapping the source region least.

    Args:
        image: H x W x 3 uint8.
        rng: the source of randomness.
        rotate_deg: the range of rotation angles, in degrees (counter-clockwise).
        scale: the range of scale factors (shrunk when the moved region would not fit in the image).
        kind: the region shape (see `random_region_mask`); random when ``None``.
        area: the range of source region sizes, as fractions of the image.

    Returns:
        ``(image, mask)``: the edited image and the changed pixels, which lie in the destination region
        (the source region is left as it was).

    Example:
        >>> rng = np.random.default_rng(1)
        >>> original = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        >>> edited, mask = copy_move(original, rng)
        >>> outside, inside = mask == 0, mask > 0
        >>> bool((edited[outside] == original[outside]).all()), bool(mask.any())
        (True, True)
    """
    _check_rgb(image, "image")
    height, width = image.shape[:2]
    source = _random_region(image.shape, rng, kind, area)
    angle = float(rng.uniform(*rotate_deg))
    factor = float(rng.uniform(*scale))
    left, top, box_width, box_height = cv2.boundingRect(source)
    center = (left + (box_width - 1) / 2, top + (box_height - 1) / 2)
    corners = np.array(
        [
            [left, top],
            [left + box_width - 1, top],
            [left, top + box_height - 1],
            [left + box_width - 1, top + box_height - 1],
        ],
        np.float64,
    )
    rotation = cv2.getRotationMatrix2D(center, angle, 1.0)
    turned = corners @ rotation[:, :2].T + rotation[:, 2]
    extent_x, extent_y = np.ptp(turned[:, 0]) + 1, np.ptp(turned[:, 1]) + 1
    factor = min(factor, (width - 1) / extent_x, (height - 1) / extent_y)
    base = cv2.getRotationMatrix2D(center, angle, factor)
    moved = corners @ base[:, :2].T + base[:, 2]
    low_x, low_y = -moved[:, 0].min(), -moved[:, 1].min()
    high_x, high_y = width - 1 - moved[:, 0].max(), height - 1 - moved[:, 1].max()
    best: tuple[int, np.ndarray, np.ndarray] | None = None
    for _attempt in range(8):
        matrix = base.copy()
        # Whole-pixel shifts: without rotation and scaling the copy is then exact, as in most forgeries.
        matrix[0, 2] += np.ceil(low_x) + np.floor(
            rng.uniform(0, max(0.0, np.floor(high_x) - np.ceil(low_x)) + 1)
        )
        matrix[1, 2] += np.ceil(low_y) + np.floor(
            rng.uniform(0, max(0.0, np.floor(high_y) - np.ceil(low_y)) + 1)
        )
        destination = cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_NEAREST)
        overlap = int(np.count_nonzero(destination & source))
        if best is None or overlap < best[0]:
            best = (overlap, matrix, destination)
        if overlap == 0:
            break
    assert best is not None
    _, matrix, destination = best
    warped = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    return _composite(image, warped, destination > 0)


def inpaint(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    method: InpaintMethod = "telea",
    kind: RegionKind | None = None,
    area: tuple[float, float] = (0.01, 0.08),
    radius: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Remove a random region and fill it from its surroundings with classical inpainting.

    Args:
        image: H x W x 3 uint8.
        rng: the source of randomness.
        method: ``"telea"`` (fast marching, Telea 2004) or ``"ns"`` (Navier-Stokes, Bertalmio et al.
            2001), both as implemented by ``cv2.inpaint``.
        kind: the region shape (see `random_region_mask`); random when ``None``.
        area: the range of region sizes, as fractions of the image.
        radius: the neighbourhood radius of the inpainting, in pixels.

    Returns:
        ``(image, mask)``: the inpainted image and the changed pixels (inside the region).

    Example:
        >>> rng = np.random.default_rng(2)
        >>> original = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        >>> edited, mask = inpaint(original, rng, method="ns")
        >>> bool((edited[mask == 0] == original[mask == 0]).all()), bool(mask.any())
        (True, True)
    """
    _check_rgb(image, "image")
    if method not in _INPAINT_FLAGS:
        raise ManipulationError(f"unknown inpainting method {method!r}; expected 'telea' or 'ns'")
    region = _random_region(image.shape, rng, kind, area)
    filled = cv2.inpaint(np.ascontiguousarray(image), region, radius, _INPAINT_FLAGS[method])
    return _composite(image, filled, region > 0)


def ai_edit(
    image: np.ndarray,
    rng: np.random.Generator,
    reconstruct: Reconstruct,
    *,
    kind: RegionKind | None = None,
    area: tuple[float, float] = (0.02, 0.2),
    feather: tuple[float, float] = (1.0, 4.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Replace a region with a generator's rendering of the image, as local AI editing does.

    The whole image goes through `reconstruct` (an autoencoder's encode-decode, e.g.
    ``family.reconstruct``), and the reconstruction is composited back inside a random region through
    a Gaussian-feathered edge, the way latent inpainting pipelines paste their output into the photo.

    Args:
        image: H x W x 3 uint8.
        rng: the source of randomness.
        reconstruct: maps an RGB uint8 image to its reconstruction (resized to the image when its size
            differs), or returns ``None`` when the generator cannot reconstruct.
        kind: the region shape (see `random_region_mask`); random when ``None``.
        area: the range of region sizes, as fractions of the image.
        feather: the range of the edge's Gaussian sigma, in pixels.

    Returns:
        ``(image, mask)``: the edited image and the pixels that differ from the original.

    Raises:
        ManipulationError: `reconstruct` returned ``None``.

    Example:
        >>> rng = np.random.default_rng(3)
        >>> original = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> edited, mask = ai_edit(original, rng, lambda rgb: 255 - rgb)
        >>> bool((edited[mask == 0] == original[mask == 0]).all()), bool(mask.any())
        (True, True)
    """
    _check_rgb(image, "image")
    region = _random_region(image.shape, rng, kind, area)
    sigma = float(rng.uniform(*feather))
    rendered = reconstruct(image)
    if rendered is None:
        raise ManipulationError("this generator cannot reconstruct an image, so it cannot make an AI edit")
    rendered = np.asarray(rendered)
    _check_rgb(rendered, "the reconstruction")
    if rendered.shape != image.shape:
        rendered = cv2.resize(rendered, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    return _composite(image, rendered, _feather(region, sigma))
