"""Intake messages are sentences a person understands, and text from files is made safe where it enters.

Damaged files of every supported format (cut short, bit-flipped, with broken length fields) must give
an `IntakeError` whose message carries no library jargon, exception names, escaped bytes or exponent
notation; every string intake keeps from a file must encode as UTF-8.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from imagegen import animated_gif, encode, exif_block, photo_like_rgb, png_chunk
from pixelsleuth.errors import (
    CorruptImageError,
    DecompressionBombError,
    FileReadError,
    IntakeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)
from pixelsleuth.intake import IntakeLimits, LoadedImage, load_image, loader
from pixelsleuth.intake.jpeg import header_segments

# Small limits keep a damaged header that declares a large image from costing time or memory.
LIMITS = IntakeLimits(max_pixels=1_000_000, max_file_bytes=4_000_000)

LABELS = ("JPEG", "PNG", "GIF", "WebP", "TIFF", "BMP", "HEIF", "AVIF")
EXCEPTION_NAME = re.compile(r"\b[A-Z][a-zA-Z]*(Error|Exception|Warning)\b")
EXPONENT = re.compile(r"\d[eE][+-]\d")
# Library wording the campaign found in messages, and signs of raw bytes or objects.
RAW_PHRASES = (
    "unpack_from",
    "requires a buffer",
    "index out of range",
    "decoder error",
    "could not create decoder object",
    "broken data stream",
    "unrecognized data stream",
    "when reading image file",
    "not identified by this driver",
    "cannot identify image file",
    "failed to read next frame",
    "Security limit",
    "Invalid input",
    "Unsupported feature",
    "BMFF parsing",
    "<_io",
    "Traceback",
    "b'",
    'b"',
    "\\x",
)
ALLOWED_CHARACTERS = {chr(code) for code in range(0x20, 0x7F)} | {"×"}

_RGB = photo_like_rgb(40, 24, seed=5)
SEEDS: dict[str, bytes] = {
    "jpeg": encode(_RGB, "JPEG", quality=80, exif=exif_block(6, make="Canon"), comment=b"note"),
    "progressive_jpeg": encode(_RGB, "JPEG", quality=70, progressive=True),
    "png": encode(_RGB, "PNG"),
    "palette_png": encode(_RGB[:, :, 0], "PNG", transparency=3),
    "gif": animated_gif([(255, 0, 0), (0, 128, 255)], size=(20, 12), comment=b"gif"),
    "webp": encode(_RGB, "WEBP", quality=60),
    "lossless_webp": encode(_RGB, "WEBP", lossless=True),
    "tiff": encode(_RGB, "TIFF"),
    "lzw_tiff": encode(_RGB, "TIFF", compression="tiff_lzw"),
    "bmp": encode(_RGB, "BMP"),
    "palette_bmp": encode(Image.fromarray(_RGB).convert("P"), "BMP"),
    "heif": encode(_RGB, "HEIF", quality=60),
    "avif": encode(_RGB, "AVIF", quality=60),
}


def assert_is_a_sentence(message: str) -> None:
    """A message a person can read: our words, printable, UTF-8, no jargon or raw bytes."""
    assert message and message == message.strip(), repr(message)
    assert message[0].islower() or message.startswith(LABELS), message
    assert EXCEPTION_NAME.search(message) is None, message
    assert EXPONENT.search(message) is None, message
    for phrase in RAW_PHRASES:
        assert phrase not in message, message
    assert message.isprintable(), repr(message)
    assert set(message) <= ALLOWED_CHARACTERS, repr(message)
    message.encode("utf-8")


def intake_message(data: bytes) -> str | None:
    """The message of the IntakeError `data` raises, or None if it loads."""
    try:
        load_image(data, limits=LIMITS)
    except IntakeError as error:
        assert error.type != "intake_error"  # always a specific subclass
        return error.message
    return None


# --- damage, generated from the seeds ------------------------------------------------------------


def truncations(data: bytes) -> Iterator[bytes]:
    cuts = set(range(1, min(len(data), 96), 3)) | set(range(96, len(data), max(1, len(data) // 24)))
    for cut in sorted(cuts):
        yield data[:cut]


def header_bit_flips(data: bytes) -> Iterator[bytes]:
    for offset in range(min(len(data), 160)):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (offset % 8)
        yield bytes(damaged)


def length_fields(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(offset, width, byte order) of the length and size fields in a file's structure."""
    if data.startswith(b"\x89PNG"):
        position = 8
        while position + 12 <= len(data):
            yield position, 4, "big"
            position += 12 + int.from_bytes(data[position : position + 4], "big")
    elif data.startswith(b"\xff\xd8"):
        for segment in header_segments(data):
            yield segment.offset + 2, 2, "big"
            if segment.marker in (0xC0, 0xC2):  # frame header: height, width
                yield segment.offset + 5, 2, "big"
                yield segment.offset + 7, 2, "big"
    elif data.startswith(b"RIFF"):
        yield 4, 4, "little"
        position = 12
        while position + 8 <= len(data):
            yield position + 4, 4, "little"
            position += 8 + (int.from_bytes(data[position + 4 : position + 8], "little") + 1) // 2 * 2
    elif data[:2] in (b"II", b"MM"):
        order = "little" if data[:2] == b"II" else "big"
        ifd = int.from_bytes(data[4:8], order)
        yield 4, 4, order
        yield ifd, 2, order
        entries = int.from_bytes(data[ifd : ifd + 2], order)
        for entry in range(ifd + 2, min(ifd + 2 + 12 * entries, len(data) - 11), 12):
            yield entry + 4, 4, order  # value count
            yield entry + 8, 4, order  # value or offset
    elif data.startswith(b"BM"):
        for offset, width in ((2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (28, 2), (30, 4), (34, 4), (46, 4)):
            yield offset, width, "little"
    elif data.startswith(b"GIF"):
        yield 6, 2, "little"
        yield 8, 2, "little"
        descriptor = data.find(b",", 13)
        if descriptor > 0:
            for offset in (1, 3, 5, 7):
                yield descriptor + offset, 2, "little"
    elif data[4:8] == b"ftyp":
        head = data[:4096]
        for box in (b"ftyp", b"meta", b"hdlr", b"pitm", b"iloc", b"iinf", b"infe", b"iprp", b"ipco"):
            for match in re.finditer(re.escape(box), head):
                if match.start() >= 4:
                    yield match.start() - 4, 4, "big"
        yield data.find(b"ispe") + 8, 4, "big"  # image width
        yield data.find(b"ispe") + 12, 4, "big"  # image height


def corrupted_lengths(data: bytes) -> Iterator[bytes]:
    for offset, width, order in length_fields(data):
        if offset < 0 or offset + width > len(data):
            continue
        original = int.from_bytes(data[offset : offset + width], order)
        top = 2 ** (8 * width) - 1
        for value in {0, 1, top, top // 2, (original + 1) & top, (original - 1) & top, (original * 16) & top}:
            damaged = bytearray(data)
            damaged[offset : offset + width] = value.to_bytes(width, order)
            yield bytes(damaged)


DAMAGE: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "truncated": truncations,
    "bit_flipped": header_bit_flips,
    "bad_length": corrupted_lengths,
}


# Pillow warns about some damaged metadata before it fails (or succeeds); the messages are what count.
QUIET = pytest.mark.filterwarnings("ignore::UserWarning")


@QUIET
@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_message_about_a_damaged_file_is_a_sentence(seed: str, damage: str) -> None:
    messages = {message for data in DAMAGE[damage](SEEDS[seed]) if (message := intake_message(data))}
    assert messages  # the damage did break something
    for message in messages:
        assert_is_a_sentence(message)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 3))):
        offset = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "delete"]))
        if kind == "flip":
            data[offset] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[max(offset, 1) :]
        elif kind == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[offset : offset + len(patch)] = patch
        else:
            del data[offset : offset + draw(st.integers(1, 32))]
    return bytes(data)


