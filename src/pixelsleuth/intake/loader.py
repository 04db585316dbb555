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
- ``frame_count_problem`` (str): the frames after the first could not be counted.

Everything else in `info` is Pillow's own info, reduced to JSON-friendly values.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
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
    PngImagePlugin,  # noqa: F401
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
    sniff,
)

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
        raise _decoder_failure(exc, kind, data, layout) from exc


def _decode(data: bytes, path: str | None, kind: str, limits: IntakeLimits) -> LoadedImage:
    with Image.open(io.BytesIO(data), formats=[SUPPORTED_FORMATS[kind]]) as image:
        return _from_pillow(image, data, path, kind, limits)


def _from_pillow(
    image: Image.Image, data: bytes, path: str | None, kind: str, limits: IntakeLimits
) -> LoadedImage:
    width, height = image.size
    if width * height > limits.max_pixels:
        raise DecompressionBombError(
            f"image is {width} × {height} = {_megapixels(width * height)} megapixels, over the limit of "
            f"{_megapixels(limits.max_pixels)} megapixels; raise --max-pixels to analyse it"
        )
    if width < 1 or height < 1:
        label = FORMAT_LABELS[kind]
        raise CorruptImageError(f"corrupt {label}: the header declares a {width} × {height} image")
    if kind == "TIFF" and _DNG_VERSION_TAG in image.tag_v2:
        raise UnsupportedFormatError(
            "unsupported image format: a DNG raw photo; export it to TIFF or JPEG first"
        )

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

    text_chunks = _text_chunks(image, kind)
    xmp = _xmp_text(image, kind, text_chunks)
    jpeg: JpegInfo | None = jpeg_info(image) if kind == "JPEG" else None
    if jpeg is not None and image.format == "MPO":
        info["multi_picture"] = True
    icc = image.info.get("icc_profile") or None

    info.update(_json_friendly_info(image.info, text_chunks))
    claimed = extension_format(path)
    if claimed is not None and claimed != kind:
        info["extension_mismatch"] = (
            f"the file name claims {FORMAT_LABELS[claimed]} (extension {os.path.splitext(path or '')[1]}) "
            f"but the content is {FORMAT_LABELS[kind]}"
        )
    n_frames = _frame_count(image, info)

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
    try:
        mode = os.stat(path).st_mode  # before open(): opening a named pipe would block
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not stat.S_ISREG(mode):
            raise FileReadError(f"cannot read {path}: not a regular file")
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                raise FileReadError(f"cannot read {path}: not a regular file")
            if status.st_size > limits.max_file_bytes:
                raise FileTooLargeError(_too_large_message(status.st_size, limits))
            data = handle.read(limits.max_file_bytes + 1)  # +1: notice a file that grew meanwhile
    except FileNotFoundError:
        raise FileReadError(f"cannot read {path}: no such file") from None
    except PermissionError:
        raise FileReadError(f"cannot read {path}: permission denied") from None
    except IsADirectoryError:
        raise FileReadError(f"cannot read {path}: it is a directory") from None
    except OSError as exc:
        raise FileReadError(f"cannot read {path}: {exc.strerror or exc}") from None
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


def _human_bytes(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.4g}"


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
    if size < 8 or ifd + 2 > size:
        return f"the data ends at byte {group_digits(size)}, before the image directory at byte {ifd}"
    entries = int.from_bytes(data[ifd : ifd + 2], endian)
    if ifd + 2 + 12 * entries > size:
        return f"the data ends at byte {group_digits(size)}, inside the image directory at byte {ifd}"
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
        box_type = data[position + 4 : position + 8].decode("latin-1")
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
                f"the data ends at byte {group_digits(size)}, inside the {box_type!r} box that needs "
                f"{group_digits(position + box_size)} bytes"
            )
        position += box_size
    else:
        return None
    return f"the data ends at byte {group_digits(size)}, inside a box header"


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
            f"unsupported colour mode {mode}: it cannot be converted to RGB ({exc})"
        ) from exc
    return np.asarray(converted), mode


def _rgb_array(image: Image.Image) -> np.ndarray:
    """The colour channels of an RGB, RGBA or RGBX image as a new H x W x 3 array, in one pass.

    `np.asarray(image)` goes through `Image.tobytes`, which packs into 64 KiB chunks and then joins
    them: two copies, about 10 % of a 1-megapixel JPEG decode. Pillow's Arrow export (public since
    Pillow 11.2) exposes its 4-bytes-per-pixel storage without copying and OpenCV packs that to RGB
    in one vectorised pass. Images spread over several Pillow memory blocks (very large ones)
    cannot be exported that way and take the `tobytes` route.
    """
    if pyarrow is not None:
        try:
            rgbx = pyarrow.array(image).flatten().to_numpy(zero_copy_only=True)
            return cv2.cvtColor(rgbx.reshape(image.height, image.width, 4), cv2.COLOR_RGBA2RGB)
        except Exception:  # multi-block image, or an Arrow/Pillow without this export
            pass
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


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


