"""The spectrum picture of a report: the noise residual's log power spectrum, with its periodic peaks.

It is the spectral check's own spectrum (`forensics.spectral.residual_spectrum`) drawn by its own plot
(`plot_spectrum`), so the report shows exactly what the check measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pixelsleuth.forensics.spectral import periodic_peaks, plot_spectrum, residual_spectrum


def spectrum_png(rgb: np.ndarray, *, jpeg: bool = False) -> bytes:
    """PNG bytes of the residual spectrum of an RGB uint8 image, its peaks circled (clear ones in red).

    Raises:
        SpectrumError: the image is too small for the spectral check (under 35 x 35 pixels).
    """
    spectrum = residual_spectrum(rgb)
    peaks = periodic_peaks(spectrum, jpeg=jpeg)
    with tempfile.TemporaryDirectory(prefix="pixelsleuth-report-") as folder:
        path = plot_spectrum(spectrum, peaks, Path(folder) / "spectrum.png", title="noise residual spectrum")
        return path.read_bytes()
