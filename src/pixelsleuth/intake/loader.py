"""Turn a path or bytes into a `LoadedImage`, or a typed `IntakeError` that says what went wrong.

The file is read once, hashed, identified by its content, checked for truncation and for a
decompression bomb from its header, and only then decoded (from memory) and normalised to 8-bit
RGB with EXIF orientation applied.

Keys intake adds to `LoadedImage.info`:

- ``had_alpha`` (bool): the image carried transparency, which was dropped (not composited).
- ``extension_mismatch`` (str): the file name claims another format than its content.
- ``float_scaling``: ``"scaled_0_1"`` (float samples in [0, 1] multiplied by 255) or
  ``"clipped_0_255"`` (other float samples clipped); only for floating-point images.
- ``depth_reduction``: how samples wider than 8 bits became 8-bit (``"high_byte"`` = value >> 8,
  ``"min_max_stretch"`` for 32-bit integers outside the 16-bit range).
- ``multi_picture`` (bool): a JPEG that carries further pictures (MPO); ``n_frames`` counts them.
- ``frame_count_problem`` (str): why the frames after the first could not be counted (a sentence).
- ``replaced_code_points`` (int): how many code points of text read from the file (text chunks,
  comments, XMP, Pillow's info strings) were not valid Unicode and became U+FFFD; only when > 0.
- ``oversized_text_chunks`` (list): PNG text chunks over the decoder's text limits (one expanding past
  ``PngImagePlugin.MAX_TEXT_CHUNK``, or all of them together past ``MAX_TEXT_MEMORY``), left out so
  the pixels could be decoded: ``{"keyword": str, "type": "zTXt" | "iTXt" | "tEXt",
  "compressed_bytes": int}`` (the size of the chunk's data in the file).

Every string in `text_chunks`, `xmp` and `info` encodes as UTF-8 (see `pixelsleuth.intake.text`);
`path` is kept exactly as given so the file can be opened again. Everything else in `info` is
Pillow's own info, reduced to JSON-friendly values.
"""

from __future__ import annotations

import enum
import hashlib
import io
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import pillow_heif
from PIL import (
    AvifImagePlugin,  # noqa: F401  (imported to register the decoder with Image.open)
    BmpImagePlugin,  # noqa: F401
    GifImagePlugin,  # noqa: F401
    Image,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,  # noqa: F401
)

try:  # only for the fast RGB path below; intake works without it
    import pyarrow
except ImportError:  # pragma: no cover - pyarrow is a declared dependency
    pyarrow = None

from pixelsleuth.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    FileReadError,
    FileTooLargeError,
    IntakeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
    UsageError,
)
from pixelsleuth.intake.image import JpegInfo, LoadedImage
from pixelsleuth.intake.jpeg import JpegLayout, group_digits, jpeg_info, jpeg_truncation, scan_jpeg_layout
from pixelsleuth.intake.sniff import (
    FORMAT_LABELS,
    SUPPORTED_FORMATS,
    Sniffed,
    cut_signature,
    extension_format,
    printable_name,
    sniff,
)
from pixelsleuth.intake.text import clean_data, clean_text, decode_bytes, display_path

# Pillow's own bomb guard is a process-wide global (warning above ~89 MP, error above ~179 MP). Our
# limit is a per-call argument, so toggling that global per call would race between threads, and
# leaving it on would refuse images our caller allowed (or warn first, which `-W error` turns into a
# failure). So it is switched off once here; `load_image` checks width x height from the header
# itself, before any pixel is decoded, for every format.
Image.MAX_IMAGE_PIXELS = None
pillow_heif.register_heif_opener()

