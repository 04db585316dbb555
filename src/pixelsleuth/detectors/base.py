"""What every learned detector is: a torch model plus its model card, behind one predict()."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pixelsleuth.detectors.card import ModelCard, Preprocessing, card_path_for
from pixelsleuth.detectors.runtime import (
    PRECISIONS,
    RUNTIMES,
    OnnxRunner,
    Precision,
    Runtime,
    inference_model,
)
from pixelsleuth.errors import PixelsleuthError, UsageError


class IncompatibleWeightsError(PixelsleuthError):
    type = "incompatible_weights"


@dataclass(frozen=True)
class PatchMap:
    """Per-window probabilities of "generated" from a sliding window over one image.

    ``scores[i, j]`` belongs to the window whose top-left corner is ``(i * stride, j * stride)``.
    """

    scores: np.ndarray  # rows x cols, float32
    window: int
    stride: int
    image_shape: tuple[int, int]

    def to_pixels(self) -> np.ndarray:
        """The map spread back over the image: each pixel gets the mean of the windows covering it."""
        height, width = self.image_shape
        total = np.zeros((height, width), np.float32)
        count = np.zeros((height, width), np.float32)
        for i, j in np.ndindex(self.scores.shape):
            top, left = i * self.stride, j * self.stride
            total[top : top + self.window, left : left + self.window] += self.scores[i, j]
            count[top : top + self.window, left : left + self.window] += 1
        return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)


def prepare(image: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Apply the size steps of `preprocessing` to one RGB uint8 image (no copy when none apply)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"expected an H x W x 3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}"
        )
    if preprocessing.resize is not None:
        height, width = image.shape[:2]
        scale = preprocessing.resize / min(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if preprocessing.center_crop is not None:
        side = preprocessing.center_crop
        height, width = image.shape[:2]
        top, left = max(0, (height - side) // 2), max(0, (width - side) // 2)
        image = image[top : top + side, left : left + side]
    multiple = preprocessing.crop_multiple
    if multiple > 1:
        height, width = image.shape[:2]
        image = image[: height - height % multiple, : width - width % multiple]
    return image


class Detector:
    """A learned detector: `model` maps a normalised N x 3 x H x W float tensor to N logits.

    Subclasses build the model and may override `predict_map`. Register them with
    ``@register_detector("name")`` so that ``pixelsleuth.detectors.create("name")`` finds them.
    """

    name: str = "detector"

    def __init__(
        self,
        model: torch.nn.Module,
        card: ModelCard,
        *,
        device: str = "cpu",
        precision: Precision = "fp32",
        runtime: Runtime = "torch",
    ) -> None:
        if precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if runtime not in RUNTIMES:
            raise UsageError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if runtime == "onnxruntime" and (precision != "fp32" or torch.device(device).type != "cpu"):
            raise UsageError("the onnxruntime runtime runs float32 on the CPU only")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.trained = False
        self.precision: Precision = precision
        self.runtime: Runtime = runtime
        self._fast: tuple[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] | None = None

    @property
    def preprocessing(self) -> Preprocessing:
        return self.card.preprocessing

    def normalise(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """N x H x W x 3 uint8 pixels (array, or a DataLoader's tensor) -> the normalised N x 3 x H x W
        float batch on the device."""
        if isinstance(pixels, np.ndarray):
            pixels = torch.from_numpy(np.ascontiguousarray(pixels))
        batch = pixels.to(self.device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.preprocessing.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocessing.std, device=self.device).view(1, 3, 1, 1)
        return (batch - mean) / std

    def check_input(self, prepared: np.ndarray, original: np.ndarray) -> None:
        """Raise a typed error when a prepared image cannot be scored (e.g. too small); default: accept."""

    def to_tensor(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size RGB uint8 images (after preprocessing) -> one normalised float batch on the device."""
        prepared = [prepare(image, self.preprocessing) for image in images]
        shapes = {image.shape for image in prepared}
        if len(shapes) != 1:
            raise ValueError(f"to_tensor needs images of one size after preprocessing, got {sorted(shapes)}")
        return self.normalise(np.stack(prepared))

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of `model` as it is (training mode, gradients and all)."""
        return self.model(batch).reshape(-1)

    def inference_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Inference logits: batch norm folded, channels-last, bf16 autocast if asked for; or ONNX Runtime.

        The fast copy of the network is rebuilt whenever a weight of `model` changed (in-place updates
        bump a tensor's version counter), so training between calls never leaves it stale.
        """
        versions = tuple(tensor._version for tensor in self.model.state_dict(keep_vars=True).values())
        if self._fast is None or self._fast[0] != versions:
            runner = OnnxRunner(self.model) if self.runtime == "onnxruntime" else inference_model(self.model)
            self._fast = (versions, runner)
        if self.runtime == "onnxruntime":
            return self._fast[1](batch)
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self._fast[1](batch).reshape(-1).float()

    @torch.inference_mode()
    def predict(self, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """Probability that each image is generated, in input order (images may differ in size).

        Images of the same size after preprocessing share a batch.

        Example:
            >>> det.predict([np.zeros((64, 64, 3), np.uint8)])  # doctest: +SKIP
            array([0.49], dtype=float32)
        """
        self.model.eval()
        prepared = [prepare(image, self.preprocessing) for image in images]
        for ready, original in zip(prepared, images, strict=True):
            self.check_input(ready, original)
        out = np.empty(len(images), np.float32)
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, ready in enumerate(prepared):
            by_shape[ready.shape].append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = self.normalise(np.stack([prepared[i] for i in chunk]))
                out[chunk] = torch.sigmoid(self.inference_logits(batch)).cpu().numpy()
        return out

    def predict_map(self, image: np.ndarray, *, window: int = 256, stride: int = 128) -> PatchMap | None:
        """A spatial map of window probabilities; None for detectors that have none."""
        return None

    def load_weights(self, path: str | Path) -> None:
        """Load safetensors weights (strictly: every key must match) and the model card beside them."""
        try:
            state = load_file(str(path), device=str(self.device))
        except Exception as exc:  # safetensors raises its own error types on damaged files
            raise IncompatibleWeightsError(f"{path} is not a readable safetensors file: {exc}") from None
        try:
            self.model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise IncompatibleWeightsError(
                f"the weights in {path} do not fit the {self.name} architecture: {str(exc).splitlines()[0]}"
            ) from None
        card_path = card_path_for(path)
        if card_path.is_file():
            try:
                self.card = ModelCard.load(card_path)
            except (ValueError, TypeError, KeyError) as exc:
                raise IncompatibleWeightsError(f"the model card {card_path} cannot be read: {exc}") from None
        self.model.eval()
        self.trained = True

    def save(self, path: str | Path, card: ModelCard | None = None) -> None:
        """Write the weights as safetensors and the model card as JSON beside them."""
        if card is not None:
            self.card = card
        state = {key: value.detach().contiguous().cpu() for key, value in self.model.state_dict().items()}
        save_file(state, str(path))
        self.card.save(card_path_for(path))
