"""Make the README's report picture: the HTML report of an edited photo, as headless Chromium shows it.

    python scripts/report_screenshot.py [--output docs/images/report-example.png] [--keep DIR]

The photo is the edited astronaut of `scripts/localization_example.py` (a rotated copy-move and a
spliced patch). It is analysed as `pixelsleuth scan --localize` does (embedded detectors, every
evidence source, localization), its report is written with `pixelsleuth.outputs.report`, and the first
screen of the page is saved through `outputs.report.browser.screenshot_report` (the helper the browser
tests use), reduced to 256 colours so the PNG stays small. Needs Playwright and Debian's chromium.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from localization_example import edited_photo
from PIL import Image

from pixelsleuth.evidence import PIXEL_SOURCES, PROVENANCE_SOURCES
from pixelsleuth.outputs.report import write_reports
from pixelsleuth.outputs.report.browser import browser_unavailable, screenshot_report
from pixelsleuth.pipeline import Analyzer, AnalyzerConfig

VIEWPORT = {"width": 1200, "height": 1240}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/images/report-example.png"))
    parser.add_argument("--keep", type=Path, help="Also keep the HTML report in this folder.")
    args = parser.parse_args()
    reason = browser_unavailable()
    if reason:
        raise SystemExit(f"cannot take the screenshot: {reason}")
    with tempfile.TemporaryDirectory(prefix="pixelsleuth-report-example-") as scratch:
        folder = Path(scratch)
        output, keep = args.output.absolute(), args.keep and args.keep.absolute()
        os.chdir(folder)  # the report shows the path as scanned: a bare file name
        Image.fromarray(edited_photo()[0]).save("edited-astronaut.png")
        analyzer = Analyzer(AnalyzerConfig(sources=(*PROVENANCE_SOURCES, *PIXEL_SOURCES, "localization")))
        record = {**analyzer.analyze("edited-astronaut.png").to_dict(), "analysis_version": analyzer.version}
        written = write_reports([record], keep or folder / "report")
        if written.failures or not written.pages:
            raise SystemExit("; ".join(written.failures) or "no report was written")
        shot = screenshot_report(written.pages[0], folder / "shot.png", viewport=VIEWPORT)
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.open(shot).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            output, optimize=True
        )
        os.chdir(output.parent)  # leave the scratch folder before it is removed
    print(f"{record['verdict']} ({record['score']}): {output} ({output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
