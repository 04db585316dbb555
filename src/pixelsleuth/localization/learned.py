"""A small learned localizer: where in an image the pixels were edited, as a per-pixel probability.

The design follows the ideas of DeFI-Net (dense feature interaction between scales for manipulation
localization, with an auxiliary edge task) at a size that runs on a CPU; it is our own plain-torch
implementation, not a port:

* input: the RGB pixels (ImageNet-normalised) and fixed, not learned, high-pass residuals of the grey
  image (the six kernels of `pixelsleuth.detectors.patchnet.high_pass_kernels`: first- and second-order
  differences across and down, SRM "KB" 3 x 3 and "KV" 5 x 5), truncated at +-`TRUNCATION` grey levels;
  9 channels in all;
* encoder: four stages at 1/2, 1/4, 1/8 and 1/16 of the resolution (`WIDTHS` channels), each a strided
  3 x 3 convolution, the last three followed by one more 3 x 3 convolution (batch norm + ReLU);
* dense interaction: each decoder step (at 1/8, 1/4 and 1/2, `DECODER` channels) takes *every* encoder
  stage through its own 1 x 1 projection (at that stage's scale, so it is cheap), resizes them to its
  scale and sums them with the projected previous step, then applies batch norm, ReLU and a 3 x 3
  convolution (a sum rather than a concatenation keeps the 1/2-scale step light on a CPU);
* two 1 x 1 heads on the last (1/2) decoder step: the manipulation mask and its edge (the mask's
  boundary, trained as an auxiliary task); logits are upsampled bilinearly to the input size.

`learned_map` runs the network at full resolution (never downscaled) in overlapping tiles of `TILE`
pixels blended with ramped weights, so memory stays bounded on large images. Weights live in
``localization/weights/localizer.safetensors`` with the model card ``localizer.json`` beside them
(training command, data and measured numbers); `load_localizer` raises `MissingLocalizerWeightsError`
when they are absent.

Example:
    >>> import numpy as np
    >>> model = Localizer()  # random weights; load_localizer() gives the trained ones
    >>> result = learned_map(np.zeros((40, 50, 3), np.uint8), model)
    >>> result.map.shape, result.method
    ((40, 50), 'learned')
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixelsleuth.detectors.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, card_path_for
from pixelsleuth.detectors.patchnet import high_pass_kernels
from pixelsleuth.detectors.runtime import inference_model
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.localization.record import ForensicMap, check_rgb, strongest_region

METHOD = "learned"
WIDTHS = (8, 16, 32, 48)  # encoder stages at 1/2, 1/4, 1/8, 1/16
DECODER = (24, 16, 8)  # decoder steps at 1/8, 1/4, 1/2
TRUNCATION = 3.0
TILE = 512
OVERLAP = 64
MULTIPLE = 16  # the encoder halves the size four times
MINIMUM = 16
TOP_FRACTION = 0.01  # the image score is the mean of the highest 1 % of the map
WEIGHTS = Path(__file__).parent / "weights" / "localizer.safetensors"


class MissingLocalizerWeightsError(PixelsleuthError):
    """The learned localizer's weights file is not there."""

    type = "missing_localizer_weights"


class IncompatibleLocalizerWeightsError(PixelsleuthError):
    """The file exists but is not readable, or its tensors do not fit the `Localizer` architecture."""

    type = "incompatible_localizer_weights"


