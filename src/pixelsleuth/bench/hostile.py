"""Hostile files for our own fuzzing: a seeded corpus of damaged, malicious and odd inputs.

`write_hostile_corpus` makes the files at call time (nothing binary is committed) and is deterministic
for a seed: the same seed, count and families give the same names and the same bytes. Each file belongs
to one family of `FAMILIES`; within a family the variants take turns, and the seed decides the rest
(where to cut, which bits to flip, how long the bait is). A file's bytes depend only on the seed, its
family and its index in that family, so a reproducer is "family, seed, index" (the file name starts
with the index).

Families:

- ``truncated``: valid JPEG/PNG/WebP/GIF/TIFF/BMP/HEIF/AVIF files cut at an offset.
- ``bit_flip``: bits flipped or bytes overwritten, in the header or in the body.
- ``bad_length``: corrupted length fields (JPEG segments, PNG chunks, RIFF, TIFF IFDs, ISO-BMFF boxes,
  BMP headers, GIF sub-blocks).
- ``exif_loop``: EXIF IFD chains that loop (next-IFD and ExifIFD/GPS/Interop pointers) in JPEG APP1,
  PNG eXIf and TIFF files; a 3000-IFD chain.
- ``xmp_entity``: XMP with entity bombs and external entities (file:// and http://) in JPEG APP1 and
  PNG iTXt.
- ``png_text_bomb``: compressed text (zTXt, iTXt, iCCP) that inflates to megabytes; thousands of tEXt.
- ``surrogate_text``: text whose JSON escapes decode to lone surrogates; invalid UTF-8 in iTXt, JPEG
  COM, XMP and EXIF.
- ``regex_bait``: 40-200 kB generator text and XMP that make backtracking patterns go quadratic.
- ``huge_dimensions``: tiny files whose headers declare huge images.
- ``large_valid``: a few genuinely large valid images (costly, so at most `LARGE_VALID_LIMIT`).
- ``polyglot``: images that are also ZIP, PDF or HTML; image magic followed by noise.
- ``not_an_image``: text, PDF, ZIP, ELF, empty, one byte, zeros... with image extensions.
- ``special_file``: FIFO, symlink loops, dangling symlink, /dev/zero, a 2 GiB sparse file, a folder
  named like an image, an unreadable file.
- ``odd_name``: valid images with hostile names (not UTF-8, control characters, quotes, a leading
  dash, 250 bytes, Unicode normalisation twins, shell syntax).

Every entry has an image extension and none is hidden, so a folder scan picks up all of them but the
folder named ``dir.jpg``. `run_measured` and `record_path_key` serve the batch test
(tests/test_hostile_batch.py) and the campaign (benchmarks/fuzz_campaign.py): run a scan, measure its
peak memory, and match its JSON lines to the files.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     files = write_hostile_corpus(Path(folder), count=3, seed=0, families=("not_an_image",))
    ...     [item.path.name for item in files]
    ['0000-text.heic', '0001-pdf.avif', '0002-zip.tif']
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import random
import signal
import struct
import subprocess
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FAMILIES: tuple[str, ...] = (
    "truncated",
    "bit_flip",
    "bad_length",
    "exif_loop",
    "xmp_entity",
    "png_text_bomb",
    "surrogate_text",
    "regex_bait",
    "huge_dimensions",
    "large_valid",
    "polyglot",
    "not_an_image",
    "special_file",
    "odd_name",
)

# The formats of the valid files the damage starts from, and the extension each is written with.
BASE_FORMATS: dict[str, str] = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "HEIF": ".heic",
    "AVIF": ".avif",
}
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".tif",
    ".bmp",
    ".heic",
    ".avif",
)
LARGE_VALID_LIMIT = 3
SPARSE_FILE_BYTES = 2 * 2**30
# External entities point here; nothing may fetch it (a test can listen on it to prove that).
DEFAULT_FETCH_URL = "http://127.0.0.1:9/pixelsleuth-xxe"

BASE_SIZE = (64, 48)


@dataclass(frozen=True)
class HostileFile:
    """One file of the corpus: where it is, its family and what is hostile about it."""

    path: Path
    family: str
    note: str
    index: int  # the file's number within its family: make_specimen(family, index, seed=...) remakes it


@dataclass(frozen=True)
class Specimen:
    """A file before it is written: a name, its bytes (or how to make a special file) and a note.

    `name` may hold one folder ("dir/inside.png"); unless `exact_name`, the writer puts the index
    in front of it.
    """

    name: str
    note: str
    data: bytes | None = None
    make: Callable[[Path], None] | None = None
    exact_name: bool = False


@dataclass(frozen=True)
class Context:
    """What a variant may draw on: the file's own random generator and the URL external entities use."""

    rng: random.Random
    fetch_url: str = DEFAULT_FETCH_URL


Variant = Callable[[Context], Specimen]


@dataclass(frozen=True)
class Family:
    name: str
    variants: tuple[Variant, ...]
    weight: float = 1.0  # share of the corpus, relative to the other families
    limit: int | None = None  # most files of this family in one corpus


# --- valid base files ----------------------------------------------------------------------------


def photo_like_rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with mild noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = 127 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)


def gradient_rgb(width: int, height: int) -> np.ndarray:
    """A noiseless gradient: cheap to make and to encode at large sizes."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = x
    pixels[..., 1] = y
    pixels[..., 2] = (x + y) / 2
    return pixels


def encode(image: Image.Image | np.ndarray, fmt: str, **options: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@functools.cache
def base_image(fmt: str) -> bytes:
    """A small valid file of `fmt` (one of `BASE_FORMATS`), with some metadata where the format has it."""
    rgb = photo_like_rgb(*BASE_SIZE)
    image = Image.fromarray(rgb)
    if fmt == "JPEG":
        exif = tiff_structure([Ifd((Tag(0x010F, ASCII, b"Hostile\0"), Tag(0x0112, SHORT, (1,))))])
        return encode(image, "JPEG", quality=85, exif=b"Exif\0\0" + exif, comment=b"hostile base")
    if fmt == "PNG":
        return png_insert_chunks(encode(image, "PNG"), png_text(b"Comment", b"hostile base"))
    if fmt == "GIF":
        frames = [image.convert("P"), Image.fromarray(255 - rgb).convert("P")]
        buffer = io.BytesIO()
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
        return buffer.getvalue()
    if fmt == "WEBP":
        return encode(image, "WEBP", quality=80)
    if fmt in ("HEIF", "AVIF"):
        return encode(image, fmt, quality=60)
    return encode(image, fmt)  # TIFF, BMP


def base_choice(rng: random.Random) -> tuple[str, bytes]:
    fmt = rng.choice(sorted(BASE_FORMATS))
    return fmt, base_image(fmt)


# --- PNG surgery ---------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with a correct CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_chunks(png: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, payload length) of each chunk of a well-formed PNG."""
    chunks = []
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(png):
        (length,) = struct.unpack_from(">I", png, offset)
        kind = png[offset + 4 : offset + 8]
        chunks.append((offset, kind, length))
        offset += 12 + length
    return chunks


def png_insert_chunks(png: bytes, *chunks: bytes, before: bytes = b"IDAT") -> bytes:
    """`chunks` placed before the first chunk of type `before`."""
    offset = next(offset for offset, kind, _ in png_chunks(png) if kind == before)
    return png[:offset] + b"".join(chunks) + png[offset:]


def png_text(keyword: bytes, text: bytes) -> bytes:
    return png_chunk(b"tEXt", keyword + b"\0" + text)


