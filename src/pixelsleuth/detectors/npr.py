"""NPR: the neighbouring-pixel relationships that up-sampling leaves behind.

Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable
Deepfake Detection", CVPR 2024 (arXiv 2312.10461). A generator's up-sampling layers copy or interpolate
each low-resolution value into a small block of pixels, so pixels inside a 2 x 2 block are tied to each
other in a way a camera does not tie them. NPR makes that visible as a residual, ``x - up(down(x))`` with
nearest-neighbour resampling at factor 1/2, and classifies the residual with a ResNet-50 cut after its
second stage.

The network follows the facts of the authors' ``networks/resnet.py`` (github
chuangchuangtan/NPR-DeepfakeDetection), so that their state_dict loads with ``strict=True`` after the
identity key mapping documented in `pixelsleuth.detectors.convert`:

* residual: ``F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)`` then
  ``scale_factor=2.0`` the same way; the residual is multiplied by 2 and divided by 3 before ``conv1``;
* ``conv1`` 3 x 3, stride 2, padding 1, no bias (not ResNet's 7 x 7); ``bn1``; ``relu``; ``maxpool``
  3 x 3, stride 2, padding 1;
* ``layer1``: 3 bottlenecks of width 64 (output 256), ``layer2``: 4 bottlenecks of width 128 (output 512),
  its stride 2 on the 3 x 3 ``conv2`` of the first block, whose ``downsample`` is a strided 1 x 1
  convolution and a batch norm; no ``layer3`` / ``layer4``;
* global average pool and ``fc1``: Linear 512 -> 1 (one logit of "generated").

At test time the authors feed full-resolution images (``ToTensor`` then ImageNet mean / std, no resize,
no crop in the setting reproduced here); odd heights or widths lose their last row or column, which the
model card expresses as ``Preprocessing(crop_multiple=2)``.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.detectors import create
    >>> detector = create("npr")  # random weights; pass weights=... for a trained model
    >>> detector.predict([np.zeros((64, 64, 3), np.uint8)]).shape
    (1,)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelsleuth.detectors.base import Detector, PatchMap, prepare
from pixelsleuth.detectors.card import ModelCard, Preprocessing
from pixelsleuth.detectors.registry import register_detector
from pixelsleuth.detectors.runtime import Precision, Runtime
from pixelsleuth.errors import PixelsleuthError, UsageError

ARCHITECTURE = (
    "NPR (Tan et al., CVPR 2024): nearest-neighbour residual x - up(down(x)) at factor 1/2, times 2/3, "
    "into a ResNet-50 cut after layer2 (conv1 3x3/2, max-pool, layer1 3 bottlenecks, layer2 4 bottlenecks), "
    "global average pool, fc1 512 -> 1"
)

# Smallest height and width (after the crop to even sizes) that NPR accepts. The network runs on any
# even size >= 2, but it reduces the image 8-fold before its global average pool: below 32 pixels that
# pool sees fewer than 4 x 4 positions and a score means little (the authors train on 224 x 224 crops).
MIN_SIDE = 32


class ImageTooSmallError(PixelsleuthError):
    type = "image_too_small"


def refuse_smaller_than(
    prepared: np.ndarray, original: np.ndarray, minimum: int, *, detector: str, why: str = ""
) -> None:
    """Raise ImageTooSmallError when the prepared image has a side under `minimum` (the message names
    the original's size, and `why` the reason for the minimum)."""
    if min(prepared.shape[:2]) < minimum:
        raise ImageTooSmallError(
            f"{detector} needs images of at least {minimum} x {minimum} pixels{why}; this one is "
            f"{original.shape[1]} x {original.shape[0]} (width x height)"
        )


def npr_residual(images: torch.Tensor) -> torch.Tensor:
    """The neighbouring-pixel residual ``x - up(down(x))`` (nearest neighbour, factor 1/2).

    In every 2 x 2 block the top-left pixel is kept by the down-sampling and copied back over the block,
    so the residual is zero there and holds the differences to it elsewhere. An image that was itself
    made by nearest-neighbour 2x up-sampling has a residual of exactly zero.

    Args:
        images: N x C x H x W float tensor; H and W must be even.

    Returns:
        A tensor of the same shape.

    Example:
        >>> import torch
        >>> small = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> npr_residual(small.repeat_interleave(2, 2).repeat_interleave(2, 3)).abs().max().item()
        0.0
    """
    height, width = images.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"npr_residual needs even sizes, got {height} x {width}")
    # The same two calls as the authors' code: recompute_scale_factor=True makes the down-sampling read
    # the source pixel floor(2 * i), and the up-sampling floor(i / 2).
    half = F.interpolate(images, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    restored = F.interpolate(half, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)
    return images - restored


class Bottleneck(nn.Module):
    """ResNet's bottleneck block (1x1 -> 3x3 -> 1x1, expansion 4) with the stride on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_channels, width, stride)]
    layers += [Bottleneck(width * Bottleneck.expansion, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class NPRNet(nn.Module):
    """The NPR classifier: normalised N x 3 x H x W images (H, W even) -> N x 1 logits of "generated".

    Parameter names equal those of the authors' model, so their state_dict loads unchanged.

    Example:
        >>> import torch
        >>> NPRNet()(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 1])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, blocks=3, stride=1)
        self.layer2 = _stage(256, 128, blocks=4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, 1)
        # The authors' initialisation (used when training from scratch).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Multiply then divide, in this order, exactly as the reference does.
        x = self.conv1(npr_residual(images) * 2.0 / 3.0)
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))