class Residuals(nn.Module):
    """RGB normalised to ImageNet statistics plus truncated high-pass residuals of the grey image.

    N x 3 x H x W float pixels in [0, 255] -> N x 9 x H x W. The kernels are a non-persistent buffer.

    Example:
        >>> Residuals()(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 9, 8, 8])
    """

    def __init__(self, truncation: float = TRUNCATION) -> None:
        super().__init__()
        self.register_buffer("kernels", high_pass_kernels().unsqueeze(1), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.truncation = truncation
        self.out_channels = 3 + self.kernels.shape[0]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        grey = (0.299 * pixels[:, 0:1] + 0.587 * pixels[:, 1:2] + 0.114 * pixels[:, 2:3]).float()
        residual = F.conv2d(F.pad(grey, (2, 2, 2, 2), mode="reflect"), self.kernels)
        residual = residual.clamp(-self.truncation, self.truncation) / self.truncation
        return torch.cat([(pixels - self.mean) / self.std, residual], dim=1)


def _conv(in_channels: int, out_channels: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Localizer(nn.Module):
    """Pixels -> (mask logits, edge logits), each N x 1 x H x W; H and W multiples of 16.

    Example:
        >>> mask, edge = Localizer()(torch.zeros(1, 3, 64, 48))
        >>> mask.shape, edge.shape
        (torch.Size([1, 1, 64, 48]), torch.Size([1, 1, 64, 48]))
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS, decoder: tuple[int, ...] = DECODER) -> None:
        super().__init__()
        if len(decoder) != len(widths) - 1:
            raise ValueError(f"{len(widths)} stages need {len(widths) - 1} decoder widths, got {decoder}")
        self.inputs = Residuals()
        stages: list[nn.Module] = []
        in_channels = self.inputs.out_channels
        for index, width in enumerate(widths):
            layers = [_conv(in_channels, width, stride=2)] + ([_conv(width, width)] if index else [])
            stages.append(nn.Sequential(*layers))
            in_channels = width
        self.stages = nn.ModuleList(stages)
        # Dense interaction: decoder step `s` (at the scale of stage len-2-s) gets every stage through its
        # own 1 x 1 projection, taken at that stage's scale, resized and summed with the previous step.
        self.project = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(width, out, 1, bias=False) for width in widths) for out in decoder
        )
        self.carry = nn.ModuleList(
            nn.Conv2d(decoder[step - 1], decoder[step], 1, bias=False) for step in range(1, len(decoder))
        )
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(out), nn.ReLU(inplace=True), _conv(out, out)) for out in decoder
        )
        self.mask_head = nn.Conv2d(decoder[-1], 1, 1)
        self.edge_head = nn.Conv2d(decoder[-1], 1, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Start from "mostly genuine" so early training does not flag everything.
        for head, bias in ((self.mask_head, -2.0), (self.edge_head, -3.0)):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, bias)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = pixels.shape[-2:]
        if height % MULTIPLE or width % MULTIPLE:
            raise ValueError(f"the localizer needs sides in multiples of {MULTIPLE}, got {height} x {width}")
        features = []
        current = self.inputs(pixels)
        for stage in self.stages:
            current = stage(current)
            features.append(current)
        previous: torch.Tensor | None = None
        for step, (projections, fuse) in enumerate(zip(self.project, self.fuse, strict=True)):
            size = features[len(features) - 2 - step].shape[-2:]
            parts = [project(feature) for project, feature in zip(projections, features, strict=True)]
            if previous is not None:
                parts.append(self.carry[step - 1](previous))
            total = torch.zeros((), dtype=parts[0].dtype)
            for part in parts:
                total = total + (part if part.shape[-2:] == size else _resize(part, size))
            previous = fuse(total)
        assert previous is not None
        mask = _resize(self.mask_head(previous), (height, width))
        edge = _resize(self.edge_head(previous), (height, width))
        return mask, edge


def _resize(tensor: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)


def count_parameters(model: nn.Module) -> int:
    """Learned parameters (batch-norm statistics and fixed kernels excluded).

    Example:
        >>> count_parameters(Localizer())
        66666
    """
    return sum(parameter.numel() for parameter in model.parameters())


def architecture_text() -> str:
    return (
        f"Localizer (DeFI-Net-inspired): RGB + 6 fixed high-pass residuals of grey (truncated at "
        f"{TRUNCATION:g}); encoder stages {WIDTHS} at 1/2..1/16 (strided conv 3x3 [+ conv 3x3], BN, ReLU); "
        f"dense interaction: every stage projected (1x1) to each decoder step's width {DECODER}, resized and "
        f"summed with the previous step, then BN-ReLU-conv 3x3 (steps at 1/8, 1/4, 1/2); mask and edge "
        f"1x1 heads at 1/2, bilinear to full size; {count_parameters(Localizer())} "
        f"parameters; inference in {TILE}-pixel tiles with {OVERLAP}-pixel overlap at full resolution"
    )


def load_localizer(path: str | Path | None = None) -> Localizer:
    """The trained localizer in eval mode (default: the weights embedded in the package).

    Raises:
        MissingLocalizerWeightsError: no file at `path`.
        IncompatibleLocalizerWeightsError: the file is unreadable or does not fit the architecture.
    """
    from safetensors.torch import load_file

    weights = Path(path) if path is not None else WEIGHTS
    if not weights.is_file():
        raise MissingLocalizerWeightsError(
            f"the learned localizer has no weights at {weights}; train them with `pixelsleuth "
            f"train-localizer --output {weights}` or pass the path of a trained localizer.safetensors"
        )
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types on damaged files
        raise IncompatibleLocalizerWeightsError(
            f"{weights} is not a readable safetensors file: {exc}"
        ) from None
    model = Localizer()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise IncompatibleLocalizerWeightsError(
            f"the weights in {weights} do not fit the localizer architecture: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval()


_CACHE: dict[tuple[str, int], Localizer] = {}


def _embedded() -> Localizer:
    """The embedded localizer, loaded once per version of the file (its modification time)."""
    key = (str(WEIGHTS), WEIGHTS.stat().st_mtime_ns if WEIGHTS.is_file() else 0)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load_localizer()
    return _CACHE[key]


def load_card(path: str | Path | None = None) -> ModelCard | None:
    """The model card beside the weights, or None when there is none."""
    card = card_path_for(Path(path) if path is not None else WEIGHTS)
    return ModelCard.load(card) if card.is_file() else None


def save_localizer(model: Localizer, path: str | Path, card: ModelCard) -> None:
    """Write the weights (safetensors, via a temporary name) and the card beside them."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.safetensors")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(partial))
    partial.replace(path)
    card.save(card_path_for(path))


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def _ramp(length: int, start: int, total: int, overlap: int) -> np.ndarray:
    """1-D blend weights of a tile: ramping up over the overlap on sides that border another tile."""
    weights = np.ones(length, np.float32)
    if overlap <= 0:
        return weights
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    count = min(overlap, length)
    if start > 0:
        weights[:count] = np.minimum(weights[:count], ramp[:count])
    if start + length < total:
        weights[-count:] = np.minimum(weights[-count:], ramp[:count][::-1])
    return weights