def png_ztxt(keyword: bytes, compressed: bytes) -> bytes:
    return png_chunk(b"zTXt", keyword + b"\0\0" + compressed)


def png_itxt(keyword: bytes, text: bytes, *, compressed: bool = False) -> bytes:
    """An iTXt chunk; `text` is its (supposedly UTF-8) payload, already compressed when `compressed`."""
    return png_chunk(b"iTXt", keyword + b"\0" + bytes([int(compressed), 0]) + b"\0\0" + text)


def png_with_ihdr_size(png: bytes, width: int, height: int) -> bytes:
    """`png` with its IHDR declaring `width` x `height` (CRC fixed)."""
    data = bytearray(png)
    payload = bytearray(data[16:29])
    payload[0:8] = struct.pack(">II", width, height)
    data[8:33] = png_chunk(b"IHDR", bytes(payload))
    return bytes(data)


# --- JPEG surgery --------------------------------------------------------------------------------

_JPEG_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
APP1, COM = 0xE1, 0xFE
MAX_SEGMENT_PAYLOAD = 65533


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    """One marker segment; its length field counts itself, so a payload holds at most 65533 bytes."""
    if len(payload) > MAX_SEGMENT_PAYLOAD:
        raise ValueError(f"a JPEG segment holds at most {MAX_SEGMENT_PAYLOAD} bytes, not {len(payload)}")
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(offset of the 0xFF, marker, length field) of each segment from SOI up to and including SOS."""
    segments = []
    offset = 2
    while offset + 4 <= len(jpeg) and jpeg[offset] == 0xFF:
        marker = jpeg[offset + 1]
        (length,) = struct.unpack_from(">H", jpeg, offset + 2)
        segments.append((offset, marker, length))
        if marker == 0xDA:
            break
        offset += 2 + length
    return segments


def jpeg_insert_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """`segments` placed after SOI and the JFIF APP0 (where readers look for metadata)."""
    offset = 2
    first = jpeg_segments(jpeg)[0]
    if first[1] == 0xE0:
        offset = first[0] + 2 + first[2]
    return jpeg[:offset] + b"".join(segments) + jpeg[offset:]


def jpeg_without_segments(jpeg: bytes, markers: Iterable[int]) -> bytes:
    """`jpeg` with every segment of the given markers (before SOS) removed."""
    drop = set(markers)
    kept = bytearray(jpeg[:2])
    end = 2
    for offset, marker, length in jpeg_segments(jpeg):
        end = offset + 2 + length
        if marker not in drop:
            kept += jpeg[offset:end]
    return bytes(kept + jpeg[end:])


def jpeg_with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    data = bytearray(jpeg)
    for offset, marker, _ in jpeg_segments(jpeg):
        if marker in _JPEG_SOF_MARKERS:
            struct.pack_into(">HH", data, offset + 5, height, width)
    return bytes(data)


def exif_segment(tiff: bytes) -> bytes:
    return jpeg_segment(APP1, b"Exif\0\0" + tiff)


XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\0"


def xmp_segment(packet: bytes) -> bytes:
    return jpeg_segment(APP1, XMP_JPEG_HEADER + packet)


@functools.cache
def small_jpeg() -> bytes:
    """The base JPEG without its metadata segments (so inserted ones are the only ones)."""
    return jpeg_without_segments(base_image("JPEG"), (APP1, COM))


@functools.cache
def small_png() -> bytes:
    return encode(photo_like_rgb(*BASE_SIZE), "PNG")


# --- TIFF / EXIF structures ----------------------------------------------------------------------

BYTE, ASCII, SHORT, LONG, UNDEFINED = 1, 2, 3, 4, 7
_TYPE_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, UNDEFINED: 1}
EXIF_IFD_POINTER, GPS_IFD_POINTER, INTEROP_IFD_POINTER = 0x8769, 0x8825, 0xA005
USER_COMMENT = 0x9286


@dataclass(frozen=True)
class IfdRef:
    """A value that is the offset of IFD number `index` of the structure being built."""

    index: int


@dataclass(frozen=True)
class Tag:
    """One IFD entry. `count` overrides the real count (to lie about it)."""

    tag: int
    kind: int
    value: bytes | tuple[int, ...] | IfdRef
    count: int | None = None

    def packed(self, endian: str, offsets: Sequence[int]) -> bytes:
        if isinstance(self.value, IfdRef):
            return struct.pack(endian + "I", offsets[self.value.index])
        if isinstance(self.value, bytes):
            return self.value
        code = {BYTE: "B", SHORT: "H", LONG: "I"}[self.kind]
        return struct.pack(f"{endian}{len(self.value)}{code}", *self.value)

    @property
    def real_count(self) -> int:
        if isinstance(self.value, IfdRef):
            return 1
        if isinstance(self.value, bytes):
            return len(self.value) // _TYPE_SIZES[self.kind]
        return len(self.value)

    @property
    def byte_size(self) -> int:
        return 4 if isinstance(self.value, IfdRef) else self.real_count * _TYPE_SIZES[self.kind]


@dataclass(frozen=True)
class Ifd:
    """An IFD; `next` is the IFD that follows (an IfdRef, or a raw offset: 0 ends the chain)."""

    tags: tuple[Tag, ...]
    next: IfdRef | int = 0


def _ifd_size(ifd: Ifd) -> int:
    spill = sum(tag.byte_size + tag.byte_size % 2 for tag in ifd.tags if tag.byte_size > 4)
    return 2 + 12 * len(ifd.tags) + 4 + spill


def tiff_structure(ifds: Sequence[Ifd], *, big_endian: bool = False, payload: bytes = b"") -> bytes:
    """TIFF bytes: header, `payload` at offset 8 (strip data), then the IFDs in order (IFD0 first).

    Values longer than 4 bytes follow their IFD. IfdRef values and links become real offsets, so loops
    are easy to write: ``Ifd(tags, next=IfdRef(0))`` is an IFD0 that names itself as the next IFD.
    """
    endian = ">" if big_endian else "<"
    offsets = []
    position = 8 + len(payload) + len(payload) % 2
    for ifd in ifds:
        offsets.append(position)
        position += _ifd_size(ifd)
    out = bytearray((b"MM" if big_endian else b"II") + struct.pack(endian + "HI", 42, offsets[0]))
    out += payload + b"\0" * (len(payload) % 2)
    for ifd, at in zip(ifds, offsets, strict=True):
        spill_at = at + 2 + 12 * len(ifd.tags) + 4
        entries, spill = bytearray(struct.pack(endian + "H", len(ifd.tags))), bytearray()
        for tag in sorted(ifd.tags, key=lambda item: item.tag):
            value = tag.packed(endian, offsets)
            count = tag.real_count if tag.count is None else tag.count
            entries += struct.pack(endian + "HHI", tag.tag, tag.kind, count)
            if len(value) <= 4:
                entries += value.ljust(4, b"\0")
            else:
                entries += struct.pack(endian + "I", spill_at + len(spill))
                spill += value + b"\0" * (len(value) % 2)
        link = ifd.next
        next_offset = offsets[link.index] if isinstance(link, IfdRef) else link
        out += entries + struct.pack(endian + "I", next_offset) + spill
    return bytes(out)


def tiff_image_tags(width: int, height: int, strip_bytes: int) -> tuple[Tag, ...]:
    """The tags of an uncompressed RGB image whose single strip starts at offset 8."""
    return (
        Tag(256, LONG, (width,)),
        Tag(257, LONG, (height,)),
        Tag(258, SHORT, (8, 8, 8)),
        Tag(259, SHORT, (1,)),
        Tag(262, SHORT, (2,)),
        Tag(273, LONG, (8,)),
        Tag(277, SHORT, (3,)),
        Tag(278, LONG, (height,)),
        Tag(279, LONG, (strip_bytes,)),
    )


def tiff_file(
    extra_ifds: Sequence[Ifd] = (),
    *,
    ifd0_extra: Sequence[Tag] = (),
    ifd0_next: IfdRef | int = 0,
    big_endian: bool = False,
) -> bytes:
    """A tiny valid 8 x 8 RGB TIFF whose IFD0 also carries `ifd0_extra` and links to `ifd0_next`;
    `extra_ifds` follow it (IfdRef(1) is the first of them)."""
    pixels = photo_like_rgb(8, 8).tobytes()
    first = Ifd(tiff_image_tags(8, 8, len(pixels)) + tuple(ifd0_extra), next=ifd0_next)
    return tiff_structure([first, *extra_ifds], big_endian=big_endian, payload=pixels)


def tiff_ifd0_entries(tiff: bytes) -> tuple[str, int, list[tuple[int, int, int, int]]]:
    """(endian, IFD0 offset, [(entry offset, tag, type, count)]) of a well-formed TIFF."""
    endian = ">" if tiff[:2] == b"MM" else "<"
    (ifd0,) = struct.unpack_from(endian + "I", tiff, 4)
    (count,) = struct.unpack_from(endian + "H", tiff, ifd0)
    entries = []
    for index in range(count):
        at = ifd0 + 2 + 12 * index
        tag, kind, number = struct.unpack_from(endian + "HHI", tiff, at)
        entries.append((at, tag, kind, number))
    return endian, ifd0, entries


def ascii_tag(tag: int, text: str) -> Tag:
    return Tag(tag, ASCII, text.encode("latin-1", "replace") + b"\0")


# --- ISO-BMFF, RIFF, GIF, BMP --------------------------------------------------------------------


def bmff_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of each box between `start` and `end` (one level)."""
    end = len(data) if end is None else end
    boxes = []
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8:
            break
        boxes.append((offset, size, kind))
        offset += size
    return boxes


