"""Turn the paths a user typed (files, folders, globs) into the list of image files to scan."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from pixelsleuth.intake.sniff import EXTENSION_FORMATS

IMAGE_SUFFIXES = frozenset(EXTENSION_FORMATS)  # every extension intake knows an image format for

_GLOB_CHARS = frozenset("*?[")


def _walk_folder(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(root) / name
            for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return found


def collect_paths(arguments: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (recursively, image extensions only) and glob patterns.

    A file named explicitly is always scanned whatever its extension (intake decides by content).
    Returns the files, in a stable order without repeats, and the arguments that matched nothing.

    Example:
        >>> collect_paths(["does-not-exist.jpg"])
        ([PosixPath('does-not-exist.jpg')], [])
    """
    files: list[Path] = []
    unmatched: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files.extend(_walk_folder(path))
        elif any(char in argument for char in _GLOB_CHARS) and not path.exists():
            matches = sorted(glob.glob(argument, recursive=True))
            for match in matches:
                match_path = Path(match)
                if match_path.is_dir():
                    files.extend(_walk_folder(match_path))
                else:
                    files.append(match_path)
            if not matches:
                unmatched.append(argument)
        else:
            # Missing files are kept: the scan reports them as an error for that file.
            files.append(path)
    unique = list(dict.fromkeys(files))
    return unique, unmatched
