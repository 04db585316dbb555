"""The cross-generator protocol: train a detector on some generator families, test it on those it never saw.

A forged dataset (``pixelsleuth forge``) holds one subset per generator family in each split
(``DATA/<split>/<subset>/0_real|1_fake``), a ``<family>-synthetic`` subset for the families that sample,
and ``DATA/manifest.jsonl``. A *fold* names the families a detector trains on and those held out of
training. For every fold, `run_generalization` trains the detector on the training families' subsets
(their ``-synthetic`` twins included) of ``train/`` (validated on ``val/``), then measures it on the test
subsets of every family of the fold, each marked seen or unseen, and on the held-out families' test
images under a few perturbations. The table of AUC by fold and test family is the cross-generator
table of the detection literature (CNNDetection, Wang et al., CVPR 2020; NPR, Tan et al., CVPR 2024:
train on one source, test on many), with the leave-one-family-out protocol beside it.

Each fold writes ``OUTPUT/<fold>/`` (the training run: weights, cards, checkpoint, curves) and, when it
is measured, ``OUTPUT/<fold>/fold.json``; a benchmark run again with the same output folder reuses the
folds that finished and resumes a fold whose training was interrupted.

Example:
    >>> folds = leave_one_out_folds(["ae-nearest-x2", "ae-transposed-x2", "vae-nearest-x4"])
    >>> [(fold.name, fold.held_out) for fold in folds][0]
    ('without-ae-nearest-x2', ('ae-nearest-x2',))
    >>> from pixelsleuth.train.config import load_config  # doctest: +SKIP
    >>> config = load_config("configs/generalization_npr.toml")  # doctest: +SKIP
    >>> report = run_generalization("forged", config, folds, "runs/generalization")  # doctest: +SKIP
    >>> report.save("runs/generalization")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from pixelsleuth.bench.evaluate import limit_per_subset as draw_per_subset
from pixelsleuth.bench.evaluate import percent, report_from_scores, score_samples
from pixelsleuth.bench.metrics import BinaryMetrics, mean_metrics
from pixelsleuth.bench.perturb import PerturbationStep, robustness_grid
from pixelsleuth.errors import PixelsleuthError
from pixelsleuth.forge.build import SYNTHETIC_SUFFIX

if TYPE_CHECKING:
    from pixelsleuth.train.config import TrainConfig
    from pixelsleuth.train.datasets import Sample

SCHEMA = "pixelsleuth.generalization/1"
FOLD_SCHEMA = "pixelsleuth.generalization.fold/1"
MANIFEST_NAME = "manifest.jsonl"
FOLD_RECORD = "fold.json"
# Labels of `robustness_grid()` steps: a JPEG re-save, a 2x downscale and a mild blur, the three
# post-processings under which generalisation papers most often report their detectors' numbers.
DEFAULT_PERTURBATIONS: tuple[str, ...] = ("jpeg:70", "downscale:0.5", "blur:1")
BASELINE = "none"
PROTOCOLS = ("leave-one-out", "single", "all")
# The metrics a fold keeps per test family: BinaryMetrics attribute -> column name.
TABLE_METRICS = {
    "roc_auc": "auc",
    "average_precision": "ap",
    "accuracy": "acc",
    "tpr_at_1pct_fpr": "tpr_at_1pct_fpr",
}
_FOLD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class GeneralizationError(PixelsleuthError):
    """The generalisation benchmark cannot run as asked."""

    type = "generalization_error"


class NotAForgedDatasetError(GeneralizationError):
    """The dataset folder lacks the manifest or a split the protocol needs."""

    type = "not_a_forged_dataset"


class FamilyNotInDatasetError(GeneralizationError):
    type = "family_not_in_dataset"


class InvalidFoldError(GeneralizationError):
    """A fold that cannot be trained or read: no training family, a family both seen and held out, ..."""

    type = "invalid_fold"


class UnknownPerturbationError(GeneralizationError):
    type = "unknown_perturbation"


class FoldMismatchError(GeneralizationError):
    """An output folder holds a finished fold that was trained with another fold or configuration."""

    type = "fold_mismatch"


@dataclass(frozen=True)
class Fold:
    """One training run of the protocol: the families it trains on and those it holds out.

    Attributes:
        name: the fold's name, also its folder under the benchmark's output.
        train_families: generator families whose subsets (and ``-synthetic`` twins) are trained on.
        held_out: families left out of training, tested as unseen.

    Example:
        >>> fold = Fold("without-a", ("b", "c"), ("a",))
        >>> fold.families, fold.is_seen("a")
        (('b', 'c', 'a'), False)
    """

    name: str
    train_families: tuple[str, ...]
    held_out: tuple[str, ...] = ()

    @property
    def families(self) -> tuple[str, ...]:
        """Every family the fold is tested on: the training families, then the held-out ones."""
        return self.train_families + self.held_out

    def is_seen(self, family: str) -> bool:
        """Whether `family` was in the fold's training set."""
        return family in self.train_families

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train_families": list(self.train_families),
            "held_out": list(self.held_out),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Fold:
        return cls(str(record["name"]), tuple(record["train_families"]), tuple(record["held_out"]))


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(name.strip() for name in names if name and name.strip()))