ANIMATION_FORMATS = frozenset({"GIF", "PNG", "WEBP", "AVIF"})
# Decoders that apply the EXIF/container orientation themselves (Pillow's TIFF plugin since 11.x,
# libheif for HEIF); for the others intake applies it.
_ORIENTED_BY_DECODER = frozenset({"TIFF", "HEIF"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_BITS_PER_SAMPLE_TAG = 258
_TIFF_XMP_TAG = 700
_DNG_VERSION_TAG = 50706
_PNG_XMP_KEYWORD = "XML:com.adobe.xmp"
# Pillow info keys intake moves into LoadedImage fields (or drops as binary blobs).
_CONSUMED_INFO_KEYS = frozenset({"exif", "xmp", "icc_profile", "comment", "photoshop", _PNG_XMP_KEYWORD})


@dataclass(frozen=True)
class IntakeLimits:
    """Resource limits for one `load_image` call.

    Attributes
    ----------
    max_pixels : int
        Largest width x height accepted, checked from the header before decoding.
    max_file_bytes : int
        Largest file accepted, checked before reading.
    """

    max_pixels: int = 100_000_000
    max_file_bytes: int = 512 * 2**20

    def __post_init__(self) -> None:
        if self.max_pixels < 1 or self.max_file_bytes < 1:
            raise UsageError("intake limits must be positive numbers")


def load_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    limits: IntakeLimits = IntakeLimits(),  # frozen, so sharing the default instance is safe
) -> LoadedImage:
    """Read, identify, check and decode an image into 8-bit RGB.

    Parameters
    ----------
    source : str, os.PathLike or bytes-like
        A file path, or the file's bytes.
    limits : IntakeLimits
        File-size and pixel-count limits for this call.

    Returns
    -------
    LoadedImage
        Pixels as a read-only, C-contiguous H x W x 3 uint8 array with EXIF orientation applied,
        plus the original bytes, their SHA-256 and the metadata the container carries. The array
        is shared by every evidence source, hence read-only: copy it before changing it.

    Raises
    ------
    IntakeError
        One of its subclasses, with a message a person understands: `FileReadError`,
        `EmptyFileError`, `FileTooLargeError`, `NotAnImageError`, `UnsupportedFormatError`,
        `TruncatedImageError`, `CorruptImageError` or `DecompressionBombError`.

    Examples
    --------
    >>> image = load_image("photo.jpg")  # doctest: +SKIP
    >>> image.rgb.shape, image.format, image.jpeg.subsampling  # doctest: +SKIP
    ((864, 1152, 3), 'JPEG', '4:2:0')
    """
    data, path = _read_source(source, limits)
    sniffed = sniff(data)
    if sniffed.category == "unknown" and (cut := cut_signature(data)) is not None:
        raise TruncatedImageError(
            f"truncated {FORMAT_LABELS[cut]}: the data ends at byte {len(data)}, inside the file header"
        )
    if not sniffed.is_supported_image:
        raise _refusal(sniffed)
    kind = sniffed.kind

    layout = scan_jpeg_layout(data) if kind == "JPEG" else None
    problem = jpeg_truncation(data, layout) if layout is not None else _container_truncation(kind, data)
    if problem is not None:
        raise TruncatedImageError(f"truncated {FORMAT_LABELS[kind]}: {problem}")
    if layout is not None and layout.problem is not None:
        raise CorruptImageError(f"corrupt JPEG: {layout.problem}")

    try:
        return _decode(data, path, kind, limits)
    except IntakeError:
        raise
    except Exception as exc:  # Pillow and its plugins raise almost any type on damaged input
        failure = exc
    if kind == "PNG" and isinstance(failure, ValueError):
        # Pillow refuses a whole PNG whose text chunks exceed its text limits; the pixels are fine.
        image = _decode_without_oversized_text(data, path, limits)
        if image is not None:
            return image
    raise _decoder_failure(failure, kind, data, layout) from failure


def _decode(
    data: bytes, path: str | None, kind: str, limits: IntakeLimits, *, decode_from: bytes | None = None
) -> LoadedImage:
    """Decode `decode_from` (by default `data` itself); the result carries `data` and its hash."""
    source = data if decode_from is None else decode_from
    with Image.open(io.BytesIO(source), formats=[SUPPORTED_FORMATS[kind]]) as image:
        return _from_pillow(image, data, path, kind, limits)


def _decode_without_oversized_text(data: bytes, path: str | None, limits: IntakeLimits) -> LoadedImage | None:
    """Decode a PNG with the text chunks over Pillow's limits left out; None if it has none.

    Raises the typed error of whatever else stops the decoder once those chunks are gone.
    """
    rebuilt = _png_without_oversized_text(data)
    if rebuilt is None:
        return None
    pixels_from, left_out = rebuilt
    try:
        image = _decode(data, path, "PNG", limits, decode_from=pixels_from)
    except IntakeError:
        raise
    except Exception as exc:
        raise _decoder_failure(exc, "PNG", data, None) from exc
    image.info["oversized_text_chunks"] = left_out
    return image


def _from_pillow(
    image: Image.Image, data: bytes, path: str | None, kind: str, limits: IntakeLimits
) -> LoadedImage:
    width, height = image.size
    if width * height > limits.max_pixels:
        size, limit = _pixel_counts(width * height, limits.max_pixels)
        raise DecompressionBombError(
            f"image is {width} × {height} = {size}, over the limit of {limit}; "
            "raise --max-pixels to analyse it"
        )
    if width < 1 or height < 1:
        label = FORMAT_LABELS[kind]
        raise CorruptImageError(f"corrupt {label}: the header declares a {width} × {height} image")
    if kind == "TIFF" and _DNG_VERSION_TAG in image.tag_v2:
        raise UnsupportedFormatError(
            "unsupported image format: a DNG raw photo; export it to TIFF or JPEG first"
        )
    if kind == "JPEG":
        _check_jpeg_payload(data, width, height)

    bit_depth = _bits_per_sample(image, kind)
    orientation = _tiff_orientation(image) if kind == "TIFF" else None
    image.load()
    info: dict[str, Any] = {}
    pixels, original_mode = _pixels_as_rgb8(image, info)

    exif = _exif_bytes(image, kind)
    if kind == "HEIF":
        orientation = image.info.get("original_orientation")  # pillow-heif resets the EXIF copy to 1
    elif kind != "TIFF":  # a TIFF's orientation was read before loading, which removes it
        orientation = exif_orientation(exif)
    rgb = _finish_rgb(pixels, None if kind in _ORIENTED_BY_DECODER else orientation)

    text_chunks, replaced_in_text = _text_chunks(image, kind)
    xmp, replaced_in_xmp = _xmp_text(image, kind)
    jpeg: JpegInfo | None = jpeg_info(image) if kind == "JPEG" else None
    if jpeg is not None and image.format == "MPO":
        info["multi_picture"] = True
    icc = image.info.get("icc_profile") or None

    pillow_info, replaced_in_info = clean_data(_json_friendly_info(image.info, _text_keys(image, kind)))
    info.update(pillow_info)
    claimed = extension_format(path)
    if claimed is not None and claimed != kind:
        extension = display_path(os.path.splitext(path or "")[1])
        info["extension_mismatch"] = (
            f"the file name claims {FORMAT_LABELS[claimed]} (extension {extension}) "
            f"but the content is {FORMAT_LABELS[kind]}"
        )
    n_frames = _frame_count(image, info, kind, data)
    replaced = replaced_in_text + replaced_in_xmp + replaced_in_info
    if replaced:
        info["replaced_code_points"] = replaced

    return LoadedImage(
        path=path,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=kind,
        rgb=rgb,
        original_mode=original_mode,
        bit_depth=bit_depth,
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None,
        animated=n_frames > 1 and kind in ANIMATION_FORMATS,
        n_frames=n_frames,
        jpeg=jpeg,
        exif=exif,
        xmp=xmp,
        icc_profile=bytes(icc) if icc else None,
        text_chunks=text_chunks,
        info=info,
    )


# Huffman-coded DCT JPEGs (baseline, extended, progressive) spend at least one bit on every 8 x 8
# luma block (its DC code), whatever the picture: fewer bits than blocks cannot be a real image.
_HUFFMAN_DCT_SOF = frozenset({0xC0, 0xC1, 0xC2})


def _check_jpeg_payload(data: bytes, width: int, height: int) -> None:
    """Refuse a JPEG whose compressed data is too short to encode its declared size.

    Decoders fill the missing blocks with grey, so a 2 KB file declaring 10000 x 10000 would cost a
    100-megapixel decode of nothing.
    """
    layout = scan_jpeg_layout(data)
    if layout.sos_offset < 0 or layout.sof_marker not in _HUFFMAN_DCT_SOF:
        return
    scan_bits = 8 * (len(data) - layout.sos_offset)
    blocks = -(-width // 8) * -(-height // 8)
    if scan_bits < blocks:
        raise CorruptImageError(
            f"corrupt JPEG: the header declares {width} × {height} pixels but the file holds only "
            f"{group_digits(len(data) - layout.sos_offset)} bytes of compressed data, far too little "
            "for that many pixels"
        )


# --- reading -------------------------------------------------------------------------------------


def _read_source(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview, limits: IntakeLimits
) -> tuple[bytes, str | None]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > limits.max_file_bytes:
            raise FileTooLargeError(_too_large_message(len(data), limits))
        if not data:
            raise EmptyFileError("empty file: 0 bytes")
        return data, None
    if not isinstance(source, str | os.PathLike):
        raise UsageError(f"load_image expects a file path or bytes, not {type(source).__name__}")
    path = os.fspath(source)
    shown = display_path(path)  # the path itself may hold undecodable bytes; messages must not
    try:
        mode = os.stat(path).st_mode  # before open(): opening a named pipe would block
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not stat.S_ISREG(mode):
            raise FileReadError(f"cannot read {shown}: not a regular file")
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise FileReadError(f"cannot read {shown}: not a regular file")
            if status.st_size > limits.max_file_bytes:
                raise FileTooLargeError(_too_large_message(status.st_size, limits))
            data = handle.read(limits.max_file_bytes + 1)  # +1: notice a file that grew meanwhile
    except FileNotFoundError:
        raise FileReadError(f"cannot read {shown}: no such file") from None
    except PermissionError:
        raise FileReadError(f"cannot read {shown}: permission denied") from None
    except IsADirectoryError:
        raise FileReadError(f"cannot read {shown}: it is a directory") from None
    except OSError as exc:
        raise FileReadError(f"cannot read {shown}: {_os_reason(exc)}") from None
    if len(data) > limits.max_file_bytes:
        raise FileTooLargeError(_too_large_message(len(data), limits))
    if not data:
        raise EmptyFileError("empty file: 0 bytes")
    return data, path


def _too_large_message(size: int, limits: IntakeLimits) -> str:
    return (
        f"file is {_human_bytes(size)} ({group_digits(size)} bytes), over the limit of "
        f"{_human_bytes(limits.max_file_bytes)}; raise --max-file-mb to analyse it"
    )


def _os_reason(exc: OSError) -> str:
    """The operating system's own words for a failed read ("Input/output error"), lower-cased."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else "")
    reason, _ = clean_text(reason)
    return reason[:1].lower() + reason[1:] if reason else "the operating system could not read it"


def _human_bytes(size: int) -> str:
    """A byte count for people: "1.5 MiB", "512 MiB", "100 bytes"."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{_decimal(size / scale)} {unit}"
    return f"{size} bytes"


def _decimal(value: float) -> str:
    """At most one decimal, thousands grouped, never exponent notation: "12.3", "10 000"."""
    if value >= 100:
        return group_digits(round(value))
    return f"{value:.1f}".removesuffix(".0")


def _pixel_count(pixels: int) -> str:
    if pixels < 1_000_000:
        return f"{group_digits(pixels)} pixels"
    return f"{_decimal(pixels / 1e6)} megapixels"


def _pixel_counts(pixels: int, limit: int) -> tuple[str, str]:
    """An image's pixel count and the limit it broke, rounded unless rounding makes them look equal.

    Examples
    --------
    >>> _pixel_counts(400_000_000, 100_000_000)
    ('400 megapixels', '100 megapixels')
    >>> _pixel_counts(100_000_001, 100_000_000)
    ('100 000 001 pixels', '100 000 000 pixels')
    """
    rounded = _pixel_count(pixels), _pixel_count(limit)
    if rounded[0] != rounded[1]:
        return rounded
    return f"{group_digits(pixels)} pixels", f"{group_digits(limit)} pixels"


def _refusal(sniffed: Sniffed) -> IntakeError:
    if sniffed.category == "unsupported_image":
        readable = ", ".join(FORMAT_LABELS[kind] for kind in SUPPORTED_FORMATS)
        return UnsupportedFormatError(
            f"unsupported image format: {sniffed.description}; pixelsleuth reads {readable}, "
            "so convert it to PNG first"
        )
    if sniffed.category == "unknown":
        return NotAnImageError(f"not an image: {sniffed.description}")
    return NotAnImageError(f"not an image: looks like {sniffed.description}")


# --- truncation ----------------------------------------------------------------------------------


def _container_truncation(kind: str, data: bytes) -> str | None:
    """Why the container looks cut short, from its last bytes only; None if it looks complete."""
    size = group_digits(len(data))
    if kind == "PNG":
        # Searched from the end, so a normal file costs a 12-byte compare; bytes after IEND are fine.
        if data.rfind(b"\x00\x00\x00\x00IEND") < 0:
            return f"the data ends at byte {size} without an IEND chunk"
    elif kind == "GIF":
        tail = data[-64:].rstrip(b"\x00\r\n\t ")
        if not tail.endswith(b";"):
            return f"the data ends at byte {size} without the GIF trailer"
    elif kind == "WEBP":
        promised = int.from_bytes(data[4:8], "little") + 8
        if len(data) < promised:
            return f"the RIFF header promises {group_digits(promised)} bytes but the data ends at byte {size}"
    elif kind == "TIFF":
        return _tiff_truncation(data)
    elif kind in ("HEIF", "AVIF"):
        return _iso_bmff_truncation(data)
    return None


def _tiff_truncation(data: bytes) -> str | None:
    """A TIFF is cut short if its first directory lies (partly) past the end of the data."""
    if data[2:4] in (b"+\x00", b"\x00+"):
        return None  # BigTIFF: 64-bit offsets; Pillow's own checks cover it
    endian = "little" if data[:2] == b"II" else "big"
    size = len(data)
    ifd = int.from_bytes(data[4:8], endian)
    where = f"the image directory at byte {group_digits(ifd)}"
    if size < 8 or ifd + 2 > size:
        return f"the data ends at byte {group_digits(size)}, before {where}"
    entries = int.from_bytes(data[ifd : ifd + 2], endian)
    if ifd + 2 + 12 * entries > size:
        return f"the data ends at byte {group_digits(size)}, inside {where}"
    return None


def _iso_bmff_truncation(data: bytes) -> str | None:
    """HEIF/AVIF are sequences of sized boxes; a top-level box reaching past the end means a cut."""
    size = len(data)
    position = 0
    for _ in range(4096):  # a real file has a handful of top-level boxes
        if position == size:
            return None
        if position + 8 > size:
            break
        box_size = int.from_bytes(data[position : position + 4], "big")
        box_type = data[position + 4 : position + 8]
        if box_size == 1:
            if position + 16 > size:
                break
            box_size = int.from_bytes(data[position + 8 : position + 16], "big")
        elif box_size == 0:
            return None  # the last box runs to the end of the file by definition
        if box_size < 8:
            return None  # malformed rather than cut: let the decoder say what it thinks
        if position + box_size > size:
            return (
                f"the data ends at byte {group_digits(size)}, inside {_box_name(box_type)} that needs "
                f"{group_digits(position + box_size)} bytes"
            )
        position += box_size
    else:
        return None
    return f"the data ends at byte {group_digits(size)}, inside a box header"


def _box_name(box_type: bytes) -> str:
    name = printable_name(box_type)
    return f"the '{name}' box" if name is not None else "an unreadable box"


# --- pixels --------------------------------------------------------------------------------------


def _bits_per_sample(image: Image.Image, kind: str) -> int:
    """Bits per sample of the stored image, read before decoding (decoding clears Pillow's tile list)."""
    if kind == "HEIF":
        return int(image.info.get("bit_depth", 8))
    if kind == "JPEG":
        return int(getattr(image, "bits", 8) or 8)
    if kind == "TIFF":
        bits = image.tag_v2.get(_TIFF_BITS_PER_SAMPLE_TAG)
        if isinstance(bits, tuple | list) and bits:
            return int(max(bits))
        if isinstance(bits, int):
            return bits
    mode = image.mode
    if mode == "1":
        return 1
    if mode.startswith("I;16"):
        return 16
    if mode in ("I", "F"):
        return 32
    rawmode = _tile_rawmode(image)
    # Pillow reads 16-bit RGB(A) PNG/TIFF as 8-bit RGB(A); only the raw mode ("RGB;16B") tells.
    for wide in (16, 32, 64):
        if f";{wide}" in rawmode and not rawmode.startswith("BGR"):
            return wide
    if mode == "L" and rawmode in ("L;1", "L;2", "L;4", "L;2I", "L;4I", "L;1I"):
        return int(rawmode[2])
    return 8


def _tile_rawmode(image: Image.Image) -> str:
    tiles = getattr(image, "tile", None)
    if not tiles:
        return ""
    args = tiles[0].args
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return ""


def _pixels_as_rgb8(image: Image.Image, info: dict[str, Any]) -> tuple[np.ndarray, str]:
    """Pixels as an H x W x 3 or H x W (grey) uint8 array, possibly a non-contiguous view.

    Grey stays 2-D here so orientation moves a third of the data; `_finish_rgb` expands it.
    """
    mode = image.mode
    info["had_alpha"] = mode in _ALPHA_MODES or "transparency" in image.info or _palette_has_alpha(image)
    if mode in ("RGB", "RGBA", "RGBX"):
        return _rgb_array(image), mode
    if mode == "L":
        return np.asarray(image), mode
    if mode in ("LA", "La"):
        return np.asarray(image)[:, :, 0], mode
    if mode == "1":
        # Pillow's bool array may hold any non-zero byte for "on"; compare rather than reinterpret.
        return np.where(np.asarray(image), np.uint8(255), np.uint8(0)), mode
    if mode.startswith("I;16"):
        info["depth_reduction"] = "high_byte"
        return (np.asarray(image) >> 8).astype(np.uint8), mode
    if mode == "I":
        return _int32_to_uint8(np.asarray(image), info), mode
    if mode == "F":
        return _float_to_uint8(np.asarray(image), info), mode
    if mode in ("P", "PA"):
        return _palette_to_rgb(image), mode
    # CMYK, YCbCr, RGBa, ...: Pillow's converters are C loops.
    # For Adobe CMYK JPEGs Pillow has already undone the inversion (raw mode "CMYK;I").
    try:
        converted = image.convert("RGB")
    except ValueError as exc:
        raise UnsupportedFormatError(
            f"unsupported colour mode {mode}: it cannot be converted to RGB"
        ) from exc
    return np.asarray(converted), mode


def _rgb_array(image: Image.Image) -> np.ndarray:
    """The colour channels of an RGB, RGBA or RGBX image as a new H x W x 3 array, in one pass.

    `np.asarray(image)` goes through `Image.tobytes`, which packs into 64 KiB chunks and then joins
    them: two copies, about 10 % of a 1-megapixel JPEG decode. Pillow's Arrow export (public since
    Pillow 11.2) exposes its 4-bytes-per-pixel storage without copying and OpenCV packs that to RGB
    in one vectorised pass. Images spread over several Pillow memory blocks (larger than about
    4 megapixels) cannot be exported that way; they are copied a band of rows at a time, so that the
    copy never needs more than the output array plus one band (`tobytes` would hold the whole image
    twice more while it joins its chunks: 600 MB extra at 100 megapixels).
    """
    if pyarrow is not None:
        try:
            rgbx = pyarrow.array(image).flatten().to_numpy(zero_copy_only=True)
            return cv2.cvtColor(rgbx.reshape(image.height, image.width, 4), cv2.COLOR_RGBA2RGB)
        except Exception:  # multi-block image, or an Arrow/Pillow without this export
            pass
    return _rgb_by_bands(image)


_BAND_BYTES = 16 * 2**20


def _rgb_by_bands(image: Image.Image) -> np.ndarray:
    width, height = image.size
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, _BAND_BYTES // (4 * max(width, 1)))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height)))
        out[top : top + band.height] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"))
    return out


def _palette_to_rgb(image: Image.Image) -> np.ndarray:
    """Look palette indices up in the RGB palette.

    Done here rather than by `convert("RGB")`, which warns about byte-string transparency on
    perfectly valid files (and a warning is an error under ``-W error``).
    """
    indices = np.asarray(image)
    if indices.ndim == 3:  # PA: index plus alpha
        indices = indices[:, :, 0]
    entries = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 3), dtype=np.uint8)
    palette[: min(len(entries), 256)] = entries[:256]
    return np.take(palette, indices, axis=0)


