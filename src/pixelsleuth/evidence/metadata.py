"""What EXIF, XMP and IPTC metadata say about an image's origin.

`metadata_evidence` is the registered provenance source ("metadata"); its Evidence records carry the
source "exif", "xmp" or "iptc" depending on where the fact was read. Software and credit fields are
checked against the table of known AI generators, AI editors and ordinary editors in
``data/ai_tools.json``; one Evidence is reported per tool, however many fields name it.

All of this is unsigned metadata: anyone can add, edit or strip it. Strengths stay below those of
signed Content Credentials and of generator records (see the project's strength scale).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

from pixelsleuth.evidence.exif import ExifData, parse_exif
from pixelsleuth.evidence.iptc import IptcData, read_iptc_iim
from pixelsleuth.evidence.record import POINTS_TO, Evidence
from pixelsleuth.evidence.xmp import XmpData, flatten_text, parse_xmp
from pixelsleuth.intake.image import LoadedImage

TOOL_TABLE_FILE = "ai_tools.json"
TOOL_KINDS = ("generator", "ai-editor", "editor")

CAMERA_STRENGTH = 0.2  # make + model: weak, easily forged or copied from another file
PARTIAL_CAMERA_STRENGTH = 0.15  # only one of make / model
AI_SYSTEM_FIELD_STRENGTH = 0.8  # IPTC "AI System Used" naming a system not in the table
UNSIGNED_SOURCE_TYPE_FACTOR = 0.9  # unsigned DigitalSourceType vs. the same term in a signed manifest
UNSIGNED_SOURCE_TYPE_CAP = 0.85
# An unsigned claim of AI involvement incriminates its own file and is rarely faked; an unsigned claim of
# "digital capture" is exactly what a forger would add, so it counts no more than camera tags do.
UNSIGNED_AUTHENTIC_CAP = 0.2
MODIFIED_AFTER_CAPTURE_SLACK = timedelta(seconds=2)
_VALUE_CHARS = 300  # longest metadata value copied into Evidence.data
_QUOTE_CHARS = 80  # longest value quoted inside a finding sentence

_EXIF_TEXT_TAGS = (
    "Software",
    "ProcessingSoftware",
    "HostComputer",
    "Artist",
    "Copyright",
    "XPAuthor",
    "ImageDescription",
    "UserComment",
    "XPComment",
    "XPTitle",
    "XPSubject",
)
_EXIF_DATE_TAGS = {
    "DateTimeOriginal": "OffsetTimeOriginal",
    "DateTimeDigitized": "OffsetTimeDigitized",
    "DateTime": "OffsetTime",
}
_XMP_TEXT_PROPERTIES = (
    "xmp:CreatorTool",
    "tiff:Software",
    "photoshop:Credit",
    "photoshop:Source",
    "photoshop:History",
    "dc:creator",
    "dc:rights",
    "dc:publisher",
    "dc:description",
    "dc:title",
    "photoshop:Headline",
    "exif:UserComment",
    "Iptc4xmpExt:AISystemUsed",
    "Iptc4xmpExt:AISystemVersionUsed",
    "Iptc4xmpExt:AIPromptInformation",
)
_XMP_DATE_PROPERTIES = ("exif:DateTimeOriginal", "xmp:CreateDate", "photoshop:DateCreated", "xmp:ModifyDate")
_USER_COMMENT_CHARSETS = {
    b"ASCII\x00\x00\x00": "ascii",
    b"UNICODE\x00": "unicode",
    b"JIS\x00\x00\x00\x00\x00": "jis",
    b"\x00" * 8: "undefined",
}


# --------------------------------------------------------------------------------------------- table


@dataclass(frozen=True)
class KnownTool:
    """One row of the known-tools table (several rows may share a name: one tool, several markers)."""

    name: str
    vendor: str
    kind: str  # generator | ai-editor | editor
    patterns: tuple[re.Pattern[str], ...]
    fields: frozenset[str]  # field classes the patterns apply to
    points_to: str
    strength: float
    note: str


@dataclass(frozen=True)
class ToolTable:
    """The compiled known-tools table."""

    tools: tuple[KnownTool, ...]
    field_class: dict[str, str]  # "exif/Software" -> "software"
    field_label: dict[str, str]  # "exif/Software" -> "EXIF Software tag"
    prefilter: dict[str, re.Pattern[str]]  # field class -> one regex matching any pattern of that class


@dataclass(frozen=True)
class ToolMatch:
    """A known tool named by one metadata field."""

    tool: KnownTool
    field: str  # "exif/Software", "xmp/xmp:CreatorTool", "iptc/2:65", ...
    value: str


@lru_cache(maxsize=1)
def load_tool_table() -> ToolTable:
    """Load and compile ``data/ai_tools.json`` (once per process).

    Raises
    ------
    ValueError
        When the table is malformed (a packaging or editing error, not an input problem).
    """
    text = resources.files("pixelsleuth.evidence").joinpath("data", TOOL_TABLE_FILE).read_text("utf-8")
    document = json.loads(text)
    field_class: dict[str, str] = {}
    field_label: dict[str, str] = {}
    for class_name, members in document["field_classes"].items():
        for key, label in members.items():
            field_class[key] = class_name
            field_label[key] = label
    tools = []
    for row in document["tools"]:
        if row["kind"] not in TOOL_KINDS or row["points_to"] not in POINTS_TO:
            raise ValueError(f"{TOOL_TABLE_FILE}: bad kind or points_to in entry {row.get('name')!r}")
        unknown = set(row["fields"]) - set(document["field_classes"])
        if unknown:
            raise ValueError(
                f"{TOOL_TABLE_FILE}: entry {row['name']!r} names unknown field classes {unknown}"
            )
        tools.append(
            KnownTool(
                name=row["name"],
                vendor=row["vendor"],
                kind=row["kind"],
                patterns=tuple(re.compile(pattern, re.IGNORECASE) for pattern in row["patterns"]),
                fields=frozenset(row["fields"]),
                points_to=row["points_to"],
                strength=float(row["strength"]),
                note=row.get("note", ""),
            )
        )
    prefilter = {
        class_name: re.compile(
            "|".join(
                f"(?:{pattern.pattern})"
                for tool in tools
                if class_name in tool.fields
                for pattern in tool.patterns
            )
            or r"(?!)",
            re.IGNORECASE,
        )
        for class_name in document["field_classes"]
    }
    return ToolTable(tuple(tools), field_class, field_label, prefilter)


def match_known_tools(fields: Iterable[tuple[str, str]]) -> list[ToolMatch]:
    """Find the known tools that metadata fields name.

    Parameters
    ----------
    fields:
        ``(field key, text)`` pairs such as ``("exif/Software", "Adobe Photoshop 25.1")``; keys not in
        the table's field classes are ignored.

    Returns
    -------
    list[ToolMatch]
        In field order. An ordinary editor is dropped when an AI tool of the same vendor matched the
        same text ("Photoshop ... Generative Fill" is reported once, as the AI edit).
    """
    table = load_tool_table()
    matches: list[ToolMatch] = []
    for key, value in fields:
        class_name = table.field_class.get(key)
        if class_name is None or not value or not table.prefilter[class_name].search(value):
            continue
        found = [
            tool
            for tool in table.tools
            if class_name in tool.fields and any(pattern.search(value) for pattern in tool.patterns)
        ]
        ai_vendors = {tool.vendor for tool in found if tool.kind != "editor"}
        matches.extend(
            ToolMatch(tool, key, value)
            for tool in found
            if tool.kind != "editor" or tool.vendor not in ai_vendors
        )
    return matches


# ----------------------------------------------------------------------------------------- text utils


def _decode_bytes(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _utf16_order(body: bytes) -> str:
    if body.startswith(b"\xfe\xff"):
        return "utf-16-be"
    if body.startswith(b"\xff\xfe"):
        return "utf-16-le"
    # Mostly-Latin text has its zero bytes first (big-endian) or second (little-endian) in each pair.
    even_zeros = body[0::2].count(0)
    odd_zeros = body[1::2].count(0)
    return "utf-16-be" if even_zeros >= odd_zeros else "utf-16-le"


def decode_user_comment(raw: bytes | str | None) -> str:
    """Decode an EXIF UserComment, honouring its 8-byte character-code header.

    Parameters
    ----------
    raw:
        The tag value as Pillow returns it.

    Returns
    -------
    str
        The comment without header, NULs or surrounding white space ("" when empty).

    Examples
    --------
    >>> decode_user_comment(b"UNICODE\\x00\\x00h\\x00i")
    'hi'
    >>> decode_user_comment(b"ASCII\\x00\\x00\\x00hello\\x00")
    'hello'
    """
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw.replace("\x00", "").strip()
    if not isinstance(raw, bytes | bytearray):
        return ""
    raw = bytes(raw)
    charset = _USER_COMMENT_CHARSETS.get(raw[:8])
    body = raw[8:] if charset else raw
    if charset == "unicode":
        order = _utf16_order(body)
        if len(body) % 2:
            body = body[:-1]
        text = body.decode(order, errors="replace").lstrip("\ufeff")
    elif charset == "jis":
        for codec in ("iso2022_jp", "shift_jis", "euc_jp"):
            try:
                text = body.decode(codec)
                break
            except UnicodeDecodeError:
                continue
        else:
            text = body.decode("latin-1")
    else:
        text = _decode_bytes(body)
    return text.replace("\x00", "").strip()


def _undo_latin1_mojibake(text: str) -> str:
    # Pillow decodes EXIF ASCII as Latin-1, but many writers store UTF-8 there ("DALL·E" -> "DALLÂ·E").
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def exif_text(value: Any) -> str | None:
    """A printable string from an EXIF value (str, bytes, or Windows XP* UTF-16 byte tuples)."""
    if value is None:
        return None
    if (
        isinstance(value, tuple)
        and value
        and all(isinstance(item, int) and 0 <= item < 256 for item in value)
    ):
        value = bytes(value)
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        # XP* tags are UTF-16LE; plain byte strings are UTF-8 or Latin-1.
        text = raw.decode("utf-16-le", errors="replace") if raw[1:2] == b"\x00" else _decode_bytes(raw)
    elif isinstance(value, str):
        text = _undo_latin1_mojibake(value)
    else:
        return None
    text = text.replace("\x00", "").strip()
    return text or None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _looks_like_generation_record(text: str) -> bool:
    # The generator-text source reports these; here they would only repeat it as noise.
    stripped = text.lstrip()
    return stripped.startswith("{") or ("Steps:" in text and "Sampler:" in text)


# ---------------------------------------------------------------------------------------------- EXIF


def _parse_exif_datetime(text: str | None, offset: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if offset:
        match = re.fullmatch(r"\s*([+-])(\d{2}):?(\d{2})\s*", offset)
        if match:
            sign = 1 if match.group(1) == "+" else -1
            delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
            moment = moment.replace(tzinfo=timezone(sign * delta))
    return moment


def _comparable(first: datetime, second: datetime) -> tuple[datetime, datetime]:
    if (first.tzinfo is None) != (second.tzinfo is None):  # one offset missing: compare wall clocks
        return first.replace(tzinfo=None), second.replace(tzinfo=None)
    return first, second


def _human_interval(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{int(seconds)} seconds"


def _gps_decimal(dms: Any, ref: Any) -> float | None:
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    value = degrees + minutes / 60 + seconds / 3600
    if not math.isfinite(value):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("latin-1", errors="replace")
    if isinstance(ref, str) and ref.strip().upper()[:1] in ("S", "W"):
        value = -value
    return value


def _gps_evidence(gps: dict[str, Any]) -> Evidence | None:
    if not gps:
        return None
    latitude = _gps_decimal(gps.get("GPSLatitude"), gps.get("GPSLatitudeRef"))
    longitude = _gps_decimal(gps.get("GPSLongitude"), gps.get("GPSLongitudeRef"))
    plausible = (
        latitude is not None and longitude is not None and abs(latitude) <= 90 and abs(longitude) <= 180
    )
    data: dict[str, Any] = {"gps_tags": sorted(str(name) for name in gps)}
    if plausible:
        # Two decimals (about 1 km): enough to compare with a claimed place, not enough to find a home.
        data["latitude"] = round(latitude, 2)
        data["longitude"] = round(longitude, 2)
        finding = "EXIF includes a GPS position (rounded coordinates are in the data, not in this sentence)."
    else:
        finding = "EXIF has a GPS block but no usable position in it."
    date_stamp = exif_text(gps.get("GPSDateStamp"))
    if date_stamp:
        data["gps_date"] = date_stamp
    return Evidence("exif", finding, "none", 0.0, data=data)


def _camera_evidence(make: str | None, model: str | None, lens: str | None, source: str) -> Evidence | None:
    if not make and not model:
        return None
    if make and model and model.lower().startswith(make.lower().split()[0]):
        camera = model  # "Canon" + "Canon EOS R5" reads as "Canon EOS R5"
    else:
        camera = " ".join(part for part in (make, model) if part)
    lens_part = f" with lens {_clip(lens, _QUOTE_CHARS)}" if lens else ""
    where = "EXIF" if source == "exif" else "XMP"
    finding = (
        f"{where} names the camera as {_clip(camera, _QUOTE_CHARS)}{lens_part}; camera tags are easily "
        "forged or copied from another file, so this is only weak evidence of a genuine photo."
    )
    strength = CAMERA_STRENGTH if make and model else PARTIAL_CAMERA_STRENGTH
    return Evidence(source, finding, "authentic", strength, data={"make": make, "model": model, "lens": lens})


def _dates_evidence(exif: ExifData) -> Evidence | None:
    texts = {tag: exif_text(exif.get(tag)) for tag in _EXIF_DATE_TAGS}
    offsets = {tag: exif_text(exif.get(offset_tag)) for tag, offset_tag in _EXIF_DATE_TAGS.items()}
    if not any(texts.values()):
        return None
    data: dict[str, Any] = {tag: texts[tag] for tag in texts if texts[tag]}
    data.update({_EXIF_DATE_TAGS[tag]: offsets[tag] for tag in offsets if offsets[tag]})
    original = _parse_exif_datetime(texts["DateTimeOriginal"], offsets["DateTimeOriginal"])
    modified = _parse_exif_datetime(texts["DateTime"], offsets["DateTime"])
    if original and modified:
        original_cmp, modified_cmp = _comparable(original, modified)
        delta = modified_cmp - original_cmp
        data["modified_after_capture_seconds"] = int(delta.total_seconds())
        if delta > MODIFIED_AFTER_CAPTURE_SLACK:
            finding = (
                f"EXIF says the photo was taken {texts['DateTimeOriginal']} and the file was modified "
                f"{texts['DateTime']}, {_human_interval(delta)} later; re-saving is common and proves "
                "nothing by itself."
            )
            return Evidence("exif", finding, "none", 0.0, data=data)
    if texts["DateTimeOriginal"]:
        offset = f" (UTC offset {offsets['DateTimeOriginal']})" if offsets["DateTimeOriginal"] else ""
        finding = f"EXIF records the capture time {texts['DateTimeOriginal']}{offset}."
    elif texts["DateTimeDigitized"]:
        finding = f"EXIF records the digitisation time {texts['DateTimeDigitized']} but no capture time."
    else:
        finding = f"EXIF records a modification time {texts['DateTime']} but no capture time."
    return Evidence("exif", finding, "none", 0.0, data=data)


def _exif_section(raw: bytes | None) -> tuple[list[Evidence], list[tuple[str, str]]]:
    if not raw:
        finding = (
            "The file carries no EXIF metadata; websites and messaging apps routinely strip it, so its "
            "absence says nothing either way."
        )
        return [Evidence("exif", finding, "none", 0.0, data={"present": False})], []
    exif = parse_exif(raw)
    evidence: list[Evidence] = []
    if exif.error:
        evidence.append(Evidence("exif", f"The EXIF block is damaged: {exif.error}.", "none", 0.0))
    fields: list[tuple[str, str]] = []
    descriptive: dict[str, str] = {}
    for tag in _EXIF_TEXT_TAGS:
        raw_value = exif.get(tag)
        text = decode_user_comment(raw_value) if tag == "UserComment" else exif_text(raw_value)
        if not text:
            continue
        if tag == "UserComment" and _looks_like_generation_record(text):
            continue
        fields.append((f"exif/{tag}", text))
        descriptive[tag] = _clip(text, _VALUE_CHARS)
    camera = _camera_evidence(
        exif_text(exif.get("Make")),
        exif_text(exif.get("Model")),
        exif_text(exif.get("LensModel")) or exif_text(exif.get("LensMake")),
        "exif",
    )
    for item in (camera, _dates_evidence(exif), _gps_evidence(exif.gps)):
        if item is not None:
            evidence.append(item)
    if descriptive:
        names = ", ".join(descriptive)
        evidence.append(
            Evidence("exif", f"EXIF text fields present: {names}.", "none", 0.0, data=descriptive)
        )
    return evidence, fields


# ----------------------------------------------------------------------------------------------- XMP


def lookup_digital_source_type(value: str) -> dict[str, Any] | None:
    """Map an IPTC digitalSourceType term or URL with the C2PA source's table.

    Returns None when the term is unknown or the C2PA source is not available.
    """
    try:
        from pixelsleuth.evidence.c2pa import digital_source_type
    except ImportError:
        return None
    try:
        mapping = digital_source_type(value)
    except Exception:
        return None
    if not isinstance(mapping, dict) or mapping.get("points_to") not in POINTS_TO:
        return None
    try:
        strength = float(mapping.get("strength", mapping.get("base_strength", 0.0)))
    except (TypeError, ValueError):
        return None
    if not 0.0 <= strength <= 1.0:
        return None
    return {**mapping, "strength": strength}


def digital_source_type_evidence(value: str, source: str, field_label: str) -> Evidence:
    """Evidence for an unsigned IPTC DigitalSourceType declaration (XMP), mapped via the C2PA table."""
    term = value.strip().rstrip("/").rsplit("/", 1)[-1]
    mapping = lookup_digital_source_type(value)
    data: dict[str, Any] = {"field": field_label, "value": _clip(value, _VALUE_CHARS), "term": term}
    if mapping is None:
        quoted = _clip(term, _QUOTE_CHARS)
        finding = f"{field_label} declares the digital source type '{quoted}', which is not recognised."
        return Evidence(source, finding, "none", 0.0, data=data)
    label = str(mapping.get("label") or term)
    meaning = str(mapping.get("meaning") or "").strip().rstrip(".")
    cap = UNSIGNED_AUTHENTIC_CAP if mapping["points_to"] == "authentic" else UNSIGNED_SOURCE_TYPE_CAP
    strength = round(min(mapping["strength"] * UNSIGNED_SOURCE_TYPE_FACTOR, cap), 3)
    data.update({"label": label, "meaning": meaning, "signed": False})
    said = f"says the image {meaning} ({label})" if meaning else f"declares the digital source type '{label}'"
    finding = f"Unsigned metadata ({field_label}) {said}; it could have been added or edited by anyone."
    return Evidence(source, finding, mapping["points_to"], strength, data=data)


def _history_evidence(xmp: XmpData) -> Evidence | None:
    if not xmp.history:
        return None
    agents = list(dict.fromkeys(event.software_agent for event in xmp.history if event.software_agent))
    actions = list(dict.fromkeys(event.action for event in xmp.history if event.action))
    steps = len(xmp.history)
    by = f" by {', '.join(_clip(agent, _QUOTE_CHARS) for agent in agents[:4])}" if agents else ""
    what = f" ({', '.join(actions[:6])})" if actions else ""
    finding = f"The XMP edit history lists {steps} step{'s' if steps != 1 else ''}{what}{by}."
    data = {
        "steps": steps,
        "software_agents": agents,
        "events": [event.to_dict() for event in xmp.history[:50]],
    }
    return Evidence("xmp", finding, "none", 0.0, data=data)


def _derivation_evidence(xmp: XmpData) -> Evidence | None:
    derived_from = xmp.get("xmpMM:DerivedFrom")
    ingredients = xmp.get("xmpMM:Ingredients")
    ancestors = xmp.get("photoshop:DocumentAncestors")
    n_ingredients = len(ingredients) if isinstance(ingredients, list) else int(ingredients is not None)
    n_ancestors = len(ancestors) if isinstance(ancestors, list) else int(ancestors is not None)
    if derived_from is None and not n_ingredients and not n_ancestors:
        return None
    parts = []
    if derived_from is not None:
        parts.append("was saved from another document (xmpMM:DerivedFrom)")
    if n_ingredients:
        parts.append(
            f"lists {n_ingredients} ingredient file{'s' if n_ingredients != 1 else ''} (xmpMM:Ingredients)"
        )
    if n_ancestors:
        parts.append(
            f"lists {n_ancestors} document{'s' if n_ancestors != 1 else ''} pasted or placed into it "
            "(photoshop:DocumentAncestors)"
        )
    finding = "XMP says the file " + " and ".join(parts) + "."
    data = {
        "derived_from": flatten_text(derived_from),
        "ingredients": n_ingredients,
        "document_ancestors": n_ancestors,
    }
    return Evidence("xmp", finding, "none", 0.0, data=data)


def _xmp_fields(xmp: XmpData) -> list[tuple[str, str]]:
    fields = []
    for name in _XMP_TEXT_PROPERTIES:
        text = xmp.text(name)
        if text and not (name == "exif:UserComment" and _looks_like_generation_record(text)):
            fields.append((f"xmp/{name}", text))
    for event in xmp.history:
        for key, value in (
            ("stEvt:softwareAgent", event.software_agent),
            ("stEvt:parameters", event.parameters),
            ("stEvt:changed", event.changed),
        ):
            if value:
                fields.append((f"xmp/{key}", value))
    return fields


def _xmp_section(
    packet: str | None, has_exif_camera: bool
) -> tuple[list[Evidence], list[tuple[str, str]], XmpData]:
    xmp = parse_xmp(packet) if packet else XmpData()
    if not packet:
        return [], [], xmp
    evidence: list[Evidence] = []
    if xmp.error:
        how = "; fields were read leniently" if xmp.loose and xmp.properties else ""
        evidence.append(
            Evidence("xmp", f"The XMP packet could not be read properly: {xmp.error}{how}.", "none", 0.0)
        )
    for name, value in xmp.find_local("DigitalSourceType") or xmp.find_local("DigitalSourceFileType"):
        text = flatten_text(value)
        if text:
            evidence.append(digital_source_type_evidence(text, "xmp", f"XMP {name}"))
            break
    if not has_exif_camera:
        camera = _camera_evidence(xmp.text("tiff:Make"), xmp.text("tiff:Model"), xmp.text("aux:Lens"), "xmp")
        if camera is not None:
            evidence.append(camera)
    for item in (_history_evidence(xmp), _derivation_evidence(xmp)):
        if item is not None:
            evidence.append(item)
    provenance = xmp.text("dcterms:provenance")
    if provenance:
        evidence.append(
            Evidence(
                "xmp",
                "XMP points to an embedded C2PA manifest (dcterms:provenance); the c2pa source checks it.",
                "none",
                0.0,
                data={"provenance": _clip(provenance, _VALUE_CHARS)},
            )
        )
    fields = _xmp_fields(xmp)
    summary = {
        name: _clip(text, _VALUE_CHARS)
        for name in (*_XMP_TEXT_PROPERTIES, *_XMP_DATE_PROPERTIES)
        if (text := xmp.text(name))
    }
    if summary:
        names = ", ".join(summary)
        evidence.append(Evidence("xmp", f"XMP fields present: {names}.", "none", 0.0, data=summary))
    return evidence, fields, xmp


# ---------------------------------------------------------------------------------------------- IPTC


def _tiff_iptc_block(raw_exif: bytes | None) -> bytes | None:
    if not raw_exif:
        return None
    value = parse_exif(raw_exif).get("IPTCNAA")
    if isinstance(value, bytes):
        return value
    if isinstance(value, tuple) and value and all(isinstance(item, int) for item in value):
        # Some writers declare the block as LONG: each value is four bytes of the stream.
        return b"".join(int(item).to_bytes(4, "big") for item in value if 0 <= item < 2**32)
    return None


def _iptc_section(image: LoadedImage) -> tuple[list[Evidence], list[tuple[str, str]]]:
    tiff_block = _tiff_iptc_block(image.exif) if image.format != "JPEG" else None
    iptc: IptcData = read_iptc_iim(image.data if image.format == "JPEG" else None, tiff_block)
    evidence: list[Evidence] = []
    if iptc.error:
        evidence.append(Evidence("iptc", f"The IPTC-IIM block is damaged: {iptc.error}.", "none", 0.0))
    if not iptc.datasets:
        return evidence, []
    fields = [(f"iptc/{key}", value) for key, values in iptc.datasets.items() for value in values]
    named = {name: [_clip(value, _VALUE_CHARS) for value in values] for name, values in iptc.named().items()}
    if named:
        labels = ", ".join(named)
        evidence.append(Evidence("iptc", f"IPTC-IIM fields present: {labels}.", "none", 0.0, data=named))
    return evidence, fields


# ------------------------------------------------------------------------------------------ assembly


def _tool_evidence(matches: list[ToolMatch]) -> list[Evidence]:
    table = load_tool_table()
    grouped: dict[str, list[ToolMatch]] = {}
    for match in matches:
        grouped.setdefault(match.tool.name, []).append(match)
    evidence = []
    for name, group in grouped.items():
        strongest = max(group, key=lambda match: match.tool.strength)
        tool, first = strongest.tool, group[0]
        label = table.field_label.get(first.field, first.field)
        quoted = _clip(first.value, _QUOTE_CHARS)
        others = list(
            dict.fromkeys(table.field_label.get(m.field, m.field) for m in group if m.field != first.field)
        )
        also = f" (also in {', '.join(others)})" if others else ""
        if tool.kind == "generator":
            finding = (
                f'The {label} names the AI image generator {name} ("{quoted}"){also}; metadata can be '
                "edited, but this is rarely present by accident."
            )
        elif tool.kind == "ai-editor":
            finding = (
                f'The {label} records {name}, an AI editing feature ("{quoted}"){also}: parts of the image '
                "may have been generated."
            )
        else:
            finding = (
                f'The image was edited in {name} ({label}: "{quoted}"){also} — editing is not proof of '
                "manipulation."
            )
        seen_in = list(
            {
                (m.field, m.value): {
                    "field": m.field,
                    "label": table.field_label.get(m.field, m.field),
                    "value": _clip(m.value, _VALUE_CHARS),
                }
                for m in group
            }.values()
        )
        data = {"tool": name, "vendor": tool.vendor, "kind": tool.kind, "seen_in": seen_in, "note": tool.note}
        evidence.append(
            Evidence(first.field.split("/", 1)[0], finding, tool.points_to, tool.strength, data=data)
        )
    return evidence


def _ai_system_evidence(xmp: XmpData, matches: list[ToolMatch]) -> Evidence | None:
    system = xmp.text("Iptc4xmpExt:AISystemUsed")
    if not system or any(match.field == "xmp/Iptc4xmpExt:AISystemUsed" for match in matches):
        return None
    version = xmp.text("Iptc4xmpExt:AISystemVersionUsed")
    prompt = xmp.text("Iptc4xmpExt:AIPromptInformation")
    finding = (
        f"The IPTC 'AI System Used' field names {_clip(system, _QUOTE_CHARS)}; the field exists to declare "
        "AI generation, but as unsigned metadata it could have been edited."
    )
    data = {
        "ai_system": system,
        "version": version,
        "prompt": _clip(prompt, _VALUE_CHARS) if prompt else None,
    }
    return Evidence("xmp", finding, "ai-generated", AI_SYSTEM_FIELD_STRENGTH, data=data)


def _section_failure(source: str) -> Evidence:
    return Evidence(
        source,
        f"The {source.upper()} metadata could not be analysed: its structure is damaged or unusual.",
        "none",
        0.0,
    )


def metadata_evidence(image: LoadedImage) -> list[Evidence]:
    """Evidence from EXIF, XMP and IPTC-IIM metadata: cameras, software, AI tools, dates, credits.

    Parameters
    ----------
    image:
        The loaded image; only its metadata (`exif`, `xmp`, and for JPEG the header of `data`) is read.

    Returns
    -------
    list[Evidence]
        Tool findings first (one per known tool, from ``data/ai_tools.json``), then declarations such as
        the IPTC digital source type, then weak or informative facts. Never raises: unreadable structures
        become Evidence with ``points_to="none"`` and strength 0.

    Examples
    --------
    A file with no EXIF gives a single informative line:

    >>> import numpy as np
    >>> from pixelsleuth.intake.image import LoadedImage
    >>> blank = LoadedImage(None, b"", "", "PNG", np.zeros((1, 1, 3), np.uint8), "RGB", 8)
    >>> [e.points_to for e in metadata_evidence(blank)]
    ['none']
    """
    facts: list[Evidence] = []
    fields: list[tuple[str, str]] = []
    has_exif_camera = False
    try:
        exif_facts, exif_fields = _exif_section(image.exif)
        facts += exif_facts
        fields += exif_fields
        has_exif_camera = any(item.source == "exif" and item.points_to == "authentic" for item in exif_facts)
    except Exception:  # one damaged structure must not cost the others
        facts.append(_section_failure("exif"))
    xmp = XmpData()
    try:
        packet = image.xmp or (image.text_chunks or {}).get("XML:com.adobe.xmp")
        xmp_facts, xmp_fields, xmp = _xmp_section(packet, has_exif_camera)
        facts += xmp_facts
        fields += xmp_fields
    except Exception:  # one damaged structure must not cost the others
        facts.append(_section_failure("xmp"))
    try:
        iptc_facts, iptc_fields = _iptc_section(image)
        facts += iptc_facts
        fields += iptc_fields
    except Exception:  # one damaged structure must not cost the others
        facts.append(_section_failure("iptc"))
    if not fields:
        return sorted(facts, key=lambda item: -item.strength)
    try:
        matches = match_known_tools(fields)
        found = _tool_evidence(matches)
        ai_system = _ai_system_evidence(xmp, matches)
        if ai_system is not None:
            found.append(ai_system)
    except Exception:
        found = [_section_failure("xmp" if image.xmp else "exif")]
    return sorted(found + facts, key=lambda item: -item.strength)


__all__ = [
    "KnownTool",
    "ToolMatch",
    "ToolTable",
    "decode_user_comment",
    "digital_source_type_evidence",
    "exif_text",
    "load_tool_table",
    "lookup_digital_source_type",
    "match_known_tools",
    "metadata_evidence",
]
