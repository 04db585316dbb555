"""One image in, one Analysis out: intake → evidence → verdict."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from pixelsleuth.verdict import fuse

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

    @cached_property
    def version(self) -> str:
        """Results are stored per (sha256, version): a different version re-analyses the image."""
        limits = f"limits:{self.limits.max_pixels},{self.limits.max_file_bytes}"  # refusals depend on them
        version = f"pixelsleuth-{__version__}/{limits}/sources:{','.join(self.sources)}"
        if self.detectors:
            from pixelsleuth.detectors.budget import DEFAULT_PIXEL_BUDGET

            version += "/detectors:" + ",".join(spec.fingerprint for spec in self.detectors)
            version += f"/budget:{DEFAULT_PIXEL_BUDGET.label}"
        return version


def _failed(source: str, exc: Exception) -> Evidence:
    if isinstance(exc, PixelsleuthError):
        detail = exc.message
    else:  # a bug of ours: the person gets a sentence, the log gets the exception
        logging.getLogger("pixelsleuth").warning("the %s check failed: %r", source, exc)
        detail = "an internal error stopped this check; the other checks still ran (please report it)"
    return Evidence(source=source, finding=f"The {source} check could not run on this image.", detail=detail)


class Analyzer:
    """Runs intake, every evidence source, the detectors and the verdict on one image at a time.

    Example:
        >>> analyzer = Analyzer()
        >>> analysis = analyzer.analyze("photo.jpg")  # doctest: +SKIP
        >>> analysis.verdict, analysis.score  # doctest: +SKIP
        ('inconclusive', 0.42)
    """

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config or AnalyzerConfig()
        self._sources: list[tuple[str, EvidenceSource]] = [
            (name, load_source(name)) for name in self.config.sources
        ]
        self._detectors: list[Detector] = []
        if self.config.detectors:  # torch is imported only when a detector runs
            from pixelsleuth.detectors import create

            self._detectors = [create(spec.name, spec.weights) for spec in self.config.detectors]

    @property
    def version(self) -> str:
        return self.config.version

    def evidence(self, image: LoadedImage) -> list[Evidence]:
        """Run every evidence source; a source that fails is reported, never fatal."""
        found: list[Evidence] = []
        for name, source in self._sources:
            try:
                found.extend(source(image))
            except Exception as exc:  # a bug in one source must not lose the others' findings
                found.append(_failed(name, exc))
        if self._detectors:
            from pixelsleuth.detectors.evidence import detector_evidence
        for detector in self._detectors:
            try:
                found.append(detector_evidence(detector, image.rgb))
            except Exception as exc:  # e.g. an image below the detector's minimum size
                found.append(_failed(f"detector:{detector.name}", exc))
        return found

    def analyze_image(self, image: LoadedImage) -> Analysis:
        evidence = self.evidence(image)
        verdict = fuse(evidence)
        return Analysis(
            path=image.path,
            sha256=image.sha256,
            width=image.width,
            height=image.height,
            format=image.format,
            verdict=verdict.label,
            score=verdict.score,
            evidence=evidence,
        )

    def analyze(self, source: str | Path) -> Analysis:
        """Analyse one file; failures come back as an Analysis with verdict "error", never raised."""
        path = str(source)
        try:
            image = load_image(source, limits=self.config.limits)
            image.path = path
            return self.analyze_image(image)
        except PixelsleuthError as exc:
            error = exc
        except Exception as exc:  # last resort so that a batch goes on
            error = unexpected(exc, "the analysis of this file")
        sha256 = file_sha256(path, max_bytes=self.config.limits.max_file_bytes)
        return Analysis(path=path, sha256=sha256, verdict="error", error=error.to_dict())


def analyze(
    source: str | Path, *, sources: Sequence[str] | None = None, detectors: Sequence[DetectorSpec] = ()
) -> Analysis:
    """Analyse one image file (a convenience for the Python API; build an Analyzer for many files)."""
    config = AnalyzerConfig(
        sources=AnalyzerConfig().sources if sources is None else tuple(sources),
        detectors=default_detector_specs() + tuple(detectors),
    )
    return Analyzer(config).analyze(source)
