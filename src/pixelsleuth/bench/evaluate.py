"""Score a labelled image collection with a detector and report the field's metrics per subset.

Images are read one batch at a time (never all at once); an image that cannot be read or scored is
counted and listed in the report instead of stopping the run. The report holds one `BinaryMetrics` per
subset (a generator, in ForenSynths / GenImage terms), their mean (what papers print under the table)
and the pooled metrics over every image, plus each image's score.

Example:
    >>> from pixelsleuth.detectors import create
    >>> from pixelsleuth.train.datasets import discover  # doctest: +SKIP
    >>> detector = create("npr", weights="npr.safetensors")  # doctest: +SKIP
    >>> report = evaluate(detector, discover("ForenSynths/test"))  # doctest: +SKIP
    >>> print(report.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pixelsleuth.bench.metrics import METRIC_FIELDS, BinaryMetrics, binary_metrics, mean_metrics
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.intake import load_image

MEAN_ROW = "mean"
POOLED_ROW = "all"
SCHEMA = "pixelsleuth.evaluation/1"

Transform = Callable[[np.ndarray], np.ndarray]


class NothingToEvaluateError(PixelsleuthError):
    """No image to evaluate, or none of them could be scored."""

    type = "nothing_to_evaluate"


class LabelledImage(Protocol):
    """What evaluation needs of a sample (`pixelsleuth.train.datasets.Sample` is one)."""

    @property
    def path(self) -> Path | str: ...

    @property
    def label(self) -> int: ...

    @property
    def subset(self) -> str: ...


class Scorer(Protocol):
    """Anything with a detector's ``predict``: RGB uint8 images in, P(generated) per image out."""

    def predict(self, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray: ...


@dataclass(frozen=True)
class ScoredImage:
    """One image's score: ``label`` 1 = generated, ``score`` = P(generated)."""

    path: str
    subset: str
    label: int
    score: float


@dataclass(frozen=True)
class FailedImage:
    """An image left out of the metrics, and why (``stage`` is "load", "perturb" or "score")."""

    path: str
    subset: str
    label: int
    stage: str
    error_type: str
    message: str


@dataclass
class EvaluationReport:
    """Per-subset metrics, their mean, the pooled metrics, every score, and the images that failed.

    Attributes:
        subsets: metrics of each subset, in the order the subsets first appear in the samples.
        mean: each metric averaged over the subsets, each subset weighted equally (the papers' mean row).
        pooled: the metrics of all scored images taken together.
        scores: one record per scored image.
        failures: images that could not be read or scored (left out of every metric).
        detector: the detector's name, for the record.
    """

    subsets: dict[str, BinaryMetrics]
    mean: BinaryMetrics
    pooled: BinaryMetrics
    scores: list[ScoredImage]
    failures: list[FailedImage] = field(default_factory=list)
    detector: str = ""

    def rows(self) -> list[tuple[str, BinaryMetrics]]:
        """Table rows: every subset, then ``"mean"``, then ``"all"`` (pooled)."""
        return [*self.subsets.items(), (MEAN_ROW, self.mean), (POOLED_ROW, self.pooled)]

    def to_markdown(self) -> str:
        """The README-ready table (values in %), with the notes a reader needs under it."""
        return metrics_markdown(self.rows(), n_failed=len(self.failures))

    def to_csv(self) -> str:
        """One CSV row per subset plus the mean and pooled rows; rates are fractions, NaN as ``nan``."""
        return metrics_csv(self.rows())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: metrics per row, counts, and the failed images (scores are in `scores_csv`)."""
        return {
            "schema": SCHEMA,
            "detector": self.detector,
            "n_scored": len(self.scores),
            "n_failed": len(self.failures),
            "subsets": {name: metrics.to_dict() for name, metrics in self.subsets.items()},
            MEAN_ROW: self.mean.to_dict(),
            POOLED_ROW: self.pooled.to_dict(),
            "failures": [asdict(failure) for failure in self.failures],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def scores_csv(self) -> str:
        """Per-image scores: ``path,subset,label,score``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "subset", "label", "score"])
        for item in self.scores:
            writer.writerow([item.path, item.subset, item.label, repr(item.score)])
        return buffer.getvalue()

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``metrics.md``, ``metrics.csv``, ``metrics.json`` and ``scores.csv`` into `folder`.

        Returns:
            The written files by kind (``"markdown"``, ``"csv"``, ``"json"``, ``"scores"``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "markdown": (folder / "metrics.md", self.to_markdown()),
            "csv": (folder / "metrics.csv", self.to_csv()),
            "json": (folder / "metrics.json", self.to_json()),
            "scores": (folder / "scores.csv", self.scores_csv()),
        }
        for path, text in files.values():
            path.write_text(text, encoding="utf-8")
        return {kind: path for kind, (path, _) in files.items()}


