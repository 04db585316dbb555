"""Parse an EXIF block once, into plain Python values every evidence source can share."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import ExifTags, Image

_TAG_NAMES = ExifTags.TAGS
_GPS_NAMES = ExifTags.GPSTAGS
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
# How each sub-directory is named in a sentence about damage.
_IFD_LABELS = {ExifTags.IFD.Exif: "Exif", ExifTags.IFD.GPSInfo: "GPS", ExifTags.IFD.IFD1: "thumbnail"}


@dataclass(frozen=True)
class ExifData:
    """EXIF tags by name. `main` holds IFD0 and the Exif sub-IFD merged; `gps` the GPS IFD;
    `ifd1` the thumbnail IFD; `thumbnail` the embedded JPEG thumbnail bytes, if any."""

    main: dict[str, Any] = field(default_factory=dict)
    gps: dict[str, Any] = field(default_factory=dict)
    ifd1: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None
    error: str | None = None  # why the block could not be read completely, if it could not

    def get(self, name: str, default: Any = None) -> Any:
        return self.main.get(name, default)


def _named(ifd: dict[int, Any], names: dict[int, str]) -> dict[str, Any]:
    return {names.get(tag, f"0x{tag:04x}"): value for tag, value in ifd.items()}


def _tiff_payload(raw: bytes) -> bytes:
    return raw[6:] if raw.startswith(b"Exif\x00\x00") else raw


def _unreadable_block(raw: bytes) -> str:
    if _tiff_payload(raw)[:4] not in _TIFF_HEADERS:
        return "it does not start with a TIFF header, so none of its tags could be read"
    return "its first directory is damaged or cut short, so none of its tags could be read"


@lru_cache(maxsize=32)
def parse_exif(raw: bytes | None) -> ExifData:
    """Parse a raw EXIF block (with or without the ``Exif\\0\\0`` prefix).

    Never raises: a damaged block gives whatever could be read plus an `error` clause saying what
    was damaged (for a sentence such as "The EXIF block is damaged: <error>.").
    The result is cached, so every evidence source can call this on the same bytes for free.

    Example:
        >>> parse_exif(None).main
        {}
    """
    if not raw:
        return ExifData()
    exif = Image.Exif()
    try:
        exif.load(raw)
        main = _named(dict(exif.items()), _TAG_NAMES)
    except Exception:  # Pillow raises many types (struct.error, SyntaxError, ...) on damaged TIFF data
        return ExifData(error=_unreadable_block(raw))
    problems: list[str] = []

    def sub_ifd(ifd: ExifTags.IFD) -> dict[int, Any]:
        try:
            return dict(exif.get_ifd(ifd))
        except Exception:
            problems.append(f"the {_IFD_LABELS[ifd]} directory is damaged and could not be read")
            return {}

    main.update(_named(sub_ifd(ExifTags.IFD.Exif), _TAG_NAMES))
    gps = _named(sub_ifd(ExifTags.IFD.GPSInfo), _GPS_NAMES)
    ifd1 = _named(sub_ifd(ExifTags.IFD.IFD1), _TAG_NAMES)
    main.pop("ExifOffset", None)
    main.pop("GPSInfo", None)

    thumbnail = None
    offset, length = ifd1.get("JpegIFOffset"), ifd1.get("JpegIFByteCount")
    if isinstance(offset, int) and isinstance(length, int) and length > 0:
        tiff = _tiff_payload(raw)
        candidate = tiff[offset : offset + length]
        if len(candidate) == length and candidate.startswith(b"\xff\xd8"):
            thumbnail = candidate
        else:
            problems.append("the EXIF thumbnail pointer leads outside the block")
    return ExifData(main=main, gps=gps, ifd1=ifd1, thumbnail=thumbnail, error="; ".join(problems) or None)