def _text_chunks(image: Image.Image, kind: str) -> dict[str, str]:
    chunks: dict[str, str] = {}
    if kind == "PNG":
        chunks.update((str(key), str(value)) for key, value in getattr(image, "text", {}).items())
        chunks.pop(_PNG_XMP_KEYWORD, None)  # carried as LoadedImage.xmp instead
    if kind == "JPEG":
        comments = [segment for marker, segment in getattr(image, "applist", []) if marker == "COM"]
        if comments:
            chunks["comment"] = "\n".join(_decode_text(segment) for segment in comments)
    elif "comment" in image.info:
        chunks.setdefault("comment", _decode_text(image.info["comment"]))
    return chunks


def _xmp_text(image: Image.Image, kind: str, text_chunks: dict[str, str]) -> str | None:
    raw: Any = image.info.get("xmp") or image.info.get(_PNG_XMP_KEYWORD)
    if not raw and kind == "TIFF":
        raw = image.tag_v2.get(_TIFF_XMP_TAG)
    if not raw:
        return None
    text = _decode_text(raw)
    return text or None


def _decode_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace").rstrip("\x00")
    return str(value)


def _json_friendly_info(pillow_info: dict[str, Any], text_chunks: dict[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key, value in pillow_info.items():
        if not isinstance(key, str) or key in _CONSUMED_INFO_KEYS or key in text_chunks:
            continue
        friendly = _json_friendly(value, depth=0)
        if friendly is not _DROP:
            info[key] = friendly
    return info


_DROP = object()


def _json_friendly(value: Any, depth: int) -> Any:
    """Reduce a Pillow info value to str/int/float/bool/None/list/dict, or `_DROP` it."""
    if value is None or isinstance(value, bool | int | str):
        return value
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


def _frame_count(image: Image.Image, info: dict[str, Any]) -> int:
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception as exc:  # a damaged later frame must not cost us the first one
        info["frame_count_problem"] = _reason(exc)
        return 1


# --- failures ------------------------------------------------------------------------------------


_TRUNCATION_PHRASES = ("truncated", "end of file", "premature end", "not enough data", "file size too small")
_UNSUPPORTED_PHRASES = ("unsupported", "not supported", "cannot handle", "unknown pixel mode")


def _decoder_failure(exc: BaseException, kind: str, data: bytes, layout: JpegLayout | None) -> IntakeError:
    """Map whatever a decoder raised to a typed error whose message names the format and the reason."""
    label = FORMAT_LABELS[kind]
    if isinstance(exc, MemoryError | Image.DecompressionBombError):
        return DecompressionBombError(
            f"{label} image needs more memory to decode than is available; lower its size or raise the limits"
        )
    if isinstance(exc, UnidentifiedImageError):
        exc = _open_failure(kind, data) or exc
    reason = _reason(exc)
    lowered = reason.lower()
    if layout is not None and (layout.is_lossless or layout.precision not in (None, 8)):
        return UnsupportedFormatError(
            f"unsupported JPEG variant: {layout.coding} coding with {layout.precision}-bit samples "
            f"cannot be decoded ({reason})"
        )
    if isinstance(exc, EOFError) or any(phrase in lowered for phrase in _TRUNCATION_PHRASES):
        return TruncatedImageError(
            f"truncated {label}: the data ends at byte {group_digits(len(data))} before the image is "
            f"complete ({reason})"
        )
    if "security limit" in lowered:
        return DecompressionBombError(f"{label} image exceeds the decoder's safety limits ({reason})")
    if any(phrase in lowered for phrase in _UNSUPPORTED_PHRASES):
        hint = ""
        if kind == "TIFF" and "pixel mode" in lowered:
            hint = (
                " (no decoder for this mix of samples per pixel, bit depth and sample format, e.g. float RGB)"
            )
        return UnsupportedFormatError(f"unsupported {label} variant: {reason}{hint}")
    if isinstance(exc, Warning):
        return CorruptImageError(f"corrupt {label}: the decoder warned: {reason}")
    if isinstance(exc, UnidentifiedImageError):
        return CorruptImageError(
            f"corrupt {label}: the data starts like a {label} file but its header is unreadable"
        )
    return CorruptImageError(f"corrupt {label}: {reason}")


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


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "<_io.BytesIO" in text:
        text = text.split("<_io.BytesIO")[0].strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = ["IntakeLimits", "apply_orientation", "exif_orientation", "load_image"]