@QUIET
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(damaged())
def test_randomly_damaged_files_get_sentences(data: bytes) -> None:
    message = intake_message(data)
    if message is not None:
        assert_is_a_sentence(message)


def test_seeds_load() -> None:
    for name, data in SEEDS.items():
        assert intake_message(data) is None, name


# --- specific messages ---------------------------------------------------------------------------


def test_a_renamed_png_chunk_is_named_when_readable_and_not_otherwise() -> None:
    data = bytearray(SEEDS["png"])
    data[12:16] = b"XXXX"
    assert intake_message(bytes(data)) == "corrupt PNG: the 'XXXX' chunk fails its checksum"
    data[12:16] = b"\xff\x00I\x07"
    assert (
        intake_message(bytes(data))
        == "corrupt PNG: the chunk structure is damaged: a chunk has an unreadable name"
    )


def test_box_names_of_junk_bytes_are_not_printed() -> None:
    data = bytearray(SEEDS["heif"])
    box = len(data) - 8
    position = 0
    while position < len(data):  # find the last top-level box and give it a junk name
        box = position
        position += int.from_bytes(data[position : position + 4], "big")
    data[box + 4 : box + 8] = b"\xc1\xb4\x00\x9f"
    with pytest.raises(TruncatedImageError) as caught:
        load_image(bytes(data[:-10]), limits=LIMITS)
    assert "inside an unreadable box that needs" in caught.value.message


