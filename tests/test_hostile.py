"""The hostile-corpus generator: deterministic, every family present, each file what its family claims."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import struct
import unicodedata
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image, UnidentifiedImageError

from pixelsleuth.bench import hostile
from pixelsleuth.bench.hostile import (
    FAMILIES,
    FAMILY_SPECS,
    LARGE_VALID_LIMIT,
    HostileFile,
    make_specimen,
    write_hostile_corpus,
)
from pixelsleuth.outputs.collect import collect_paths

SUPPORTED = ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF"]
# Every family but the three large images: enough for the byte-level checks, and fast.
CHEAP_FAMILIES = tuple(name for name in FAMILIES if name != "large_valid")


def variants(family: str, *, seed: int = 0) -> list[hostile.Specimen]:
    """One specimen of each variant of `family` (indices 0 .. number of variants - 1)."""
    return [make_specimen(family, index, seed=seed) for index in range(len(FAMILY_SPECS[family].variants))]


def fingerprint(path: Path) -> tuple:
    """What a corpus entry is, without reading a 2 GiB sparse file whole."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return ("symlink", os.readlink(path))
    if stat.S_ISFIFO(info.st_mode):
        return ("fifo",)
    if stat.S_ISDIR(info.st_mode):
        return ("dir",)
    with open(path, "rb") as handle:
        head = handle.read(1 << 20)
    return ("file", info.st_size, stat.S_IMODE(info.st_mode), hashlib.sha256(head).hexdigest())


def corpus_fingerprint(folder: Path, files: list[HostileFile]) -> list[tuple]:
    def entry(item: HostileFile) -> tuple:
        name = os.fsencode(item.path.relative_to(folder))
        return (name, item.family, item.note, item.index, fingerprint(item.path))

    return [entry(item) for item in files]


def clear_caches() -> None:
    for cached in (hostile.base_image, hostile.small_jpeg, hostile.small_png, hostile.zlib_of):
        cached.cache_clear()


# --- the corpus as a whole ---------------------------------------------------------------------------


def test_same_seed_gives_the_same_names_and_bytes(tmp_path: Path) -> None:
    first = write_hostile_corpus(tmp_path / "a", count=150, seed=7, families=CHEAP_FAMILIES)
    clear_caches()  # the encoders themselves must be deterministic too, not only our cache
    second = write_hostile_corpus(tmp_path / "b", count=150, seed=7, families=CHEAP_FAMILIES)
    assert corpus_fingerprint(tmp_path / "a", first) == corpus_fingerprint(tmp_path / "b", second)


def test_another_seed_gives_other_bytes(tmp_path: Path) -> None:
    families = ("truncated", "bit_flip", "bad_length")
    first = write_hostile_corpus(tmp_path / "a", count=30, seed=0, families=families)
    second = write_hostile_corpus(tmp_path / "b", count=30, seed=1, families=families)
    assert corpus_fingerprint(tmp_path / "a", first) != corpus_fingerprint(tmp_path / "b", second)


def test_a_file_depends_only_on_seed_family_and_index(tmp_path: Path) -> None:
    small = write_hostile_corpus(tmp_path / "a", count=20, seed=3, families=("bit_flip", "regex_bait"))
    large = write_hostile_corpus(tmp_path / "b", count=60, seed=3, families=("bit_flip", "regex_bait"))
    by_name = {(item.family, item.path.name): item.path.read_bytes() for item in large}
    for item in small:
        assert by_name[(item.family, item.path.name)] == item.path.read_bytes()
        assert make_specimen(item.family, item.index, seed=3).data == item.path.read_bytes()


def test_every_family_is_present_and_counts_add_up(tmp_path: Path) -> None:
    files = write_hostile_corpus(tmp_path, count=len(FAMILIES) + 40, seed=0)
    counts = {name: sum(item.family == name for item in files) for name in FAMILIES}
    assert len(files) == len(FAMILIES) + 40
    assert all(counts[name] >= 1 for name in FAMILIES), counts
    assert counts["large_valid"] <= LARGE_VALID_LIMIT
    assert len({item.path for item in files}) == len(files)
    assert all(item.path.parent.name == item.family or item.family == "odd_name" for item in files)


