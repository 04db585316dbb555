"""Stable Diffusion's invisible watermark (invisible-watermark, method ``dwtDct``), decoded fast.

The reference decoder, ``imwatermark.WatermarkDecoder(...).decode(bgr, "dwtDct")``, works like this:

1. convert the BGR image to YUV with OpenCV and keep only the U channel (its scales are
   ``[0, 36, 36]`` but it loops over channels 0 and 1 only, and channel 0 has scale 0);
2. take the Haar DWT approximation band (``pywt.dwt2``) of U cropped to a multiple of 4;
3. cut the band into 4 x 4 blocks, row by row; block number ``num`` votes for bit ``num % n``;
   despite the method's name no DCT is taken: the vote is whether the largest-magnitude entry of
   the block, leaving out its top-left one, lies in the upper half of its step of 36
   (``abs(v) % 36 > 18``);
4. average the votes of each bit and call it 1 when ``mean * 255 > 127``.

It loops over blocks in Python (about 150 ms per megapixel). Here the same bits come from whole-array
operations: a Haar approximation coefficient is exactly half the sum of a 2 x 2 patch of U, so the
votes follow from integer patch sums. Only where the block maximum lies exactly on a decision
boundary (a multiple of 18) does the rounding of PyWavelets' floating-point filter decide the vote;
those few blocks are recomputed with the same floating-point operations PyWavelets performs, which
keeps the decoded bits identical to the reference's.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import cv2
import numpy as np

from pixelsleuth.evidence.record import Evidence
from pixelsleuth.intake.image import LoadedImage

SOURCE = "watermark"

ChannelOrder = Literal["bgr", "rgb"]

QUANTIZATION_STEP = 36  # imwatermark EmbedMaxDct scale for the U channel
BLOCK_PIXELS = 8  # a 4 x 4 block of the half-resolution Haar band covers 8 x 8 pixels
MIN_ENCODER_PIXELS = 256 * 256  # imwatermark refuses to encode (or decode) smaller images
# Family-wise probability that an unmarked image is reported as marked, over all messages and
# channel orders tried (Bonferroni): detection needs p * n_hypotheses < DETECTION_ALPHA.
DETECTION_ALPHA = 1e-6
DECISIVE_P_VALUE = 1e-9  # corrected p-values at or below this get the top strength
DETECTED_STRENGTH_RANGE = (0.6, 0.95)
# Large images are screened first on a band of block rows that gives every bit of the longest message
# SCREEN_VOTES_PER_BIT votes; only when some message matches the band better than SCREEN_P_VALUE
# (uncorrected, far more lenient than detection) is the whole image decoded. A mark that the whole
# image would reveal shows in the band too; unmarked images, the common case, cost a fifth.
SCREEN_VOTES_PER_BIT = 24
SCREEN_P_VALUE = 1e-2

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

# pywt.Wavelet("haar").dec_lo coefficient, written out so the exact float64 arithmetic is pinned.
_HAAR = 0.7071067811865476

ABSENCE_CAVEAT = (
    "Absence of the watermark proves nothing: many Stable Diffusion front ends disable it, other "
    "generators never add it, and JPEG re-compression, resizing or cropping erase it."
)


@dataclass(frozen=True)
class KnownWatermark:
    """A message that some generator's reference code embeds with imwatermark ``dwtDct``."""

    key: str
    name: str
    bits: tuple[int, ...]
    encoding: str
    text: str | None
    sources: tuple[str, ...]  # "owner/repo:path" of the code that embeds it

    @property
    def length(self) -> int:
        return len(self.bits)


@dataclass(frozen=True)
class WatermarkMatch:
    """How well the bits decoded under one hypothesis match one known message."""

    key: str
    name: str
    channel_order: ChannelOrder
    length: int
    matches: int
    p_value: float
    decoded_bits: str

    @property
    def accuracy(self) -> float:
        return self.matches / self.length

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "channel_order": self.channel_order,
            "length": self.length,
            "matches": self.matches,
            "accuracy": round(self.accuracy, 4),
            "p_value": self.p_value,
            "decoded_bits": self.decoded_bits,
        }


