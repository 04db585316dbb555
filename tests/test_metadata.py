"""EXIF / XMP / IPTC metadata evidence and the known-AI-tools table."""

from __future__ import annotations

import io
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import piexif
import piexif.helper
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from pixelsleuth.evidence.iptc import parse_iim, read_iptc_iim
from pixelsleuth.evidence.metadata import (
    decode_user_comment,
    load_tool_table,
    match_known_tools,
    metadata_evidence,
)
from pixelsleuth.evidence.record import POINTS_TO, Evidence
from pixelsleuth.evidence.xmp import parse_xmp
from pixelsleuth.intake import load_image
from pixelsleuth.intake.image import LoadedImage

# ------------------------------------------------------------------------------------------ fixtures


def _find_xmp_packet(data: bytes) -> str | None:
    match = re.search(rb"<x:xmpmeta.*?</x:xmpmeta>", data, re.DOTALL)
    return match.group(0).decode("utf-8", "replace") if match else None


def write_jpeg(
    path: Path, exif: dict | None = None, xmp: str | None = None, app13: bytes | None = None
) -> LoadedImage:
    buffer = io.BytesIO()
    options: dict = {"quality": 90}
    if exif is not None:
        options["exif"] = piexif.dump(exif)
    if xmp is not None:
        options["xmp"] = xmp.encode("utf-8")
    Image.new("RGB", (32, 24), (120, 90, 60)).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    if app13 is not None:
        data = data[:2] + app13 + data[2:]
    path.write_bytes(data)
    return load_image(path)


def xmp_packet(description_attributes: str = "", body: str = "", namespaces: str = "") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"\n'
        '    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"\n'
        '    xmlns:stRef="http://ns.adobe.com/xap/1.0/sType/ResourceRef#"\n'
        '    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f"    {namespaces} {description_attributes}>\n"
        f"{body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def iim_dataset(record: int, dataset: int, value: bytes) -> bytes:
    return bytes([0x1C, record, dataset]) + len(value).to_bytes(2, "big") + value


def app13_segment(iim_block: bytes) -> bytes:
    padding = b"\x00" if len(iim_block) % 2 else b""
    resource = b"8BIM" + (0x0404).to_bytes(2, "big") + b"\x00\x00" + len(iim_block).to_bytes(4, "big")
    payload = b"Photoshop 3.0\x00" + resource + iim_block + padding
    return b"\xff\xed" + (len(payload) + 2).to_bytes(2, "big") + payload


def of(evidence: list[Evidence], source: str | None = None, points_to: str | None = None) -> list[Evidence]:
    return [
        item
        for item in evidence
        if (source is None or item.source == source) and (points_to is None or item.points_to == points_to)
    ]


def assert_well_formed(evidence: list[Evidence]) -> None:
    for item in evidence:
        assert item.source in ("exif", "xmp", "iptc")
        assert item.points_to in POINTS_TO and 0.0 <= item.strength <= 1.0
        assert item.finding.endswith((".", ")")) and "\n" not in item.finding
        json.dumps(item.to_dict())  # data must be plain JSON


CAMERA_EXIF = {
    "0th": {
        piexif.ImageIFD.Make: b"Canon",
        piexif.ImageIFD.Model: b"Canon EOS R5",
        piexif.ImageIFD.DateTime: b"2024:05:03 18:30:00",
    },
    "Exif": {
        piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 09:15:00",
        piexif.ExifIFD.OffsetTimeOriginal: b"+02:00",
        piexif.ExifIFD.LensModel: b"RF24-105mm F4 L IS USM",
    },
    "GPS": {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2956, 100)),
        piexif.GPSIFD.GPSLongitudeRef: b"E",
        piexif.GPSIFD.GPSLongitude: ((2, 1), (17, 1), (4020, 100)),
    },
}


# --------------------------------------------------------------------------------------------- EXIF


