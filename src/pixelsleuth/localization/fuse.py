"""One localization answer from many maps: a fused map, regions with a confidence each, and a calibrated
image-level probability that the image was manipulated.

A fusion card (JSON, ``pixelsleuth.localization-fusion/1``) holds two logistic models fitted by
`fit_fusion` on manipulated images with masks and on genuine photos:

- **image level**: each map's score and whether its own false-alarm control let it name a region,
  standardised, give the probability that the image was manipulated. The card's operating point is the
  probability threshold that flags a stated share of held-apart genuine photos (`target_fpr`).
- **pixel level**: each map's value at a pixel gives the probability that the pixel was manipulated
  (the fused map).

Regions are reported only for an image whose probability passes the operating point: a genuine photo
that clears it gets an empty mask, whatever its maps show. Each region is a connected part of the fused
map above 0.5 (or, when no pixel reaches 0.5, above half the map's maximum), with its mean fused value
as confidence and the maps that agree inside it. Maps with their own false-alarm control
(`CONTROLLED_MAPS`: copy-move's verified copy, the JPEG maps' a-contrario regions) also report their
region as it is, listed first: the fused map can dilute a precise, controlled finding into a broad one.

Example:
    >>> import numpy as np
    >>> from pixelsleuth.localization.record import ForensicMap
    >>> heat = np.zeros((32, 32), np.float32); heat[8:16, 8:24] = 1.0
    >>> card = LocalizationFusion.uniform(["ela"])
    >>> found = fuse_maps([ForensicMap("ela", heat, 0.9, "...")], card, (32, 32))
    >>> found.manipulated, [region.region.to_dict() for region in found.regions]
    (True, [{'left': 8, 'top': 8, 'right': 24, 'bottom': 16}])
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from pixelsleuth.errors import UsageError
from pixelsleuth.localization.record import ForensicMap, Region

FORMAT = "pixelsleuth.localization-fusion/1"
# Maps whose own region passed a false-alarm control (a-contrario test or verification; measured on
# at most 3 % of genuine photos): their regions are reported as they are, beside the fused map's.
CONTROLLED_MAPS = frozenset(
    {"copy-move", "copy-move-dense", "jpeg-grid", "jpeg-double", "jpeg-ghost", "window-spectral"}
)
MIN_REGION_FRACTION = 0.001  # components smaller than this share of the image are noise, not regions
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_CARD = WEIGHTS_DIR / "localization-fusion.json"


def _sigmoid(value: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(value, -40.0, 40.0)))


def image_features(maps: Sequence[ForensicMap], methods: Sequence[str]) -> np.ndarray:
    """[score, has region] of each method in order; a map that did not run counts as (0, 0)."""
    by_method = {item.method: item for item in maps}
    values: list[float] = []
    for method in methods:
        item = by_method.get(method)
        values += [0.0, 0.0] if item is None else [float(item.score), float(item.region is not None)]
    return np.asarray(values, np.float64)


def pixel_stack(maps: Sequence[ForensicMap], methods: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    """H x W x len(methods) float32 of each method's map (zeros for a map that did not run)."""
    by_method = {item.method: item for item in maps}
    stack = np.zeros((*shape, len(methods)), np.float32)
    for index, method in enumerate(methods):
        item = by_method.get(method)
        if item is not None and item.map.shape == shape:
            stack[..., index] = item.map
    return stack


@dataclass(frozen=True)
class LocalizationFusion:
    """A fitted fusion card; see the module docstring."""

    methods: tuple[str, ...]
    image_weights: tuple[float, ...]  # over standardised image_features
    image_bias: float
    image_mean: tuple[float, ...]
    image_scale: tuple[float, ...]
    pixel_weights: tuple[float, ...]
    pixel_bias: float
    threshold: float  # image probability at or above which the image is called manipulated
    target_fpr: float | None = None
    card: dict[str, Any] = field(default_factory=dict, compare=False)  # provenance, measurements

    @classmethod
    def uniform(cls, methods: Sequence[str]) -> LocalizationFusion:
        """An unfitted stand-in: every map counts alike (for tests and experiments, not for verdicts)."""
        count = len(methods)
        return cls(
            methods=tuple(methods),
            image_weights=tuple([4.0 / count, 0.0] * count),  # the mean score: 0.5 at a mean of 0.5
            image_bias=-2.0,
            image_mean=tuple([0.0] * 2 * count),
            image_scale=tuple([1.0] * 2 * count),
            pixel_weights=tuple([8.0] * count),
            pixel_bias=-4.0,
            threshold=0.5,
        )

    def probability(self, maps: Sequence[ForensicMap]) -> float:
        features = (image_features(maps, self.methods) - self.image_mean) / self.image_scale
        return float(_sigmoid(features @ np.asarray(self.image_weights) + self.image_bias))

    def heat(self, maps: Sequence[ForensicMap], shape: tuple[int, int]) -> np.ndarray:
        stack = pixel_stack(maps, self.methods, shape)
        logits = stack @ np.asarray(self.pixel_weights, np.float32) + np.float32(self.pixel_bias)
        return _sigmoid(logits).astype(np.float32)

    def at_threshold(self, threshold: float) -> LocalizationFusion:
        return replace(self, threshold=float(threshold), target_fpr=None)

    def to_dict(self) -> dict[str, Any]:
        record = {key: value for key, value in asdict(self).items() if key != "card"}
        return {"format": FORMAT, **record, **self.card}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str | None = None) -> LocalizationFusion:
        """Read a card (the embedded default when `path` is None).

        Raises:
            UsageError: the file is missing or is not a localization fusion card.
        """
        path = Path(path) if path is not None else DEFAULT_CARD
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(
                f"no localization fusion card at {path}; fit one with `pixelsleuth fit-localization`"
            ) from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"the localization fusion card {path} cannot be read ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise UsageError(f"{path} is not a localization fusion card (expected format {FORMAT})")
        names = [name for name in cls.__dataclass_fields__ if name != "card"]
        try:
            values = {name: record[name] for name in names if name in record}
            for name in ("methods", "image_weights", "image_mean", "image_scale", "pixel_weights"):
                values[name] = tuple(values[name])
            extra = {key: value for key, value in record.items() if key not in names and key != "format"}
            fusion = cls(**values, card=extra)
        except (KeyError, TypeError) as exc:
            raise UsageError(f"the localization fusion card {path} is incomplete ({exc})") from None
        if len(fusion.image_weights) != 2 * len(fusion.methods) or len(fusion.pixel_weights) != len(
            fusion.methods
        ):
            raise UsageError(f"the localization fusion card {path} has weights that do not match its maps")
        return fusion