def test_families_can_be_chosen(tmp_path: Path) -> None:
    files = write_hostile_corpus(tmp_path, count=12, families=("polyglot", "not_an_image"))
    assert {item.family for item in files} == {"polyglot", "not_an_image"}
    with pytest.raises(ValueError, match="unknown families"):
        write_hostile_corpus(tmp_path / "x", count=1, families=("no_such_family",))


def test_large_valid_images_stay_few() -> None:
    plan = hostile.allocate(5000, list(FAMILY_SPECS.values()))
    assert plan["large_valid"] == LARGE_VALID_LIMIT
    assert sum(plan.values()) == 5000


def test_the_folder_walk_collects_every_file_but_the_folder(tmp_path: Path) -> None:
    """Every entry has an image extension and none is hidden, so a folder scan sees all of them."""
    files = write_hostile_corpus(tmp_path, count=len(FAMILIES) * 19, seed=0, families=CHEAP_FAMILIES)
    collected, unmatched = collect_paths([str(tmp_path)])
    expected = {os.fsencode(item.path) for item in files if not item.path.is_dir()}
    assert not unmatched
    assert {os.fsencode(path) for path in collected} == expected


# --- what each family claims -------------------------------------------------------------------------


def test_truncated_files_are_strict_prefixes_of_valid_files() -> None:
    for specimen in variants("truncated"):
        fmt = specimen.name.split("-")[0].upper()
        base = hostile.base_image(fmt)
        assert specimen.data is not None and 0 < len(specimen.data) < len(base)
        assert base.startswith(specimen.data)
    for fmt in hostile.BASE_FORMATS:
        with Image.open(io.BytesIO(hostile.base_image(fmt))) as image:
            image.load()


def test_bit_flips_change_bytes_but_not_length() -> None:
    for index in range(12):
        specimen = make_specimen("bit_flip", index)
        fmt = specimen.name.split("-")[0].upper()
        base = hostile.base_image(fmt)
        assert specimen.data != base and len(specimen.data or b"") == len(base)


def test_bad_lengths_change_a_length_field() -> None:
    jpeg = make_specimen("bad_length", 0)
    assert jpeg.name.startswith("jpeg-seglen")
    assert jpeg.data != hostile.base_image("JPEG") and len(jpeg.data or b"") == len(
        hostile.base_image("JPEG")
    )
    png = make_specimen("bad_length", 1).data or b""
    lengths = [length for _, _, length in hostile.png_chunks(hostile.base_image("PNG"))]
    assert [length for _, _, length in hostile.png_chunks(png)][: len(lengths)] != lengths
    names = [specimen.name for specimen in variants("bad_length")]
    assert any(name.startswith(("heif-boxsize", "avif-boxsize")) for name in names)
    assert any(name.startswith("tiff-") for name in names) and any(name.startswith("webp-") for name in names)


def walk_ifds(tiff: bytes) -> str:
    """Follow every IFD link and sub-IFD pointer; 'loop' if one is reached twice, else the IFD count."""
    endian = ">" if tiff[:2] == b"MM" else "<"
    pending = [struct.unpack_from(endian + "I", tiff, 4)[0]]
    seen: set[int] = set()
    while pending:
        offset = pending.pop()
        if offset in seen:
            return "loop"
        seen.add(offset)
        (count,) = struct.unpack_from(endian + "H", tiff, offset)
        for index in range(count):
            tag, _, _, value = struct.unpack_from(endian + "HHII", tiff, offset + 2 + 12 * index)
            if tag in (hostile.EXIF_IFD_POINTER, hostile.GPS_IFD_POINTER, hostile.INTEROP_IFD_POINTER):
                pending.append(value)
        end = offset + 2 + 12 * count
        if end + 4 <= len(tiff):
            (link,) = struct.unpack_from(endian + "I", tiff, end)
            if link and link + 2 <= len(tiff):
                pending.append(link)
    return f"{len(seen)} IFDs"