@cache
def _watermark_facts() -> dict[str, Any]:
    text = resources.files("pixelsleuth.evidence").joinpath("data/watermarks.json").read_text("utf-8")
    return json.loads(text)


@cache
def known_watermarks() -> tuple[KnownWatermark, ...]:
    """The known messages from ``data/watermarks.json`` (loaded once)."""
    return tuple(
        KnownWatermark(
            key=entry["key"],
            name=entry["name"],
            bits=tuple(int(bit) for bit in entry["bits"]),
            encoding=entry["encoding"],
            text=entry.get("text"),
            sources=tuple(f"{source['repo']}:{source['path']}" for source in entry.get("sources", ())),
        )
        for entry in _watermark_facts()["messages"]
    )


def _u_patch_sums(image: np.ndarray, channels: ChannelOrder) -> tuple[np.ndarray, np.ndarray]:
    """U channel (as imwatermark sees it) cropped to whole blocks, and the sums of its 2 x 2 patches."""
    rows, cols = image.shape[0] // BLOCK_PIXELS, image.shape[1] // BLOCK_PIXELS
    pixels = image[: rows * BLOCK_PIXELS, : cols * BLOCK_PIXELS]
    code = cv2.COLOR_BGR2YUV if channels == "bgr" else cv2.COLOR_RGB2YUV
    u = np.ascontiguousarray(cv2.cvtColor(pixels, code)[:, :, 1])
    # Read horizontal pixel pairs as one uint16 each; low byte + high byte is their sum whatever the
    # byte order, and it avoids two strided passes over the channel.
    packed = u.view(np.uint16)
    sums = packed[0::2] & 0xFF
    sums += packed[1::2] & 0xFF
    sums += packed[0::2] >> 8
    sums += packed[1::2] >> 8
    return u, sums


def _block_max_without_corner(sums: np.ndarray) -> np.ndarray:
    """Per 4 x 4 block of `sums`, the largest entry other than the block's top-left one."""
    masked = sums.copy()
    masked[0::4, 0::4] = 0  # sums are >= 0, so a zero never beats a real candidate
    by_rows = np.maximum(np.maximum(masked[0::4], masked[1::4]), np.maximum(masked[2::4], masked[3::4]))
    quads = by_rows.reshape(by_rows.shape[0], -1, 4)
    return np.maximum(np.maximum(quads[..., 0], quads[..., 1]), np.maximum(quads[..., 2], quads[..., 3]))


def _exact_float_votes(u: np.ndarray, block_rows: np.ndarray, block_cols: np.ndarray) -> np.ndarray:
    """Votes of the given blocks computed with PyWavelets' own float64 Haar arithmetic."""
    rows, cols = u.shape[0] // BLOCK_PIXELS, u.shape[1] // BLOCK_PIXELS
    patches = u.reshape(rows, BLOCK_PIXELS, cols, BLOCK_PIXELS)[block_rows, :, block_cols, :]
    scaled = patches * _HAAR
    # pywt.dwt2 filters axis 0 first, then axis 1: out = h * x[2i + 1] + h * x[2i] at each step.
    vertical = (scaled[:, 1::2, :] + scaled[:, 0::2, :]) * _HAAR
    band = (vertical[:, :, 1::2] + vertical[:, :, 0::2]).reshape(len(patches), 16)
    position = np.argmax(band[:, 1:], axis=1) + 1
    value = band[np.arange(len(band)), position]
    return (value % QUANTIZATION_STEP) > QUANTIZATION_STEP / 2


