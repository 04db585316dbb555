"""HTML reports: page structure, escaping, no external URLs, the batch index, and the commands."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from imagegen import photo_like_rgb
from pixelsleuth.outputs.cli import app
from pixelsleuth.outputs.report import (
    BatchRow,
    ReportOptions,
    ReportWriter,
    build_visuals,
    render_batch_report,
    render_image_report,
    report_filename,
    write_reports,
)
from pixelsleuth.outputs.report import writer as writer_module
from pixelsleuth.outputs.report_command import select_records

runner = CliRunner()
QUICK = ReportOptions(fused_map=False)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def spliced_rgb(width: int = 256, height: int = 192) -> np.ndarray:
    """A photo-like picture saved once as JPEG, with a patch of fresh noise pasted into it."""
    buffer = io.BytesIO()
    Image.fromarray(photo_like_rgb(width, height, seed=3)).save(buffer, "JPEG", quality=75)
    pixels = np.array(Image.open(buffer).convert("RGB"))
    pixels[60:124, 100:180] = np.random.default_rng(5).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    return pixels


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_for(image: Path, **changes: object) -> dict:
    """A full `pixelsleuth.analysis/1` record (with the newer keys) about the file at `path`."""
    record = {
        "schema": "pixelsleuth.analysis/1",
        "path": str(image),
        "sha256": sha256_of(image) if image.is_file() else "f" * 64,
        "width": 256,
        "height": 192,
        "format": "PNG",
        "verdict": "manipulated",
        "score": 0.93,
        "evidence": [
            {
                "source": "localization",
                "finding": "The region x 100–180, y 60–124 was probably manipulated.",
                "points_to": "manipulated",
                "strength": 0.93,
                "detail": "ELA and noise agree.",
                "data": {
                    "probability": 0.93,
                    "threshold": 0.67,
                    "manipulated": True,
                    "regions": [
                        {
                            "left": 100,
                            "top": 60,
                            "right": 180,
                            "bottom": 124,
                            "confidence": 0.9,
                            "methods": ["ela"],
                        }
                    ],
                },
            },
            {
                "source": "exif",
                "finding": "Camera: Canon EOS 5D",
                "points_to": "none",
                "strength": 0.0,
                "detail": "",
                "data": {"present": True, "make": "Canon", "model": "EOS 5D", "gps": False},
            },
            {
                "source": "spectral",
                "finding": "no periodic peaks in the noise residual",
                "points_to": "none",
                "strength": 0.0,
                "detail": "",
                "data": {"score": 0.08},
            },
        ],
        "error": None,
        "explanation": "The image was probably edited (score 0.93).",
        "decided_by": "hard-evidence:localization",
        "operating_point": {"label": "fpr=0.01 (threshold 0.8422)", "threshold": 0.8422, "target_fpr": 0.01},
        "narration": {"text": "A model retells: the region was pasted.", "model": "tiny-llm-1"},
        "analysis_version": "pixelsleuth-0.1.0/test",
    }
    record.update(changes)
    return record


@pytest.fixture(scope="module")
def image_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report-image") / "spliced photo.png"
    Image.fromarray(spliced_rgb()).save(path)
    return path


@pytest.fixture(scope="module")
def page(image_file) -> str:
    return render_image_report(record_for(image_file), image_file, options=QUICK)


class _Collector(HTMLParser):
    """Every tag with its attributes, and the text of each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None
        if tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts[-1] += data


def parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def assert_self_contained(html: str) -> None:
    """Nothing in the page can load or link anything outside it."""
    assert not re.search(r"(?i)\b(https?|ftp|file|wss?):", html), "a URL scheme appears in the page"
    assert "@import" not in html and not re.search(r"(?i)url\(\s*['\"]?(?!data:)", html)
    page = parse(html)
    for tag, attrs in page.tags:
        for name in ("src", "srcset", "poster", "data", "action", "formaction", "xlink:href", "data-src"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("data:image/"), f"<{tag} {name}={value[:40]!r}>"
        href = attrs.get("href")
        if href is not None:
            assert not href.startswith("//") and ":" not in href, f"<{tag} href={href!r}>"
        assert tag not in ("link", "iframe", "object", "embed", "base", "form")
    policy = [attrs.get("content") or "" for tag, attrs in page.tags if attrs.get("http-equiv")]
    assert policy and "default-src 'none'" in policy[0] and "img-src data:" in policy[0]


def test_image_report_shows_verdict_reasons_maps_and_versions(page, image_file):
    document = parse(page)
    ids = {attrs.get("id"): (tag, attrs) for tag, attrs in document.tags if attrs.get("id")}
    assert "Manipulated" in page and "93.0 %" in page and "#c43e00" in page
    assert "hard evidence from localization" in page
    assert "fpr=0.01 (threshold 0.8422)" in page
    assert "The image was probably edited (score 0.93)." in page
    assert "Machine narration by tiny-llm-1" in page and "A model retells: the region was pasted." in page
    # the picture, a layer above it, and native labelled controls
    assert ids["base"][1]["src"].startswith("data:image/jpeg;base64,") and ids["base"][1]["alt"]
    assert ids["overlay"][1]["src"].startswith("data:image/png;base64,") and ids["overlay"][1]["alt"]
    assert ids["opacity"][1]["type"] == "range"
    labels = {attrs.get("for") for tag, attrs in document.tags if tag == "label"}
    assert {"opacity", "map-select", "show-boxes"} <= labels
    options = [attrs["value"] for tag, attrs in document.tags if tag == "option"]
    assert options[:2] == ["ela", "noise"] and "fused" not in options  # no fused map with QUICK
    rects = [attrs for tag, attrs in document.tags if tag == "rect"]
    assert [(r["x"], r["y"], r["width"], r["height"]) for r in rects] == [("100", "60", "80", "64")]
    assert ids["boxes"][1]["viewbox"] == "0 0 256 192"
    # the spectrum, decodable
    spectrum = next(
        attrs for tag, attrs in document.tags if tag == "img" and "spectrum" in (attrs.get("alt") or "")
    )
    picture = Image.open(io.BytesIO(base64.b64decode(spectrum["src"].split(",", 1)[1])))
    assert picture.format == "PNG" and picture.width > 200
    # evidence (pointing first), metadata table, versions and hash
    assert page.index("The region x 100–180") < page.index("Camera: Canon EOS 5D")
    assert "<td>make</td><td>Canon</td>" in page and "<td>gps</td><td>no</td>" in page
    assert "pixelsleuth-0.1.0/test" in page and "pixelsleuth 0.1.0" in page
    assert sha256_of(image_file) in page


def test_pages_load_nothing_from_outside(page, image_file, tmp_path):
    assert_self_contained(page)
    written = write_reports([record_for(image_file)], tmp_path / "out", options=QUICK)
    assert written.index is not None
    assert_self_contained(written.index.read_text("utf-8"))
    error = {"path": "x.png", "sha256": None, "verdict": "error", "error": {"type": "t", "message": "m"}}
    assert_self_contained(render_image_report(error, None))


def test_the_checker_catches_an_external_url():
    with pytest.raises(AssertionError, match=r"cdn\.example"):
        assert_self_contained(
            "<meta http-equiv=x content=\"default-src 'none'; img-src data:\"><img src='//cdn.example/x.png'>"
        )


def test_only_the_pages_own_script_may_run(page):
    document = parse(page)
    assert len(document.scripts) == 1
    digest = base64.b64encode(hashlib.sha256(document.scripts[0].encode()).digest()).decode()
    policy = next(attrs["content"] for tag, attrs in document.tags if attrs.get("http-equiv"))
    assert f"script-src 'sha256-{digest}'" in policy


def test_text_from_the_file_is_escaped_everywhere(image_file, tmp_path):
    hostile = record_for(
        image_file,
        path=f"/cases/{HOSTILE}.png",
        explanation=HOSTILE,
        narration={"text": HOSTILE, "model": HOSTILE},
        decided_by=HOSTILE,
        operating_point={"label": HOSTILE, "note": HOSTILE},
        analysis_version=HOSTILE,
    )
    hostile["evidence"][1] = {
        "source": "exif",
        "finding": HOSTILE,
        "points_to": "none",
        "strength": 0.0,
        "detail": HOSTILE,
        "data": {"make": HOSTILE, HOSTILE: "key too", "nested": [{"a": HOSTILE}]},
    }
    hostile["evidence"][0]["data"]["regions"][0]["methods"] = [HOSTILE]
    error = {
        "path": HOSTILE,
        "sha256": None,
        "verdict": "error",
        "error": {"type": HOSTILE, "message": HOSTILE},
    }
    pages = [
        render_image_report(hostile, image_file, options=QUICK),
        render_image_report(error, None),
        render_batch_report([BatchRow.from_record(hostile, "a.html"), BatchRow.from_record(error, None)]),
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        assert len(parse(html).scripts) == 1
        assert_self_contained(html)


def test_a_missing_image_still_gives_a_report(tmp_path):
    record = record_for(tmp_path / "gone.png")
    html = render_image_report(record, tmp_path / "gone.png", options=QUICK)
    assert "is no longer there" in html and "Manipulated" in html and "Canon" in html
    assert 'id="base"' not in html and 'id="opacity"' not in html and "<rect" not in html
    assert_self_contained(html)


def test_a_changed_file_is_not_shown_as_the_analysed_one(image_file):
    record = record_for(image_file, sha256="0" * 64)
    visuals = build_visuals(record, image_file, QUICK)
    assert not visuals.available and "has changed since it was analysed" in visuals.notes[0]


def test_an_error_result_gets_a_short_report():
    record = {
        "schema": "pixelsleuth.analysis/1",
        "path": "broken.jpg",
        "sha256": "ab" * 32,
        "verdict": "error",
        "score": None,
        "evidence": [],
        "error": {"type": "truncated_image", "message": "truncated JPEG: the file ends 312 bytes early"},
    }
    html = render_image_report(record, "broken.jpg")
    assert "truncated JPEG: the file ends 312 bytes early" in html and "truncated_image" in html
    assert "Error" in html and 'id="evidence"' not in html and 'id="image"' not in html


def test_an_uncalibrated_score_is_not_called_a_probability():
    record = {"path": "a.png", "sha256": "ab" * 32, "verdict": "manipulated", "score": 0.9}
    combined = render_image_report({**record, "decided_by": "evidence-combination"}, None)
    assert "score, uncalibrated" in combined and "not a probability" in combined and "0.900" in combined
    assert "probability not authentic" not in combined
    calibrated = render_image_report({**record, "decided_by": "calibrated-score"}, None)
    assert "probability not authentic" in calibrated and "the calibrated probability" in calibrated
    assert "90.0 %" in calibrated


def test_a_failed_narration_says_so():
    narration = {
        "text": "",
        "model": "m",
        "error": {"type": "narration_timeout", "message": "no answer in 30 s"},
    }
    record = {"path": "a.png", "sha256": "ab" * 32, "verdict": "authentic", "narration": narration}
    assert "Machine narration was asked for but not made: no answer in 30 s" in render_image_report(
        record, None
    )


def test_an_old_record_without_the_newer_keys_renders(tmp_path):
    old = {
        "schema": "pixelsleuth.analysis/1",
        "path": "old.png",
        "sha256": "cd" * 32,
        "verdict": "inconclusive",
    }
    html = render_image_report(old, None)
    assert "Inconclusive" in html and "not recorded" in html and "Machine narration" not in html


def test_fused_map_is_recomputed_when_the_result_has_localization(image_file):
    visuals = build_visuals(record_for(image_file), image_file)
    assert [layer.name for layer in visuals.layers][:3] == ["fused", "ela", "noise"]
    assert visuals.display_width == 256 and visuals.thumbnail_uri.startswith("data:image/jpeg;base64,")
    plain = record_for(image_file, evidence=[])
    assert "fused" not in [layer.name for layer in build_visuals(plain, image_file).layers]


def test_report_file_names_are_unique_and_safe(tmp_path):
    sha = "0123456789abcdef" * 4
    records = [
        {"path": "/a/../../etc/passwd", "sha256": sha},
        {"path": "/b/a b<c>\u00e9.png", "sha256": sha},
        {"path": "/c/a b<c>\u00e9.png", "sha256": sha},
        {"path": "/d/.hidden", "sha256": None},
        {"path": None, "sha256": "not hex"},
    ]
    writer = ReportWriter(tmp_path / "out", QUICK)
    pages = [writer.add({**record, "verdict": "inconclusive"}) for record in records]
    names = [page.name for page in pages]
    assert len(set(names)) == len(names) and all(page.parent == tmp_path / "out" for page in pages)
    assert all(re.fullmatch(r"[0-9a-f]{16}-[A-Za-z0-9_-]+\.html", name) for name in names), names
    assert names[1] == "0123456789abcdef-a-b-c.html" and names[2] == "0123456789abcdef-a-b-c-2.html"
    assert report_filename({"path": "x/IMG_1.JPG", "sha256": sha}) == "0123456789abcdef-IMG_1"


def test_batch_index_counts_histogram_sortable_table_and_links(image_file, tmp_path):
    records = [
        record_for(image_file),
        record_for(tmp_path / "missing.png", verdict="authentic", score=0.05, sha256="1" * 64),
        {
            "path": "bad.png",
            "sha256": "2" * 64,
            "verdict": "error",
            "error": {"type": "x", "message": "unreadable"},
        },
    ]
    written = write_reports(records, tmp_path / "out", options=QUICK)
    assert written.failures == [] and len(written.pages) == 3
    html = written.index.read_text("utf-8")
    document = parse(html)
    links = [attrs["href"] for tag, attrs in document.tags if tag == "a"]
    assert sorted(links) == sorted(page.name for page in written.pages)
    assert all((tmp_path / "out" / link).is_file() for link in links)
    for page in written.pages:  # each page links back to the index
        assert 'href="index.html"' in page.read_text("utf-8")
    assert "1 Manipulated" in html and "1 Authentic" in html and "1 Error" in html
    bars = [attrs for tag, attrs in document.tags if tag == "rect"]
    assert len(bars) == 2  # two scores, in two bins; the error has none
    assert "1 image(s) without a score" in html
    headers = [attrs for tag, attrs in document.tags if tag == "button"]
    assert len(headers) == 4
    sort_keys = [
        attrs.get("data-sort") for tag, attrs in document.tags if tag == "td" and "data-sort" in attrs
    ]
    assert "0.93" in sort_keys and "-1" in sort_keys
    thumbnails = [attrs for tag, attrs in document.tags if tag == "img"]
    assert len(thumbnails) == 1 and thumbnails[0]["src"].startswith("data:image/jpeg;base64,")
    assert "unreadable" in html  # the error's sentence is its strongest finding


def test_a_page_that_fails_is_reported_and_the_batch_goes_on(image_file, tmp_path, monkeypatch):
    real = writer_module.build_visuals

    def flaky(record, path, options=None):
        if record.get("verdict") == "authentic":
            raise RuntimeError("boom")
        return real(record, path, options)

    monkeypatch.setattr(writer_module, "build_visuals", flaky)
    records = [record_for(image_file), record_for(image_file, verdict="authentic", sha256="3" * 64)]
    written = write_reports(records, tmp_path / "out", options=QUICK)
    assert len(written.pages) == 1 and len(written.failures) == 1
    assert "could not be written" in written.failures[0]
    html = written.index.read_text("utf-8")
    assert "no report: an internal error" in html and html.count("<tr>") == 3  # header and both rows


def test_select_records_by_path_folder_and_sha_prefix(tmp_path):
    old = {"path": str(tmp_path / "a" / "x.png"), "sha256": "abcdef" + "0" * 58, "verdict": "authentic"}
    new = {**old, "verdict": "manipulated"}
    other = {"path": str(tmp_path / "b" / "y.png"), "sha256": "1" * 64}
    chosen, unmatched = select_records([old, other, new], [])
    assert chosen == [other, new] and unmatched == []
    assert select_records([old, other], [str(tmp_path / "a")])[0] == [old]
    assert select_records([old, other], ["111111", "nothing"]) == ([other], ["nothing"])


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(spliced_rgb()).save(images / "spliced.png")
    Image.fromarray(photo_like_rgb(96, 64, seed=1)).save(images / "photo.jpg", quality=90)
    return images


def test_report_command_from_the_store(folder, tmp_path):
    store = tmp_path / "r.sqlite3"
    scanned = runner.invoke(
        app,
        [
            "scan",
            "--json",
            "--no-default-detectors",
            "--file-timeout",
            "0",
            "--store",
            str(store),
            str(folder),
        ],
    )
    assert scanned.exit_code == 0, scanned.output
    results = [json.loads(line) for line in scanned.stdout.splitlines() if line.startswith("{")]
    out = tmp_path / "reports"
    made = runner.invoke(app, ["report", "--store", str(store), "-o", str(out)])
    assert made.exit_code == 0, made.output
    pages = sorted(path.name for path in out.glob("*.html"))
    assert pages == sorted([*(report_filename(r) + ".html" for r in results), "index.html"])
    one = runner.invoke(
        app, ["report", str(folder / "photo.jpg"), "--store", str(store), "-o", str(tmp_path / "one")]
    )
    assert one.exit_code == 0 and len(list((tmp_path / "one").glob("*.html"))) == 2
    page = next(path for path in (tmp_path / "one").glob("*.html") if path.name != "index.html")
    assert 'id="base"' in page.read_text("utf-8")  # the image was found again and shown


def test_report_command_usage_errors(folder, tmp_path):
    missing = runner.invoke(
        app, ["report", "--store", str(tmp_path / "none.sqlite3"), "-o", str(tmp_path / "o")]
    )
    assert missing.exit_code == 2
    store = tmp_path / "r.sqlite3"
    runner.invoke(
        app, ["scan", "--no-default-detectors", "--file-timeout", "0", "--store", str(store), str(folder)]
    )
    nothing = runner.invoke(app, ["report", "deadbeef", "--store", str(store), "-o", str(tmp_path / "o")])
    assert nothing.exit_code == 2 and "no stored result matches" in nothing.output
    no_output = runner.invoke(app, ["report", "--store", str(store)])
    assert no_output.exit_code == 2


def test_report_command_exits_1_when_a_page_fails(folder, tmp_path, monkeypatch):
    store = tmp_path / "r.sqlite3"
    runner.invoke(
        app, ["scan", "--no-default-detectors", "--file-timeout", "0", "--store", str(store), str(folder)]
    )

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(writer_module, "render_image_report", broken)
    result = runner.invoke(app, ["report", "--store", str(store), "-o", str(tmp_path / "o")])
    assert result.exit_code == 1 and "could not be written" in result.output
    assert (tmp_path / "o" / "index.html").is_file()


def test_scan_report_writes_each_page_and_the_index(folder, tmp_path):
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "reports"
    result = runner.invoke(
        app,
        [
            "scan",
            "--json",
            "--no-default-detectors",
            "--file-timeout",
            "0",
            "--no-store",
            "--report",
            str(out),
            str(folder),
        ],
    )
    assert result.exit_code == 1, result.output  # the broken file is an error; the batch went on
    results = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 3
    for record in results:
        page = out / (report_filename(record) + ".html")
        assert page.is_file(), record["path"]
        if record["verdict"] == "error":
            assert record["error"]["message"].split(":")[0] in page.read_text("utf-8")
        else:
            text = page.read_text("utf-8")
            assert 'id="base"' in text and record["sha256"] in text and "pixelsleuth-0.1.0/" in text
    index = (out / "index.html").read_text("utf-8")
    assert index.count('<a href="') == 3


def test_scan_report_folder_that_cannot_be_made_is_a_usage_error(folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(
        app,
        [
            "scan",
            "--no-default-detectors",
            "--file-timeout",
            "0",
            "--no-store",
            "--report",
            str(blocker / "x"),
            str(folder),
        ],
    )
    assert result.exit_code == 2 and "cannot write reports" in result.output
