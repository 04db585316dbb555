"""One image in, one Analysis out: intake → evidence → verdict."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pixelsleuth import __version__
from pixelsleuth.analysis import Analysis
from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.errors import PixelsleuthError, UsageError, unexpected
from pixelsleuth.evidence import PIXEL_SOURCES, PROVENANCE_SOURCES, EvidenceSource, load_source
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.hashing import file_sha256
from pixelsleuth.intake import IntakeLimits, LoadedImage, load_image
from pixelsleuth.verdict.card import VerdictCard, default_card_path
from pixelsleuth.verdict.decide import decide
from pixelsleuth.verdict.explain import explain
from pixelsleuth.verdict.stack import Stacker, fused_evidence

if TYPE_CHECKING:
    from pixelsleuth.detectors import Detector


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector and the weights it runs with."""

    name: str
    weights: str

    @classmethod
    def parse(cls, text: str) -> DetectorSpec:
        """``"npr=weights/npr.safetensors"`` -> DetectorSpec("npr", "weights/npr.safetensors")."""
        name, sep, weights = text.partition("=")
        if not sep or not name or not weights:
            raise UsageError(f"expected NAME=WEIGHTS (e.g. npr=npr.safetensors), got {text!r}")
        return cls(name.strip(), weights.strip())

    @property
    def fingerprint(self) -> str:
        """Name plus 12 hex digits of the SHA-256 of the weights and their model card (which holds the
        calibration and preprocessing): results change when either does."""
        digest = hashlib.sha256()
        for path in (Path(self.weights), card_path_for(self.weights)):
            digest.update((file_sha256(path) or "absent").encode())
        return f"{self.name}@{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class OperatingPointChoice:
    """An operating point other than the fusion card's: a false-positive rate or a fixed threshold."""

    fpr: float | None = None
    threshold: float | None = None

    @classmethod
    def parse(cls, text: str) -> OperatingPointChoice:
        """``"fpr=0.5%"``, ``"fpr=0.005"`` or ``"threshold=0.8"``."""
        key, _, value = text.partition("=")
        key, value = key.strip().lower(), value.strip()
        try:
            number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            number = float("nan")
        if key == "fpr" and 0 < number < 1:
            return cls(fpr=number)
        if key == "threshold" and 0 <= number <= 1:
            return cls(threshold=number)
        raise UsageError(f"expected an operating point like fpr=1%, fpr=0.005 or threshold=0.8, got {text!r}")

    @property
    def label(self) -> str:
        return f"fpr={self.fpr:g}" if self.fpr is not None else f"threshold={self.threshold:g}"


def default_fusion_card() -> str | None:
    """The fusion card shipped inside the package, if defaults.json lists one."""
    from pixelsleuth.detectors.defaults import embedded_fusion_card

    card = embedded_fusion_card()
    return None if card is None else str(card)


def default_verdict_card() -> str | None:
    """The verdict card shipped inside the package, if there is one."""
    path = default_card_path()
    return str(path) if path.is_file() else None


def default_detector_specs() -> tuple[DetectorSpec, ...]:
    """The detectors shipped inside the package (see detectors/weights/defaults.json)."""
    from pixelsleuth.detectors.defaults import embedded_detectors

    return tuple(DetectorSpec(name, str(path)) for name, path in embedded_detectors())


