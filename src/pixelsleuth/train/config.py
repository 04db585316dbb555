"""Training configuration: one dataclass tree, read from TOML (or YAML), overridable from the command line.

Defaults reproduce NPR's published training recipe (Tan et al., CVPR 2024, README and ``train.py`` of
chuangchuangtan/NPR-DeepfakeDetection): Adam with lr 2e-4 and betas (0.9, 0.999), batch size 32, no
weight decay, 50 epochs, random 224 crops with horizontal flips and no blur or JPEG augmentation, and
the learning rate multiplied by 0.8 after every 10th epoch (after 0-based epochs 10, 20, 30, 40).
The ``plateau`` schedule is CNNDetection's instead (Wang et al., CVPR 2020): when the validation
metric has not improved by `early_stop.min_delta` for `early_stop.patience` epochs the learning rate
is divided by 10, and training stops once it would fall below `schedule.min_lr`.

Overrides are ``key=value`` strings with dotted keys, e.g. ``optim.lr=1e-4`` or ``epochs=3``; values
are read as TOML values (``1e-4``, ``true``, ``[0.9, 0.99]``) and checked against the field's type.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from pixelsleuth.errors import PixelsleuthError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("step", "plateau", "none")
EARLY_STOP_METRICS = ("acc", "ap", "loss")
ON_ERROR = ("substitute", "raise")
# Fields that may change when a run is resumed: they do not change what the model learns.
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers", "device", "output"})


class ConfigError(PixelsleuthError):
    """A training configuration is missing, unreadable or has a wrong key or value."""

    type = "config_error"


@dataclass
class DataConfig:
    """Where the images come from.

    `train` and `val` are dataset folders or manifests (see `pixelsleuth.train.datasets.discover`);
    relative paths are taken from the working directory.
    Without `val`, a seeded, label-stratified `val_fraction` of the training images is held out.
    `classes`, when given, keeps only samples whose subset or generator folder is listed (NPR trains
    on the ForenSynths classes car, cat, chair and horse).
    """

    train: str = ""
    val: str | None = None
    val_fraction: float = 0.1
    train_split: str = "train"  # GenImage split read from `train`
    val_split: str = "val"  # GenImage split read from `val`
    classes: list[str] = field(default_factory=list)
    skip_labels: list[str] = field(default_factory=list)  # manifest labels to leave out, e.g. ["manip"]
    on_error: str = "substitute"  # unreadable images: "substitute" a neighbour, or "raise"


@dataclass
class AugmentConfig:
    """Training augmentation probabilities and ranges (validation only centre-crops).

    Each step has its own probability (see `pixelsleuth.train.augment.TrainTransform`): `resize_scale`
    is the range of resize factors (drawn log-uniformly; area interpolation down, one of
    `resize_up_filters` up), `noise_sigma` the range of Gaussian noise sigma in grey levels (0-255).
    """

    flip: bool = True
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.0, 3.0)
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    jpeg_methods: list[str] = field(default_factory=lambda: ["cv2", "pil"])
    resize_prob: float = 0.0
    resize_scale: tuple[float, float] = (0.5, 2.0)
    resize_up_filters: list[str] = field(default_factory=lambda: ["bilinear", "bicubic"])
    noise_prob: float = 0.0
    noise_sigma: tuple[float, float] = (1.0, 5.0)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam, adamw or sgd
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0  # sgd only
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    """Learning-rate decay: ``step`` (NPR), ``plateau`` (CNNDetection) or ``none``.

    ``step`` multiplies the rate by `factor` after every epoch whose 0-based index is a positive
    multiple of `every`; ``plateau`` multiplies it by `factor` when the early-stopping counter runs
    out. The rate never goes below `min_lr`; with ``plateau`` training stops instead.
    """

    name: str = "step"
    every: int = 10
    factor: float = 0.8
    min_lr: float = 1e-6


@dataclass
class EarlyStopConfig:
    """The validation metric that picks ``best.safetensors`` and stops (or decays) on a plateau.

    `patience` epochs without an improvement larger than `min_delta` stop training (with the
    ``plateau`` schedule: decay the rate first); 0 never stops early, as NPR's recipe.
    """

    metric: str = "acc"  # acc, ap or loss (validation loss: lower is better)
    patience: int = 0
    min_delta: float = 0.001


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    Example:
        >>> config = TrainConfig(data=DataConfig(train="data/train"), epochs=3)
        >>> apply_overrides(config, ["optim.lr=1e-4"]).optim.lr
        0.0001
    """

    detector: str = "npr"
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)
    crop_size: int = 224
    batch_size: int = 32
    epochs: int = 50
    seed: int = 0
    num_workers: int = 0
    device: str = "cpu"
    output: str = "runs/train"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(config: TrainConfig) -> TrainConfig:
    """Check value ranges and names; return the config unchanged or raise `ConfigError`."""
    problems: list[str] = []

    def check(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    check(bool(config.data.train), "data.train must name a dataset folder or manifest")
    check(0 < config.data.val_fraction < 1, "data.val_fraction must be between 0 and 1")
    check(config.data.on_error in ON_ERROR, f"data.on_error must be one of {', '.join(ON_ERROR)}")
    for name in ("blur_prob", "jpeg_prob", "resize_prob", "noise_prob"):
        check(0 <= getattr(config.augment, name) <= 1, f"augment.{name} must be between 0 and 1")
    for name in ("blur_sigma", "noise_sigma"):
        low, high = getattr(config.augment, name)
        check(0 <= low <= high, f"augment.{name} must be [low, high] with 0 <= low <= high")
    low, high = config.augment.resize_scale
    check(0 < low <= high, "augment.resize_scale must be [low, high] with 0 < low <= high")
    bad_filters = set(config.augment.resize_up_filters) - {"bilinear", "bicubic"}
    check(
        bool(config.augment.resize_up_filters) and not bad_filters,
        "augment.resize_up_filters must list 'bilinear' and/or 'bicubic'",
    )
    low_q, high_q = config.augment.jpeg_quality
    check(1 <= low_q <= high_q <= 100, "augment.jpeg_quality must be [low, high] within 1..100")
    bad_methods = set(config.augment.jpeg_methods) - {"cv2", "pil"}
    check(
        bool(config.augment.jpeg_methods) and not bad_methods,
        "augment.jpeg_methods must list 'cv2' and/or 'pil'",
    )
    check(config.optim.name in OPTIMIZERS, f"optim.name must be one of {', '.join(OPTIMIZERS)}")
    check(config.optim.lr > 0, "optim.lr must be positive")
    check(all(0 <= beta < 1 for beta in config.optim.betas), "optim.betas must lie in [0, 1)")
    check(config.optim.weight_decay >= 0, "optim.weight_decay must not be negative")
    check(config.schedule.name in SCHEDULES, f"schedule.name must be one of {', '.join(SCHEDULES)}")
    check(config.schedule.every >= 1, "schedule.every must be at least 1")
    check(0 < config.schedule.factor <= 1, "schedule.factor must be in (0, 1]")
    check(config.schedule.min_lr >= 0, "schedule.min_lr must not be negative")
    check(
        config.early_stop.metric in EARLY_STOP_METRICS,
        f"early_stop.metric must be one of {', '.join(EARLY_STOP_METRICS)}",
    )
    check(config.early_stop.patience >= 0, "early_stop.patience must not be negative (0 = never stop)")
    check(
        config.schedule.name != "plateau" or config.early_stop.patience > 0,
        "the plateau schedule needs early_stop.patience > 0",
    )
    for name in ("crop_size", "batch_size", "epochs"):
        check(getattr(config, name) >= 1, f"{name} must be at least 1")
    check(config.num_workers >= 0, "num_workers must not be negative")
    check(bool(config.output), "output must name a folder")
    if problems:
        raise ConfigError("invalid training configuration: " + "; ".join(problems))
    return config


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a TOML (or, with PyYAML installed, YAML) training config and apply `overrides`.

    Args:
        path: a ``.toml``, ``.yaml`` or ``.yml`` file.
        overrides: ``key=value`` strings with dotted keys, applied in order.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: the file is missing or unreadable, a key is unknown, or a value has the wrong type.

    Example:
        >>> config = load_config("configs/npr_forensynths.toml", ["epochs=3"])  # doctest: +SKIP
        >>> config.epochs  # doctest: +SKIP
        3
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no training config at {path}")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        try:
            record = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        record = _load_yaml(path, text)
    else:
        raise ConfigError(f"{path}: a training config must be a .toml, .yaml or .yml file")
    config = config_from_dict(record, source=str(path))
    return validate(apply_overrides(config, overrides, check=False))


def _load_yaml(path: Path, text: str) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{path} is YAML, which needs the PyYAML package (pip install pyyaml); "
            "or write the config as TOML"
        ) from None
    try:
        record = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys at its top level")
    return record


