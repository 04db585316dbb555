"""Hostile text and headers for every evidence parser: linear time, no exceptions, readable messages.

Three kinds of test:

* Baits of about 1 MB for each pattern that used to take quadratic time (hours at this size). They
  assert what the parser reads, never how long it takes: with the old code they would simply hang.
* Differential checks on short strings: each linear scanner reads exactly what the regular expression
  it replaced read (the old patterns are kept here as the reference).
* Property-based fuzzing of every evidence source with mutated headers and text: it never raises,
  returns Evidence whose strings all encode as UTF-8, and whose messages are sentences for a person,
  not exception names or library text.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import c2pa
import numpy as np
import piexif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from c2pa_certs import make_es256_signing_material
from imagegen import encode, photo_like_rgb, png_chunk
from pixelsleuth.evidence import PROVENANCE_SOURCES, load_source
from pixelsleuth.evidence.c2pa import c2pa_evidence
from pixelsleuth.evidence.camera import camera_evidence
from pixelsleuth.evidence.exif import parse_exif
from pixelsleuth.evidence.generator_text import (
    MAX_SETTINGS,
    a1111_settings,
    find_generation_records,
    generator_text_evidence,
    parse_a1111_parameters,
    parse_dream_command,
)
from pixelsleuth.evidence.iptc import MAX_DATASETS, parse_iim, read_iptc_iim
from pixelsleuth.evidence.metadata import metadata_evidence
from pixelsleuth.evidence.quant_tables import _without_parentheses, camera_key
from pixelsleuth.evidence.record import Evidence
from pixelsleuth.evidence.watermark import watermark_evidence
from pixelsleuth.evidence.xmp import MAX_PROPERTIES, _loose_properties, _without_doctype, parse_xmp
from pixelsleuth.intake import IntakeLimits, load_image
from pixelsleuth.intake.image import JpegInfo, LoadedImage
from pixelsleuth.intake.jpeg import header_segments

BAIT_CHARS = 1_000_000


def fuzz(examples: int) -> settings:
    """Deterministic Hypothesis settings: the same examples on every run, no saved database."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# What an exception or a library's own error text looks like inside a message meant for a person.
LEAKED_ERROR = re.compile(
    r"\b[A-Z]\w*(?:Error|Exception|Warning)\b|Traceback|unpack_from|index out of range|codec can't"
    r"|object has no attribute|NoneType|invalid literal for|not enough values to unpack"
)

XMP_HEAD = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
)
XMP_TAIL = "</rdf:RDF></x:xmpmeta>"


# ------------------------------------------------------------------------------------------- helpers


def image_with(**fields: Any) -> LoadedImage:
    """A LoadedImage carrying only what a test gives it (tiny black pixels unless `rgb` is given)."""
    rgb = fields.pop("rgb", np.zeros((2, 2, 3), np.uint8))
    fmt = fields.pop("format", "PNG")
    data = fields.pop("data", b"")
    return LoadedImage(None, data, "", fmt, rgb, "RGB", 8, **fields)


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


def assert_sane(evidence: Any) -> list[Evidence]:
    """Evidence a report can store and a person can read, whatever the file held."""
    assert isinstance(evidence, list)
    for item in evidence:
        assert isinstance(item, Evidence)
        for text in (item.source, item.finding, item.detail, *strings_in(item.data)):
            text.encode("utf-8")
        for message in (item.finding, item.detail):
            assert not LEAKED_ERROR.search(message), message
        json.dumps(item.to_dict())
    return evidence


def exif_with(zeroth: dict[int, Any] | None = None, exif: dict[int, Any] | None = None) -> bytes:
    """A raw EXIF block (``Exif\\0\\0`` + TIFF) holding the given IFD0 and Exif sub-IFD tags."""
    return piexif.dump({"0th": zeroth or {}, "Exif": exif or {}})