def test_camera_jpeg_is_weakly_authentic_and_gps_is_noted_without_coordinates(tmp_path: Path) -> None:
    evidence = metadata_evidence(write_jpeg(tmp_path / "camera.jpg", exif=CAMERA_EXIF))
    assert_well_formed(evidence)

    camera = of(evidence, "exif", "authentic")
    assert len(camera) == 1
    assert 0.1 <= camera[0].strength <= 0.3
    assert "Canon EOS R5" in camera[0].finding and "forged" in camera[0].finding
    assert camera[0].data["lens"] == "RF24-105mm F4 L IS USM"

    gps = [item for item in evidence if "GPS" in item.finding]
    assert len(gps) == 1 and gps[0].points_to == "none"
    assert gps[0].data["latitude"] == pytest.approx(48.86, abs=0.005)
    assert gps[0].data["longitude"] == pytest.approx(2.29, abs=0.005)
    assert not re.search(r"\d+\.\d+", gps[0].finding)  # no coordinates in the sentence

    dates = [item for item in evidence if "modified" in item.finding]
    assert len(dates) == 1 and dates[0].points_to == "none" and dates[0].strength == 0
    assert dates[0].data["modified_after_capture_seconds"] > 0
    assert not of(evidence, points_to="ai-generated")


def test_no_metadata_gives_one_informative_line(tmp_path: Path) -> None:
    evidence = metadata_evidence(write_jpeg(tmp_path / "bare.jpg"))
    assert len(evidence) == 1
    assert evidence[0].points_to == "none" and evidence[0].strength == 0
    assert "no EXIF" in evidence[0].finding


@pytest.mark.parametrize("software", ["Adobe Firefly", "Midjourney v6", "DALL·E 3", "Fooocus v2.5.5"])
def test_exif_software_naming_an_ai_generator_points_to_ai(tmp_path: Path, software: str) -> None:
    exif = {"0th": {piexif.ImageIFD.Software: software.encode("utf-8")}}
    evidence = metadata_evidence(write_jpeg(tmp_path / "ai.jpg", exif=exif))
    assert_well_formed(evidence)
    ai = of(evidence, "exif", "ai-generated")
    assert len(ai) == 1
    assert 0.7 <= ai[0].strength <= 0.85
    assert ai[0].data["kind"] == "generator"
    assert ai[0].data["seen_in"][0]["field"] == "exif/Software"


def test_exif_software_naming_an_editor_is_weak_manipulation(tmp_path: Path) -> None:
    exif = {"0th": {piexif.ImageIFD.Software: b"GIMP 2.10.36"}}
    evidence = metadata_evidence(write_jpeg(tmp_path / "gimp.jpg", exif=exif))
    edited = of(evidence, "exif", "manipulated")
    assert len(edited) == 1 and edited[0].data["tool"] == "GIMP"
    assert 0.1 <= edited[0].strength <= 0.2
    assert "not proof" in edited[0].finding


def test_user_comment_charsets_are_decoded() -> None:
    text = "Café — 写真"
    assert decode_user_comment(piexif.helper.UserComment.dump(text, encoding="unicode")) == text
    little_endian = b"UNICODE\x00" + text.encode("utf-16-le")
    assert decode_user_comment(little_endian) == text
    assert decode_user_comment(b"ASCII\x00\x00\x00plain words\x00\x00") == "plain words"
    assert decode_user_comment(b"\x00" * 8 + "naïve".encode()) == "naïve"
    assert decode_user_comment(b"no header at all") == "no header at all"
    assert decode_user_comment(None) == ""


def test_user_comment_is_reported_as_text_field(tmp_path: Path) -> None:
    comment = piexif.helper.UserComment.dump("Holiday in Lyon, 2023", encoding="unicode")
    exif = {"0th": {piexif.ImageIFD.Artist: b"Jane Doe"}, "Exif": {piexif.ExifIFD.UserComment: comment}}
    evidence = metadata_evidence(write_jpeg(tmp_path / "comment.jpg", exif=exif))
    fields = [item for item in evidence if item.finding.startswith("EXIF text fields")]
    assert fields and fields[0].data["UserComment"] == "Holiday in Lyon, 2023"
    assert fields[0].data["Artist"] == "Jane Doe"