def riff_chunks(webp: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, FourCC, size) of each chunk inside a WebP RIFF."""
    chunks = []
    offset = 12
    while offset + 8 <= len(webp):
        kind, size = struct.unpack_from("<4sI", webp, offset)
        chunks.append((offset, kind, size))
        offset += 8 + size + size % 2
    return chunks


def gif_image_descriptor(gif: bytes) -> int:
    """Offset of the first image descriptor (0x2C) of a GIF."""
    flags = gif[10]
    offset = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while gif[offset] == 0x21:  # extension blocks: introducer, label, sub-blocks
        offset += 2
        while gif[offset]:
            offset += gif[offset] + 1
        offset += 1
    if gif[offset] != 0x2C:
        raise ValueError("no image descriptor where one was expected")
    return offset


def gif_image_data(gif: bytes) -> int:
    """Offset of the LZW minimum code size byte of the first image."""
    offset = gif_image_descriptor(gif)
    flags = gif[offset + 9]
    return offset + 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)


def patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


# --- text payloads -------------------------------------------------------------------------------

XMP_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
XMP_END = '\n<?xpacket end="w"?>'


def xmp_packet(body_attributes: str = 'xmp:CreatorTool="hostile"', doctype: str = "") -> bytes:
    """An XMP packet with one rdf:Description carrying `body_attributes`, after an optional DOCTYPE."""
    text = (
        XMP_BEGIN
        + doctype
        + '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        + '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        + 'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        + body_attributes
        + "/></rdf:RDF></x:xmpmeta>"
        + XMP_END
    )
    return text.encode("utf-8")


def billion_laughs_doctype(levels: int = 10) -> str:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, levels)]
    return "<!DOCTYPE x:xmpmeta [" + "".join(entities) + "]>"


def quadratic_blowup_doctype(size: int) -> str:
    return f'<!DOCTYPE x:xmpmeta [<!ENTITY big "{"A" * size}">]>'


@functools.cache
def zlib_of(size: int, byte: bytes = b"A") -> bytes:
    """`size` copies of `byte`, zlib-compressed (about 1000 : 1)."""
    return zlib.compress(byte * size, 9)


A1111_TEXT = 'a cat\nNegative prompt: x\nSteps: 20, Sampler: Euler, Seed: 1, Model: "x\\udc80y"'
COMFY_PROMPT = (
    '{"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, '
    '"sampler_name": "euler", "positive": ["6", 0]}}, '
    '"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat \\ud800 on a mat"}}}'
)
BAIT_WORDS = ("cat", "dog", "blue", "sky", "oil-paint", "4k", "(detail)", "a/b", "x.y", "+z")


def a1111_bait(rng: random.Random, size: int, style: str) -> str:
    """AUTOMATIC1111-style parameters text of about `size` characters whose settings line never
    completes a ``key: value`` pair (the run defeats a backtracking key pattern at every position)."""
    head = "a cat\nNegative prompt: blurry\nSteps: 20, "
    if style == "words":
        words = []
        length = len(head)
        while length < size:
            word = rng.choice(BAIT_WORDS)
            words.append(word)
            length += len(word) + 1
        return head + " ".join(words)
    if style == "quote":
        return head + 'Model: "' + "a\\" * (size // 2)  # a quoted value that never closes
    return head + " " * (size - len(head) - 1) + "x"  # style "spaces"


def xmp_bait(size: int, style: str) -> bytes:
    """A not-well-formed XMP packet of about `size` bytes that baits patterns for DOCTYPEs and loose
    properties: an unterminated ``<!DOCTYPE x [`` and runs of ``<p:q a:b="`` that never close."""
    opening = XMP_BEGIN + '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    if style == "doctype":
        unit = "<!DOCTYPE x [ "
    elif style == "loose":
        unit = '<p:q a:b="c '
    else:  # "both"
        unit = '<!DOCTYPE x [ <p:q a:b="c '
    text = opening + "<!DOCTYPE x [" + unit * ((size - len(opening)) // len(unit))
    return text.encode("utf-8")


def user_comment(text: str) -> bytes:
    return b"ASCII\0\0\0" + text.encode("latin-1", "replace")


def exif_with_user_comment(comment: bytes, *, big_endian: bool = False) -> bytes:
    ifd0 = Ifd((ascii_tag(0x010F, "Hostile"), Tag(EXIF_IFD_POINTER, LONG, IfdRef(1))))
    exif_ifd = Ifd((Tag(USER_COMMENT, UNDEFINED, comment),))
    return tiff_structure([ifd0, exif_ifd], big_endian=big_endian)


# --- families: truncated, bit_flip ---------------------------------------------------------------


def _cut_offset(rng: random.Random, size: int) -> int:
    region = rng.choice(("header", "middle", "end"))
    if region == "header":
        return rng.randint(1, min(48, size - 1))
    if region == "end":
        return rng.randint(max(1, size - 16), size - 1)
    return rng.randint(1, size - 1)


def _truncated(fmt: str) -> Variant:
    def variant(context: Context) -> Specimen:
        data = base_image(fmt)
        cut = _cut_offset(context.rng, len(data))
        note = f"{fmt} of {len(data)} bytes cut at byte {cut}"
        return Specimen(f"{fmt.lower()}-cut{cut}{BASE_FORMATS[fmt]}", note, data[:cut])

    return variant


def _flipped(where: str) -> Variant:
    def variant(context: Context) -> Specimen:
        rng = context.rng
        fmt, base = base_choice(rng)
        data = bytearray(base)
        header = min(64, len(data))
        if where == "header":
            offsets = [rng.randrange(header) for _ in range(rng.randint(1, 3))]
            for offset in offsets:
                data[offset] ^= 1 << rng.randrange(8)
            what = f"bits flipped at {offsets}"
        elif where == "body":
            offsets = [rng.randrange(header, len(data)) for _ in range(rng.randint(1, 8))]
            for offset in offsets:
                data[offset] ^= 1 << rng.randrange(8)
            what = f"bits flipped at {sorted(offsets)}"
        elif where == "overwrite":
            start = rng.randrange(len(data))
            run = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
            data[start : start + len(run)] = run
            what = f"{len(run)} random bytes written at {start}"
        else:  # "sprinkle": about 1% of all bytes
            count = max(1, len(data) // 100)
            for _ in range(count):
                data[rng.randrange(len(data))] = rng.randrange(256)
            what = f"{count} random bytes scattered"
        note = f"{fmt} ({len(base)} bytes), {where}: {what}"
        return Specimen(f"{fmt.lower()}-{where}{BASE_FORMATS[fmt]}", note, bytes(data[: len(base)]))

    return variant


# --- family: bad_length --------------------------------------------------------------------------


def _bad_jpeg_segment_length(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("JPEG")
    offset, marker, length = rng.choice(jpeg_segments(data))
    value = rng.choice((0, 1, 2, 0xFFFF, length + rng.randint(1, 600), max(0, length - rng.randint(1, 8))))
    note = f"JPEG segment 0xFF{marker:02X} at {offset}: length {length} -> {value}"
    return Specimen(f"jpeg-seglen-{marker:02x}.jpg", note, patched(data, offset + 2, ">H", value))


def _bad_png_chunk_length(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("PNG")
    offset, kind, length = rng.choice(png_chunks(data))
    value = rng.choice((0, 0x7FFFFFFF, 0xFFFFFFFF, length + rng.randint(1, 4000), max(0, length - 1)))
    note = f"PNG chunk {kind.decode()} at {offset}: length {length} -> {value}"
    return Specimen(f"png-chunklen-{kind.decode()}.png", note, patched(data, offset, ">I", value))


def _bad_riff_size(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("WEBP")
    if rng.random() < 0.5:
        offset, what, size = 4, "RIFF", struct.unpack_from("<I", data, 4)[0]
    else:
        offset, kind, size = rng.choice(riff_chunks(data))
        offset, what = offset + 4, f"chunk {kind.decode().strip()}"
    value = rng.choice((0, 4, 0xFFFFFFFF, 0x7FFFFFF0, size * 2 + 1))
    note = f"WebP {what} size {size} -> {value}"
    return Specimen(f"webp-riffsize-{what.split()[-1]}.webp", note, patched(data, offset, "<I", value))


def _bad_tiff_ifd(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("TIFF")
    endian, ifd0, entries = tiff_ifd0_entries(data)
    what = rng.choice(("ifd_count", "ifd_offset", "value_count", "strip_offset"))
    if what == "ifd_count":
        value = rng.choice((0, 0xFFFF, len(entries) + 50))
        out = patched(data, ifd0, endian + "H", value)
    elif what == "ifd_offset":
        value = rng.choice((0xFFFFFFFF, len(data) + 1000, 3, ifd0 + 1))
        out = patched(data, 4, endian + "I", value)
    elif what == "value_count":
        at, tag, _, _ = rng.choice(entries)
        value = rng.choice((0x3FFFFFFF, 0xFFFFFFFF, 1_000_000))
        out = patched(data, at + 4, endian + "I", value)
        what = f"value_count of tag {tag}"
    else:
        at = next(at for at, tag, _, _ in entries if tag == 273)
        value = rng.choice((0xFFFFFFF0, len(data) * 4))
        out = patched(data, at + 8, endian + "I", value)
    return Specimen(f"tiff-{what.split()[0]}.tif", f"TIFF IFD0 at {ifd0}: {what} -> {value}", out)


def _bad_bmff_box_size(context: Context) -> Specimen:
    rng = context.rng
    fmt = rng.choice(("HEIF", "AVIF"))
    data = base_image(fmt)
    boxes = bmff_boxes(data)
    meta = next((box for box in boxes if box[2] == b"meta"), None)
    if meta is not None and rng.random() < 0.5:  # a box inside meta (full box: 4 bytes of version)
        boxes = bmff_boxes(data, meta[0] + 12, meta[0] + meta[1])
    offset, size, kind = rng.choice(boxes)
    value = rng.choice((0, 1, 7, 0xFFFFFFFF, size + rng.randint(1, 5000), max(8, size - 9)))
    out = patched(data, offset, ">I", value)
    if value == 1:  # 1 announces a 64-bit size after the type: make that one absurd
        out = out[: offset + 8] + struct.pack(">Q", 2**62) + out[offset + 8 :]
    note = f"{fmt} box {kind.decode(errors='replace')} at {offset}: size {size} -> {value}"
    return Specimen(f"{fmt.lower()}-boxsize-{kind.decode(errors='replace')}{BASE_FORMATS[fmt]}", note, out)


def _bad_bmp_header(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("BMP")
    field_name, offset, fmt = rng.choice(
        (("bfSize", 2, "<I"), ("bfOffBits", 10, "<I"), ("biSize", 14, "<I"), ("biSizeImage", 34, "<I"))
    )
    value = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, 1, len(data) * 7))
    return Specimen(
        f"bmp-{field_name}.bmp", f"BMP {field_name} -> {value}", patched(data, offset, fmt, value)
    )


def _bad_gif_block(context: Context) -> Specimen:
    rng = context.rng
    data = base_image("GIF")
    at = gif_image_data(data)
    if rng.random() < 0.5:
        value = rng.choice((0, 1, 12, 255))
        note = f"GIF LZW minimum code size {data[at]} -> {value}"
        out = patched(data, at, "B", value)
    else:
        value = rng.choice((255, 0))
        note = f"GIF first data sub-block length {data[at + 1]} -> {value}"
        out = patched(data, at + 1, "B", value)
    return Specimen("gif-blocklen.gif", note, out)


# --- family: exif_loop ---------------------------------------------------------------------------


def _loop_ifds(loop: str) -> list[Ifd]:
    """Pure EXIF IFDs (no image) that loop in the way `loop` names."""
    make = ascii_tag(0x010F, "Loop")
    if loop == "ifd0_next_self":
        return [Ifd((make,), next=IfdRef(0))]
    if loop == "ifd1_back_to_ifd0":
        return [Ifd((make,), next=IfdRef(1)), Ifd((Tag(0x0112, SHORT, (1,)),), next=IfdRef(0))]
    if loop == "exif_ifd_to_ifd0":
        return [Ifd((make, Tag(EXIF_IFD_POINTER, LONG, IfdRef(0))))]
    if loop == "exif_ifd_next_self":
        exif = Ifd((ascii_tag(0x9003, "2020:01:01 00:00:00"),), next=IfdRef(1))
        return [Ifd((make, Tag(EXIF_IFD_POINTER, LONG, IfdRef(1)))), exif]
    if loop == "interop_to_exif_ifd":
        exif = Ifd((Tag(INTEROP_IFD_POINTER, LONG, IfdRef(1)),))
        return [Ifd((make, Tag(EXIF_IFD_POINTER, LONG, IfdRef(1)))), exif]
    if loop == "gps_to_ifd0":
        return [Ifd((make, Tag(GPS_IFD_POINTER, LONG, IfdRef(0))))]
    # "deep_chain": 3000 distinct IFDs, each naming the next: no loop, but deep enough to break
    # a parser that follows the chain by recursion.
    depth = 3000
    return [
        Ifd((Tag(0x0112, SHORT, (1,)),), next=IfdRef(n + 1) if n + 1 < depth else 0) for n in range(depth)
    ]


EXIF_LOOPS: tuple[str, ...] = (
    "ifd0_next_self",
    "ifd1_back_to_ifd0",
    "exif_ifd_to_ifd0",
    "exif_ifd_next_self",
    "interop_to_exif_ifd",
    "gps_to_ifd0",
    "deep_chain",
)


def _exif_loop(container: str, loop: str) -> Variant:
    def variant(context: Context) -> Specimen:
        big_endian = context.rng.random() < 0.5
        order = "big-endian" if big_endian else "little-endian"
        ifds = _loop_ifds(loop)
        if container == "tiff":  # the image's IFD0 takes the loop's IFD0 tags and link
            data = tiff_file(ifds[1:], ifd0_extra=ifds[0].tags, ifd0_next=ifds[0].next, big_endian=big_endian)
            return Specimen(f"tiff-{loop}.tif", f"TIFF file, {order}: {loop}", data)
        tiff = tiff_structure(ifds, big_endian=big_endian)
        if container == "png":
            data = png_insert_chunks(small_png(), png_chunk(b"eXIf", tiff))
            return Specimen(f"png-exif-{loop}.png", f"PNG eXIf, {order}: {loop}", data)
        if len(tiff) + 6 > MAX_SEGMENT_PAYLOAD:
            tiff = tiff[: MAX_SEGMENT_PAYLOAD - 6]  # the chain goes on past the segment's end
        data = jpeg_insert_segments(small_jpeg(), exif_segment(tiff))
        return Specimen(f"jpeg-exif-{loop}.jpg", f"JPEG APP1 EXIF, {order}: {loop}", data)

    return variant


# --- family: xmp_entity --------------------------------------------------------------------------


def _entity_packet(kind: str, fetch_url: str) -> tuple[bytes, str]:
    if kind == "billion_laughs":
        return xmp_packet('xmp:CreatorTool="&lol9;"', billion_laughs_doctype()), "10^9 'lol' entity expansion"
    if kind == "quadratic_blowup":
        packet = xmp_packet('dc:format="' + "&big;" * 2000 + '"', quadratic_blowup_doctype(20000))
        return packet, "a 20 kB entity referenced 2000 times (40 MB expanded)"
    if kind == "external_file":
        doctype = '<!DOCTYPE x:xmpmeta [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        return xmp_packet('xmp:CreatorTool="&xxe;"', doctype), "external entity file:///etc/passwd"
    if kind == "external_http":
        doctype = f'<!DOCTYPE x:xmpmeta [<!ENTITY xxe SYSTEM "{fetch_url}">]>'
        return xmp_packet('xmp:CreatorTool="&xxe;"', doctype), f"external entity {fetch_url}"
    doctype = f'<!DOCTYPE x:xmpmeta [<!ENTITY % remote SYSTEM "{fetch_url}"> %remote;]>'
    return xmp_packet(doctype=doctype), f"external parameter entity {fetch_url}"


XMP_ENTITY_KINDS: tuple[str, ...] = (
    "billion_laughs",
    "quadratic_blowup",
    "external_file",
    "external_http",
    "external_parameter_entity",
)


def _xmp_entity(container: str, kind: str) -> Variant:
    def variant(context: Context) -> Specimen:
        packet, what = _entity_packet(kind, context.fetch_url)
        if container == "png":
            data = png_insert_chunks(small_png(), png_itxt(b"XML:com.adobe.xmp", packet))
            return Specimen(f"png-xmp-{kind}.png", f"PNG iTXt XMP: {what}", data)
        data = jpeg_insert_segments(small_jpeg(), xmp_segment(packet))
        return Specimen(f"jpeg-xmp-{kind}.jpg", f"JPEG APP1 XMP: {what}", data)

    return variant


# --- family: png_text_bomb -----------------------------------------------------------------------


def _ztxt_bomb(context: Context) -> Specimen:
    megabytes = context.rng.choice((4, 8, 16))
    chunk = png_ztxt(b"parameters", zlib_of(megabytes * 2**20))
    note = f"zTXt 'parameters' inflating to {megabytes} MiB"
    return Specimen(f"ztxt-{megabytes}mib.png", note, png_insert_chunks(small_png(), chunk))


def _itxt_bomb(context: Context) -> Specimen:
    megabytes = context.rng.choice((4, 8, 16))
    chunk = png_itxt(b"Description", zlib_of(megabytes * 2**20), compressed=True)
    note = f"compressed iTXt 'Description' inflating to {megabytes} MiB"
    return Specimen(f"itxt-{megabytes}mib.png", note, png_insert_chunks(small_png(), chunk))


def _many_ztxt(context: Context) -> Specimen:
    count = context.rng.choice((100, 200))
    chunk = png_ztxt(b"Comment", zlib_of(900 * 2**10, b"B"))
    note = f"{count} zTXt chunks of 900 KiB each ({count * 900 // 1024} MiB inflated)"
    return Specimen(f"many-ztxt-{count}.png", note, png_insert_chunks(small_png(), chunk * count))


def _many_text(context: Context) -> Specimen:
    count = context.rng.randint(3000, 6000)
    chunks = b"".join(png_text(b"Comment", b"x%d" % index) for index in range(count))
    return Specimen(f"many-text-{count}.png", f"{count} tEXt chunks", png_insert_chunks(small_png(), chunks))


def _iccp_bomb(context: Context) -> Specimen:
    megabytes = context.rng.choice((8, 32))
    chunk = png_chunk(b"iCCP", b"bomb\0\0" + zlib_of(megabytes * 2**20, b"\0"))
    note = f"iCCP profile inflating to {megabytes} MiB"
    return Specimen(f"iccp-{megabytes}mib.png", note, png_insert_chunks(small_png(), chunk))


# --- family: surrogate_text ----------------------------------------------------------------------

INVALID_UTF8 = b"bad \xff\xfe utf-8 \xed\xa0\x80 (an encoded surrogate) \xc3"


def _surrogate_a1111(context: Context) -> Specimen:
    data = png_insert_chunks(small_png(), png_text(b"parameters", A1111_TEXT.encode("ascii")))
    return Specimen("a1111-surrogate.png", 'PNG tEXt parameters with Model: "x\\udc80y"', data)


def _surrogate_comfy(context: Context) -> Specimen:
    chunks = png_text(b"prompt", COMFY_PROMPT.encode("ascii"))
    if context.rng.random() < 0.5:
        chunks += png_text(b"workflow", b'{"nodes": [{"id": 1, "title": "\\udfff\\ud800"}]}')
    data = png_insert_chunks(small_png(), chunks)
    return Specimen("comfy-surrogate.png", 'PNG tEXt ComfyUI prompt JSON with "\\ud800"', data)


def _invalid_utf8_itxt(context: Context) -> Specimen:
    keyword = context.rng.choice((b"parameters", b"Description", b"XML:com.adobe.xmp"))
    data = png_insert_chunks(small_png(), png_itxt(keyword, INVALID_UTF8))
    return Specimen("itxt-invalid-utf8.png", f"PNG iTXt {keyword.decode()} with invalid UTF-8", data)


def _invalid_utf8_com(context: Context) -> Specimen:
    data = jpeg_insert_segments(small_jpeg(), jpeg_segment(COM, INVALID_UTF8))
    return Specimen("com-invalid-utf8.jpg", "JPEG COM with invalid UTF-8", data)


def _invalid_utf8_xmp(context: Context) -> Specimen:
    packet = xmp_packet('xmp:CreatorTool="&#xD800;" dc:format="INVALID"').replace(b"INVALID", INVALID_UTF8)
    data = jpeg_insert_segments(small_jpeg(), xmp_segment(packet))
    return Specimen("xmp-invalid-utf8.jpg", "JPEG XMP with invalid UTF-8 and &#xD800;", data)


def _surrogate_user_comment(context: Context) -> Specimen:
    if context.rng.random() < 0.5:
        comment = b"UNICODE\0" + "a cat ".encode("utf-16-le") + b"\x00\xd8" + b"x"  # lone D800, odd length
        what = "UNICODE UserComment with a lone surrogate and an odd length"
    else:
        comment = user_comment(A1111_TEXT)
        what = 'ASCII UserComment A1111 parameters with Model: "x\\udc80y"'
    exif = exif_with_user_comment(comment, big_endian=context.rng.random() < 0.5)
    data = jpeg_insert_segments(small_jpeg(), exif_segment(exif))
    return Specimen("usercomment-surrogate.jpg", f"JPEG EXIF {what}", data)


# --- family: regex_bait --------------------------------------------------------------------------


def _bait_a1111_png(style: str) -> Variant:
    def variant(context: Context) -> Specimen:
        size = context.rng.randint(40_000, 200_000)
        text = a1111_bait(context.rng, size, style)
        data = png_insert_chunks(small_png(), png_text(b"parameters", text.encode("latin-1")))
        note = f"PNG tEXt parameters, {len(text)} characters, {style} run without a key: value pair"
        return Specimen(f"a1111-{style}.png", note, data)

    return variant


def _bait_xmp(container: str, style: str) -> Variant:
    def variant(context: Context) -> Specimen:
        if container == "jpeg":
            packet = xmp_bait(context.rng.randint(40_000, MAX_SEGMENT_PAYLOAD - 100), style)
            data = jpeg_insert_segments(small_jpeg(), xmp_segment(packet))
        else:
            packet = xmp_bait(context.rng.randint(40_000, 200_000), style)
            data = png_insert_chunks(small_png(), png_itxt(b"XML:com.adobe.xmp", packet))
        note = f"{container.upper()} XMP, {len(packet)} bytes, unterminated DOCTYPE, {style} runs"
        return Specimen(f"{container}-xmp-{style}{'.jpg' if container == 'jpeg' else '.png'}", note, data)

    return variant


def _bait_user_comment(context: Context) -> Specimen:
    style = context.rng.choice(("words", "quote", "spaces"))
    text = a1111_bait(context.rng, context.rng.randint(40_000, 60_000), style)
    exif = exif_with_user_comment(user_comment(text))
    data = jpeg_insert_segments(small_jpeg(), exif_segment(exif))
    note = f"JPEG EXIF UserComment, {len(text)} characters of A1111 text, {style} run"
    return Specimen(f"usercomment-{style}.jpg", note, data)


# --- families: huge_dimensions, large_valid ------------------------------------------------------


def _huge_jpeg(width: int, height: int) -> Variant:
    def variant(context: Context) -> Specimen:
        data = jpeg_with_sof_size(base_image("JPEG"), width, height)
        note = f"JPEG of {len(data)} bytes whose SOF declares {width} x {height}"
        return Specimen(f"jpeg-{width}x{height}.jpg", note, data)

    return variant


def _huge_png(width: int, height: int) -> Variant:
    def variant(context: Context) -> Specimen:
        data = png_with_ihdr_size(small_png(), width, height)
        return Specimen(f"png-{width}x{height}.png", f"PNG IHDR of {width} x {height}", data)

    return variant


def _huge_gif(context: Context) -> Specimen:
    data = base_image("GIF")
    descriptor = gif_image_descriptor(data)
    data = patched(data, 6, "<HH", 65535, 65535)
    data = patched(data, descriptor + 5, "<HH", 65535, 65535)
    return Specimen("gif-65535x65535.gif", "GIF screen and first frame of 65535 x 65535", data)


def _huge_bmp(context: Context) -> Specimen:
    width, height = context.rng.choice(((9999, 10000), (50000, 50000), (1, 2**31 - 1)))
    data = patched(base_image("BMP"), 18, "<ii", width, height)
    return Specimen(f"bmp-{width}x{height}.bmp", f"BMP header of {width} x {height}", data)


def _huge_tiff(context: Context) -> Specimen:
    width, height = context.rng.choice(((100_000, 100_000), (10_000, 10_000)))
    pixels = b"\x80" * 192
    data = tiff_structure([Ifd(tiff_image_tags(width, height, len(pixels)))], payload=pixels)
    return Specimen(
        f"tiff-{width}x{height}.tif", f"TIFF IFD0 of {width} x {height}, one 192-byte strip", data
    )


def _huge_webp(context: Context) -> Specimen:
    data = base_image("WEBP")
    offset, kind, _ = next(chunk for chunk in riff_chunks(data) if chunk[1] in (b"VP8 ", b"VP8L"))
    if kind == b"VP8 ":  # frame tag (3), start code (3), then 14-bit width and height
        data = patched(data, offset + 8 + 6, "<HH", 16383, 16383)
    else:  # VP8L: signature byte, then 14 bits each of width-1 and height-1
        bits = struct.unpack_from("<I", data, offset + 9)[0]
        data = patched(data, offset + 9, "<I", (bits & ~0x0FFFFFFF) | 16382 | (16382 << 14))
    return Specimen("webp-16383x16383.webp", f"WebP {kind.decode().strip()} frame of 16383 x 16383", data)


def _huge_heif(context: Context) -> Specimen:
    fmt = context.rng.choice(("HEIF", "AVIF"))
    # 9999 x 9999 passes a 100-megapixel limit, and an AVIF decoder then really allocates it.
    side = context.rng.choice((9999, 60000))
    data = bytearray(base_image(fmt))
    at = data.find(b"ispe")
    while at >= 0:
        struct.pack_into(">II", data, at + 8, side, side)
        at = data.find(b"ispe", at + 4)
    note = f"{fmt} of {len(data)} bytes whose ispe boxes declare {side} x {side}"
    return Specimen(f"{fmt.lower()}-{side}x{side}{BASE_FORMATS[fmt]}", note, bytes(data))


def _large_valid(fmt: str, width: int, height: int) -> Variant:
    options: dict[str, dict[str, object]] = {
        "JPEG": {"quality": 85},
        "WEBP": {"quality": 50, "method": 0},
        "PNG": {"compress_level": 1},
    }

    def variant(context: Context) -> Specimen:
        data = encode(gradient_rgb(width, height), fmt, **options[fmt])
        suffix = {"JPEG": ".jpg", "WEBP": ".webp", "PNG": ".png"}[fmt]
        note = f"valid {fmt} of {width} x {height} ({len(data)} bytes)"
        return Specimen(f"{fmt.lower()}-{width}x{height}{suffix}", note, data)

    return variant


# --- families: polyglot, not_an_image ------------------------------------------------------------


def zip_bytes(name: str = "payload.txt", text: bytes = b"hello from inside the zip\n") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), text)
    return buffer.getvalue()


PDF_BYTES = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML_BYTES = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
ELF_BYTES = b"\x7fELF\x02\x01\x01\0" + b"\0" * 8 + b"\x02\0\x3e\0" + b"\0" * 44


def _polyglot(kind: str) -> Variant:
    def variant(context: Context) -> Specimen:
        rng = context.rng
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(100, 4000)))
        made: dict[str, tuple[str, bytes]] = {
            "jpeg_zip": ("JPEG followed by a ZIP archive", small_jpeg() + zip_bytes()),
            "png_pdf": ("PNG with a PDF after IEND", small_png() + PDF_BYTES),
            "jpeg_html_comment": (
                "JPEG COM holding HTML and JavaScript",
                jpeg_insert_segments(small_jpeg(), jpeg_segment(COM, HTML_BYTES)),
            ),
            "png_html_text": (
                "PNG tEXt Comment holding HTML and JavaScript",
                png_insert_chunks(small_png(), png_text(b"Comment", HTML_BYTES)),
            ),
            "gif_zip": ("GIF followed by a ZIP archive (GIFAR)", base_image("GIF") + zip_bytes()),
            "jpeg_magic_noise": ("JPEG magic then random bytes", b"\xff\xd8\xff\xe0" + noise),
            "png_magic_noise": ("PNG signature then random bytes", PNG_SIGNATURE + noise),
        }
        note, data = made[kind]
        suffix = ".gif" if kind.startswith("gif") else ".png" if kind.startswith("png") else ".jpg"
        return Specimen(f"{kind}{suffix}", note, data)

    return variant


POLYGLOTS: tuple[str, ...] = (
    "jpeg_zip",
    "png_pdf",
    "jpeg_html_comment",
    "png_html_text",
    "gif_zip",
    "jpeg_magic_noise",
    "png_magic_noise",
)


def _non_image(kind: str) -> Variant:
    def variant(context: Context) -> Specimen:
        rng = context.rng
        made: dict[str, bytes] = {
            "text": b"just some text, not an image\n" * rng.randint(1, 50),
            "pdf": PDF_BYTES,
            "zip": zip_bytes(),
            "elf": ELF_BYTES,
            "empty": b"",
            "one_byte": bytes([rng.randrange(256)]),
            "zeros": b"\0" * rng.choice((16, 4096, 65536)),
            "html": HTML_BYTES,
            "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "random": bytes(rng.randrange(256) for _ in range(rng.randint(1, 2048))),
            "utf16_text": "\ufeffnot an image".encode("utf-16-le"),
            "shell_script": b'#!/bin/sh\nrm -rf "$HOME"\n',
        }
        suffix = rng.choice(IMAGE_EXTENSIONS)
        return Specimen(f"{kind}{suffix}", f"{kind.replace('_', ' ')} named {suffix}", made[kind])

    return variant


NON_IMAGES: tuple[str, ...] = (
    "text",
    "pdf",
    "zip",
    "elf",
    "empty",
    "one_byte",
    "zeros",
    "html",
    "svg",
    "random",
    "utf16_text",
    "shell_script",
)


# --- family: special_file ------------------------------------------------------------------------


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_self_symlink(path: Path) -> None:
    os.symlink(path.name, path)


def _make_symlink_pair(path: Path) -> None:
    partner = path.with_name("." + path.name + "-partner")  # hidden, so only `path` is collected
    os.symlink(partner.name, path)
    os.symlink(path.name, partner)


def _make_dangling_symlink(path: Path) -> None:
    os.symlink("does-not-exist.jpg", path)


def _make_dev_zero_symlink(path: Path) -> None:
    os.symlink("/dev/zero", path)


def _make_sparse(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.write(small_jpeg())
        handle.truncate(SPARSE_FILE_BYTES)


def _make_directory(path: Path) -> None:
    path.mkdir()


def _make_unreadable(path: Path) -> None:
    path.write_bytes(small_jpeg())
    path.chmod(0)


SPECIAL_FILES: dict[str, tuple[str, str, Callable[[Path], None]]] = {
    "fifo": ("fifo.jpg", "a named pipe (FIFO): opening it for reading blocks", _make_fifo),
    "symlink_self": ("loop-self.png", "a symlink to itself", _make_self_symlink),
    "symlink_pair": ("loop-pair.png", "a symlink loop through a hidden partner", _make_symlink_pair),
    "dangling_symlink": ("dangling.jpg", "a symlink to a file that does not exist", _make_dangling_symlink),
    "dev_zero": ("zero.jpg", "a symlink to /dev/zero (endless)", _make_dev_zero_symlink),
    "sparse_2gib": ("sparse.jpg", "a JPEG header in a sparse file of 2 GiB", _make_sparse),
    "directory": ("dir.jpg", "a directory named like an image", _make_directory),
    "unreadable": ("unreadable.jpg", "a JPEG with mode 000 (root reads it anyway)", _make_unreadable),
}


def _special(kind: str) -> Variant:
    name, note, make = SPECIAL_FILES[kind]

    def variant(context: Context) -> Specimen:
        return Specimen(name, note, make=make)

    return variant


# --- family: odd_name ----------------------------------------------------------------------------

LONG_NAME_BYTES = 250
ODD_NAMES: dict[str, str] = {
    "non_utf8": os.fsdecode(b"bad_\xff\xfe.png"),
    "newline": "new\nline.jpg",
    "tab": "tab\there.png",
    "quotes": "quote'single\"double.png",
    "leading_dash": "-rf.png",
    "long": "l" * (LONG_NAME_BYTES - 4) + ".jpg",
    "nfc": unicodedata.normalize("NFC", "café.png"),
    "nfd": unicodedata.normalize("NFD", "café.png"),
    "command_substitution": "$(reboot).png",
    "backticks": "`id`.jpg",
    "shell_separators": "; rm -rf ~ ;.gif",
    "terminal_escape": "bell\x07\x1b[31mred.png",
    "glob_characters": "star*?[x].png",
    "backslash": "back\\slash.png",
    "right_to_left_override": "photo\u202egnp.jpg",
    "emoji": "\U0001f5bc\ufe0f.webp",
    "upper_case_extension": "UPPER.JPEG",
    "leading_space": " leading space.png",
    "non_utf8_folder": os.fsdecode(b"dir_\xff") + "/inside.png",
}


def _odd_name(kind: str) -> Variant:
    name = ODD_NAMES[kind]

    def variant(context: Context) -> Specimen:
        suffix = os.path.splitext(name)[1].lower()
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".webp": "WEBP"}[suffix]
        note = f"valid {fmt} named {os.fsencode(name)!r} ({kind.replace('_', ' ')})"
        return Specimen(name, note, base_image(fmt), exact_name=True)

    return variant


# --- the corpus ----------------------------------------------------------------------------------


def _families() -> dict[str, Family]:
    return {
        "truncated": Family("truncated", tuple(_truncated(fmt) for fmt in BASE_FORMATS), weight=3),
        "bit_flip": Family(
            "bit_flip", tuple(_flipped(where) for where in ("header", "body", "overwrite", "sprinkle")), 2
        ),
        "bad_length": Family(
            "bad_length",
            (
                _bad_jpeg_segment_length,
                _bad_png_chunk_length,
                _bad_riff_size,
                _bad_tiff_ifd,
                _bad_bmff_box_size,
                _bad_bmp_header,
                _bad_gif_block,
            ),
            weight=2,
        ),
        "exif_loop": Family(
            "exif_loop",
            tuple(
                _exif_loop(container, loop) for container in ("jpeg", "tiff", "png") for loop in EXIF_LOOPS
            ),
        ),
        "xmp_entity": Family(
            "xmp_entity", tuple(_xmp_entity(c, kind) for c in ("jpeg", "png") for kind in XMP_ENTITY_KINDS)
        ),
        "png_text_bomb": Family(
            "png_text_bomb", (_ztxt_bomb, _itxt_bomb, _many_ztxt, _many_text, _iccp_bomb)
        ),
        "surrogate_text": Family(
            "surrogate_text",
            (
                _surrogate_a1111,
                _surrogate_comfy,
                _invalid_utf8_itxt,
                _invalid_utf8_com,
                _invalid_utf8_xmp,
                _surrogate_user_comment,
            ),
        ),
        "regex_bait": Family(
            "regex_bait",
            (
                _bait_a1111_png("words"),
                _bait_xmp("png", "both"),
                _bait_user_comment,
                _bait_a1111_png("quote"),
                _bait_xmp("jpeg", "doctype"),
                _bait_a1111_png("spaces"),
                _bait_xmp("png", "loose"),
            ),
        ),
        "huge_dimensions": Family(
            "huge_dimensions",
            (
                _huge_jpeg(10000, 10000),
                _huge_png(30000, 30000),
                _huge_gif,
                _huge_png(9999, 10000),
                _huge_jpeg(65535, 65535),
                _huge_bmp,
                _huge_tiff,
                _huge_webp,
                _huge_heif,
            ),
        ),
        "large_valid": Family(
            "large_valid",
            (
                _large_valid("JPEG", 4000, 3000),
                _large_valid("WEBP", 3000, 2000),
                _large_valid("PNG", 2400, 1800),
            ),
            limit=LARGE_VALID_LIMIT,
        ),
        "polyglot": Family("polyglot", tuple(_polyglot(kind) for kind in POLYGLOTS)),
        "not_an_image": Family("not_an_image", tuple(_non_image(kind) for kind in NON_IMAGES)),
        "special_file": Family("special_file", tuple(_special(kind) for kind in SPECIAL_FILES)),
        "odd_name": Family("odd_name", tuple(_odd_name(kind) for kind in ODD_NAMES)),
    }


FAMILY_SPECS: dict[str, Family] = _families()


def allocate(count: int, families: Sequence[Family]) -> dict[str, int]:
    """How many files each family gets: one each first (in order), the rest by weight, within limits.

    Example:
        >>> fams = [Family("a", (), 1.0), Family("b", (), 3.0), Family("c", (), 1.0, limit=1)]
        >>> allocate(10, fams)
        {'a': 2, 'b': 7, 'c': 1}
        >>> allocate(2, fams)
        {'a': 1, 'b': 1, 'c': 0}
    """
    counts = {family.name: 0 for family in families}
    for family in families[:count]:
        counts[family.name] = 1
    for _ in range(count - sum(counts.values())):
        open_families = [f for f in families if f.limit is None or counts[f.name] < f.limit]
        if not open_families:
            break
        # D'Hondt: the next file goes to the family with the highest weight per file already given.
        chosen = max(open_families, key=lambda f: f.weight / (counts[f.name] + 1))
        counts[chosen.name] += 1
    return counts


def _file_name(specimen: Specimen, index: int, folder: Path) -> str:
    if not specimen.exact_name:
        return f"{index:04d}-{specimen.name}"
    if not os.path.lexists(folder / specimen.name.split("/")[0]):
        return specimen.name
    first, _, rest = specimen.name.partition("/")
    stem, suffix = os.path.splitext(first)
    first = f"{stem}-{index}{suffix}"
    return f"{first}/{rest}" if rest else first


def _write(folder: Path, specimen: Specimen, index: int) -> Path:
    path = folder / _file_name(specimen, index, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    if specimen.make is not None:
        specimen.make(path)
    else:
        path.write_bytes(specimen.data or b"")
    return path


def make_specimen(family: str, index: int, *, seed: int = 0, fetch_url: str = DEFAULT_FETCH_URL) -> Specimen:
    """The specimen number `index` of `family` for `seed` (what the corpus writes, without writing it)."""
    spec = FAMILY_SPECS[family]
    rng = random.Random(f"{seed}/{family}/{index}")  # a string seed hashes the same in every process
    return spec.variants[index % len(spec.variants)](Context(rng, fetch_url))


def write_hostile_corpus(
    folder: Path,
    *,
    count: int,
    seed: int = 0,
    families: Sequence[str] | None = None,
    fetch_url: str = DEFAULT_FETCH_URL,
) -> list[HostileFile]:
    """Write `count` hostile files into `folder` (one sub-folder per family) and describe each.

    Deterministic for (`seed`, `count`, `families`, `fetch_url`); `families` picks a subset of
    `FAMILIES`. External XML entities point at `fetch_url`, which nothing may fetch.
    """
    chosen = FAMILIES if families is None else tuple(families)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plan = allocate(count, [FAMILY_SPECS[name] for name in chosen])
    made: list[HostileFile] = []
    for family in chosen:
        for index in range(plan[family]):
            specimen = make_specimen(family, index, seed=seed, fetch_url=fetch_url)
            path = _write(folder / family, specimen, index)
            made.append(HostileFile(path, family, specimen.note, index))
    return made


# --- running a batch over the corpus --------------------------------------------------------------


def record_path_key(record: dict) -> bytes | None:
    """The file system's bytes for the path a JSON result names.

    A name that is not UTF-8 travels as a readable `path` plus its raw bytes in hex (`path_bytes`).
    """
    raw = record.get("path_bytes")
    if isinstance(raw, str):
        try:
            return bytes.fromhex(raw)
        except ValueError:
            return None
    path = record.get("path")
    return os.fsencode(path) if isinstance(path, str) else None


@dataclass(frozen=True)
class MeasuredRun:
    """A finished command: exit status, output, and the peak resident memory of it and its children."""

    returncode: int
    stdout: bytes
    stderr: bytes
    peak_rss_bytes: int
    wall_s: float
    killed: bool  # the guard ran out and the command's process group was killed


def run_measured(command: Sequence[str], *, workdir: Path, guard_s: float | None = None) -> MeasuredRun:
    """Run `command` with its output in files under `workdir`, and measure its peak RSS.

    `os.wait4` gives the rusage of this one child, which includes every descendant it waited for, so
    other processes of the caller do not blur the number (as RUSAGE_CHILDREN would). `guard_s` only
    keeps a hung command from holding the caller forever: when it runs out the command's process group
    is killed and `killed` is True.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = workdir / "stdout.bin", workdir / "stderr.bin"
    start = time.perf_counter()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        process = subprocess.Popen(list(command), stdout=out, stderr=err, start_new_session=True)
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(guard_s, kill) if guard_s else None
    if timer is not None:
        timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    wall = time.perf_counter() - start
    return MeasuredRun(
        returncode=process.returncode,
        stdout=out_path.read_bytes(),
        stderr=err_path.read_bytes(),
        peak_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
        wall_s=wall,
        killed=killed.is_set(),
    )


__all__ = [
    "DEFAULT_FETCH_URL",
    "FAMILIES",
    "HostileFile",
    "MeasuredRun",
    "allocate",
    "make_specimen",
    "record_path_key",
    "run_measured",
    "write_hostile_corpus",
]