def exif_of(data: bytes) -> bytes:
    if data.startswith(hostile.PNG_SIGNATURE):
        offset, _, length = next(chunk for chunk in hostile.png_chunks(data) if chunk[1] == b"eXIf")
        return data[offset + 8 : offset + 8 + length]
    if data.startswith(b"\xff\xd8"):
        for offset, marker, length in hostile.jpeg_segments(data):
            payload = data[offset + 4 : offset + 2 + length]
            if marker == hostile.APP1 and payload.startswith(b"Exif\0\0"):
                return payload[6:]
        raise AssertionError("no EXIF segment")
    return data  # a TIFF file is its own EXIF structure


def test_exif_loops_loop() -> None:
    specimens = variants("exif_loop")
    assert {specimen.name.split("-")[0] for specimen in specimens} == {"jpeg", "tiff", "png"}
    for specimen in specimens:
        outcome = walk_ifds(exif_of(specimen.data or b""))
        if "deep_chain" in specimen.name:
            assert outcome.endswith("IFDs") and int(outcome.split()[0]) > 2500, specimen.note
        else:
            assert outcome == "loop", specimen.note


def xmp_of(data: bytes) -> bytes:
    if data.startswith(hostile.PNG_SIGNATURE):
        for offset, kind, length in hostile.png_chunks(data):
            payload = data[offset + 8 : offset + 8 + length]
            if kind == b"iTXt" and payload.startswith(b"XML:com.adobe.xmp\0"):
                return payload.split(b"\0", 4)[-1]
        raise AssertionError("no XMP iTXt chunk")
    for offset, marker, length in hostile.jpeg_segments(data):
        payload = data[offset + 4 : offset + 2 + length]
        if marker == hostile.APP1 and payload.startswith(hostile.XMP_JPEG_HEADER):
            return payload[len(hostile.XMP_JPEG_HEADER) :]
    raise AssertionError("no XMP segment")


def test_xmp_entities_are_bombs_or_point_outside() -> None:
    specimens = variants("xmp_entity")
    assert {specimen.name.split("-")[0] for specimen in specimens} == {"jpeg", "png"}
    for specimen in specimens:
        packet = xmp_of(specimen.data or b"").decode("utf-8")
        assert "<!DOCTYPE x:xmpmeta [" in packet
        if "billion_laughs" in specimen.name:
            assert packet.count("&lol8;") == 10 and '<!ENTITY lol9 "' in packet
        elif "quadratic" in specimen.name:
            assert packet.count("&big;") * 20000 > 10_000_000
        elif "external_file" in specimen.name:
            assert 'SYSTEM "file:///etc/passwd"' in packet
        else:
            assert f'SYSTEM "{hostile.DEFAULT_FETCH_URL}"' in packet


def test_external_entities_use_the_url_given(tmp_path: Path) -> None:
    url = "http://127.0.0.1:4321/listen-here"
    files = write_hostile_corpus(tmp_path, count=10, families=("xmp_entity",), fetch_url=url)
    packets = [xmp_of(item.path.read_bytes()).decode() for item in files if "external_http" in item.path.name]
    assert packets and all(url in packet for packet in packets)


def text_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (kind, png[offset + 8 : offset + 8 + length])
        for offset, kind, length in hostile.png_chunks(png)
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"iCCP")
    ]


def inflated_size(kind: bytes, payload: bytes) -> int:
    _, _, rest = payload.partition(b"\0")
    if kind in (b"zTXt", b"iCCP"):
        return len(zlib.decompress(rest[1:]))
    if kind == b"iTXt" and rest[0] == 1:
        return len(zlib.decompress(rest[2:].split(b"\0", 2)[2]))
    return len(rest)


def test_png_text_bombs_inflate_to_megabytes() -> None:
    for specimen in variants("png_text_bomb"):
        chunks = text_chunks(specimen.data or b"")
        assert len(specimen.data or b"") < 400_000
        if specimen.name.split("-", 1)[0] == "many" and "text" in specimen.name:
            assert sum(kind == b"tEXt" for kind, _ in chunks) >= 3000
        elif "many-ztxt" in specimen.name:
            assert sum(kind == b"zTXt" for kind, _ in chunks) >= 100
            assert inflated_size(*chunks[-1]) > 800_000
        else:
            assert max(inflated_size(kind, payload) for kind, payload in chunks) > 1_000_000, specimen.note