# Markdown columns: header and BinaryMetrics field (None: a count column).
_MARKDOWN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ACC", "accuracy"),
    ("real ACC", "real_accuracy"),
    ("fake ACC", "fake_accuracy"),
    ("AP", "average_precision"),
    ("AUC", "roc_auc"),
    ("EER", "eer"),
    ("TPR@1%FPR", "tpr_at_1pct_fpr"),
    ("TPR@5%FPR", "tpr_at_5pct_fpr"),
    ("oracle ACC", "oracle_accuracy"),
)


def percent(value: float) -> str:
    """A rate as a percentage with one decimal, or an em dash when undefined.

    Example:
        >>> percent(0.9876), percent(float("nan"))
        ('98.8', '—')
    """
    return "—" if not math.isfinite(value) else f"{100 * value:.1f}"


def metrics_markdown(rows: Sequence[tuple[str, BinaryMetrics]], *, n_failed: int = 0) -> str:
    """A Markdown table of metric rows (values in %), followed by the notes that explain it.

    Example:
        >>> from pixelsleuth.bench.metrics import binary_metrics
        >>> print(metrics_markdown([("gan", binary_metrics([0, 1], [0.2, 0.9]))]).splitlines()[2])
        | gan | 1 | 1 | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 | 0.0 | 100.0 | 100.0 | 100.0 |
    """
    header = ["subset", "n real", "n fake", *(title for title, _ in _MARKDOWN_COLUMNS)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", "---:", "---:", *("---:" for _ in _MARKDOWN_COLUMNS)]) + "|",
    ]
    notes: list[str] = []
    for name, metrics in rows:
        label = f"**{name}**" if name in (MEAN_ROW, POOLED_ROW) else name
        cells = [label, str(metrics.n_real), str(metrics.n_fake)]
        cells += [percent(getattr(metrics, attribute)) for _, attribute in _MARKDOWN_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
        notes += [f"{name}: {note}" for note in metrics.notes]
    explanation = [
        "",
        "Values in %. ACC calls an image generated when P(generated) > 0.5; real / fake ACC are the "
        "accuracies on each class alone. AP is step-wise average precision (scikit-learn's), AUC the ROC "
        "area, EER the equal error rate interpolated on the ROC, TPR@x%FPR the ROC's TPR at that "
        "false-positive rate. **oracle ACC uses the best threshold chosen on these test labels: an upper "
        "bound, not a result.** "
        f"`{MEAN_ROW}` averages the subsets equally; `{POOLED_ROW}` pools every image.",
    ]
    if n_failed:
        explanation.append(f"{n_failed} image(s) could not be read or scored and are left out.")
    if notes:
        explanation += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines + explanation) + "\n"


def metrics_csv(rows: Sequence[tuple[str, BinaryMetrics]], *, extra: dict[str, str] | None = None) -> str:
    """CSV of metric rows: ``subset, n_real, n_fake``, every metric (fractions), ``notes``.

    Args:
        rows: (name, metrics) pairs.
        extra: leading columns (name -> value) repeated on every row, e.g. a perturbation.
    """
    extra = extra or {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*extra, "subset", "n_real", "n_fake", *METRIC_FIELDS, "notes"])
    for name, metrics in rows:
        values = [repr(float(getattr(metrics, attribute))) for attribute in METRIC_FIELDS]
        writer.writerow(
            [*extra.values(), name, metrics.n_real, metrics.n_fake, *values, " | ".join(metrics.notes)]
        )
    return buffer.getvalue()


def limit_per_subset(samples: Sequence[LabelledImage], limit: int, *, seed: int = 0) -> list[LabelledImage]:
    """At most `limit` images per subset, drawn at random (seeded), real and generated as evenly as possible.

    Subsets keep both classes whenever they have them, so AP and AUC stay defined even for ``limit=2``.
    The chosen samples keep their original order. The draw happens before any image is read, so an
    unreadable image drawn here is reported as failed rather than replaced.

    Example:
        >>> from types import SimpleNamespace as S
        >>> samples = [S(path=f"{i}.png", label=i % 2, subset="gan") for i in range(10)]
        >>> sorted(sample.label for sample in limit_per_subset(samples, 4))
        [0, 0, 1, 1]
    """
    if limit < 1:
        raise NothingToEvaluateError(f"the number of images per subset must be at least 1, got {limit}")
    rng = np.random.default_rng(seed)
    by_subset: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, sample in enumerate(samples):
        by_subset[sample.subset][int(sample.label)].append(index)
    chosen: list[int] = []
    for classes in by_subset.values():
        queues = [list(rng.permutation(indices)) for _, indices in sorted(classes.items())]
        taken = 0
        while taken < limit and any(queues):
            for queue in queues:  # alternate between the classes
                if queue and taken < limit:
                    chosen.append(int(queue.pop()))
                    taken += 1
    return [samples[index] for index in sorted(chosen)]


