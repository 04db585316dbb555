"""Forensic self-descriptions: how an image's noise residuals predict themselves, as one short vector.

Nguyen, Azizpour and Stamm, "Forensic Self-Descriptions Are All You Need for Zero-Shot Detection,
Open-Set Source Attribution, and Clustering of AI-generated Images", CVPR 2025 (arXiv 2503.21003).
The way an image was made (a camera's optics, demosaicing and compression; a generator's decoder and
up-sampling layers) leaves *forensic microstructures*: fine, local dependencies between neighbouring
pixels that have nothing to do with what the picture shows. The paper exposes them with predictive
filters learned on real photos only, and describes each image by the parameters of a small model fitted
to its own residuals, at several scales. A density of real photos' descriptions then flags images that
were not made like a photo, whatever made them; densities of known generators' descriptions attribute.

This module is the part without learned density: pure functions on torch tensors, in three steps.

1. **Prediction-error filters** (`fit_filter_bank`, fitted once on genuine photos). Each filter
   predicts the centre pixel from its neighbours on a fixed support (3 x 3, 5 x 5, 7 x 7, a row, a
   column, ...), with its taps summing to 1 (the constraint of Bayar and Stamm's constrained
   convolution); the weights are the closed-form constrained least-squares solution over many photos
   (`solve_constrained_predictor`). The residual kernel is then 1 at the centre and minus the weights
   elsewhere, so it sums to 0: the residual ``x - predicted(x)`` removes the image content a photo's
   neighbourhood explains and keeps what it does not.
2. **Residuals at several scales** (`prediction_residuals`, `average_pool_pyramid`): the image, and its
   2x and 4x average-pooled versions, each filtered by the bank fitted at that scale.
3. **Self-description** (`residual_self_description`): for every residual map, the ridge least-squares
   coefficients that predict each residual sample from its ``(2r + 1)^2 - 1`` neighbours (24 for
   ``r = 2``), from the map's own ``X^T X`` in closed form, plus the log mean square of the residual and
   of that prediction's error. `self_description` stacks these over maps and scales: one vector per
   image (1872 numbers with the defaults: 3 scales x 8 filters x 3 colour planes x 26).

Where this follows the paper and where it does not: the paper learns its filters and its per-image
model by gradient descent and models residuals jointly across scales; here both are closed-form
least squares, per residual map, which makes the description deterministic and fast on a CPU (about 40
milliseconds for a 256-pixel crop on one core).

Example:
    >>> import torch
    >>> config = DescriptionConfig(scales=(1, 2), supports=("cross3", "square5"))
    >>> photos = torch.rand(4, 3, 96, 96) * 255
    >>> bank = fit_filter_bank([photos], config)
    >>> bank.shape  # scales x filters x size x size
    torch.Size([2, 2, 7, 7])
    >>> self_description(photos, bank, config).shape == (4, config.n_features)
    True

References:
    T. D. Nguyen, A. Azizpour and M. C. Stamm, "Forensic Self-Descriptions Are All You Need for
    Zero-Shot Detection, Open-Set Source Attribution, and Clustering of AI-generated Images", CVPR 2025.
    B. Bayar and M. C. Stamm, "Constrained convolutional neural networks: a new approach towards
    general purpose image manipulation detection", IEEE TIFS 13(11), 2018.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

# The supports of the default bank: which neighbours each filter predicts the centre from.
SUPPORT_NAMES = ("cross3", "square3", "square5", "square7", "row7", "column7", "diagonals7", "ring5")
FILTER_SIZE = 7
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as JPEG computes Y
# Elements of the stacked neighbourhood views built at once (16 MB of float32): large images are
# described a band of rows at a time, so memory stays bounded whatever the image size. Chunks of 64 MB
# measured 1.5-15x slower here (their copies miss the caches); 4 MB ones slower too (more calls).
_VIEW_ELEMENTS = 4_000_000
# Elements of `square_grams`' interleaved copy per block (5 MB of float32): measured fastest here, where
# it stays in the 32 MB L3 cache; whole batches (tens of MB) were twice as slow.
_SQUARE_ELEMENTS = 1_300_000
_LAG_BLOCK = 512  # products summed in float32 before their sums are added in float64
_EPSILON = 1e-8

Channels = Literal["luma", "rgb"]


def support_mask(name: str, size: int = FILTER_SIZE) -> np.ndarray:
    """The neighbours a named predictor reads, as a `size` x `size` boolean mask (centre always False).

    Names: ``cross3`` (4 nearest), ``square3`` / ``square5`` / ``square7`` (the full square), ``row7``
    and ``column7`` (3 on each side along a line), ``diagonals7`` (both diagonals), ``ring5`` (the
    16 pixels at distance 2, skipping the 8 nearest).

    Example:
        >>> support_mask("cross3", 3).astype(int)
        array([[0, 1, 0],
               [1, 0, 1],
               [0, 1, 0]])
    """
    if size % 2 == 0:
        raise ValueError(f"the filter size must be odd, got {size}")
    half = size // 2
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    chebyshev = np.maximum(np.abs(dy), np.abs(dx))
    shapes = {  # name: (reach from the centre, which neighbours)
        "cross3": (1, np.abs(dy) + np.abs(dx) == 1),
        "square3": (1, chebyshev <= 1),
        "square5": (2, chebyshev <= 2),
        "square7": (3, chebyshev <= 3),
        "row7": (3, (dy == 0) & (np.abs(dx) <= 3)),
        "column7": (3, (dx == 0) & (np.abs(dy) <= 3)),
        "diagonals7": (3, (np.abs(dy) == np.abs(dx)) & (chebyshev <= 3)),
        "ring5": (2, chebyshev == 2),
    }
    if name not in shapes:
        raise ValueError(f"unknown support {name!r}; known supports: {', '.join(shapes)}")
    reach, mask = shapes[name]
    if reach > half:
        raise ValueError(f"the support {name!r} reaches {reach} pixels, more than a {size} x {size} filter")
    mask = mask.copy()
    mask[half, half] = False
    return mask


def neighbour_offsets(radius: int) -> list[tuple[int, int]]:
    """Offsets (dy, dx) of the square neighbourhood of `radius` without its centre, in raster order.

    Example:
        >>> len(neighbour_offsets(2)), neighbour_offsets(1)[:3]
        (24, [(-1, -1), (-1, 0), (-1, 1)])
    """
    return [
        (dy, dx)
        for dy in range(-radius, radius + 1)
        for dx in range(-radius, radius + 1)
        if (dy, dx) != (0, 0)
    ]


def channel_planes(pixels: torch.Tensor, channels: Channels = "luma") -> torch.Tensor:
    """The planes residuals are taken of: N x 3 x H x W RGB -> N x 1 luminance, or the 3 colour planes.

    Example:
        >>> channel_planes(torch.full((1, 3, 2, 2), 100.0)).flatten().tolist()
        [100.0, 100.0, 100.0, 100.0]
    """
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W batch, got shape {tuple(pixels.shape)}")
    if channels == "rgb":
        return pixels
    if channels != "luma":
        raise ValueError(f"channels must be 'luma' or 'rgb', got {channels!r}")
    weights = torch.tensor(LUMA_WEIGHTS, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)


def average_pool_pyramid(planes: torch.Tensor, scales: Sequence[int]) -> list[torch.Tensor]:
    """The planes at each scale: 1 = as they are, s > 1 = averaged over s x s blocks (remainder dropped).

    Example:
        >>> [level.shape[-1] for level in average_pool_pyramid(torch.zeros(1, 1, 10, 10), (1, 2, 4))]
        [10, 5, 2]
    """
    return [planes if scale == 1 else F.avg_pool2d(planes, scale) for scale in scales]


def shifted_views(planes: torch.Tensor, offsets: Sequence[tuple[int, int]], margin: int) -> torch.Tensor:
    """Stack of the planes shifted by each offset, over the positions `margin` away from every edge.

    Args:
        planes: ... x H x W tensor.
        offsets: (dy, dx) pairs, each component at most `margin` in absolute value.
        margin: border left out on every side.

    Returns:
        ... x len(offsets) x (H - 2 margin) x (W - 2 margin): entry ``[..., t, i, j]`` is the plane at
        ``(i + margin + dy_t, j + margin + dx_t)``.

    Example:
        >>> plane = torch.arange(16.0).reshape(4, 4)
        >>> shifted_views(plane, [(0, 0), (0, 1), (-1, 0)], 1)[:, 0, 0].tolist()
        [5.0, 6.0, 1.0]
    """
    height, width = planes.shape[-2:]
    rows, cols = height - 2 * margin, width - 2 * margin
    if rows < 1 or cols < 1:
        raise ValueError(f"planes of {height} x {width} leave nothing inside a margin of {margin}")
    views = [
        planes[..., margin + dy : margin + dy + rows, margin + dx : margin + dx + cols] for dy, dx in offsets
    ]
    return torch.stack(views, dim=-3)


def phase_grams(
    planes: torch.Tensor, offsets: Sequence[tuple[int, int]], margin: int, period: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of outer products of the shifted views, split by the phase of the centre pixel.

    The phase of a centre at plane position ``(y, x)`` is ``(y mod period) * period + x mod period``:
    an image enlarged by `period` (or a multiple) predicts itself differently at different phases, a
    camera photo does not. With one phase the sums come from `square_grams` (the same numbers, in a
    third of the time); with several, from the shifted views a few planes, or a band of rows, at a time.

    Args:
        planes: B x H x W tensor.
        offsets: T offsets (see `shifted_views`).
        margin: border left out on every side.
        period: phases per axis (1: one phase, every position).

    Returns:
        ``(sums, counts)``: B x period^2 x T x T sums of ``x(p + o_s) x(p + o_t)`` over the centres ``p``
        of each phase, and the period^2 numbers of centres.

    Example:
        >>> sums, counts = phase_grams(torch.ones(1, 6, 6), [(0, 0)], 1, period=2)
        >>> sums.flatten().tolist(), counts.tolist()
        ([4.0, 4.0, 4.0, 4.0], [4.0, 4.0, 4.0, 4.0])
    """
    height, width = planes.shape[-2:]
    rows, cols = height - 2 * margin, width - 2 * margin
    if period == 1 and rows >= 1 and cols >= 1 and all(max(abs(dy), abs(dx)) <= margin for dy, dx in offsets):
        size = 2 * margin + 1
        square = square_grams(planes, margin)
        index = torch.tensor([(dy + margin) * size + dx + margin for dy, dx in offsets])
        sums = square[:, index[:, None], index[None, :]].unsqueeze(1)
        return sums, torch.tensor([float(rows * cols)], dtype=torch.float64)
    return _phase_grams_from_views(planes, offsets, margin, period)


