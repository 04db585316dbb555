"""Local detector maps: the whole-image generation detectors run on sliding windows, each image read
against itself.

A detector trained to say "generated" of whole images (`pixelsleuth.detectors`: FSD's self-description
residual, PatchNet, NPR) or the training-free spectral up-sampling check (`pixelsleuth.forensics.spectral`)
gives one raw score per window (`window` pixels square, `stride` apart; the last row and column of
windows are moved to touch the image's edges). Raw scores differ a lot from photo to photo, so each
window's score is turned into a robust z-score against the image's *own* windows:
``z = (score - median) / (1.4826 x MAD)``, one-sided (only "more generated than the rest" counts). A
region whose pixels were made by another process than the rest (an inpainted or pasted generated
region) stands out as a cluster of high z; an untouched photo, whatever its overall score, has none.

Each pixel gets the mean z of the windows that cover it, and the map is ``clip(z / (2 z_report), 0, 1)``,
so 0.5 on the map is exactly the reporting threshold. The rule for reporting a region (to keep false
alarms on genuine photos low): a region is reported only where the covered-pixel z reaches
``z_report = max(6, Bonferroni z)``, the Bonferroni z being the standard-normal quantile that ``n``
windows exceed by chance with probability 1 % in all (``norm.isf(0.01 / n)``; 3.5 for 49 windows,
4.4 for 2000). The floor of 6 is there because real window scores have far heavier tails than a normal
law (periodic textures, JPEG grids, resized photos): so the false-alarm rate is measured, not promised
(see `benchmarks/localization_detector_maps.py`).

The image-level score is the map's maximum (0.5 = the strongest window just reaches the rule). The
median and MAD need enough windows to be meaningful: images must hold at least 3 x 3 windows
(``2 x window`` pixels a side with the default half-window stride). On large images the stride grows
(in steps of 8 pixels) until at most `max_windows` windows remain: sparser tiling, stated in ``data``.

Measured (`benchmarks/localization_detector_maps.py`, 40 genuine photos at 512 x 512, one run; FSD on
16 non-overlapping windows, the others half-overlapping): on (i) a forge AI edit whose reconstruction is
an up-sampling chain, the spectral map has pixel AUC 0.84, oracle F1 0.57 (flag-everything 0.21) and
image-level AUC 0.80, but F1 at 0.5 only 0.06 (it reports 14 of 40 regions); FSD 0.52 / 0.31 / 0.55 and
PatchNet 0.58 / 0.30 / 0.49 are at or near chance. On (ii) a generator's image pasted into the photo,
every map is near chance (pixel AUC 0.56-0.66, image AUC 0.52-0.53). Untouched photos with a region:
spectral 1 of 40, PatchNet 0, FSD 10 (its 16-window MAD is unstable and its floor was not tuned:
do not trust FSD's regions; on the 40 tuning photos too, 10 of 40 get one, 8 with a floor of 8, and
asking the windows to pass FSD's own logit 0 as well changes nothing: real photos have windows, flat
or clipped ones, that FSD's density finds very unlikely).

Speed (2 CPU cores shared with other work, load average about 11, torch's own 2 threads; a generated
photo-like image): at 1 MP PatchNet 5.0 s (961 windows of 64), the spectral check 8.8 s (961 windows
of 64), FSD 94 s (81 windows of 128); at 12 MP (4000 x 3000) PatchNet 24 s and the spectral check
17 s (884 windows, stride widened to 120), FSD 125 s on a sparse grid of 88 windows 416 pixels apart
(`EMBEDDED_MAX_WINDOWS`; gaps between its windows stay 0); peak resident memory of the whole process
885 MB. FSD is the slow one: run it on a GPU or leave it out on large images.

What it cannot do: a region smaller than about half a window is diluted among the genuine pixels of
the windows that cover it; an edit covering most of the image moves the median itself, so it becomes
"the rest"; and a detector that does not react to the edit's process (most do not see a generator's
clean output pasted into a photo) gives a map at chance.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> photo = rng.normal(128, 12, (256, 256, 3)).clip(0, 255).astype(np.uint8)
    >>> result = spectral_window_map(photo)
    >>> result.map.shape, result.region is None
    ((256, 256), True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import norm

from pixelsleuth.detectors.base import Detector, prepare
from pixelsleuth.detectors.npr import ImageTooSmallError
from pixelsleuth.forensics.spectral import periodic_peaks, residual_spectrum
from pixelsleuth.localization.record import (
    ForensicMap,
    LocalizationInputError,
    check_rgb,
    strongest_region,
)

DEFAULT_WINDOW = 128
DEFAULT_MAX_WINDOWS = 1024
MIN_GRID = 3  # windows per side at the least, so that a median and a MAD mean something
# Chosen on 40 genuine photos and their forge edits disjoint from the benchmark's (spectral windows of
# 64: a floor of 4 let 5 of 40 untouched photos through, 6 let 3): real periodic texture is heavy-tailed.
Z_FLOOR = 6.0
FALSE_ALARM = 0.01  # chance, under a normal law, that any window of a genuine image passes the rule
_MAD_TO_SIGMA = 1.4826
_ALIGN = 8
SPECTRAL_TILE = 32
SPECTRAL_WINDOW = 64


@dataclass(frozen=True)
class WindowGrid:
    """Top-left corners of square windows: ``rows`` x ``cols`` (each a sorted list of offsets)."""

    rows: list[int]
    cols: list[int]
    window: int
    stride: int

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    def origins(self) -> list[tuple[int, int]]:
        return [(top, left) for top in self.rows for left in self.cols]


def _starts(extent: int, window: int, stride: int) -> list[int]:
    starts = list(range(0, extent - window + 1, stride))
    if starts[-1] != extent - window:
        starts.append(extent - window)  # the last window touches the edge
    return starts


def window_grid(
    shape: tuple[int, int], window: int, stride: int, *, max_windows: int = DEFAULT_MAX_WINDOWS
) -> WindowGrid:
    """The windows over an image of `shape`, the stride widened (8-pixel steps) to keep `max_windows`.

    Example:
        >>> grid = window_grid((300, 256), 128, 64)
        >>> grid.rows, grid.cols
        ([0, 64, 128, 172], [0, 64, 128])
    """
    height, width = shape
    if min(height, width) < window + (MIN_GRID - 1) * stride:
        need = window + (MIN_GRID - 1) * stride
        raise LocalizationInputError(
            f"a local detector map with {window}-pixel windows needs images of at least {need} x {need} "
            f"pixels ({MIN_GRID} windows a side); this one is {width} x {height}"
        )
    while True:
        rows, cols = _starts(height, window, stride), _starts(width, window, stride)
        if len(rows) * len(cols) <= max_windows or min(len(rows), len(cols)) <= MIN_GRID:
            return WindowGrid(rows, cols, window, stride)
        stride += _ALIGN


def z_threshold(windows: int, *, floor: float = Z_FLOOR, false_alarm: float = FALSE_ALARM) -> float:
    """The z a covered pixel must reach to report a region: max(floor, Bonferroni z for `windows`).

    Example:
        >>> round(z_threshold(49, floor=0), 2), round(z_threshold(2000, floor=0), 2), z_threshold(49)
        (3.53, 4.42, 6.0)
    """
    return max(floor, float(norm.isf(false_alarm / max(windows, 1))))


def robust_z(scores: np.ndarray, *, min_spread: float = 1e-6) -> tuple[np.ndarray, float, float]:
    """(z, median, spread): one-sided robust z-scores of window scores against their own median and MAD.

    Example:
        >>> z, _, _ = robust_z(np.array([0.0, 1.0, -1.0, 0.5, -0.5, 9.0]))
        >>> float(z.max()) > 5, float(z.min())
        (True, 0.0)
    """
    values = np.asarray(scores, np.float64)
    median = float(np.median(values))
    spread = max(_MAD_TO_SIGMA * float(np.median(np.abs(values - median))), min_spread)
    return np.maximum((values - median) / spread, 0.0), median, spread


def windows_to_pixels(values: np.ndarray, grid: WindowGrid, shape: tuple[int, int]) -> np.ndarray:
    """Per-window values (rows x cols) spread over an image of `shape`: each pixel the mean of the
    windows covering it (pixels no window covers get 0).

    Example:
        >>> grid = window_grid((8, 8), 4, 2)
        >>> windows_to_pixels(np.arange(9.0).reshape(3, 3), grid, (8, 8))[0, :4].tolist()
        [0.0, 0.0, 0.5, 0.5]
    """
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for i, top in enumerate(grid.rows):
        for j, left in enumerate(grid.cols):
            total[top : top + grid.window, left : left + grid.window] += values[i, j]
            count[top : top + grid.window, left : left + grid.window] += 1
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


# ---------------------------------------------------------------------------------------------------
# Raw window scores.


def _crops(image: np.ndarray, grid: WindowGrid) -> list[np.ndarray]:
    return [image[top : top + grid.window, left : left + grid.window] for top, left in grid.origins()]


@torch.inference_mode()
def detector_window_logits(
    image: np.ndarray, detector: Detector, grid: WindowGrid, *, batch: int = 64
) -> np.ndarray:
    """The detector's logit of "generated" for every window of `grid` (rows x cols), batched in torch.

    PatchNet scores its own non-overlapping patches; when the windows are made of whole patches, the
    image's patch logits are computed once (on tiles of whole patches) and each window gets the mean of
    its patches' logits, which is what PatchNet's mean aggregation gives the window, to within the two
    pixels of the residual's reflected border.
    """
    patch = getattr(detector, "patch", None)
    aggregate = getattr(detector.model, "aggregate", None)
    if (
        patch
        and aggregate == "mean"
        and grid.window % patch == 0
        and all(offset % patch == 0 for offset in grid.rows[:-1] + grid.cols[:-1])
    ):
        return _patch_window_logits(image, detector, grid, batch=batch)
    detector.model.eval()
    crops = _crops(image, grid)
    if any(
        value is not None for value in (detector.preprocessing.resize, detector.preprocessing.center_crop)
    ):
        crops = [prepare(crop, detector.preprocessing) for crop in crops]
    try:
        detector.check_input(crops[0], crops[0])
    except ImageTooSmallError as exc:
        raise LocalizationInputError(f"the windows are too small for this detector: {exc}") from None
    out = np.empty(len(crops), np.float32)
    for start in range(0, len(crops), batch):
        chunk = np.stack(crops[start : start + batch])
        out[start : start + len(chunk)] = detector.inference_logits(detector.normalise(chunk)).float().cpu()
    return out.reshape(len(grid.rows), len(grid.cols))


def _patch_window_logits(
    image: np.ndarray, detector: Detector, grid: WindowGrid, *, batch: int
) -> np.ndarray:
    patch: int = detector.patch  # type: ignore[attr-defined]
    height, width = image.shape[0] // patch * patch, image.shape[1] // patch * patch
    tile_h, tile_w = min(8 * patch, height), min(8 * patch, width)
    tops, lefts = _starts(height, tile_h, tile_h), _starts(width, tile_w, tile_w)
    origins = [(top, left) for top in tops for left in lefts]
    logits = np.zeros((height // patch, width // patch), np.float64)
    detector.model.eval()
    for start in range(0, len(origins), batch):
        chunk = origins[start : start + batch]
        tiles = np.stack([image[t : t + tile_h, s : s + tile_w] for t, s in chunk])
        out, _ = detector.model.patch_outputs(detector.normalise(tiles))
        for (top, left), grid_logits in zip(chunk, out.float().cpu().numpy(), strict=True):
            rows, cols = grid_logits.shape
            logits[top // patch : top // patch + rows, left // patch : left // patch + cols] = grid_logits
    # A window's logit: the mean of its patches (integral image over the patch grid).
    summed = np.pad(logits.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    side = grid.window // patch
    out = np.empty((len(grid.rows), len(grid.cols)), np.float32)
    for i, top in enumerate(grid.rows):
        for j, left in enumerate(grid.cols):
            r = min(top // patch, logits.shape[0] - side)
            c = min(left // patch, logits.shape[1] - side)
            total = summed[r + side, c + side] - summed[r, c + side] - summed[r + side, c] + summed[r, c]
            out[i, j] = total / (side * side)
    return out


def spectral_window_scores(image: np.ndarray, grid: WindowGrid, *, tile: int = SPECTRAL_TILE) -> np.ndarray:
    """The spectral check's strongest periodic-peak z (as `periodic_peaks` counts it) in every window.

    Each window's residual spectrum is Welch-averaged over half-overlapping `tile`-pixel tiles; the
    peaks at the up-sampling positions (1/2, 1/4 and the eighths) are measured against their ring.
    """
    out = np.empty(grid.count, np.float32)
    for index, crop in enumerate(_crops(image, grid)):
        peaks = periodic_peaks(residual_spectrum(crop, tile=tile), every=True)
        out[index] = max((peak.counted_z for peak in peaks), default=0.0)
    return out.reshape(len(grid.rows), len(grid.cols))


# ---------------------------------------------------------------------------------------------------
# Maps.


def map_from_window_scores(
    scores: np.ndarray,
    grid: WindowGrid,
    shape: tuple[int, int],
    *,
    method: str,
    what: str,
    min_spread: float = 1e-6,
) -> ForensicMap:
    """The `ForensicMap` of per-window raw scores (rows x cols), each read against the image's own.

    Args:
        scores: raw window scores, higher = more like `what` says.
        grid: the windows the scores belong to.
        shape: the image's (height, width).
        method: the map's name.
        what: a few words for the reading ("FSD's self-description residual").
        min_spread: the smallest spread the MAD is allowed (an image whose windows all score alike).
    """
    z, median, spread = robust_z(scores.ravel(), min_spread=min_spread)
    z_grid = z.reshape(scores.shape)
    threshold = z_threshold(grid.count)
    heat = np.clip(windows_to_pixels(z_grid, grid, shape) / (2 * threshold), 0.0, 1.0).astype(np.float32)
    score = float(heat.max())
    region = strongest_region(heat) if score >= 0.5 else None
    data = {
        "window": grid.window,
        "stride": grid.stride,
        "windows": grid.count,
        "median_window_score": round(median, 4),
        "window_score_spread": round(spread, 4),
        "max_window_z": round(float(z.max()), 2),
        "z_report": round(threshold, 2),
    }
    if region is None:
        reading = (
            f"No part of the image stands out under {what}: the strongest of {grid.count} windows is "
            f"{float(z.max()):.1f} robust deviations above the image's median, under the {threshold:.1f} "
            "needed to report a region."
        )
        return ForensicMap(method, heat, score, reading, None, data)
    reading = (
        f"The region {region.words()} scores higher under {what} than the rest of the image (up to "
        f"{float(z.max()):.1f} robust deviations above its median); its pixels may have been made by "
        "another process, such as a generator's inpainting."
    )
    return ForensicMap(method, heat, score, reading, region, data)


def local_detector_map(
    image: np.ndarray,
    detector: Detector,
    *,
    window: int = DEFAULT_WINDOW,
    stride: int | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    batch: int = 64,
) -> ForensicMap:
    """Map of the windows a learned detector finds more "generated" than the rest of the image.

    Args:
        image: H x W x 3 uint8 (or grey), at least 3 windows a side.
        detector: any `pixelsleuth.detectors` detector (its logit is the window's raw score).
        window: window side in pixels (FSD needs at least 104; PatchNet's windows are best whole
            patches).
        stride: step between windows (default half the window); widened on large images.
        max_windows: the most windows scored.
        batch: windows per torch call.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or fewer than 3 windows a side.

    Example:
        >>> import numpy as np
        >>> from pixelsleuth.detectors import create
        >>> photo = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
        >>> local_detector_map(photo, create("patchnet"), window=64).map.shape
        (256, 256)
    """
    stride = stride or window // 2
    image = check_rgb(image, minimum=window + (MIN_GRID - 1) * stride, method="a local detector map")
    grid = window_grid(image.shape[:2], window, stride, max_windows=max_windows)
    logits = detector_window_logits(image, detector, grid, batch=batch)
    what = f"the {detector.name} detector"
    return map_from_window_scores(logits, grid, image.shape[:2], method=f"{detector.name}-windows", what=what)


def spectral_window_map(
    image: np.ndarray,
    *,
    window: int = SPECTRAL_WINDOW,
    stride: int | None = None,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> ForensicMap:
    """Map of the windows whose noise residual shows stronger periodic up-sampling peaks than the rest.

    Training-free (see `pixelsleuth.forensics.spectral`); a pixel is as suspicious as the strongest peak
    (1/2, 1/4, ...) of the windows covering it, in robust deviations from the image's own windows.

    Raises:
        LocalizationInputError: not an RGB uint8 image, or fewer than 3 windows a side.
    """
    stride = stride or window // 2
    image = check_rgb(image, minimum=window + (MIN_GRID - 1) * stride, method="a local spectral map")
    grid = window_grid(image.shape[:2], window, stride, max_windows=max_windows)
    scores = spectral_window_scores(image, grid)
    what = "the spectral up-sampling check"
    return map_from_window_scores(
        scores, grid, image.shape[:2], method="spectral-windows", what=what, min_spread=0.25
    )


@functools.lru_cache(maxsize=1)
def embedded_window_detectors() -> tuple[Detector, ...]:
    """The default detectors shipped with the package (`embedded_detectors`), loaded once."""
    from pixelsleuth.detectors import create
    from pixelsleuth.detectors.defaults import embedded_detectors

    return tuple(create(name, weights) for name, weights in embedded_detectors())


# Window sides per map: FSD needs 104 pixels at least; PatchNet reads 32-pixel patches; the spectral
# check separated up-sampled regions better with 64-pixel windows than 128 (tuning photos, pixel AUC
# 0.80 against 0.76).
EMBEDDED_WINDOWS = {"fsd": 128, "patchnet": 64, "spectral": SPECTRAL_WINDOW}
# FSD costs about 0.3 s per 128-pixel window on 2 CPU cores: on large images it reads a sparse grid.
EMBEDDED_MAX_WINDOWS = {"fsd": 96}


def detector_maps(
    image: np.ndarray,
    *,
    spectral: bool = True,
    detectors: tuple[Detector, ...] | None = None,
    windows: dict[str, int] | None = None,
    max_windows: dict[str, int] | None = None,
) -> list[ForensicMap]:
    """Local maps of every embedded default detector (loaded once) and, if asked, the spectral check.

    Args:
        image: H x W x 3 uint8.
        spectral: add the spectral check's map.
        detectors: the detectors to run instead of the embedded defaults.
        windows: window side per map name (``"fsd"``, ``"patchnet"``, ``"spectral"``), over
            `EMBEDDED_WINDOWS`.
        max_windows: the most windows per map name, over `EMBEDDED_MAX_WINDOWS` (FSD's few windows
            leave gaps between them on large images: its map is 0 there).

    Raises:
        LocalizationInputError: the image is too small for one of the maps (256 pixels a side suffice
            with the default windows).
    """
    sides = {**EMBEDDED_WINDOWS, **(windows or {})}
    budgets = {**EMBEDDED_MAX_WINDOWS, **(max_windows or {})}
    chosen = embedded_window_detectors() if detectors is None else detectors
    maps = [
        local_detector_map(
            image,
            detector,
            window=sides.get(detector.name, DEFAULT_WINDOW),
            max_windows=budgets.get(detector.name, DEFAULT_MAX_WINDOWS),
        )
        for detector in chosen
    ]
    if spectral:
        maps.append(
            spectral_window_map(
                image,
                window=sides.get("spectral", SPECTRAL_WINDOW),
                max_windows=budgets.get("spectral", DEFAULT_MAX_WINDOWS),
            )
        )
    return maps


__all__ = [
    "DEFAULT_WINDOW",
    "WindowGrid",
    "detector_maps",
    "detector_window_logits",
    "embedded_window_detectors",
    "local_detector_map",
    "map_from_window_scores",
    "robust_z",
    "spectral_window_map",
    "spectral_window_scores",
    "window_grid",
    "windows_to_pixels",
    "z_threshold",
]
