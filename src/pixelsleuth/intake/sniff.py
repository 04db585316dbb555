"""Decide what a file is from its first bytes, never from its name.

`sniff` names the kind of data (a supported image format, an image format we do not read, or
something that is not an image at all) so intake can refuse early with a sentence a person
understands: "not an image: looks like a PDF document".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

Category = Literal["image", "unsupported_image", "not_image", "unknown"]

# The formats intake decodes; values are the names Pillow registers for them.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
}

# How each supported format is named in messages.
FORMAT_LABELS: dict[str, str] = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "GIF": "GIF",
    "WEBP": "WebP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
}

# File-name extensions that claim one of the supported formats.
EXTENSION_FORMATS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".png": "PNG",
    ".apng": "PNG",
    ".gif": "GIF",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".heic": "HEIF",
    ".heif": "HEIF",
    ".hif": "HEIF",
    ".avif": "AVIF",
}


@dataclass(frozen=True)
class Sniffed:
    """What the leading bytes of a file say it is.

    `kind` is one of the `SUPPORTED_FORMATS` keys for decodable images, otherwise a short
    machine name ("PDF", "ZIP", "JPEG2000", ...); `description` completes the sentence
    "looks like ..." ("a PDF document").
    """

    kind: str
    description: str
    category: Category

    @property
    def is_supported_image(self) -> bool:
        return self.category == "image"


# Fixed signatures at offset 0, checked in order: (prefix, kind, description, category).
_PREFIXES: tuple[tuple[bytes, str, str, Category], ...] = (
    (b"\xff\xd8\xff", "JPEG", "a JPEG image", "image"),
    (b"\x89PNG\r\n\x1a\n", "PNG", "a PNG image", "image"),
    (b"GIF87a", "GIF", "a GIF image", "image"),
    (b"GIF89a", "GIF", "a GIF image", "image"),
    (b"II*\x00\x10\x00\x00\x00CR", "CR2", "a Canon CR2 raw photo", "unsupported_image"),
    (b"II*\x00", "TIFF", "a TIFF image", "image"),
    (b"MM\x00*", "TIFF", "a TIFF image", "image"),
    (b"II+\x00", "TIFF", "a BigTIFF image", "image"),
    (b"MM\x00+", "TIFF", "a BigTIFF image", "image"),
    (b"IIRO", "ORF", "an Olympus ORF raw photo", "unsupported_image"),
    (b"IIU\x00", "RW2", "a Panasonic RW2 raw photo", "unsupported_image"),
    (b"FUJIFILMCCD-RAW", "RAF", "a Fujifilm RAF raw photo", "unsupported_image"),
    (b"II\xbc", "JXR", "a JPEG XR image", "unsupported_image"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000", "a JPEG 2000 image", "unsupported_image"),
    (b"\xffO\xffQ", "JPEG2000", "a JPEG 2000 codestream", "unsupported_image"),
    (b"\xff\x0a", "JXL", "a JPEG XL image", "unsupported_image"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JXL", "a JPEG XL image", "unsupported_image"),
    (b"8BPS", "PSD", "a Photoshop document (PSD)", "unsupported_image"),
    (b"\x00\x00\x01\x00", "ICO", "a Windows icon (ICO)", "unsupported_image"),
    (b"\x00\x00\x02\x00", "CUR", "a Windows cursor (CUR)", "unsupported_image"),
    (b"qoif", "QOI", "a QOI image", "unsupported_image"),
    (b"DDS ", "DDS", "a DirectDraw Surface (DDS) texture", "unsupported_image"),
    (b"v/1\x01", "EXR", "an OpenEXR image", "unsupported_image"),
    (b"#?RADIANCE", "HDR", "a Radiance HDR image", "unsupported_image"),
    (b"#?RGBE", "HDR", "a Radiance HDR image", "unsupported_image"),
    (b"%!PS", "EPS", "a PostScript/EPS file", "unsupported_image"),
    (b"\xc5\xd0\xd3\xc6", "EPS", "a PostScript/EPS file", "unsupported_image"),
    (b"gimp xcf", "XCF", "a GIMP XCF image", "unsupported_image"),
    (b"icns", "ICNS", "a macOS icon (ICNS)", "unsupported_image"),
    (b"BPG\xfb", "BPG", "a BPG image", "unsupported_image"),
    (b"FLIF", "FLIF", "a FLIF image", "unsupported_image"),
    (b"SIMPLE  =", "FITS", "a FITS astronomy image", "unsupported_image"),
    (b"\xd7\xcd\xc6\x9a", "WMF", "a Windows metafile (WMF)", "unsupported_image"),
    (b"%PDF", "PDF", "a PDF document", "not_image"),
    (b"PK\x05\x06", "ZIP", "an empty ZIP archive", "not_image"),
    (b"\x1f\x8b", "GZIP", "GZIP-compressed data", "not_image"),
    (b"BZh", "BZIP2", "BZIP2-compressed data", "not_image"),
    (b"\xfd7zXZ\x00", "XZ", "XZ-compressed data", "not_image"),
    (b"7z\xbc\xaf\x27\x1c", "7Z", "a 7-Zip archive", "not_image"),
    (b"Rar!\x1a\x07", "RAR", "a RAR archive", "not_image"),
    (b"(\xb5/\xfd", "ZSTD", "Zstandard-compressed data", "not_image"),
    (b"\x7fELF", "ELF", "a Linux/Unix program (ELF executable)", "not_image"),
    (b"MZ", "EXE", "a Windows program (EXE/DLL)", "not_image"),
    (b"\xfe\xed\xfa\xce", "MACHO", "a macOS program (Mach-O)", "not_image"),
    (b"\xfe\xed\xfa\xcf", "MACHO", "a macOS program (Mach-O)", "not_image"),
    (b"\xce\xfa\xed\xfe", "MACHO", "a macOS program (Mach-O)", "not_image"),
    (b"\xcf\xfa\xed\xfe", "MACHO", "a macOS program (Mach-O)", "not_image"),
    (b"\xca\xfe\xba\xbe", "CLASS", "a Java class file or macOS universal program", "not_image"),
    (b"\x00asm", "WASM", "a WebAssembly module", "not_image"),
    (b"#!", "SCRIPT", "a script (text starting with #!)", "not_image"),
    (b"ID3", "MP3", "an MP3 audio file", "not_image"),
    (b"OggS", "OGG", "an Ogg audio/video file", "not_image"),
    (b"fLaC", "FLAC", "a FLAC audio file", "not_image"),
    (b"\x1aE\xdf\xa3", "MKV", "a Matroska/WebM video", "not_image"),
    (b"FLV\x01", "FLV", "a Flash video (FLV)", "not_image"),
    (b"SQLite format 3\x00", "SQLITE", "an SQLite database", "not_image"),
    (b"{\\rtf", "RTF", "an RTF document", "not_image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE", "a Microsoft Office document (DOC/XLS/PPT)", "not_image"),
    (b"wOFF", "FONT", "a web font (WOFF)", "not_image"),
    (b"wOF2", "FONT", "a web font (WOFF2)", "not_image"),
    (b"OTTO", "FONT", "an OpenType font", "not_image"),
    (b"\x00\x01\x00\x00\x00", "FONT", "a TrueType font", "not_image"),
    (b"\x93NUMPY", "NPY", "a NumPy array file", "not_image"),
    (b"\x89HDF\r\n\x1a\n", "HDF5", "an HDF5 data file", "not_image"),
    (b"PAR1", "PARQUET", "a Parquet data file", "not_image"),
)

_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1", b"mif2"}
)
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_ZIP_MEMBERS: tuple[tuple[bytes, str, str], ...] = (
    (b"word/", "DOCX", "a Word document (DOCX, a ZIP archive)"),
    (b"xl/workbook", "XLSX", "an Excel spreadsheet (XLSX, a ZIP archive)"),
    (b"ppt/presentation", "PPTX", "a PowerPoint presentation (PPTX, a ZIP archive)"),
    (b"mimetypeapplication/epub+zip", "EPUB", "an EPUB e-book (a ZIP archive)"),
    (b"mimetypeapplication/vnd.oasis.opendocument", "ODF", "an OpenDocument file (a ZIP archive)"),
    (b"META-INF/MANIFEST.MF", "JAR", "a Java archive (JAR, a ZIP archive)"),
)


def sniff(data: bytes) -> Sniffed:
    """Identify `data` by its magic bytes.

    Parameters
    ----------
    data : bytes
        The whole file, or at least its first 64 KiB.

    Returns
    -------
    Sniffed
        The kind, a description for messages, and whether intake can decode it. Unknown data
        gets category ``"unknown"`` with a description quoting its first bytes.

    Examples
    --------
    >>> sniff(b"%PDF-1.7 ...").description
    'a PDF document'
    """
    for prefix, kind, description, category in _PREFIXES:
        if data.startswith(prefix):
            return Sniffed(kind, description, category)
    return (
        _riff(data)
        or _iso_bmff(data)
        or _bmp(data)
        or _zip(data)
        or _at_offset(data)
        or _netpbm(data)
        or _mpeg_audio(data)
        or _text(data)
        or Sniffed("UNKNOWN", _unknown_description(data), "unknown")
    )


def cut_signature(data: bytes) -> str | None:
    """The supported format whose signature `data` starts but is too short to complete, if any.

    Lets intake call a 10-byte WebP "truncated" rather than "not an image".
    """
    if len(data) < 12 and data[:4] == b"RIFF"[: len(data[:4])]:
        return "WEBP"
    if len(data) < 18 and data.startswith(b"BM"):
        return "BMP"
    if len(data) < 16 and data[4:8] == b"ftyp":
        return "AVIF" if data[8:12] in _AVIF_BRANDS else "HEIF"
    for prefix, kind, _, category in _PREFIXES:
        if category == "image" and len(data) < len(prefix) and prefix.startswith(data):
            return kind
    return None


def extension_format(path: str | os.PathLike[str] | None) -> str | None:
    """The supported format a file name claims by its extension, or None if it claims none."""
    if path is None:
        return None
    return EXTENSION_FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())


def printable_name(raw: bytes) -> str | None:
    """A four-character code from a file (box, chunk or form name) as text, if it is printable ASCII.

    Junk bytes in a name would make a message unreadable (or unprintable), so callers say "an
    unreadable box" instead.

    Examples
    --------
    >>> printable_name(b"meta"), printable_name(b"\\xff\\x00ta")
    ('meta', None)
    """
    if raw and all(0x20 <= byte < 0x7F for byte in raw):
        return raw.decode("ascii")
    return None


def _riff(data: bytes) -> Sniffed | None:
    if not data.startswith(b"RIFF") or len(data) < 12:
        return None
    form = data[8:12]
    if form == b"WEBP":
        return Sniffed("WEBP", "a WebP image", "image")
    if form == b"WAVE":
        return Sniffed("WAV", "a WAV audio file", "not_image")
    if form == b"AVI ":
        return Sniffed("AVI", "an AVI video", "not_image")
    name = printable_name(form)
    of_type = f"of type '{name}'" if name is not None else "of an unreadable type"
    return Sniffed("RIFF", f"a RIFF container {of_type}", "not_image")


def _iso_bmff(data: bytes) -> Sniffed | None:
    """HEIF, AVIF, CR3 and MP4/MOV all start with an ISO base media `ftyp` box; its brands tell them apart."""
    if data[4:8] != b"ftyp" or len(data) < 12:
        return None
    box_size = int.from_bytes(data[0:4], "big")
    major = data[8:12]
    compatible = data[16 : min(max(box_size, 16), 512)]
    brands = {major} | {compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)}
    if brands & _AVIF_BRANDS:
        return Sniffed("AVIF", "an AVIF image", "image")
    if brands & _HEIF_BRANDS:
        return Sniffed("HEIF", "a HEIC/HEIF image", "image")
    if b"crx " in brands:
        return Sniffed("CR3", "a Canon CR3 raw photo", "unsupported_image")
    if b"jxl " in brands:
        return Sniffed("JXL", "a JPEG XL image", "unsupported_image")
    if major == b"qt  ":
        return Sniffed("MOV", "a QuickTime (MOV) video", "not_image")
    if major in (b"M4A ", b"M4B ", b"M4P "):
        return Sniffed("M4A", "an MPEG-4 audio file (M4A)", "not_image")
    if major.startswith(b"3g"):
        return Sniffed("3GP", "a 3GP video", "not_image")
    return Sniffed("MP4", "an MP4/MOV video", "not_image")


def _bmp(data: bytes) -> Sniffed | None:
    # "BM" alone is too weak (text can start with it): also require a known DIB header size.
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return Sniffed("BMP", "a BMP image", "image")
    return None


def _zip(data: bytes) -> Sniffed | None:
    if not data.startswith(b"PK\x03\x04"):
        return None
    head = data[:65536]
    for member, kind, description in _ZIP_MEMBERS:
        if member in head:
            return Sniffed(kind, description, "not_image")
    return Sniffed("ZIP", "a ZIP archive", "not_image")


def _at_offset(data: bytes) -> Sniffed | None:
    if data[257:262] == b"ustar":
        return Sniffed("TAR", "a TAR archive", "not_image")
    if data[128:132] == b"DICM":
        return Sniffed("DICOM", "a DICOM medical image", "unsupported_image")
    if data[:4] == b"\x01\x00\x00\x00" and data[40:44] == b" EMF":
        return Sniffed("EMF", "a Windows metafile (EMF)", "unsupported_image")
    return None


def _netpbm(data: bytes) -> Sniffed | None:
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"1234567" and data[2:3] in b" \t\r\n":
        return Sniffed("PNM", "a Netpbm image (PBM/PGM/PPM/PAM)", "unsupported_image")
    return None


def _mpeg_audio(data: bytes) -> Sniffed | None:
    # MPEG-1/2 audio frame sync (FF Fx). FF Ex is left alone: that is also a JPEG APPn marker, as
    # in a JPEG whose first two bytes were lost.
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xF0 == 0xF0:
        return Sniffed("MP3", "an MP3/AAC audio file", "not_image")
    return None


def _decode_text_head(head: bytes) -> str | None:
    """Decode the start of a file as text, or None if it does not look like text."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head[: len(head) // 2 * 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is fine; anything earlier is binary.
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    text = text.removeprefix("\ufeff")
    if not text or "\x00" in text:
        return None
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\r\n\f\v")
    return text if printable >= 0.95 * len(text) else None