def test_riff_of_an_unreadable_type_is_described_without_its_bytes() -> None:
    with pytest.raises(NotAnImageError) as caught:
        load_image(b"RIFF\x20\x00\x00\x00WE\xffP" + bytes(24))
    assert caught.value.message == "not an image: looks like a RIFF container of an unreadable type"
    with pytest.raises(NotAnImageError, match=r"of type 'ABCD'$"):
        load_image(b"RIFF\x20\x00\x00\x00ABCD" + bytes(24))


@pytest.mark.parametrize(
    ("marker", "precision", "error", "message"),
    [
        (0xC3, 8, UnsupportedFormatError, "unsupported JPEG variant: lossless coding with 8-bit samples"),
        (0xC0, 12, UnsupportedFormatError, "unsupported JPEG variant: baseline coding with 12-bit samples"),
        (0xC0, 3, CorruptImageError, "corrupt JPEG: the frame header declares 3-bit samples"),
    ],
)
def test_jpeg_frame_headers_we_cannot_decode_are_explained(
    marker: int, precision: int, error: type[IntakeError], message: str
) -> None:
    data = bytearray(SEEDS["jpeg"])
    frame = data.find(b"\xff\xc0")
    data[frame + 1], data[frame + 4] = marker, precision
    with pytest.raises(error) as caught:
        load_image(bytes(data))
    assert caught.value.message.startswith(message)
    assert_is_a_sentence(caught.value.message)


def test_a_damaged_later_frame_is_recorded_as_a_sentence() -> None:
    class LaterFramesBroken:
        @property
        def n_frames(self) -> int:
            raise OSError("broken data stream when reading image file")

    info: dict[str, Any] = {}
    assert loader._frame_count(LaterFramesBroken(), info, "GIF", b"GIF89a") == 1  # type: ignore[arg-type]
    assert info["frame_count_problem"] == "corrupt GIF: the compressed pixel data is damaged"


def test_a_path_that_is_not_utf8_is_shown_escaped(tmp_path: Path) -> None:
    missing = os.path.join(os.fsencode(tmp_path), b"missing_\xff.png")
    with pytest.raises(FileReadError) as caught:
        load_image(os.fsdecode(missing))
    assert caught.value.message.endswith("missing_\\xff.png: no such file")
    caught.value.message.encode("utf-8")


