"""The training loop behind ``pixelsleuth train``: BCE on a registered detector, validated every epoch.

A run folder holds, after every epoch:

- ``last.safetensors`` / ``last.json`` and ``best.safetensors`` / ``best.json``: weights and model
  cards (the command and configuration, the data seen with its label counts, validation metrics);
  load them with ``pixelsleuth.detectors.create(name, weights=...)``.
- ``checkpoint.pt``: model, optimizer, schedule, early-stopping state, RNG states and history, written
  atomically; ``train(config, resume=True)`` continues from it and ends with the same weights an
  uninterrupted run would (data order and augmentations derive from ``(seed, epoch, index)`` only).
- ``metrics.csv``, ``metrics.json`` and ``curves.png``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader, RandomSampler

from pixelsleuth.bench.metrics import accuracy, average_precision
from pixelsleuth.detectors import Detector, Metric, ModelCard, Preprocessing, create
from pixelsleuth.detectors.base import prepare
from pixelsleuth.detectors.card import card_path_for
from pixelsleuth.train.augment import EvalTransform, TrainTransform, train_transform
from pixelsleuth.train.config import (
    ConfigError,
    EarlyStopConfig,
    ScheduleConfig,
    TrainConfig,
    config_from_dict,
    training_differences,
    validate,
)
from pixelsleuth.train.datasets import (
    LABEL_NAMES,
    EmptyDatasetError,
    ImageDataset,
    Sample,
    discover,
    format_label_counts,
    holdout_split,
    label_counts,
)

CHECKPOINT_FORMAT = "pixelsleuth.train.checkpoint/1"
METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "val_ap", "lr", "seconds")


@dataclass
class EpochRecord:
    """What one epoch measured. `epoch` counts from 1; `lr` is the rate the epoch trained with."""

    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    val_ap: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    """Where a run's files are and how it ended."""

    output_dir: Path
    best_weights: Path
    last_weights: Path
    best_epoch: int
    best_metric: float
    metric: str
    epochs_run: int
    stopped_early: bool
    history: list[EpochRecord] = field(default_factory=list)


