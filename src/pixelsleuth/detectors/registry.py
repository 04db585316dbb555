"""The detector registry: one public door, `create(name, weights=...)`, the way timm's create_model works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pixelsleuth.detectors.card import ModelCard, card_path_for
from pixelsleuth.errors import PixelsleuthError

if TYPE_CHECKING:
    from pixelsleuth.detectors.base import Detector

DetectorFactory = Callable[..., "Detector"]
_REGISTRY: dict[str, DetectorFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}


class UnknownDetectorError(PixelsleuthError, KeyError):
    type = "unknown_detector"

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class WeightsNotFoundError(PixelsleuthError, FileNotFoundError):
    type = "weights_not_found"

    def __str__(self) -> str:
        return self.message


def register_detector(name: str, description: str = "") -> Callable[[DetectorFactory], DetectorFactory]:
    """Class or function decorator: make a detector available as ``create(name)``."""

    def decorate(factory: DetectorFactory) -> DetectorFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"a detector named {name!r} is already registered")
        _REGISTRY[name] = factory
        summary = (factory.__doc__ or "").strip().splitlines()
        _DESCRIPTIONS[name] = description or (summary[0] if summary else name)
        return factory

    return decorate


def list_detectors() -> dict[str, str]:
    """Registered detector names and their one-line descriptions."""
    _import_builtin_detectors()
    return dict(sorted(_DESCRIPTIONS.items()))


def create(name: str, weights: str | Path | None = None, *, device: str = "cpu", **kwargs) -> Detector:
    """Build a registered detector, optionally loading weights (safetensors + JSON model card).

    Args:
        name: registry name, e.g. ``"npr"``.
        weights: path to a ``.safetensors`` file; its model card is the ``.json`` beside it.
            None gives a randomly initialised model (for training), marked ``trained = False``.
        device: torch device string, ``"cpu"`` or ``"cuda"``.
        **kwargs: passed to the detector's constructor.

    Example:
        >>> det = create("npr")  # doctest: +SKIP
        >>> det.predict([image]).shape  # doctest: +SKIP
        (1,)
    """
    _import_builtin_detectors()
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownDetectorError(f"no detector named {name!r}; registered detectors: {known}") from None
    if weights is not None and not Path(weights).is_file():
        raise WeightsNotFoundError(
            f"no weights file at {weights}: pixelsleuth never downloads weights; give the path of a "
            f".safetensors file (convert an official checkpoint with `pixelsleuth convert {name} CKPT OUT`)"
        )
    if weights is not None:
        # Constructor arguments the weights were trained with (e.g. a width) travel in their card.
        card_file = card_path_for(weights)
        if card_file.is_file():
            try:
                saved = ModelCard.load(card_file).extra.get("detector_kwargs", {})
            except (ValueError, TypeError, KeyError) as exc:
                raise WeightsNotFoundError(f"the model card {card_file} cannot be read: {exc}") from None
            kwargs = {**saved, **kwargs}
    detector = factory(device=device, **kwargs)
    if weights is not None:
        detector.load_weights(weights)
    return detector


def _import_builtin_detectors() -> None:
    # Importing the modules runs their @register_detector decorators.
    import pixelsleuth.detectors.fsd
    import pixelsleuth.detectors.npr
    import pixelsleuth.detectors.patchnet  # noqa: F401