def config_from_dict(record: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """Build a `TrainConfig` from nested mappings, checking every key and value type."""
    return _build(TrainConfig, record, prefix="", source=source)


def apply_overrides(config: TrainConfig, overrides: Iterable[str], *, check: bool = True) -> TrainConfig:
    """A copy of `config` with ``key=value`` overrides applied (dotted keys reach nested sections).

    Example:
        >>> config = TrainConfig(data=DataConfig(train="data/train"))
        >>> apply_overrides(config, ["epochs=3", "optim.betas=[0.5, 0.9]"]).optim.betas
        (0.5, 0.9)
    """
    record = config.to_dict()
    for override in overrides:
        key, separator, raw = override.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ConfigError(f"override {override!r} is not key=value (e.g. --set optim.lr=1e-4)")
        _set_dotted(record, key, raw.strip())
    updated = config_from_dict(record, source="--set")
    return validate(updated) if check else updated


def _set_dotted(record: dict[str, Any], key: str, raw: str) -> None:
    parts = key.split(".")
    node_type: Any = TrainConfig
    node = record
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        if is_dataclass(node_type):
            hints = _hints(node_type)
            if part not in hints:
                raise _unknown_key(path, node_type)
            field_type = hints[part]
        else:  # a free-form table such as detector_kwargs
            field_type = Any
        if depth == len(parts) - 1:
            node[part] = _parse_override_value(raw, field_type)
            return
        if not (is_dataclass(field_type) or _is_dict(field_type)):
            raise ConfigError(f"{path} is a value, not a section: it has no key {parts[depth + 1]!r}")
        node = node.setdefault(part, {})
        node_type = field_type


def _parse_override_value(raw: str, field_type: Any) -> Any:
    inner, optional = _unwrap_optional(field_type)
    if optional and raw.lower() in ("none", "null", ""):
        return None
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word or path: keep the text
    if inner is str and not isinstance(value, str):
        return raw  # e.g. data.train=2024 names a folder, not a number
    if _list_item_type(inner) is str and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _build(cls: type, record: Mapping[str, Any], *, prefix: str, source: str) -> Any:
    if not isinstance(record, Mapping):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a table of keys")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key not in hints:
            raise _unknown_key(prefix + key, cls, source)
        values[key] = _coerce(value, hints[key], prefix + key, source)
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in missing if name not in values]
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(prefix + name for name in missing)}")
    return cls(**values)


