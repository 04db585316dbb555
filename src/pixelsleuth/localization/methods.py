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

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import import_module

import numpy as np

from pixelsleuth.errors import PixelsleuthError, UsageError
from pixelsleuth.localization.record import ForensicMap

MapFunction = Callable[[np.ndarray], ForensicMap]

MAP_METHODS: dict[str, str] = {
    "ela": "pixelsleuth.localization.ela:ela",
    "noise": "pixelsleuth.localization.noise:noise_inconsistency",
    "ghost": "pixelsleuth.localization.ghost:jpeg_ghost",
    "copy-move": "pixelsleuth.localization.copymove:copy_move",
}


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
