"""The web page of `pixelsleuth serve` in a real browser, against the real service, checked by its pixels.

The service (`create_app`, no default detectors: provenance and pixel checks only, fast) runs under
uvicorn in a thread on a free port of 127.0.0.1, with an API key; headless Chromium (Debian's, through
Playwright; nothing downloaded) opens `/` and uploads generated images through the page's own inputs.
Skips (with the reason) where Playwright, chromium, fastapi or the service package is missing. One
browser and one server serve the whole module.
"""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from imagegen import exif_block, photo_like_rgb
from pixelsleuth.outputs.report.browser import browser_unavailable, launched_browser
from pixelsleuth.outputs.report.record_view import VERDICTS


def _unavailable() -> str | None:
    for module in ("fastapi", "uvicorn", "httpx", "multipart"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed (the `serve` extra)"
    try:
        from pixelsleuth.outputs.service import create_app  # noqa: F401
    except ImportError as error:
        return f"pixelsleuth.outputs.service cannot be imported ({error})"
    return browser_unavailable()


REASON = _unavailable()
pytestmark = pytest.mark.skipif(
    REASON is not None, reason=f"no browser or service for the page tests: {REASON}"
)

KEY = "page-test-key"
STATIC = Path(__file__).resolve().parents[1] / "src/pixelsleuth/outputs/service/static"
BOX = (255, 210, 0)  # region outlines (CSS --box)
TIMEOUT_MS = 60_000  # an analysis in a fresh worker process on a busy machine
HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[index : index + 2], 16) for index in (1, 3, 5))


