"""Identify a JPEG's quantization tables: standard libjpeg (IJG) scaling, or a known camera or editor.

Almost every library that writes JPEG (libjpeg and libjpeg-turbo, hence Pillow, OpenCV, GIMP,
ImageMagick, browsers, most web services) builds its tables the same way: the two example tables of
ITU-T T.81 Annex K scaled by the IJG quality formula. Cameras and some editors (Adobe Photoshop) use
tables of their own. Which family a file's tables belong to says which program wrote the file last.

The facts (the Annex K base tables, tables seen in real camera files, published editor tables) live
in ``data/jpeg_quant_tables.json``, which ``scripts/build_camera_tables.py`` writes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
QUANT_TABLES_FILE = DATA_DIR / "jpeg_quant_tables.json"

IJG_QUALITIES = np.arange(1, 101)

# Words in EXIF Make strings that name the company form, not the brand ("EASTMAN KODAK COMPANY",
# "OLYMPUS OPTICAL CO.,LTD", "HMD Global"), and words cameras pad their Model strings with.
_COMPANY_WORDS = frozenset(
    {"eastman", "company", "corporation", "corp", "co", "ltd", "optical", "imaging", "global", "inc"}
    | {"ag", "gmbh", "computer", "electronics", "camera", "digital"}
)
_MODEL_FILLER_WORDS = frozenset({"digital", "camera", "zoom"})
_CLOSE_OR_NEWLINE = re.compile(r"[)\n]")


@dataclass(frozen=True)
class KnownTables:
    """A set of quantization tables known to come from one camera model or one program."""

    kind: Literal["camera", "software"]
    label: str  # "Canon PowerShot SX60 HS", "Adobe Photoshop"
    camera: str | None  # normalised camera key (see `camera_key`), cameras only
    setting: str | None  # "quality 8", "Save for Web high", ...
    ijg_quality: int | None  # the tables are plain IJG tables at this quality
    sources: tuple[str, ...]
    tables: tuple[tuple[int, ...], ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "camera": self.camera,
            "setting": self.setting,
            "ijg_quality": self.ijg_quality,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class QuantTableReport:
    """What a JPEG's quantization tables say about the program that wrote it.

    Attributes:
        fingerprint: hash of the tables (ids in order, 16-bit values), the key of known tables.
        n_tables: how many tables the file defines.
        standard_ijg: every table is exactly an Annex K table scaled by the IJG quality formula.
        ijg_quality: that quality when `standard_ijg` (the luma table's quality), else None.
        table_qualities: per table, the IJG quality it equals exactly, or None.
        estimated_quality: the IJG quality whose tables lie nearest (always given; for tables of
            other families it is the usual "equivalent quality" estimate).
        ijg_deviation: mean absolute relative difference from the nearest IJG tables (0 when standard).
        near_ijg: the tables are a near-scaled version of the IJG tables (deviation below 5 %).
        known: entries of the known-tables data with exactly these tables.
    """

    fingerprint: str
    n_tables: int
    standard_ijg: bool
    ijg_quality: int | None
    table_qualities: tuple[int | None, ...]
    estimated_quality: int
    ijg_deviation: float
    near_ijg: bool
    known: tuple[KnownTables, ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "n_tables": self.n_tables,
            "standard_ijg": self.standard_ijg,
            "ijg_quality": self.ijg_quality,
            "table_qualities": list(self.table_qualities),
            "estimated_quality": self.estimated_quality,
            "ijg_deviation": round(self.ijg_deviation, 4),
            "near_ijg": self.near_ijg,
            "known": [entry.to_data() for entry in self.known],
        }


def ijg_scaled_table(
    base: Sequence[int] | np.ndarray, quality: int, force_baseline: bool = True
) -> np.ndarray:
    """Scale a base table the way libjpeg's ``jpeg_set_quality`` does.

    Parameters
    ----------
    base : sequence of 64 ints
        An Annex K table (natural order).
    quality : int
        IJG quality, 1..100 (values outside are clamped as libjpeg does).
    force_baseline : bool
        Clamp entries to 255 (8-bit tables), as Pillow and most callers request.

    Returns
    -------
    numpy.ndarray
        64 int32 values.
    """
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    return np.clip(table, 1, 255 if force_baseline else 32767).astype(np.int32)


def table_fingerprint(tables: Sequence[Sequence[int]]) -> str:
    """A short stable hash of a file's tables, in table-id order."""
    digest = hashlib.sha1()
    for table in tables:
        digest.update(np.asarray(table, dtype="<u2").tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def camera_key(make: object, model: object) -> str | None:
    """Normalise EXIF Make/Model to ``"brand|model"`` so spellings of one camera compare equal.

    Examples
    --------
    >>> camera_key("EASTMAN KODAK COMPANY", "KODAK DC240 ZOOM DIGITAL CAMERA")
    'kodak|dc240'
    >>> camera_key("Canon", "Canon EOS 5D Mark III")
    'canon|eos 5d mark iii'
    """
    make_words = _words(make)
    model_words = _words(_without_parentheses(model) if isinstance(model, str) else model)
    brand_words = [word for word in make_words if word not in _COMPANY_WORDS]
    brand = brand_words[0] if brand_words else ""
    drop = set(make_words) | _MODEL_FILLER_WORDS
    # A model that only repeats the make ("Jolla"/"Jolla") keeps its words.
    model_key = " ".join(word for word in model_words if word not in drop) or " ".join(model_words)
    if not model_key:
        return None
    return f"{brand}|{model_key}"


def _without_parentheses(text: str) -> str:
    """`text` with each ``(...)`` on one line replaced by a space, in one pass.

    The same as ``re.sub(r"\\(.*?\\)", " ", text)``, which took quadratic time on many unclosed "(".
    """
    kept: list[str] = []
    copied = position = 0
    while (start := text.find("(", position)) >= 0:
        close = _CLOSE_OR_NEWLINE.search(text, start + 1)
        if close is None:
            break  # neither ")" nor a line end follows: no later "(" can be closed either
        if close.group() == ")":
            kept.append(text[copied:start] + " ")
            copied = close.end()
        position = close.end()  # an unclosed "(" before a line end: every "(" up to it is unclosed too
    kept.append(text[copied:])
    return "".join(kept)


def _words(value: object) -> list[str]:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        return []
    return re.findall(r"[a-z0-9]+", value.replace("\x00", " ").lower())


@dataclass(frozen=True)
class _IjgLookup:
    luma: np.ndarray  # (100, 64) float, quality 1..100
    chroma: np.ndarray
    exact: dict[tuple[str, tuple[int, ...]], int]  # ("luma" | "chroma", table) -> quality


@lru_cache(maxsize=1)
def _load_data() -> dict[str, Any]:
    with QUANT_TABLES_FILE.open(encoding="utf-8") as handle:
        return json.load(handle)


@lru_cache(maxsize=1)
def _ijg_lookup() -> _IjgLookup:
    base = _load_data()["ijg_base_tables"]
    luma_base, chroma_base = base["luminance"], base["chrominance"]
    exact: dict[tuple[str, tuple[int, ...]], int] = {}
    # Highest quality first so that where two qualities give identical tables (only at the clamped
    # extremes) the lookup keeps the lower one, as libjpeg-based estimators do.
    for quality in range(100, 0, -1):
        for force_baseline in (False, True):
            exact[("luma", tuple(ijg_scaled_table(luma_base, quality, force_baseline).tolist()))] = quality
            exact[("chroma", tuple(ijg_scaled_table(chroma_base, quality, force_baseline).tolist()))] = (
                quality
            )
    luma = np.stack([ijg_scaled_table(luma_base, q) for q in IJG_QUALITIES]).astype(np.float64)
    chroma = np.stack([ijg_scaled_table(chroma_base, q) for q in IJG_QUALITIES]).astype(np.float64)
    return _IjgLookup(luma=luma, chroma=chroma, exact=exact)


@lru_cache(maxsize=1)
def known_tables() -> dict[str, tuple[KnownTables, ...]]:
    """All known tables from the data file, by `table_fingerprint`."""
    by_fingerprint: dict[str, list[KnownTables]] = {}
    for entry in _load_data()["entries"]:
        tables = tuple(tuple(int(v) for v in table) for table in entry["tables"])
        known = KnownTables(
            kind=entry["kind"],
            label=entry["label"],
            camera=entry.get("camera"),
            setting=entry.get("setting"),
            ijg_quality=entry.get("ijg_quality"),
            sources=tuple(entry.get("sources", ())),
            tables=tables,
        )
        by_fingerprint.setdefault(table_fingerprint(tables), []).append(known)
    return {key: tuple(value) for key, value in by_fingerprint.items()}


@lru_cache(maxsize=1)
def known_cameras() -> dict[str, tuple[KnownTables, ...]]:
    """Known camera tables grouped by camera key."""
    by_camera: dict[str, list[KnownTables]] = {}
    for entries in known_tables().values():
        for entry in entries:
            if entry.kind == "camera" and entry.camera:
                by_camera.setdefault(entry.camera, []).append(entry)
    return {key: tuple(value) for key, value in by_camera.items()}


def identify_quant_tables(tables: Mapping[int, Sequence[int]]) -> QuantTableReport:
    """Classify a JPEG's quantization tables.

    Parameters
    ----------
    tables : mapping of table id to 64 ints
        The DQT tables in natural order, as in ``JpegInfo.quantization_tables`` or Pillow's
        ``Image.quantization``.

    Returns
    -------
    QuantTableReport
        Whether the tables are standard IJG tables (and at which quality), the nearest IJG quality,
        and any known camera or software with exactly these tables.
    """
    ordered = tuple(tuple(int(v) for v in tables[key]) for key in sorted(tables))
    if not ordered or any(len(table) != 64 for table in ordered):
        raise ValueError("quantization tables must be 64 values each")
    return _identify(ordered)


@lru_cache(maxsize=512)
def _identify(ordered: tuple[tuple[int, ...], ...]) -> QuantTableReport:
    # Cached: most files of one collection share a handful of table sets.
    lookup = _ijg_lookup()
    # Table 0 quantizes luma; any further tables quantize chroma.
    roles = ["luma"] + ["chroma"] * (len(ordered) - 1)
    table_qualities = tuple(
        lookup.exact.get((role, table)) for role, table in zip(roles, ordered, strict=True)
    )
    standard = all(quality is not None for quality in table_qualities)
    if standard and table_qualities[0] is not None:
        estimated, deviation = table_qualities[0], 0.0
    else:
        observed = np.asarray(ordered, dtype=np.float64)  # (n, 64)
        references = np.stack([lookup.luma] + [lookup.chroma] * (len(ordered) - 1), axis=1)  # (100, n, 64)
        per_quality = (np.abs(references - observed[None]) / np.maximum(observed[None], 1.0)).mean(
            axis=(1, 2)
        )
        best = int(np.argmin(per_quality))
        estimated, deviation = int(IJG_QUALITIES[best]), float(per_quality[best])
    return QuantTableReport(
        fingerprint=table_fingerprint(ordered),
        n_tables=len(ordered),
        standard_ijg=standard,
        ijg_quality=table_qualities[0] if standard else None,
        table_qualities=table_qualities,
        estimated_quality=int(estimated),
        ijg_deviation=deviation,
        near_ijg=standard or deviation < 0.05,
        known=known_tables().get(table_fingerprint(ordered), ()),
    )


__all__ = [
    "QUANT_TABLES_FILE",
    "KnownTables",
    "QuantTableReport",
    "camera_key",
    "identify_quant_tables",
    "ijg_scaled_table",
    "known_cameras",
    "known_tables",
    "table_fingerprint",
]
