"""Spectral evidence: up-sampling peaks are found where theory puts them; JPEG grids are discounted."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.forensics.spectral import (
    CLEAR_Z,
    MAX_STRENGTH,
    Peak,
    SpectrumError,
    noise_residual,
    periodic_peaks,
    plot_spectrum,
    residual_spectrum,
    spectral_evidence,
    spectral_score,
)
from pixelsleuth.intake import load_image

SIZE = 192


def texture(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """A photo-like RGB texture: white noise blurred at several scales and summed (no period at all)."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((size, size, 3), np.float32)
    for sigma in (0.7, 1.5, 3.0, 6.0, 12.0):
        noise = rng.normal(0, 1, (size, size, 3)).astype(np.float32)
        pixels += cv2.GaussianBlur(noise, (0, 0), sigma) * sigma**0.5
    pixels = (pixels - pixels.mean()) / pixels.std() * 40 + 128
    return np.clip(pixels, 0, 255).astype(np.uint8)


def enlarged(factor: int, interpolation: int, seed: int = 0) -> np.ndarray:
    small = texture(SIZE // factor, seed)
    return cv2.resize(small, (SIZE, SIZE), interpolation=interpolation)


def encoded(rgb: np.ndarray, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def clear_positions(peaks: list[Peak]) -> set[tuple[str, str]]:
    return {(peak.direction, peak.fraction) for peak in peaks if peak.clear}


UPSAMPLINGS = [
    pytest.param(2, cv2.INTER_NEAREST, "1/2", id="nearest-x2"),
    pytest.param(2, cv2.INTER_LINEAR, "1/2", id="bilinear-x2"),
    pytest.param(4, cv2.INTER_NEAREST, "1/4", id="nearest-x4"),
    pytest.param(4, cv2.INTER_LINEAR, "1/4", id="bilinear-x4"),
]


@pytest.mark.parametrize(("factor", "interpolation", "fraction"), UPSAMPLINGS)
def test_upsampling_leaves_clear_peaks_at_its_frequencies(
    factor: int, interpolation: int, fraction: str
) -> None:
    image = enlarged(factor, interpolation)
    peaks = periodic_peaks(residual_spectrum(image))
    positions = clear_positions(peaks)
    assert ("horizontal", fraction) in positions
    assert ("vertical", fraction) in positions
    # only positions up-sampling by `factor` can produce: never an odd eighth
    assert all(peak.factor <= factor for peak in peaks if peak.clear)


@pytest.mark.parametrize(("factor", "interpolation", "fraction"), UPSAMPLINGS)
def test_upsampled_image_scores_higher_than_the_original(
    factor: int, interpolation: int, fraction: str
) -> None:
    original = spectral_score(texture())
    assert original < 0.5
    assert spectral_score(enlarged(factor, interpolation)) > 0.9 > original


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_original_texture_has_no_clear_peak(seed: int) -> None:
    peaks = periodic_peaks(residual_spectrum(texture(seed=seed)), every=True)
    assert len(peaks) == 24  # every multiple of 1/8 in the quarter plane but zero frequency
    assert max(peak.counted_z for peak in peaks) < CLEAR_Z


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_jpeg_block_grid_alone_is_not_flagged(quality: int) -> None:
    image = load_image(encoded(texture(), "JPEG", quality=quality))
    assert image.jpeg is not None
    (evidence,) = spectral_evidence(image)
    assert evidence.points_to == "none"
    assert evidence.data["jpeg_grid_discounted"] is True
    assert spectral_score(image.rgb, jpeg=True) < 0.5
    # the grid's own peaks are there at low qualities, but none of them counts
    peaks = periodic_peaks(residual_spectrum(image.rgb), jpeg=True, every=True)
    assert all(peak.jpeg_grid for peak in peaks)
    assert all(peak.counted_z == 0.0 for peak in peaks if peak.factor == 8)


def test_grid_of_a_jpeg_saved_as_png_is_discounted_too() -> None:
    decoded = np.asarray(Image.open(io.BytesIO(encoded(texture(), "JPEG", quality=50))).convert("RGB"))
    image = load_image(encoded(decoded, "PNG"))
    assert image.jpeg is None
    peaks = periodic_peaks(residual_spectrum(image.rgb), every=True)
    assert max(peak.z for peak in peaks) > CLEAR_Z  # the grid is plainly there ...
    (evidence,) = spectral_evidence(image)
    assert evidence.points_to == "none"  # ... and recognised as a grid
    assert (
        evidence.finding
        == "no periodic peaks beyond those of the 8 x 8 block grid (an earlier JPEG compression)"
    )


def test_upsampling_survives_light_jpeg_compression() -> None:
    image = load_image(encoded(enlarged(2, cv2.INTER_NEAREST, seed=3), "JPEG", quality=95))
    evidence = spectral_evidence(image)[0]
    assert evidence.points_to == "ai-generated"
    assert evidence.data["jpeg_grid_discounted"] is True


def test_evidence_wording_for_clear_peaks() -> None:
    image = load_image(encoded(enlarged(4, cv2.INTER_LINEAR), "PNG"))
    (evidence,) = spectral_evidence(image)
    assert isinstance(evidence, Evidence)
    assert evidence.source == "spectral"
    assert evidence.points_to == "ai-generated"
    assert evidence.finding == (
        "periodic peaks at 1/4 and 1/2 of the sampling frequency, the trace up-sampling leaves"
    )
    assert 0.0 < evidence.strength <= MAX_STRENGTH
    assert "resizing" in evidence.detail and "factor of 4" in evidence.detail
    peaks = evidence.data["peaks"]
    assert peaks and all({"frequency", "direction", "z", "counted_z", "clear"} <= set(peak) for peak in peaks)
    assert {tuple(peak["frequency"]) for peak in peaks if peak["clear"]} >= {(0.0, 0.25), (0.25, 0.0)}
    assert evidence.to_dict()["data"]["score"] > 0.9


def test_evidence_wording_for_a_single_position() -> None:
    (evidence,) = spectral_evidence(load_image(encoded(enlarged(2, cv2.INTER_NEAREST), "PNG")))
    assert evidence.finding == "periodic peaks at 1/2 of the sampling frequency, the trace up-sampling leaves"


def test_evidence_without_peaks_is_informative() -> None:
    (evidence,) = spectral_evidence(load_image(encoded(texture(), "PNG")))
    assert evidence.points_to == "none"
    assert evidence.strength == 0.0
    assert "periodic peaks" in evidence.finding
    assert evidence.data["score"] < 0.5


def test_tiny_image_gives_an_informative_finding_instead_of_an_error() -> None:
    (evidence,) = spectral_evidence(load_image(encoded(texture(24), "PNG")))
    assert evidence.points_to == "none"
    assert evidence.finding.startswith("no spectral analysis")
    with pytest.raises(SpectrumError, match="at least"):
        residual_spectrum(texture(24))


def test_residual_spectrum_shape_and_tile_rules() -> None:
    image = texture()
    assert residual_spectrum(image).shape == (64, 64)
    assert residual_spectrum(image, tile=128).shape == (128, 128)
    assert residual_spectrum(texture(60)).shape == (56, 56)  # smaller than the tile: the largest that fits
    spectrum = residual_spectrum(image)
    assert np.allclose(spectrum[1:, 1:], spectrum[1:, 1:][:, ::-1], atol=1e-4)  # S(fy, fx) = S(fy, -fx)
    with pytest.raises(SpectrumError, match="multiple of 8"):
        residual_spectrum(image, tile=60)
    with pytest.raises(SpectrumError, match="views"):
        residual_spectrum(image, views=("phase",))


def test_noise_residual_leaves_its_input_alone_and_removes_flat_content() -> None:
    image = texture(64)
    before = image.copy()
    residual = noise_residual(image)
    assert np.array_equal(image, before)
    assert residual.shape == (64, 64) and residual.dtype == np.float32
    assert np.abs(noise_residual(np.full((16, 16, 3), 77, np.uint8))).max() == 0.0
    assert np.abs(residual).mean() > 1.0


def test_periodic_peaks_names_direction_fraction_and_factor() -> None:
    spectrum = np.zeros((64, 64), np.float32)
    spectrum[32 + 16, 32 + 16] = 1.5  # (1/4, 1/4)
    spectrum[32, 32 + 8] = 1.5  # (0, 1/8)
    peaks = {(peak.direction, peak.fraction): peak for peak in periodic_peaks(spectrum)}
    assert peaks[("diagonal", "1/4")].factor == 4
    assert peaks[("horizontal", "1/8")].factor == 8
    assert peaks[("diagonal", "1/4")].frequency == (0.25, 0.25)
    with pytest.raises(SpectrumError):
        periodic_peaks(np.zeros((8, 8)))


def test_plot_spectrum_writes_a_png(tmp_path) -> None:
    image = enlarged(2, cv2.INTER_LINEAR)
    spectrum = residual_spectrum(image)
    path = plot_spectrum(spectrum, periodic_peaks(spectrum), tmp_path / "plots" / "spectrum.png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as written:
        assert written.size[0] > 200 and written.size[1] > 200
