"""Leave-one-generator-out over the pool: train without a generator (or a family), test on it.

The pool's crops (`pixelsleuth.bench.poolset.prepare_pool_crops`: ``CROPS/<variant>/<split>.csv`` for
the variants png and jpeg90, splits train, calib and test) hold genuine photos and images of many real
generators. A *fold* holds one generator, or one family of generators, out: a supervised detector is
trained (`pixelsleuth.train.loop.train`) on the train split's crops without the held-out fakes,
validated on the calib split without them, and measured on the test split's genuine crops against the
held-out generator's test crops, which it never saw. The reference fold ``all`` trains on every
generator with the same budget, so that each held-out generator is also measured seen: the gap is what
not having seen it costs.

With ``stack`` detectors (fixed ones that never saw any generated image, e.g. ``fsd``, and the spectral
check), each fold also fits the fused score (`pixelsleuth.verdict.stack.fit_stacker`) on the calib split
without the held-out generator and measures it the same way, with the false-positive and true-positive
rates at the operating point it set on the calib split's genuine crops.

Each fold writes ``OUTPUT/<fold>/`` (the training run) and ``OUTPUT/<fold>/leaveout-<by>.json`` (by
generator or family); a rerun with the same output folder reads finished folds and resumes interrupted
training. Fixed inputs are computed once into ``OUTPUT/features.json``.

Example:
    >>> folds = pool_folds([{"label": "fake", "generator": "a", "family": "gan"}] * 9, by="generator")
    >>> [fold.name for fold in folds]
    ['all', 'without-a']
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixelsleuth.bench.metrics import average_precision, roc_auc, tpr_at_fpr
from pixelsleuth.bench.poolset import VARIANTS, write_variant_manifest
from pixelsleuth.errors import PixelsleuthError

if TYPE_CHECKING:
    from pixelsleuth.train.config import TrainConfig

SCHEMA = "pixelsleuth.leaveout/1"
FEATURES_FILE = "features.json"
ALL_FOLD = "all"
GROUPINGS = ("generator", "family")


class LeaveOutError(PixelsleuthError):
    """The pool crops or the requested folds cannot be used for the protocol."""


@dataclass(frozen=True)
class PoolFold:
    """One training run of the protocol: `held_out` names the generators (or family) it never sees."""

    name: str
    held_out: str | None  # None: the reference fold that trains on every generator
    by: str = "generator"

    def holds_out(self, row: dict[str, str]) -> bool:
        return self.held_out is not None and row["label"] == "fake" and row[self.by] == self.held_out


def read_crops(crops: str | Path, split: str, variants: Sequence[str] = VARIANTS) -> list[dict[str, str]]:
    """The rows of ``CROPS/<variant>/<split>.csv`` for each variant, paths made absolute."""
    crops = Path(crops).expanduser().resolve()
    rows = []
    for variant in variants:
        manifest = crops / variant / f"{split}.csv"
        if not manifest.is_file():
            raise LeaveOutError(
                f"{manifest} is missing: write the pool crops with prepare_pool_crops (see BENCHMARKS.md)"
            )
        with manifest.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                rows.append({**row, "path": str(manifest.parent / row["path"]), "variant": variant})
    return rows


def pool_folds(
    rows: Iterable[dict[str, str]],
    *,
    by: str = "generator",
    names: Sequence[str] | None = None,
    minimum: int = 8,
) -> list[PoolFold]:
    """The reference fold and one fold per generator (or family) with at least `minimum` test fakes.

    Args:
        rows: the test split's rows (`read_crops`), which decide what can be measured.
        by: ``"generator"`` or ``"family"``.
        names: hold out only these (each must have test crops); None = every one with enough crops.
        minimum: the fewest generated test crops a held-out group needs to be measured.
    """
    if by not in GROUPINGS:
        raise LeaveOutError(f"folds are by generator or by family, not {by!r}")
    counts = Counter(row[by] for row in rows if row["label"] == "fake")
    if names is None:
        chosen = sorted(name for name, count in counts.items() if count >= minimum)
    else:
        unknown = [name for name in names if name not in counts]
        if unknown:
            known = ", ".join(sorted(counts))
            raise LeaveOutError(f"the test split has no {by} {', '.join(unknown)}; it has {known}")
        chosen = list(dict.fromkeys(names))
    return [PoolFold(ALL_FOLD, None, by)] + [PoolFold(f"without-{name}", name, by) for name in chosen]


def held_out_metrics(
    real: np.ndarray, fake: np.ndarray, *, threshold: float | None = None
) -> dict[str, float]:
    """AUC, AP and TPR at 1 % FPR of fake vs real scores; with `threshold`, the FPR/TPR there."""
    labels = np.r_[np.zeros(real.size), np.ones(fake.size)]
    scores = np.r_[real, fake]
    keep = np.isfinite(scores)
    labels, scores = labels[keep], scores[keep]
    record = {
        "auc": roc_auc(labels, scores),
        "ap": average_precision(labels, scores),
        "tpr_at_1pct_fpr": tpr_at_fpr(labels, scores, 0.01).tpr,
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
    }
    if threshold is not None:
        record["fpr_at_operating_point"] = float(np.mean(scores[labels == 0] >= threshold))
        record["tpr_at_operating_point"] = float(np.mean(scores[labels == 1] >= threshold))
    return record


FeatureFunction = Callable[[Sequence[str]], dict[str, dict[str, float]]]


def analyzer_features(detectors: Sequence[str], *, spectral: bool = True) -> FeatureFunction:
    """Stack inputs of each path, computed as `pixelsleuth scan` does (`stack_inputs`)."""
    from pixelsleuth.pipeline import Analyzer, AnalyzerConfig, DetectorSpec
    from pixelsleuth.verdict.stack import stack_inputs

    specs = tuple(DetectorSpec.parse(text) for text in detectors)
    analyzer = Analyzer(
        AnalyzerConfig(sources=("spectral",) if spectral else (), detectors=specs, fusion=None)
    )

    def compute(paths: Sequence[str]) -> dict[str, dict[str, float]]:
        values = {}
        for path in paths:
            try:
                values[path] = stack_inputs(analyzer, path)
            except PixelsleuthError:
                values[path] = {}
        return values

    return compute


def detector_logits(
    name: str, weights: Path, paths: Sequence[str], *, batch: int = 32
) -> dict[str, dict[str, float]]:
    """One detector's raw logit per path (as `feature_values` reads it), scored a batch at a time."""
    from pixelsleuth.detectors import create
    from pixelsleuth.intake import load_image
    from pixelsleuth.verdict.stack import logit

    detector = create(name, weights)
    values: dict[str, dict[str, float]] = {}
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        probabilities = detector.predict([load_image(path).rgb for path in chunk], batch_size=batch)
        values.update(
            {path: {f"detector:{name}": logit(p)} for path, p in zip(chunk, probabilities, strict=True)}
        )
    return values