def has_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(key) or has_lone_surrogate(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    return False


def test_surrogate_text_decodes_to_lone_surrogates_or_is_not_utf8() -> None:
    by_name = {specimen.name: specimen.data or b"" for specimen in variants("surrogate_text")}
    a1111 = dict(text_chunks(by_name["a1111-surrogate.png"]))[b"tEXt"].split(b"\0", 1)[1].decode("latin-1")
    model = re.search(r'Model: ("(?:\\.|[^\\"])*")', a1111)
    assert model is not None and json.loads(model.group(1)) == "x\udc80y"
    assert a1111.startswith("a cat\nNegative prompt: x\nSteps: 20,")

    comfy = dict(text_chunks(by_name["comfy-surrogate.png"]))[b"tEXt"].split(b"\0", 1)[1]
    assert has_lone_surrogate(json.loads(comfy))

    itxt = dict(text_chunks(by_name["itxt-invalid-utf8.png"]))[b"iTXt"]
    com = next(
        by_name["com-invalid-utf8.jpg"][offset + 4 : offset + 2 + length]
        for offset, marker, length in hostile.jpeg_segments(by_name["com-invalid-utf8.jpg"])
        if marker == hostile.COM
    )
    for raw in (itxt.split(b"\0", 4)[-1], com, xmp_of(by_name["xmp-invalid-utf8.jpg"])):
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    assert b"&#xD800;" in xmp_of(by_name["xmp-invalid-utf8.jpg"])


def user_comment_of(jpeg: bytes) -> bytes:
    tiff = exif_of(jpeg)
    endian = ">" if tiff[:2] == b"MM" else "<"
    marker = struct.pack(endian + "HH", hostile.USER_COMMENT, hostile.UNDEFINED)
    at = tiff.index(marker)
    count, offset = struct.unpack_from(endian + "II", tiff, at + 4)
    return tiff[offset : offset + count]


def test_user_comments_carry_surrogates() -> None:
    indices = [index for index in range(24) if index % len(FAMILY_SPECS["surrogate_text"].variants) == 5]
    comments = [user_comment_of(make_specimen("surrogate_text", index).data or b"") for index in indices]
    utf16 = [c[8:-1].decode("utf-16-le", "surrogatepass") for c in comments if c.startswith(b"UNICODE\0")]
    assert utf16 and all(has_lone_surrogate(text) for text in utf16)
    assert any(c.startswith(b"ASCII\0\0\0") and b'Model: "x\\udc80y"' in c for c in comments)


def test_regex_bait_is_long_and_never_completes() -> None:
    for index in range(14):
        specimen = make_specimen("regex_bait", index)
        data = specimen.data or b""
        if specimen.name.startswith("a1111"):
            text = dict(text_chunks(data))[b"tEXt"].split(b"\0", 1)[1].decode("latin-1")
            settings = text.split("Steps: 20, ", 1)[1]
            assert 40_000 <= len(text) <= 200_000 and ":" not in settings.replace('Model: "', "")
        elif specimen.name.startswith("usercomment"):
            comment = user_comment_of(data)
            assert len(comment) > 40_000 and b"Steps: 20, " in comment
        else:
            packet = xmp_of(data).decode("utf-8")
            assert len(packet) > 39_000 and "<!DOCTYPE x [" in packet
            assert "]>" not in packet and "/>" not in packet.split("<!DOCTYPE", 1)[1]


def declared_size(data: bytes) -> tuple[int, int]:
    at = data.find(b"ispe")
    if at >= 0:  # HEIF / AVIF: the image spatial extents box
        return struct.unpack_from(">II", data, at + 8)
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_huge_dimensions_in_tiny_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    for index in range(18):
        specimen = make_specimen("huge_dimensions", index)
        width, height = declared_size(specimen.data or b"")
        assert width * height >= 99_000_000 and len(specimen.data or b"") < 20_000, specimen.note
    jpeg = make_specimen("huge_dimensions", 0).data or b""
    assert declared_size(jpeg) == (10000, 10000) and len(jpeg) < 2048


def test_large_valid_images_decode() -> None:
    specimen = make_specimen("large_valid", 0)
    with Image.open(io.BytesIO(specimen.data or b"")) as image:
        assert image.size == (4000, 3000)
        image.load()


def test_polyglots_are_two_things_at_once() -> None:
    by_name = {specimen.name: specimen.data or b"" for specimen in variants("polyglot")}
    assert (
        zipfile.is_zipfile(io.BytesIO(by_name["jpeg_zip.jpg"])) and by_name["jpeg_zip.jpg"][:2] == b"\xff\xd8"
    )
    assert zipfile.is_zipfile(io.BytesIO(by_name["gif_zip.gif"])) and by_name["gif_zip.gif"][:3] == b"GIF"
    assert by_name["png_pdf.png"].index(b"%PDF") > by_name["png_pdf.png"].index(b"IEND")
    assert b"<script>" in by_name["jpeg_html_comment.jpg"] and b"<script>" in by_name["png_html_text.png"]
    assert by_name["jpeg_magic_noise.jpg"][:3] == b"\xff\xd8\xff"


def test_non_images_are_not_images_but_are_named_like_images() -> None:
    for specimen in variants("not_an_image"):
        assert os.path.splitext(specimen.name)[1] in hostile.IMAGE_EXTENSIONS
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(specimen.data or b""), formats=SUPPORTED)
    sizes = {specimen.name.split(".")[0]: len(specimen.data or b"") for specimen in variants("not_an_image")}
    assert sizes["empty"] == 0 and sizes["one_byte"] == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes and symlinks")
