"""IPTC-IIM records from a JPEG's APP13 "Photoshop 3.0" segment, read without Pillow.

Only the JPEG header is walked (markers up to SOS), so the cost does not grow with the image size.
Layout, from the Photoshop file-format and IPTC-IIM 4.2 specifications: APP13 = ``"Photoshop 3.0\\0"``
followed by image resource blocks (``"8BIM"``, 2-byte id, even-padded Pascal name, 4-byte size, data
padded to even); resource 0x0404 holds IIM datasets, each ``0x1C, record, dataset, 2-byte length``
(a length with its top bit set gives the byte count of a longer length that follows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelsleuth.intake.jpeg import header_segments
from pixelsleuth.intake.text import decode_bytes

PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
IPTC_RESOURCE_ID = 0x0404
_RESOURCE_SIGNATURES = (b"8BIM", b"PHUT", b"DCSR", b"AgHg", b"MeSa")
_UTF8_ESCAPE = b"\x1b%G"  # dataset 1:90 (coded character set) value that declares UTF-8
# Most datasets read from one block; real blocks hold a few dozen (a few hundred with many keywords).
MAX_DATASETS = 10_000

# IIM record 2 datasets that carry provenance, by (record, dataset) -> short name (IIM 4.2, chapter 6).
IIM_DATASET_NAMES: dict[tuple[int, int], str] = {
    (2, 5): "object-name",
    (2, 25): "keywords",
    (2, 55): "date-created",
    (2, 60): "time-created",
    (2, 62): "digital-creation-date",
    (2, 63): "digital-creation-time",
    (2, 65): "originating-program",
    (2, 70): "program-version",
    (2, 80): "by-line",
    (2, 85): "by-line-title",
    (2, 90): "city",
    (2, 101): "country",
    (2, 105): "headline",
    (2, 110): "credit",
    (2, 115): "source",
    (2, 116): "copyright-notice",
    (2, 120): "caption-abstract",
    (2, 122): "writer-editor",
}


@dataclass(frozen=True)
class IptcData:
    """IIM datasets as text.

    Attributes:
        datasets: ``"2:80"``-style key -> every value recorded for it, in file order.
        error: why the block could not be read completely, if it could not.
    """

    datasets: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    def first(self, record: int, dataset: int) -> str | None:
        values = self.datasets.get(f"{record}:{dataset}")
        return values[0] if values else None

    def named(self) -> dict[str, list[str]]:
        """The datasets that have a known name, keyed by that name."""
        named: dict[str, list[str]] = {}
        for key, values in self.datasets.items():
            record, _, dataset = key.partition(":")
            name = IIM_DATASET_NAMES.get((int(record), int(dataset)))
            if name:
                named[name] = values
        return named


def photoshop_segments(data: bytes) -> bytes:
    """Concatenated payloads of a JPEG's APP13 "Photoshop 3.0" segments (empty if none or not a JPEG).

    Walks marker segments from SOI up to SOS only; entropy-coded data is never touched.
    """
    return b"".join(
        segment.payload[len(PHOTOSHOP_HEADER) :]
        for segment in header_segments(data)
        if segment.marker == 0xED and segment.payload.startswith(PHOTOSHOP_HEADER)
    )


def image_resources(payload: bytes) -> dict[int, bytes]:
    """Photoshop image resource blocks by id (the first of each id wins). Stops at the first damage."""
    resources: dict[int, bytes] = {}
    position, size = 0, len(payload)
    while position + 12 <= size and payload[position : position + 4] in _RESOURCE_SIGNATURES:
        resource_id = int.from_bytes(payload[position + 4 : position + 6], "big")
        name_length = payload[position + 6]
        name_field = name_length + 1 + ((name_length + 1) & 1)  # Pascal string padded to even length
        size_at = position + 6 + name_field
        if size_at + 4 > size:
            break
        data_size = int.from_bytes(payload[size_at : size_at + 4], "big")
        start = size_at + 4
        resources.setdefault(resource_id, payload[start : start + data_size])
        position = start + data_size + (data_size & 1)
    return resources


def _decode(value: bytes, utf8_declared: bool) -> str:
    if utf8_declared:
        return decode_bytes(value)[0]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", errors="replace")


def parse_iim(block: bytes) -> IptcData:
    """Parse IPTC-IIM datasets; never raises.

    Parameters
    ----------
    block:
        The content of Photoshop resource 0x0404 (or a TIFF IPTC-NAA tag).

    Returns
    -------
    IptcData
        Values as text: UTF-8 when declared by dataset 1:90 or when valid, else Windows-1252. At most
        `MAX_DATASETS` datasets are read.
    """
    raw: list[tuple[int, int, bytes]] = []
    problem = None
    position, size = 0, len(block)
    while position + 5 <= size:
        if len(raw) >= MAX_DATASETS:
            problem = f"it holds more than {MAX_DATASETS} datasets; only the first {MAX_DATASETS} were read"
            break
        if block[position] != 0x1C:
            if any(block[position:]):  # trailing zero padding is normal; anything else is damage
                problem = f"IPTC-IIM data is damaged at byte {position}"
            break
        record, dataset = block[position + 1], block[position + 2]
        length = int.from_bytes(block[position + 3 : position + 5], "big")
        header = 5
        if length & 0x8000:  # extended dataset: the low bits give the size of the length field
            count = length & 0x7FFF
            if count > 4 or position + 5 + count > size:
                problem = f"IPTC-IIM extended length at byte {position} is implausible"
                break
            length = int.from_bytes(block[position + 5 : position + 5 + count], "big")
            header += count
        end = position + header + length
        if end > size:
            problem = f"IPTC-IIM dataset {record}:{dataset} runs past the end of the block"
            break
        raw.append((record, dataset, block[position + header : end]))
        position = end
    utf8_declared = any(
        record == 1 and dataset == 90 and value == _UTF8_ESCAPE for record, dataset, value in raw
    )
    datasets: dict[str, list[str]] = {}
    for record, dataset, value in raw:
        if record == 2 and dataset != 0:  # record 2 is the application record; 2:00 is its version
            text = _decode(value, utf8_declared).strip("\x00 \t\r\n")
            if text:
                datasets.setdefault(f"{record}:{dataset}", []).append(text)
    return IptcData(datasets=datasets, error=problem)


def read_iptc_iim(data: bytes | None, tiff_iptc: bytes | None = None) -> IptcData:
    """IPTC-IIM datasets of an image file; never raises.

    Parameters
    ----------
    data:
        The file's bytes. For a JPEG, APP13 segments before SOS are read.
    tiff_iptc:
        The IPTC-NAA (tag 33723) block from EXIF/TIFF, used when the JPEG route finds nothing.

    Returns
    -------
    IptcData
        Empty when the file carries no IIM block.
    """
    try:
        block = image_resources(photoshop_segments(data or b"")).get(IPTC_RESOURCE_ID) or tiff_iptc
        if not block:
            return IptcData()
        return parse_iim(block)
    except Exception:  # a parser of hostile bytes must not take the batch down
        return IptcData(error="the Photoshop resources that hold it are damaged, so it could not be read")


__all__ = [
    "IIM_DATASET_NAMES",
    "IPTC_RESOURCE_ID",
    "MAX_DATASETS",
    "IptcData",
    "image_resources",
    "parse_iim",
    "photoshop_segments",
    "read_iptc_iim",
]