@dataclass
class ScoringRun:
    """Scores of every sample under each transform: ``scores[t, i]`` (NaN where image i failed)."""

    samples: Sequence[LabelledImage]
    scores: np.ndarray
    failures: list[list[FailedImage]]


def _batches(samples: Sequence[LabelledImage], size: int) -> Iterator[Sequence[LabelledImage]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def _failure(sample: LabelledImage, stage: str, error: Exception) -> FailedImage:
    if not isinstance(error, PixelsleuthError):
        # Research runs keep the reason: a detector's own ValueError says why it refused the image.
        doing = {"load": "reading", "perturb": "perturbing", "score": "scoring"}[stage]
        reason = " ".join(str(error).split()) or "no reason given"
        return FailedImage(
            str(sample.path), str(sample.subset), int(sample.label), stage, "internal_error",
            f"{doing} the image failed: {reason}",
        )  # fmt: skip
    return FailedImage(
        str(sample.path), str(sample.subset), int(sample.label), stage, error.type, error.message
    )


# What a detector may raise on one bad image (too small, odd shape) and we record instead of stopping.
_SCORING_ERRORS = (PixelsleuthError, ValueError, RuntimeError)


def _predict(
    detector: Scorer, images: list[np.ndarray], batch_size: int
) -> tuple[np.ndarray, list[Exception | None]]:
    """Scores of a batch; if the batch fails, each image alone, so one bad image costs only itself."""
    try:
        scores = np.asarray(detector.predict(images, batch_size=batch_size), dtype=np.float64).reshape(-1)
        if scores.size != len(images):
            raise ValueError(f"the detector returned {scores.size} scores for {len(images)} images")
        return scores, [None] * len(images)
    except _SCORING_ERRORS as exc:
        if len(images) == 1:
            return np.full(1, np.nan), [exc]
    scores = np.full(len(images), np.nan)
    errors: list[Exception | None] = [None] * len(images)
    for index, image in enumerate(images):
        try:
            scores[index] = float(np.asarray(detector.predict([image], batch_size=1)).reshape(-1)[0])
        except _SCORING_ERRORS as exc:
            errors[index] = exc
    return scores, errors


def score_samples(
    detector: Scorer,
    samples: Sequence[LabelledImage],
    *,
    transforms: Sequence[Transform | None] = (None,),
    batch_size: int = 32,
    progress: bool = False,
    description: str = "scoring",
) -> ScoringRun:
    """Score every sample under each transform, reading each image from disk once.

    Images are loaded `batch_size` at a time with `pixelsleuth.intake.load_image`; each transform is
    applied to the batch (None = the image as it is) and the detector scores the result. Only one batch
    of images, and its transformed copies, is in memory at a time.

    Args:
        detector: anything with ``predict(images, batch_size=...)``.
        samples: objects with ``path``, ``label`` (1 = generated) and ``subset``.
        transforms: functions from RGB uint8 to RGB uint8, or None for "no change".
        batch_size: images read and scored together.
        progress: show a progress bar on stderr.
        description: the progress bar's label.

    Returns:
        A `ScoringRun`; images that fail (at reading, transforming or scoring) have NaN scores and a
        `FailedImage` record in the failures of that transform.

    Example:
        >>> from pixelsleuth.bench.perturb import jpeg
        >>> transforms = [None, lambda image: jpeg(image, 50)]
        >>> run = score_samples(detector, samples, transforms=transforms)  # doctest: +SKIP
        >>> run.scores.shape  # doctest: +SKIP
        (2, 1000)
    """
    if batch_size < 1:
        raise NothingToEvaluateError(f"the batch size must be at least 1, got {batch_size}")
    scores = np.full((len(transforms), len(samples)), np.nan)
    failures: list[list[FailedImage]] = [[] for _ in transforms]
    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not progress,
    )
    with bar:
        task = bar.add_task(description, total=len(samples))
        offset = 0
        for batch in _batches(samples, batch_size):
            loaded: list[tuple[int, np.ndarray]] = []
            for position, sample in enumerate(batch):
                try:
                    loaded.append((offset + position, load_image(sample.path).rgb))
                except PixelsleuthError as exc:
                    for failed in failures:
                        failed.append(_failure(sample, "load", exc))
            for t, transform in enumerate(transforms):
                indices: list[int] = []
                images: list[np.ndarray] = []
                for index, rgb in loaded:
                    try:
                        images.append(rgb if transform is None else transform(rgb))
                        indices.append(index)
                    except Exception as exc:  # a perturbation that cannot handle this image
                        failures[t].append(_failure(samples[index], "perturb", exc))
                if not images:
                    continue
                batch_scores, errors = _predict(detector, images, batch_size)
                for index, score, error in zip(indices, batch_scores, errors, strict=True):
                    if error is not None:
                        failures[t].append(_failure(samples[index], "score", error))
                    elif not math.isfinite(score):
                        message = f"the detector gave a non-finite score ({score})"
                        failures[t].append(_failure(samples[index], "score", ValueError(message)))
                    else:
                        scores[t, index] = score
            offset += len(batch)
            bar.advance(task, len(batch))
    return ScoringRun(samples=samples, scores=scores, failures=failures)


