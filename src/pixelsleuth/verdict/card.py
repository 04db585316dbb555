"""The verdict card: how evidence becomes a calibrated probability, and where that turns into a verdict.

A card (JSON, format ``pixelsleuth.verdict/1``) holds
- `weights`: how far each provenance source's stated strength is trusted (from `pixelsleuth assess`'s
  ranking: a source that was often wrong where it spoke counts for less);
- `calibration`: Platt scaling of the combined evidence, fitted on whole images held apart from every
  detector's training (`pixelsleuth fit-verdict`);
- two operating points on the calibrated probability: `threshold`, at and above which the image is
  called not authentic (chosen for a stated false-positive rate on the held-apart genuine photos), and
  `authentic_below`, under which it is called authentic (chosen so that at most a stated share of the
  held-apart generated images would be). Between them the verdict is "inconclusive".
The genuine and generated images' probabilities are kept, so another operating point can be chosen
later (`--operating-point fpr=0.5%`) on the same images.

Example:
    >>> card = VerdictCard.identity()
    >>> card.operating_point()["label"]
    'threshold=0.5 (no verdict card)'
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pixelsleuth.detectors.calibration import PlattCalibration
from pixelsleuth.errors import UsageError
from pixelsleuth.verdict.stack import threshold_for_fpr

FORMAT = "pixelsleuth.verdict/1"
DEFAULT_FPR = 0.01
DEFAULT_MISS_RATE = 0.05  # share of held-apart generated images that may be called authentic


def default_card_path() -> Path:
    """The verdict card shipped inside the package."""
    return Path(str(resources.files("pixelsleuth.verdict") / "weights" / "verdict.json"))


@dataclass(frozen=True)
class VerdictCard:
    """See the module docstring."""

    calibration: PlattCalibration
    threshold: float
    authentic_below: float
    target_fpr: float | None  # None when the threshold was given by the user
    measured_fpr: float  # share of the held-apart genuine photos at or above `threshold`
    miss_rate: float  # target share of held-apart generated images under `authentic_below`
    measured_miss_rate: float
    weights: dict[str, float] = field(default_factory=dict)
    real_probabilities: tuple[float, ...] = ()
    fake_probabilities: tuple[float, ...] = ()
    fitted_on: str = ""
    reproduce: tuple[str, ...] = ()
    measured: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def identity(cls) -> VerdictCard:
        """No calibration and a 0.5 threshold: what applies when no card is available."""
        return cls(PlattCalibration(1.0, 0.0, 0), 0.5, 0.0, None, math.nan, 0.0, math.nan)

    @property
    def is_identity(self) -> bool:
        return self.calibration.n == 0

    def calibrate(self, raw: float) -> float:
        """Calibrated P(not authentic) from the combined evidence's raw probability."""
        return float(self.calibration(np.array([raw]))[0])

    def weight(self, source: str) -> float:
        """How far a source's stated strength is trusted (1 for sources the ranking did not measure)."""
        return float(self.weights.get(source, 1.0))

    def operating_point(self) -> dict[str, Any]:
        """What every result records about the operating point it used."""
        if self.is_identity:
            label = f"threshold={self.threshold:g} (no verdict card)"
        elif self.target_fpr is None:
            label = f"threshold={self.threshold:.4f}"
        else:
            label = f"fpr={self.target_fpr:g} (threshold {self.threshold:.4f})"
        return {
            "label": label,
            "threshold": round(self.threshold, 6),
            "authentic_below": round(self.authentic_below, 6),
            "target_fpr": self.target_fpr,
            "measured_fpr": None if math.isnan(self.measured_fpr) else round(self.measured_fpr, 6),
            "miss_rate": self.miss_rate,
            "n_real": len(self.real_probabilities),
            "n_generated": len(self.fake_probabilities),
            "fitted_on": self.fitted_on,
        }

    def at_fpr(self, fpr: float) -> VerdictCard:
        """The same card with its threshold set for another false-positive rate on the same photos."""
        if not self.real_probabilities:
            raise UsageError(
                "the verdict card keeps no genuine-photo scores to set another operating point on"
            )
        real = np.asarray(self.real_probabilities)
        threshold = threshold_for_fpr(real, fpr)
        return replace(
            self,
            threshold=threshold,
            authentic_below=min(self.authentic_below, threshold),
            target_fpr=fpr,
            measured_fpr=float(np.mean(real >= threshold)),
        )

    def at_threshold(self, threshold: float) -> VerdictCard:
        """A threshold chosen by the user; its false-positive rate is measured on the card's photos."""
        real = np.asarray(self.real_probabilities)
        measured = float(np.mean(real >= threshold)) if real.size else math.nan
        return replace(
            self,
            threshold=threshold,
            authentic_below=min(self.authentic_below, threshold),
            target_fpr=None,
            measured_fpr=measured,
        )

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["calibration"] = self.calibration.to_dict()
        for key in ("real_probabilities", "fake_probabilities", "reproduce"):
            record[key] = list(record[key])
        return {"format": FORMAT, **record}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> VerdictCard:
        if record.get("format") != FORMAT:
            raise ValueError(f"expected format {FORMAT!r}, got {record.get('format')!r}")
        return cls(
            calibration=PlattCalibration.from_dict(record["calibration"]),
            threshold=float(record["threshold"]),
            authentic_below=float(record["authentic_below"]),
            target_fpr=record.get("target_fpr"),
            measured_fpr=float(record["measured_fpr"]),
            miss_rate=float(record["miss_rate"]),
            measured_miss_rate=float(record["measured_miss_rate"]),
            weights={str(key): float(value) for key, value in record.get("weights", {}).items()},
            real_probabilities=tuple(record.get("real_probabilities", ())),
            fake_probabilities=tuple(record.get("fake_probabilities", ())),
            fitted_on=record.get("fitted_on", ""),
            reproduce=tuple(record.get("reproduce", ())),
            measured=dict(record.get("measured", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path | None = None) -> VerdictCard:
        """Read a card (the shipped one by default).

        Raises:
            UsageError: the file is missing or is not a verdict card.
        """
        path = Path(path) if path is not None else default_card_path()
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"the verdict card {path} cannot be read ({exc})") from None


def set_operating_points(
    card: VerdictCard, real: np.ndarray, fake: np.ndarray, *, fpr: float, miss_rate: float
) -> VerdictCard:
    """The card with both operating points chosen on these held-apart probabilities."""
    real = np.sort(np.asarray(real, np.float64))
    fake = np.sort(np.asarray(fake, np.float64))
    threshold = threshold_for_fpr(real, fpr)
    allowed = math.floor(miss_rate * fake.size)  # generated images that may fall under the bar
    authentic_below = float(fake[allowed]) if allowed < fake.size else threshold
    authentic_below = min(authentic_below, threshold)
    return replace(
        card,
        threshold=threshold,
        authentic_below=authentic_below,
        target_fpr=fpr,
        measured_fpr=float(np.mean(real >= threshold)),
        miss_rate=miss_rate,
        measured_miss_rate=float(np.mean(fake < authentic_below)) if fake.size else math.nan,
        real_probabilities=tuple(float(v) for v in real),
        fake_probabilities=tuple(float(v) for v in fake),
    )