def dwtdct_votes(image: np.ndarray, *, channels: ChannelOrder = "bgr") -> np.ndarray:
    """Per-block votes of imwatermark's ``dwtDct`` decoder, in its block order.

    Parameters
    ----------
    image : np.ndarray
        H x W x 3 uint8 picture.
    channels : {"bgr", "rgb"}
        Channel order of `image`. The votes are those ``WatermarkDecoder`` casts when it is handed
        the picture in BGR order, as its API expects: ``channels="rgb"`` equals decoding
        ``image[..., ::-1]``.

    Returns
    -------
    np.ndarray
        Boolean votes, one per 4 x 4 block of the Haar band (8 x 8 pixels), row by row; block ``i``
        votes for bit ``i % n`` of an ``n``-bit message.

    Examples
    --------
    >>> votes = dwtdct_votes(np.zeros((256, 256, 3), np.uint8))
    >>> votes.shape
    (1024,)
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.shape} {image.dtype}")
    if image.shape[0] < BLOCK_PIXELS or image.shape[1] < BLOCK_PIXELS:
        return np.zeros(0, dtype=bool)
    u, sums = _u_patch_sums(image, channels)
    block_max = _block_max_without_corner(sums)
    # The Haar coefficient is sums / 2; "coefficient % 36 > 18" is "sums % 72 > 36" for integers.
    votes = (block_max % (2 * QUANTIZATION_STEP)) > QUANTIZATION_STEP
    on_boundary = np.nonzero(block_max % QUANTIZATION_STEP == 0)
    if on_boundary[0].size:
        votes[on_boundary] = _exact_float_votes(u, *on_boundary)
    return votes.ravel()


def bits_from_votes(votes: np.ndarray, length: int, *, first_block: int = 0) -> np.ndarray:
    """Decode an `length`-bit message from block votes the way imwatermark averages them.

    Bit ``b`` is 1 when the mean vote of blocks ``b, b + length, b + 2 * length, ...`` times 255
    exceeds 127; a bit without any block reads as 0 (imwatermark's mean of an empty list is NaN).
    `first_block` is the image-wide number of the first vote, for votes of a band of block rows.
    """
    votes = np.asarray(votes, dtype=bool)
    if first_block == 0:
        whole = votes.size // length * length
        ones = votes[:whole].reshape(-1, length).sum(axis=0, dtype=np.int64)
        ones[: votes.size - whole] += votes[whole:]
        counts = np.full(length, votes.size // length, dtype=np.int64)
        counts[: votes.size - whole] += 1
    else:
        bit_of_block = (first_block + np.arange(votes.size)) % length
        ones = np.bincount(bit_of_block, weights=votes, minlength=length)
        counts = np.bincount(bit_of_block, minlength=length)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ones / counts) * 255 > 127


def decode_dwtdct_bits(bgr: np.ndarray, length: int) -> np.ndarray:
    """Vectorised equivalent of ``WatermarkDecoder("bits", length).decode(bgr, "dwtDct")``.

    Parameters
    ----------
    bgr : np.ndarray
        H x W x 3 uint8 image in BGR order (OpenCV's convention, as imwatermark expects).
    length : int
        Message length in bits.

    Returns
    -------
    np.ndarray
        Boolean array of `length` decoded bits, identical to the reference decoder's output
        (which refuses images under 256 x 256 pixels; this function decodes them anyway).
    """
    return bits_from_votes(dwtdct_votes(bgr, channels="bgr"), length)


def binomial_tail(matches: int, length: int) -> float:
    """Chance that `length` fair coin flips get at least `matches` right.

    Equals ``scipy.stats.binom.sf(matches - 1, length, 0.5)``, computed exactly with integers.
    """
    if matches <= 0:
        return 1.0
    return sum(math.comb(length, k) for k in range(matches, length + 1)) / 2**length


def match_known_watermarks(
    rgb: np.ndarray, *, block_rows: tuple[int, int] | None = None
) -> list[WatermarkMatch]:
    """Decode every known message under both channel-order hypotheses and score each match.

    Votes are computed once per channel order and regrouped for each message length. Messages
    longer than the block count are skipped (some of their bits would carry no vote).

    Parameters
    ----------
    rgb : np.ndarray
        H x W x 3 uint8 image in RGB order.
    block_rows : (first, stop), optional
        Decode only this band of 8-pixel block rows. Votes are local to their 8 x 8 block, so a band
        gives exactly the votes the whole image gives for those blocks.

    Returns
    -------
    list[WatermarkMatch]
        One entry per (message, channel order) evaluated, best (smallest p-value) first.
    """
    results: list[WatermarkMatch] = []
    # "bgr": the encoder got a proper BGR image; "rgb": it got the RGB array (diffusers SDXL).
    first_block = 0
    if block_rows is not None:
        first_row, stop_row = block_rows
        rgb = rgb[first_row * BLOCK_PIXELS : stop_row * BLOCK_PIXELS]
        first_block = first_row * (rgb.shape[1] // BLOCK_PIXELS)
    for channel_order, array_channels in (("bgr", "rgb"), ("rgb", "bgr")):
        votes = dwtdct_votes(rgb, channels=array_channels)
        for message in known_watermarks():
            if votes.size < message.length:
                continue
            decoded = bits_from_votes(votes, message.length, first_block=first_block)
            matches = int(np.count_nonzero(decoded == np.asarray(message.bits, dtype=bool)))
            results.append(
                WatermarkMatch(
                    key=message.key,
                    name=message.name,
                    channel_order=channel_order,
                    length=message.length,
                    matches=matches,
                    p_value=binomial_tail(matches, message.length),
                    decoded_bits="".join("1" if bit else "0" for bit in decoded),
                )
            )
    results.sort(key=lambda match: (match.p_value, -match.accuracy))
    return results


def watermark_cannot_survive(image: LoadedImage) -> str | None:
    """Why this file can no longer carry a readable dwtDct mark, or None when it might.

    The mark lives in the colour (U) channel: grayscale images cannot hold it, and JPEG chroma
    subsampling at the qualities listed in ``data/watermarks.json`` ("jpeg_erasure") erases it. This
    is a cheap early exit; it never decodes pixels.
    """
    grayscale_jpeg = image.jpeg is not None and image.jpeg.subsampling == "gray"
    if image.original_mode in GRAYSCALE_MODES or grayscale_jpeg:
        return "the image is grayscale, and the watermark lives in the colour channels"
    if image.jpeg is None or 1 not in image.jpeg.quantization_tables:
        return None
    chroma_table_sum = sum(image.jpeg.quantization_tables[1])
    for rule in _watermark_facts()["jpeg_erasure"]["rules"]:
        if image.jpeg.subsampling in rule["subsampling"] and chroma_table_sum >= rule["min_chroma_table_sum"]:
            return (
                f"JPEG compression with {image.jpeg.subsampling} chroma subsampling at about quality "
                f"{rule['ijg_quality_at_or_below']} or lower erases the watermark"
            )
    return None


def screening_band(height: int, width: int) -> tuple[int, int] | None:
    """The middle band of block rows to screen first, or None when the image is too small to bother."""
    rows, cols = height // BLOCK_PIXELS, width // BLOCK_PIXELS
    longest = max(message.length for message in known_watermarks())
    band_rows = math.ceil(SCREEN_VOTES_PER_BIT * longest / max(cols, 1))
    if band_rows * 4 > rows:  # screening pays only when the band is at most a quarter of the image
        return None
    first = (rows - band_rows) // 2
    return first, first + band_rows


def _strength(corrected_p: float) -> float:
    """Map a corrected p-value below DETECTION_ALPHA to a strength that rises with -log10(p)."""
    low, high = DETECTED_STRENGTH_RANGE
    start, end = -math.log10(DETECTION_ALPHA), -math.log10(DECISIVE_P_VALUE)
    surprise = -math.log10(max(corrected_p, 1e-300))
    fraction = min(max((surprise - start) / (end - start), 0.0), 1.0)
    return round(low + (high - low) * fraction, 3)


def _describe_p(p_value: float) -> str:
    return f"{p_value:.0e}" if p_value < 1e-3 else f"{p_value:.3f}"


def watermark_evidence(image: LoadedImage) -> list[Evidence]:
    """Look for the invisible watermark Stable Diffusion reference code embeds.

    Parameters
    ----------
    image : LoadedImage
        The image after intake; only its RGB pixels are read.

    Returns
    -------
    list[Evidence]
        One Evidence: ``ai-generated`` when a known message decodes far better than chance
        (Bonferroni-corrected p-value below ``DETECTION_ALPHA``), otherwise an informative
        ``none`` finding with the best match in ``data``.
    """
    try:
        return [_watermark_evidence(image)]
    except Exception as exc:  # a source must never take the batch down
        logging.getLogger("pixelsleuth").warning("the watermark check failed: %r", exc)
        return [
            Evidence(
                source=SOURCE,
                finding="The invisible-watermark check could not run on this image.",
                detail="The decoded pixels or the JPEG facts recorded for this file have a shape the "
                "check cannot read. " + ABSENCE_CAVEAT,
                data={"checked": False, "error": "unreadable_input"},
            )
        ]


def _watermark_evidence(image: LoadedImage) -> Evidence:
    rgb = image.rgb
    height, width = int(rgb.shape[0]), int(rgb.shape[1])
    n_blocks = (height // BLOCK_PIXELS) * (width // BLOCK_PIXELS)
    shortest = min(message.length for message in known_watermarks())
    if height * width < MIN_ENCODER_PIXELS or n_blocks < shortest:
        return Evidence(
            source=SOURCE,
            finding="The image is too small to carry the Stable Diffusion invisible watermark; not checked.",
            detail=(
                "The invisible-watermark library only marks images of at least 256 x 256 pixels, and each "
                "message needs one 8 x 8 pixel block per bit."
            ),
            data={"checked": False, "width": width, "height": height, "n_blocks": n_blocks},
        )

    reason = watermark_cannot_survive(image)
    if reason is not None:
        return Evidence(
            source=SOURCE,
            finding="The Stable Diffusion invisible watermark was not looked for: this file cannot carry it.",
            detail=f"Not checked because {reason}. " + ABSENCE_CAVEAT,
            data={"checked": False, "reason": reason},
        )

    band = screening_band(height, width)
    screened = False
    if band is not None:
        matches = match_known_watermarks(rgb, block_rows=band)
        screened = matches[0].p_value >= SCREEN_P_VALUE
    if not screened:
        matches = match_known_watermarks(rgb)
    best = matches[0]
    corrected_p = min(1.0, best.p_value * len(matches))
    examined = (band[1] - band[0]) * (width // BLOCK_PIXELS) if screened and band else n_blocks
    data: dict[str, Any] = {
        "checked": True,
        "screened_only": screened,
        "blocks_examined": examined,
        "detected": corrected_p < DETECTION_ALPHA,
        "best": best.to_dict(),
        "corrected_p_value": corrected_p,
        "n_hypotheses": len(matches),
        "alpha": DETECTION_ALPHA,
        "n_blocks": n_blocks,
        "matches": [match.to_dict() for match in matches],
    }
    order_note = (
        " The mark sits in the channel order the diffusers SDXL pipeline produces (RGB handed over as BGR)."
        if best.channel_order == "rgb"
        else ""
    )
    if data["detected"]:
        return Evidence(
            source=SOURCE,
            finding=(
                f"Stable Diffusion invisible watermark found ({best.name} message, {best.matches} of "
                f"{best.length} bits match; chance probability {_describe_p(best.p_value)})."
            ),
            points_to="ai-generated",
            strength=_strength(corrected_p),
            detail=(
                "Stable Diffusion software hides a fixed message in the image with the "
                "invisible-watermark library (dwtDct). An unmarked image matches about half the bits; "
                f"{len(matches)} message and channel-order combinations were tried and the chance "
                f"probability, corrected for that, is {_describe_p(corrected_p)}.{order_note}"
            ),
            data=data,
        )
    return Evidence(
        source=SOURCE,
        finding="No Stable Diffusion invisible watermark was found.",
        detail=(
            f"Best match: {best.name} message, {best.matches} of {best.length} bits "
            f"(chance probability {_describe_p(best.p_value)}, {len(matches)} combinations tried"
            + (f"; screened on {examined} of {n_blocks} blocks" if screened else "")
            + "). "
            + ABSENCE_CAVEAT
        ),
        data=data,
    )