# --- PNG text over Pillow's limits ---------------------------------------------------------------


def png_with(chunks: bytes, *, after_pixels: bool = False, data: bytes | None = None) -> bytes:
    """`data` (by default a small RGB PNG) with `chunks` added before its image data or before IEND."""
    data = data if data is not None else SEEDS["png"]
    cut = len(data) - 12 if after_pixels else 33  # before IEND, or right after IHDR
    return data[:cut] + chunks + data[cut:]


def ztxt(keyword: bytes, text: bytes) -> bytes:
    return png_chunk(b"zTXt", keyword + b"\x00\x00" + zlib.compress(text, 9))


BIG_TEXT = b"a prompt, " * 200_000  # 2 MB, twice Pillow's MAX_TEXT_CHUNK


@pytest.mark.parametrize("after_pixels", [False, True])
def test_png_with_an_oversized_ztxt_chunk_keeps_its_pixels(after_pixels: bool) -> None:
    assert len(BIG_TEXT) > PngImagePlugin.MAX_TEXT_CHUNK
    oversized = ztxt(b"parameters", BIG_TEXT)
    data = png_with(
        oversized + png_chunk(b"tEXt", b"Software\x00pixelsleuth test"), after_pixels=after_pixels
    )
    image = load_image(data)
    assert np.array_equal(image.rgb, _RGB)
    assert image.data == data and image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.info["oversized_text_chunks"] == [
        {"keyword": "parameters", "type": "zTXt", "compressed_bytes": len(oversized) - 12}
    ]
    assert image.text_chunks == {"Software": "pixelsleuth test"}  # the chunks within the limits stay
    json.dumps(image.info)


def test_png_with_an_oversized_compressed_itxt_xmp_keeps_its_pixels() -> None:
    packet = b"<x:xmpmeta>" + b" " * 1_500_000 + b"</x:xmpmeta>"
    itxt = png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(packet))
    image = load_image(png_with(itxt))
    assert image.xmp is None
    assert image.info["oversized_text_chunks"][0]["keyword"] == "XML:com.adobe.xmp"
    assert image.info["oversized_text_chunks"][0]["type"] == "iTXt"


def test_png_text_over_the_total_text_memory_is_left_out() -> None:
    each = PngImagePlugin.MAX_TEXT_CHUNK - 1000
    count = PngImagePlugin.MAX_TEXT_MEMORY // each + 3
    chunk = zlib.compress(b"x" * each, 9)
    chunks = b"".join(png_chunk(b"zTXt", b"k%d\x00\x00" % index + chunk) for index in range(count))
    image = load_image(png_with(chunks))
    left_out = image.info["oversized_text_chunks"]
    assert len(left_out) + len(image.text_chunks) == count
    assert 1 <= len(left_out) <= 4
    assert sum(len(text) for text in image.text_chunks.values()) <= PngImagePlugin.MAX_TEXT_MEMORY


def test_png_with_many_oversized_text_chunks_is_refused() -> None:
    chunk = ztxt(b"spam", BIG_TEXT)
    with pytest.raises(DecompressionBombError) as caught:
        load_image(png_with(chunk * (loader._MAX_OVERSIZED_TEXT_CHUNKS + 1)))
    assert caught.value.message.startswith("PNG image exceeds the decoder's safety limits: more than")
    assert_is_a_sentence(caught.value.message)


def test_oversized_text_does_not_hide_damaged_pixels() -> None:
    data = bytearray(png_with(ztxt(b"parameters", BIG_TEXT), after_pixels=True))
    idat = data.find(b"IDAT")
    data[idat + 20 : idat + 40] = bytes(20)
    with pytest.raises(CorruptImageError) as caught:
        load_image(bytes(data))
    assert_is_a_sentence(caught.value.message)


