"""Turn the authors' released checkpoints into pixelsleuth weights: safetensors plus a model card.

pixelsleuth never downloads weights. A user who has an official checkpoint converts it once::

    pixelsleuth convert npr NPR.pth npr.safetensors

and then loads it with ``create("npr", weights="npr.safetensors")``; the model card ``npr.json`` beside
it records where the weights came from (file name and sha256).

NPR key mapping (official github chuangchuangtan/NPR-DeepfakeDetection, ``networks/resnet.py``) is the
identity, because `pixelsleuth.detectors.npr.NPRNet` uses the same parameter names::

    conv1.weight                                   -> conv1.weight
    bn1.{weight,bias,running_mean,running_var,num_batches_tracked}         -> same
    layer{1,2}.{block}.{conv1,conv2,conv3}.weight  -> same   (layer1: blocks 0-2, layer2: blocks 0-3)
    layer{1,2}.{block}.{bn1,bn2,bn3}.*             -> same
    layer{1,2}.0.downsample.{0.weight,1.*}         -> same
    fc1.{weight,bias}                              -> same

Before the mapping, the converter undoes how checkpoints get saved:

* wrappers: ``{"model": state_dict, ...}`` (the authors' training checkpoints also hold ``optimizer``
  and ``total_steps``) or ``{"state_dict": state_dict, ...}``;
* the ``module.`` prefix that ``torch.nn.DataParallel`` adds to every key.

Keys the cut network does not have are dropped and listed in the card (``extra["dropped_keys"]``): the
authors' training script attaches an unused ``fc`` (Linear 2048 -> 1) to the model it trains from
scratch, and a full ResNet-50 would bring ``layer3`` / ``layer4``. A missing ``num_batches_tracked``
(older PyTorch) is filled with zero; it plays no part at inference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from pixelsleuth.detectors.card import ModelCard, Preprocessing, card_path_for
from pixelsleuth.detectors.npr import ARCHITECTURE, NPRNet
from pixelsleuth.detectors.registry import WeightsNotFoundError
from pixelsleuth.errors import PixelsleuthError, UsageError
from pixelsleuth.hashing import file_sha256

_WRAPPER_KEYS = ("model", "state_dict")
_PARALLEL_PREFIX = "module."
_OPTIONAL_KEY_SUFFIX = "num_batches_tracked"


class CheckpointError(PixelsleuthError):
    """A checkpoint that cannot become weights of the chosen detector."""

    type = "invalid_checkpoint"


class NotACheckpointError(CheckpointError):
    type = "not_a_checkpoint"


class CheckpointKeysError(CheckpointError):
    type = "checkpoint_keys_mismatch"


class CheckpointShapeError(CheckpointError):
    type = "checkpoint_shape_mismatch"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a PyTorch checkpoint safely and return its bare state_dict (tensors only).

    Unwraps ``{"model": ...}`` / ``{"state_dict": ...}`` and removes a ``module.`` prefix. Loading uses
    ``weights_only=True``: a checkpoint that pickles whole Python objects is refused, not executed.

    Args:
        path: a ``.pth`` / ``.pt`` / ``.ckpt`` file written by ``torch.save``.

    Returns:
        Key -> tensor, in the checkpoint's order; entries that are not tensors are left out.

    Raises:
        WeightsNotFoundError: no file at `path`.
        NotACheckpointError: the file is not a checkpoint torch can read safely, or holds no tensors.

    Example:
        >>> state = read_state_dict("NPR.pth")  # doctest: +SKIP
        >>> state["fc1.weight"].shape  # doctest: +SKIP
        torch.Size([1, 512])
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"no checkpoint file at {path}")
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here (pickle, zip, EOF, runtime)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotACheckpointError(
            f"{path.name} is not a PyTorch checkpoint that can be read safely (weights only): {first_line}"
        ) from None
    for _ in range(3):  # wrappers may nest, e.g. {"state_dict": {"model": ...}}
        if isinstance(loaded, Mapping):
            inner = next((loaded[key] for key in _WRAPPER_KEYS if isinstance(loaded.get(key), Mapping)), None)
            if inner is not None:
                loaded = inner
    if not isinstance(loaded, Mapping):
        raise NotACheckpointError(
            f"{path.name} holds a {type(loaded).__name__}, not a state_dict (a mapping of names to tensors)"
        )
    state = {
        str(key).removeprefix(_PARALLEL_PREFIX): value
        for key, value in loaded.items()
        if isinstance(value, torch.Tensor)
    }
    if not state:
        raise NotACheckpointError(f"{path.name} holds no tensors, so it is not a model checkpoint")
    return state


def match_state_dict(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *, detector: str, source: str
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Fit a checkpoint's tensors to the keys, shapes and dtypes a model expects.

    Args:
        state: the checkpoint's tensors (after key mapping).
        expected: the target model's ``state_dict()``.
        detector: registry name, for messages.
        source: file name, for messages.

    Returns:
        ``(matched, dropped, filled)``: the tensors in the model's key order and dtypes, the checkpoint
        keys the model does not use, and the optional keys that were missing and filled with zeros.

    Raises:
        CheckpointKeysError: keys the model needs are missing (a few are named).
        CheckpointShapeError: a tensor's shape differs from the model's.
    """
    missing = [key for key in expected if key not in state and not key.endswith(_OPTIONAL_KEY_SUFFIX)]
    if missing:
        unexpected = [key for key in state if key not in expected]
        hint = f"; keys it has that {detector} does not use: {few(unexpected)}" if unexpected else ""
        raise CheckpointKeysError(
            f"{source} is not a {detector} checkpoint: {len(missing)} of {len(expected)} weights are "
            f"missing, e.g. {few(missing)}{hint}"
        )
    mismatched = [
        f"{key} {tuple(state[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    if mismatched:
        raise CheckpointShapeError(
            f"{source} does not fit the {detector} architecture: {len(mismatched)} tensor(s) have other "
            f"shapes, e.g. {few(mismatched)}"
        )
    matched: dict[str, torch.Tensor] = {}
    filled: list[str] = []
    for key, value in expected.items():
        if key in state:
            matched[key] = state[key].detach().to(dtype=value.dtype).contiguous()
        else:
            matched[key] = torch.zeros_like(value)
            filled.append(key)
    dropped = [key for key in state if key not in expected]
    return matched, dropped, filled


def convert_npr_checkpoint(src: str | Path, dst: str | Path) -> ModelCard:
    """Convert an official NPR checkpoint into ``dst`` (safetensors) and its model card beside it.

    Args:
        src: the authors' checkpoint (e.g. ``NPR.pth``): a raw state_dict, a ``{"model": ...}`` or
            ``{"state_dict": ...}`` wrapper, keys with or without a ``module.`` prefix.
        dst: output weights, ending in ``.safetensors``; the card is written to ``dst`` with ``.json``.

    Returns:
        The model card written beside `dst`; ``card.extra`` lists the dropped and filled keys and the
        source file's name and sha256.

    Raises:
        WeightsNotFoundError: no file at `src`.
        NotACheckpointError: `src` is not a checkpoint torch can read safely.
        CheckpointKeysError: weights NPR needs are missing (another architecture's checkpoint).
        CheckpointShapeError: a tensor's shape differs from NPR's.
        UsageError: `dst` does not end in ``.safetensors``.

    Example:
        >>> card = convert_npr_checkpoint("NPR.pth", "npr.safetensors")  # doctest: +SKIP
        >>> card.extra["dropped_keys"]  # doctest: +SKIP
        []
    """
    src, dst = Path(src), Path(dst)
    if dst.suffix != ".safetensors":
        raise UsageError(f"the output must be a .safetensors file (its model card goes beside it); got {dst}")
    state = read_state_dict(src)  # key mapping: identity (see the module docstring)
    model = NPRNet()
    matched, dropped, filled = match_state_dict(state, model.state_dict(), detector="npr", source=src.name)
    model.load_state_dict(matched, strict=True)  # the final word on whether the weights fit
    card = ModelCard(
        detector="npr",
        version=f"converted from {src.name}",
        architecture=ARCHITECTURE,
        preprocessing=Preprocessing(crop_multiple=2),
        training_data="unknown (converted)",
        license="see the checkpoint's source",
        notes=(
            "converted from an official checkpoint of github chuangchuangtan/NPR-DeepfakeDetection with "
            "`pixelsleuth convert npr`; key mapping: identity"
        ),
        extra={
            "source_file": src.name,
            "source_sha256": file_sha256(src),  # the source was just read, so it is a readable file
            "dropped_keys": dropped,
            "filled_keys": filled,
        },
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(matched, str(dst))
    card.save(card_path_for(dst))
    return card


# One entry per detector with a converter: a new detector is one more line.
CONVERTERS: dict[str, Callable[[Path, Path], ModelCard]] = {
    "npr": convert_npr_checkpoint,
}


def few(items: list[str], count: int = 5) -> str:
    shown = ", ".join(items[:count])
    return shown + (f" and {len(items) - count} more" if len(items) > count else "")


__all__ = [
    "CONVERTERS",
    "CheckpointError",
    "CheckpointKeysError",
    "CheckpointShapeError",
    "NotACheckpointError",
    "convert_npr_checkpoint",
    "match_state_dict",
    "read_state_dict",
]