def test_special_files_are_what_they_claim(tmp_path: Path) -> None:
    files = write_hostile_corpus(tmp_path, count=len(hostile.SPECIAL_FILES), families=("special_file",))
    by_kind = {item.path.name.split("-", 1)[1]: item.path for item in files}
    assert stat.S_ISFIFO(os.lstat(by_kind["fifo.jpg"]).st_mode)
    for loop in ("loop-self.png", "loop-pair.png"):
        assert os.path.islink(by_kind[loop])
        with pytest.raises(OSError, match="Too many levels"):
            os.stat(by_kind[loop])
    assert os.path.lexists(by_kind["dangling.jpg"]) and not os.path.exists(by_kind["dangling.jpg"])
    assert os.readlink(by_kind["zero.jpg"]) == "/dev/zero"
    sparse = os.stat(by_kind["sparse.jpg"])
    assert sparse.st_size == 2 * 2**30 and sparse.st_blocks * 512 < 16 * 2**20
    assert by_kind["dir.jpg"].is_dir()
    assert stat.S_IMODE(os.stat(by_kind["unreadable.jpg"]).st_mode) == 0


def test_odd_names_are_odd_and_hold_valid_images(tmp_path: Path) -> None:
    files = write_hostile_corpus(tmp_path, count=len(hostile.ODD_NAMES), families=("odd_name",))
    names = {os.fsencode(item.path.relative_to(tmp_path / "odd_name")) for item in files}
    assert b"bad_\xff\xfe.png" in names and b"dir_\xff/inside.png" in names
    assert b"-rf.png" in names and b"$(reboot).png" in names and b"new\nline.jpg" in names
    assert len(os.fsencode(hostile.ODD_NAMES["long"])) == 250
    nfc, nfd = hostile.ODD_NAMES["nfc"], hostile.ODD_NAMES["nfd"]
    assert nfc != nfd and unicodedata.normalize("NFC", nfd) == nfc
    for item in files:
        with Image.open(item.path) as image:
            image.load()


def test_repeated_odd_names_stay_unique(tmp_path: Path) -> None:
    files = write_hostile_corpus(tmp_path, count=2 * len(hostile.ODD_NAMES) + 1, families=("odd_name",))
    assert len({item.path for item in files}) == len(files)
    assert all(item.path.exists() for item in files)