def test_malformed_exif_does_not_raise() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    for raw in (
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff",
        b"Exif\x00\x00garbage",
        b"II*\x00" + b"\xff" * 40,
    ):
        image = LoadedImage(None, b"", "", "JPEG", rgb, "RGB", 8, exif=raw)
        evidence = metadata_evidence(image)
        assert_well_formed(evidence)
        assert all(item.points_to == "none" for item in evidence)


# ---------------------------------------------------------------------------------------------- XMP


def test_xmp_creator_tool_midjourney_points_to_ai(tmp_path: Path) -> None:
    packet = xmp_packet('xmp:CreatorTool="Midjourney"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "mj.jpg", xmp=packet))
    assert_well_formed(evidence)
    ai = of(evidence, "xmp", "ai-generated")
    assert len(ai) == 1 and ai[0].data["tool"] == "Midjourney"
    assert ai[0].strength >= 0.7


def test_xmp_and_exif_naming_the_same_tool_give_one_evidence(tmp_path: Path) -> None:
    exif = {"0th": {piexif.ImageIFD.Software: b"Adobe Firefly"}}
    packet = xmp_packet('xmp:CreatorTool="Adobe Firefly"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "ff.jpg", exif=exif, xmp=packet))
    ai = of(evidence, points_to="ai-generated")
    assert len(ai) == 1
    assert {seen["field"] for seen in ai[0].data["seen_in"]} == {"exif/Software", "xmp/xmp:CreatorTool"}


GENERATIVE_FILL_HISTORY_ATTRIBUTES = """
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li stEvt:action="created" stEvt:when="2024-03-01T10:00:00+01:00"
        stEvt:softwareAgent="Adobe Photoshop 25.5 (Windows)"/>
     <rdf:li stEvt:action="saved" stEvt:when="2024-03-01T10:05:00+01:00"
        stEvt:softwareAgent="Adobe Photoshop 25.5 (Windows)" stEvt:changed="/"
        stEvt:parameters="Generative Fill"/>
    </rdf:Seq>
   </xmpMM:History>"""

GENERATIVE_FILL_HISTORY_ELEMENTS = """
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <stEvt:action>created</stEvt:action>
      <stEvt:softwareAgent>Adobe Photoshop 25.5 (Macintosh)</stEvt:softwareAgent>
     </rdf:li>
     <rdf:li>
      <rdf:Description>
       <stEvt:action>saved</stEvt:action>
       <stEvt:softwareAgent>Adobe Photoshop 25.5 (Macintosh)</stEvt:softwareAgent>
       <stEvt:parameters>Generative Fill</stEvt:parameters>
       <stEvt:changed>/</stEvt:changed>
      </rdf:Description>
     </rdf:li>
    </rdf:Seq>
   </xmpMM:History>"""


@pytest.mark.parametrize("history", [GENERATIVE_FILL_HISTORY_ATTRIBUTES, GENERATIVE_FILL_HISTORY_ELEMENTS])
def test_photoshop_history_with_generative_fill_is_an_ai_edit(tmp_path: Path, history: str) -> None:
    packet = xmp_packet('xmp:CreatorTool="Adobe Photoshop 25.5"', body=history)
    evidence = metadata_evidence(write_jpeg(tmp_path / "gf.jpg", xmp=packet))
    assert_well_formed(evidence)
    edits = of(evidence, "xmp", "manipulated")
    ai_edit = [item for item in edits if item.data.get("kind") == "ai-editor"]
    assert len(ai_edit) == 1 and ai_edit[0].strength >= 0.5
    assert "Generative Fill" in ai_edit[0].finding
    history_line = [item for item in evidence if "edit history lists 2 steps" in item.finding]
    assert history_line and history_line[0].data["events"][1]["parameters"] == "Generative Fill"
    assert not of(evidence, points_to="ai-generated")


def test_xmp_google_ai_credit_and_derivation(tmp_path: Path) -> None:
    body = (
        "   <photoshop:Credit>Made with Google AI</photoshop:Credit>\n"
        '   <xmpMM:DerivedFrom stRef:documentID="xmp.did:1234" stRef:instanceID="xmp.iid:99"/>'
    )
    evidence = metadata_evidence(write_jpeg(tmp_path / "g.jpg", xmp=xmp_packet(body=body)))
    ai = of(evidence, "xmp", "ai-generated")
    assert len(ai) == 1 and ai[0].data["vendor"] == "Google"
    derived = [item for item in evidence if "DerivedFrom" in item.finding]
    assert derived and "xmp.did:1234" in derived[0].data["derived_from"]


def test_ai_system_used_field_points_to_ai(tmp_path: Path) -> None:
    packet = xmp_packet('Iptc4xmpExt:AISystemUsed="Acme Dreamer 3" Iptc4xmpExt:AIPromptInformation="a cat"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "sys.jpg", xmp=packet))
    ai = of(evidence, "xmp", "ai-generated")
    assert len(ai) == 1 and ai[0].data["ai_system"] == "Acme Dreamer 3" and ai[0].data["prompt"] == "a cat"


def _fake_c2pa(monkeypatch: pytest.MonkeyPatch) -> None:
    table = {
        "trainedAlgorithmicMedia": {
            "label": "trainedAlgorithmicMedia",
            "meaning": "was created by a trained AI model",
            "points_to": "ai-generated",
            "strength": 0.95,
        }
    }
    module = types.ModuleType("pixelsleuth.evidence.c2pa")
    module.digital_source_type = lambda value: table.get(str(value).rstrip("/").rsplit("/", 1)[-1])
    monkeypatch.setitem(sys.modules, "pixelsleuth.evidence.c2pa", module)


DST_URL = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


@pytest.mark.parametrize(
    "packet",
    [
        xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST_URL}"'),
        xmp_packet(body=f"   <Iptc4xmpExt:DigitalSourceType>{DST_URL}</Iptc4xmpExt:DigitalSourceType>"),
        # A different prefix for the same namespace, and the property in the PLUS namespace.
        xmp_packet(namespaces='xmlns:ext="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"')
        .replace('xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"', "")
        .replace(
            '<rdf:Description rdf:about=""',
            f'<rdf:Description rdf:about="" ext:DigitalSourceType="{DST_URL}"',
        ),
        xmp_packet(
            f'plus:DigitalSourceType="{DST_URL}"',
            namespaces='xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"',
        ),
    ],
)
def test_digital_source_type_with_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packet: str
) -> None:
    _fake_c2pa(monkeypatch)
    evidence = metadata_evidence(write_jpeg(tmp_path / "dst.jpg", xmp=packet))
    ai = of(evidence, "xmp", "ai-generated")
    assert len(ai) == 1
    assert 0.8 <= ai[0].strength <= 0.85  # below a signed manifest's 0.95
    assert "unsigned" in ai[0].finding.lower() and ai[0].data["term"] == "trainedAlgorithmicMedia"


def test_digital_source_type_with_the_real_c2pa_table(tmp_path: Path) -> None:
    c2pa = pytest.importorskip("pixelsleuth.evidence.c2pa")
    if not hasattr(c2pa, "digital_source_type"):
        pytest.skip("the c2pa source does not expose digital_source_type yet")
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST_URL}"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "dst.jpg", xmp=packet))
    ai = of(evidence, "xmp", "ai-generated")
    assert len(ai) == 1 and 0.7 <= ai[0].strength <= 0.85
    # An unsigned claim of a camera capture is what a forger would write: it stays weak.
    capture = xmp_packet('Iptc4xmpExt:DigitalSourceType="digitalCapture"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "capture.jpg", xmp=capture))
    authentic = of(evidence, "xmp", "authentic")
    assert len(authentic) == 1 and authentic[0].strength <= 0.2


def test_unknown_digital_source_type_is_informative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_c2pa(monkeypatch)
    packet = xmp_packet('Iptc4xmpExt:DigitalSourceType="http://example.org/madeUpTerm"')
    evidence = metadata_evidence(write_jpeg(tmp_path / "unknown.jpg", xmp=packet))
    declared = [item for item in evidence if "madeUpTerm" in item.finding]
    assert len(declared) == 1 and declared[0].points_to == "none" and declared[0].strength == 0


def test_xmp_in_png_itxt_and_junk_around_the_packet(tmp_path: Path) -> None:
    info = PngInfo()
    junk = "\x00\x01garbage<<" + xmp_packet('xmp:CreatorTool="Draw Things"') + "trailing \x00 junk"
    info.add_itxt("XML:com.adobe.xmp", junk)
    path = tmp_path / "dt.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    evidence = metadata_evidence(load_image(path))
    assert [item.data["tool"] for item in of(evidence, "xmp", "ai-generated")] == ["Draw Things"]


def test_malformed_xmp_is_read_leniently_and_never_raises() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    broken = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description xmp:CreatorTool="Midjourney">'
    evidence = metadata_evidence(LoadedImage(None, b"", "", "PNG", rgb, "RGB", 8, xmp=broken))
    assert_well_formed(evidence)
    assert any("could not be read" in item.finding for item in evidence)
    assert of(evidence, "xmp", "ai-generated")  # the lenient scan still finds the tool
    for junk in ("", "not xml at all", "<x:xmpmeta>", "<rdf:RDF><<<>>>", "\x00" * 64):
        assert_well_formed(metadata_evidence(LoadedImage(None, b"", "", "PNG", rgb, "RGB", 8, xmp=junk)))


def test_xmp_declaring_entities_is_refused() -> None:
    bomb = (
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&b;</dc:title>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    parsed = parse_xmp(bomb)
    assert parsed.error and "entities" in parsed.error
    assert not parsed.properties


def test_parse_xmp_reads_language_alternatives_and_bags() -> None:
    body = (
        '<dc:description><rdf:Alt><rdf:li xml:lang="fr">Un chat</rdf:li>'
        '<rdf:li xml:lang="x-default">A cat</rdf:li></rdf:Alt></dc:description>'
        "<dc:creator><rdf:Seq><rdf:li>Ann</rdf:li><rdf:li>Bob</rdf:li></rdf:Seq></dc:creator>"
    )
    parsed = parse_xmp(xmp_packet(body=body))
    assert parsed.error is None
    assert parsed.get("dc:description") == "A cat"
    assert parsed.get("dc:creator") == ["Ann", "Bob"]
    assert parsed.text("dc:creator") == "Ann; Bob"


# --------------------------------------------------------------------------------------------- IPTC


def test_iptc_iim_by_line_and_credit_built_byte_by_byte(tmp_path: Path) -> None:
    block = (
        iim_dataset(1, 90, b"\x1b%G")
        + iim_dataset(2, 0, b"\x00\x04")
        + iim_dataset(2, 80, "Zoë Photographer".encode())
        + iim_dataset(2, 110, b"Made with Google AI")
        + iim_dataset(2, 116, b"(c) 2024 Example Ltd")
        + iim_dataset(2, 120, b"A harbour at dusk")
    )
    image = write_jpeg(tmp_path / "iptc.jpg", app13=app13_segment(block))
    iptc = read_iptc_iim(image.data)
    assert iptc.error is None
    assert iptc.first(2, 80) == "Zoë Photographer"
    assert iptc.named()["credit"] == ["Made with Google AI"]

    evidence = metadata_evidence(image)
    assert_well_formed(evidence)
    ai = of(evidence, "iptc", "ai-generated")
    assert len(ai) == 1 and ai[0].data["seen_in"][0]["field"] == "iptc/2:110"
    listed = [item for item in evidence if item.finding.startswith("IPTC-IIM fields present")]
    assert listed and listed[0].data["by-line"] == ["Zoë Photographer"]


def test_iptc_originating_program_editor_and_extended_length() -> None:
    long_caption = b"x" * 70000
    extended = bytes([0x1C, 2, 120, 0x80, 0x04]) + len(long_caption).to_bytes(4, "big") + long_caption
    block = iim_dataset(2, 65, b"Adobe Photoshop") + extended
    parsed = parse_iim(block)
    assert parsed.first(2, 65) == "Adobe Photoshop"
    assert parsed.first(2, 120) == long_caption.decode()
    matches = match_known_tools([("iptc/2:65", "Adobe Photoshop")])
    assert [match.tool.name for match in matches] == ["Adobe Photoshop"]


def test_damaged_iptc_is_reported_not_raised() -> None:
    truncated = iim_dataset(2, 80, b"Someone")[:-3]
    assert parse_iim(truncated).error is not None
    data = b"\xff\xd8" + app13_segment(iim_dataset(2, 80, b"ok") + b"\x1c\x02") + b"\xff\xda\x00\x02"
    assert read_iptc_iim(data).first(2, 80) == "ok"
    assert read_iptc_iim(b"\xff\xd8\xff\xed\x00").datasets == {}
    assert read_iptc_iim(None).datasets == {}


# -------------------------------------------------------------------------------------------- table

REQUIRED_TOOLS = (
    "Adobe Firefly",
    "Generative Fill",
    "DALL",
    "Midjourney",
    "Google AI",
    "SynthID",
    "Microsoft Designer",
    "Meta AI",
    "Leonardo",
    "Ideogram",
    "AUTOMATIC1111",
    "Forge",
    "ComfyUI",
    "InvokeAI",
    "Fooocus",
    "NovelAI",
    "Draw Things",
    "DiffusionBee",
    "SD.Next",
    "Easy Diffusion",
    "NMKD",
    "Runway",
    "Canva Magic Media",
    "Krea",
    "FLUX",
    "Grok",
    "Adobe Photoshop",
    "Lightroom",
    "GIMP",
    "Affinity Photo",
    "Pixelmator",
    "Snapseed",
    "Paint.NET",
    "Capture One",
    "Picasa",
)


def test_tool_table_is_complete_and_consistent() -> None:
    table = load_tool_table()
    names = " | ".join(tool.name for tool in table.tools)
    for required in REQUIRED_TOOLS:
        assert required in names, required
    for tool in table.tools:
        assert tool.kind in ("generator", "ai-editor", "editor")
        assert tool.points_to == {"generator": "ai-generated"}.get(tool.kind, "manipulated")
        assert 0 < tool.strength <= 0.85 and tool.patterns and tool.fields and tool.note
        if tool.kind == "editor":
            assert tool.strength <= 0.2
    assert table.field_class["exif/Software"] == "software"


@pytest.mark.parametrize(
    ("field", "text", "expected"),
    [
        ("exif/Software", "Adobe Photoshop Lightroom Classic 13.2 (Windows)", ["Adobe Lightroom"]),
        ("exif/Software", "Adobe Photoshop 25.0 (Macintosh)", ["Adobe Photoshop"]),
        ("xmp/stEvt:parameters", "Generative Fill", ["Adobe Photoshop Generative Fill / Expand"]),
        ("xmp/photoshop:Credit", "Edited with Google AI", ["Google Photos AI editing"]),
        ("exif/Software", "Aurora HDR 2019", []),
        ("exif/Software", "f.lux", []),
        ("iptc/2:120", "Runway at Heathrow airport", []),  # a caption, not a software field
        ("exif/Software", "Ver.1.00", []),
        ("unknown/field", "Midjourney", []),
    ],
)
def test_tool_patterns(field: str, text: str, expected: list[str]) -> None:
    assert [match.tool.name for match in match_known_tools([(field, text)])] == expected


# -------------------------------------------------------------------------------------------- fuzz


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    exif=st.one_of(st.none(), st.binary(max_size=200).map(lambda b: b"Exif\x00\x00" + b)),
    xmp=st.one_of(st.none(), st.text(max_size=300)),
    header=st.binary(max_size=300),
)
def test_metadata_evidence_never_raises(exif: bytes | None, xmp: str | None, header: bytes) -> None:
    image = LoadedImage(None, b"\xff\xd8" + header, "", "JPEG", np.zeros((2, 2, 3), np.uint8), "RGB", 8)
    image.exif, image.xmp = exif, xmp
    assert_well_formed(metadata_evidence(image))
