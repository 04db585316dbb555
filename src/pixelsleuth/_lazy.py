"""Package attributes resolved on first use (PEP 562), so light imports never pull in torch."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for `package` that imports ``exports[name]`` when `name` is first used.

    Example:
        >>> getter = lazy_exports("pixelsleuth.detectors", {"create": "pixelsleuth.detectors.registry"})
        >>> getter("create").__name__
        'create'
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # cache: the next lookup is a plain attribute
        return value

    return __getattr__
