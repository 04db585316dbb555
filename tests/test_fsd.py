"""FSD on generated data: smooth noisy "photos" against images with periodic up-sampling traces.

No data, no network: every image is made here from a seed. A small configuration (two scales, three
filters, 96-pixel crops) keeps the whole file to a few seconds.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from pixelsleuth.detectors import IncompatibleWeightsError, create, list_detectors
from pixelsleuth.detectors.fsd import (
    CAMERA_PHOTO,
    UNKNOWN,
    AttributionConfig,
    DensityConfig,
    FSDDetector,
    GaussianDensities,
    fit_attribution,
    fit_fsd,
    mixture_log_likelihood,
)
from pixelsleuth.detectors.npr import ImageTooSmallError
from pixelsleuth.errors import UsageError
from pixelsleuth.forensics.selfdescription import (
    DescriptionConfig,
    fit_filter_bank,
    neighbourhood_gram,
    phase_grams,
    prediction_normal_equations,
    self_description,
    shifted_views,
    solve_constrained_predictor,
    square_grams,
    support_mask,
)
from pixelsleuth.outputs.cli import app

SMALL = DescriptionConfig(scales=(1, 2), supports=("cross3", "square5", "row7"), channels="luma")
DENSITY = DensityConfig(pca_dims=8, components=2, folds=3, filter_crops=32)
CROP = 96


def smooth_field(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with a gradient: the content of a "photo" (float, 0..255)."""
    noise = rng.normal(0, 1, (height, width, 3)).astype(np.float32)
    field = sum(cv2.GaussianBlur(noise, (0, 0), sigma) * sigma * 25 for sigma in (1.5, 4.0, 10.0))
    ramp = np.linspace(60, 190, width, dtype=np.float32)[None, :, None]
    return field + ramp


