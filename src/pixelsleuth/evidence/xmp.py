"""Read an XMP packet into plain Python values, tolerating the junk real files carry.

The packet is parsed with the standard-library ElementTree (expat), which never fetches external
entities; packets that declare entities at all are refused, since XMP has no use for them. Property
names are reported as ``prefix:Local`` with the conventional XMP prefixes (whatever prefixes the file
itself used), so callers can ask for ``"xmp:CreatorTool"`` or ``"Iptc4xmpExt:DigitalSourceType"``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from xml.parsers import expat

from pixelsleuth.intake.text import clean_text, decode_bytes

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# Conventional prefix for each namespace URI, so names do not depend on the prefixes a file chose.
STANDARD_PREFIXES: dict[str, str] = {
    "adobe:ns:meta/": "x",
    RDF_NS: "rdf",
    "http://ns.adobe.com/xap/1.0/": "xmp",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#": "stEvt",
    "http://ns.adobe.com/xap/1.0/sType/ResourceRef#": "stRef",
    "http://ns.adobe.com/tiff/1.0/": "tiff",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/exif/1.0/aux/": "aux",
    "http://cipa.jp/exif/1.0/": "exifEX",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/camera-raw-settings/1.0/": "crs",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/": "Iptc4xmpCore",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt",
    "http://ns.useplus.org/ldf/xmp/1.0/": "plus",
    "http://www.gimp.org/xmp/": "GIMP",
    "http://ns.google.com/photos/1.0/camera/": "GCamera",
}

_PACKET_START = re.compile(r"<(?:[\w.-]+:)?(?:xmpmeta|xapmeta)\b|<(?:[\w.-]+:)?RDF\b")
_PACKET_END = re.compile(r"</(?:[\w.-]+:)?(?:xmpmeta|xapmeta)\s*>|</(?:[\w.-]+:)?RDF\s*>")
# Pieces of a DOCTYPE declaration and of the lenient property scan. None has nested or overlapping
# quantifiers, so one match attempt costs at most the text it scans; the scanners below make sure no
# stretch of text is scanned again from every position inside it.
_DOCTYPE_OPEN = "<!DOCTYPE"
_DOCTYPE_STOP = re.compile(r"[>\[]")
_DOCTYPE_SUBSET_END = re.compile(r"\]\s*>")
_NAME_CHARS = re.compile(r"[\w.-]*")
_LOOSE_START = re.compile(r"<|\b[A-Za-z]")
_LOOSE_ATTRIBUTE = re.compile(r"""([A-Za-z][\w.-]*:[A-Za-z][\w.-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')""")
_LOOSE_ELEMENT_NAME = re.compile(r"<([A-Za-z][\w.-]*:[A-Za-z][\w.-]*)")
_LOOSE_CLOSING = re.compile(r"</([A-Za-z][\w.-]*:[A-Za-z][\w.-]*)\s*>")
_MAX_PACKET_CHARS = 4_000_000
# Caps on what one packet yields: real packets hold at most a few hundred properties, nested a few
# levels deep.
MAX_PROPERTIES = 5_000
MAX_DEPTH = 32


@dataclass(frozen=True)
class XmpHistoryEvent:
    """One entry of ``xmpMM:History`` (an ``stEvt`` resource event)."""

    action: str | None = None
    software_agent: str | None = None
    when: str | None = None
    changed: str | None = None
    parameters: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "action": self.action,
            "software_agent": self.software_agent,
            "when": self.when,
            "changed": self.changed,
            "parameters": self.parameters,
        }


@dataclass(frozen=True)
class XmpData:
    """An XMP packet as plain values.

    Attributes:
        properties: ``prefix:Name`` -> str, list (rdf:Seq/Bag) or dict (structures), merged over every
            ``rdf:Description``; language alternatives collapse to their x-default (or first) text.
        history: ``xmpMM:History`` events in file order.
        error: why the packet could not be read completely, if it could not.
        loose: True when the packet was not well-formed XML and `properties` come from a lenient
            pattern scan of the text (simple properties only).
    """

    properties: dict[str, Any] = field(default_factory=dict)
    history: tuple[XmpHistoryEvent, ...] = ()
    error: str | None = None
    loose: bool = False

    def get(self, name: str, default: Any = None) -> Any:
        return self.properties.get(name, default)

    def text(self, name: str) -> str | None:
        """The property as one string (lists joined with '; '), or None when absent or empty."""
        return flatten_text(self.properties.get(name))

    def find_local(self, local_name: str) -> list[tuple[str, Any]]:
        """Every property whose local name is `local_name`, whatever its namespace."""
        return [(name, value) for name, value in self.properties.items() if name.split(":")[-1] == local_name]


def flatten_text(value: Any) -> str | None:
    """Join a property value into one string; None for absent or empty values."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        parts = [flatten_text(item) for item in value]
        joined = "; ".join(part for part in parts if part)
        return joined or None
    if isinstance(value, dict):
        parts = [flatten_text(item) for item in value.values()]
        joined = "; ".join(part for part in parts if part)
        return joined or None
    return str(value)


def _extract_packet(text: str) -> str | None:
    start = _PACKET_START.search(text)
    if start is None:
        return None
    ends = list(_PACKET_END.finditer(text, start.start()))
    if not ends:
        return text[start.start() :]
    return text[start.start() : ends[-1].end()]


def _qualified(clark_name: str, prefixes: dict[str, str]) -> str:
    if not clark_name.startswith("{"):
        return clark_name
    uri, _, local = clark_name[1:].partition("}")
    prefix = STANDARD_PREFIXES.get(uri) or prefixes.get(uri)
    return f"{prefix}:{local}" if prefix else clark_name


class _RdfReader:
    """Turns an RDF/XML tree into plain values (the subset of RDF that XMP uses)."""

    _RDF = f"{{{RDF_NS}}}RDF"
    _RDF_RESOURCE = f"{{{RDF_NS}}}resource"
    _RDF_PARSE_TYPE = f"{{{RDF_NS}}}parseType"
    _RDF_LI = f"{{{RDF_NS}}}li"
    _RDF_DESCRIPTION = f"{{{RDF_NS}}}Description"
    _RDF_VALUE = f"{{{RDF_NS}}}value"
    _XML_LANG = f"{{{XML_NS}}}lang"
    _CONTAINERS = frozenset(f"{{{RDF_NS}}}{kind}" for kind in ("Seq", "Bag", "Alt"))

    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes

    def name(self, clark_name: str) -> str:
        return _qualified(clark_name, self.prefixes)

    def _is_property_attribute(self, attribute: str) -> bool:
        return (
            attribute.startswith("{")
            and not attribute.startswith(f"{{{RDF_NS}}}")
            and attribute != self._XML_LANG
        )

    def attributes(self, element: ET.Element) -> dict[str, Any]:
        return {
            self.name(key): value.strip()
            for key, value in element.attrib.items()
            if self._is_property_attribute(key)
        }

    def structure(self, element: ET.Element, depth: int = 0) -> dict[str, Any]:
        result = self.attributes(element)
        if depth > MAX_DEPTH:  # deeper than any real XMP; a hostile packet must not exhaust the stack
            return result
        for child in element:
            if child.tag == self._RDF_DESCRIPTION:
                result.update(self.structure(child, depth + 1))
            else:
                result[self.name(child.tag)] = self.value(child, depth + 1)
        return result

    def value(self, element: ET.Element, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            return None
        if self._RDF_RESOURCE in element.attrib:
            return element.attrib[self._RDF_RESOURCE].strip()
        children = list(element)
        if element.attrib.get(self._RDF_PARSE_TYPE) == "Resource":
            return self.structure(element, depth)
        if len(children) == 1 and children[0].tag in self._CONTAINERS:
            container = children[0]
            items = [self.value(item, depth + 1) for item in container if item.tag == self._RDF_LI]
            if container.tag.endswith("}Alt"):
                return self._alternative(container, items)
            return items
        if len(children) == 1 and children[0].tag == self._RDF_DESCRIPTION:
            inner = self.structure(children[0], depth + 1)
            return inner.get("rdf:value", inner) if self._RDF_VALUE in children[0].attrib else inner
        if children:
            return self.structure(element, depth)
        qualifiers = self.attributes(element)
        text = (element.text or "").strip()
        if qualifiers and not text:
            return qualifiers
        return text

    def _alternative(self, container: ET.Element, items: list[Any]) -> Any:
        for item, value in zip(container, items, strict=False):
            if item.attrib.get(self._XML_LANG) == "x-default":
                return value
        return items[0] if items else None

    def read(self, root: ET.Element) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        rdf_roots = [root] if root.tag == self._RDF else list(root.iter(self._RDF))
        # Only the Descriptions directly under rdf:RDF hold properties; nested ones are structure values.
        descriptions = [child for rdf in rdf_roots for child in rdf if child.tag == self._RDF_DESCRIPTION]
        for description in descriptions:
            for key, value in self.attributes(description).items():
                if len(properties) >= MAX_PROPERTIES:
                    return properties
                properties.setdefault(key, value)
            for child in description:
                if len(properties) >= MAX_PROPERTIES:
                    return properties
                if child.tag != self._RDF_DESCRIPTION:
                    properties.setdefault(self.name(child.tag), self.value(child))
        return properties


def _history(properties: dict[str, Any]) -> tuple[XmpHistoryEvent, ...]:
    raw = properties.get("xmpMM:History")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        return ()
    events = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        events.append(
            XmpHistoryEvent(
                action=flatten_text(entry.get("stEvt:action")),
                software_agent=flatten_text(entry.get("stEvt:softwareAgent")),
                when=flatten_text(entry.get("stEvt:when")),
                changed=flatten_text(entry.get("stEvt:changed")),
                parameters=flatten_text(entry.get("stEvt:parameters")),
            )
        )
    return tuple(events)


class _NextOccurrence:
    """Finds the next occurrence of a pattern at or after a position, for positions that only grow.

    The answer for one position stays valid for every later position up to it, so a scan that asks
    again and again from nearby positions reads the text once instead of once per question.
    """

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self.text = text
        self.pattern = pattern
        self.asked = len(text) + 1  # the last position asked about
        self.found: re.Match[str] | None = None  # the answer for it

    def at_or_after(self, position: int) -> re.Match[str] | None:
        stale = position < self.asked or (self.found is not None and self.found.start() < position)
        if stale:
            self.found = self.pattern.search(self.text, position)
        self.asked = position
        return self.found


def _without_doctype(text: str) -> str:
    """`text` with its ``<!DOCTYPE ...>`` declarations (internal subset ``[...]`` included) removed.

    Removes the same text as the former regular expression did, but where it scanned to the end of the
    text again for every unterminated declaration, each part of the text is searched once.
    """
    stops = _NextOccurrence(text, _DOCTYPE_STOP)
    subset_ends = _NextOccurrence(text, _DOCTYPE_SUBSET_END)
    kept: list[str] = []
    copied = position = 0
    while (start := text.find(_DOCTYPE_OPEN, position)) >= 0:
        stop = stops.at_or_after(start + len(_DOCTYPE_OPEN))
        if stop is None:
            break  # no ">" or "[" anywhere after: this and every later declaration is unterminated
        if stop.group() == ">":
            end = stop.end()
        else:
            subset_end = subset_ends.at_or_after(stop.end())
            if subset_end is None:
                position = start + 1
                continue
            end = subset_end.end()
        kept.append(text[copied:start])
        copied = position = end
    kept.append(text[copied:])
    return "".join(kept)


class _LooseScanner:
    """Reads ``prefix:Name="value"`` attributes and ``<prefix:Name ...>value</prefix:Name>`` elements
    from text that is not well-formed XML, left to right, in time linear in the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tag_ends = _NextOccurrence(text, re.compile(">"))
        self.tag_starts = _NextOccurrence(text, re.compile("<"))

    def attribute(self, start: int) -> tuple[str, str, int] | None:
        """``prefix:Name = "value"`` (or single quotes) starting at `start`: name, value, end."""
        match = _LOOSE_ATTRIBUTE.match(self.text, start)
        if match is None:
            return None
        value = match.group(2) if match.group(2) is not None else match.group(3)
        return match.group(1), value, match.end()

    def element(self, start: int) -> tuple[str, str, int] | None:
        """``<prefix:Name attributes>text</prefix:Name>`` starting at `start`: name, text, end."""
        text = self.text
        head = _LOOSE_ELEMENT_NAME.match(text, start)
        if head is None:
            return None
        name, name_end = head.group(1), head.end()
        if name_end < len(text) and text[name_end].isspace():
            tag_end = self.tag_ends.at_or_after(name_end + 1)
            if tag_end is None:
                return None
            content_start = tag_end.end()
        elif text.startswith(">", name_end):
            content_start = name_end + 1
        else:
            return None
        content_end = self.tag_starts.at_or_after(content_start)
        if content_end is None or content_end.start() == content_start:
            return None
        closing = _LOOSE_CLOSING.match(text, content_end.start())
        if closing is None or closing.group(1) != name:
            return None
        return name, text[content_start : content_end.start()], closing.end()

    def properties(self, limit: int) -> dict[str, str]:
        found: dict[str, str] = {}
        position = 0
        while len(found) < limit and (candidate := _LOOSE_START.search(self.text, position)):
            start = candidate.start()
            if self.text[start] == "<":
                match = self.element(start)
                resume = start + 1
            else:
                match = self.attribute(start)
                # Every later start inside this name reaches the same character and fails the same way.
                resume = _NAME_CHARS.match(self.text, start).end()
            if match is None:
                position = resume
                continue
            name, value, position = match
            value = value.strip()
            if value and not name.startswith(("xmlns:", "rdf:", "x:", "xml:")):
                found.setdefault(name, value)
        return found


def _loose_properties(packet: str) -> dict[str, Any]:
    """Simple properties of a packet that is not well-formed XML, at most `MAX_PROPERTIES` of them."""
    return _LooseScanner(packet).properties(MAX_PROPERTIES)


def _parse_tree(packet: str) -> tuple[ET.Element, dict[str, str]]:
    parser = ET.XMLPullParser(events=("start-ns", "end"))
    parser.feed(packet)
    parser.close()
    prefixes: dict[str, str] = {}
    root: ET.Element | None = None
    for event, payload in parser.read_events():
        if event == "start-ns":
            prefix, uri = payload
            prefixes.setdefault(uri, prefix)
        else:
            root = payload
    if root is None:
        raise ET.ParseError("no XML element found")
    return root, prefixes


@lru_cache(maxsize=32)
def parse_xmp(packet: str | bytes | None) -> XmpData:
    """Parse an XMP packet; never raises.

    Parameters
    ----------
    packet:
        The packet as text (bytes are decoded as UTF-8). Anything around the ``<x:xmpmeta>`` or
        ``<rdf:RDF>`` element (``<?xpacket?>`` wrappers, padding, binary junk) is ignored. At most
        `MAX_PROPERTIES` properties are read, nested at most `MAX_DEPTH` levels.

    Returns
    -------
    XmpData
        Properties by ``prefix:Name``; when the XML is malformed, whatever a lenient scan could read,
        with `error` saying why.

    Examples
    --------
    >>> parse_xmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
    ...     '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:xmp='
    ...     '"http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="GIMP 2.10"/></rdf:RDF></x:xmpmeta>'
    ... ).text("xmp:CreatorTool")
    'GIMP 2.10'
    """
    if not packet:
        return XmpData()
    try:
        return _parse_packet(decode_bytes(packet)[0] if isinstance(packet, bytes) else clean_text(packet)[0])
    except Exception:  # a parser of hostile text must never take the batch down
        return XmpData(error="the XMP packet has a structure that could not be read")


def _parse_packet(text: str) -> XmpData:
    if len(text) > _MAX_PACKET_CHARS:
        return XmpData(error=f"the XMP packet is implausibly large ({len(text)} characters) and was skipped")
    if "<!ENTITY" in text:
        return XmpData(error="the XMP packet declares XML entities, which XMP never needs; it was not parsed")
    fragment = _extract_packet(text)
    if fragment is None:
        return XmpData(error="the XMP text contains no <x:xmpmeta> or <rdf:RDF> element")
    if "<!" in fragment:
        fragment = _without_doctype(fragment)
    try:
        root, prefixes = _parse_tree(fragment)
        properties = _RdfReader(prefixes).read(root)
    except (ET.ParseError, ValueError, RecursionError) as exc:
        return XmpData(properties=_loose_properties(fragment), error=_xml_problem(exc), loose=True)
    return XmpData(properties=properties, history=_history(properties))


def _xml_problem(exc: Exception) -> str:
    """Why the XML parser rejected a packet, as a clause (expat's own short wording of the fault)."""
    code = getattr(exc, "code", None)
    position = getattr(exc, "position", None)
    if isinstance(exc, ET.ParseError) and isinstance(code, int) and isinstance(position, tuple):
        line, column = position
        fault = expat.ErrorString(code)
        return f"the XMP packet is not well-formed XML ({fault} at line {line}, column {column})"
    return "the XMP packet is not well-formed XML"


__all__ = [
    "MAX_DEPTH",
    "MAX_PROPERTIES",
    "STANDARD_PREFIXES",
    "XmpData",
    "XmpHistoryEvent",
    "flatten_text",
    "parse_xmp",
]
