"""Detectors read a fixed number of pixels per image, whatever its size."""

import numpy as np
import pytest
import torch

from pixelsleuth.detectors import Detector, ModelCard
from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET, PixelBudget, tile_origins
from pixelsleuth.detectors.evidence import budgeted_probability, detector_evidence


class _MeanRed(torch.nn.Module):
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, 0].mean(dim=(1, 2))


class _Recording(Detector):
    """Scores the mean of the red channel and remembers the shapes it was given."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__(_MeanRed(), ModelCard("recording", "1", "mean red"))
        self.seen: list[tuple[int, ...]] = []

    def predict(self, images, *, batch_size=32):
        self.seen.extend(image.shape for image in images)
        return super().predict(images, batch_size=batch_size)


@pytest.mark.parametrize("height,width", [(3000, 4000), (8000, 12500), (600, 9000), (300, 300), (257, 4096)])
def test_tiles_lie_inside_the_image_and_never_exceed_the_budget(height, width):
    origins = tile_origins(height, width, 256, 16)
    assert 1 <= len(origins) <= 16
    assert len(set(origins)) == len(origins)
    tile_h, tile_w = min(256, height), min(256, width)
    for top, left in origins:
        assert 0 <= top <= height - tile_h and 0 <= left <= width - tile_w
        assert top % 16 == 0 and left % 16 == 0


def test_tiles_spread_over_the_whole_image():
    origins = np.array(tile_origins(3000, 4000, 256, 16))
    assert origins[:, 0].min() == 0 and origins[:, 0].max() >= 3000 - 256 - 16
    assert origins[:, 1].min() == 0 and origins[:, 1].max() >= 4000 - 256 - 16


def test_small_images_are_read_whole_and_large_ones_by_tiles():
    detector = _Recording()
    small = np.zeros((400, 500, 3), np.uint8)
    _, how = budgeted_probability(detector, small)
    assert detector.seen == [(400, 500, 3)] and how == {"read": "whole image"}

    detector.seen.clear()
    large = np.zeros((3000, 4000, 3), np.uint8)
    _, how = budgeted_probability(detector, large)
    assert len(detector.seen) <= DEFAULT_PIXEL_BUDGET.tiles
    assert sum(h * w for h, w, _ in detector.seen) <= DEFAULT_PIXEL_BUDGET.tiles * 256 * 256
    assert "tiles of 256 x 256" in how["read"]


def test_a_large_image_scores_the_mean_of_its_tiles():
    rgb = np.zeros((2048, 2048, 3), np.uint8)
    rgb[:1024] = 255  # the top half is bright red-ish: half the tiles score high
    budget = PixelBudget(whole_image_pixels=1, tile=256, tiles=4, batch=2)
    probability, how = budgeted_probability(_Recording(), rgb, budget)
    low, high = 1 / (1 + np.exp(2.1179)), 1 / (1 + np.exp(-2.2489))  # sigmoid of normalised 0 and 255
    assert probability == pytest.approx((low + high) / 2, abs=1e-3)
    assert how["tile_probability_max"] == pytest.approx(high, abs=1e-3)


def test_detector_evidence_says_how_the_image_was_read():
    item = detector_evidence(_Recording(), np.zeros((1200, 1600, 3), np.uint8))
    count, rest = item.data["read"].split(" ", 1)
    assert 12 <= int(count) <= 16 and rest.startswith("tiles of 256 x 256")
    assert item.source == "detector:recording"