def test_png_without_oversized_text_is_not_rebuilt() -> None:
    assert loader._png_without_oversized_text(png_with(ztxt(b"small", b"fits easily"))) is None


# --- text from files -----------------------------------------------------------------------------


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


def assert_text_is_clean(image: LoadedImage) -> None:
    for text in strings_in([image.text_chunks, image.xmp, image.info, image.format, image.original_mode]):
        text.encode("utf-8")
    json.dumps(image.info)


def test_png_text_chunks_with_odd_content() -> None:
    chunks = (
        png_chunk(b"tEXt", b"lat\xe9n\x00caf\xe9 \x00 with a NUL")  # latin-1, as the PNG spec says
        + png_chunk(b"zTXt", b"zipped\x00\x00" + zlib.compress(b"\x80\xff bytes"))
        + png_chunk(b"iTXt", b"emoji\x00\x01\x00fr\x00bon\xc3\xa9\x00" + zlib.compress("😀 é".encode()))
        + png_chunk(b"iTXt", b"broken\x00\x00\x00en\x00\x00not utf-8 \xff")
        + png_chunk(b"iTXt", b"surrogate\x00\x00\x00en\x00\x00\xed\xa0\x80 encoded")
        + png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x>\xff\xfe</x>")
    )
    image = load_image(png_with(chunks))
    assert image.text_chunks == {
        "latén": "café \x00 with a NUL",
        "zipped": "\x80ÿ bytes",
        "emoji": "😀 é",
    }  # Pillow drops an iTXt chunk that is not UTF-8 rather than hand back a broken string
    assert image.xmp == "<x>\ufffd\ufffd</x>"
    assert image.info["replaced_code_points"] == 2
    assert_text_is_clean(image)


def jpeg_with_comments(*comments: bytes) -> bytes:
    segments = b"".join(b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text for text in comments)
    data = encode(_RGB, "JPEG")
    return data[:2] + segments + data[2:]


def test_jpeg_comments_that_are_not_utf8() -> None:
    image = load_image(jpeg_with_comments(b"caf\xe9", b"ok \xed\xa0\x80", "fine é".encode()))
    assert image.text_chunks == {"comment": "caf\ufffd\nok \ufffd\ufffd\ufffd\nfine é"}
    assert image.info["replaced_code_points"] == 4
    assert_text_is_clean(image)


@pytest.mark.parametrize("format_name", ["JPEG", "WEBP"])
def test_xmp_that_is_not_utf8(format_name: str) -> None:
    image = load_image(encode(_RGB, format_name, xmp=b'<x:xmpmeta a="\xff\xc3"/>'))
    assert image.xmp == '<x:xmpmeta a="\ufffd\ufffd"/>'
    assert image.info["replaced_code_points"] == 2
    assert_text_is_clean(image)


def test_gif_comment_that_is_not_utf8() -> None:
    image = load_image(animated_gif([(1, 2, 3), (4, 5, 6)], comment=b"made by \xfe"))
    assert image.text_chunks == {"comment": "made by \ufffd"}
    assert image.info["replaced_code_points"] == 1


def test_info_strings_with_lone_surrogates_are_cleaned(monkeypatch: pytest.MonkeyPatch) -> None:
    original_open = PngImagePlugin.PngImageFile._open

    def open_with_odd_info(self: PngImagePlugin.PngImageFile) -> None:
        original_open(self)
        self.info["note\udc80"] = {"nested": ["x\udcff", "fine"]}

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "_open", open_with_odd_info)
    image = load_image(SEEDS["png"])
    assert image.info["note\ufffd"] == {"nested": ["x\ufffd", "fine"]}
    assert image.info["replaced_code_points"] == 2
    assert_text_is_clean(image)


def test_clean_files_report_no_replacements() -> None:
    for name, data in SEEDS.items():
        image = load_image(data, limits=LIMITS)
        assert "replaced_code_points" not in image.info, name
        assert_text_is_clean(image)
