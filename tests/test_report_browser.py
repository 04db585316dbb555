"""HTML reports in a real browser: headless Chromium through Playwright, checked by their pixels.

Skips (with the reason) where Playwright or Debian's chromium is missing; `make test` installs both when
it can. One browser serves the whole module.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from pixelsleuth.outputs.report import ReportOptions, write_reports
from pixelsleuth.outputs.report.browser import (
    browser_unavailable,
    launched_browser,
    open_report,
    screenshot_report,
)
from pixelsleuth.outputs.report.record_view import VERDICTS
from test_report_html import HOSTILE, record_for, spliced_rgb

REASON = browser_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no browser for the report tests: {REASON}")

BANNER = VERDICTS["manipulated"].colour  # the record's verdict
BOX = (255, 210, 0)  # region outlines (CSS --box)


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[index : index + 2], 16) for index in (1, 3, 5))


@pytest.fixture(scope="module")
def browser():
    with launched_browser() as launched:
        yield launched


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-report")
    image = folder / "spliced.png"
    Image.fromarray(spliced_rgb()).save(image)
    hostile = record_for(
        image, sha256="e" * 64, score=0.41, explanation=HOSTILE, path=str(folder / "gone.png")
    )
    written = write_reports(
        [record_for(image), hostile], folder / "out", options=ReportOptions(fused_map=False)
    )
    assert not written.failures
    return written


@pytest.fixture
def page(browser, reports):
    opened = open_report(browser, reports.pages[0])
    yield opened
    opened.close()


def shot(page, selector: str | None = None) -> np.ndarray:
    """The page (or one element of it) as the browser drew it, RGB."""
    target = page.locator(selector) if selector else page
    return np.asarray(Image.open(io.BytesIO(target.screenshot())).convert("RGB")).astype(np.int16)


def share_of(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> float:
    return float((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).mean())


def test_verdict_banner_is_drawn_in_the_verdicts_colour(page):
    banner = shot(page, "#verdict")
    assert share_of(banner, rgb(BANNER)) > 0.5
    assert share_of(shot(page), rgb(BANNER)) > 0.05


def test_opacity_slider_draws_the_map_over_the_image(page):
    slider = page.locator("#opacity")
    slider.focus()
    page.keyboard.press("Home")  # keyboard: the slider is a native range input
    assert page.locator("#opacity-value").inner_text() == "0 %"
    clear = shot(page, ".stage")
    page.keyboard.press("End")
    assert page.locator("#opacity-value").inner_text() == "100 %"
    covered = shot(page, ".stage")
    source = page.locator("#base").get_attribute("src").split(",", 1)[1]
    base = np.asarray(Image.open(io.BytesIO(base64.b64decode(source))).convert("RGB")).astype(np.int16)
    height, width = base.shape[:2]
    assert (
        np.abs(clear[:height, :width] - base).mean() < 4
    )  # at 0: the picture as it is (and the box outline)
    difference = np.abs(covered - clear).max(axis=-1)
    assert (difference > 40).mean() > 0.3  # at 1 the map covers the picture (0.57 when written)
    # the pasted patch (x 100-180, y 60-124 of 256 x 192) is where ELA is highest: yellow-white in inferno
    height, width = covered.shape[:2]
    inside = covered[
        int(height * 70 / 192) : int(height * 114 / 192), int(width * 110 / 256) : int(width * 170 / 256)
    ]
    outside = covered[int(height * 150 / 192) :, : int(width * 60 / 256)]
    assert inside.sum(axis=-1).mean() > outside.sum(axis=-1).mean() + 150


def test_region_box_is_outlined_on_the_image(page):
    stage = shot(page, ".stage")
    height, width = stage.shape[:2]
    ring = stage[
        int(height * 55 / 192) : int(height * 129 / 192), int(width * 95 / 256) : int(width * 185 / 256)
    ]
    assert share_of(ring, BOX, tolerance=30) > 0.03
    page.locator("#show-boxes").uncheck()
    assert share_of(shot(page, ".stage"), BOX, tolerance=30) < share_of(stage, BOX, tolerance=30) / 3


def test_map_selector_switches_the_overlay(page):
    page.locator("#opacity").fill("1")
    ela = shot(page, ".stage")
    ela_reading = page.locator("#map-reading").inner_text()
    page.locator("#map-select").select_option("noise")
    page.evaluate("document.getElementById('overlay').decode()")
    noise = shot(page, ".stage")
    assert np.abs(noise - ela).max(axis=-1).mean() > 10
    assert page.locator("#map-reading").inner_text() != ela_reading
    assert page.locator("#overlay").get_attribute("alt") == "Map overlay: noise inconsistency"


def test_hostile_text_is_shown_never_run(browser, reports):
    dialogs: list[str] = []
    opened = open_report(browser, reports.pages[1])
    try:
        opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        opened.reload()
        assert HOSTILE in opened.locator("#explanation").inner_text()
        assert "no longer there" in opened.inner_text("#image")
        assert opened.evaluate("document.scripts.length") == 1
        assert opened.locator("#explanation img").count() == 0
    finally:
        opened.close()
    assert dialogs == []


def test_index_table_sorts_and_links(browser, reports):
    opened = open_report(browser, reports.index)
    try:

        def scores() -> list[str]:
            return opened.locator("#results tbody tr td:nth-child(4)").all_inner_texts()

        assert scores() == ["0.930", "0.410"]  # the order the results came in
        score_button = opened.locator("#results thead button", has_text="score")
        score_button.click()
        assert scores() == ["0.410", "0.930"]
        assert opened.locator("#results th[aria-sort=ascending]").count() == 1
        score_button.press("Enter")  # keyboard: headings are buttons
        assert scores() == ["0.930", "0.410"]
        assert opened.locator("#results th[aria-sort=descending]").count() == 1
        opened.locator("#results tbody a").first.click()
        opened.wait_for_load_state("load")
        assert opened.url.endswith(".html") and opened.locator("#verdict").count() == 1
    finally:
        opened.close()


def test_screenshot_helper_writes_the_report_as_png(browser, reports, tmp_path):
    target = screenshot_report(reports.pages[0], tmp_path / "shot.png", browser=browser)
    picture = np.asarray(Image.open(target).convert("RGB")).astype(np.int16)
    assert picture.shape[1] == 1200 and share_of(picture, rgb(BANNER)) > 0.05