def default_card() -> ModelCard:
    """The model card of an untrained NPR detector: full resolution, even sizes, ImageNet mean / std."""
    return ModelCard(
        detector="npr",
        version="untrained",
        architecture=ARCHITECTURE,
        preprocessing=Preprocessing(crop_multiple=2),
        notes="randomly initialised; load trained weights with create('npr', weights=...)",
    )


@register_detector("npr", "NPR: neighbouring-pixel relationships of up-sampling (Tan et al., CVPR 2024)")
class NPRDetector(Detector):
    """NPR at full resolution: `predict` for whole images, `predict_map` for a sliding-window map.

    Args:
        device: torch device string, ``"cpu"`` or ``"cuda"``.
        card: the model card (default: `default_card`); loading weights replaces it with theirs.
        min_side: smallest height and width accepted after the crop to even sizes.
        precision: ``"fp32"`` (default) or ``"bf16"`` autocast for inference (faster on CPUs with AMX).
        runtime: ``"torch"`` (default) or ``"onnxruntime"`` (CPU, float32; fastest here: BENCHMARKS.md).

    Example:
        >>> import numpy as np
        >>> detector = NPRDetector()
        >>> float(detector.predict([np.full((40, 50, 3), 128, np.uint8)])[0]) > 0
        True
    """

    name = "npr"

    def __init__(
        self,
        *,
        device: str = "cpu",
        card: ModelCard | None = None,
        min_side: int = MIN_SIDE,
        precision: Precision = "fp32",
        runtime: Runtime = "torch",
    ) -> None:
        super().__init__(
            NPRNet(), card or default_card(), device=device, precision=precision, runtime=runtime
        )
        self.min_side = max(2, min_side)

    def check_input(self, prepared: np.ndarray, original: np.ndarray) -> None:
        """Refuse images under `min_side` on a side after the crop to even sizes (ImageTooSmallError).

        Example:
            >>> import numpy as np
            >>> NPRDetector().predict([np.zeros((20, 48, 3), np.uint8)])
            Traceback (most recent call last):
            ...
            pixelsleuth.detectors.npr.ImageTooSmallError: NPR needs images of at least 32 x 32 pixels ...
        """
        refuse_smaller_than(
            prepared, original, self.min_side, detector="NPR", why=" after cropping to even sizes"
        )

    @torch.inference_mode()
    def predict_map(
        self, image: np.ndarray, *, window: int = 256, stride: int = 128, batch_size: int = 32
    ) -> PatchMap:
        """Per-window probabilities of "generated" from a sliding window over one full-resolution image.

        Windows start at multiples of `stride` and are batched through the network. An image smaller
        than `window` on both sides is one window of the whole image (the map's `window` is then its
        longer side); an image smaller on one side only gets square windows of its shorter side, with
        the stride shrunk to that side if it was longer. Pixels past the last window along the right or
        bottom edge are not covered (NaN in `PatchMap.to_pixels`).

        Args:
            image: RGB uint8 array, H x W x 3, at least `min_side` on each side.
            window: window side in pixels (even, at least `min_side`).
            stride: step between windows in pixels.
            batch_size: most windows per forward pass.

        Returns:
            A `PatchMap` with the window and stride actually used.

        Example:
            >>> import numpy as np
            >>> NPRDetector().predict_map(np.zeros((96, 160, 3), np.uint8), window=64, stride=32).scores.shape
            (2, 4)
        """
        if window < self.min_side or window % 2 or stride < 1:
            raise UsageError(
                f"the NPR window must be even and at least {self.min_side} pixels and the stride at least 1; "
                f"got window {window}, stride {stride}"
            )
        self.model.eval()
        # The map is in the coordinates of the image as given, so only the even-size crop applies here.
        cropped = prepare(image, Preprocessing(crop_multiple=2))
        height, width = cropped.shape[:2]
        self.check_input(cropped, image)
        if height < window and width < window:
            batch = self.normalise(cropped[None])
            scores = torch.sigmoid(self.inference_logits(batch)).cpu().numpy().reshape(1, 1)
            return PatchMap(
                scores=scores, window=max(height, width), stride=stride, image_shape=image.shape[:2]
            )
        if min(height, width) < window:
            window = min(height, width)
            stride = min(stride, window)
        full = self.normalise(cropped[None])[0]
        # 3 x rows x cols x window x window: a view, not a copy.
        windows = full.unfold(1, window, stride).unfold(2, window, stride)
        rows, cols = windows.shape[1:3]
        positions = torch.arange(rows * cols, device=self.device)
        index_rows, index_cols = positions // cols, positions % cols
        scores = np.empty(rows * cols, np.float32)
        for start in range(0, rows * cols, batch_size):
            chunk = slice(start, start + batch_size)
            picked = windows[:, index_rows[chunk], index_cols[chunk]].permute(1, 0, 2, 3).contiguous()
            scores[chunk] = torch.sigmoid(self.inference_logits(picked)).cpu().numpy()
        return PatchMap(
            scores=scores.reshape(rows, cols), window=window, stride=stride, image_shape=image.shape[:2]
        )


def count_parameters(model: nn.Module) -> int:
    """Number of learned parameters (batch-norm running statistics excluded).

    Example:
        >>> count_parameters(NPRNet())
        1437761
    """
    return sum(parameter.numel() for parameter in model.parameters())


__all__ = [
    "ARCHITECTURE",
    "MIN_SIDE",
    "Bottleneck",
    "ImageTooSmallError",
    "NPRDetector",
    "NPRNet",
    "count_parameters",
    "default_card",
    "npr_residual",
    "refuse_smaller_than",
]
