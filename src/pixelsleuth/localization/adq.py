"""Aligned double-JPEG map: blocks that lack the double-quantization trace the rest of a re-saved JPEG has.

When a JPEG is decoded, edited and saved again as JPEG on the same 8 x 8 grid, every DCT coefficient of
its untouched blocks has been quantized twice, first with step Q1 and then with step Q2. The second
quantization maps the multiples of Q1 onto the multiples of Q2 unevenly: some bins of the coefficient
histogram (in units of Q2) collect two first-save bins, others one or none, and the histogram becomes
periodic (Lin et al. 2009; the model below is the one of Bianchi & Piva 2012). A block pasted from
elsewhere (another JPEG on another grid, or a never-compressed source) went through Q2 only, and its
coefficients fall on the bins the double quantization leaves empty or thin.

Per low-frequency coefficient: the last step Q2 comes from the file's table when given, else from the
lattice of the coefficients themselves; the single-compression distribution is calibrated on the DCT of
the same image on a grid shifted by 4 pixels (which sees no quantization); Q1 and the share of doubly
compressed blocks are fitted by maximum likelihood (EM) to the histogram. Each block's log-likelihood
ratio (double vs single) is summed over the coefficients and over its 3 x 3 neighbourhood; the map is
the probability that the block was compressed only once. When the image as a whole shows no double
compression (a likelihood-ratio test on the histograms), the map is empty: a JPEG saved once, or an
image never compressed, gets no region. No region is reported either when the fit says that fewer than
60 % of the blocks were compressed twice, or that half the image or more was compressed once (the model
is a minority pasted into a doubly compressed whole); the map is then scaled below 0.5.

Limits: the grids of both saves must be aligned (the `grid` map covers shifted grids); a first quality
whose steps divide the second's (e.g. Q1 = Q2) leaves no trace; flat or saturated blocks carry no
evidence either way.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = adq(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    >>> result.map.shape, result.region is None, result.score
    ((64, 64), True, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pixelsleuth.localization.dct import BLOCK, ZIGZAG, block_dct, clipped_blocks, luminance
from pixelsleuth.localization.record import (
    ForensicMap,
    LocalizationInputError,
    blocks_to_pixels,
    check_rgb,
    strongest_region,
)

METHOD = "jpeg-double-quantization"
FREQUENCIES = ZIGZAG[1:16]  # the first 15 AC coefficients: the ones that survive compression
_BINS = 40  # histogram bins each side of zero, in units of Q2
_MAX_Q1 = 64
_SAMPLE = 30000  # coefficients per frequency used to find the lattice step
# Nats gained per block before double compression is believed: a single save gave < 0.2 on generated
# images and up to 0.53 on one genuine camera photo; a re-save at a higher quality gives 3 to 5.
_MIN_GAIN_PER_BLOCK = 1.0
_LLR_CLIP = 4.0
_MIN_DOUBLE_SHARE = 0.6  # the fitted share of doubly compressed blocks below which no region is reported


@dataclass(frozen=True)
class DoubleQuantization:
    """What the histogram of one coefficient says: its steps, the fitted share of doubly compressed blocks."""

    position: tuple[int, int]
    q2: int
    q1: int
    share: float  # fitted share of blocks compressed twice
    gain: float  # log-likelihood gained over "compressed once", in nats


def lattice_step(values: np.ndarray, largest: int = 100, minimum_count: int = 30) -> int:
    """The largest step q whose multiples the values sit on (1 when there is none: never quantized).

    Only values at least q / 2 from zero count for a step q (zeros sit on every lattice). Decoded pixels
    are rounded, which blurs each multiple by a fraction of a grey level (99 % within 0.9), so a value
    sits on the lattice when it lies within min(1, q / 4) of a multiple; nine in ten must (eight for q = 2).
    The tolerance is tight on purpose: after two compressions the values also cluster near multiples of
    the first step, but only within half the second step.

    Example:
        >>> lattice_step(np.array([0.1, 6.2, -5.9, 12.1, 18.0, -11.8] * 10))
        6
    """
    values = np.asarray(values, np.float64)
    if values.size > _SAMPLE:
        values = values[np.linspace(0, values.size - 1, _SAMPLE).astype(int)]
    magnitude = np.abs(values)
    for step in range(largest, 1, -1):
        away = values[magnitude >= step / 2]
        if away.size < minimum_count:
            continue
        residual = np.abs(away - step * np.rint(away / step))
        if (residual <= min(1.0, step / 4)).mean() >= (0.8 if step == 2 else 0.9):
            return step
    return 1


def estimate_table(coefficients: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """8 x 8 estimate of the last quantization table from the coefficients' lattices (1 = not found)."""
    table = np.ones((BLOCK, BLOCK), int)
    for row, col in FREQUENCIES:
        table[row, col] = lattice_step(coefficients[..., row, col][usable])
    return table


