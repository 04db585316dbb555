"""SHA-256 of files without reading them whole into memory."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def file_sha256(path: str | Path, *, max_bytes: int | None = None) -> str | None:
    """Hex SHA-256 of a regular file, read in 1 MiB pieces.

    Returns None for what is not a regular file (pipes, devices, folders), for files that cannot be
    read, and for files over `max_bytes`, so a caller can hash defensively after a failure.

    Example:
        >>> file_sha256("/nonexistent") is None
        True
    """
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode) or (max_bytes is not None and status.st_size > max_bytes):
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for piece in iter(lambda: handle.read(1 << 20), b""):
                digest.update(piece)
    except OSError:
        return None
    return digest.hexdigest()