def _palette_has_alpha(image: Image.Image) -> bool:
    palette = getattr(image, "palette", None)
    return image.mode == "P" and palette is not None and palette.mode == "RGBA"


def _int32_to_uint8(values: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low >= 0 and high <= 0xFFFF:
        info["depth_reduction"] = "high_byte"
        return (values >> 8).astype(np.uint8)
    info["depth_reduction"] = "min_max_stretch"
    span = max(high - low, 1)
    return ((values.astype(np.float64) - low) * (255.0 / span) + 0.5).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32, copy=False), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and float(values.min()) >= 0.0 and float(values.max()) <= 1.0:
        info["float_scaling"] = "scaled_0_1"
        values = values * np.float32(255.0)
    else:
        info["float_scaling"] = "clipped_0_255"
    return np.clip(values + np.float32(0.5), 0.0, 255.0).astype(np.uint8)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into displayed pixels according to an EXIF orientation.

    Parameters
    ----------
    pixels : np.ndarray
        H x W or H x W x 3 uint8 array as stored, rows first, C-contiguous.
    orientation : int
        EXIF tag 0x0112: 1 normal, 2 mirrored, 3 rotated 180°, 4 flipped, 5 transposed, 6 needs
        90° clockwise rotation, 7 transversed, 8 needs 90° counter-clockwise rotation.

    Returns
    -------
    np.ndarray
        A new C-contiguous array (the input itself for 1 or an unknown value).

    Notes
    -----
    OpenCV's flips and rotations run at memory speed; NumPy's copy of a transposed or reversed
    3-channel view is 5-20x slower, as slow as decoding the JPEG, and phones write orientation 6
    all the time.
    """
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.transpose(pixels)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE), 0)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels


def _finish_rgb(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """Orient, expand grey to three channels, and freeze: the array every source will share."""
    pixels = np.ascontiguousarray(pixels)
    if orientation is not None:
        pixels = apply_orientation(pixels, orientation)
    rgb = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB) if pixels.ndim == 2 else pixels
    rgb.flags.writeable = False
    return rgb


# --- metadata ------------------------------------------------------------------------------------


def exif_orientation(raw: bytes | None) -> int | None:
    """Read the Orientation tag (0x0112) from IFD0 of a raw EXIF block, or None.

    A dozen-entry walk, much cheaper than parsing the whole block; never raises.

    Examples
    --------
    >>> ifd0 = bytes.fromhex("0001" "0112" "0003" "00000001" "00060000")  # one entry: Orientation = 6
    >>> exif_orientation(b"MM\\x00*\\x00\\x00\\x00\\x08" + ifd0)
    6
    """
    if not raw:
        return None
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    order = tiff[:2]
    if order not in (b"II", b"MM") or len(tiff) < 8:
        return None
    endian = "little" if order == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], endian)
    if ifd < 8 or ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd : ifd + 2], endian)
    for entry in range(ifd + 2, min(ifd + 2 + 12 * count, len(tiff) - 11), 12):
        if int.from_bytes(tiff[entry : entry + 2], endian) != _EXIF_ORIENTATION_TAG:
            continue
        field_type = int.from_bytes(tiff[entry + 2 : entry + 4], endian)
        width = 4 if field_type == 4 else 2  # LONG or SHORT
        value = int.from_bytes(tiff[entry + 8 : entry + 8 + width], endian)
        return value if 1 <= value <= 8 else None
    return None


def _tiff_orientation(image: Image.Image) -> int | None:
    value = image.tag_v2.get(_EXIF_ORIENTATION_TAG)
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _exif_bytes(image: Image.Image, kind: str) -> bytes | None:
    if kind == "TIFF":
        # A TIFF's EXIF is its own first IFD; serialise what Pillow parsed (orientation already applied).
        try:
            exif = image.getexif()
            return exif.tobytes() if len(exif) else None
        except Exception:  # a damaged IFD must not cost us the pixels
            return None
    raw = image.info.get("exif")
    return bytes(raw) if raw else None


def _text_chunks(image: Image.Image, kind: str) -> tuple[dict[str, str], int]:
    """The container's text (PNG text chunks, comments), cleaned; and how many code points were replaced."""
    found: list[tuple[Any, list[Any]]] = []
    if kind == "PNG":
        found += [(key, [value]) for key, value in getattr(image, "text", {}).items()]
    if kind == "JPEG":
        comments = [segment for marker, segment in getattr(image, "applist", []) if marker == "COM"]
        if comments:
            found.append(("comment", comments))
    elif "comment" in image.info:
        found.append(("comment", [image.info["comment"]]))

    chunks: dict[str, str] = {}
    replaced = 0
    for raw_key, raw_parts in found:
        if raw_key == _PNG_XMP_KEYWORD:
            continue  # carried as LoadedImage.xmp instead
        key, replaced_in_key = _decode_text(raw_key)
        if key in chunks:
            continue
        parts = [_decode_text(part) for part in raw_parts]
        chunks[key] = "\n".join(text for text, _ in parts)
        replaced += replaced_in_key + sum(count for _, count in parts)
    return chunks, replaced