@dataclass(frozen=True)
class LocalizedRegion:
    """A region of the fused map: its box, its mean fused value, and the maps that agree inside it."""

    region: Region
    confidence: float
    methods: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.region.to_dict(),
            "confidence": round(self.confidence, 4),
            "methods": list(self.methods),
        }


@dataclass
class Localization:
    """Where an image was manipulated, if anywhere, and how sure we are."""

    heat: np.ndarray  # H x W float32 fused map in [0, 1]
    mask: np.ndarray  # H x W bool: the reported manipulated pixels (empty unless `manipulated`)
    regions: list[LocalizedRegion]
    probability: float  # calibrated: the image was manipulated
    threshold: float
    maps: list[ForensicMap]
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def manipulated(self) -> bool:
        return self.probability >= self.threshold

    @property
    def reading(self) -> str:
        if not self.manipulated:
            return (
                f"No manipulated region found: the maps' combined probability {self.probability:.2f} is "
                f"below the operating point {self.threshold:.2f}."
            )
        if not self.regions:
            return (
                f"The maps suggest manipulation (probability {self.probability:.2f}) but agree on no region."
            )
        best = self.regions[0]
        more = f", and {len(self.regions) - 1} more region(s)" if len(self.regions) > 1 else ""
        return (
            f"The region {best.region.words()} was probably manipulated (image probability "
            f"{self.probability:.2f}; {', '.join(best.methods) or 'the fused map'} point there){more}."
        )

    def summary(self) -> dict[str, Any]:
        return {
            "probability": round(self.probability, 4),
            "threshold": round(self.threshold, 4),
            "manipulated": self.manipulated,
            "regions": [region.to_dict() for region in self.regions],
            "maps": {
                item.method: {
                    "score": round(float(item.score), 4),
                    "reading": item.reading,
                    "region": None if item.region is None else item.region.to_dict(),
                }
                for item in self.maps
            },
            "failures": {name: message for name, message in self.failures},
        }


def _regions(heat: np.ndarray, maps: Sequence[ForensicMap]) -> tuple[np.ndarray, list[LocalizedRegion]]:
    peak = float(heat.max(initial=0.0))
    level = 0.5 if peak >= 0.5 else peak / 2
    if peak <= 0.0:
        return np.zeros(heat.shape, bool), []
    labels, _ = ndimage.label(heat >= level)
    minimum = max(16, math.ceil(MIN_REGION_FRACTION * heat.size))
    found: list[LocalizedRegion] = []
    mask = np.zeros(heat.shape, bool)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == index
        if int(inside.sum()) < minimum:
            continue
        mask[box] |= inside
        rows, cols = box
        agreeing = tuple(
            item.method
            for item in maps
            if item.map.shape == heat.shape and float(item.map[box][inside].mean()) >= 0.5
        )
        found.append(
            LocalizedRegion(
                Region(cols.start, rows.start, cols.stop, rows.stop, float(heat[box][inside].mean())),
                float(heat[box][inside].mean()),
                agreeing,
            )
        )
    found.sort(key=lambda item: item.confidence * item.region.area, reverse=True)
    controlled: list[LocalizedRegion] = []
    for item in maps:
        if item.method not in CONTROLLED_MAPS or item.region is None or item.map.shape != heat.shape:
            continue
        box = item.region
        window = (slice(box.top, box.bottom), slice(box.left, box.right))
        inside = item.map[window] >= 0.5
        if int(inside.sum()) < minimum:
            continue
        mask[window] |= inside
        heat[window] = np.maximum(heat[window], np.where(inside, item.map[window], 0.0))
        controlled.append(LocalizedRegion(box, float(item.map[window][inside].mean()), (item.method,)))
    return mask, controlled + found


def fuse_maps(
    maps: Sequence[ForensicMap],
    fusion: LocalizationFusion,
    shape: tuple[int, int],
    failures: Sequence[tuple[str, str]] = (),
) -> Localization:
    """The fused answer from maps already computed (see the module docstring)."""
    heat = fusion.heat(maps, shape)  # _regions may raise it where a controlled map found a region
    probability = fusion.probability(maps)
    if probability >= fusion.threshold:
        mask, regions = _regions(heat, maps)
    else:
        mask, regions = np.zeros(shape, bool), []
    return Localization(heat, mask, regions, probability, fusion.threshold, list(maps), list(failures))


def localize(image: np.ndarray, fusion: LocalizationFusion | None = None) -> Localization:
    """Run the card's maps on an RGB uint8 image and fuse them (the embedded card by default)."""
    from pixelsleuth.localization.methods import run_maps

    fusion = fusion or LocalizationFusion.load()
    maps, failures = run_maps(image, fusion.methods)
    return fuse_maps(maps, fusion, tuple(np.asarray(image).shape[:2]), failures)