@dataclass(frozen=True)
class AnalyzerConfig:
    """What an analysis runs. Anything that changes results must be part of `version`."""

    limits: IntakeLimits = field(default_factory=IntakeLimits)
    sources: tuple[str, ...] = tuple(PROVENANCE_SOURCES) + tuple(PIXEL_SOURCES)
    detectors: tuple[DetectorSpec, ...] = field(default_factory=default_detector_specs)
    # A fusion card (JSON, see verdict/stack.py): stacks the detectors' and the spectral check's scores
    # into one score with an operating point. None: each detector speaks on its own.
    fusion: str | None = field(default_factory=lambda: default_fusion_card())
    # The verdict card (JSON, see verdict/card.py): calibrates the combined evidence and holds the operating
    # point. None: the verdict is the uncalibrated evidence combination.
    verdict: str | None = field(default_factory=lambda: default_verdict_card())
    operating_point: OperatingPointChoice | None = None
    # Where the detectors run ("cpu", "cuda", "cuda:1"). Not part of `version`: the same weights give the
    # same verdicts on any device (scores may differ in the last digits).
    device: str = "cpu"

    @cached_property
    def version(self) -> str:
        """Results are stored per (sha256, version): a different version re-analyses the image."""
        limits = f"limits:{self.limits.max_pixels},{self.limits.max_file_bytes}"  # refusals depend on them
        version = f"pixelsleuth-{__version__}/{limits}/sources:{','.join(self.sources)}"
        if "localization" in self.sources:
            from pixelsleuth.localization.evidence import localization_version

            version += f"/localization:{localization_version()}"
        if self.detectors:
            from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET

            version += "/detectors:" + ",".join(spec.fingerprint for spec in self.detectors)
            version += f"/budget:{DEFAULT_PIXEL_BUDGET.label}"
        if self.fusion is not None:
            version += f"/fusion:{(file_sha256(self.fusion) or 'absent')[:12]}"
        if self.verdict is not None:
            version += f"/verdict:{(file_sha256(self.verdict) or 'absent')[:12]}"
        if self.operating_point is not None and (self.fusion is not None or self.verdict is not None):
            version += f"/operating-point:{self.operating_point.label}"
        return version


def failed_evidence(source: str, exc: Exception) -> Evidence:
    """A source or detector that raised `exc`, as an Evidence item saying it could not run."""
    if isinstance(exc, PixelsleuthError):
        detail = exc.message
    else:  # a bug of ours: the person gets a sentence, the log gets the exception
        logging.getLogger("pixelsleuth").warning("the %s check failed: %r", source, exc)
        detail = "an internal error stopped this check; the other checks still ran (please report it)"
    return Evidence(source=source, finding=f"The {source} check could not run on this image.", detail=detail)


def _load_stacker(config: AnalyzerConfig) -> Stacker | None:
    if config.fusion is None:
        return None
    try:
        stacker = Stacker.load(config.fusion)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"the fusion card {config.fusion} cannot be read ({exc})") from None
    choice = config.operating_point
    if choice is not None and choice.fpr is not None:
        stacker = stacker.at_fpr(choice.fpr)
    elif choice is not None and choice.threshold is not None and config.verdict is None:
        # with a verdict card, a threshold is the verdict's (on its calibrated probability), not the stack's
        stacker = stacker.at_threshold(choice.threshold)
    return stacker


def load_verdict_card(config: AnalyzerConfig) -> VerdictCard:
    """The config's verdict card at its operating point (the identity card when there is none)."""
    card = VerdictCard.identity() if config.verdict is None else VerdictCard.load(config.verdict)
    choice = config.operating_point
    if card.is_identity or choice is None:
        return card
    return card.at_fpr(choice.fpr) if choice.fpr is not None else card.at_threshold(choice.threshold or 0.0)


def _with_fused_score(stacker: Stacker, found: list[Evidence]) -> list[Evidence]:
    """Add the fused score; the scores it stacks stay listed, as information only (counted once)."""
    fused = fused_evidence(stacker, found)
    if fused is None:
        return found
    counted = set(fused.data["inputs"])
    kept = [
        replace(
            item,
            points_to="none",
            strength=0.0,
            detail=(item.detail + " Counted in the fused score.").strip(),
        )
        if item.source in counted and item.points_to != "none"
        else item
        for item in found
    ]
    return [*kept, fused]


