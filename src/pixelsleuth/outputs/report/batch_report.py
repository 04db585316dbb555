"""The batch index: counts per verdict, a score histogram and a sortable table linking each image's page.

Example:
    >>> rows = [BatchRow("a.png", "ab" * 32, "authentic", 0.1, "camera EXIF", "a.html")]
    >>> 'href="a.html"' in render_batch_report(rows)
    True
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pixelsleuth import __version__
from pixelsleuth.outputs.report import record_view as view
from pixelsleuth.outputs.report.page import render_page

BINS = 10
_WIDTH, _HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 12, 34


@dataclass(frozen=True)
class BatchRow:
    """One line of the index."""

    path: str
    sha256: str
    verdict: str
    score: float | None
    top_finding: str
    href: str | None  # the image's report, relative to the index; None when it could not be written
    thumbnail_uri: str | None = None
    note: str = ""  # e.g. why there is no report

    @classmethod
    def from_record(
        cls, record: dict[str, Any], href: str | None, thumbnail_uri: str | None = None, note: str = ""
    ) -> BatchRow:
        score = record.get("score")
        return cls(
            path=str(record.get("path") or "(no path)"),
            sha256=str(record.get("sha256") or ""),
            verdict=str(record.get("verdict") or "inconclusive"),
            score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
            top_finding=view.top_finding(record),
            href=href,
            thumbnail_uri=thumbnail_uri,
            note=note,
        )


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass(frozen=True)
class Histogram:
    bars: list[Bar]
    x_ticks: list[tuple[float, str]]  # (x, label)
    y_max: int
    unscored: int
    width: int = _WIDTH
    height: int = _HEIGHT
    left: int = _LEFT
    top: int = _TOP
    bottom: int = _HEIGHT - _BOTTOM
    right: int = _WIDTH - _RIGHT


def histogram(rows: Sequence[BatchRow], bins: int = BINS) -> Histogram:
    """Scores in `bins` equal bins over [0, 1], each bar stacked by verdict."""
    counts: list[Counter[str]] = [Counter() for _ in range(bins)]
    for row in rows:
        if row.score is not None:
            counts[min(bins - 1, max(0, int(row.score * bins)))][row.verdict] += 1
    y_max = max([sum(counter.values()) for counter in counts] + [1])
    plot_width, plot_height = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    step = plot_width / bins
    bars = []
    for index, counter in enumerate(counts):
        base = _HEIGHT - _BOTTOM
        for verdict in [*view.VERDICT_ORDER, *sorted(set(counter) - set(view.VERDICT_ORDER))]:
            if not counter[verdict]:
                continue
            height = plot_height * counter[verdict] / y_max
            base -= height
            low, high = index / bins, (index + 1) / bins
            bars.append(
                Bar(
                    _LEFT + index * step + 1,
                    base,
                    step - 2,
                    height,
                    view.verdict_view({"verdict": verdict}).colour,
                    f"{counter[verdict]} {verdict}, score {low:.1f}–{high:.1f}",
                )
            )
    ticks = [(_LEFT + plot_width * value, f"{value:g}") for value in (0, 0.25, 0.5, 0.75, 1)]
    unscored = sum(row.score is None for row in rows)
    return Histogram(bars, ticks, y_max, unscored)


def render_batch_report(rows: Sequence[BatchRow], *, title: str = "pixelsleuth batch report") -> str:
    """The index page of a batch: one row per result, links relative to the index's folder."""
    counts = Counter(row.verdict for row in rows)
    order = {verdict: index for index, verdict in enumerate(view.VERDICT_ORDER)}
    verdicts = [view.verdict_view({"verdict": key}) for key in sorted(counts, key=lambda v: order.get(v, 99))]
    return render_page(
        "batch.html.j2",
        "batch.js",
        title=title,
        rows=list(rows),
        counts=[(item, counts[item.key]) for item in verdicts],
        order=order,
        views={item.key: item for item in verdicts},
        histogram=histogram(rows),
        pixelsleuth_version=__version__,
    )