def cached_features(
    path: Path, paths: Sequence[str], compute: FeatureFunction
) -> dict[str, dict[str, float]]:
    """`compute` over `paths`, read from / added to the JSON cache at `path`."""
    cache: dict[str, dict[str, float]] = json.loads(path.read_text()) if path.is_file() else {}
    missing = [item for item in dict.fromkeys(paths) if item not in cache]
    if missing:
        cache.update(compute(missing))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache))
    return cache


def _column(rows: Sequence[dict[str, str]], features: dict[str, dict[str, float]], name: str) -> np.ndarray:
    return np.array([features[row["path"]].get(name, math.nan) for row in rows], np.float64)


def measure_fold(
    fold: PoolFold,
    calib: Sequence[dict[str, str]],
    test: Sequence[dict[str, str]],
    features: dict[str, dict[str, float]],
    detector_feature: str,
    stack_features: Sequence[str],
) -> dict[str, Any]:
    """Per held-out group (every group for the reference fold): the detector alone and the fused score."""
    from pixelsleuth.verdict.stack import fit_stacker

    groups = sorted({row[fold.by] for row in test if row["label"] == "fake"})
    if fold.held_out is not None:
        groups = [fold.held_out]
    calib_kept = [row for row in calib if not fold.holds_out(row)]
    stacked = [detector_feature, *stack_features]
    matrix = np.stack([_column(calib_kept, features, name) for name in stacked], axis=1)
    labels = np.array([row["label"] == "fake" for row in calib_kept], np.float64)
    stacker = fit_stacker(matrix, labels, stacked, dataset=f"pool calib without {fold.held_out or 'nothing'}")
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        real_rows = [row for row in test if row["variant"] == variant and row["label"] == "real"]
        real_detector = _column(real_rows, features, detector_feature)
        real_fused = _fused(stacker, real_rows, features)
        for group in groups:
            fake_rows = [
                row
                for row in test
                if row["variant"] == variant and row["label"] == "fake" and row[fold.by] == group
            ]
            results.setdefault(group, {})[variant] = {
                "detector": held_out_metrics(real_detector, _column(fake_rows, features, detector_feature)),
                "fused": held_out_metrics(
                    real_fused,
                    _fused(stacker, fake_rows, features),
                    threshold=stacker.operating_point.threshold,
                ),
            }
    return {"groups": results, "stack": {"features": stacked, "weights": list(stacker.weights)}}


def _fused(stacker: Any, rows: Sequence[dict[str, str]], features: dict[str, dict[str, float]]) -> np.ndarray:
    if not rows:
        return np.zeros(0)
    matrix = np.stack([_column(rows, features, name) for name in stacker.features], axis=1)
    return stacker.probabilities(matrix)


