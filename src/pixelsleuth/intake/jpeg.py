"""JPEG bitstream facts: where the image data starts, whether it ends, and what Pillow read from it.

Pillow already parses the JPEG header (quantization tables, sampling factors, progressive flag), so
`jpeg_info` only reshapes what it found. `scan_jpeg_layout` walks the marker segments up to the
first start-of-scan, a few dozen bytes of arithmetic per segment, to learn what Pillow does not
expose: where the entropy-coded data begins, which is what the end-of-image check needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from pixelsleuth.intake.image import JpegInfo

# Start-of-frame markers (SOF0..SOF15 minus DHT/JPG/DAC, plus JPEG-LS SOF55), mapped to their coding.
SOF_CODINGS: dict[int, str] = {
    0xC0: "baseline",
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "differential sequential",
    0xC6: "differential progressive",
    0xC7: "differential lossless",
    0xC9: "extended sequential (arithmetic)",
    0xCA: "progressive (arithmetic)",
    0xCB: "lossless (arithmetic)",
    0xCD: "differential sequential (arithmetic)",
    0xCE: "differential progressive (arithmetic)",
    0xCF: "differential lossless (arithmetic)",
    0xF7: "JPEG-LS",
}
_LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF, 0xF7})
_SOS, _EOI, _SOI, _TEM = 0xDA, 0xD9, 0xD8, 0x01

# (luma h/v) divided by (chroma h/v) -> the usual J:a:b name.
_SUBSAMPLING_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "4:4:4",
    (2, 1): "4:2:2",
    (2, 2): "4:2:0",
    (1, 2): "4:4:0",
    (4, 1): "4:1:1",
}


@dataclass(frozen=True)
class JpegLayout:
    """Where things are in a JPEG file, from a walk over its marker segments.

    `problem` is a sentence when the header itself is cut short or malformed; then `sos_offset`
    is -1.
    """

    sos_offset: int  # byte offset of the first start-of-scan marker
    sof_marker: int | None  # 0xC0.. of the frame header, None if none came before the scan
    precision: int | None  # sample precision in bits from the frame header (8 or 12 normally)
    problem: str | None = None
    truncated: bool = False

    @property
    def coding(self) -> str:
        return SOF_CODINGS.get(self.sof_marker or 0, "unknown")

    @property
    def is_lossless(self) -> bool:
        return self.sof_marker in _LOSSLESS_SOF


@dataclass(frozen=True)
class JpegSegment:
    """One marker segment of a JPEG header: its marker byte, where it starts, and its payload."""

    marker: int
    offset: int  # of the FF byte
    payload: bytes  # the bytes after the two length bytes


def header_segments(data: bytes) -> Iterator[JpegSegment]:
    """The length-bearing marker segments of a JPEG header, from SOI up to (and including) SOS.

    Stops silently at the first start-of-scan, at an end-of-image marker, or where the structure is
    damaged; entropy-coded data is never read, so this costs microseconds. Use `scan_jpeg_layout`
    to learn *why* a header is malformed.

    Example:
        >>> [hex(s.marker) for s in header_segments(b"\\xff\\xd8\\xff\\xe0\\x00\\x04ab\\xff\\xda\\x00\\x02")]
        ['0xe0', '0xda']
    """
    if not data.startswith(b"\xff\xd8"):
        return
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in (_SOI, _TEM) or 0xD0 <= marker <= 0xD7:  # standalone markers carry no length
            pos += 2
            continue
        if marker == _EOI:
            return
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return
        yield JpegSegment(marker, pos, data[pos + 4 : pos + 2 + length])
        if marker == _SOS:
            return
        pos += 2 + length


def scan_jpeg_layout(data: bytes) -> JpegLayout:
    """Walk the marker segments of a JPEG from SOI to the first SOS.

    Parameters
    ----------
    data : bytes
        The whole JPEG file (starting with ``FF D8``).

    Returns
    -------
    JpegLayout
        The offset of the first scan, the frame type and precision. Never raises: a header cut
        short gives ``truncated=True``, a malformed one a `problem` sentence.
    """
    size = len(data)
    pos = 2
    sof_marker: int | None = None
    precision: int | None = None
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return _header_cut(size, sof_marker, precision)
        marker_start = pos
        while pos < size and data[pos] == 0xFF:  # fill bytes may pad before any marker
            pos += 1
        if pos >= size:
            return _header_cut(size, sof_marker, precision)
        marker = data[pos]
        pos += 1
        if marker in (_SOI, _TEM, 0x00) or 0xD0 <= marker <= 0xD7:
            continue  # standalone markers carry no length
        if marker == _EOI:
            problem = (
                f"the end-of-image marker comes at byte {group_digits(marker_start)} before any image data"
            )
            return JpegLayout(-1, sof_marker, precision, problem=problem)
        if pos + 2 > size:
            return _header_cut(size, sof_marker, precision)
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            problem = (
                f"the marker segment at byte {group_digits(marker_start)} declares a length of {length} "
                "bytes, too short to hold even its length field"
            )
            return JpegLayout(-1, sof_marker, precision, problem=problem)
        if marker in SOF_CODINGS and sof_marker is None and pos + 3 <= size:
            sof_marker, precision = marker, data[pos + 2]
        if marker == _SOS:
            if pos + length > size:
                return _header_cut(size, sof_marker, precision)
            return JpegLayout(marker_start, sof_marker, precision)
        pos += length


def _header_cut(size: int, sof_marker: int | None, precision: int | None) -> JpegLayout:
    return JpegLayout(
        -1,
        sof_marker,
        precision,
        problem=f"the data ends at byte {group_digits(size)} inside the header, before any image data",
        truncated=True,
    )


def jpeg_truncation(data: bytes, layout: JpegLayout) -> str | None:
    """Return why a JPEG looks cut short, or None if an end-of-image marker follows its scan data.

    Bytes after the EOI (trailers appended by phones and editors) are normal and ignored. The
    search runs from the end of the file, so it costs nothing when EOI is the last marker.
    """
    if layout.truncated:
        return layout.problem
    if data.rfind(b"\xff\xd9") > layout.sos_offset >= 0:
        return None
    return f"the data ends at byte {group_digits(len(data))} without an end-of-image marker"


def jpeg_info(image: Image.Image) -> JpegInfo:
    """Collect the JPEG facts Pillow parsed while opening `image` (a Pillow JPEG or MPO image).

    Quantization tables come from Pillow's `quantization`, already de-zigzagged into natural
    (row-major) order; sampling factors from its frame-header components.
    """
    tables = {int(table_id): tuple(values) for table_id, values in getattr(image, "quantization", {}).items()}
    # Pillow's `layer` holds (component id, horizontal factor, vertical factor, table id).
    factors = [(int(h), int(v)) for _, h, v, _ in getattr(image, "layer", [])]
    progressive = bool(image.info.get("progressive") or image.info.get("progression"))
    return JpegInfo(
        quantization_tables=tables,
        subsampling=subsampling_name(factors),
        progressive=progressive,
        components=len(factors) or int(getattr(image, "layers", 0)),
    )


def subsampling_name(factors: list[tuple[int, int]]) -> str:
    """Name the chroma subsampling from per-component (horizontal, vertical) sampling factors.

    Examples
    --------
    >>> subsampling_name([(2, 2), (1, 1), (1, 1)])
    '4:2:0'
    >>> subsampling_name([(1, 1)])
    'gray'
    """
    if len(factors) == 1:
        return "gray"
    if len(factors) < 3:
        return "other"
    (luma_h, luma_v), chroma_b, chroma_r = factors[0], factors[1], factors[2]
    if chroma_b != chroma_r or min(*chroma_b, luma_h, luma_v) < 1:
        return "other"
    chroma_h, chroma_v = chroma_b
    if luma_h % chroma_h or luma_v % chroma_v:
        return "other"
    return _SUBSAMPLING_NAMES.get((luma_h // chroma_h, luma_v // chroma_v), "other")


def group_digits(number: int) -> str:
    """Write an integer with spaces between thousands, as in "18 312"."""
    return f"{number:,}".replace(",", " ")


__all__ = [
    "SOF_CODINGS",
    "JpegLayout",
    "group_digits",
    "jpeg_info",
    "jpeg_truncation",
    "scan_jpeg_layout",
    "subsampling_name",
]
