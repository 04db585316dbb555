"""How `pixelsleuth serve` is configured: one frozen dataclass, filled from keywords or `PIXELSLEUTH_*`.

Example:
    >>> config = ServiceConfig.from_env({"PIXELSLEUTH_API_KEYS": "k1, k2", "PIXELSLEUTH_WORKERS": "2"})
    >>> config.api_keys, config.workers
    (('k1', 'k2'), 2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pixelsleuth.errors import UsageError
from pixelsleuth.outputs.store import default_store_path

MiB = 2**20


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the REST service needs; every field has a safe default.

    Attributes:
        store: the SQLite results store (the source of truth; the service adds its own tables to it).
        data_dir: where uploaded images are kept while `upload_retention_s` lasts; default: a folder
            named after the store with ``.uploads`` appended, next to it.
        workers: analysis worker processes (each an `IsolatedAnalyzer`) per analysis configuration.
        localize: run localization when a request does not say (``?localize=true|false`` decides).
        default_detectors: run the detectors shipped with pixelsleuth (False: provenance and pixel
            checks only, much faster; the verdict is then the uncalibrated evidence combination).
        api_keys: accepted keys (``Authorization: Bearer KEY``); empty (and no `admin_keys`): no
            authentication (only sensible on 127.0.0.1). A key reads only the results it created.
        admin_keys: keys accepted like `api_keys` that can also read every result, whoever created it.
        max_upload_bytes: the largest image accepted, enforced while the body streams in.
        max_batch_bytes: the largest request body of a multipart batch.
        max_batch_files: the most files one batch may hold.
        max_pixels: images with more pixels are refused from their header (decompression bombs).
        upload_retention_s: how long an uploaded image (and its display picture and maps) stays on
            disk; afterwards the image, maps and report pictures give 410, the analysis JSON stays.
        analysis_timeout_s: the time one analysis may take before it is stopped (504).
        localize_timeout_s: the same with localization.
        rate_limit_per_minute: requests one key (or client address, without keys) may make to /v1 per
            minute, as a token bucket with that burst; 0: no limit.
        max_concurrent_per_key: analyses one key may have running at once; 0: no limit.
        allowed_folders: server folders a batch may name (``{"folder": PATH}``); empty: none.
    """

    store: Path = field(default_factory=default_store_path)
    data_dir: Path | None = None
    workers: int = 1
    localize: bool = False
    default_detectors: bool = True
    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    max_upload_bytes: int = 50 * MiB
    max_batch_bytes: int = 500 * MiB
    max_batch_files: int = 1000
    max_pixels: int = 100_000_000
    upload_retention_s: float = 3600.0
    analysis_timeout_s: float = 60.0
    localize_timeout_s: float = 600.0
    rate_limit_per_minute: int = 120
    max_concurrent_per_key: int = 4
    allowed_folders: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError("the service needs at least one analysis worker")
        if self.max_upload_bytes < 1 or self.max_batch_bytes < 1 or self.max_batch_files < 1:
            raise UsageError("upload limits must be positive")
        if self.analysis_timeout_s <= 0 or self.localize_timeout_s <= 0:
            raise UsageError("analysis timeouts must be positive numbers of seconds")
        if self.upload_retention_s < 0 or self.rate_limit_per_minute < 0 or self.max_concurrent_per_key < 0:
            raise UsageError("retention and rate limits cannot be negative")
        if any(not key for key in (*self.api_keys, *self.admin_keys)):
            raise UsageError("an API key cannot be empty")

    @property
    def keyed(self) -> bool:
        """True when requests to /v1 need a key (API or admin keys are configured)."""
        return bool(self.api_keys or self.admin_keys)

    @property
    def uploads(self) -> Path:
        """The folder that holds uploaded images."""
        return self.data_dir or Path(str(self.store) + ".uploads")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServiceConfig:
        """A config from `PIXELSLEUTH_<FIELD>` variables (upper case), then `overrides` (None is skipped).

        Lists (``PIXELSLEUTH_API_KEYS``, ``PIXELSLEUTH_ADMIN_KEYS``, ``PIXELSLEUTH_ALLOWED_FOLDERS``) are
        comma-separated; booleans are ``1/true/yes/on`` or ``0/false/no/off``; sizes are bytes.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = environ.get(ENV_PREFIX + item.name.upper())
            if raw is not None and raw.strip() != "":
                values[item.name] = _parse(item.name, raw)
        values.update({name: value for name, value in overrides.items() if value is not None})
        return replace(cls(), **values) if values else cls()


ENV_PREFIX = "PIXELSLEUTH_"
_INTS = {"workers", "max_upload_bytes", "max_batch_bytes", "max_batch_files", "max_pixels"}
_INTS |= {"rate_limit_per_minute", "max_concurrent_per_key"}
_FLOATS = {"upload_retention_s", "analysis_timeout_s", "localize_timeout_s"}
_BOOLS = {"localize", "default_detectors"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _parse(name: str, raw: str) -> Any:
    variable = ENV_PREFIX + name.upper()
    text = raw.strip()
    try:
        if name in _INTS:
            return int(text)
        if name in _FLOATS:
            return float(text)
    except ValueError:
        raise UsageError(f"{variable} must be a number, not {text!r}") from None
    if name in _BOOLS:
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise UsageError(f"{variable} must be true or false, not {text!r}")
    if name in ("api_keys", "admin_keys"):
        return tuple(key.strip() for key in text.split(",") if key.strip())
    if name == "allowed_folders":
        return tuple(Path(part.strip()) for part in text.split(",") if part.strip())
    return Path(text)