@dataclass
class LeaveOutRun:
    """Everything one run of the protocol needs; `run` trains and measures each fold."""

    crops: Path
    config: TrainConfig
    folds: Sequence[PoolFold]
    output: Path
    stack: Sequence[str] = ()  # NAME=WEIGHTS of fixed detectors stacked with the trained one
    say: Callable[[str], None] = print
    command: str | None = None

    def run(self) -> dict[str, Any]:
        train, calib, test = (read_crops(self.crops, split) for split in ("train", "calib", "test"))
        # The stack is fitted on one crop per calib image (half the scoring, the same images).
        measured = [*(row for row in calib if row["crop"] == "0"), *test]
        fixed = cached_features(
            self.output / FEATURES_FILE, [row["path"] for row in measured], analyzer_features(self.stack)
        )
        stack_features = ["spectral"] + [f"detector:{text.split('=')[0]}" for text in self.stack]
        folds = {}
        for fold in self.folds:
            # The reference fold is shared by both groupings: one record each, one training run.
            record_path = self.output / fold.name / f"leaveout-{fold.by}.json"
            if record_path.is_file():
                self.say(f"fold {fold.name}: finished earlier, read from {record_path}")
                folds[fold.name] = json.loads(record_path.read_text())
                continue
            weights = self._train(fold, train, calib)
            self.say(f"fold {fold.name}: scoring {len(measured)} calib and test crops")
            trained = detector_logits(self.config.detector, weights, [row["path"] for row in measured])
            feature = f"detector:{self.config.detector}"
            merged = {path: {**fixed[path], **trained[path]} for path in trained}
            calib_measured = measured[: len(measured) - len(test)]
            measurement = measure_fold(fold, calib_measured, test, merged, feature, stack_features)
            record = {"fold": asdict(fold), **measurement}
            record_path.write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
            folds[fold.name] = record
        return {"schema": SCHEMA, "crops": str(self.crops), "detector": self.config.detector, "folds": folds}

    def _train(
        self, fold: PoolFold, train: Sequence[dict[str, str]], calib: Sequence[dict[str, str]]
    ) -> Path:
        from pixelsleuth.train import loop

        folder = self.output / fold.name
        kept = [row for row in train if not fold.holds_out(row)]
        write_variant_manifest(folder / "train.csv", kept)
        write_variant_manifest(folder / "val.csv", [row for row in calib if not fold.holds_out(row)])
        data = replace(self.config.data, train=str(folder / "train.csv"), val=str(folder / "val.csv"))
        config = replace(self.config, data=data, output=str(folder))
        resume = (folder / "checkpoint.pt").is_file()
        self.say(
            f"fold {fold.name}: {'resuming' if resume else 'training'} on {len(kept)} crops "
            f"(held out: {fold.held_out or 'nothing'})"
        )
        result = loop.train(config, resume=resume, command=self.command)
        if not result.best_weights.is_file():
            raise LeaveOutError(f"the training run in {folder} wrote no best.safetensors")
        return result.best_weights


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def report_markdown(report: dict[str, Any], variant: str = "png") -> str:
    """The held-out table: per held-out group, seen (fold ``all``) vs unseen, detector alone and fused."""
    folds = report["folds"]
    reference = folds.get(ALL_FOLD, {}).get("groups", {})
    lines = [
        f"| held out | n real / fake | {report['detector']} seen AUC | unseen AUC | unseen TPR@1% | "
        "fused seen AUC | fused unseen AUC | fused unseen TPR@1% | fused FPR / TPR at op. point |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    unseen_auc, fused_auc = [], []
    for record in folds.values():
        held = record["fold"]["held_out"]
        if held is None:
            continue
        row = record["groups"][held][variant]
        seen = reference.get(held, {}).get(variant)
        detector, fused = row["detector"], row["fused"]
        unseen_auc.append(detector["auc"])
        fused_auc.append(fused["auc"])
        cells = [
            held,
            f"{detector['n_real']} / {detector['n_fake']}",
            _pct(seen["detector"]["auc"]) if seen else "",
            _pct(detector["auc"]),
            _pct(detector["tpr_at_1pct_fpr"]),
            _pct(seen["fused"]["auc"]) if seen else "",
            _pct(fused["auc"]),
            _pct(fused["tpr_at_1pct_fpr"]),
            f"{_pct(fused['fpr_at_operating_point'])} / {_pct(fused['tpr_at_operating_point'])}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if unseen_auc:
        lines.append(
            f"| **mean** | | | **{_pct(float(np.nanmean(unseen_auc)))}** | | | "
            f"**{_pct(float(np.nanmean(fused_auc)))}** | | |"
        )
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"
