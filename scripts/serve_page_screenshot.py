"""Make the README's picture of `pixelsleuth serve`'s web page with a result, as headless Chromium shows it.

    python scripts/serve_page_screenshot.py [--output docs/images/serve-page.png] [--fast]

The real service (`create_app`, default detectors unless --fast, a temporary store) runs on a free port
of 127.0.0.1 through the helper the page's browser tests use (`tests/test_service_page_browser.py`);
the edited astronaut of `scripts/localization_example.py` is uploaded through the page's file input with
"Localize" ticked, and once its card shows the image with its maps, the page is saved, reduced to 256
colours so the PNG stays small. Needs the `serve` extra, Playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from localization_example import edited_photo
from PIL import Image

from pixelsleuth.outputs.report.browser import browser_unavailable, launched_browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_service_page_browser import serving  # the tests' helper

VIEWPORT = {"width": 1200, "height": 1560}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/images/serve-page.png"))
    parser.add_argument("--fast", action="store_true", help="No default detectors (seconds, not a minute).")
    args = parser.parse_args()
    reason = browser_unavailable()
    if reason:
        raise SystemExit(f"cannot take the screenshot: {reason}")
    from pixelsleuth.outputs.service import ServiceConfig, create_app

    buffer = io.BytesIO()
    Image.fromarray(edited_photo()[0]).save(buffer, "PNG")
    with tempfile.TemporaryDirectory(prefix="pixelsleuth-serve-page-") as scratch:
        config = ServiceConfig(
            store=Path(scratch) / "results.sqlite3",
            default_detectors=not args.fast,
            localize_timeout_s=900,
        )
        with serving(create_app(config)) as base_url, launched_browser() as browser:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(900_000)
            page.goto(base_url + "/")
            page.check("#localize")
            upload = {"name": "edited-astronaut.png", "mimeType": "image/png", "buffer": buffer.getvalue()}
            page.set_input_files("#file-input", files=[upload])
            card = page.locator("#results .card").first
            card.locator(".stage[data-loaded]").wait_for()
            page.locator("#localize").blur()
            shot = page.screenshot()
            verdict = card.locator(".card-heading").inner_text().replace("\n", " ")
            page.close()
    output = args.output.absolute()
    output.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.open(io.BytesIO(shot)).convert("RGB")
    picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(output, optimize=True)
    print(f"{verdict}: {output} ({output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