def _text_keys(image: Image.Image, kind: str) -> frozenset[str]:
    """Pillow info keys that hold PNG text chunks (moved to `text_chunks`, not repeated in `info`)."""
    if kind != "PNG":
        return frozenset()
    return frozenset(key for key in getattr(image, "text", {}) if isinstance(key, str))


def _xmp_text(image: Image.Image, kind: str) -> tuple[str | None, int]:
    raw: Any = image.info.get("xmp") or image.info.get(_PNG_XMP_KEYWORD)
    if not raw and kind == "TIFF":
        raw = image.tag_v2.get(_TIFF_XMP_TAG)
    if isinstance(raw, tuple) and all(isinstance(item, int) and 0 <= item < 256 for item in raw):
        raw = bytes(raw)  # a TIFF XMP tag typed BYTE comes back as a tuple of ints
    if not raw:
        return None, 0
    text, replaced = _decode_text(raw)
    return (text or None), replaced


def _decode_text(value: Any) -> tuple[str, int]:
    """Text read from the file, as valid Unicode; with how many code points had to be replaced."""
    if isinstance(value, bytes | bytearray | memoryview):
        return decode_bytes(value)
    return clean_text(str(value))


def _json_friendly_info(pillow_info: dict[str, Any], text_keys: frozenset[str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key, value in pillow_info.items():
        if not isinstance(key, str) or key in _CONSUMED_INFO_KEYS or key in text_keys:
            continue
        friendly = _json_friendly(value, depth=0)
        if friendly is not _DROP:
            info[key] = friendly
    return info


_DROP = object()


def _json_friendly(value: Any, depth: int) -> Any:
    """Reduce a Pillow info value to str/int/float/bool/None/list/dict, or `_DROP` it."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return str(value)  # a plain str, not Pillow's iTXt subclass
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return _json_friendly(value.item(), depth)
    if isinstance(value, Fraction | TiffImagePlugin.IFDRational):
        numerator, denominator = value.numerator, value.denominator
        return float(numerator) / float(denominator) if denominator else None
    if depth >= 4:
        return _DROP
    if isinstance(value, tuple | list):
        items = [_json_friendly(item, depth + 1) for item in value]
        return _DROP if any(item is _DROP for item in items) else items
    if isinstance(value, dict):
        pairs = ((str(key), _json_friendly(item, depth + 1)) for key, item in value.items())
        return {key: item for key, item in pairs if item is not _DROP}
    return _DROP  # bytes, Pillow objects, pillow-heif handles: not facts a report can carry


def _frame_count(image: Image.Image, info: dict[str, Any], kind: str, data: bytes) -> int:
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception as exc:  # a damaged later frame must not cost us the first one
        info["frame_count_problem"] = _decoder_failure(exc, kind, data, None).message
        return 1


# --- failures ------------------------------------------------------------------------------------


class _Cause(enum.Enum):
    """What went wrong inside a decoder, in the terms a message uses."""

    TRUNCATED = "truncated"
    HEADER = "corrupt header"
    DATA = "corrupt compressed data"
    UNSUPPORTED = "unsupported variant"
    LIMITS = "decoder limits"
    MEMORY = "out of memory"
    UNKNOWN = "unknown"


_GENERIC_DETAILS: dict[_Cause, str] = {
    _Cause.HEADER: "the header is damaged",
    _Cause.DATA: "the compressed pixel data is damaged",
    _Cause.UNSUPPORTED: "the file uses a feature the decoder does not support",
    _Cause.LIMITS: "its structure declares more than the decoder is willing to read",
    _Cause.UNKNOWN: "the decoder could not make sense of the image data",
}


@dataclass(frozen=True)
class _KnownFailure:
    """A decoder's own wording (matched, never shown) and what it means in ours.

    `detail` may use ``{name}`` (a chunk or box name), ``{n}`` (a number), ``{label}`` (the format,
    ``{a_label}`` with its article) and ``{text_chunk_limit}``/``{text_memory_limit}`` (Pillow's PNG
    text limits).
    """

    pattern: re.Pattern[str]
    cause: _Cause
    detail: str | None = None


def _known(pattern: str, cause: _Cause, detail: str | None = None) -> _KnownFailure:
    return _KnownFailure(re.compile(pattern, re.IGNORECASE | re.ASCII), cause, detail)


# A chunk or box name as Python's repr shows bytes: printable ASCII without quote or backslash, so a
# name of junk bytes (shown escaped) never matches and never reaches a message.
_NAME = r"(?P<name>[ -&(-\[\]-~]{4})"
_NUMBER = r"(?P<n>\d{1,12})"
_TRUNCATION = (
    r"image file is truncated|truncated (png file|file read|data)|image was incomplete"
    r"|not enough (image )?data|buffer is not large enough|end of file|premature end|file size too small"
    r"|insufficient input data"
)

# First match wins, so specific phrases come before the generic ones they contain.
_KNOWN_FAILURES: tuple[_KnownFailure, ...] = (
    # PNG
    _known(rf"bad header checksum in b'{_NAME}'", _Cause.HEADER, "the {name} chunk fails its checksum"),
    _known(r"incomplete checksum", _Cause.TRUNCATED),
    _known(
        rf"broken PNG file \(chunk b'{_NAME}'\)",
        _Cause.HEADER,
        "the chunk structure is damaged: {name} is not a valid chunk name",
    ),
    _known(
        r"broken PNG file \(chunk",
        _Cause.HEADER,
        "the chunk structure is damaged: a chunk has an unreadable name",
    ),
    _known(rf"truncated {_NAME} chunk", _Cause.HEADER, "the {name} chunk is too short for its contents"),
    _known(
        rf"unknown compression method {_NUMBER} in {_NAME} chunk",
        _Cause.HEADER,
        "the {name} chunk names an unknown compression method ({n})",
    ),
    _known(r"unknown filter category", _Cause.DATA, "a row of pixels names an unknown filter type"),
    _known(r"\bAPNG\b", _Cause.HEADER, "its animation (APNG) chunks are inconsistent"),
    _known(r"MAX_TEXT_CHUNK", _Cause.LIMITS, "a compressed chunk expands to more than {text_chunk_limit}"),
    _known(r"MAX_TEXT_MEMORY", _Cause.LIMITS, "its text chunks hold more than {text_memory_limit} of text"),
    # Any format: the data ran out (after the PNG phrases that merely contain "truncated")
    _known(_TRUNCATION, _Cause.TRUNCATED),
    # JPEG
    _known(r"bad quantization table", _Cause.HEADER, "a quantization table (DQT segment) is malformed"),
    _known(r"no marker found", _Cause.HEADER, "a marker segment's length does not lead to the next marker"),
    _known(
        rf"cannot handle {_NUMBER}-layer images",
        _Cause.UNSUPPORTED,
        "images with {n} colour components cannot be decoded",
    ),
    _known(rf"cannot handle {_NUMBER}-bit layers", _Cause.UNSUPPORTED, "{n}-bit samples cannot be decoded"),
    _known(r"\bMPO\b|\bMP index\b", _Cause.HEADER, "its multi-picture (MPO) index is damaged"),
    _known(r"\bEXIF\b", _Cause.HEADER, "its EXIF metadata is damaged"),
    # GIF
    _known(r"(image not found|no more images) in GIF", _Cause.HEADER, "no image was found in the file"),
    # BMP
    _known(
        rf"unsupported BMP compression \({_NUMBER}\)",
        _Cause.UNSUPPORTED,
        "compression method {n} cannot be decoded",
    ),
    _known(
        rf"unsupported BMP pixel depth \({_NUMBER}\)",
        _Cause.UNSUPPORTED,
        "{n} bits per pixel cannot be decoded",
    ),
    _known(
        rf"unsupported BMP palette size \({_NUMBER}\)",
        _Cause.UNSUPPORTED,
        "a palette of {n} colours cannot be decoded",
    ),
    _known(
        rf"unsupported BMP header type \({_NUMBER}\)",
        _Cause.UNSUPPORTED,
        "a {n}-byte header cannot be decoded",
    ),
    _known(
        r"unsupported BMP bitfields", _Cause.UNSUPPORTED, "this layout of colour bit fields cannot be decoded"
    ),
    _known(r"invalid palette size", _Cause.HEADER, "the palette size is invalid"),
    _known(
        r"unknown raw mode",
        _Cause.UNSUPPORTED,
        "no decoder for this combination of colour mode and bit depth",
    ),
    # TIFF
    _known(
        r"unknown pixel mode",
        _Cause.UNSUPPORTED,
        "no decoder for this mix of samples per pixel, bit depth and sample format (e.g. float RGB)",
    ),
    _known(r"missing dimensions", _Cause.HEADER, "the image width or height is missing"),
    _known(r"invalid dimensions|size must be positive", _Cause.HEADER, "the image dimensions are invalid"),
    _known(r"samples per pixel", _Cause.HEADER, "the number of samples per pixel is invalid"),
    _known(
        r"unknown data organization",
        _Cause.HEADER,
        "the arrangement of its samples (planar configuration) is invalid",
    ),
    _known(
        r"invalid extents|tile cannot extend outside|tile offset cannot be negative",
        _Cause.HEADER,
        "part of the pixel data lies outside the image",
    ),
    _known(r"invalid tile dimensions", _Cause.HEADER, "the tile dimensions are invalid"),
    _known(r"not a TIFF IFD|unable to seek to frame", _Cause.HEADER, "the image directory is unreadable"),
    _known(r"colormap", _Cause.HEADER, "the colour map has the wrong size"),
    _known(
        r"windows media photo",
        _Cause.UNSUPPORTED,
        "JPEG XR (Windows Media Photo) compression cannot be decoded",
    ),
    _known(r"decoder error -?\d+", _Cause.DATA),
    # WebP
    _known(r"could not create decoder object", _Cause.HEADER, "its chunk structure is damaged"),
    _known(r"failed to (read|decode) next frame", _Cause.DATA),
    # HEIF (libheif) and AVIF (libavif)
    _known(
        r"security limit",
        _Cause.LIMITS,
        "it declares more items or data than the decoder's safety limits allow",
    ),
    _known(rf"no '{_NAME}' box", _Cause.HEADER, "the required {name} box is missing"),
    _known(
        rf"{_NAME} box data version {_NUMBER}",
        _Cause.UNSUPPORTED,
        "version {n} of the {name} box cannot be decoded",
    ),
    _known(r"invalid box size", _Cause.HEADER, "a box declares an impossible size"),
    _known(r"primary item|non-existing item", _Cause.HEADER, "the primary image item is missing or invalid"),
    _known(r"clean-aperture", _Cause.HEADER, "its crop (clean aperture) property is invalid"),
    _known(r"item has no data|missing or empty image item", _Cause.HEADER, "the image item holds no data"),
    _known(r"color profile", _Cause.HEADER, "its colour profile is unreadable"),
    _known(r"BMFF parsing failed|invalid ftyp|\bno content\b", _Cause.HEADER, "its box structure is damaged"),
    _known(
        r"\b[SPV]PS\b|bit depth signaled|decoding the input data|decoder plugin"
        r"|decoding of (color|alpha) planes?|reformat failed|does not have the size signaled",
        _Cause.DATA,
    ),
    _known(r"^invalid input\b", _Cause.HEADER),  # libheif's prefix for any malformed structure
    _known(r"codec can't decode", _Cause.HEADER),  # text in a header that is not what it claims to be
    # Any format: Pillow's decoder status codes and refusals
    _known(r"out of memory", _Cause.MEMORY),
    _known(
        r"buffer overrun|broken data stream|unrecognized data stream|decoding error|cannot decode image data",
        _Cause.DATA,
    ),
    _known(
        r"codec configuration error|bad configuration",
        _Cause.HEADER,
        "the header declares settings the decoder cannot use",
    ),
    _known(
        r"not an? \w+ file|not identified by this driver|cannot identify image file",
        _Cause.HEADER,
        "the data starts like {a_label} file but its header is unreadable",
    ),
    _known(r"unsupported|not supported|cannot handle|not implemented", _Cause.UNSUPPORTED),
)


def _decoder_failure(exc: BaseException, kind: str, data: bytes, layout: JpegLayout | None) -> IntakeError:
    """Map whatever a decoder raised to a typed error whose message names the format and the reason.

    The decoder's own text is only matched against known phrases, never quoted: it is written for
    programmers, may carry bytes from the file, and changes between library versions.
    """
    if isinstance(exc, UnidentifiedImageError):
        exc = _open_failure(kind, data) or exc
    cause, detail = _classify(exc, kind)
    if layout is not None and cause not in (_Cause.MEMORY, _Cause.LIMITS):
        cause, detail = _jpeg_variant(layout) or (cause, detail)
    return _typed_error(cause, detail, kind, len(data))


def _classify(exc: BaseException, kind: str) -> tuple[_Cause, str | None]:
    if isinstance(exc, MemoryError | Image.DecompressionBombError):
        return _Cause.MEMORY, None
    text = " ".join(str(exc).split())
    for known in _KNOWN_FAILURES:
        match = known.pattern.search(text)
        if match is not None:
            return known.cause, None if known.detail is None else _fill(known.detail, match, kind)
    # Pillow wraps what its openers raise in SyntaxError, so look at the original too.
    raised = (exc, exc.__cause__)
    if any(isinstance(error, EOFError) for error in raised):
        return _Cause.TRUNCATED, None
    if kind == "TIFF" and any(isinstance(error, KeyError) for error in raised):
        return _Cause.HEADER, "the image directory lacks a required tag or names a value no decoder knows"
    if any(isinstance(error, struct.error | IndexError | KeyError | UnicodeDecodeError) for error in raised):
        return _Cause.HEADER, None  # Pillow's Python code only reads headers; its C decoders return codes
    return _Cause.UNKNOWN, None


def _fill(template: str, match: re.Match[str], kind: str) -> str:
    label = FORMAT_LABELS[kind]
    values = {
        "label": label,
        "a_label": f"an {label}" if label[0] in "AEIOU" else f"a {label}",
        "text_chunk_limit": _human_bytes(PngImagePlugin.MAX_TEXT_CHUNK),
        "text_memory_limit": _human_bytes(PngImagePlugin.MAX_TEXT_MEMORY),
    }
    for key, value in match.groupdict().items():
        if value is not None:
            values[key] = f"'{value}'" if key == "name" else group_digits(int(value))
    return template.format(**values)


def _jpeg_variant(layout: JpegLayout) -> tuple[_Cause, str] | None:
    """Why Pillow cannot decode a JPEG whose frame header is not 8-bit lossy, or None if it is."""
    precision = layout.precision
    if layout.is_lossless:
        samples = f" with {precision}-bit samples" if precision else ""
        return _Cause.UNSUPPORTED, f"{layout.coding} coding{samples} cannot be decoded"
    if precision in (None, 8):
        return None
    if precision in (12, 16):
        return _Cause.UNSUPPORTED, f"{layout.coding} coding with {precision}-bit samples cannot be decoded"
    return _Cause.HEADER, f"the frame header declares {precision}-bit samples, which JPEG does not allow"


def _typed_error(cause: _Cause, detail: str | None, kind: str, size: int) -> IntakeError:
    label = FORMAT_LABELS[kind]
    if cause is _Cause.MEMORY:
        return DecompressionBombError(
            f"{label} image needs more memory to decode than is available; lower its size or raise the limits"
        )
    if cause is _Cause.TRUNCATED:
        return TruncatedImageError(
            f"truncated {label}: the data ends at byte {group_digits(size)} before the image is complete"
        )
    detail = detail or _GENERIC_DETAILS[cause]
    if cause is _Cause.LIMITS:
        return DecompressionBombError(f"{label} image exceeds the decoder's safety limits: {detail}")
    if cause is _Cause.UNSUPPORTED:
        return UnsupportedFormatError(f"unsupported {label} variant: {detail}")
    return CorruptImageError(f"corrupt {label}: {detail}")


def _open_failure(kind: str, data: bytes) -> BaseException | None:
    """Re-run the format's opener alone to learn the reason Image.open swallowed (failure path only)."""
    factory = Image.OPEN.get(SUPPORTED_FORMATS[kind], (None, None))[0]
    if factory is None:
        return None
    try:
        factory(io.BytesIO(data), "")
    except Exception as exc:
        return exc
    return None


# --- PNG text over the decoder's limits ----------------------------------------------------------


_PNG_SIGNATURE_SIZE = 8
_PNG_TEXT_TYPES = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_KEYWORD_MAX = 79  # bytes, by the PNG specification
# Recognising an oversized chunk costs up to MAX_TEXT_CHUNK bytes of decompression; a file with more
# of them than this is an attack, not an image worth that work.
_MAX_OVERSIZED_TEXT_CHUNKS = 64


@dataclass(frozen=True)
class _PngChunk:
    type: bytes
    start: int  # offset of its length field
    end: int  # offset just after its CRC

    def payload(self, data: bytes) -> bytes:
        return data[self.start + 8 : self.end - 4]


def _png_chunks(data: bytes) -> Iterator[_PngChunk]:
    """The chunks of a PNG from the signature up to IEND; stops quietly where the structure breaks."""
    position, size = _PNG_SIGNATURE_SIZE, len(data)
    while position + 12 <= size:
        end = position + 12 + int.from_bytes(data[position : position + 4], "big")
        if end > size:
            return
        chunk = _PngChunk(data[position + 4 : position + 8], position, end)
        yield chunk
        if chunk.type == b"IEND":
            return
        position = end


def _png_without_oversized_text(data: bytes) -> tuple[bytes, list[dict[str, Any]]] | None:
    """The PNG rebuilt without the text chunks Pillow's text limits refuse, and a record of each.

    Follows Pillow's own rules, reading its limits (never setting them: they are process-wide): a
    compressed text chunk may expand to ``MAX_TEXT_CHUNK`` bytes, and the text of all chunks
    together may hold ``MAX_TEXT_MEMORY`` characters. Returns None when no chunk breaks them.
    """
    chunk_limit, memory_limit = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    pieces: list[memoryview] = []
    left_out: list[dict[str, Any]] = []
    copied_up_to = text_memory = 0
    whole = memoryview(data)
    for chunk in _png_chunks(data):
        if chunk.type not in _PNG_TEXT_TYPES:
            continue
        payload = chunk.payload(data)
        room = memory_limit - text_memory
        # Inflating to one byte past the room left is enough to know the chunk does not fit.
        size = _png_text_size(chunk.type, payload, min(chunk_limit, room + 1))
        if size is not None and size <= room:
            text_memory += size
            continue
        if len(left_out) == _MAX_OVERSIZED_TEXT_CHUNKS:
            raise DecompressionBombError(
                "PNG image exceeds the decoder's safety limits: more than "
                f"{_MAX_OVERSIZED_TEXT_CHUNKS} of its text chunks are over the decoder's text limits"
            )
        pieces.append(whole[copied_up_to : chunk.start])
        copied_up_to = chunk.end
        left_out.append(_text_chunk_record(chunk.type, payload))
    if not left_out:
        return None
    pieces.append(whole[copied_up_to:])
    return b"".join(pieces), left_out


def _png_text_size(chunk_type: bytes, payload: bytes, max_length: int) -> int | None:
    """Characters of text Pillow keeps from a text chunk, counted as it counts them; None where the
    compressed text expands past `max_length` bytes. Chunks Pillow ignores count 0."""
    keyword, separator, rest = payload.partition(b"\0")
    if chunk_type == b"tEXt":
        return len(rest) if keyword else 0
    if chunk_type == b"zTXt":
        if rest[:1] not in (b"", b"\0"):
            return 0  # an unknown compression method: Pillow refuses that for its own reason
        text = _inflate(rest[1:], max_length)
        return None if text is None else (len(text) if keyword else 0)
    # iTXt: keyword NUL, compression flag, method, language NUL, translated keyword NUL, text
    fields = rest[2:].split(b"\0", 2)
    if not separator or len(rest) < 2 or len(fields) < 3:
        return 0
    flag, method, (language, translated, value) = rest[0], rest[1], fields
    if flag:
        if method != 0:
            return 0
        inflated = _inflate(value, max_length)
        if inflated is None:
            return None
        value = inflated
    try:
        language.decode("utf-8"), translated.decode("utf-8")
        return len(value.decode("utf-8"))
    except UnicodeDecodeError:
        return 0


def _inflate(compressed: bytes, max_length: int) -> bytes | None:
    """Decompress at most `max_length` bytes; None if there is more (b"" for damaged data, as Pillow)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, max_length)
    except zlib.error:
        return b""
    return None if inflater.unconsumed_tail else text


def _text_chunk_record(chunk_type: bytes, payload: bytes) -> dict[str, Any]:
    keyword, _ = clean_text(payload.partition(b"\0")[0][:_PNG_KEYWORD_MAX].decode("latin-1"))
    return {"keyword": keyword, "type": chunk_type.decode("ascii"), "compressed_bytes": len(payload)}


__all__ = ["IntakeLimits", "apply_orientation", "exif_orientation", "load_image"]