def _coerce(value: Any, field_type: Any, key: str, source: str) -> Any:
    inner, optional = _unwrap_optional(field_type)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: {key} must not be empty")
    if is_dataclass(inner):
        return _build(inner, value, prefix=key + ".", source=source)
    if inner is Any:
        return value
    if inner is bool:
        if isinstance(value, bool):
            return value
        raise _wrong_type(key, "true or false", value, source)
    if inner is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _wrong_type(key, "an integer", value, source)
    if inner is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _wrong_type(key, "a number", value, source)
    if inner is str:
        if isinstance(value, str):
            return value
        raise _wrong_type(key, "a string", value, source)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _wrong_type(key, f"a list of {len(args)} values", value, source)
        items = zip(value, args, strict=True)
        return tuple(_coerce(item, arg, f"{key}[{i}]", source) for i, (item, arg) in enumerate(items))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise _wrong_type(key, "a list", value, source)
        return [_coerce(item, args[0], f"{key}[{i}]", source) for i, item in enumerate(value)]
    if _is_dict(inner):
        if not isinstance(value, Mapping):
            raise _wrong_type(key, "a table of keys", value, source)
        return dict(value)
    raise ConfigError(
        f"{source}: {key} has a type the config reader does not know ({inner})"
    )  # pragma: no cover


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(field_type: Any) -> tuple[Any, bool]:
    if typing.get_origin(field_type) in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
        if len(args) == 1:
            return args[0], True
    return field_type, False


def _list_item_type(field_type: Any) -> Any:
    if typing.get_origin(field_type) is list:
        return typing.get_args(field_type)[0]
    return None


def _is_dict(field_type: Any) -> bool:
    return field_type is dict or typing.get_origin(field_type) is dict


def _unknown_key(key: str, cls: type, source: str = "--set") -> ConfigError:
    section = key.rpartition(".")[0]
    where = f"under {section!r}" if section else "at the top level"
    valid = ", ".join(f.name for f in fields(cls))
    return ConfigError(f"{source}: unknown key {key!r}; valid keys {where}: {valid}")


def _wrong_type(key: str, expected: str, value: Any, source: str) -> ConfigError:
    return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")


def training_differences(before: TrainConfig, after: TrainConfig) -> list[str]:
    """Dotted keys whose values differ, leaving out those a resumed run may change."""
    old, new = _flatten(before.to_dict()), _flatten(after.to_dict())
    keys = sorted(set(old) | set(new))
    return [
        key for key in keys if old.get(key) != new.get(key) and key.split(".")[0] not in RESUMABLE_CHANGES
    ]


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping) and key != "detector_kwargs":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = list(value) if isinstance(value, tuple) else value
    return flat


__all__ = [
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "EarlyStopConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "load_config",
    "training_differences",
    "validate",
]