def report_from_scores(
    samples: Sequence[LabelledImage],
    scores: np.ndarray,
    failures: Sequence[FailedImage] = (),
    *,
    detector: str = "",
) -> EvaluationReport:
    """Build an `EvaluationReport` from one score per sample (NaN = failed, left out).

    Raises:
        NothingToEvaluateError: no sample has a score.

    Example:
        >>> from types import SimpleNamespace as S
        >>> samples = [S(path=f"{i}.png", label=i % 2, subset="gan") for i in range(4)]
        >>> report = report_from_scores(samples, np.array([0.1, 0.8, np.nan, 0.4]))
        >>> report.subsets["gan"].n, report.subsets["gan"].average_precision
        (3, 1.0)
    """
    scored = [
        ScoredImage(str(sample.path), str(sample.subset), int(sample.label), float(score))
        for sample, score in zip(samples, scores, strict=True)
        if math.isfinite(score)
    ]
    if not scored:
        first = f" The first failure: {failures[0].path}: {failures[0].message}" if failures else ""
        raise NothingToEvaluateError(
            f"none of the {len(samples)} image(s) could be scored, so there is nothing to measure.{first}"
        )
    by_subset: dict[str, list[ScoredImage]] = defaultdict(list)
    for item in scored:
        by_subset[item.subset].append(item)
    subsets = {
        name: binary_metrics([item.label for item in items], [item.score for item in items])
        for name, items in by_subset.items()
    }
    return EvaluationReport(
        subsets=subsets,
        mean=mean_metrics(list(subsets.values()), names=list(subsets)),
        pooled=binary_metrics([item.label for item in scored], [item.score for item in scored]),
        scores=scored,
        failures=list(failures),
        detector=detector,
    )


def detector_name(detector: Scorer) -> str:
    """The registry name of a detector, or its class name.

    Example:
        >>> class Brightness: ...
        >>> detector_name(Brightness())
        'Brightness'
    """
    name = getattr(detector, "name", None)
    return name if isinstance(name, str) and name != "detector" else type(detector).__name__


def evaluate(
    detector: Scorer,
    samples: Sequence[LabelledImage],
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> EvaluationReport:
    """Score every sample and measure the detector per subset, on average over subsets, and pooled.

    Args:
        detector: a `pixelsleuth.detectors.Detector` (or anything with its ``predict``).
        samples: labelled images, e.g. from `pixelsleuth.train.datasets.discover`.
        batch_size: images read and scored together (memory holds one batch).
        progress: show a progress bar on stderr.

    Returns:
        An `EvaluationReport`. Images that cannot be read or scored are listed in its ``failures``.

    Raises:
        NothingToEvaluateError: there are no samples, or none could be scored.

    Example:
        >>> class Brightness:  # P(generated) = mean brightness
        ...     def predict(self, images, *, batch_size=32):
        ...         return np.array([image.mean() / 255 for image in images])
        >>> evaluate(Brightness(), [])
        Traceback (most recent call last):
        ...
        pixelsleuth.bench.evaluate.NothingToEvaluateError: there are no images to evaluate
    """
    if not samples:
        raise NothingToEvaluateError("there are no images to evaluate")
    run = score_samples(detector, samples, batch_size=batch_size, progress=progress)
    return report_from_scores(samples, run.scores[0], run.failures[0], detector=detector_name(detector))
