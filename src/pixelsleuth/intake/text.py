"""Text from untrusted files, made safe once where it enters: valid Unicode that encodes as UTF-8.

Files carry text in many places (PNG text chunks, JPEG comments, XMP, EXIF strings, JSON written by
image generators). Any of it may hold byte sequences that are not UTF-8, or JSON escapes that decode to
lone surrogates (``"\\udc80"``), which no UTF-8 encoder accepts: storing or printing such a string
fails. Every string that leaves a file goes through `clean_text` (or `loads_json` for JSON), which
replaces each code point that cannot be encoded with U+FFFD and says how many it replaced.

Paths are the exception: a file name that is not valid UTF-8 reaches Python with its raw bytes as
surrogate escapes (PEP 383), and those must survive so the file can be opened again. `path_bytes`
and `path_from_bytes` keep them lossless; `display_path` gives the readable form (``bad_\\xff.png``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

REPLACEMENT = "\ufffd"

# Lone surrogates (from JSON escapes or surrogateescape decoding) are the code points that exist in a
# Python str but cannot be written as UTF-8.
_UNENCODABLE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> tuple[str, int]:
    """Replace every code point that cannot be encoded as UTF-8 with U+FFFD.

    Returns the clean text and how many code points were replaced (0 means `text` came back as is).

    Example:
        >>> clean_text("x\\udc80y")
        ('x\ufffdy', 1)
        >>> clean_text("ok")
        ('ok', 0)
    """
    if text.isascii():
        return text, 0
    cleaned, count = _UNENCODABLE.subn(REPLACEMENT, text)
    return cleaned, count


def decode_bytes(raw: bytes | bytearray | memoryview) -> tuple[str, int]:
    """Bytes from a file as text: UTF-8 where valid, U+FFFD for each invalid byte, trailing NULs dropped.

    Example:
        >>> decode_bytes(b"caf\\xc3\\xa9 \\xff\\x00")
        ('café \ufffd', 1)
    """
    data = bytes(raw)
    try:
        return data.decode("utf-8").rstrip("\x00"), 0
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="surrogateescape").rstrip("\x00")
    return clean_text(text)


def clean_data(value: Any) -> tuple[Any, int]:
    """`clean_text` applied to every string (keys included) in a JSON-like structure.

    Returns the cleaned structure (the same object when nothing needed cleaning) and the count.
    """
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        total = 0
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                key, replaced = clean_text(key)
                total += replaced
            item, replaced = clean_data(item)
            total += replaced
            out[key] = item
        return (out, total) if total else (value, 0)
    if isinstance(value, list | tuple):
        total = 0
        items = []
        for item in value:
            item, replaced = clean_data(item)
            total += replaced
            items.append(item)
        if not total:
            return value, 0
        return (tuple(items) if isinstance(value, tuple) else items), total
    return value, 0


def loads_json(text: str | bytes) -> Any:
    """`json.loads` for text from a file: strings whose escapes decode to lone surrogates are cleaned.

    Raises what `json.loads` raises on text that is not JSON.
    """
    value, _ = clean_data(json.loads(text))
    return value


def path_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file system's own bytes for a path (lossless, whatever its encoding)."""
    return os.fsencode(path)


def path_from_bytes(raw: bytes) -> str:
    """The str Python uses for a path given as bytes (undecodable bytes become surrogate escapes)."""
    return os.fsdecode(raw)


def path_is_text(path: str) -> bool:
    """True when the path is valid Unicode, so it can be stored and printed as it is."""
    return clean_text(path)[1] == 0


def display_path(path: str | os.PathLike[str]) -> str:
    """A readable form of a path that is always valid UTF-8: bytes that are not UTF-8 appear as ``\\xNN``.

    Example:
        >>> display_path(os.fsdecode(b"bad_\\xff\\xfe.png"))
        'bad_\\\\xff\\\\xfe.png'
    """
    text = os.fspath(path)
    if path_is_text(text):
        return text
    return os.fsencode(text).decode("utf-8", errors="backslashreplace")


__all__ = [
    "REPLACEMENT",
    "clean_data",
    "clean_text",
    "decode_bytes",
    "display_path",
    "loads_json",
    "path_bytes",
    "path_from_bytes",
    "path_is_text",
]