def _phase_grams_from_views(
    planes: torch.Tensor, offsets: Sequence[tuple[int, int]], margin: int, period: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`phase_grams` the direct way: stack the shifted views and multiply them out."""
    batch, height, width = planes.shape
    count = len(offsets)
    rows, cols = height - 2 * margin, width - 2 * margin
    # Whole planes, several at a time, when one fits the budget; else one plane a band of rows at a time.
    per_plane = count * rows * cols
    group = max(1, min(batch, _VIEW_ELEMENTS // per_plane))
    band = rows if group > 1 else max(period, _VIEW_ELEMENTS // (count * cols) // period * period)
    sums = planes.new_zeros(batch, period * period, count, count)
    counts = torch.zeros(period * period, dtype=torch.float64)
    for start in range(0, batch, group):
        chunk = slice(start, min(batch, start + group))
        size = chunk.stop - chunk.start
        for top in range(0, rows, band):
            bottom = min(rows, top + band)
            views = shifted_views(planes[chunk, top : bottom + 2 * margin], offsets, margin)
            for phase_y in range(period):
                first_row = (phase_y - top - margin) % period
                for phase_x in range(period):
                    first_col = (phase_x - margin) % period
                    part = views[..., first_row::period, first_col::period].reshape(size, count, -1)
                    sums[chunk, phase_y * period + phase_x] += part @ part.transpose(1, 2)
                    if start == 0:
                        counts[phase_y * period + phase_x] += part.shape[-1]
    return sums, counts


def square_grams(planes: torch.Tensor, margin: int) -> torch.Tensor:
    """Sums of outer products of every (2 margin + 1)^2 neighbourhood, over the centres `margin` inside.

    ``G[b, s, t] = sum_p x_b(p + o_s) x_b(p + o_t)`` for the offsets ``o`` of the whole square in raster
    order, ``(-margin, -margin)`` first. Equal to multiplying out the stacked `shifted_views` (to float32
    rounding) at a fraction of the cost, because an entry depends on its two offsets mostly through their
    difference, a *lag*: read as one long row, a centre's square is ``S`` runs of ``S`` consecutive values
    (``S = 2 margin + 1``) one image row apart, and ``G[s, t]`` is the sum of ``x(u) x(u + lag)`` over a
    window of ``u`` that depends on ``s`` only through where it starts. So the sums of the ``S (2S - 1)``
    lags are taken once over one window (``S`` interleaved copies of the plane, one matrix-vector
    product per phase of ``2S - 1`` positions: ``S (2S - 1)`` multiply-adds per centre instead of
    ``S^4``), and each entry is that lag's sum corrected by the products where its own window starts and
    ends before or after that one (a few rows' worth). The positions where a square wraps from one image
    row into the next are then subtracted. Products are summed in float32 blocks of 512 and the blocks
    in float64, which keeps the descriptions as accurate as the stacked views' (their prediction-error
    energies are small differences of these sums). Planes are taken a few at a time, or a band of rows
    at a time, so that the interleaved copy stays in the processor's cache. On 250-pixel maps, one core:
    3.2x the stacked views (`benchmarks/fsd_speed.py`).

    Args:
        planes: B x H x W tensor.
        margin: border left out on every side (the neighbourhood's radius).

    Returns:
        B x S^2 x S^2 tensor, the dtype of `planes`.

    Example:
        >>> planes = torch.randn(2, 9, 11)
        >>> views = shifted_views(planes, [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
        >>> direct = views.reshape(2, 9, -1) @ views.reshape(2, 9, -1).transpose(1, 2)
        >>> torch.allclose(square_grams(planes, 1), direct, atol=1e-4)
        True
    """
    batch, height, width = planes.shape
    size = 2 * margin + 1
    rows = height - 2 * margin
    if rows < 1 or width - 2 * margin < 1:
        raise ValueError(f"planes of {height} x {width} leave nothing inside a margin of {margin}")
    per_row = width * size
    band = max(1, min(rows, _SQUARE_ELEMENTS // per_row))
    group = max(1, min(batch, _SQUARE_ELEMENTS // (per_row * band)))
    sums = planes.new_zeros(batch, size * size, size * size)
    for start in range(0, batch, group):
        for top in range(0, rows, band):
            bottom = min(rows, top + band)
            sums[start : start + group] += _square_gram_block(
                planes[start : start + group, top : bottom + 2 * margin], margin
            )
    return sums


@dataclass(frozen=True)
class _SquareLayout:
    """Index bookkeeping of `_square_gram_block` for one plane size (cached: it repeats for every tile).

    Positions are flat indices ``t = y W + x`` of the plane; centre ``k`` (its square's top-left corner)
    reads ``k + offset`` for the ``S^2`` tap offsets. Lags are indexed ``e * S + di`` for a difference of
    ``di`` rows and ``e - 2 margin`` columns.
    """

    offsets: torch.Tensor  # S^2 tap offsets
    pair_first: torch.Tensor  # per (s, t) entry: the tap of the pair that comes first in the flat order
    pair_lag: torch.Tensor  # per (s, t) entry: the lag from that tap to the other
    starts_before: torch.Tensor  # (S^2 + 1) x reach: 1 where position u < each tap's offset (and 2 margin)
    wrapped: torch.Tensor  # centres whose squares wrap into the next row, or lie past the last row
    centres: int  # the centres summed over: every position of the centre rows, rounded up to 2S - 1
    reach: int  # 1 + the largest tap offset


@functools.lru_cache(maxsize=64)
def _square_layout(margin: int, height: int, width: int) -> _SquareLayout:
    size, span = 2 * margin + 1, 4 * margin + 1
    taps = [(i, j) for i in range(size) for j in range(size)]
    pair_first, pair_lag = [], []
    for index_a, tap_a in enumerate(taps):
        for index_b, tap_b in enumerate(taps):
            first, (row_a, col_a), (row_b, col_b) = (
                (index_a, tap_a, tap_b) if tap_a <= tap_b else (index_b, tap_b, tap_a)
            )
            pair_first.append(first)
            pair_lag.append((col_b - col_a + 2 * margin) * size + row_b - row_a)
    offsets = torch.tensor([i * width + j for i, j in taps])
    in_rows = (height - 2 * margin) * width
    centres = -(-in_rows // span) * span
    reach = int(offsets.max()) + 1
    origins = torch.cat([offsets, torch.tensor([2 * margin])])
    starts_before = (torch.arange(reach)[None, :] < origins[:, None]).float()
    positions = torch.arange(centres)
    wrapped = positions[(positions % width >= width - 2 * margin) | (positions >= in_rows)]
    return _SquareLayout(
        offsets, torch.tensor(pair_first), torch.tensor(pair_lag), starts_before, wrapped, centres, reach
    )


def _square_gram_block(planes: torch.Tensor, margin: int) -> torch.Tensor:
    """`square_grams` of a few planes at once (see there for the method)."""
    batch, height, width = planes.shape
    size, span = 2 * margin + 1, 4 * margin + 1
    run = span * size  # one run: 2S - 1 interleaved positions
    layout = _square_layout(margin, height, width)
    lead = 2 * margin  # zeros before the plane, so that negative column lags read zeros at its start
    per_phase = layout.centres // span
    # Each plane's interleaved copy is `blocks` blocks of _LAG_BLOCK runs per phase, so that the runs of
    # all planes and blocks are one batch of matrices; a run past the last centre meets a zero factor.
    blocks = -(-(layout.centres + layout.reach + span) // (_LAG_BLOCK * span))
    rows = blocks * _LAG_BLOCK * span  # interleaved positions per plane
    flat = F.pad(planes.reshape(batch, -1), (lead, lead + rows + size * width - height * width))
    spill = (lead + 2 * span) * size  # the last plane's last runs read this far past its copy
    buffer = flat.new_empty(batch * rows * size + spill)
    buffer[batch * rows * size :] = 0
    # interleaved row r of position t: flat[t + r W] = the plane at t - lead + r W
    interleaved = buffer[: batch * rows * size].view(batch, rows * size)
    shifts = flat.as_strided((batch, rows, size), (flat.stride(0), 1, width))
    interleaved.view(batch, rows, size).copy_(shifts)
    # lags[b, e S + di] = sum over v in [0, centres) of x(v + 2m) x(v + di W + e): the run from v holds
    # both factors. Sums of _LAG_BLOCK products in float32, their total in float64: the prediction
    # error energies below are small differences of these sums.
    head = buffer.new_zeros(batch, blocks * _LAG_BLOCK)
    lags = torch.zeros(batch, run, dtype=torch.float64, device=planes.device)
    for phase in range(span):
        start = (lead + phase) * size
        runs = buffer.as_strided((batch * blocks, _LAG_BLOCK, run), (_LAG_BLOCK * run, run, 1), start)
        head[:, :per_phase] = buffer.as_strided((batch, per_phase), (rows * size, run), start + lead * size)
        partial = head.view(batch * blocks, 1, _LAG_BLOCK) @ runs
        lags += partial.view(batch, blocks, run).sum(dim=1, dtype=torch.float64)
    # Tap a's window starts at u = a instead of 2m: subtract the products before a, add those after the
    # end, from the positions near the start and near the end of the plane.
    weights = layout.starts_before.to(planes.dtype)

    def products_before(start: int) -> torch.Tensor:
        values = flat[:, lead + start : lead + start + layout.reach]
        runs = interleaved[:, start * size : (start + layout.reach + span) * size]
        runs = runs.as_strided((batch, layout.reach, run), (runs.stride(0), size, 1))
        return (weights @ (values[:, :, None] * runs)).double()  # B x (S^2 + 1) x lags

    front, back = products_before(0), products_before(layout.centres)
    per_tap = lags[:, None] - (front[:, :-1] - front[:, -1:]) + (back[:, :-1] - back[:, -1:])
    square = per_tap[:, layout.pair_first, layout.pair_lag].view(batch, size * size, size * size)
    wrapped = flat[:, lead + layout.wrapped[:, None] + layout.offsets[None, :]]
    return (square - (wrapped.transpose(1, 2) @ wrapped).double()).to(planes.dtype)


def neighbourhood_gram(planes: torch.Tensor, offsets: Sequence[tuple[int, int]], margin: int) -> torch.Tensor:
    """Mean outer product of the shifted views: ``G[..., s, t] = mean_p x(p + o_s) x(p + o_t)``.

    Args:
        planes: B x H x W tensor.
        offsets: T offsets (see `shifted_views`).
        margin: border left out on every side.

    Returns:
        B x T x T float tensor (the dtype of `planes`).

    Example:
        >>> neighbourhood_gram(torch.ones(1, 5, 5), [(0, 0), (0, 1)], 1).tolist()
        [[[1.0, 1.0], [1.0, 1.0]]]
    """
    sums, counts = phase_grams(planes, offsets, margin)
    return sums[:, 0] / float(counts[0])


# ---------------------------------------------------------------------------------------------------
# Step 1: the prediction-error filters, fitted on genuine photos.


@dataclass(frozen=True)
class NormalEquations:
    """Sums of least-squares statistics for predicting a centre pixel from its neighbours.

    `gram` is ``sum X^T X`` over the neighbours (T x T), `cross` is ``sum X^T y`` (T), `count` the
    number of predicted pixels. Sums add: ``a + b`` pools two batches of photos.
    """

    gram: np.ndarray
    cross: np.ndarray
    count: int

    def __add__(self, other: NormalEquations) -> NormalEquations:
        return NormalEquations(self.gram + other.gram, self.cross + other.cross, self.count + other.count)


def prediction_normal_equations(planes: torch.Tensor, mask: np.ndarray) -> NormalEquations:
    """Least-squares sums for predicting every pixel of `planes` (N x C x H x W) from its `mask` neighbours.

    Only pixels whose whole `mask` window lies inside the plane are predicted.

    Example:
        >>> eq = prediction_normal_equations(torch.ones(1, 1, 5, 5), support_mask("cross3", 3))
        >>> eq.gram.shape, eq.count
        ((4, 4), 9)
    """
    half = mask.shape[0] // 2
    offsets = [(int(dy) - half, int(dx) - half) for dy, dx in zip(*np.nonzero(mask), strict=True)]
    flat = planes.reshape(-1, *planes.shape[-2:]).to(torch.float64)
    gram = neighbourhood_gram(flat, [*offsets, (0, 0)], half).sum(dim=0)
    pixels = (planes.shape[-2] - 2 * half) * (planes.shape[-1] - 2 * half)
    total = gram * pixels  # neighbourhood_gram returns means per plane
    count = len(offsets)
    return NormalEquations(
        total[:count, :count].numpy(), total[:count, count].numpy(), pixels * flat.shape[0]
    )


def solve_constrained_predictor(equations: NormalEquations, ridge: float = 1e-6) -> np.ndarray:
    """Least-squares weights predicting the centre from its neighbours, constrained to sum to 1.

    Minimises ``||y - X w||^2 + lambda ||w||^2`` subject to ``sum(w) = 1`` (Lagrange multiplier, closed
    form): ``w = w_u + G^-1 1 (1 - 1^T w_u) / (1^T G^-1 1)`` with ``G = X^T X + lambda I`` and the
    unconstrained ``w_u = G^-1 X^T y``; ``lambda`` is `ridge` times the mean diagonal of ``X^T X``.

    Example:
        >>> eq = NormalEquations(np.eye(2) * 4.0, np.array([4.0, 0.0]), 4)
        >>> solve_constrained_predictor(eq).round(3).tolist()
        [1.0, 0.0]
    """
    gram = np.asarray(equations.gram, np.float64)
    size = gram.shape[0]
    gram = gram + ridge * max(float(np.trace(gram)) / size, _EPSILON) * np.eye(size)
    unconstrained = np.linalg.solve(gram, equations.cross)
    towards_ones = np.linalg.solve(gram, np.ones(size))
    return unconstrained + towards_ones * (1.0 - unconstrained.sum()) / towards_ones.sum()


def residual_kernel(weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The convolution kernel whose output is the prediction error: 1 at the centre, ``-w`` on the support.

    Example:
        >>> kernel = residual_kernel(np.full(4, 0.25), support_mask("cross3", 3))
        >>> float(kernel.sum()), float(kernel[1, 1]), float(kernel[0, 1])
        (0.0, 1.0, -0.25)
    """
    kernel = np.zeros(mask.shape, np.float64)
    kernel[mask] = -np.asarray(weights, np.float64)
    kernel[mask.shape[0] // 2, mask.shape[1] // 2] = 1.0
    return kernel


# ---------------------------------------------------------------------------------------------------
# Steps 2 and 3: residuals at several scales and their self-description.


@dataclass(frozen=True)
class DescriptionConfig:
    """What a self-description is made of.

    Attributes:
        scales: average-pooling factors of the pyramid (1 = the image itself).
        supports: one prediction-error filter per support name (`support_mask`), at each scale.
        filter_size: side of every filter kernel (odd; supports must fit in it).
        radius: the per-image model predicts a residual sample from the ``(2 radius + 1)^2 - 1`` around it.
        channels: ``"rgb"`` (each colour plane through the same filters) or ``"luma"`` (one plane: a third
            of the cost; on the pool's calibration crops its ROC-AUC was about 2 points lower).
        ridge: ridge of the per-image model, relative to the mean diagonal of its ``X^T X``.
        period: phases per axis of the phase energies (2: the 2 x 2 grid of a 2x up-sampling, at each
            scale; 1: none, the default: on the pool's calibration crops they lowered the ROC-AUC by 2
            points).
    """

    scales: tuple[int, ...] = (1, 2, 4)
    supports: tuple[str, ...] = SUPPORT_NAMES
    filter_size: int = FILTER_SIZE
    radius: int = 2
    channels: Channels = "rgb"
    ridge: float = 1e-3
    period: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(int(scale) for scale in self.scales))
        object.__setattr__(self, "supports", tuple(self.supports))
        if not self.scales or min(self.scales) < 1:
            raise ValueError(f"scales must be positive integers, got {self.scales}")
        for name in self.supports:
            support_mask(name, self.filter_size)  # raises on an unknown or oversized support
        if self.radius < 1:
            raise ValueError(f"the description radius must be at least 1, got {self.radius}")
        if self.period < 1:
            raise ValueError(f"the phase period must be at least 1, got {self.period}")
        if self.channels not in ("luma", "rgb"):
            raise ValueError(f"channels must be 'luma' or 'rgb', got {self.channels!r}")

    @property
    def n_planes(self) -> int:
        return 1 if self.channels == "luma" else 3

    @property
    def n_neighbours(self) -> int:
        return (2 * self.radius + 1) ** 2 - 1

    @property
    def features_per_map(self) -> int:
        """Coefficients of the per-map model, two log energies, and two per phase when period > 1."""
        return self.n_neighbours + 2 + (2 * self.period**2 if self.period > 1 else 0)

    @property
    def n_features(self) -> int:
        return len(self.scales) * len(self.supports) * self.n_planes * self.features_per_map

    @property
    def min_side(self) -> int:
        """Smallest image side whose coarsest residual map still has 16 x 16 positions to describe.

        Example:
            >>> DescriptionConfig().min_side
            104
        """
        return max(self.scales) * (self.filter_size - 1 + 2 * self.radius + 16)

    def feature_names(self) -> list[str]:
        """A name per feature, in the order of `self_description`, e.g. ``s2/square5/luma/c(-1,0)``."""
        planes = ["luma"] if self.channels == "luma" else ["red", "green", "blue"]
        per_map = [f"c({dy},{dx})" for dy, dx in neighbour_offsets(self.radius)]
        per_map += ["log_energy", "log_error"]
        if self.period > 1:
            phases = [f"{y}{x}" for y in range(self.period) for x in range(self.period)]
            per_map += [f"phase{phase}_energy" for phase in phases] + [
                f"phase{phase}_error" for phase in phases
            ]
        return [
            f"s{scale}/{support}/{plane}/{name}"
            for scale in self.scales
            for support in self.supports
            for plane in planes
            for name in per_map
        ]


def fit_filter_bank(
    batches: Iterable[torch.Tensor], config: DescriptionConfig = DescriptionConfig(), *, ridge: float = 1e-6
) -> torch.Tensor:
    """Fit the prediction-error filters on genuine photos: one per support, at each scale.

    Args:
        batches: N x 3 x H x W float batches of RGB pixels in [0, 255] (any sizes).
        config: the scales, supports, filter size and planes.
        ridge: relative ridge of the constrained least squares (numerical safety only).

    Returns:
        scales x supports x size x size float32 residual kernels (`residual_kernel`).

    Example:
        >>> bank = fit_filter_bank([torch.rand(2, 3, 64, 64) * 255], DescriptionConfig(scales=(1,)))
        >>> bank.shape, bool(bank.sum(dim=(-1, -2)).abs().max() < 1e-5)
        (torch.Size([1, 8, 7, 7]), True)
    """
    masks = [support_mask(name, config.filter_size) for name in config.supports]
    sums: list[list[NormalEquations | None]] = [[None] * len(masks) for _ in config.scales]
    for batch in batches:
        pyramid = average_pool_pyramid(channel_planes(batch.float(), config.channels), config.scales)
        for level, planes in enumerate(pyramid):
            if min(planes.shape[-2:]) < config.filter_size:
                continue
            for index, mask in enumerate(masks):
                equations = prediction_normal_equations(planes, mask)
                previous = sums[level][index]
                sums[level][index] = equations if previous is None else previous + equations
    bank = np.zeros((len(config.scales), len(masks), config.filter_size, config.filter_size))
    for level, scale in enumerate(config.scales):
        for index, mask in enumerate(masks):
            equations = sums[level][index]
            if equations is None:
                raise ValueError(f"no image was large enough to fit filters at scale {scale}")
            bank[level, index] = residual_kernel(solve_constrained_predictor(equations, ridge), mask)
    return torch.from_numpy(bank).float()


def prediction_residuals(planes: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Every plane through every kernel (valid positions only): N x C x H x W -> N x (C K) x h x w.

    Maps are ordered kernel-major: map ``k * C + c`` is kernel ``k`` on plane ``c``.

    Example:
        >>> kernel = torch.from_numpy(residual_kernel(np.full(4, 0.25), support_mask("cross3", 3)))
        >>> prediction_residuals(torch.ones(2, 1, 8, 8), kernel[None].float()).abs().max().item()
        0.0
    """
    maps = _plane_major_residuals(planes, kernels)  # N x C x K x h x w
    return maps.transpose(1, 2).reshape(planes.shape[0], -1, *maps.shape[-2:])


def _plane_major_residuals(planes: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C x K x h x w: one convolution with a group per plane (measured 1.3x faster
    here than the planes as a batch of one-channel images)."""
    batch, count = planes.shape[:2]
    weights = kernels.to(planes.dtype).unsqueeze(1).repeat(count, 1, 1, 1)  # (C K) x 1 x k x k
    maps = F.conv2d(planes, weights, groups=count)
    return maps.view(batch, count, kernels.shape[0], *maps.shape[-2:])


def residual_self_description(
    residuals: torch.Tensor, radius: int = 2, ridge: float = 1e-3, period: int = 1
) -> torch.Tensor:
    """Describe each residual map by the linear model that predicts it from its own neighbourhood.

    For every map, the ridge least-squares coefficients ``w`` predicting each sample from the
    ``(2 radius + 1)^2 - 1`` around it, solved from the map's ``X^T X`` (the ridge is `ridge` times its
    mean diagonal), then ``log(mean r^2)`` and ``log(mean (r - X w)^2)``. The coefficients do not depend
    on the residual's scale; the two energies carry it. With ``period > 1``, also the same two energies
    at each of the period^2 phases (`phase_grams`), minus the overall ones: how unevenly the residual,
    and how well the model predicts it, are spread over the phases of a ``period`` grid.

    Args:
        residuals: N x M x h x w maps.
        radius: neighbourhood radius of the per-map model.
        ridge: relative ridge.
        period: phases per axis of the phase energies (1: none).

    Returns:
        N x M x F float tensor, ``F = (2 radius + 1)^2 + 1 (+ 2 period^2)``: coefficients (raster order of
        `neighbour_offsets`), log energy, log error (then phase log energies, phase log errors).

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> white = torch.randn(1, 1, 64, 64)
        >>> smooth = F.avg_pool2d(torch.randn(1, 1, 130, 130), 3, stride=2)[..., :64, :64]
        >>> coefficient = lambda maps: residual_self_description(maps, 1)[0, 0, 4].item()  # w at (0, 1)
        >>> abs(coefficient(white)) < 0.05 < coefficient(smooth)
        True
        >>> residual_self_description(white, 1, period=2).shape
        torch.Size([1, 1, 18])
    """
    batch, maps, height, width = residuals.shape
    offsets = [*neighbour_offsets(radius), (0, 0)]
    count = len(offsets) - 1
    flat = residuals.reshape(batch * maps, height, width)
    sums, counts = phase_grams(flat, offsets, radius, period)
    sums, counts = sums.double(), counts.to(sums.device)
    gram = sums.sum(dim=1) / counts.sum()
    xx, xy = gram[:, :count, :count], gram[:, :count, count]
    strength = ridge * xx.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(_EPSILON)
    regularised = xx + strength[:, None, None] * torch.eye(count, dtype=xx.dtype, device=xx.device)
    coefficients = torch.linalg.solve(regularised, xy.unsqueeze(-1)).squeeze(-1)
    log_energy, log_error = _log_energies(gram, coefficients)
    parts = [coefficients, log_energy[:, None], log_error[:, None]]
    if period > 1:
        phase_means = sums / counts[None, :, None, None]
        phase_energy, phase_error = _log_energies(phase_means, coefficients[:, None])
        parts += [phase_energy - log_energy[:, None], phase_error - log_error[:, None]]
    description = torch.cat(parts, dim=1).to(residuals.dtype)
    return description.reshape(batch, maps, -1)


def _log_energies(gram: torch.Tensor, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log(mean y^2)`` and ``log(mean (y - X w)^2)`` from ``[X y]^T [X y] / n`` (the target is last)."""
    count = coefficients.shape[-1]
    xx, xy, yy = gram[..., :count, :count], gram[..., :count, count], gram[..., count, count]
    quadratic = (coefficients.unsqueeze(-2) @ xx @ coefficients.unsqueeze(-1))[..., 0, 0]
    error = yy - 2 * (coefficients * xy).sum(dim=-1) + quadratic
    return torch.log(yy + _EPSILON), torch.log(error.clamp_min(0) + _EPSILON)


def self_description(
    pixels: torch.Tensor, bank: torch.Tensor, config: DescriptionConfig = DescriptionConfig()
) -> torch.Tensor:
    """The forensic self-description of each image: N x 3 x H x W RGB in [0, 255] -> N x n_features.

    Order: scale, then filter, then plane, then the `residual_self_description` of that map.

    Args:
        pixels: float RGB batch, values in [0, 255].
        bank: scales x filters x size x size kernels from `fit_filter_bank`.
        config: the configuration the bank was fitted with.

    Example:
        >>> config = DescriptionConfig(scales=(1,), supports=("cross3",))
        >>> bank = fit_filter_bank([torch.rand(1, 3, 48, 48) * 255], config)
        >>> self_description(torch.rand(3, 3, 48, 40) * 255, bank, config).shape  # 3 planes x (24 + 2)
        torch.Size([3, 78])
    """
    expected = (len(config.scales), len(config.supports), config.filter_size, config.filter_size)
    if tuple(bank.shape) != expected:
        raise ValueError(f"the filter bank has shape {tuple(bank.shape)}, the configuration needs {expected}")
    side = min(pixels.shape[-2:])
    if side < config.min_side:
        raise ValueError(f"self-descriptions need images of at least {config.min_side} pixels, got {side}")
    planes = channel_planes(pixels.float(), config.channels)
    parts = []
    for level, scaled in enumerate(average_pool_pyramid(planes, config.scales)):
        residuals = _plane_major_residuals(scaled, bank[level])  # described in this order, then reordered
        batch, count, kernels = residuals.shape[:3]
        description = residual_self_description(
            residuals.view(batch, count * kernels, *residuals.shape[-2:]),
            config.radius,
            config.ridge,
            config.period,
        )
        parts.append(description.view(batch, count, kernels, -1).transpose(1, 2).flatten(1))
    return torch.cat(parts, dim=1)


def describe_images(
    images: Sequence[np.ndarray],
    bank: torch.Tensor,
    config: DescriptionConfig = DescriptionConfig(),
    *,
    batch_size: int = 16,
) -> np.ndarray:
    """Self-descriptions of RGB uint8 images (H x W x 3, sizes may differ), one row per image (float64).

    Example:
        >>> config = DescriptionConfig(scales=(1,), supports=("cross3",))
        >>> bank = fit_filter_bank([torch.rand(1, 3, 48, 48) * 255], config)
        >>> images = [np.zeros((40, 40, 3), np.uint8), np.full((50, 60, 3), 9, np.uint8)]
        >>> describe_images(images, bank, config).shape
        (2, 78)
    """
    out = np.empty((len(images), config.n_features), np.float64)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(index)
    with torch.inference_mode():
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                pixels = torch.from_numpy(np.stack([images[i] for i in chunk])).permute(0, 3, 1, 2).float()
                out[chunk] = self_description(pixels, bank, config).double().numpy()
    return out


__all__ = [
    "FILTER_SIZE",
    "LUMA_WEIGHTS",
    "SUPPORT_NAMES",
    "Channels",
    "DescriptionConfig",
    "NormalEquations",
    "average_pool_pyramid",
    "channel_planes",
    "describe_images",
    "fit_filter_bank",
    "neighbour_offsets",
    "neighbourhood_gram",
    "phase_grams",
    "prediction_normal_equations",
    "prediction_residuals",
    "residual_kernel",
    "residual_self_description",
    "self_description",
    "shifted_views",
    "square_grams",
    "support_mask",
]