def camera_photo(seed: int, height: int = CROP, width: int = CROP) -> np.ndarray:
    """Smooth content plus independent sensor noise on every pixel."""
    rng = np.random.default_rng(seed)
    pixels = smooth_field(rng, height, width) + rng.normal(0, 3.0, (height, width, 3))
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def upsampled(
    seed: int, factor: int = 2, interpolation: int = cv2.INTER_LINEAR, size: int = CROP
) -> np.ndarray:
    """A noisy image made at 1/`factor` of the size and enlarged: periodic correlations, as a generator's
    up-sampling layers leave them."""
    small = camera_photo(seed, size // factor, size // factor).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=interpolation)
    return np.clip(big + 0.5, 0, 255).astype(np.uint8)


def blurred(seed: int) -> np.ndarray:
    """A photo softened by a 3 x 3 box blur (a second kind of non-camera image)."""
    photo = camera_photo(seed).astype(np.float32)
    return np.clip(cv2.blur(photo, (3, 3)) + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted():
    photos = [camera_photo(seed) for seed in range(40)]
    return fit_fsd(photos, range(40), description=SMALL, density=DENSITY)


@pytest.fixture(scope="module")
def with_attribution(fitted):
    crops = [upsampled(100 + i) for i in range(24)] + [blurred(200 + i) for i in range(24)]
    names = ["bilinear-2x"] * 24 + ["box-blur"] * 24
    groups = [f"{name}-{i}" for i, name in enumerate(names)]  # one crop per image
    detector, report = fit_attribution(fitted.detector, crops, names, groups, AttributionConfig(min_images=3))
    return detector, report


# ---------------------------------------------------------------------------------------------------
# The pure functions.


def test_constrained_predictor_sums_to_one_and_fits_a_smooth_plane():
    planes = torch.from_numpy(np.stack([camera_photo(seed) for seed in range(4)])).permute(0, 3, 1, 2)
    mask = support_mask("square5", 7)
    weights = solve_constrained_predictor(prediction_normal_equations(planes.float()[:, :1], mask))
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    # The nearest neighbours carry most of the weight in a smooth image.
    half = mask.shape[0] // 2
    offsets = [(int(dy) - half, int(dx) - half) for dy, dx in zip(*np.nonzero(mask), strict=True)]
    near = sum(w for w, (dy, dx) in zip(weights, offsets, strict=True) if max(abs(dy), abs(dx)) == 1)
    assert near > 0.5


@pytest.mark.parametrize("budget", [100, 10_000, 10**9])  # one row per band / some planes / all at once
def test_gram_in_bands_equals_the_whole(monkeypatch, budget):
    import pixelsleuth.forensics.selfdescription as module

    planes = torch.randn(3, 40, 37)
    offsets = [(0, 0), (1, -2), (-2, 2), (0, 1)]
    whole = shifted_views(planes, offsets, 2).reshape(3, 4, -1)
    expected = whole @ whole.transpose(1, 2) / whole.shape[-1]
    monkeypatch.setattr(module, "_VIEW_ELEMENTS", budget)
    monkeypatch.setattr(module, "_SQUARE_ELEMENTS", budget)
    assert torch.allclose(neighbourhood_gram(planes, offsets, 2), expected, atol=1e-4)
    sums, counts = phase_grams(planes, offsets, 2, period=2)  # the shifted-views path
    assert torch.allclose(sums.sum(dim=1) / counts.sum(), expected, atol=1e-4)


@pytest.mark.parametrize(("height", "width", "margin"), [(9, 9, 1), (31, 17, 2), (20, 44, 3), (12, 13, 2)])
def test_square_grams_equal_the_stacked_views_in_float64(height, width, margin):
    generator = torch.Generator().manual_seed(height * width)
    planes = torch.randn(4, height, width, generator=generator, dtype=torch.float64) * 30 + 100
    offsets = [(dy, dx) for dy in range(-margin, margin + 1) for dx in range(-margin, margin + 1)]
    views = shifted_views(planes, offsets, margin).reshape(4, len(offsets), -1)
    direct = views @ views.transpose(1, 2)
    assert torch.allclose(square_grams(planes, margin), direct, rtol=1e-12, atol=1e-6)


def test_description_has_the_documented_size_and_refuses_small_images():
    bank = fit_filter_bank([torch.from_numpy(camera_photo(0)[None]).permute(0, 3, 1, 2).float()], SMALL)
    pixels = torch.from_numpy(np.stack([camera_photo(1, 60, 70)])).permute(0, 3, 1, 2).float()
    assert self_description(pixels, bank, SMALL).shape == (1, SMALL.n_features)
    assert len(SMALL.feature_names()) == SMALL.n_features
    with pytest.raises(ValueError, match="at least"):
        self_description(pixels[..., : SMALL.min_side - 1, :], bank, SMALL)


def test_torch_mixture_matches_the_numpy_formula():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(5, 4))
    factors = np.stack([np.triu(rng.normal(size=(4, 4))) + 3 * np.eye(4) for _ in range(2)])
    log_weights, means = np.log([0.3, 0.7]), rng.normal(size=(2, 4))
    density = GaussianDensities(2, 4).double()
    density.log_weights.copy_(torch.from_numpy(log_weights))
    density.means.copy_(torch.from_numpy(means))
    density.precision_cholesky.copy_(torch.from_numpy(factors))
    expected = mixture_log_likelihood(z, log_weights, means, factors)
    assert np.allclose(density(torch.from_numpy(z)).numpy(), expected)


# ---------------------------------------------------------------------------------------------------
# The detector.


def test_registered_and_untrained_detector_scores_any_size():
    assert "fsd" in list_detectors()
    detector = create("fsd")
    assert not detector.trained
    side = detector.min_side
    probabilities = detector.predict([camera_photo(0, side, side + 31), camera_photo(1, 2 * side, side)])
    assert probabilities.shape == (2,) and np.isfinite(probabilities).all()


def test_refuses_images_below_its_minimum(fitted):
    detector = fitted.detector
    with pytest.raises(ImageTooSmallError, match=f"at least {SMALL.min_side} x {SMALL.min_side}"):
        detector.predict([camera_photo(0, SMALL.min_side - 1, 200)])
    assert detector.predict([camera_photo(0, SMALL.min_side, SMALL.min_side + 7)]).shape == (1,)


def test_separates_upsampled_images_from_smooth_photos(fitted):
    detector = fitted.detector
    photos = [camera_photo(1000 + i) for i in range(30)]  # never seen in fitting
    fakes = [upsampled(2000 + i) for i in range(15)] + [
        upsampled(3000 + i, interpolation=cv2.INTER_NEAREST) for i in range(15)
    ]
    scores = detector.predict(photos + fakes)
    auc = roc_auc_score([0] * len(photos) + [1] * len(fakes), scores)
    assert auc > 0.95
    # (a, b) put the median held-out photo near probability 0.05.
    assert 0.005 < float(np.median(scores[: len(photos)])) < 0.3


def test_fit_is_deterministic_for_a_seed():
    photos = [camera_photo(seed, 64, 64) for seed in range(24)]
    config = DescriptionConfig(scales=(1,), supports=("cross3", "square5"), channels="luma")
    density = DensityConfig(pca_dims=4, components=2, folds=2, filter_crops=8, seed=7)
    fits = [fit_fsd(photos, range(24), description=config, density=density) for _ in range(2)]
    first, second = (fit.detector.model.state_dict() for fit in fits)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_save_and_load_strictly(fitted, tmp_path):
    detector = fitted.detector
    path = tmp_path / "fsd.safetensors"
    detector.save(path)
    loaded = create("fsd", weights=path)
    assert loaded.trained and loaded.card.extra["detector_kwargs"]["supports"] == list(SMALL.supports)
    images = [camera_photo(5), upsampled(6, size=120)]
    assert np.allclose(loaded.predict(images), detector.predict(images), atol=1e-6)
    # A missing buffer is refused, not silently filled.
    state = load_file(str(path))
    del state["density.means"]
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    (tmp_path / "broken.json").write_text((tmp_path / "fsd.json").read_text())
    with pytest.raises(IncompatibleWeightsError, match="do not fit"):
        create("fsd", weights=broken)


def test_onnx_runtime_is_refused():
    with pytest.raises(UsageError, match="torch runtime only"):
        FSDDetector(runtime="onnxruntime")


# ---------------------------------------------------------------------------------------------------
# Open-set attribution.


def test_attribution_names_known_generators_and_refuses_an_unseen_one(with_attribution, tmp_path):
    detector, report = with_attribution
    assert set(report.generators) == {"bilinear-2x", "box-blur"}
    path = tmp_path / "fsd-attribution.safetensors"
    detector.save(path)
    loaded: FSDDetector = create("fsd", weights=path)  # type: ignore[assignment]
    assert loaded.generators == ("bilinear-2x", "box-blur")

    known = [loaded.attribute(upsampled(5000 + i)).label for i in range(10)]
    assert known.count("bilinear-2x") >= 8
    blurry = [loaded.attribute(blurred(6000 + i)).label for i in range(10)]
    assert blurry.count("box-blur") >= 8
    photos = [loaded.attribute(camera_photo(7000 + i)).label for i in range(10)]
    assert photos.count(CAMERA_PHOTO) >= 8
    # 4x nearest-neighbour enlargement: neither a photo nor a known generator.
    unseen = [loaded.attribute(upsampled(8000 + i, 4, cv2.INTER_NEAREST)) for i in range(10)]
    assert all(result.label == UNKNOWN for result in unseen)
    assert all(result.margin < 0 for result in unseen)


def test_attribution_leaves_out_generators_with_too_few_images(fitted):
    crops = [upsampled(i) for i in range(8)] + [blurred(i) for i in range(2)]
    names = ["a"] * 8 + ["b"] * 2
    detector, report = fit_attribution(fitted.detector, crops, names, [str(i) for i in range(10)])
    assert detector.generators == ("a",) and report.left_out == {"b": 2}


def test_attribute_without_densities_is_a_usage_error(fitted):
    with pytest.raises(UsageError, match="no attribution densities"):
        fitted.detector.attribute(camera_photo(0))


# ---------------------------------------------------------------------------------------------------
# The commands.


def test_fit_fsd_and_attribute_commands(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(12):
        cv2.imwrite(str(photos / f"photo{seed:02d}.png"), camera_photo(seed, 128, 128)[..., ::-1])
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    rows = ["path,label,generator"]
    for seed in range(6):
        name = f"fakes/up{seed}.png"
        cv2.imwrite(str(tmp_path / name), upsampled(seed, size=128)[..., ::-1])
        rows.append(f"{name},fake,bilinear-2x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    weights = tmp_path / "out" / "fsd.safetensors"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "fit-fsd", str(photos), str(weights), "--crop", "96", "--crops-per-image", "4",
            "--pca", "8", "--components", "2", "--scales", "1,2", "--supports", "cross3,square5,row7",
            "--channels", "luma",
            "--attribution", str(manifest), "--attribution-crops", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = create("fsd", weights=weights).card
    assert "fit-fsd" in card.training_command and card.extra["fit_data"]["photos_used"] == 12
    assert card.extra["attribution"]["generators"]["bilinear-2x"]["images"] == 6

    unseen = tmp_path / "unseen.png"
    cv2.imwrite(str(unseen), upsampled(99, 4, cv2.INTER_NEAREST, size=128)[..., ::-1])
    result = runner.invoke(app, ["attribute", str(unseen), "--weights", str(weights)])
    assert result.exit_code == 0, result.output
    assert "unknown source" in result.output
    # Without --weights, the shipped fsd (fitted on the pool's generators) attributes the image.
    result = runner.invoke(app, ["attribute", str(unseen), "--json"])
    assert result.exit_code == 0, result.output
    shipped = json.loads(result.output)
    assert shipped["label"] == "unknown" or shipped["label"] in shipped["log_likelihoods"]
    assert "gpt-image-2" in shipped["log_likelihoods"]