def leave_one_out_folds(
    families: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> list[Fold]:
    """One fold per family (or per named group of families): train on all the others, hold it out.

    Args:
        families: the generator families of the protocol.
        groups: optional named groups, e.g. ``{"x8": ["ae-nearest-x8", "ae-transposed-x8"]}``; each
            group is held out as a whole, in one fold named ``without-<group>``. Families in no group
            are always trained on.

    Returns:
        Folds named ``without-<family>`` (or ``without-<group>``), in the order given.

    Raises:
        InvalidFoldError: fewer than two families, a group naming a family not in `families`, an empty
            group, or a group that leaves nothing to train on.

    Example:
        >>> [fold.name for fold in leave_one_out_folds(["a", "b", "c"], {"bc": ["b", "c"]})]
        ['without-bc']
        >>> leave_one_out_folds(["a", "b", "c"], {"bc": ["b", "c"]})[0].train_families
        ('a',)
    """
    names = _unique(families)
    if groups is None:
        if len(names) < 2:
            raise InvalidFoldError(
                f"leaving one family out needs at least two families, got {', '.join(names) or 'none'}"
            )
        held = {name: [name] for name in names}
    else:
        if not groups:
            raise InvalidFoldError("no group of families was given to hold out")
        held = {}
        for group, members in groups.items():
            chosen = _unique(members)
            unknown = [name for name in chosen if name not in names]
            if unknown or not chosen:
                what = f"names {', '.join(unknown)}, which is not among" if unknown else "is empty; give"
                raise InvalidFoldError(
                    f"the group {group!r} {what} the families of the protocol ({', '.join(names)})"
                )
            held[group] = chosen
    folds = []
    for group, members in held.items():
        train = tuple(name for name in names if name not in members)
        if not train:
            raise InvalidFoldError(
                f"holding out {group!r} ({', '.join(members)}) leaves no family to train on"
            )
        folds.append(Fold(f"without-{group}", train, tuple(members)))
    return folds


def single_source_folds(families: Sequence[str]) -> list[Fold]:
    """One fold per family: train on that family alone, hold every other family out.

    Raises:
        InvalidFoldError: fewer than two families (nothing would be held out).

    Example:
        >>> [(fold.name, fold.held_out) for fold in single_source_folds(["a", "b"])]
        [('only-a', ('b',)), ('only-b', ('a',))]
    """
    names = _unique(families)
    if len(names) < 2:
        raise InvalidFoldError(
            f"training on one family and testing on the others needs at least two families, "
            f"got {', '.join(names) or 'none'}"
        )
    return [Fold(f"only-{name}", (name,), tuple(other for other in names if other != name)) for name in names]


def all_families_fold(families: Sequence[str]) -> Fold:
    """The fold that trains on every family and holds none out (the default detector's training set).

    Raises:
        InvalidFoldError: no family.

    Example:
        >>> all_families_fold(["a", "b"])
        Fold(name='all', train_families=('a', 'b'), held_out=())
    """
    names = _unique(families)
    if not names:
        raise InvalidFoldError("the 'all' fold needs at least one family to train on")
    return Fold("all", tuple(names), ())


def make_folds(
    protocol: str, families: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> list[Fold]:
    """The folds of a protocol by name: ``"leave-one-out"``, ``"single"`` or ``"all"``.

    Raises:
        InvalidFoldError: an unknown protocol, or groups with a protocol other than leave-one-out.

    Example:
        >>> [fold.name for fold in make_folds("single", ["a", "b"])]
        ['only-a', 'only-b']
    """
    if protocol not in PROTOCOLS:
        raise InvalidFoldError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if groups and protocol != "leave-one-out":
        raise InvalidFoldError("groups of families are held out together only by the leave-one-out protocol")
    if protocol == "leave-one-out":
        return leave_one_out_folds(families, groups or None)
    if protocol == "single":
        return single_source_folds(families)
    return [all_families_fold(families)]


def check_folds(folds: Sequence[Fold], known_families: Iterable[str]) -> list[Fold]:
    """Return `folds` if every one can be trained on a dataset with `known_families`; raise otherwise.

    Raises:
        InvalidFoldError: no fold, a duplicate or unusable fold name, a fold without a training family,
            or a family both trained on and held out.
        FamilyNotInDatasetError: a fold names a family the dataset does not have.

    Example:
        >>> check_folds([Fold("x", (), ("a",))], ["a"])
        Traceback (most recent call last):
        ...
        pixelsleuth.bench.generalization.InvalidFoldError: the fold 'x' has no family to train on
    """
    known = set(known_families)
    if not folds:
        raise InvalidFoldError("there is no fold to run")
    seen_names: set[str] = set()
    for fold in folds:
        if not _FOLD_NAME.match(fold.name):
            raise InvalidFoldError(
                f"the fold name {fold.name!r} cannot name a folder: use letters, digits, '.', '_', '+', '-'"
            )
        if fold.name in seen_names:
            raise InvalidFoldError(f"two folds are called {fold.name!r}: each fold needs its own name")
        seen_names.add(fold.name)
        if not fold.train_families:
            raise InvalidFoldError(f"the fold {fold.name!r} has no family to train on")
        both = sorted(set(fold.train_families) & set(fold.held_out))
        if both:
            raise InvalidFoldError(f"the fold {fold.name!r} both trains on and holds out {', '.join(both)}")
        unknown = [name for name in fold.families if name not in known]
        if unknown:
            raise FamilyNotInDatasetError(
                f"the dataset has no generator family {', '.join(unknown)} (fold {fold.name!r}); "
                f"its families are {', '.join(sorted(known))}"
            )
    return list(folds)


def dataset_families(root: str | Path) -> dict[str, str]:
    """Subset name -> generator family of a forged dataset, read from its ``manifest.jsonl``.

    A subset's family is the ``family`` its generated images list in the manifest; a subset whose rows
    name none is taken to belong to its name without a ``-synthetic`` suffix. Manipulated images and
    masks are ignored.

    Args:
        root: the dataset folder written by ``pixelsleuth forge``.

    Returns:
        ``{subset: family}`` sorted by subset, e.g. ``{"vae-nearest-x4": "vae-nearest-x4",
        "vae-nearest-x4-synthetic": "vae-nearest-x4"}``.

    Raises:
        NotAForgedDatasetError: no manifest, an unreadable one, or one listing no real or generated image.

    Example:
        >>> dataset_families("forged")  # doctest: +SKIP
        {'ae-nearest-x2': 'ae-nearest-x2', 'vae-nearest-x4': 'vae-nearest-x4', ...}
    """
    root = Path(root).expanduser()
    manifest = root / MANIFEST_NAME
    if not manifest.is_file():
        raise NotAForgedDatasetError(
            f"{root} has no {MANIFEST_NAME}: give a dataset folder written by `pixelsleuth forge`"
        )
    declared: dict[str, str] = {}
    subsets: list[str] = []
    with manifest.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise NotAForgedDatasetError(
                    f"{manifest} line {line_number} is not valid JSON ({exc.msg})"
                ) from None
            if not isinstance(row, dict) or row.get("label") not in ("real", "fake"):
                continue
            parts = PurePosixPath(str(row.get("path", ""))).parts
            if len(parts) < 4:  # split/subset/0_real|1_fake/file
                continue
            subset = parts[1]
            subsets.append(subset)
            if row.get("family") and subset not in declared:
                declared[subset] = str(row["family"])
    if not subsets:
        raise NotAForgedDatasetError(f"{manifest} lists no real or generated image")
    return {
        subset: declared.get(subset, subset.removesuffix(SYNTHETIC_SUFFIX)) for subset in sorted(set(subsets))
    }


def family_subsets(subset_family: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert `dataset_families`: family -> its subsets, families sorted.

    Example:
        >>> family_subsets({"vae": "vae", "vae-synthetic": "vae", "ae": "ae"})
        {'ae': ['ae'], 'vae': ['vae', 'vae-synthetic']}
    """
    grouped: dict[str, list[str]] = {}
    for subset, family in sorted(subset_family.items()):
        grouped.setdefault(family, []).append(subset)
    return dict(sorted(grouped.items()))


def perturbation_steps(names: Iterable[str]) -> list[PerturbationStep]:
    """The `robustness_grid()` steps labelled `names` (``"jpeg:70"``, ``"blur:1"``), in that order.

    ``"none"`` (the unperturbed images) is always measured and is skipped here.

    Raises:
        UnknownPerturbationError: a label the grid does not have.

    Example:
        >>> [step.label for step in perturbation_steps(["jpeg:70", "downscale:0.5"])]
        ['jpeg:70', 'downscale:0.5']
    """
    grid = {step.label: step for step in robustness_grid() if step.family != BASELINE}
    wanted = [name for name in _unique(names) if name.split(":")[0] != BASELINE]
    unknown = [name for name in wanted if name not in grid]
    if unknown:
        raise UnknownPerturbationError(
            f"unknown perturbation {', '.join(unknown)}; choose from {', '.join(grid)}"
        )
    return [grid[name] for name in wanted]


def fold_training_config(
    config: TrainConfig, root: str | Path, fold: Fold, subset_family: Mapping[str, str], output: str | Path
) -> TrainConfig:
    """The training configuration of `fold`: `config` on the fold's training subsets of `root`.

    ``data.train`` becomes ``root/train``, ``data.val`` ``root/val`` (None, i.e. a held-out fraction of
    the training images, when the dataset has no val split), ``data.classes`` every subset of the
    fold's training families (``-synthetic`` twins included) and ``output`` the fold's folder.

    Example:
        >>> from pixelsleuth.train.config import TrainConfig
        >>> fold = Fold("without-b", ("a",), ("b",))
        >>> mapping = {"a": "a", "a-synthetic": "a", "b": "b"}
        >>> fold_training_config(TrainConfig(), "data", fold, mapping, "runs/without-b").data.classes
        ['a', 'a-synthetic']
    """
    root = Path(root)
    wanted = set(fold.train_families)
    classes = [subset for subset, family in sorted(subset_family.items()) if family in wanted]
    val = root / "val"
    data = replace(
        config.data,
        train=str(root / "train"),
        val=str(val) if val.is_dir() else None,
        classes=classes,
    )
    return replace(config, data=data, output=str(output))


@dataclass
class FamilyResult:
    """A fold's measurement on one test family (all of its test subsets pooled)."""

    family: str
    seen: bool
    metrics: BinaryMetrics


@dataclass
class PerturbationResult:
    """A fold's measurement on its robustness families under one perturbation (``"none"``: unperturbed).

    Attributes:
        perturbation: a `robustness_grid()` label, or ``"none"``.
        families: metrics of each family measured.
        mean: the metrics averaged over those families (None when no image could be scored).
        n_failed: image-perturbation pairs that could not be scored.
    """

    perturbation: str
    families: dict[str, BinaryMetrics]
    mean: BinaryMetrics | None
    n_failed: int = 0

    def value(self, metric: str = "roc_auc") -> float:
        return float(getattr(self.mean, metric)) if self.mean is not None else math.nan


@dataclass
class FoldResult:
    """Everything one fold measured, as written to ``OUTPUT/<fold>/fold.json``.

    Attributes:
        fold: the fold.
        families: per test family (pooled over its subsets), each marked seen or unseen.
        subsets: per test subset (``ae-nearest-x2``, ``vae-nearest-x4-synthetic``, ...).
        robustness: the robustness families under each perturbation, ``"none"`` first.
        robustness_families: the families of the robustness rows: the held-out ones, or every
            family when the fold holds none out.
        training: the training run: best epoch and metric, epochs run, training subsets, config.
        evaluation: the settings of the measurement (perturbations, images per subset) and counts.
    """

    fold: Fold
    families: dict[str, FamilyResult]
    subsets: dict[str, BinaryMetrics] = field(default_factory=dict)
    robustness: list[PerturbationResult] = field(default_factory=list)
    robustness_families: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def value(self, family: str, metric: str = "roc_auc") -> float:
        """`metric` of one test family; NaN if it was not measured."""
        result = self.families.get(family)
        return float(getattr(result.metrics, metric)) if result is not None else math.nan

    def mean(self, metric: str = "roc_auc", *, seen: bool = False) -> float:
        """`metric` averaged over the unseen (or, with ``seen=True``, the seen) test families."""
        return _nanmean(getattr(r.metrics, metric) for r in self.families.values() if r.seen == seen)

    def perturbation(self, name: str) -> PerturbationResult | None:
        return next((row for row in self.robustness if row.perturbation == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": FOLD_SCHEMA,
            "fold": self.fold.to_dict(),
            "families": {
                name: {"seen": result.seen, "metrics": result.metrics.to_dict()}
                for name, result in self.families.items()
            },
            "subsets": {name: metrics.to_dict() for name, metrics in self.subsets.items()},
            "robustness_families": list(self.robustness_families),
            "robustness": [
                {
                    "perturbation": row.perturbation,
                    "n_failed": row.n_failed,
                    "mean": row.mean.to_dict() if row.mean is not None else None,
                    "families": {name: metrics.to_dict() for name, metrics in row.families.items()},
                }
                for row in self.robustness
            ],
            "training": self.training,
            "evaluation": self.evaluation,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> FoldResult:
        """Read a `to_dict` record back.

        Raises:
            InvalidFoldError: the record is not a fold record of this version.
        """
        if not isinstance(record, Mapping) or record.get("schema") != FOLD_SCHEMA:
            raise InvalidFoldError(f"not a generalisation fold record ({FOLD_SCHEMA})")
        try:
            return cls(
                fold=Fold.from_dict(record["fold"]),
                families={
                    name: FamilyResult(name, bool(item["seen"]), _metrics_from_dict(item["metrics"]))
                    for name, item in record["families"].items()
                },
                subsets={name: _metrics_from_dict(item) for name, item in record["subsets"].items()},
                robustness=[
                    PerturbationResult(
                        row["perturbation"],
                        {name: _metrics_from_dict(item) for name, item in row["families"].items()},
                        _metrics_from_dict(row["mean"]) if row["mean"] is not None else None,
                        int(row["n_failed"]),
                    )
                    for row in record["robustness"]
                ],
                robustness_families=list(record["robustness_families"]),
                training=dict(record["training"]),
                evaluation=dict(record["evaluation"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidFoldError(
                f"a fold record is incomplete or damaged ({type(exc).__name__}: {exc})"
            ) from None

    @classmethod
    def load(cls, path: str | Path) -> FoldResult:
        """Read ``fold.json``.

        Raises:
            InvalidFoldError: the file is not valid JSON or not a fold record.
        """
        path = Path(path)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidFoldError(f"cannot read the fold record {path}: {exc}") from None
        try:
            return cls.from_dict(record)
        except InvalidFoldError as exc:
            raise InvalidFoldError(f"{path}: {exc.message}") from None

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (atomically: a half-written fold.json never looks finished)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(partial, path)
        return path


def _metrics_from_dict(record: Mapping[str, Any]) -> BinaryMetrics:
    values: dict[str, Any] = {}
    for item in fields(BinaryMetrics):
        value = record.get(item.name)
        if item.name == "notes":
            values["notes"] = tuple(value or ())
        elif item.name in ("n_real", "n_fake"):
            values[item.name] = int(value)
        else:
            values[item.name] = math.nan if value is None else float(value)
    return BinaryMetrics(**values)


def _nanmean(values: Iterable[Any]) -> float:
    finite = [float(value) for value in values if value is not None and math.isfinite(float(value))]
    return float(np.mean(finite)) if finite else math.nan


@dataclass
class GeneralizationReport:
    """The results of every fold, with the tables a paper prints.

    Attributes:
        folds: one `FoldResult` per fold, in the order run.
        perturbations: the perturbation labels measured (without ``"none"``).
        dataset: the dataset folder.
        detector: the detector's registry name.
    """

    folds: list[FoldResult]
    perturbations: list[str] = field(default_factory=list)
    dataset: str = ""
    detector: str = ""

    @property
    def families(self) -> list[str]:
        """Every test family of any fold, sorted: the table's columns."""
        return sorted({name for fold in self.folds for name in fold.families})

    def mean_unseen(self, metric: str = "roc_auc") -> float:
        """The fold means of `metric` over unseen families, averaged over the folds (each fold equally)."""
        return _nanmean(fold.mean(metric) for fold in self.folds)

    def family_mean_unseen(self, family: str, metric: str = "roc_auc") -> float:
        """`metric` on `family` averaged over the folds that held it out."""
        return _nanmean(
            fold.value(family, metric)
            for fold in self.folds
            if family in fold.families and not fold.families[family].seen
        )

    def to_markdown(self) -> str:
        """The fold x test-family AUC table (unseen cells bold) and the robustness table, values in %."""
        families = self.families
        header = ["fold", *families, "mean seen AUC", "mean unseen AUC", "mean unseen AP"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
        ]
        for fold in self.folds:
            cells = [fold.fold.name]
            for family in families:
                result = fold.families.get(family)
                if result is None:
                    cells.append("")
                    continue
                value = percent(result.metrics.roc_auc)
                cells.append(value if result.seen else f"**{value}**")
            cells += [
                percent(fold.mean("roc_auc", seen=True)),
                percent(fold.mean("roc_auc")),
                percent(fold.mean("average_precision")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        overall = ["**mean unseen**", *(percent(self.family_mean_unseen(family)) for family in families)]
        overall += ["", percent(self.mean_unseen("roc_auc")), percent(self.mean_unseen("average_precision"))]
        lines.append("| " + " | ".join(overall) + " |")
        lines += [
            "",
            "ROC AUC in % of each fold's detector (rows) on each generator family's test images (columns; a "
            "family's laundered and `-synthetic` subsets pooled). **Bold**: the family was held out of "
            "that fold's training (unseen); plain: it was trained on (seen); empty: not tested in that fold. "
            "Mean columns average the fold's families equally; the last row averages each family over the "
            "folds that held it out, and the overall means average the folds equally.",
        ]
        if self.perturbations and any(fold.robustness for fold in self.folds):
            lines += ["", *self._robustness_markdown()]
        return "\n".join(lines) + "\n"

    def _robustness_markdown(self) -> list[str]:
        names = [BASELINE, *self.perturbations]
        header = ["fold", "tested on"]
        for name in names:
            header += [f"{name} AUC", f"{name} AP"]
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join([":---", ":---"] + ["---:"] * (len(header) - 2)) + "|",
        ]
        for fold in self.folds:
            cells = [fold.fold.name, ", ".join(fold.robustness_families)]
            for name in names:
                row = fold.perturbation(name)
                auc = row.value("roc_auc") if row else math.nan
                ap = row.value("average_precision") if row else math.nan
                cells += [percent(auc), percent(ap)]
            lines.append("| " + " | ".join(cells) + " |")
        mean_cells = ["**mean**", ""]
        for name in names:
            for metric in ("roc_auc", "average_precision"):
                rows = [fold.perturbation(name) for fold in self.folds]
                mean_cells.append(percent(_nanmean(row.value(metric) for row in rows if row is not None)))
        lines.append("| " + " | ".join(mean_cells) + " |")
        lines += [
            "",
            "Held-out families' test images (every family's, for a fold that holds none out), real and "
            "generated alike, re-processed before scoring; AUC and AP in %, averaged over the families "
            "tested. `none`: unperturbed. Labels are steps of `pixelsleuth.bench.perturb.robustness_grid`.",
        ]
        return lines

    def csv_rows(self) -> list[dict[str, Any]]:
        """Long-format rows: one per fold, test family and perturbation (``"none"``: unperturbed)."""
        rows: list[dict[str, Any]] = []
        for fold in self.folds:
            for family, result in fold.families.items():
                rows.append(_csv_row(fold.fold.name, family, result.seen, BASELINE, result.metrics))
            for perturbation in fold.robustness:
                if perturbation.perturbation == BASELINE:
                    continue  # the same images as the unperturbed rows above
                for family, metrics in perturbation.families.items():
                    seen = fold.families[family].seen if family in fold.families else False
                    rows.append(_csv_row(fold.fold.name, family, seen, perturbation.perturbation, metrics))
        return rows

    def to_csv(self) -> str:
        """CSV of `csv_rows`: ``fold, test_family, seen, perturbation, n_real, n_fake, auc, ap, acc,
        tpr_at_1pct_fpr`` (rates as fractions, NaN as ``nan``)."""
        buffer = io.StringIO()
        columns = ["fold", "test_family", "seen", "perturbation", "n_real", "n_fake", *TABLE_METRICS.values()]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.csv_rows())
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the folds' records, the columns and the overall means."""
        return {
            "schema": SCHEMA,
            "dataset": self.dataset,
            "detector": self.detector,
            "families": self.families,
            "perturbations": list(self.perturbations),
            "mean_unseen_auc": _json_number(self.mean_unseen("roc_auc")),
            "mean_unseen_ap": _json_number(self.mean_unseen("average_precision")),
            "folds": [fold.to_dict() for fold in self.folds],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Write ``generalization.md``, ``generalization.csv`` and ``generalization.json`` into `folder`.

        Returns:
            The written files by kind (``"markdown"``, ``"csv"``, ``"json"``).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "markdown": (folder / "generalization.md", self.to_markdown()),
            "csv": (folder / "generalization.csv", self.to_csv()),
            "json": (folder / "generalization.json", self.to_json()),
        }
        for path, text in files.values():
            path.write_text(text, encoding="utf-8")
        return {kind: path for kind, (path, _) in files.items()}


def _csv_row(fold: str, family: str, seen: bool, perturbation: str, metrics: BinaryMetrics) -> dict[str, Any]:
    row: dict[str, Any] = {
        "fold": fold,
        "test_family": family,
        "seen": str(seen).lower(),
        "perturbation": perturbation,
        "n_real": metrics.n_real,
        "n_fake": metrics.n_fake,
    }
    row.update({column: repr(float(getattr(metrics, name))) for name, column in TABLE_METRICS.items()})
    return row


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def plot_generalization(report: GeneralizationReport, path: str | Path) -> Path:
    """A heatmap of AUC by fold (rows) and test family (columns); unseen cells framed in black. PNG.

    Colours run from red at AUC 0.5 (chance) to green at 1; cells below chance are red too.

    Returns:
        The path written.

    Example:
        >>> plot_generalization(report, "generalization.png")  # doctest: +SKIP
        PosixPath('generalization.png')
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    families = report.families
    values = np.array([[fold.value(family) for family in families] for fold in report.folds], dtype=float)
    if values.size == 0:
        values = np.full((max(1, len(report.folds)), max(1, len(families))), np.nan)
    width = 2.5 + 0.75 * max(1, len(families))
    height = 1.6 + 0.45 * max(1, len(report.folds))
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    masked = np.ma.masked_invalid(values)
    colours = _heatmap_colours()
    image = axes.imshow(masked, cmap=colours, vmin=0.5, vmax=1.0, aspect="auto")
    for row, fold in enumerate(report.folds):
        for column, family in enumerate(families):
            value = values[row, column]
            if math.isfinite(value):
                axes.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize="small")
            result = fold.families.get(family)
            if result is not None and not result.seen:
                # Inset, so that the frames of neighbouring unseen cells stay apart.
                frame = Rectangle(
                    (column - 0.42, row - 0.42), 0.84, 0.84, fill=False, edgecolor="black", linewidth=2
                )
                axes.add_patch(frame)
    axes.set_xticks(range(len(families)), families, rotation=45, ha="right", fontsize="small")
    axes.set_yticks(range(len(report.folds)), [fold.fold.name for fold in report.folds], fontsize="small")
    axes.set(xlabel="test family", ylabel="training fold")
    title = "AUC (%) by training fold and test family" + (f" — {report.detector}" if report.detector else "")
    axes.set_title(title + "\nframed: held out of the fold's training (unseen)", fontsize="medium")
    figure.colorbar(image, ax=axes, label="ROC AUC", shrink=0.8)
    figure.savefig(path, format="png", dpi=120)
    return Path(path)


def _heatmap_colours() -> Any:
    from matplotlib import colormaps

    return colormaps["RdYlGn"].with_extremes(bad="0.85")  # grey: not measured


def forged_test_samples(root: str | Path, subset_family: Mapping[str, str]) -> list[Sample]:
    """The labelled images of ``root/test`` whose subset belongs to a family of `subset_family`.

    Raises:
        NotAForgedDatasetError: no test split.
    """
    from pixelsleuth.train.datasets import discover

    test = Path(root) / "test"
    if not test.is_dir():
        raise NotAForgedDatasetError(f"{Path(root)} has no test split ({test}): the protocol tests there")
    return [sample for sample in discover(test) if sample.subset in subset_family]


def run_generalization(
    root: str | Path,
    config: TrainConfig,
    folds: Sequence[Fold],
    output: str | Path,
    *,
    robustness: Sequence[str] = DEFAULT_PERTURBATIONS,
    limit_per_subset: int | None = None,
    batch_size: int = 32,
    console: Console | None = None,
    command: str | None = None,
) -> GeneralizationReport:
    """Train and measure one detector per fold on a forged dataset.

    For each fold: train `config` on the fold's training subsets of ``root/train`` (validated on
    ``root/val``) into ``output/<fold>`` with `pixelsleuth.train.loop.train`; load its
    ``best.safetensors``; score every test image of the fold's families in ``root/test`` (metrics per
    family, seen or unseen, and per subset); score the held-out families' test images again under each
    of `robustness` (every family's when the fold holds none out); write ``output/<fold>/fold.json``.

    A fold whose ``fold.json`` exists was finished by an earlier run and is read, not retrained (if the
    configuration's epochs, the perturbations or the image limit changed, it is trained on from its
    checkpoint and measured again). A fold with a ``checkpoint.pt`` but no ``fold.json`` resumes training.

    Args:
        root: a dataset folder written by ``pixelsleuth forge`` (``train/``, ``val/``, ``test/``,
            ``manifest.jsonl``).
        config: the training configuration; its ``data`` and ``output`` are replaced per fold.
        folds: from `leave_one_out_folds`, `single_source_folds`, `all_families_fold` or by hand.
        output: the benchmark's folder; each fold writes a sub-folder named after it.
        robustness: `robustness_grid()` labels, e.g. ``("jpeg:70", "blur:1")``; empty for none.
        limit_per_subset: test at most this many images per test subset (seeded with ``config.seed``,
            both classes kept); None = every image.
        batch_size: images read and scored together.
        console: where training and progress lines go (stdout by default).
        command: the command line recorded in the model cards.

    Returns:
        A `GeneralizationReport` (write it with its ``save`` and `plot_generalization`).

    Raises:
        NotAForgedDatasetError: no manifest, no train or test split, or no test image of a fold's family.
        FamilyNotInDatasetError: a fold names a family the dataset does not have.
        InvalidFoldError: a fold without a training family, two folds of one name, ...
        UnknownPerturbationError: a perturbation label `robustness_grid()` does not have.
        FoldMismatchError: ``output/<fold>/fold.json`` was written for another fold or configuration.
        ConfigError, DatasetError: from training (a bad configuration, a split without both labels).

    Example:
        >>> folds = leave_one_out_folds(families)  # doctest: +SKIP
        >>> report = run_generalization("forged", config, folds, "runs/gen")  # doctest: +SKIP
        >>> print(report.to_markdown())  # doctest: +SKIP
    """
    # An absolute dataset path, so that a rerun from another folder or spelling resumes the same runs.
    root, output = Path(root).expanduser().resolve(), Path(output).expanduser()
    console = console or Console()
    subset_family = dataset_families(root)
    if not (root / "train").is_dir():
        raise NotAForgedDatasetError(f"{root} has no train split ({root / 'train'}): folds train there")
    folds = check_folds(folds, set(subset_family.values()))
    steps = perturbation_steps(robustness)
    if limit_per_subset is not None and limit_per_subset < 1:
        raise GeneralizationError(
            f"the number of test images per subset must be at least 1, got {limit_per_subset}"
        )
    samples = forged_test_samples(root, subset_family)
    if limit_per_subset is not None and samples:
        samples = draw_per_subset(samples, limit_per_subset, seed=config.seed)
    say = _sayer(console)
    runs: list[tuple[_FoldRun, list[Sample]]] = []
    for fold in folds:
        fold_samples = [sample for sample in samples if subset_family[sample.subset] in fold.families]
        missing = sorted(set(fold.families) - {subset_family[sample.subset] for sample in fold_samples})
        if missing:
            raise NotAForgedDatasetError(
                f"the test split of {root} holds no image of {', '.join(missing)} (fold {fold.name!r})"
            )
        run = _FoldRun(fold, root, config, subset_family, output / fold.name, steps, limit_per_subset)
        runs.append((run, fold_samples))
    # Every finished fold is read (and checked against its fold) before any training starts.
    finished = [run.finished(say) for run, _ in runs]
    results = [
        done or run.train_and_measure(fold_samples, batch_size=batch_size, console=console, command=command)
        for (run, fold_samples), done in zip(runs, finished, strict=True)
    ]
    return GeneralizationReport(
        folds=results,
        perturbations=[step.label for step in steps],
        dataset=str(root),
        detector=config.detector,
    )


@dataclass
class _FoldRun:
    fold: Fold
    root: Path
    config: TrainConfig
    subset_family: Mapping[str, str]
    folder: Path
    steps: Sequence[PerturbationStep]
    limit_per_subset: int | None

    @property
    def training_config(self) -> TrainConfig:
        return fold_training_config(self.config, self.root, self.fold, self.subset_family, self.folder)

    @property
    def evaluation_settings(self) -> dict[str, Any]:
        return {
            "perturbations": [step.label for step in self.steps],
            "limit_per_subset": self.limit_per_subset,
        }

    def train_and_measure(
        self, samples: Sequence[Sample], *, batch_size: int, console: Console, command: str | None
    ) -> FoldResult:
        """Train (or resume) the fold, measure its best weights and write ``fold.json``."""
        from pixelsleuth.detectors import create
        from pixelsleuth.train import loop

        config = self.training_config
        resume = (self.folder / "checkpoint.pt").is_file()
        held = ", ".join(self.fold.held_out) or "none"
        say = _sayer(console)
        say(
            f"fold {self.fold.name}: {'resuming' if resume else 'training'} on "
            f"{', '.join(self.fold.train_families)}; held out: {held}"
        )
        trained = loop.train(config, resume=resume, command=command, console=console)
        if not trained.best_weights.is_file():
            raise GeneralizationError(
                f"the training run in {self.folder} wrote no best.safetensors (no epoch gave a finite "
                f"validation {trained.metric}), so the fold cannot be measured"
            )
        detector = create(
            config.detector, trained.best_weights, device=config.device, **config.detector_kwargs
        )
        say(f"fold {self.fold.name}: measuring on {len(samples)} test image(s)")
        result = self._measure(detector, samples, batch_size, console)
        result.training = {
            "best_weights": trained.best_weights.name,
            "best_epoch": trained.best_epoch,
            "best_metric": _json_number(trained.best_metric),
            "metric": trained.metric,
            "epochs_run": trained.epochs_run,
            "stopped_early": trained.stopped_early,
            "classes": list(config.data.classes),
            "config": config.to_dict(),
        }
        result.save(self.folder / FOLD_RECORD)
        return result

    def finished(self, say: Callable[[str], None]) -> FoldResult | None:
        """The stored result when it can be reused as it is; None when the fold must (re)run."""
        from pixelsleuth.train.config import config_from_dict, training_differences

        path = self.folder / FOLD_RECORD
        if not path.is_file():
            return None
        stored = FoldResult.load(path)
        if stored.fold != self.fold:
            raise FoldMismatchError(
                f"{path} belongs to another fold (training on {', '.join(stored.fold.train_families)}, "
                f"holding out {', '.join(stored.fold.held_out) or 'none'}): choose another output folder"
            )
        stored_config = config_from_dict(stored.training.get("config", {}), source=str(path))
        config = self.training_config
        changed = training_differences(stored_config, config)
        if changed:
            raise FoldMismatchError(
                f"the fold in {self.folder} was trained with another configuration ({', '.join(changed)} "
                "differ): choose another output folder, or set them back"
            )
        if (
            stored_config.epochs == config.epochs
            and stored.evaluation.get("settings") == self.evaluation_settings
        ):
            say(f"fold {self.fold.name}: finished earlier, reusing {path}")
            return stored
        say(f"fold {self.fold.name}: the epochs or the measurement changed since {path}; running it again")
        return None

    def _measure(
        self, detector: Any, samples: Sequence[Sample], batch_size: int, console: Console
    ) -> FoldResult:
        from pixelsleuth.bench.robustness import robustness

        by_family = [replace(sample, subset=self.subset_family[sample.subset]) for sample in samples]
        run = score_samples(
            detector,
            by_family,
            batch_size=batch_size,
            progress=console.is_terminal,
            description=f"{self.fold.name}: scoring",
        )
        scores, failures = run.scores[0], run.failures[0]
        family_report = report_from_scores(by_family, scores, failures, detector=self.config.detector)
        subset_report = report_from_scores(samples, scores, failures, detector=self.config.detector)
        families = {
            name: FamilyResult(name, self.fold.is_seen(name), family_report.subsets[name])
            for name in self.fold.families
            if name in family_report.subsets
        }
        tested = list(self.fold.held_out or self.fold.train_families)
        measured = [name for name in tested if name in families]
        rows = [
            PerturbationResult(
                BASELINE,
                {name: families[name].metrics for name in measured},
                mean_metrics([families[name].metrics for name in measured], names=measured)
                if measured
                else None,
                sum(1 for failure in failures if failure.subset in tested),
            )
        ]
        robust_samples = [sample for sample in by_family if sample.subset in tested]
        if self.steps and robust_samples:
            report = robustness(detector, robust_samples, grid=list(self.steps), batch_size=batch_size)
            for row in report.rows:
                label = f"{row.family}:{row.strength:g}"
                if row.report is None:
                    rows.append(PerturbationResult(label, {}, None, len(row.failures)))
                else:
                    rows.append(
                        PerturbationResult(
                            label, dict(row.report.subsets), row.report.mean, len(row.failures)
                        )
                    )
        return FoldResult(
            fold=self.fold,
            families=families,
            subsets=dict(subset_report.subsets),
            robustness=rows,
            robustness_families=tested,
            evaluation={
                "settings": self.evaluation_settings,
                "n_test_images": len(samples),
                "n_failed": len(failures),
                "failed_examples": [f"{failure.path}: {failure.message}" for failure in failures[:10]],
            },
        )


def _sayer(console: Console) -> Callable[[str], None]:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    return say


__all__ = [
    "BASELINE",
    "DEFAULT_PERTURBATIONS",
    "PROTOCOLS",
    "FamilyNotInDatasetError",
    "FamilyResult",
    "Fold",
    "FoldMismatchError",
    "FoldResult",
    "GeneralizationError",
    "GeneralizationReport",
    "InvalidFoldError",
    "NotAForgedDatasetError",
    "PerturbationResult",
    "UnknownPerturbationError",
    "all_families_fold",
    "check_folds",
    "dataset_families",
    "family_subsets",
    "fold_training_config",
    "forged_test_samples",
    "leave_one_out_folds",
    "make_folds",
    "perturbation_steps",
    "plot_generalization",
    "run_generalization",
    "single_source_folds",
]