def _padded(tile: np.ndarray) -> tuple[torch.Tensor, int, int]:
    height, width = tile.shape[:2]
    pad_bottom, pad_right = (-height) % MULTIPLE, (-width) % MULTIPLE
    tensor = torch.from_numpy(np.array(tile, dtype=np.float32)).permute(2, 0, 1)[None]
    if pad_bottom or pad_right:
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        tensor = F.pad(tensor, (0, pad_right, 0, pad_bottom), mode=mode)
    return tensor.contiguous(memory_format=torch.channels_last), height, width


@torch.inference_mode()
def predict_probabilities(
    image: np.ndarray, model: Localizer, *, tile: int = TILE, overlap: int = OVERLAP
) -> np.ndarray:
    """H x W float32 probability of "edited" for every pixel, from overlapping full-resolution tiles."""
    if overlap >= tile:
        raise ValueError(f"the tile overlap ({overlap}) must be smaller than the tile ({tile})")
    model = inference_model(model)  # batch norm folded, channels-last: 2-3x on CPU
    height, width = image.shape[:2]
    if height <= tile and width <= tile:
        tensor, _, _ = _padded(image)
        logits, _ = model(tensor)
        return torch.sigmoid(logits[0, 0, :height, :width]).numpy().astype(np.float32)
    total = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    for top in _starts(height, tile, overlap):
        for left in _starts(width, tile, overlap):
            piece = image[top : top + tile, left : left + tile]
            tensor, rows, cols = _padded(piece)
            logits, _ = model(tensor)
            probability = torch.sigmoid(logits[0, 0, :rows, :cols]).numpy()
            blend = np.outer(_ramp(rows, top, height, overlap), _ramp(cols, left, width, overlap))
            total[top : top + rows, left : left + cols] += probability * blend
            weight[top : top + rows, left : left + cols] += blend
    return total / weight


def image_score(heat: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Mean of the highest `fraction` of the map: high when any part of the image is flagged.

    Example:
        >>> image_score(np.r_[np.zeros(990), np.ones(10)].reshape(10, 100))
        1.0
    """
    flat = heat.ravel()
    count = max(1, math.ceil(fraction * flat.size))
    return float(np.partition(flat, flat.size - count)[flat.size - count :].mean())


def learned_map(
    image: np.ndarray, model: Localizer | None = None, *, tile: int = TILE, overlap: int = OVERLAP
) -> ForensicMap:
    """The learned localizer's map of an RGB image (model: default `load_localizer()`).

    Raises:
        LocalizationInputError: not an RGB uint8 array, or a side under 16 pixels.
        MissingLocalizerWeightsError: no model given and no embedded weights.
    """
    array = check_rgb(image, minimum=MINIMUM, method="The learned localizer")
    model = model if model is not None else _embedded()
    heat = predict_probabilities(array, model, tile=tile, overlap=overlap)
    score = image_score(heat)
    region = strongest_region(heat, 0.5)
    flagged = float((heat >= 0.5).mean())
    if region is None:
        reading = (
            f"The learned localizer marks no region as edited (its highest values average {score:.2f}, "
            f"under the 0.5 it needs)."
        )
    else:
        reading = (
            f"The learned localizer marks {region.words()} as likely edited ({100 * flagged:.1f} % of the "
            f"image at or above 0.5; mean {region.mean:.2f} inside)."
        )
    return ForensicMap(
        METHOD,
        heat,
        score,
        reading,
        region,
        {"flagged_fraction": flagged, "tile": tile, "overlap": overlap, "top_fraction": TOP_FRACTION},
    )


__all__ = [
    "IncompatibleLocalizerWeightsError",
    "Localizer",
    "MissingLocalizerWeightsError",
    "architecture_text",
    "count_parameters",
    "image_score",
    "learned_map",
    "load_card",
    "load_localizer",
    "predict_probabilities",
    "save_localizer",
]
