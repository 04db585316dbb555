"""Model cards: what a set of weights is, how it was trained, and what it measured."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a detector turns RGB uint8 pixels into its input tensor.

    Pixels are scaled to [0, 1], normalised with `mean` / `std`; `crop_multiple` crops the last rows
    and columns so both sides are a multiple of it (NPR needs even sizes); `resize` / `center_crop`
    (None = keep full resolution) apply before normalisation.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_multiple: int = 1
    resize: int | None = None
    center_crop: int | None = None


@dataclass
class Metric:
    """One measured number, with the exact command that measured it."""

    name: str  # e.g. "AP", "ROC-AUC"
    value: float
    dataset: str  # what it was measured on
    command: str


@dataclass
class ModelCard:
    """The pretrained configuration of a detector (timm's pretrained_cfg, with provenance)."""

    detector: str  # registry name, e.g. "npr"
    version: str
    architecture: str
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    training_data: str = ""
    training_command: str = ""
    metrics: list[Metric] = field(default_factory=list)
    license: str = "Apache-2.0"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelCard:
        record = dict(record)
        pre = record.pop("preprocessing", {}) or {}
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(pre[key])
        metrics = [Metric(**item) for item in record.pop("metrics", []) or []]
        return cls(preprocessing=Preprocessing(**pre), metrics=metrics, **record)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        return cls.from_dict(json.loads(Path(path).read_text()))


def card_path_for(weights: str | Path) -> Path:
    """The model card that sits beside a weights file: ``model.safetensors`` -> ``model.json``."""
    return Path(weights).with_suffix(".json")