def _text(data: bytes) -> Sniffed | None:
    text = _decode_text_head(data[:4096])
    if text is None:
        return None
    start = text.lstrip().lower()
    if "<svg" in start:
        return Sniffed(
            "SVG", "an SVG vector image (SVG vector images are not supported; export it to PNG)", "not_image"
        )
    if start.startswith("<!doctype html") or any(tag in start for tag in ("<html", "<body")):
        return Sniffed("HTML", "an HTML web page", "not_image")
    if start.startswith("<?xml") or start.startswith("<"):
        return Sniffed("XML", "an XML document", "not_image")
    if start.startswith("data:image/"):
        description = "a data: URI (base64 text); decode its base64 part to get the image"
        return Sniffed("DATAURI", description, "not_image")
    if start.startswith(("{", "[")):
        return Sniffed("JSON", "JSON data", "not_image")
    if start.startswith("/* xpm */"):
        return Sniffed("XPM", "an XPM image", "unsupported_image")
    if start.startswith("#define") and "_width" in start:
        return Sniffed("XBM", "an XBM image", "unsupported_image")
    return Sniffed("TEXT", "plain text", "not_image")


def _unknown_description(data: bytes) -> str:
    first = " ".join(f"{byte:02x}" for byte in data[:8])
    return f"data of unknown type (it starts with bytes {first}, the signature of no format we know)"


__all__ = [
    "EXTENSION_FORMATS",
    "FORMAT_LABELS",
    "SUPPORTED_FORMATS",
    "Sniffed",
    "cut_signature",
    "extension_format",
    "printable_name",
    "sniff",
]
