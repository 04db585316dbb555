"""One image in, one Analysis out: intake → evidence → verdict."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pixelsleuth import __version__
from pixelsleuth.analysis import Analysis
from pixelsleuth.errors import PixelsleuthError, unexpected
from pixelsleuth.evidence import PROVENANCE_SOURCES, EvidenceSource, load_source
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake import IntakeLimits, LoadedImage, load_image
from pixelsleuth.verdict import fuse


@dataclass(frozen=True)
class AnalyzerConfig:
    """What an analysis runs. Anything that changes results must be part of `version`."""

    limits: IntakeLimits = field(default_factory=IntakeLimits)
    sources: tuple[str, ...] = tuple(PROVENANCE_SOURCES)

    @property
    def version(self) -> str:
        """Results are stored per (sha256, version): a different version re-analyses the image."""
        return f"pixelsleuth-{__version__}/provenance:{','.join(self.sources)}"


def _sha256_of_file(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class Analyzer:
    """Runs intake, every evidence source and the verdict on one image at a time.

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
                found.append(
                    Evidence(
                        source=name,
                        finding=f"the {name} check could not run on this image",
                        detail=f"{type(exc).__name__}: {exc}",
                    )
                )
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
            error = unexpected(exc, f"analysing {path}")
        return Analysis(path=path, sha256=_sha256_of_file(path), verdict="error", error=error.to_dict())


def analyze(source: str | Path, *, sources: Sequence[str] | None = None) -> Analysis:
    """Analyse one image file with the default configuration (a convenience for the Python API)."""
    config = AnalyzerConfig() if sources is None else AnalyzerConfig(sources=tuple(sources))
    return Analyzer(config).analyze(source)