class LearningRateSchedule:
    """NPR's step decay or CNNDetection's decay on plateau, acting on the optimizer's rate directly."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: ScheduleConfig) -> None:
        self.optimizer = optimizer
        self.config = config
        self.decays = 0

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def end_of_epoch(self, epoch_index: int) -> None:
        """Step schedule: decay after 0-based epochs 10, 20, ... (NPR's ``epoch % delr_freq == 0``)."""
        if self.config.name == "step" and epoch_index > 0 and epoch_index % self.config.every == 0:
            self._set(max(self.lr * self.config.factor, self.config.min_lr))

    def on_plateau(self) -> bool:
        """Plateau schedule: decay; False (stop training) when the rate would drop below `min_lr`."""
        if self.config.name != "plateau":
            return False
        new_lr = self.lr * self.config.factor
        if new_lr < self.config.min_lr:
            return False
        self._set(new_lr)
        return True

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.decays += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decays": self.decays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decays = int(state["decays"])


class EarlyStopping:
    """Tracks the best validation metric and the epochs since it last improved by `min_delta`."""

    def __init__(self, config: EarlyStopConfig) -> None:
        self.config = config
        self.best: float | None = None
        self.best_epoch = 0
        self.reference: float | None = None  # the value an improvement must beat by min_delta
        self.counter = 0

    @property
    def higher_is_better(self) -> bool:
        return self.config.metric != "loss"

    def update(self, value: float, epoch: int) -> bool:
        """Record `value`; True when it is the best so far (and the best weights should be saved)."""
        if math.isnan(value):
            self.counter += 1
            return False
        sign = 1.0 if self.higher_is_better else -1.0
        if self.reference is None or sign * (value - self.reference) > self.config.min_delta:
            self.reference = value
            self.counter = 0
        else:
            self.counter += 1
        if self.best is None or sign * (value - self.best) > 0:
            self.best, self.best_epoch = value, epoch
            return True
        return False

    @property
    def plateaued(self) -> bool:
        return self.config.patience > 0 and self.counter >= self.config.patience

    def reset_counter(self) -> None:
        self.counter = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "reference": self.reference,
            "counter": self.counter,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.reference, self.counter = state["reference"], int(state["counter"])


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    command: str | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train `config.detector` on `config.data` and write the run folder `config.output`.

    Args:
        config: the run's configuration (see `pixelsleuth.train.config`).
        resume: continue from ``checkpoint.pt`` in the output folder.
        command: the command line to record in the model cards (the Python call when None).
        console: where the label counts and progress go (stdout by default).

    Returns:
        The paths of the best and last weights and the per-epoch history.

    Raises:
        ConfigError: invalid configuration, a checkpoint that belongs to another configuration, a
            fresh run into a folder that already holds one, or ``resume`` without a checkpoint.
        DatasetError: the data cannot be found or holds no images.

    Example:
        >>> result = train(load_config("configs/npr_forensynths.toml"))  # doctest: +SKIP
        >>> result.best_weights  # doctest: +SKIP
        PosixPath('runs/npr-forensynths/best.safetensors')
    """
    config = validate(config)
    console = console or Console()
    command = command or "pixelsleuth.train.train(config)"
    output = Path(config.output)
    checkpoint_path = output / "checkpoint.pt"
    state = _read_checkpoint(checkpoint_path, config) if resume else None
    if state is None and checkpoint_path.exists():
        raise ConfigError(
            f"{output} already holds a training run (checkpoint.pt): pass --resume to continue it, "
            "or choose another output folder"
        )

    train_samples, val_samples, val_description = _samples(config)
    output.mkdir(parents=True, exist_ok=True)
    counts = {"train": label_counts(train_samples), "val": label_counts(val_samples)}
    _say(console, format_label_counts(counts["train"], title=f"training images ({config.data.train})"))
    _say(console, format_label_counts(counts["val"], title=f"validation images ({val_description})"))

    with _deterministic():
        _seed_everything(config.seed)
        detector = create(config.detector, device=config.device, **config.detector_kwargs)
        _check_crop_size(config.crop_size, detector.preprocessing)
        base_card = detector.card
        model = detector.model
        # Channels-last convolutions train about 1.5x faster on CPU (benchmarks/train_cost.py, BENCHMARKS.md).
        model.to(memory_format=torch.channels_last)
        optimizer = _optimizer(model, config)
        schedule = LearningRateSchedule(optimizer, config.schedule)
        stopper = EarlyStopping(config.early_stop)
        history: list[EpochRecord] = []
        start_epoch, stopped_early = 0, False
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            stopper.load_state_dict(state["early_stop"])
            history = [EpochRecord(**record) for record in state["history"]]
            start_epoch, stopped_early = int(state["epoch"]), bool(state["stopped_early"])
            _set_rng_state(state["rng"])
            _say(console, f"resuming {output} after epoch {start_epoch}")

        train_set = ImageDataset(
            train_samples,
            _with_preprocessing(_train_transform(config), detector.preprocessing),
            seed=config.seed,
            on_error=config.data.on_error,
        )
        val_set = ImageDataset(
            val_samples,
            _with_preprocessing(EvalTransform(config.crop_size), detector.preprocessing),
            seed=config.seed,
            on_error=config.data.on_error,
        )
        card_facts = _CardFacts(config, command, base_card, counts, val_description)

        for epoch_index in range(start_epoch, config.epochs):
            if stopped_early:
                break
            started = time.perf_counter()
            lr = schedule.lr
            train_loss = _train_epoch(detector, optimizer, train_set, config, epoch_index, console)
            val_loss, val_acc, val_ap = _validate(detector, val_set, config)
            record = EpochRecord(
                epoch_index + 1, train_loss, val_loss, val_acc, val_ap, lr, time.perf_counter() - started
            )
            history.append(record)
            _say(
                console,
                f"epoch {record.epoch}/{config.epochs}: train loss {train_loss:.4f}, "
                f"val loss {val_loss:.4f}, val ACC {val_acc:.4f}, val AP {val_ap:.4f}, lr {lr:.3g}",
            )
            metric_value = {"acc": val_acc, "ap": val_ap, "loss": val_loss}[config.early_stop.metric]
            improved = stopper.update(metric_value, record.epoch)
            card = card_facts.card(record)
            _save_weights(detector, output / "last.safetensors", card)
            if improved:
                _save_weights(detector, output / "best.safetensors", card)
            if stopper.plateaued:
                if schedule.on_plateau():
                    _say(console, f"no improvement for {stopper.counter} epochs: lr now {schedule.lr:.3g}")
                    stopper.reset_counter()
                else:
                    stopped_early = True
                    metric = config.early_stop.metric
                    _say(console, f"early stop: no {metric} improvement for {stopper.counter} epochs")
            schedule.end_of_epoch(epoch_index)
            _write_checkpoint(
                checkpoint_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch_index + 1,
                    "stopped_early": stopped_early,
                    "config": config.to_dict(),
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "early_stop": stopper.state_dict(),
                    "history": [asdict(item) for item in history],
                    "rng": _rng_state(),
                },
            )
            _write_metrics(output, history, stopper, stopped_early, config)
            _write_curves(output / "curves.png", history)

    best = stopper.best if stopper.best is not None else math.nan
    return TrainResult(
        output_dir=output,
        best_weights=output / "best.safetensors",
        last_weights=output / "last.safetensors",
        best_epoch=stopper.best_epoch,
        best_metric=float(best),
        metric=config.early_stop.metric,
        epochs_run=len(history),
        stopped_early=stopped_early,
        history=history,
    )


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _samples(config: TrainConfig) -> tuple[list[Sample], list[Sample], str]:
    data = config.data
    train_samples = _select_classes(
        discover(data.train, split=data.train_split, skip_labels=data.skip_labels), data.classes, data.train
    )
    if data.val:
        val_samples = _select_classes(
            discover(data.val, split=data.val_split, skip_labels=data.skip_labels), data.classes, data.val
        )
        description = data.val
    else:
        train_samples, val_samples = holdout_split(train_samples, data.val_fraction, seed=config.seed)
        description = f"{data.val_fraction:g} of {data.train} held out with seed {config.seed}"
    for name, samples, where in (
        ("training", train_samples, data.train),
        ("validation", val_samples, description),
    ):
        missing = [LABEL_NAMES[label] for label in (0, 1) if not any(s.label == label for s in samples)]
        if missing:
            raise EmptyDatasetError(
                f"the {name} images ({where}) hold no {' and no '.join(missing)} images: "
                "a detector needs both real and generated examples"
            )
    return train_samples, val_samples, description


def _select_classes(samples: list[Sample], classes: Sequence[str], source: str) -> list[Sample]:
    if not classes:
        return samples
    wanted = set(classes)
    kept = [s for s in samples if s.subset in wanted or (s.generator or "") in wanted]
    if not kept:
        available = sorted({s.subset for s in samples} | {s.generator for s in samples if s.generator})
        raise EmptyDatasetError(
            f"none of the classes {', '.join(classes)} is in {source}; it has: {', '.join(available)}"
        )
    return kept


def _train_transform(config: TrainConfig) -> TrainTransform:
    # Every [augment] key (resize and noise included) reaches the transform through one builder.
    return train_transform(config.augment, config.crop_size)


def _with_preprocessing(
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray], preprocessing: Preprocessing
) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    # The detector's own size steps (resize, centre crop, crop to a multiple) follow the augmentation,
    # so the model sees in training what `Detector.predict` gives it.
    def apply(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.ascontiguousarray(prepare(transform(image, rng), preprocessing))

    return apply


def _check_crop_size(crop_size: int, preprocessing: Preprocessing) -> None:
    if crop_size % preprocessing.crop_multiple:
        raise ConfigError(
            f"crop_size {crop_size} is not a multiple of {preprocessing.crop_multiple}, which this detector "
            "needs: choose a crop size it divides"
        )


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    optim = config.optim
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optim.name == "adam":
        return torch.optim.Adam(parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
    if optim.name == "adamw":
        return torch.optim.AdamW(parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)
    return torch.optim.SGD(parameters, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def _loader(dataset: ImageDataset, config: TrainConfig, epoch_index: int, *, shuffle: bool) -> DataLoader:
    dataset.set_epoch(epoch_index)
    sampler = None
    if shuffle:
        order = torch.Generator().manual_seed(_derived_seed(config.seed, epoch_index, "order"))
        sampler = RandomSampler(dataset, generator=order)
    workers = torch.Generator().manual_seed(_derived_seed(config.seed, epoch_index, "workers"))
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        worker_init_fn=_seed_worker,
        generator=workers,
        pin_memory=str(config.device).startswith("cuda"),
    )


def _derived_seed(seed: int, epoch_index: int, purpose: str) -> int:
    return int(np.random.SeedSequence([seed, epoch_index, sum(map(ord, purpose))]).generate_state(1)[0])


def _seed_worker(worker_id: int) -> None:
    # Augmentations draw from per-item generators; this only pins any other randomness in a worker.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _train_epoch(
    detector: Detector,
    optimizer: torch.optim.Optimizer,
    dataset: ImageDataset,
    config: TrainConfig,
    epoch_index: int,
    console: Console,
) -> float:
    model = detector.model
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    total, count = 0.0, 0
    loader = _loader(dataset, config, epoch_index, shuffle=True)
    with _progress(console, f"epoch {epoch_index + 1}/{config.epochs}", len(loader)) as advance:
        for images, labels in loader:
            inputs = detector.normalise(images).contiguous(memory_format=torch.channels_last)
            targets = labels.to(detector.device).float()
            loss = loss_fn(detector.logits(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(labels)
            count += len(labels)
            advance(float(loss.detach()))
    model.eval()
    return total / max(count, 1)


@torch.inference_mode()
def _validate(detector: Detector, dataset: ImageDataset, config: TrainConfig) -> tuple[float, float, float]:
    detector.model.eval()
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    loss_sum = 0.0
    for images, batch_labels in _loader(dataset, config, 0, shuffle=False):
        inputs = detector.normalise(images).contiguous(memory_format=torch.channels_last)
        logits = detector.logits(inputs).float()
        targets = batch_labels.to(detector.device).float()
        loss_sum += float(
            torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
        )
        scores.append(torch.sigmoid(logits).cpu().numpy())
        labels.append(batch_labels.numpy())
    all_scores, all_labels = np.concatenate(scores), np.concatenate(labels)
    mean_loss = loss_sum / len(all_labels)
    return mean_loss, accuracy(all_labels, all_scores), average_precision(all_labels, all_scores)


@contextmanager
def _progress(console: Console, description: str, total: int) -> Iterator[Callable[[float], None]]:
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total, loss=math.nan)

        def advance(loss: float) -> None:
            progress.update(task, advance=1, loss=loss)

        yield advance


@dataclass
class _CardFacts:
    config: TrainConfig
    command: str
    base: ModelCard
    counts: dict[str, dict[str, dict[str, int]]]
    val_description: str

    def card(self, record: EpochRecord) -> ModelCard:
        train_total = _totals(self.counts["train"])
        val_total = _totals(self.counts["val"])
        training_data = (
            f"train: {self.config.data.train} ({train_total['real']} real, {train_total['fake']} fake); "
            f"validation: {self.val_description} ({val_total['real']} real, {val_total['fake']} fake)"
        )
        dataset = f"validation: {self.val_description}"
        return ModelCard(
            detector=self.config.detector,
            version=f"{Path(self.config.output).name}-epoch{record.epoch}",
            architecture=self.base.architecture,
            preprocessing=self.base.preprocessing,
            training_data=training_data,
            training_command=self.command,
            metrics=[
                Metric("ACC", record.val_acc, dataset, self.command),
                Metric("AP", record.val_ap, dataset, self.command),
                Metric("BCE loss", record.val_loss, dataset, self.command),
            ],
            license=self.base.license,
            notes=f"trained with pixelsleuth train: epoch {record.epoch} of {self.config.epochs}",
            extra={
                "epoch": record.epoch,
                "detector_kwargs": dict(self.config.detector_kwargs),  # create(name, weights, **these)
                "config": self.config.to_dict(),
                "label_counts": self.counts,
                "selected_by": self.config.early_stop.metric,
            },
        )


def _totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {key: sum(row[key] for row in counts.values()) for key in ("real", "fake", "total")}


def _save_weights(detector: Detector, path: Path, card: ModelCard) -> None:
    partial = path.with_name(path.stem + ".partial.safetensors")
    detector.save(partial, card)
    # Two renames are not one atomic step: a crash between them leaves the previous card beside the new
    # weights until the next save (each file on its own is always complete).
    os.replace(partial, path)
    os.replace(card_path_for(partial), card_path_for(path))


def _write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _read_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"nothing to resume: no checkpoint.pt in {path.parent}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise ConfigError(f"cannot read the checkpoint {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not a pixelsleuth training checkpoint")
    changed = training_differences(config_from_dict(state["config"], source=str(path)), config)
    if changed:
        raise ConfigError(
            f"the checkpoint in {path.parent} was trained with another configuration ({', '.join(changed)} "
            "differ); only epochs, num_workers, device and output may change when resuming"
        )
    return state


def _write_metrics(
    output: Path, history: list[EpochRecord], stopper: EarlyStopping, stopped_early: bool, config: TrainConfig
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for record in history:
        writer.writerow([getattr(record, column) for column in METRIC_COLUMNS])
    _write_text(output / "metrics.csv", buffer.getvalue())
    summary = {
        "metric": config.early_stop.metric,
        "best_epoch": stopper.best_epoch,
        "best_value": _json_number(stopper.best),
        "stopped_early": stopped_early,
        "epochs": [{key: _json_number(value) for key, value in asdict(r).items()} for r in history],
        "config": config.to_dict(),
    }
    _write_text(output / "metrics.json", json.dumps(summary, indent=2) + "\n")


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _write_curves(path: Path, history: list[EpochRecord]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r.epoch for r in history]
    figure = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(figure)
    losses, scores = figure.subplots(1, 2)
    # Fixed margins: a layout engine would double the cost of a figure written every epoch.
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9, wspace=0.2)
    losses.plot(epochs, [r.train_loss for r in history], marker="o", label="train loss")
    losses.plot(epochs, [r.val_loss for r in history], marker="o", label="validation loss")
    losses.set(xlabel="epoch", ylabel="BCE loss", title="loss")
    losses.legend()
    scores.plot(epochs, [r.val_acc for r in history], marker="o", label="validation ACC")
    scores.plot(epochs, [r.val_ap for r in history], marker="o", label="validation AP")
    scores.set(xlabel="epoch", ylim=(0, 1.02), title="validation")
    scores.legend()
    partial = path.with_name(path.stem + ".partial.png")
    figure.savefig(partial, dpi=100)
    os.replace(partial, path)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextmanager
def _deterministic() -> Iterator[None]:
    # Deterministic kernels where torch has them (CPU: nearly all); warn rather than fail where not.
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn_only)


def _rng_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