def _histogram(bins: np.ndarray) -> np.ndarray:
    inside = bins[np.abs(bins) <= _BINS]
    return np.bincount(inside + _BINS, minlength=2 * _BINS + 1).astype(np.float64)


def double_quantization_factor(q1: int, q2: int) -> np.ndarray:
    """n(k) for k in -_BINS.._BINS: how much more mass bin k gets after Q1 then Q2 than after Q2 alone."""
    k = np.arange(-_BINS, _BINS + 1, dtype=np.float64)
    ratio = q2 / q1
    count = np.floor(ratio * (k + 0.5) - 1e-9) - np.ceil(ratio * (k - 0.5) + 1e-9) + 1
    return np.maximum(count, 0.0) * q1 / q2


def _fit_shares(
    observed: np.ndarray, double: np.ndarray, single: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """EM for the share a of each row of `double` in a mixture with `single`: (shares, gains in nats)."""
    share = np.full((double.shape[0], 1), 0.5)
    total = observed.sum()
    for _ in range(30):
        mixed = share * double + (1 - share) * single
        share = (observed * share * double / mixed).sum(axis=1, keepdims=True) / total
        share = np.clip(share, 1e-4, 1.0 - 1e-4)
    gains = (observed * (np.log(share * double + (1 - share) * single) - np.log(single))).sum(axis=1)
    return share[:, 0], gains


def fit_double_quantization(
    aligned: np.ndarray, shifted: np.ndarray, q2: int
) -> tuple[DoubleQuantization, np.ndarray]:
    """Best Q1 and share for one coefficient, and log(p_double / p_single) per histogram bin."""
    observed = _histogram(np.rint(aligned / q2).astype(np.int64))
    # Single compression: the coefficients seen off the grid, quantized with Q2 (add-one smoothed).
    single = _histogram(np.rint(shifted / q2).astype(np.int64)) + 1.0
    single /= single.sum()
    candidates = []
    factors = []
    for q1 in range(1, _MAX_Q1 + 1):
        factor = double_quantization_factor(q1, q2)
        if not np.allclose(factor, 1.0):  # Q1 dividing Q2 (or equal to it) leaves nothing to see
            candidates.append(q1)
            factors.append(factor)
    # Rounding noise of the decoded pixels leaves a little mass in the bins that Q1 empties.
    double = single * np.maximum(np.array(factors), 0.02)
    double /= double.sum(axis=1, keepdims=True)
    shares, gains = _fit_shares(observed, double, single)
    best = int(np.argmax(gains))
    fit = DoubleQuantization((0, 0), q2, candidates[best], float(shares[best]), float(gains[best]))
    return fit, np.log(double[best] / single)


def adq(
    image: np.ndarray,
    quantization: Sequence[int] | np.ndarray | None = None,
    *,
    min_gain_per_block: float = _MIN_GAIN_PER_BLOCK,
) -> ForensicMap:
    """Map of 8 x 8 blocks compressed once inside an image whose other blocks were compressed twice.

    Args:
        image: H x W x 3 uint8 (or grey) as decoded from the JPEG, at least 64 pixels a side.
        quantization: the file's last luminance quantization table (64 values in row order, as Pillow's
            ``Image.open(path).quantization[0]``, or 8 x 8); estimated from the pixels when omitted.
        min_gain_per_block: log-likelihood gain per block (nats) the double-compression model must earn
            over single compression before any block is mapped.

    Returns:
        A `ForensicMap` whose map is each block's probability of a single compression (0 where the image
        shows no double compression); ``data`` has the table used, the Q1 estimate per coefficient and the
        gain of the double-compression model.

    Raises:
        LocalizationInputError: not an RGB uint8 image, smaller than 64 x 64, or a table that is not 64
            positive values.
    """
    image = check_rgb(image, minimum=8 * BLOCK, method="The double-JPEG map")
    luma = luminance(image)
    aligned = block_dct(luma)
    shifted = block_dct(luma, origin=(BLOCK // 2, BLOCK // 2))
    usable = ~clipped_blocks(image)
    usable_shifted = ~clipped_blocks(image, origin=(BLOCK // 2, BLOCK // 2))
    if quantization is None:
        table = estimate_table(aligned, usable)
        table_source = "estimated"
    else:
        table = np.asarray(quantization, dtype=int)
        if table.size != BLOCK * BLOCK or (table < 1).any():
            raise LocalizationInputError(
                "the quantization table must hold 64 positive steps (as Pillow's Image.quantization[0]); "
                f"got {table.size} values"
            )
        table = table.reshape(BLOCK, BLOCK)
        table_source = "given"

    blocks = int(usable.sum())
    llr = np.zeros(aligned.shape[:2], np.float64)
    fits: list[DoubleQuantization] = []
    for row, col in FREQUENCIES:
        q2 = int(table[row, col])
        if q2 < 2 or blocks < 16:
            continue
        values = aligned[..., row, col]
        fit, ratio = fit_double_quantization(values[usable], shifted[..., row, col][usable_shifted], q2)
        fit = DoubleQuantization((row, col), q2, fit.q1, fit.share, fit.gain)
        fits.append(fit)
        if fit.gain <= 0:
            continue
        bins = np.rint(values / q2).astype(np.int64)
        inside = np.abs(bins) <= _BINS
        contribution = np.where(inside, ratio[np.clip(bins, -_BINS, _BINS) + _BINS], 0.0)
        llr += np.clip(contribution, -_LLR_CLIP, _LLR_CLIP)
    llr[~usable] = 0.0

    gain = sum(fit.gain for fit in fits)
    per_block = gain / max(blocks, 1)
    data: dict = {
        "table": table.tolist(),
        "table_source": table_source,
        "gain_per_block": round(per_block, 4),
        "first_steps": {f"{f.position[0]},{f.position[1]}": f.q1 for f in fits if f.gain > 0},
    }
    shape = image.shape[:2]
    if not fits:
        reading = (
            "The image shows no JPEG quantization on the 8 x 8 grid: it cannot be tested for double JPEG."
        )
        return ForensicMap(METHOD, np.zeros(shape, np.float32), 0.0, reading, None, data)
    if per_block < min_gain_per_block:
        reading = "The image shows no trace of a second JPEG compression: no block stands out as saved once."
        return ForensicMap(METHOD, np.zeros(shape, np.float32), 0.0, reading, None, data)

    share = float(np.median([f.share for f in fits if f.gain > 0]))
    prior = np.log(share / (1 - share))
    # Evidence pooled over 3 x 3 blocks: one block holds too few non-zero coefficients to decide alone.
    pooled = ndimage.uniform_filter(llr, size=3, mode="nearest") * 9 + prior
    single = 1.0 / (1.0 + np.exp(np.clip(pooled, -50, 50)))
    single[~usable & (ndimage.uniform_filter(usable.astype(float), 3) < 0.5)] = 0.0
    heat = blocks_to_pixels(single, BLOCK, shape).astype(np.float32)
    score = float(np.quantile(single, 0.99)) if single.size else 0.0
    region = strongest_region(heat)
    data["double_share"] = round(share, 3)
    flagged = float((single >= 0.5).mean())
    if share < _MIN_DOUBLE_SHARE or flagged >= 0.5:
        # The model reads a minority pasted into a doubly compressed whole; a fit that says otherwise is
        # not trusted (on genuine web photos such fits put Q1 at random steps).
        reading = (
            "The image shows signs of a second JPEG compression, but they do not single out a part of it: "
            "no region is reported."
        )
        return ForensicMap(METHOD, heat * np.float32(0.49), min(score, 0.49), reading, None, data)
    if region is None:
        reading = "The image was compressed twice as JPEG and every block shows it: no region stands out."
        return ForensicMap(METHOD, heat, score, reading, None, data)
    reading = (
        f"The image was saved twice as JPEG, but the region {region.words()} bears only the last "
        "compression: it was probably pasted in or re-rendered before the last save."
    )
    return ForensicMap(METHOD, heat, score, reading, region, data)
