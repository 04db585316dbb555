"""The registry of localization maps: a name for each, imported on first use.

Every map is a function ``map(image) -> ForensicMap`` of an RGB uint8 array. A new map is one module
and one line here.

Example:
    >>> import numpy as np
    >>> maps, failures = run_maps(np.zeros((64, 64, 3), np.uint8), ["ela"])
    >>> [m.method for m in maps], failures
    (['ela'], [])
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import import_module
from pathlib import Path

import numpy as np

from pixelsleuth.errors import PixelsleuthError, UsageError
from pixelsleuth.localization.record import ForensicMap

MapFunction = Callable[[np.ndarray], ForensicMap]

MAP_METHODS: dict[str, str] = {
    "ela": "pixelsleuth.localization.ela:ela",
    "noise": "pixelsleuth.localization.noise:noise_inconsistency",
    "jpeg-ghost": "pixelsleuth.localization.ghost:jpeg_ghost",
    "jpeg-double": "pixelsleuth.localization.adq:adq",
    "jpeg-grid": "pixelsleuth.localization.grid:jpeg_grid",
    "copy-move": "pixelsleuth.localization.copymove:copy_move",
    "copy-move-dense": "pixelsleuth.localization.copymove_dense:dense_copy_move",
    "window-fsd": "pixelsleuth.localization.methods:window_fsd",
    "window-patchnet": "pixelsleuth.localization.methods:window_patchnet",
    "window-spectral": "pixelsleuth.localization.detector_maps:spectral_window_map",
    "learned": "pixelsleuth.localization.learned:learned_map",
}

_PACKAGE = Path(__file__).resolve().parents[1]
_DETECTOR_FILES = tuple(
    str(_PACKAGE / "detectors" / "weights" / name)
    for name in ("defaults.json", "fsd-pool.safetensors", "patchnet-pool.safetensors")
)
# Files a map reads besides its module (weights), so a cache knows when a stored map is stale.
MAP_FILES: dict[str, tuple[str, ...]] = {
    "learned": (str(_PACKAGE / "localization" / "weights" / "localizer.safetensors"),),
    "window-fsd": _DETECTOR_FILES,
    "window-patchnet": _DETECTOR_FILES,
}


def _embedded_window_map(image: np.ndarray, name: str) -> ForensicMap:
    from pixelsleuth.localization.detector_maps import embedded_window_detectors, local_detector_map

    for detector in embedded_window_detectors():
        if detector.name == name:
            return local_detector_map(image, detector)
    raise UsageError(f"the embedded detectors include no {name!r}, so its window map cannot run")


def window_fsd(image: np.ndarray) -> ForensicMap:
    """The shipped fsd detector on sliding windows (see `localization.detector_maps`)."""
    return _embedded_window_map(image, "fsd")


def window_patchnet(image: np.ndarray) -> ForensicMap:
    """The shipped patchnet detector on sliding windows (see `localization.detector_maps`)."""
    return _embedded_window_map(image, "patchnet")


def map_dependencies(name: str) -> list[Path]:
    """The map's module source and the files it reads (for caches of computed maps)."""
    module = import_module(MAP_METHODS[name].split(":")[0])
    return [Path(module.__file__ or ""), *(Path(path) for path in MAP_FILES.get(name, ()))]


def map_version(name: str) -> str:
    """A digest of what the map's output depends on (`map_dependencies`): stored maps with another
    version are stale."""
    digest = hashlib.sha256(name.encode())
    for path in map_dependencies(name):
        digest.update(path.read_bytes() if path.is_file() else b"absent")
    return digest.hexdigest()[:16]


def list_methods() -> list[str]:
    return list(MAP_METHODS)


def load_method(name: str) -> MapFunction:
    """The map function registered under `name`.

    Raises:
        UsageError: no map has that name (the message lists the known ones).
    """
    try:
        target = MAP_METHODS[name]
    except KeyError:
        raise UsageError(
            f"no localization map named {name!r}; known maps: {', '.join(MAP_METHODS)}"
        ) from None
    module_name, function_name = target.split(":")
    return getattr(import_module(module_name), function_name)


def parse_methods(text: str | None) -> list[str]:
    """A comma-separated list of map names (None or "all": every map), each checked."""
    if text is None or text.strip() in ("", "all"):
        return list_methods()
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        load_method(name)
    return names


def run_maps(image: np.ndarray, names: Sequence[str]) -> tuple[list[ForensicMap], list[tuple[str, str]]]:
    """Every named map of the image, and (name, sentence) for each map that could not run on it."""
    maps: list[ForensicMap] = []
    failures: list[tuple[str, str]] = []
    for name in names:
        function = load_method(name)
        try:
            # The registry's name is the map's name everywhere (cards, tables, evidence).
            maps.append(replace(function(image), method=name))
        except PixelsleuthError as exc:
            failures.append((name, exc.message))
        except Exception as exc:  # a bug of ours in one map must not lose the others
            logging.getLogger("pixelsleuth").warning("the %s map failed: %r", name, exc)
            failures.append((name, f"an internal error stopped the {name} map; the other maps still ran"))
    return maps, failures