def user_comment_exif(comment: str) -> bytes:
    return exif_with(exif={piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00" + comment.encode("ascii")})


def jpeg_with_segments(*segments: tuple[int, bytes]) -> bytes:
    """A small real JPEG with extra marker segments inserted right after SOI."""
    jpeg = encode(photo_like_rgb(16, 16), "JPEG", quality=90)
    extra = b"".join(
        b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body for marker, body in segments
    )
    return jpeg[:2] + extra + jpeg[2:]


def iptc_app13(datasets: list[tuple[int, int, bytes]]) -> bytes:
    """APP13 payload: Photoshop 3.0 image resource 0x0404 holding IIM datasets."""
    iim = b"".join(
        b"\x1c" + bytes([record, dataset]) + struct.pack(">H", len(value)) + value
        for record, dataset, value in datasets
    )
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    return b"Photoshop 3.0\x00" + resource + (b"\x00" if len(iim) % 2 else b"")


# -------------------------------------------------------------------------- ~1 MB quadratic baits


def test_a1111_key_without_colon_in_parameters_chunk() -> None:
    # "a a a ..." looks like the start of one long settings key that never reaches its colon.
    image = image_with(text_chunks={"parameters": "a " * (BAIT_CHARS // 2)})
    records, problems = find_generation_records(image)
    assert records == []
    assert problems == ["PNG text chunk 'parameters' has no recognisable generation settings"]
    evidence = assert_sane(generator_text_evidence(image))
    assert [item.points_to for item in evidence] == ["none"]


def test_a1111_bait_after_a_real_settings_line_start() -> None:
    text = "a castle\nSteps: 20, Seed: 7, " + "a " * (BAIT_CHARS // 2)
    record = parse_a1111_parameters(text)
    assert record is not None
    assert (record.prompt, record.steps, record.seed) == ("a castle", 20, 7)


def test_a1111_many_settings_are_capped() -> None:
    line = "Steps: 20, " + ", ".join(f"Key{i}: {i}" for i in range(BAIT_CHARS // 16))
    pairs = a1111_settings(line)
    assert len(pairs) == MAX_SETTINGS and pairs[:2] == [("Steps", "20"), ("Key0", "0")]


def test_a1111_bait_in_exif_user_comment() -> None:
    image = image_with(exif=user_comment_exif("x Steps: " + "a " * (BAIT_CHARS // 2)))
    assert assert_sane(generator_text_evidence(image)) == []
    evidence = assert_sane(metadata_evidence(image))
    comment = [item for item in evidence if "UserComment" in item.data]
    assert len(comment) == 1 and comment[0].data["UserComment"].startswith("x Steps: a a")


def test_a1111_bait_in_jpeg_comment_segments() -> None:
    # JPEG comments are at most 64 kB each; a file may carry many, and intake joins them.
    line = ("x Steps: " + "a " * 32_700).encode("ascii")
    data = jpeg_with_segments(*[(0xFE, line)] * 15)
    image = load_image(data, limits=IntakeLimits(max_file_bytes=2_000_000))
    assert assert_sane(generator_text_evidence(image)) == []


def test_a1111_bait_in_xmp_user_comment() -> None:
    bait = "x Steps: " + "a " * (BAIT_CHARS // 2)
    packet = (
        XMP_HEAD
        + '<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/"><exif:UserComment>'
        + bait
        + "</exif:UserComment></rdf:Description>"
        + XMP_TAIL
    )
    assert assert_sane(generator_text_evidence(image_with(xmp=packet))) == []


def test_midjourney_job_id_after_long_white_space() -> None:
    text = "x" + " " * BAIT_CHARS + "Job ID: not-a-uuid"
    assert find_generation_records(image_with(text_chunks={"Description": text})) == ([], [])


def test_dream_command_with_one_huge_token_is_capped() -> None:
    record = parse_dream_command("a" * BAIT_CHARS + " -s 50")
    assert record is None  # the options lie beyond the part that is read


def test_bracketed_negative_after_long_white_space() -> None:
    meta = {"app_id": "invoke-ai", "image": {"prompt": "a" + " " * BAIT_CHARS + "b [ugly]", "seed": 1}}
    image = image_with(text_chunks={"sd-metadata": json.dumps(meta)})
    (record,), _ = find_generation_records(image)
    assert record.negative_prompt == "ugly" and record.prompt.startswith("a") and record.prompt.endswith("b")


def test_xmp_unterminated_doctype_white_space() -> None:
    parsed = parse_xmp(XMP_HEAD + "<!DOCTYPE" + " " * BAIT_CHARS)
    assert parsed.properties == {} and parsed.loose
    assert parsed.error and parsed.error.startswith("the XMP packet is not well-formed XML")


def test_xmp_many_unterminated_doctype_subsets() -> None:
    parsed = parse_xmp(XMP_HEAD + "<!DOCTYPE[" * (BAIT_CHARS // 10))
    assert parsed.properties == {} and parsed.loose
    evidence = assert_sane(metadata_evidence(image_with(xmp=XMP_HEAD + "<!DOCTYPE[" * (BAIT_CHARS // 10))))
    assert any(item.source == "xmp" and "could not be read" in item.finding for item in evidence)


def test_xmp_loose_scan_of_dotted_words() -> None:
    # Each "a" after a "." may start a `prefix:Name` that never reaches its colon.
    parsed = parse_xmp(XMP_HEAD + "<broken " + "a." * (BAIT_CHARS // 2))
    assert parsed.properties == {} and parsed.loose


def test_xmp_loose_scan_of_unclosed_elements() -> None:
    parsed = parse_xmp(XMP_HEAD + "<a:b " * (BAIT_CHARS // 5) + 'dc:title="kept"')
    assert parsed.loose and parsed.properties == {"dc:title": "kept"}


def test_xmp_loose_scan_through_generator_text() -> None:
    packet = XMP_HEAD + "<a:b Steps: " * (BAIT_CHARS // 12)
    assert assert_sane(generator_text_evidence(image_with(xmp=packet))) == []


def test_xmp_loose_properties_are_capped() -> None:
    packet = "".join(f'p:k{i}="v" ' for i in range(MAX_PROPERTIES + 100))
    assert len(_loose_properties(packet)) == MAX_PROPERTIES


def test_camera_model_with_unclosed_parentheses() -> None:
    model = "EOS (" * (BAIT_CHARS // 5)
    assert camera_key("Canon", model) == "canon|" + " ".join(["eos"] * (BAIT_CHARS // 5))
    image = image_with(
        exif=exif_with(zeroth={piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: model.encode()})
    )
    assert_sane(camera_evidence(image))
    assert_sane(metadata_evidence(image))


def test_iptc_block_with_too_many_datasets_is_capped() -> None:
    block = b"\x1c\x02\x19\x00\x01k" * (MAX_DATASETS + 10)
    parsed = parse_iim(block)
    assert parsed.error and str(MAX_DATASETS) in parsed.error
    assert len(parsed.datasets["2:25"]) == MAX_DATASETS


# ------------------------------------------------ linear scanners read what the old patterns read

OLD_A1111_PARAM = re.compile(r'\s*([A-Za-z][\w \-/.()+]*?)\s*:\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
OLD_DOCTYPE = re.compile(r"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.DOTALL)
OLD_LOOSE_PROPERTY = re.compile(
    r"""\b([A-Za-z][\w.-]*:[A-Za-z][\w.-]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')"""
    r"""|<([A-Za-z][\w.-]*:[A-Za-z][\w.-]*)(?:\s[^>]*)?>([^<]+)</\4\s*>"""
)
OLD_PARENTHESES = re.compile(r"\(.*?\)")


def old_loose_properties(packet: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in OLD_LOOSE_PROPERTY.finditer(packet):
        if match.group(1):
            name, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        else:
            name, value = match.group(4), match.group(5)
        if not name.startswith(("xmlns:", "rdf:", "x:", "xml:")) and value.strip():
            found.setdefault(name, value.strip())
    return found


def pieces(*choices: str, max_size: int = 16) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(choices), max_size=max_size).map("".join)


@fuzz(1500)
@given(pieces(*'aZ9_é ,:"\\\t\r\x0b-/.()+x\u2028#', "Steps:", ', "', max_size=30))
def test_settings_scanner_reads_what_the_old_pattern_read(line: str) -> None:
    expected = [(key.strip(), value) for key, value in OLD_A1111_PARAM.findall(line)]
    assert a1111_settings(line) == expected


@fuzz(1000)
@given(pieces("<!DOCTYPE", "<!DOCTYPE x [", "[", "]", "]>", ">", " ", "\n", "x", "\x1c"))
def test_doctype_removal_matches_the_old_pattern(text: str) -> None:
    assert _without_doctype(text) == OLD_DOCTYPE.sub("", text)


@fuzz(1500)
@given(
    pieces(
        "<", ">", "</", "a", "b:c", "dc:title", "=", '"', "'", " ", "\t", "\x1c", ".", "-", "é", "1", "rdf:li"
    )
)
def test_loose_scan_matches_the_old_pattern(text: str) -> None:
    assert list(_loose_properties(text).items()) == list(old_loose_properties(text).items())


@fuzz(500)
@given(pieces("(", ")", "a", " ", "\n", "EOS", max_size=20))
def test_parenthesis_removal_matches_the_old_pattern(model: str) -> None:
    assert _without_parentheses(model) == OLD_PARENTHESES.sub(" ", model)


# ------------------------------------------------------------------------- mutation strategies

# Fragments that stress parsers: JSON structure, lone-surrogate escapes, XML syntax, huge numbers.
HOSTILE_SNIPPETS = (
    '"', "{", "}", "[", "]", ",", ":", "\\", "\\udc80", "\\ud800\\u0041", '"\\udfff"', "\\u0000",
    "Steps:", "Negative prompt:", "Job ID:", " -s ", "\n", "\r\n", "\x00", "é", "\U0001f600", "\ufffd",
    "1e999", "-1", "NaN", "null", "9" * 40, " " * 200, "<", ">", "</", "<!DOCTYPE x [", "]>",
    "<!ENTITY a 'b'>", "&amp;", "&#xD800;", "&undefined;", 'xmlns:q="u"', 'rdf:parseType="Resource"',
    "<rdf:li>", "</rdf:li>", "(", ")",
)  # fmt: skip


ANY_CHARACTER = st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf", "Cs"])


@st.composite
def mutated_text(draw: st.DrawFn, seeds: tuple[str, ...]) -> str:
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        offset = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "insert", "truncate", "delete", "text"]))
        if kind == "insert":
            snippet = draw(st.sampled_from(HOSTILE_SNIPPETS)) * draw(st.integers(1, 3))
            text = text[:offset] + snippet + text[offset:]
        elif kind == "truncate":
            text = text[:offset]
        elif kind == "delete":
            text = text[:offset] + text[offset + draw(st.integers(1, 40)) :]
        else:  # any code point, lone surrogates included (intake cleans them, but not every caller)
            text = text[:offset] + draw(st.text(ANY_CHARACTER, max_size=12)) + text[offset:]
    return text


BYTE_MUTATIONS = ("flip", "offset", "insert", "delete", "truncate")


@st.composite
def mutated_bytes(
    draw: st.DrawFn,
    data: bytes,
    start: int = 0,
    end: int | None = None,
    kinds: tuple[str, ...] = BYTE_MUTATIONS,
) -> bytes:
    """`data` with a few flips, insertions, deletions or 4-byte offset overwrites in [start, end)."""
    buffer = bytearray(data)
    end = len(buffer) if end is None else end
    for _ in range(draw(st.integers(1, 4))):
        if end <= start or start >= len(buffer):
            break
        offset = draw(st.integers(start, min(end, len(buffer)) - 1))
        kind = draw(st.sampled_from(kinds))
        if kind == "flip":
            buffer[offset] ^= draw(st.integers(1, 255))
        elif kind == "offset":  # point a pointer back at the first directory, at itself, or far away
            value = draw(st.sampled_from([0, 8, offset, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            buffer[offset : offset + 4] = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
        elif kind == "insert":
            buffer[offset:offset] = draw(st.binary(min_size=1, max_size=16))
            end += 1
        elif kind == "delete":
            del buffer[offset : offset + draw(st.integers(1, 16))]
        else:
            del buffer[offset:]
    return bytes(buffer)


# -------------------------------------------------------------------------------- generator text

A1111_TEXT = (
    "portrait of an astronaut, (masterpiece:1.2)\nNegative prompt: blurry\n"
    'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Lora hashes: "a: 1, b: 2", '
    "Version: v1.9.4"
)
# The lone surrogate in node 6 reaches the file as the JSON escape "\ud83d" (json.dumps writes ASCII).
COMFY_PROMPT = json.dumps(
    {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 5,
                "steps": 20,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat \ud83d", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }
)
COMFY_WORKFLOW = json.dumps(
    {
        "nodes": [
            {"id": 3, "type": "KSampler", "widgets_values": [5, "fixed", 20, 7, "euler", "normal", 1],
             "inputs": [{"name": "positive", "link": 1}, {"name": "negative", "link": 2}]},
            {"id": 6, "type": "CLIPTextEncode", "widgets_values": ["a cat"]},
            {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["blurry"]},
        ],
        "links": [[1, 6, 0, 3, 1, "CONDITIONING"], {"id": 2, "origin_id": 7}],
    }
)  # fmt: skip
INVOKE_METADATA = json.dumps(
    {"positive_prompt": "a fox", "seed": 3, "steps": 30, "cfg_scale": 5, "width": 512, "height": 512,
     "model": {"model_name": "sd-1.5", "hash": "abc", "base_model": "sd-1"}, "app_version": "3.0"}
)  # fmt: skip
INVOKE_GRAPH = json.dumps(
    {"nodes": {"noise": {"type": "noise", "seed": 3, "width": 512, "height": 512},
               "pos": {"type": "compel", "prompt": "a fox"}, "den": {"type": "denoise_latents", "steps": 30}},
     "edges": [{"source": {"node_id": "pos"}, "destination": {"field": "positive_conditioning"}}]}
)  # fmt: skip
SD_METADATA = json.dumps(
    {"app_id": "invoke-ai/InvokeAI", "model_id": "sd-1.5",
     "image": {"prompt": [{"prompt": "a fox [ugly]", "weight": 1}], "seed": 3, "steps": 30, "width": 512}}
)  # fmt: skip
NOVELAI_COMMENT = json.dumps(
    {"prompt": "a girl", "uc": "bad", "steps": 28, "scale": 5, "seed": 9, "sampler": "k_euler"}
)
FOOOCUS = json.dumps(
    {"prompt": "a dog", "base_model": "juggernaut", "steps": 30, "resolution": "(1024, 1024)"}
)
SWARM = json.dumps({"sui_image_params": {"prompt": "a tree", "seed": 1, "steps": 20, "cfgscale": 7}})

CHUNK_SEEDS: dict[str, tuple[str, ...]] = {
    "parameters": (A1111_TEXT, FOOOCUS, SWARM),
    "prompt": (COMFY_PROMPT, "a plain prompt"),
    "workflow": (COMFY_WORKFLOW,),
    "invokeai_metadata": (INVOKE_METADATA,),
    "invokeai_graph": (INVOKE_GRAPH,),
    "sd-metadata": (SD_METADATA,),
    "Dream": ('"a fox [ugly]" -s 50 -S 3 -W 512 -H 512 -C 7.5 -A k_lms', "!fix photo.png -G 0.8"),
    "Comment": (NOVELAI_COMMENT, A1111_TEXT),
    "Software": ("NovelAI",),
    "Description": ("a sunset --ar 16:9 --v 6 Job ID: 0123abcd-0123-4567-89ab-0123456789ab", "a girl"),
    "comment": (A1111_TEXT, COMFY_PROMPT, SWARM),
    "fooocus_scheme": ("fooocus",),
    "negative_prompt": ("bad",),
    "use_stable_diffusion_model": ("sd-v1-5",),
}

# Keys and values that the JSON readers look for, so random JSON reaches deep into them.
JSON_KEYS = (
    "class_type", "inputs", "seed", "noise_seed", "steps", "cfg", "sampler_name", "positive", "negative",
    "text", "ckpt_name", "latent_image", "width", "height", "nodes", "links", "widgets_values", "type",
    "id", "edges", "source", "destination", "field", "node_id", "model", "prompt", "workflow", "uc",
    "scale", "v4_prompt", "caption", "base_caption", "sui_image_params", "c", "weight", "image", "images",
    "full_prompt", "resolution", "invokeai_metadata", "guider", "noise", "conditioning", "value", "1", "2",
    "3", "²", "9" * 30,
)  # fmt: skip
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["KSampler", "CLIPTextEncode", "EmptyLatentImage", "noise", "positive_conditioning", "1"]
    ),
    st.text(ANY_CHARACTER, max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(st.sampled_from(["1", "2", "3", 1]), st.integers(0, 2)).map(list),  # ComfyUI links
        st.dictionaries(st.sampled_from(JSON_KEYS), children, max_size=5),
    ),
    max_leaves=40,
)


@st.composite
def generator_chunks(draw: st.DrawFn) -> dict[str, str]:
    keys = draw(st.lists(st.sampled_from(sorted(CHUNK_SEEDS)), min_size=1, max_size=4, unique=True))
    chunks = {}
    for key in keys:
        if draw(st.booleans()):
            chunks[key] = draw(mutated_text(CHUNK_SEEDS[key]))
        else:  # JSON whose strings hold lone surrogates, written with ensure_ascii: escapes like "\udc80"
            chunks[key] = json.dumps(
                draw(st.dictionaries(st.sampled_from(JSON_KEYS), JSON_VALUES, max_size=6))
            )
    return chunks


@fuzz(300)
@given(generator_chunks())
def test_generator_text_survives_mutated_chunks(chunks: dict[str, str]) -> None:
    assert_sane(generator_text_evidence(image_with(text_chunks=chunks)))


@fuzz(150)
@given(st.dictionaries(st.sampled_from(["1", "2", "3"]), JSON_VALUES, min_size=1, max_size=3))
def test_comfyui_graph_of_random_shape(graph: dict[str, Any]) -> None:
    chunks = {"prompt": json.dumps(graph), "workflow": json.dumps({"nodes": list(graph.values())})}
    assert_sane(generator_text_evidence(image_with(text_chunks=chunks)))


def test_comfyui_graph_that_links_back_to_itself_is_read_quickly() -> None:
    # Node 2 feeds itself through 33 inputs: a search that visits every path would make 33^8 visits.
    loop = {
        key: ["2", 0] for key in [f"conditioning_{i}" for i in range(30)] + ["guider", "noise", "sampler"]
    }
    graph = {
        "1": {"class_type": "KSampler", "inputs": {"positive": ["2", 0], "guider": ["2", 0], "steps": 20}},
        "2": {"class_type": "Loop", "inputs": loop},
    }
    (record,), _ = find_generation_records(image_with(text_chunks={"prompt": json.dumps(graph)}))
    assert record.tool == "ComfyUI" and record.steps == 20 and record.prompt == ""


ODD_BUT_READABLE_CHUNKS = {
    "node id of digits int() rejects": {
        "prompt": json.dumps({"²": {"class_type": "KSampler", "inputs": {"steps": 20}}, "1": {}})
    },
    "workflow inputs and links not lists": {
        "workflow": json.dumps(
            {
                "nodes": [{"id": 1, "type": "KSampler", "inputs": 5, "widgets_values": [1, 20, 7, "e", "n"]}],
                "links": 5,
            }
        )
    },
    "InvokeAI edges not a list": {
        "invokeai_graph": json.dumps({"nodes": {"n": {"type": "noise", "seed": 1}}, "edges": 5})
    },
    "prompt weight not a number": {
        "sd-metadata": json.dumps(
            {"image": {"prompt": [{"prompt": "a", "weight": "x"}, {"prompt": "b"}], "seed": 1}}
        )
    },
    "Fooocus prompt parts nested": {
        "parameters": json.dumps({"full_prompt": [[["deep"]], "a dog"], "base_model": "m"})
    },
}


@pytest.mark.parametrize("chunks", ODD_BUT_READABLE_CHUNKS.values(), ids=ODD_BUT_READABLE_CHUNKS.keys())
def test_odd_json_shapes_still_give_records(chunks: dict[str, str]) -> None:
    evidence = assert_sane(generator_text_evidence(image_with(text_chunks=chunks)))
    assert len(evidence) == 1 and evidence[0].points_to == "ai-generated"


def test_json_surrogate_escapes_become_replacement_characters() -> None:
    meta = '{"positive_prompt": "a \\udc80 fox \\ud83d\\ude00", "seed": 3, "steps": 30}'
    (record,), _ = find_generation_records(image_with(text_chunks={"invokeai_metadata": meta}))
    assert record.prompt == "a \ufffd fox \U0001f600"
    a1111 = 'a fox\nSteps: 20, Seed: 1, Sampler: "\\udc80x"'
    assert parse_a1111_parameters(a1111).sampler == "\ufffdx"


def test_deeply_nested_json_is_reported_not_raised() -> None:
    deep = '{"c": ' * 5000 + "1" + "}" * 5000
    assert_sane(generator_text_evidence(image_with(text_chunks={"parameters": deep, "Comment": deep})))


# ------------------------------------------------------------------------------------------- XMP

XMP_SEED = (
    XMP_HEAD + '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
    'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
    'xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" xmp:CreatorTool="Adobe Photoshop 25.0">'
    "<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    "</Iptc4xmpExt:DigitalSourceType>"
    "<dc:creator><rdf:Seq><rdf:li>Ann</rdf:li></rdf:Seq></dc:creator>"
    '<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Title</rdf:li></rdf:Alt></dc:title>'
    "<exif:UserComment>a fox\nSteps: 20, Sampler: Euler, Seed: 3</exif:UserComment>"
    '<xmpMM:History><rdf:Seq><rdf:li rdf:parseType="Resource"><stEvt:action>saved</stEvt:action>'
    "<stEvt:softwareAgent>Adobe Photoshop 25.0</stEvt:softwareAgent></rdf:li></rdf:Seq></xmpMM:History>"
    "</rdf:Description>" + XMP_TAIL
)
XMP_SEEDS = (
    XMP_SEED,
    '<?xpacket begin=""?><!DOCTYPE x:xmpmeta [ <!ELEMENT a ANY> ]>' + XMP_SEED + '<?xpacket end="w"?>',
    XMP_SEED.replace("<dc:title>", '<!DOCTYPE d [<!ENTITY e "x">]><dc:title>'),
    "junk \x00\x01 " + XMP_SEED[: len(XMP_SEED) // 2],
)


@fuzz(200)
@given(mutated_text(XMP_SEEDS))
def test_xmp_survives_mutated_packets(packet: str) -> None:
    parsed = parse_xmp(packet)
    assert parsed.error is None or not LEAKED_ERROR.search(parsed.error)
    image = image_with(xmp=packet)
    assert_sane(metadata_evidence(image))
    assert_sane(generator_text_evidence(image))


@fuzz(50)
@given(st.binary(max_size=300).map(lambda junk: XMP_SEED.encode()[:200] + junk))
def test_xmp_from_bytes_survives_junk(packet: bytes) -> None:
    parsed = parse_xmp(packet)
    for text in strings_in(parsed.properties):
        text.encode("utf-8")


def test_xmp_nested_deeper_than_any_real_packet() -> None:
    depth = 5000
    nested = '<q:a rdf:parseType="Resource">' * depth + "x" + "</q:a>" * depth
    packet = XMP_HEAD + '<rdf:Description xmlns:q="urn:q">' + nested + "</rdf:Description>" + XMP_TAIL
    parsed = parse_xmp(packet)
    assert parsed.error is None and "q:a" in parsed.properties
    assert_sane(metadata_evidence(image_with(xmp=packet)))


def test_xmp_with_lone_surrogates_in_text() -> None:
    packet = XMP_SEED.replace("Ann", "A\udc80nn")
    assert parse_xmp(packet).text("dc:creator") == "A\ufffdnn"
    assert_sane(metadata_evidence(image_with(xmp=packet)))


def test_xmp_properties_are_capped() -> None:
    attributes = " ".join(f'q:k{i}="v"' for i in range(MAX_PROPERTIES + 50))
    packet = XMP_HEAD + f'<rdf:Description xmlns:q="urn:q" {attributes}/>' + XMP_TAIL
    assert len(parse_xmp(packet).properties) == MAX_PROPERTIES


# ------------------------------------------------------------------------------------------ EXIF


@cache
def exif_seed() -> bytes:
    thumbnail = encode(photo_like_rgb(16, 12), "JPEG", quality=70)
    zeroth = {
        piexif.ImageIFD.Make: b"Canon",
        piexif.ImageIFD.Model: b"Canon EOS 5D (Mark III)",
        piexif.ImageIFD.Software: b"Adobe Photoshop 25.0",
        piexif.ImageIFD.DateTime: b"2024:01:02 03:04:05",
        piexif.ImageIFD.Orientation: 6,
        piexif.ImageIFD.XPComment: tuple("hi".encode("utf-16-le")),
    }
    exif = {
        piexif.ExifIFD.DateTimeOriginal: b"2024:01:01 03:04:05",
        piexif.ExifIFD.UserComment: b"UNICODE\x00" + "a fox\nSteps: 20, Seed: 3".encode("utf-16-be"),
        piexif.ExifIFD.PixelXDimension: 64,
        piexif.ExifIFD.PixelYDimension: 48,
    }
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((52, 1), (31, 1), (0, 1)),
        piexif.GPSIFD.GPSLongitudeRef: b"E",
        piexif.GPSIFD.GPSLongitude: ((13, 1), (24, 1), (0, 1)),
    }
    first = {piexif.ImageIFD.JPEGInterchangeFormat: 0, piexif.ImageIFD.JPEGInterchangeFormatLength: 0}
    return piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps, "1st": first, "thumbnail": thumbnail})


def looping_exif(order: bytes) -> bytes:
    """A TIFF block whose IFD0 points its Exif, GPS and next-IFD offsets back at itself."""
    endian = "<" if order == b"II" else ">"
    entries = [
        (0x010F, 2, 4, b"Cam\x00"),
        (0x8769, 4, 1, struct.pack(endian + "I", 8)),
        (0x8825, 4, 1, struct.pack(endian + "I", 8)),
    ]
    ifd = struct.pack(endian + "H", len(entries))
    ifd += b"".join(
        struct.pack(endian + "HHI", tag, kind, count) + value for tag, kind, count, value in entries
    )
    header = order + struct.pack(endian + "HI", 42, 8)
    return b"Exif\x00\x00" + header + ifd + struct.pack(endian + "I", 8)


def exif_sources(raw: bytes) -> None:
    rgb = photo_like_rgb(64, 48)
    for image in (
        image_with(exif=raw, rgb=rgb),
        image_with(exif=raw, rgb=rgb, format="TIFF", orientation=None),
    ):
        assert_sane(metadata_evidence(image))
        assert_sane(generator_text_evidence(image))
        assert_sane(camera_evidence(image))
    parsed = parse_exif(raw)
    assert parsed.error is None or not LEAKED_ERROR.search(parsed.error)


@fuzz(200)
@given(st.data())
def test_exif_survives_mutated_blocks(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from([exif_seed(), looping_exif(b"II"), looping_exif(b"MM")]))
    exif_sources(data.draw(mutated_bytes(seed, start=6, end=min(len(seed), 600))))


@fuzz(50)
@given(st.binary(max_size=64).map(lambda tail: b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + tail))
def test_exif_survives_random_directories(raw: bytes) -> None:
    exif_sources(raw)


def test_exif_with_looping_offsets_or_a_bad_header() -> None:
    for raw in (looping_exif(b"II"), looping_exif(b"MM"), b"II*\x00\x08\x00\x00\x00\xff\xff"):
        assert_sane(metadata_evidence(image_with(exif=raw)))
    assert parse_exif(looping_exif(b"MM")).get("Make") == "Cam"
    evidence = assert_sane(metadata_evidence(image_with(exif=b"Exif\x00\x00garbage!")))
    assert [item.finding for item in evidence] == [
        "The EXIF block is damaged: it does not start with a TIFF header, so none of its tags could be read."
    ]


# ------------------------------------------------------------------------------------------ IPTC

IPTC_DATASETS = [
    (1, 90, b"\x1b%G"), (2, 0, b"\x00\x04"), (2, 80, "Zoë".encode()), (2, 25, b"cat"), (2, 25, b"\xff\xfe"),
    (2, 65, b"Midjourney"), (2, 120, b"a caption"), (2, 116, b"(c) me"),
]  # fmt: skip


@fuzz(200)
@given(st.data())
def test_iptc_survives_mutated_app13(data: st.DataObject) -> None:
    app13 = iptc_app13(IPTC_DATASETS)
    payload = data.draw(mutated_bytes(app13, start=14))
    if data.draw(st.booleans()):  # an extended-length dataset: top bit set, then the size of the length
        payload += b"\x1c\x02\x78" + data.draw(st.binary(min_size=2, max_size=8))
    jpeg = jpeg_with_segments((0xED, payload))
    image = image_with(data=jpeg, format="JPEG")
    assert_sane(metadata_evidence(image))
    parsed = read_iptc_iim(jpeg)
    assert parsed.error is None or not LEAKED_ERROR.search(parsed.error)


@fuzz(100)
@given(st.binary(max_size=200))
def test_iptc_survives_random_blocks(block: bytes) -> None:
    parsed = parse_iim(b"\x1c" + block)
    for values in parsed.datasets.values():
        for value in values:
            value.encode("utf-8")
    tiff_exif = Image.Exif()
    tiff_exif[33723] = b"\x1c" + block  # IPTC-NAA, where TIFF files keep their IIM block
    assert_sane(metadata_evidence(image_with(exif=tiff_exif.tobytes(), format="TIFF")))


# -------------------------------------------------------------------------------- camera consistency

QUANT_TABLE = st.lists(st.integers(0, 65535), min_size=64, max_size=64).map(tuple)
SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1", "gray", "other", "")


@st.composite
def camera_images(draw: st.DrawFn) -> LoadedImage:
    tables = draw(st.dictionaries(st.integers(0, 3), QUANT_TABLE, max_size=3))
    jpeg = JpegInfo(tables, draw(st.sampled_from(SUBSAMPLINGS)), draw(st.booleans()), draw(st.integers(0, 4)))
    exif = draw(st.one_of(st.none(), mutated_bytes(exif_seed(), start=6, end=600)))
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    rgb = np.full((height, width, 3), draw(st.integers(0, 255)), np.uint8)
    return image_with(
        rgb=rgb, format="JPEG", jpeg=jpeg, exif=exif, orientation=draw(st.sampled_from([None, 1, 6, 9]))
    )


@fuzz(150)
@given(camera_images())
def test_camera_consistency_survives_odd_tables_and_exif(image: LoadedImage) -> None:
    assert_sane(camera_evidence(image))


@fuzz(50)
@given(st.data())
def test_camera_survives_a_broken_thumbnail(data: st.DataObject) -> None:
    seed = exif_seed()
    start = seed.rfind(b"\xff\xd8")  # the embedded thumbnail JPEG
    raw = data.draw(mutated_bytes(seed, start=start))
    assert_sane(camera_evidence(image_with(exif=raw, rgb=photo_like_rgb(32, 24))))


# ------------------------------------------------------------------------------------------ C2PA


@cache
def signed_jpeg() -> bytes:
    material = make_es256_signing_material()
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, material.chain_pem, material.key_pem, None)
    )
    definition = {
        "claim_generator_info": [{"name": "pixelsleuth-tests", "version": "0.1"}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/"
                            "trainedAlgorithmicMedia",
                        }
                    ]
                },
            }
        ],
    }
    destination = io.BytesIO()
    source = io.BytesIO(encode(photo_like_rgb(32, 24), "JPEG", quality=90))
    c2pa.Builder(definition).sign(signer, "image/jpeg", source, destination)
    return destination.getvalue()


def app11_span(jpeg: bytes) -> tuple[int, int]:
    start = jpeg.find(b"\xff\xeb")
    length = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    return start + 4, start + 2 + length


@fuzz(60)
@given(st.data())
def test_c2pa_survives_mutated_manifest_segments(data: st.DataObject) -> None:
    jpeg = signed_jpeg()
    start, end = app11_span(jpeg)
    mutated = data.draw(mutated_bytes(jpeg, start=start, end=end))
    assert_sane(c2pa_evidence(image_with(data=mutated, format="JPEG")))


@fuzz(60)
@given(st.binary(max_size=400))
def test_c2pa_survives_random_jumbf(junk: bytes) -> None:
    jumbf = b"JP\x00\x01\x00\x00\x00\x01" + struct.pack(">I", len(junk) + 8) + b"jumb" + b"c2pa" + junk
    assert_sane(c2pa_evidence(image_with(data=jpeg_with_segments((0xEB, jumbf)), format="JPEG")))
    png = encode(photo_like_rgb(8, 8), "PNG")
    with_chunk = png[:33] + png_chunk(b"caBX", jumbf) + png[33:]
    assert_sane(c2pa_evidence(image_with(data=with_chunk, format="PNG")))


def test_c2pa_signed_seed_is_read() -> None:
    evidence = assert_sane(c2pa_evidence(image_with(data=signed_jpeg(), format="JPEG")))
    assert any(item.points_to == "ai-generated" for item in evidence)


# ------------------------------------------------------------------------------------- watermark

MODES = ("RGB", "RGBA", "L", "P", "CMYK", "I;16", "F", "1", "YCbCr")


@st.composite
def watermark_images(draw: st.DrawFn) -> LoadedImage:
    height, width = draw(st.sampled_from([(1, 1), (7, 300), (256, 256), (264, 300), (40, 40)]))
    rgb = np.random.default_rng(draw(st.integers(0, 3))).integers(0, 256, (height, width, 3), dtype=np.uint8)
    tables = draw(st.dictionaries(st.integers(0, 2), QUANT_TABLE, max_size=2))
    jpeg = draw(
        st.one_of(st.none(), st.just(JpegInfo(tables, draw(st.sampled_from(SUBSAMPLINGS)), False, 3)))
    )
    image = image_with(rgb=rgb, format="JPEG" if jpeg else "PNG", jpeg=jpeg)
    image.original_mode = draw(st.sampled_from(MODES))
    return image


@fuzz(40)
@given(watermark_images())
def test_watermark_survives_odd_images(image: LoadedImage) -> None:
    evidence = assert_sane(watermark_evidence(image))
    assert len(evidence) == 1


# ------------------------------------------------------------------- every source on damaged files

SOURCES: dict[str, Callable[[LoadedImage], list[Evidence]]] = {
    name: load_source(name) for name in PROVENANCE_SOURCES
}


@cache
def file_seeds() -> tuple[bytes, ...]:
    rgb = photo_like_rgb(48, 32, seed=5)
    xmp = XMP_SEED.encode()
    return (
        encode(rgb, "JPEG", quality=85, exif=exif_seed(), comment=A1111_TEXT.encode()),
        jpeg_with_segments(
            (0xED, iptc_app13(IPTC_DATASETS)), (0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp)
        ),
        signed_jpeg(),
        encode(Image.fromarray(rgb), "PNG", pnginfo=_png_info()),
        encode(rgb, "WEBP", quality=80, exif=exif_seed(), xmp=xmp),
    )


def _png_info() -> PngInfo:
    info = PngInfo()
    info.add_text("parameters", A1111_TEXT)
    info.add_itxt("prompt", COMFY_PROMPT)
    info.add_itxt("XML:com.adobe.xmp", XMP_SEED)
    return info


def metadata_span(data: bytes) -> tuple[int, int]:
    """Where a seed file keeps its metadata, so damage there still leaves pixels to decode."""
    if data.startswith(b"\xff\xd8"):
        first_table = next(s.offset for s in header_segments(data) if s.marker in (0xDB, 0xC0, 0xC4))
        return 2, first_table
    if data.startswith(b"\x89PNG"):
        return 33, data.find(b"IDAT") - 4
    return data.find(b"EXIF"), len(data)  # WebP: Pillow writes EXIF and XMP after the image data


@fuzz(100)
@given(st.data())
def test_every_source_survives_damaged_files(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(file_seeds()))
    damaged = data.draw(mutated_bytes(seed, *metadata_span(seed), kinds=("flip", "offset", "flip")))
    try:
        image = load_image(damaged, limits=IntakeLimits(max_pixels=1_000_000, max_file_bytes=1_000_000))
    except Exception:  # intake's own errors are tested elsewhere; here only loadable files matter
        return
    for source in SOURCES.values():
        assert_sane(source(image))
