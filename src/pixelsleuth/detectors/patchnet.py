"""PatchNet: a small CNN that scores every patch of a fixed high-pass residual, then the whole image.

Generation leaves its traces in the high frequencies that image content hides (Fridrich and Kodovsky,
"Rich models for steganalysis of digital images", IEEE TIFS 2012; Zhou et al., "Learning rich features
for image manipulation detection", CVPR 2018), and a small receptive field keeps a detector on those
local traces instead of on what the picture shows (Chai et al., "What makes fake images detectable?
Understanding properties that generalize", ECCV 2020). PatchNet follows both:

* a fixed, not learned, bank of six high-pass filters (first- and second-order differences across and
  down, and the SRM "KB" 3 x 3 and "KV" 5 x 5 kernels) is applied to each colour channel of the whole
  image (18 residual channels), in grey levels, truncated at +-`TRUNCATION` grey levels;
* the residual is cut into non-overlapping `patch` x `patch` patches (stride = patch), and a CNN of four
  stages of two 3 x 3 convolutions (widths 16, 32, 64, 128, max-pooled between stages, about 296 k
  parameters) with a global average pool gives each patch one logit of "generated";
* the patch logits are aggregated into the image logit: their ``mean``, the mean of the ``topk``
  fraction of highest logits, or a learned ``attention`` (softmax over the image's patches of a second
  linear head on the same features).

Any image with both sides at least one patch works; its last rows and columns beyond a multiple of the
patch are cropped (``Preprocessing(crop_multiple=patch)``). `predict_map` returns the patch grid itself.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.detectors import create
    >>> detector = create("patchnet")  # random weights; pass weights=... for a trained model
    >>> detector.predict([np.zeros((64, 96, 3), np.uint8)]).shape
    (1,)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelsleuth.detectors.base import Detector, PatchMap, prepare
from pixelsleuth.detectors.card import IMAGENET_STD, ModelCard, Preprocessing
from pixelsleuth.detectors.npr import refuse_smaller_than
from pixelsleuth.detectors.registry import register_detector
from pixelsleuth.detectors.runtime import Precision, Runtime
from pixelsleuth.errors import UsageError

AGGREGATIONS = ("mean", "topk", "attention")
DEFAULT_PATCH = 32
STAGE_WIDTHS = (16, 32, 64, 128)
# Residuals beyond a few grey levels are edges and texture of the content, not the traces of how the
# pixels were made; truncating them (SRM's "T") keeps the network on the weak signal.
TRUNCATION = 4.0
# The input is normalised per channel by the card's mean and std; this turns it back into grey levels
# (the three ImageNet stds differ by 2 %, a difference the first batch norm absorbs).
GREY_LEVELS_PER_UNIT = 255.0 * float(np.mean(IMAGENET_STD))

_FIRST_ORDER = [[0, 0, 0], [0, -1, 1], [0, 0, 0]]
_SECOND_ORDER = [[0, 0, 0], [1, -2, 1], [0, 0, 0]]
_SRM_KB = [[-1, 2, -1], [2, -4, 2], [-1, 2, -1]]
_SRM_KV = [
    [-1, 2, -2, 2, -1],
    [2, -6, 8, -6, 2],
    [-2, 8, -12, 8, -2],
    [2, -6, 8, -6, 2],
    [-1, 2, -2, 2, -1],
]


def high_pass_kernels() -> torch.Tensor:
    """The six fixed 5 x 5 high-pass kernels, each summing to zero: 6 x 5 x 5.

    Example:
        >>> kernels = high_pass_kernels()
        >>> tuple(kernels.shape), round(float(kernels.sum(dim=(1, 2)).abs().max()), 6)
        ((6, 5, 5), 0.0)
    """
    first = torch.tensor(_FIRST_ORDER, dtype=torch.float32)
    second = torch.tensor(_SECOND_ORDER, dtype=torch.float32) / 2
    small = [first, first.T.contiguous(), second, second.T.contiguous(), torch.tensor(_SRM_KB) / 4.0]
    padded = [F.pad(kernel.float(), (1, 1, 1, 1)) for kernel in small]
    return torch.stack([*padded, torch.tensor(_SRM_KV, dtype=torch.float32) / 12.0])


class HighPassResidual(nn.Module):
    """Fixed high-pass residuals of each colour channel, in grey levels, truncated at +-`truncation`.

    N x 3 x H x W normalised images -> N x 18 x H x W (reflect padding keeps the size). The kernels are
    a non-persistent buffer: they are part of the architecture, not of the weights file.

    Example:
        >>> HighPassResidual()(torch.zeros(1, 3, 8, 8)).abs().max().item()
        0.0
    """

    def __init__(self, truncation: float = TRUNCATION) -> None:
        super().__init__()
        kernels = high_pass_kernels()
        self.register_buffer("kernels", kernels.repeat(3, 1, 1).unsqueeze(1), persistent=False)
        self.truncation = truncation
        self.out_channels = 3 * len(kernels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        padded = F.pad(images * GREY_LEVELS_PER_UNIT, (2, 2, 2, 2), mode="reflect")
        residual = F.conv2d(padded, self.kernels.to(images.dtype), groups=3)
        return residual.clamp(-self.truncation, self.truncation) / self.truncation


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def split_patches(features: torch.Tensor, patch: int) -> torch.Tensor:
    """N x C x (rows * patch) x (cols * patch) -> (N * rows * cols) x C x patch x patch, row by row.

    Example:
        >>> split_patches(torch.zeros(2, 3, 64, 96), 32).shape
        torch.Size([12, 3, 32, 32])
    """
    n, channels, height, width = features.shape
    rows, cols = height // patch, width // patch
    grid = features.reshape(n, channels, rows, patch, cols, patch).permute(0, 2, 4, 1, 3, 5)
    return grid.reshape(n * rows * cols, channels, patch, patch)


def aggregate_logits(
    patch_logits: torch.Tensor,
    how: str,
    *,
    attention: torch.Tensor | None = None,
    topk_fraction: float = 0.25,
) -> torch.Tensor:
    """N x P patch logits -> N image logits by ``mean``, ``topk`` mean or softmax ``attention`` weights.

    Example:
        >>> logits = torch.tensor([[0.0, 1.0, 2.0, 5.0]])
        >>> aggregate_logits(logits, "mean").item()
        2.0
        >>> aggregate_logits(logits, "topk", topk_fraction=0.5).item()
        3.5
    """
    if how == "mean":
        return patch_logits.mean(dim=1)
    if how == "topk":
        count = max(1, math.ceil(topk_fraction * patch_logits.shape[1]))
        return patch_logits.topk(count, dim=1).values.mean(dim=1)
    if how == "attention":
        if attention is None:
            raise ValueError("attention aggregation needs the attention scores")
        return (torch.softmax(attention, dim=1) * patch_logits).sum(dim=1)
    raise ValueError(f"unknown aggregation {how!r}; choose from {', '.join(AGGREGATIONS)}")


class PatchNet(nn.Module):
    """High-pass residual -> per-patch CNN -> aggregated image logit (N x 3 x H x W -> N x 1).

    H and W must be positive multiples of `patch`.

    Example:
        >>> PatchNet()(torch.zeros(2, 3, 64, 96)).shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        patch: int = DEFAULT_PATCH,
        aggregate: str = "mean",
        topk_fraction: float = 0.25,
        widths: tuple[int, ...] = STAGE_WIDTHS,
    ) -> None:
        super().__init__()
        if aggregate not in AGGREGATIONS:
            raise UsageError(f"aggregate must be one of {', '.join(AGGREGATIONS)}, got {aggregate!r}")
        if patch < 2 ** (len(widths) - 1):
            raise UsageError(f"a patch must be at least {2 ** (len(widths) - 1)} pixels, got {patch}")
        self.patch = patch
        self.aggregate = aggregate
        self.topk_fraction = topk_fraction
        self.residual = HighPassResidual()
        layers: list[nn.Module] = []
        in_channels = self.residual.out_channels
        for index, width in enumerate(widths):
            if index:
                layers.append(nn.MaxPool2d(2))
            layers += _conv_block(in_channels, width) + _conv_block(width, width)
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, 1)
        self.attention = nn.Linear(in_channels, 1) if aggregate == "attention" else None
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def patch_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patch logits and attention scores (None unless learned), each N x rows x cols."""
        n, _, height, width = images.shape
        if height < self.patch or width < self.patch or height % self.patch or width % self.patch:
            raise ValueError(f"PatchNet needs sides in multiples of {self.patch}, got {height} x {width}")
        rows, cols = height // self.patch, width // self.patch
        patches = split_patches(self.residual(images), self.patch)
        patches = patches.contiguous(memory_format=torch.channels_last)
        pooled = torch.flatten(F.adaptive_avg_pool2d(self.features(patches), 1), 1)
        logits = self.classifier(pooled).reshape(n, rows, cols)
        attention = None if self.attention is None else self.attention(pooled).reshape(n, rows, cols)
        return logits, attention

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits, attention = self.patch_outputs(images)
        flat_attention = None if attention is None else attention.flatten(1)
        image_logits = aggregate_logits(
            logits.flatten(1), self.aggregate, attention=flat_attention, topk_fraction=self.topk_fraction
        )
        return image_logits.unsqueeze(1)


def count_parameters(model: nn.Module) -> int:
    """Number of learned parameters (batch-norm running statistics and fixed kernels excluded).

    Example:
        >>> count_parameters(PatchNet())
        296289
    """
    return sum(parameter.numel() for parameter in model.parameters())


def default_card(patch: int = DEFAULT_PATCH, aggregate: str = "mean") -> ModelCard:
    """The model card of an untrained PatchNet: full resolution, sides cropped to multiples of the patch."""
    architecture = (
        f"PatchNet: fixed high-pass residual (6 kernels x RGB, truncated at {TRUNCATION:g} grey levels), "
        f"non-overlapping {patch} x {patch} patches, per-patch CNN (stages {STAGE_WIDTHS}, 2 conv 3x3 + BN "
        f"+ ReLU each, max-pool between, global average pool, linear -> 1), {aggregate} of patch logits"
    )
    return ModelCard(
        detector="patchnet",
        version="untrained",
        architecture=architecture,
        preprocessing=Preprocessing(crop_multiple=patch),
        notes="randomly initialised; load trained weights with create('patchnet', weights=...)",
    )


@register_detector("patchnet", "PatchNet: a per-patch CNN on a fixed high-pass residual, patch logits pooled")
class PatchNetDetector(Detector):
    """PatchNet at full resolution: `predict` for whole images, `predict_map` for the patch grid.

    Args:
        device: torch device string, ``"cpu"`` or ``"cuda"``.
        patch: patch side in pixels (the stride too); images need at least one patch per side.
        aggregate: ``"mean"`` of patch logits, ``"topk"`` mean, or learned ``"attention"``.
        topk_fraction: share of highest patch logits averaged by ``"topk"``.
        card: the model card (default: `default_card`); loading weights replaces it with theirs.
        precision: ``"fp32"`` (default) or ``"bf16"`` autocast for inference.
        runtime: ``"torch"`` (default) or ``"onnxruntime"``.

    Example:
        >>> import numpy as np
        >>> detector = PatchNetDetector(patch=32)
        >>> detector.predict_map(np.zeros((64, 100, 3), np.uint8)).scores.shape
        (2, 3)
    """

    name = "patchnet"

    def __init__(
        self,
        *,
        device: str = "cpu",
        patch: int = DEFAULT_PATCH,
        aggregate: str = "mean",
        topk_fraction: float = 0.25,
        card: ModelCard | None = None,
        precision: Precision = "fp32",
        runtime: Runtime = "torch",
    ) -> None:
        model = PatchNet(patch=patch, aggregate=aggregate, topk_fraction=topk_fraction)
        super().__init__(
            model, card or default_card(patch, aggregate), device=device, precision=precision, runtime=runtime
        )
        self.patch = patch

    def check_input(self, prepared: np.ndarray, original: np.ndarray) -> None:
        """Refuse images with a side under one patch (ImageTooSmallError).

        Example:
            >>> import numpy as np
            >>> PatchNetDetector().predict([np.zeros((20, 48, 3), np.uint8)])
            Traceback (most recent call last):
            ...
            pixelsleuth.detectors.npr.ImageTooSmallError: PatchNet needs images of at least 32 x 32 pixels ...
        """
        refuse_smaller_than(prepared, original, self.patch, detector="PatchNet", why=" (one patch)")

    @torch.inference_mode()
    def predict_map(
        self, image: np.ndarray, *, window: int | None = None, stride: int | None = None
    ) -> PatchMap:
        """Probability of "generated" for every patch of the image, on the grid the network scores.

        Windows and stride are the patch size; asking for others is a UsageError (PatchNet scores no
        other windows). Pixels past the last whole patch are not covered.

        Example:
            >>> import numpy as np
            >>> PatchNetDetector().predict_map(np.zeros((96, 160, 3), np.uint8)).scores.shape
            (3, 5)
        """
        for name, value in (("window", window), ("stride", stride)):
            if value is not None and value != self.patch:
                raise UsageError(f"PatchNet maps its own {self.patch}-pixel patches; got {name} {value}")
        self.model.eval()
        prepared = prepare(image, self.preprocessing)
        self.check_input(prepared, image)
        logits, _ = self.model.patch_outputs(self.normalise(prepared[None]))
        scores = torch.sigmoid(logits[0]).float().cpu().numpy()
        return PatchMap(scores=scores, window=self.patch, stride=self.patch, image_shape=image.shape[:2])


__all__ = [
    "AGGREGATIONS",
    "DEFAULT_PATCH",
    "HighPassResidual",
    "PatchNet",
    "PatchNetDetector",
    "aggregate_logits",
    "count_parameters",
    "default_card",
    "high_pass_kernels",
    "split_patches",
]