class Analyzer:
    """Runs intake, every evidence source, the detectors and the verdict on one image at a time.

    Example:
        >>> analyzer = Analyzer()
        >>> analysis = analyzer.analyze("photo.jpg")  # doctest: +SKIP
        >>> analysis.verdict, analysis.score  # doctest: +SKIP
        ('inconclusive', 0.42)
    """

    def __init__(self, config: AnalyzerConfig | None = None, *, load_detectors: bool = True) -> None:
        """`load_detectors=False` builds everything but the detectors (no torch): for a process that
        runs only the evidence sources, or only fuses and decides (`outputs/engine.py`)."""
        self.config = config or AnalyzerConfig()
        self._sources: list[tuple[str, EvidenceSource]] = [
            (name, load_source(name)) for name in self.config.sources
        ]
        self._detectors: list[Detector] = []
        if self.config.detectors and load_detectors:  # torch is imported only when a detector runs
            from pixelsleuth.detectors import create

            self._detectors = [
                create(spec.name, spec.weights, device=self.config.device) for spec in self.config.detectors
            ]
        self._stacker = _load_stacker(self.config) if self.config.detectors else None
        self.verdict_card = load_verdict_card(self.config)

    @property
    def version(self) -> str:
        return self.config.version

    def evidence(self, image: LoadedImage) -> list[Evidence]:
        """Run every evidence source; a source that fails is reported, never fatal."""
        found = self.source_evidence(image)
        if self._detectors:
            from pixelsleuth.detectors.evidence import detector_evidence
        for detector in self._detectors:
            try:
                found.append(detector_evidence(detector, image.rgb))
            except Exception as exc:  # e.g. an image below the detector's minimum size
                found.append(failed_evidence(f"detector:{detector.name}", exc))
        return self.fuse(found)

    def source_evidence(self, image: LoadedImage) -> list[Evidence]:
        """The evidence sources' findings (provenance, the spectral check …), without the detectors'."""
        found: list[Evidence] = []
        for name, source in self._sources:
            try:
                found.extend(source(image))
            except Exception as exc:  # a bug in one source must not lose the others' findings
                found.append(failed_evidence(name, exc))
        return found

    def fuse(self, found: list[Evidence]) -> list[Evidence]:
        """Add the fused detector score to the sources' and detectors' findings (when there is a stack)."""
        return found if self._stacker is None else _with_fused_score(self._stacker, found)

    def analyze_image(self, image: LoadedImage) -> Analysis:
        return self.conclude(image, self.evidence(image))

    def conclude(self, image: LoadedImage | Analysis, evidence: list[Evidence]) -> Analysis:
        """The verdict, its explanation and the result, from an image's (or a result's) facts and evidence."""
        decision = decide(evidence, self.verdict_card)
        return Analysis(
            path=image.path,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            format=image.format,
            verdict=decision.label,
            score=decision.probability,
            evidence=evidence,
            explanation=explain(evidence, decision, weights=self.verdict_card.weights),
            decided_by=decision.decided_by,
            operating_point=decision.operating_point,
        )

    def analyze(self, source: str | Path) -> Analysis:
        """Analyse one file; failures come back as an Analysis with verdict "error", never raised."""
        path = str(source)
        try:
            image = load_image(source, limits=self.config.limits)
            image.path = path
            return self.analyze_image(image)
        except Exception as exc:  # PixelsleuthError, or a last resort so that a batch goes on
            return self.failed(path, exc)

    def failed(self, path: str, exc: Exception) -> Analysis:
        """The result of a file whose analysis raised `exc`: verdict "error" with a typed error."""
        error = exc if isinstance(exc, PixelsleuthError) else unexpected(exc, "the analysis of this file")
        sha256 = file_sha256(path, max_bytes=self.config.limits.max_file_bytes)
        explanation = f"The image could not be analysed: {error.message}"
        return Analysis(
            path=path, sha256=sha256, verdict="error", error=error.to_dict(), explanation=explanation
        )


def analyze(
    source: str | Path, *, sources: Sequence[str] | None = None, detectors: Sequence[DetectorSpec] = ()
) -> Analysis:
    """Analyse one image file (a convenience for the Python API; build an Analyzer for many files)."""
    config = AnalyzerConfig(
        sources=AnalyzerConfig().sources if sources is None else tuple(sources),
        detectors=default_detector_specs() + tuple(detectors),
    )
    return Analyzer(config).analyze(source)
