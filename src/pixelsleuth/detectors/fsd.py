"""FSD: forensic self-descriptions of real photos, and how far an image's own description lies from them.

Nguyen, Azizpour and Stamm, CVPR 2025 (arXiv 2503.21003); the descriptions themselves are in
`pixelsleuth.forensics.selfdescription`. The detector is fitted on genuine photos only, never on
generated images, and has no pretrained backbone:

1. prediction-error filters fitted on the photos (closed-form constrained least squares), at 3 scales;
2. per image, the self-description: the ridge linear model each residual map fits to itself, and two
   log energies, for each colour plane (1872 numbers with the defaults);
3. a density of real photos' descriptions: standardised, projected on their first principal
   components (whitened), modelled by a Gaussian mixture (fitted with scikit-learn, evaluated in torch).

The score is the negative log-likelihood under that density: high when the image was not made the way
the photos were. The network's logit is ``a * (-loglik) + b`` with ``(a, b)`` stored as buffers; `fit_fsd`
sets them from photos held out of the density (5-fold, grouped by image) so that the median held-out
photo gets probability 0.05 and the 95th percentile 0.5; `pixelsleuth calibrate` can put a Platt
calibration on top as for every detector.

Open-set attribution (`fit_attribution`, `FSDDetector.attribute`): one Gaussian per known generator in
the same whitened space, its covariance shrunk towards the covariance pooled over all generators (most
generators have few images), and a threshold per generator at a low quantile of its held-out in-class
log-likelihoods. An image is attributed to the best-fitting generator whose density passes its
threshold, to "camera photo" when the real density fits best and passes its own, and to "unknown" when
nothing does. These densities live in the same safetensors file under the ``attribution.`` prefix; the
generator names travel in the model card (``extra.detector_kwargs.generators``), so strict loading
builds the right shapes.

Measured (weights fitted on the pool's train crops and ``shared/data/real``; ROC-AUC in %): on the
pool's held-out test crops, real vs all generated 70.9 (PNG) / 69.8 (JPEG q90), from 55 (gpt-image-2)
to 92 (meissonic); on dev's 256-pixel centre crops, PNG / JPEG: Stable Diffusion 1.x 64.8 / 60.3,
StyleGAN2-ADA FFHQ 71.0 / 62.9, MetFaces 76.3 / 62.3, the InvokeAI diffusion set 41.6 / 42.9; TPR at
1 % FPR is low everywhere (0-9 % overall). Attribution is weak: 25 % of known-generator test images
named correctly, 81 % of photos called "camera photo", and the 5 images of generators it never saw went
to a known name or to "camera photo", not to "unknown". About 40 ms per 256-pixel crop on one CPU core
(2.1x the computation before issue 12, probabilities within 2e-5 of it: `benchmarks/fsd_speed.py`), so
0.7 s per photo of 1 MP or more within the 16-tile pixel budget.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.detectors import create
    >>> detector = create("fsd")  # untrained: averaging predictors, identity density
    >>> detector.predict([np.zeros((128, 128, 3), np.uint8)]).shape
    (1,)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelsleuth.detectors.base import Detector
from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET, PixelBudget, tile_origins
from pixelsleuth.detectors.card import ModelCard, Preprocessing
from pixelsleuth.detectors.npr import refuse_smaller_than
from pixelsleuth.detectors.registry import register_detector
from pixelsleuth.detectors.runtime import Precision, Runtime
from pixelsleuth.errors import UsageError
from pixelsleuth.forensics.selfdescription import (
    SUPPORT_NAMES,
    Channels,
    DescriptionConfig,
    fit_filter_bank,
    residual_kernel,
    self_description,
    support_mask,
)

ARCHITECTURE = (
    "FSD (Nguyen et al., CVPR 2025): constrained prediction-error filters fitted on real photos at scales "
    "1, 2, 4; per residual map the ridge least-squares model of each sample from its 5 x 5 neighbourhood "
    "and two log energies; standardise, whitened PCA, Gaussian mixture of real photos; "
    "logit = a * (-log-likelihood) + b"
)
LOG_TWO_PI = math.log(2 * math.pi)
# Held-out real photos at these quantiles of log-likelihood are kept in the card (attribution thresholds).
QUANTILE_LEVELS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
CAMERA_PHOTO = "camera photo"
UNKNOWN = "unknown"


# ---------------------------------------------------------------------------------------------------
# The torch model.


class GaussianDensities(nn.Module):
    """Gaussians with full covariances given by precision Cholesky factors (scikit-learn's convention).

    ``precision_cholesky[c]`` is the upper-triangular ``U`` with ``U U^T = Sigma_c^-1``, so that
    ``log N(z; mu_c, Sigma_c) = sum log diag U - |(z - mu_c) U|^2 / 2 - D log(2 pi) / 2``.
    `forward` is the mixture's log density with `log_weights`; `component_log_densities` each one's.

    Example:
        >>> density = GaussianDensities(1, 2)  # standard normal in 2-D
        >>> round(density(torch.zeros(1, 2)).item(), 4) == round(-math.log(2 * math.pi), 4)
        True
    """

    def __init__(self, components: int, dims: int) -> None:
        super().__init__()
        self.register_buffer("log_weights", torch.full((components,), -math.log(max(components, 1))))
        self.register_buffer("means", torch.zeros(components, dims))
        self.register_buffer("precision_cholesky", torch.eye(dims).repeat(components, 1, 1))

    def component_log_densities(self, z: torch.Tensor) -> torch.Tensor:
        """N x D points -> N x C log densities, one per Gaussian (mixture weights left out)."""
        centred = z.unsqueeze(1) - self.means.unsqueeze(0)  # N x C x D
        whitened = torch.einsum("ncd,cde->nce", centred, self.precision_cholesky)
        log_det = torch.log(self.precision_cholesky.diagonal(dim1=1, dim2=2)).sum(dim=1)
        return log_det - 0.5 * whitened.square().sum(dim=2) - 0.5 * z.shape[1] * LOG_TWO_PI

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_densities(z) + self.log_weights, dim=1)


class AttributionDensities(nn.Module):
    """One Gaussian per known generator and the thresholds that make the attribution open-set.

    `thresholds[g]` is the lowest log-likelihood (mean over an image's crops) that still counts as
    fitting generator g; `real_threshold` the same for the real-photo density.
    """

    def __init__(self, generators: int, dims: int) -> None:
        super().__init__()
        self.generators = GaussianDensities(generators, dims)
        self.register_buffer("thresholds", torch.zeros(generators))
        self.register_buffer("real_threshold", torch.zeros(1))


class FSDNet(nn.Module):
    """Pixels / 255 (N x 3 x H x W) -> N logits of "not made like a real photo".

    Buffers: ``filters`` (scales x filters x size x size residual kernels), ``feature_mean`` and
    ``projection`` (standardisation and whitened PCA in one affine map), ``density.*`` (the real-photo
    Gaussian mixture), ``logit_scale`` and ``logit_bias`` (a, b), ``attribution.*``.

    Example:
        >>> net = FSDNet(DescriptionConfig(scales=(1,), supports=("cross3",)), pca_dims=4, components=2)
        >>> net(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(
        self, description: DescriptionConfig, *, pca_dims: int, components: int, generators: int = 0
    ) -> None:
        super().__init__()
        if not 1 <= pca_dims <= description.n_features:
            raise UsageError(f"pca_dims must be between 1 and {description.n_features}, got {pca_dims}")
        self.description = description
        masks = [support_mask(name, description.filter_size) for name in description.supports]
        # Untrained: each filter predicts the centre as the mean of its support.
        averaging = [residual_kernel(np.full(mask.sum(), 1.0 / mask.sum()), mask) for mask in masks]
        bank = torch.tensor(np.stack(averaging), dtype=torch.float32)
        self.register_buffer("filters", bank.repeat(len(description.scales), 1, 1, 1))
        self.register_buffer("feature_mean", torch.zeros(description.n_features))
        self.register_buffer("projection", torch.eye(pca_dims, description.n_features))
        self.density = GaussianDensities(components, pca_dims)
        self.register_buffer("logit_scale", torch.ones(1))
        self.register_buffer("logit_bias", torch.zeros(1))
        self.attribution = AttributionDensities(generators, pca_dims)

    def descriptions(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W pixels / 255 -> N x n_features self-descriptions (float32, autocast off)."""
        with torch.autocast(images.device.type, enabled=False):
            return self_description(images.float() * 255.0, self.filters, self.description)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W pixels / 255 -> N x pca_dims whitened principal components of the description."""
        return (self.descriptions(images) - self.feature_mean) @ self.projection.T

    def log_likelihood(self, images: torch.Tensor) -> torch.Tensor:
        """Log density of each image's description under the real-photo mixture (N)."""
        return self.density(self.embed(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * -self.log_likelihood(images) + self.logit_bias


def default_card() -> ModelCard:
    """The model card of an untrained FSD detector: full resolution, input pixels / 255."""
    return ModelCard(
        detector="fsd",
        version="untrained",
        architecture=ARCHITECTURE,
        preprocessing=Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        notes="averaging predictors and an identity density; fit with `pixelsleuth fit-fsd`",
    )


# ---------------------------------------------------------------------------------------------------
# The detector.


@dataclass(frozen=True)
class Attribution:
    """Where one image most likely comes from, among the generators the detector knows.

    Attributes:
        label: a generator name, ``"camera photo"`` or ``"unknown"``.
        margin: log-likelihood of the winner minus that of the best other candidate (real density
            included); for "unknown", how far the best candidate fell short of its threshold (negative).
        log_likelihoods: mean log-likelihood over the image's crops, per candidate (``"camera photo"``
            for the real density).
        thresholds: the threshold of each candidate.
        crops: how many crops were read.
    """

    label: str
    margin: float
    log_likelihoods: dict[str, float]
    thresholds: dict[str, float]
    crops: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_attribution(log_likelihoods: dict[str, float], thresholds: dict[str, float]) -> tuple[str, float]:
    """The open-set decision: the best candidate that reaches its threshold, else "unknown".

    Example:
        >>> decide_attribution({"camera photo": -50.0, "gan": -40.0}, {"camera photo": -60.0, "gan": -45.0})
        ('gan', 10.0)
        >>> decide_attribution({"camera photo": -90.0, "gan": -80.0}, {"camera photo": -60.0, "gan": -45.0})
        ('unknown', -30.0)
    """
    passing = {name: value for name, value in log_likelihoods.items() if value >= thresholds[name]}
    if not passing:
        shortfall = max(log_likelihoods[name] - thresholds[name] for name in log_likelihoods)
        return UNKNOWN, float(shortfall)
    winner = max(passing, key=passing.__getitem__)
    others = [value for name, value in log_likelihoods.items() if name != winner]
    margin = log_likelihoods[winner] - max(others) if others else math.inf
    return winner, float(margin)


@register_detector(
    "fsd", "FSD: forensic self-descriptions, a density of real photos' residual models (Nguyen et al., 2025)"
)
class FSDDetector(Detector):
    """Forensic self-descriptions scored against a density of real photos; open-set attribution on top.

    Args:
        device: torch device string.
        card: the model card (default: `default_card`); loading weights replaces it with theirs.
        scales, supports, filter_size, radius, channels, ridge, period: the `DescriptionConfig`.
        pca_dims: whitened principal components the densities live in.
        components: Gaussians of the real-photo mixture.
        generators: names of the generators the attribution densities model (in buffer order).
        precision: ``"fp32"``; ``"bf16"`` is accepted and ignored (the least squares run in float32).
        runtime: ``"torch"`` only.

    Example:
        >>> import numpy as np
        >>> detector = FSDDetector()
        >>> detector.min_side
        104
        >>> detector.predict([np.zeros((90, 200, 3), np.uint8)])
        Traceback (most recent call last):
        ...
        pixelsleuth.detectors.npr.ImageTooSmallError: FSD needs images of at least 104 x 104 pixels...
    """

    name = "fsd"

    def __init__(
        self,
        *,
        device: str = "cpu",
        card: ModelCard | None = None,
        scales: Sequence[int] = (1, 2, 4),
        supports: Sequence[str] = SUPPORT_NAMES,
        filter_size: int = 7,
        radius: int = 2,
        channels: Channels = "rgb",
        ridge: float = 1e-3,
        period: int = 1,
        pca_dims: int = 48,
        components: int = 8,
        generators: Sequence[str] = (),
        precision: Precision = "fp32",
        runtime: Runtime = "torch",
    ) -> None:
        if runtime != "torch":
            raise UsageError(
                "the fsd detector runs on the torch runtime only (its least squares do not export)"
            )
        description = DescriptionConfig(
            scales=tuple(scales),
            supports=tuple(supports),
            filter_size=filter_size,
            radius=radius,
            channels=channels,
            ridge=ridge,
            period=period,
        )
        model = FSDNet(description, pca_dims=pca_dims, components=components, generators=len(generators))
        super().__init__(model, card or default_card(), device=device, precision=precision, runtime=runtime)
        self.description = description
        self.generators = tuple(generators)
        self.kwargs: dict[str, Any] = {
            "scales": list(description.scales),
            "supports": list(description.supports),
            "filter_size": filter_size,
            "radius": radius,
            "channels": channels,
            "ridge": ridge,
            "period": period,
            "pca_dims": pca_dims,
            "components": components,
            "generators": list(generators),
        }

    @property
    def min_side(self) -> int:
        return self.description.min_side

    def check_input(self, prepared: np.ndarray, original: np.ndarray) -> None:
        """Refuse images under `min_side` on a side (ImageTooSmallError)."""
        refuse_smaller_than(prepared, original, self.min_side, detector="FSD")

    def inference_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of `model` as it is: no batch norm to fold, and the least squares stay in float32."""
        return self.model(batch).reshape(-1)

    @torch.inference_mode()
    def embed(self, images: Sequence[np.ndarray], *, batch_size: int = 16) -> np.ndarray:
        """Whitened principal components of each image's description (N x pca_dims, float64)."""
        for image in images:
            self.check_input(image, image)
        out = np.empty((len(images), self.model.projection.shape[0]), np.float64)
        for indices in _indices_by_shape(images).values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = self.normalise(np.stack([images[i] for i in chunk]))
                out[chunk] = self.model.embed(batch).double().cpu().numpy()
        return out

    def candidate_log_likelihoods(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Per candidate (real density as "camera photo", each generator), the log-likelihood of each row."""
        points = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            real = self.model.density(points).double().cpu().numpy()
            per_generator = (
                self.model.attribution.generators.component_log_densities(points).double().cpu().numpy()
            )
        candidates = {CAMERA_PHOTO: real}
        candidates.update({name: per_generator[:, g] for g, name in enumerate(self.generators)})
        return candidates

    def thresholds(self) -> dict[str, float]:
        attribution = self.model.attribution
        values = {CAMERA_PHOTO: float(attribution.real_threshold[0])}
        values.update({name: float(attribution.thresholds[g]) for g, name in enumerate(self.generators)})
        return values

    def attribute(self, image: np.ndarray, budget: PixelBudget = DEFAULT_PIXEL_BUDGET) -> Attribution:
        """Open-set source attribution of one RGB uint8 image, over up to `budget.tiles` crops.

        Images larger than `budget.tile` on both sides are read as tiles of that side spread over the
        image (the densities were fitted on such crops); smaller ones whole. The decision is
        `decide_attribution` on the mean log-likelihood over the crops.
        """
        if not self.generators:
            raise UsageError(
                "these fsd weights have no attribution densities: fit them with "
                "`pixelsleuth fit-fsd ... --attribution MANIFEST`"
            )
        height, width = image.shape[:2]
        if min(height, width) >= budget.tile:
            origins = tile_origins(height, width, budget.tile, budget.tiles)
            crops = [image[top : top + budget.tile, left : left + budget.tile] for top, left in origins]
        else:
            crops = [image]
        z = self.embed(crops, batch_size=budget.batch)
        means = {name: float(values.mean()) for name, values in self.candidate_log_likelihoods(z).items()}
        thresholds = self.thresholds()
        label, margin = decide_attribution(means, thresholds)
        return Attribution(label, margin, means, thresholds, len(crops))


# ---------------------------------------------------------------------------------------------------
# Fitting: crops of real photos -> a complete detector.


@dataclass(frozen=True)
class DensityConfig:
    """How the density of real photos' descriptions is fitted.

    Attributes:
        pca_dims: whitened principal components kept.
        components: Gaussians in the mixture (full covariances).
        reg_covar: added to each covariance's diagonal (the space is whitened: variances are about 1).
        folds: image-grouped folds for the held-out log-likelihoods that set (a, b).
        filter_crops: most crops the prediction-error filters are fitted on.
        seed: the seed of every random choice (folds, mixture initialisation).
    """

    pca_dims: int = 48
    components: int = 8
    reg_covar: float = 1e-3
    folds: int = 5
    filter_crops: int = 256
    seed: int = 0


@dataclass(frozen=True)
class DensityParameters:
    """A fitted density as arrays: the affine map to whitened components, then a Gaussian mixture."""

    feature_mean: np.ndarray  # F
    projection: np.ndarray  # D x F
    log_weights: np.ndarray  # C
    means: np.ndarray  # C x D
    precision_cholesky: np.ndarray  # C x D x D
    explained_variance: float  # share of the standardised variance the components keep

    def embed(self, descriptions: np.ndarray) -> np.ndarray:
        return (descriptions - self.feature_mean) @ self.projection.T

    def log_likelihood(self, descriptions: np.ndarray) -> np.ndarray:
        """Log density of each description (float64, numpy: the same formula as `GaussianDensities`)."""
        return mixture_log_likelihood(
            self.embed(descriptions), self.log_weights, self.means, self.precision_cholesky
        )


def mixture_log_likelihood(
    z: np.ndarray, log_weights: np.ndarray, means: np.ndarray, precision_cholesky: np.ndarray
) -> np.ndarray:
    """Log density of each row of `z` under a Gaussian mixture given by precision Cholesky factors.

    Example:
        >>> value = mixture_log_likelihood(np.zeros((1, 2)), np.zeros(1), np.zeros((1, 2)), np.eye(2)[None])
        >>> bool(np.isclose(value[0], -np.log(2 * np.pi)))
        True
    """
    centred = z[:, None, :] - means[None]
    whitened = np.einsum("ncd,cde->nce", centred, precision_cholesky)
    log_det = np.log(np.diagonal(precision_cholesky, axis1=1, axis2=2)).sum(axis=1)
    per_component = log_weights + log_det - 0.5 * (whitened**2).sum(axis=2) - 0.5 * z.shape[1] * LOG_TWO_PI
    top = per_component.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(per_component - top).sum(axis=1, keepdims=True)))[:, 0]


def fit_density(descriptions: np.ndarray, config: DensityConfig = DensityConfig()) -> DensityParameters:
    """Standardise, whitened PCA, Gaussian mixture (scikit-learn, seeded): the density of `descriptions`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> density = fit_density(rng.normal(size=(200, 10)), DensityConfig(pca_dims=3, components=2))
        >>> density.projection.shape, density.means.shape
        ((3, 10), (2, 3))
    """
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    descriptions = np.asarray(descriptions, np.float64)
    if descriptions.shape[0] <= config.pca_dims:
        raise UsageError(
            f"the density needs more crops than principal components: {descriptions.shape[0]} crops for "
            f"{config.pca_dims} components"
        )
    mean = descriptions.mean(axis=0)
    scale = np.maximum(descriptions.std(axis=0), 1e-6)
    standardised = (descriptions - mean) / scale
    pca = PCA(n_components=config.pca_dims, whiten=True, svd_solver="full", random_state=config.seed)
    z = pca.fit_transform(standardised)
    mixture = GaussianMixture(
        n_components=config.components,
        covariance_type="full",
        reg_covar=config.reg_covar,
        max_iter=500,
        n_init=2,
        random_state=config.seed,
    ).fit(z)
    projection = pca.components_ / np.sqrt(pca.explained_variance_)[:, None] / scale[None, :]
    return DensityParameters(
        feature_mean=mean + scale * pca.mean_,
        projection=projection,
        log_weights=np.log(mixture.weights_),
        means=mixture.means_,
        precision_cholesky=mixture.precisions_cholesky_,
        explained_variance=float(pca.explained_variance_ratio_.sum()),
    )


def group_folds(groups: Sequence[Any], folds: int, seed: int) -> np.ndarray:
    """Fold index of each item, whole groups (an image's crops) to one fold, groups shuffled by `seed`.

    Example:
        >>> group_folds(["a", "a", "b", "c"], 2, 0).tolist()
        [1, 1, 0, 0]
    """
    names = sorted(set(groups), key=str)
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: rank % folds for rank, i in enumerate(order)}
    return np.array([fold_of[group] for group in groups], dtype=np.int64)


def heldout_log_likelihoods(
    descriptions: np.ndarray, groups: Sequence[Any], config: DensityConfig = DensityConfig()
) -> np.ndarray:
    """Log-likelihood of every description under a density fitted without its image (grouped K-fold)."""
    folds = group_folds(groups, config.folds, config.seed)
    out = np.empty(len(descriptions), np.float64)
    for fold in range(config.folds):
        held = folds == fold
        if held.any():
            out[held] = fit_density(descriptions[~held], config).log_likelihood(descriptions[held])
    return out


def group_means(values: np.ndarray, groups: Sequence[Any]) -> np.ndarray:
    """Mean of `values` per group (an image's crops), groups in sorted order.

    Example:
        >>> group_means(np.array([1.0, 3.0, 5.0]), ["x", "x", "y"]).tolist()
        [2.0, 5.0]
    """
    names = sorted(set(groups), key=str)
    index = {name: i for i, name in enumerate(names)}
    sums, counts = np.zeros(len(names)), np.zeros(len(names))
    for value, group in zip(values, groups, strict=True):
        sums[index[group]] += value
        counts[index[group]] += 1
    return sums / counts


@dataclass
class FitReport:
    """What `fit_fsd` saw and set, for the model card."""

    n_images: int
    n_crops: int
    filter_crops: int
    explained_variance: float
    heldout_nll_median: float
    heldout_nll_p95: float
    logit_scale: float
    logit_bias: float
    heldout_image_loglik_quantiles: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FSDFit:
    detector: FSDDetector
    report: FitReport
    descriptions: np.ndarray  # the crops' descriptions, N x F (for attribution or analysis)


def logit_mapping(heldout_nll: np.ndarray) -> tuple[float, float]:
    """(a, b) with ``a * nll + b`` = logit(0.05) at the median held-out nll and 0 at its 95th percentile.

    Example:
        >>> a, b = logit_mapping(np.arange(101.0))
        >>> round(a * 50 + b, 3), round(a * 95 + b, 3)
        (-2.944, 0.0)
    """
    median, p95 = np.quantile(heldout_nll, [0.5, 0.95])
    spread = max(float(p95 - median), 1e-6)
    scale = math.log(19.0) / spread
    return scale, -scale * float(p95)


def fit_fsd(
    crops: Sequence[np.ndarray],
    groups: Sequence[Any],
    *,
    description: DescriptionConfig | None = None,
    density: DensityConfig = DensityConfig(),
    card: ModelCard | None = None,
    batch_size: int = 16,
) -> FSDFit:
    """Fit a complete FSD detector on crops of real photos (RGB uint8), `groups` naming each crop's image.

    Steps: filters on up to `density.filter_crops` crops (chosen by the seed), descriptions of every
    crop, held-out log-likelihoods by image-grouped K-fold (they set ``(a, b)`` with `logit_mapping`
    and the real-photo attribution threshold), then the density on all crops.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(40)]
        >>> config = DescriptionConfig(scales=(1,), supports=("cross3", "square3"))
        >>> density = DensityConfig(pca_dims=4, components=1)
        >>> fitted = fit_fsd(crops, range(40), description=config, density=density)
        >>> fitted.detector.trained, fitted.report.n_crops
        (True, 40)
    """
    if len(crops) != len(groups):
        raise ValueError(f"{len(crops)} crops but {len(groups)} group names")
    groups = list(groups)
    description = description or DescriptionConfig()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    rng = np.random.default_rng(density.seed)
    chosen = np.sort(rng.permutation(len(crops))[: density.filter_crops])
    chosen_crops = [crops[i] for i in chosen]
    batches = (
        torch.from_numpy(np.stack([chosen_crops[i] for i in indices[s : s + batch_size]]))
        .permute(0, 3, 1, 2)
        .float()
        for indices in _indices_by_shape(chosen_crops).values()
        for s in range(0, len(indices), batch_size)
    )
    bank = fit_filter_bank(batches, description)
    timings["filters"] = time.perf_counter() - start

    detector = FSDDetector(
        scales=description.scales,
        supports=description.supports,
        filter_size=description.filter_size,
        radius=description.radius,
        channels=description.channels,
        ridge=description.ridge,
        period=description.period,
        pca_dims=density.pca_dims,
        components=density.components,
    )
    detector.model.filters.copy_(bank)
    start = time.perf_counter()
    with torch.inference_mode():
        descriptions = np.empty((len(crops), description.n_features), np.float64)
        for shape_indices in _indices_by_shape(crops).values():
            for s in range(0, len(shape_indices), batch_size):
                chunk = shape_indices[s : s + batch_size]
                batch = detector.normalise(np.stack([crops[i] for i in chunk]))
                descriptions[chunk] = detector.model.descriptions(batch).double().cpu().numpy()
    timings["descriptions"] = time.perf_counter() - start

    start = time.perf_counter()
    heldout = heldout_log_likelihoods(descriptions, groups, density)
    fitted = fit_density(descriptions, density)
    timings["density"] = time.perf_counter() - start
    scale, bias = logit_mapping(-heldout)
    per_image = group_means(heldout, groups)
    model = detector.model
    with torch.no_grad():
        model.feature_mean.copy_(torch.from_numpy(fitted.feature_mean))
        model.projection.copy_(torch.from_numpy(fitted.projection))
        model.density.log_weights.copy_(torch.from_numpy(fitted.log_weights))
        model.density.means.copy_(torch.from_numpy(fitted.means))
        model.density.precision_cholesky.copy_(torch.from_numpy(fitted.precision_cholesky))
        model.logit_scale.fill_(scale)
        model.logit_bias.fill_(bias)
        model.attribution.real_threshold.fill_(float(np.quantile(per_image, 0.05)))
    report = FitReport(
        n_images=len(set(groups)),
        n_crops=len(crops),
        filter_crops=len(chosen),
        explained_variance=fitted.explained_variance,
        heldout_nll_median=float(np.median(-heldout)),
        heldout_nll_p95=float(np.quantile(-heldout, 0.95)),
        logit_scale=scale,
        logit_bias=bias,
        heldout_image_loglik_quantiles={
            f"{level:g}": float(np.quantile(per_image, level)) for level in QUANTILE_LEVELS
        },
        seconds={name: round(value, 2) for name, value in timings.items()},
    )
    detector.card = card or default_card()
    detector.card.extra["detector_kwargs"] = dict(detector.kwargs)
    detector.card.extra["fsd_fit"] = report.to_dict()
    detector.trained = True
    return FSDFit(detector, report, descriptions)


def _indices_by_shape(images: Sequence[np.ndarray]) -> dict[tuple[int, ...], list[int]]:
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(index)
    return by_shape


# ---------------------------------------------------------------------------------------------------
# Attribution: one small density per known generator.


@dataclass(frozen=True)
class AttributionConfig:
    """How the per-generator densities and their thresholds are fitted.

    Attributes:
        shrinkage_images: prior weight, in images, of the pooled covariance in each generator's
            covariance: ``Sigma_g = (n_g S_g + k S_pooled) / (n_g + k)`` (None: the number of dimensions).
        min_images: generators with fewer images are left out (they could not be thresholded).
        quantile: each threshold is this quantile of held-out in-class image log-likelihoods.
        folds: image-grouped folds for those held-out scores (fewer when a generator has fewer images).
        seed: seed of the folds.
    """

    shrinkage_images: float | None = None
    min_images: int = 3
    quantile: float = 0.05
    folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class GeneratorGaussians:
    """Per-generator Gaussians in the whitened space: means and precision Cholesky factors (numpy)."""

    names: tuple[str, ...]
    means: np.ndarray  # G x D
    precision_cholesky: np.ndarray  # G x D x D
    n_images: tuple[int, ...]

    def log_likelihood(self, z: np.ndarray) -> np.ndarray:
        """N x G log densities."""
        return np.stack(
            [
                mixture_log_likelihood(
                    z, np.zeros(1), self.means[g : g + 1], self.precision_cholesky[g : g + 1]
                )
                for g in range(len(self.names))
            ],
            axis=1,
        )


def _precision_cholesky(covariance: np.ndarray) -> np.ndarray:
    """Upper-triangular U with U U^T = covariance^-1 (scikit-learn's convention)."""
    lower = np.linalg.cholesky(covariance)
    inverse_lower = np.linalg.solve(lower, np.eye(covariance.shape[0]))
    return inverse_lower.T


def pooled_covariance(z: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Within-class covariance pooled over all classes, shrunk towards its diagonal (Ledoit-Wolf)."""
    from sklearn.covariance import ledoit_wolf

    labels = np.asarray(labels)
    centred = np.concatenate(
        [z[labels == name] - z[labels == name].mean(axis=0) for name in np.unique(labels)]
    )
    covariance, _ = ledoit_wolf(centred, assume_centered=True)
    return covariance


def fit_generator_gaussians(
    z: np.ndarray,
    labels: Sequence[str],
    groups: Sequence[Any],
    config: AttributionConfig = AttributionConfig(),
    *,
    pooled: np.ndarray | None = None,
) -> GeneratorGaussians:
    """One Gaussian per label: the crops' mean, covariance shrunk towards the pooled one by image count.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = np.concatenate([rng.normal(0, 1, (20, 3)), rng.normal(5, 1, (20, 3))])
        >>> labels = ["a"] * 20 + ["b"] * 20
        >>> fitted = fit_generator_gaussians(z, labels, range(40))
        >>> fitted.names, fitted.log_likelihood(np.full((1, 3), 5.0)).argmax()
        (('a', 'b'), np.int64(1))
    """
    labels = np.asarray(labels)
    groups_array = np.asarray([str(group) for group in groups])
    pooled = pooled_covariance(z, labels) if pooled is None else pooled
    prior = float(config.shrinkage_images if config.shrinkage_images is not None else z.shape[1])
    names = tuple(sorted(set(labels.tolist())))
    means, factors, counts = [], [], []
    for name in names:
        members = z[labels == name]
        n_images = len(set(groups_array[labels == name].tolist()))
        own = np.cov(members, rowvar=False, bias=True) if len(members) > 1 else np.zeros_like(pooled)
        covariance = (n_images * own + prior * pooled) / (n_images + prior)
        means.append(members.mean(axis=0))
        factors.append(_precision_cholesky(covariance))
        counts.append(n_images)
    return GeneratorGaussians(names, np.stack(means), np.stack(factors), tuple(counts))


@dataclass
class AttributionReport:
    """What `fit_attribution` fitted, per generator, for the model card."""

    generators: dict[str, dict[str, float]]
    left_out: dict[str, int]  # generators with too few images: their image count
    quantile: float
    real_threshold: float
    shrinkage_images: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heldout_generator_scores(
    z: np.ndarray, labels: Sequence[str], groups: Sequence[Any], config: AttributionConfig
) -> dict[str, np.ndarray]:
    """Per generator, the in-class log-likelihood of each of its images (mean over its crops) under a
    Gaussian fitted without that image's fold; the pooled covariance is fitted once on everything."""
    labels = np.asarray(labels)
    groups_array = np.asarray([str(group) for group in groups])
    pooled = pooled_covariance(z, labels)
    scores: dict[str, np.ndarray] = {}
    for name in sorted(set(labels.tolist())):
        members = labels == name
        member_groups = groups_array[members]
        n_images = len(set(member_groups.tolist()))
        folds = group_folds(member_groups.tolist(), min(config.folds, n_images), config.seed)
        values = np.empty(members.sum())
        for fold in range(folds.max() + 1):
            held = folds == fold
            train_z = z[members][~held]
            fitted = fit_generator_gaussians(
                train_z, [name] * len(train_z), member_groups[~held], config, pooled=pooled
            )
            values[held] = fitted.log_likelihood(z[members][held])[:, 0]
        scores[name] = group_means(values, member_groups.tolist())
    return scores


def fit_attribution(
    detector: FSDDetector,
    crops: Sequence[np.ndarray],
    generators: Sequence[str],
    groups: Sequence[Any],
    config: AttributionConfig = AttributionConfig(),
    *,
    real_image_loglik_quantiles: dict[str, float] | None = None,
) -> tuple[FSDDetector, AttributionReport]:
    """A copy of `detector` with one density per generator (crops of generated images, their generator
    names and image groups), thresholds at `config.quantile` of held-out in-class scores.

    The real-photo threshold is the same quantile of the held-out real scores `fit_fsd` kept in the
    card (``extra.fsd_fit.heldout_image_loglik_quantiles``), interpolated between its stored levels.
    """
    z = detector.embed(crops)
    groups = [str(group) for group in groups]
    counts = {
        name: len({g for g, n in zip(groups, generators, strict=True) if n == name})
        for name in set(generators)
    }
    kept = sorted(name for name, count in counts.items() if count >= config.min_images)
    left_out = {name: count for name, count in sorted(counts.items()) if count < config.min_images}
    if not kept:
        raise UsageError(
            f"no generator has {config.min_images} or more images to fit an attribution density on"
        )
    keep = np.array([name in kept for name in generators])
    labels = [name for name, k in zip(generators, keep, strict=True) if k]
    kept_groups = [group for group, k in zip(groups, keep, strict=True) if k]
    gaussians = fit_generator_gaussians(z[keep], labels, kept_groups, config)
    heldout = heldout_generator_scores(z[keep], labels, kept_groups, config)
    thresholds = [float(np.quantile(heldout[name], config.quantile)) for name in gaussians.names]

    quantiles = real_image_loglik_quantiles or detector.card.extra.get("fsd_fit", {}).get(
        "heldout_image_loglik_quantiles"
    )
    if not quantiles:
        raise UsageError(
            "the fsd weights carry no held-out real scores in their card: refit them with fit-fsd"
        )
    levels = sorted((float(level), value) for level, value in quantiles.items())
    real_threshold = float(np.interp(config.quantile, [lv for lv, _ in levels], [v for _, v in levels]))

    kwargs = {**detector.kwargs, "generators": list(gaussians.names)}
    result = FSDDetector(device=str(detector.device), **kwargs)
    state = detector.model.state_dict()
    state = {key: value for key, value in state.items() if not key.startswith("attribution.")}
    result.model.load_state_dict(state, strict=False)
    with torch.no_grad():
        generators_module = result.model.attribution.generators
        generators_module.log_weights.zero_()
        generators_module.means.copy_(torch.from_numpy(gaussians.means))
        generators_module.precision_cholesky.copy_(torch.from_numpy(gaussians.precision_cholesky))
        result.model.attribution.thresholds.copy_(torch.tensor(thresholds))
        result.model.attribution.real_threshold.fill_(real_threshold)
    report = AttributionReport(
        generators={
            name: {
                "images": gaussians.n_images[g],
                "crops": int(sum(1 for label in labels if label == name)),
                "threshold": round(thresholds[g], 4),
                "heldout_median": round(float(np.median(heldout[name])), 4),
            }
            for g, name in enumerate(gaussians.names)
        },
        left_out=left_out,
        quantile=config.quantile,
        real_threshold=real_threshold,
        shrinkage_images=float(config.shrinkage_images or z.shape[1]),
    )
    result.card = ModelCard.from_dict(detector.card.to_dict())
    result.card.extra["detector_kwargs"] = dict(result.kwargs)
    result.card.extra["attribution"] = report.to_dict()
    result.trained = detector.trained
    return result, report


# ---------------------------------------------------------------------------------------------------
# Crops.


def sample_crops(
    image: np.ndarray, size: int, count: int, rng: np.random.Generator, *, grid: int = 8
) -> list[np.ndarray]:
    """Up to `count` distinct `size` x `size` crops at random corners on multiples of `grid`.

    An image with exactly one possible corner gives one crop; an image smaller than `size` none.

    Example:
        >>> image = np.zeros((300, 400, 3), np.uint8)
        >>> [crop.shape for crop in sample_crops(image, 256, 2, np.random.default_rng(0))]
        [(256, 256, 3), (256, 256, 3)]
    """
    height, width = image.shape[:2]
    if height < size or width < size:
        return []
    tops = np.arange(0, height - size + 1, grid)
    lefts = np.arange(0, width - size + 1, grid)
    corners = len(tops) * len(lefts)
    picks = rng.choice(corners, size=min(count, corners), replace=False)
    return [
        np.ascontiguousarray(
            image[
                tops[p // len(lefts)] : tops[p // len(lefts)] + size,
                lefts[p % len(lefts)] : lefts[p % len(lefts)] + size,
            ]
        )
        for p in sorted(picks.tolist())
    ]


__all__ = [
    "ARCHITECTURE",
    "CAMERA_PHOTO",
    "UNKNOWN",
    "Attribution",
    "AttributionConfig",
    "AttributionDensities",
    "AttributionReport",
    "DensityConfig",
    "DensityParameters",
    "FSDDetector",
    "FSDFit",
    "FSDNet",
    "FitReport",
    "GaussianDensities",
    "GeneratorGaussians",
    "decide_attribution",
    "default_card",
    "fit_attribution",
    "fit_density",
    "fit_fsd",
    "fit_generator_gaussians",
    "group_folds",
    "group_means",
    "heldout_log_likelihoods",
    "logit_mapping",
    "mixture_log_likelihood",
    "sample_crops",
]
