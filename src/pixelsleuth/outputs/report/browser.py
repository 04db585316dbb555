"""Looking at a report the way a person does: in headless Chromium, through Playwright.

Used by the browser tests and by `scripts/report_screenshot.py`. It drives the system's Chromium
(Debian's ``chromium`` package, `CHROMIUM`); nothing is downloaded (never ``playwright install``).
Playwright is a test extra, imported only when a browser is asked for.

Example:
    >>> reason = browser_unavailable()  # None when a headless Chromium can be launched
    >>> reason is None or isinstance(reason, str)
    True
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("PIXELSLEUTH_CHROMIUM", "/usr/lib/chromium/chromium")
VIEWPORT = {"width": 1200, "height": 900}


def browser_unavailable() -> str | None:
    """Why no browser can be launched here (Playwright or Chromium missing), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install playwright; a test extra)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; `make test` tries)"
    return None


@contextmanager
def launched_browser() -> Iterator[Any]:
    """A headless Chromium (a Playwright `Browser`), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def open_report(browser: Any, html_path: str | Path, *, viewport: dict[str, int] | None = None) -> Any:
    """A new page (Playwright `Page`) showing the report file, with every picture loaded."""
    page = browser.new_page(viewport=viewport or VIEWPORT, device_scale_factor=1)
    page.goto(Path(html_path).resolve().as_uri())
    page.wait_for_load_state("load")
    page.wait_for_function("Array.from(document.images).every(image => image.complete)")
    return page


def screenshot_report(
    html_path: str | Path,
    png_path: str | Path,
    *,
    browser: Any = None,
    full_page: bool = False,
    viewport: dict[str, int] | None = None,
) -> Path:
    """Save a PNG screenshot of the report (the first screen, or the whole page) and return its path.

    Args:
        html_path: the report file.
        png_path: where to write the PNG (folders are created).
        browser: a browser from `launched_browser` to reuse; by default one is launched for this call.
        full_page: the whole page rather than the first `viewport` of it.
        viewport: {"width": ..., "height": ...} in CSS pixels (default 1200 x 900).
    """
    target = Path(png_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if browser is None:
        with launched_browser() as own:
            return screenshot_report(html_path, target, browser=own, full_page=full_page, viewport=viewport)
    page = open_report(browser, html_path, viewport=viewport)
    try:
        page.screenshot(path=str(target), full_page=full_page)
    finally:
        page.close()
    return target