def share_of(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> float:
    return float((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).mean())


def photo_with_square_png(width: int = 320, height: int = 240) -> bytes:
    """A photo-like picture, JPEG-compressed once, with a bright square pasted in afterwards (as PNG)."""
    buffer = io.BytesIO()
    Image.fromarray(photo_like_rgb(width, height, seed=3)).save(buffer, "JPEG", quality=70)
    pixels = np.asarray(Image.open(buffer).convert("RGB")).copy()
    noise = np.random.default_rng(4).normal(0, 3, (height // 3, width // 3, 3))
    pixels[height // 3 : 2 * (height // 3), width // 3 : 2 * (width // 3)] = np.clip(235 + noise, 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def generated_png() -> bytes:
    """The picture with AUTOMATIC1111's generation parameters in a PNG text chunk: hard evidence."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Model: v1-5")
    out = io.BytesIO()
    Image.open(io.BytesIO(photo_with_square_png())).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def edited_jpeg() -> bytes:
    """The picture as a JPEG whose EXIF names Photoshop: a weak finding, combined without calibration."""
    out = io.BytesIO()
    image = Image.open(io.BytesIO(photo_with_square_png()))
    image.save(out, "JPEG", quality=90, exif=exif_block(software="Adobe Photoshop 25.0 (Windows)"))
    return out.getvalue()


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` under uvicorn in a thread on a free port of 127.0.0.1; yields its base URL.

    The socket is bound and listening before the thread starts, so the first request simply waits in
    the backlog until the server accepts it: no polling for readiness.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def service_app(store: Path, **options: Any) -> Any:
    from pixelsleuth.outputs.service import ServiceConfig, create_app

    return create_app(ServiceConfig(store=store, default_detectors=False, **options))


@pytest.fixture(scope="module")
def base_url(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("serve-page")
    app = service_app(folder / "results.sqlite3", api_keys=(KEY,), rate_limit_per_minute=0)
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as launched:
        yield launched


@pytest.fixture
def page(browser, base_url):
    """The page in a fresh context (its own session storage), with the API key typed in."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, device_scale_factor=1)
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    opened.on("request", lambda request: requests.append(request.url))
    opened.goto(base_url + "/")
    opened.fill("#api-key", KEY)
    yield opened
    context.close()
    foreign = [url for url in requests if not url.startswith((base_url + "/", "blob:" + base_url, "data:"))]
    assert foreign == []


def upload(page, name: str, data: bytes, mime: str = "image/png") -> Any:
    """Give the page one file through its file input; the new result card (a Locator)."""
    cards = page.locator("#results .card")
    before = cards.count()
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": mime, "buffer": data}])
    return cards.nth(before)


def wait_for_result(card) -> None:
    card.locator(".stage[data-loaded]").wait_for()


def shot(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(np.int16)


def api_error(base_url: str, name: str, data: bytes, mime: str, key: str | None = KEY) -> tuple[int, str]:
    """What the service itself answers to an upload: (status, its error sentence)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.post(
        base_url + "/v1/analyze",
        files={"file": (name, data, mime)},
        headers=headers,
        timeout=TIMEOUT_MS / 1000,
    )
    return response.status_code, response.json()["error"]["message"]


def test_page_is_keyboard_usable_and_labelled(page):
    # a listener turns Playwright's interception of file choosers on now, well before the key press
    # (`expect_file_chooser` alone turns it on too late about half of the time)
    page.on("filechooser", lambda chooser: None)
    for control in ("#file-input", "#localize", "#api-key"):
        assert page.locator(f"label[for={control[1:]}]").count() == 1
    assert page.locator("#progress").get_attribute("aria-live") == "polite"
    assert page.evaluate("document.getElementById('drop-zone').tagName") == "BUTTON"
    page.locator("#drop-zone").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")  # the drop zone opens the picker
    assert chooser.value.is_multiple()
    chooser.value.set_files(
        files=[{"name": "chosen.png", "mimeType": "image/png", "buffer": photo_with_square_png()}]
    )
    card = page.locator("#results .card").first
    wait_for_result(card)
    assert card.locator(".card-file").inner_text() == "chosen.png"
    assert "Done: 1 of 1 analysed" in page.locator("#progress").inner_text()
    assert card.locator("img.base").get_attribute("alt").startswith("The analysed image, chosen.png")
    assert card.locator("img.layer").get_attribute("alt").startswith("Map overlay: ")


def test_verdict_banner_and_overlay_are_drawn(page):
    card = upload(page, "generated.png", generated_png())
    wait_for_result(card)
    assert card.locator(".verdict-title").inner_text() == VERDICTS["ai-generated"].title
    assert share_of(shot(card.locator(".card-banner")), rgb(VERDICTS["ai-generated"].colour)) > 0.5
    assert card.locator(".card-heading .score").inner_text() == "99.0 % probability not authentic"
    facts = card.locator(".card-section").first.inner_text()
    assert "hard evidence from generator-text" in facts and "fpr=0.01" in facts  # how; operating point
    assert "AUTOMATIC1111" in card.locator(".explanation").inner_text()
    first = card.locator("table.evidence tbody tr").first
    assert first.locator("td").first.inner_text() == "generator-text"
    assert first.locator(".chip").inner_text() == "ai-generated"
    assert first.locator(".bar").get_attribute("aria-valuenow") == "0.95"
    assert "generator-text" in card.locator(".tables").inner_text()  # the metadata tables
    assert card.locator("a.report-link").get_attribute("href").endswith("/report")

    stage = card.locator(".stage")
    slider = card.locator("input.opacity")
    slider.focus()
    page.keyboard.press("Home")  # keyboard: a native range input
    assert card.locator(".opacity-value").inner_text() == "0 %"
    clear = shot(stage)
    page.keyboard.press("End")
    assert card.locator(".opacity-value").inner_text() == "100 %"
    covered = shot(stage)
    assert (np.abs(covered - clear).max(axis=-1) > 40).mean() > 0.3  # the map covers the picture

    select = card.locator("select.map-select")
    names = [value for value in select.locator("option").evaluate_all("options => options.map(o => o.value)")]
    assert {"ela", "noise"} <= set(names)
    other = next(name for name in names if name != select.input_value())
    select.select_option(other)
    card.locator(f".stage[data-map='{other}']").wait_for()
    switched = shot(stage)
    assert np.abs(switched - covered).max(axis=-1).mean() > 10
    assert card.locator("img.layer").get_attribute("alt").startswith("Map overlay: ")


def test_not_an_image_shows_the_servers_sentence(page, base_url):
    data = b"just some words, not a picture\n" * 4
    status, sentence = api_error(base_url, "notes.txt", data, "text/plain")
    assert status == 415
    card = upload(page, "notes.txt", data, "text/plain")
    card.locator(".error-message").wait_for()
    assert card.locator(".error-message").inner_text() == sentence
    assert "1 failed" in page.locator("#progress").inner_text()


def test_api_key_is_required_and_kept_for_the_session(page, base_url):
    page.fill("#api-key", "")
    status, sentence = api_error(base_url, "square.png", photo_with_square_png(), "image/png", key=None)
    assert status == 401
    refused = upload(page, "square.png", photo_with_square_png())
    refused.locator(".error-message").wait_for()
    assert refused.locator(".error-message").inner_text() == sentence
    page.fill("#api-key", KEY)
    page.reload()
    assert page.locator("#api-key").input_value() == KEY  # session storage
    card = upload(page, "edited.jpg", edited_jpeg(), "image/jpeg")
    wait_for_result(card)
    assert card.locator(".card-heading .score").inner_text().endswith("uncalibrated score")  # no detectors
    assert "Photoshop" in card.locator("table.evidence").inner_text()


def test_hostile_file_name_is_text_and_never_runs(page):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    card = upload(page, HOSTILE_NAME, photo_with_square_png())
    wait_for_result(card)
    assert card.locator(".card-file").inner_text() == HOSTILE_NAME
    assert card.locator(".card-file img, .card-banner img").count() == 0
    assert page.locator("img[src=x]").count() == 0
    assert HOSTILE_NAME in card.locator("img.base").get_attribute("alt")
    assert dialogs == []


def test_localization_regions_are_outlined(page, base_url):
    """`?localize=true` is asked for when ticked; region boxes of localization evidence are drawn.

    Whether this small picture gets a region is the analysis's business, so the service's real answer
    is given one region (in the contract's layout) on its way to the page.
    """
    asked: list[str] = []

    def add_region(route) -> None:
        asked.append(route.request.url)
        response = route.fetch()
        body = response.json()
        if response.ok:
            analysis = body["analysis"]
            width, height = analysis["width"], analysis["height"]
            region = {
                "left": width // 3,
                "top": height // 3,
                "right": 2 * width // 3,
                "bottom": 2 * height // 3,
            }
            analysis["evidence"].append(
                {
                    "source": "localization",
                    "finding": "One region looks edited.",
                    "points_to": "manipulated",
                    "strength": 0.6,
                    "detail": "",
                    "data": {"regions": [{**region, "confidence": 0.8, "methods": ["ela", "noise"]}]},
                }
            )
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/v1/analyze*", add_region)
    page.check("#localize")
    card = upload(page, "square.png", photo_with_square_png())
    wait_for_result(card)
    assert asked and asked[0].endswith("/v1/analyze?localize=true")
    options = card.locator("select.map-select option")
    assert options.first.get_attribute("value") == "fused"  # the localization map comes first
    card.locator("input.opacity").fill("0")
    stage = card.locator(".stage")
    boxed = shot(stage)
    height, width = boxed.shape[:2]
    ring = boxed[height // 3 - 4 : 2 * height // 3 + 4, width // 3 - 4 : 2 * width // 3 + 4]
    assert share_of(ring, BOX, tolerance=30) > 0.03
    card.locator("input.show-boxes").uncheck()
    assert share_of(shot(stage), BOX, tolerance=30) < share_of(boxed, BOX, tolerance=30) / 3
    assert "confidence 0.80" in card.locator(".stage svg rect title").first.text_content()


def test_static_files_are_the_packaged_ones(base_url):
    import httpx

    for name in ("index.html", "app.js", "app.css"):
        path = "/" if name == "index.html" else f"/static/{name}"
        response = httpx.get(base_url + path, timeout=30)
        assert response.status_code == 200
        assert response.content == (STATIC / name).read_bytes()


def test_verdict_colours_are_the_reports():
    css = (STATIC / "app.css").read_text("utf-8")
    for key, view in VERDICTS.items():
        assert f".verdict-{key} {{ --verdict: {view.colour}; }}" in css
        assert f".points-{key} {{ --point: {view.colour}; }}" in css
    script = (STATIC / "app.js").read_text("utf-8")
    for key, view in VERDICTS.items():
        assert f'"{key}": ["{view.title}", "{view.words}"]' in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script


def test_dropped_files_get_a_card_each_and_the_report_opens_with_the_key(page):
    files = [("generated.png", generated_png(), "image/png"), ("edited.jpg", edited_jpeg(), "image/jpeg")]
    page.evaluate(
        """files => {
            const transfer = new DataTransfer();
            for (const [name, bytes, type] of files) {
                transfer.items.add(new File([new Uint8Array(bytes)], name, {type}));
            }
            const zone = document.getElementById("drop-zone");
            const options = {dataTransfer: transfer, bubbles: true, cancelable: true};
            zone.dispatchEvent(new DragEvent("dragover", options));
            zone.dispatchEvent(new DragEvent("drop", options));
        }""",
        [[name, list(data), mime] for name, data, mime in files],
    )
    cards = page.locator("#results .card")
    for index, (name, _, _) in enumerate(files):
        wait_for_result(cards.nth(index))
        assert cards.nth(index).locator(".card-file").inner_text() == name
    assert cards.count() == 2
    assert "Done: 2 of 2 analysed." in page.locator("#progress").inner_text()
    with page.context.expect_page() as opened:
        cards.first.locator("a.report-link").click()  # fetched with the key: a plain link would get 401
    report = opened.value
    report.locator("#verdict").wait_for()
    assert report.locator("#verdict .verdict-title").inner_text() == VERDICTS["ai-generated"].title
    report.close()
