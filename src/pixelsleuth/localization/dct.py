"""The 8 x 8 block DCT of an image's luminance, as JPEG computes it, for the JPEG-compression maps.

A JPEG file stores, per 8 x 8 block of luminance (minus 128), the 2-D DCT-II coefficients divided by
the quantization table and rounded. Decoding and re-computing the same DCT on the same grid gives back
those multiples of the table up to rounding noise (a fraction of a grey level), which is what the
double-JPEG (`adq`) and grid (`grid`) maps read. The transform is the orthonormal DCT, which is JPEG's
scaling; blocks are computed as one matrix product over a block view, a band of block rows at a time.

Example:
    >>> import numpy as np
    >>> flat = np.full((16, 24, 3), 140, np.uint8)
    >>> coefficients = block_dct(luminance(flat))
    >>> coefficients.shape, round(float(coefficients[0, 0, 0, 0]), 3)
    ((2, 3, 8, 8), 96.0)
    >>> bool(abs(coefficients[..., 1:]).max() < 1e-4)  # a flat block has no AC energy (float32 rounding)
    True
"""

from __future__ import annotations

import numpy as np

from pixelsleuth.localization.record import block_view

BLOCK = 8
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# Zig-zag order of the 64 coefficients as (row, col), the order JPEG writes them.
ZIGZAG: tuple[tuple[int, int], ...] = tuple(
    sorted(
        ((r, c) for r in range(BLOCK) for c in range(BLOCK)),
        key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]),
    )
)


def dct_matrix(size: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix D (coefficients = D @ block @ D.T)."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    matrix = np.sqrt(2.0 / size) * np.cos(np.pi * (2 * n + 1) * k / (2 * size))
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


_D = dct_matrix()
KRON = np.kron(_D, _D)  # the 2-D DCT of a row-major flattened 8 x 8 block, as one 64 x 64 matrix


def luminance(image: np.ndarray) -> np.ndarray:
    """JPEG's Y channel (ITU-R BT.601) of an RGB uint8 image, as float32; a grey image is returned as is."""
    array = np.asarray(image)
    if array.ndim == 2:
        return array.astype(np.float32)
    return array.astype(np.float32) @ _LUMA


def block_dct(luma: np.ndarray, origin: tuple[int, int] = (0, 0), band: int = 256) -> np.ndarray:
    """DCT of every whole 8 x 8 block of `luma` whose grid starts at `origin` (row, col): rows x cols x 8 x 8.

    Computed a band of `band` block rows at a time, so the float64 temporaries stay small on large images.
    """
    top, left = origin
    view = block_view(luma[top:, left:], BLOCK)
    rows, cols = view.shape[:2]
    out = np.empty((rows, cols, BLOCK * BLOCK), np.float32)
    for start in range(0, rows, band):
        part = view[start : start + band].astype(np.float32).reshape(-1, BLOCK * BLOCK) - 128.0
        # One 64 x 64 product per block (a single BLAS call) is faster than two batched 8 x 8 products.
        out[start : start + band] = (part @ KRON.T).reshape(-1, cols, BLOCK * BLOCK)
    return out.reshape(rows, cols, BLOCK, BLOCK)


def clipped_blocks(image: np.ndarray, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """rows x cols bool: blocks with a pixel at 0 or 255 in some channel (clipping breaks the DCT lattice)."""
    array = np.asarray(image)
    extreme = (
        ((array == 0) | (array == 255)).any(axis=-1) if array.ndim == 3 else (array == 0) | (array == 255)
    )
    top, left = origin
    return block_view(extreme[top:, left:], BLOCK).any(axis=(2, 3))
