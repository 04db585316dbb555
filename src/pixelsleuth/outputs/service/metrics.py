"""Prometheus metrics, written by hand in the text exposition format (no extra dependency).

Example:
    >>> metrics = Metrics()
    >>> metrics.observe("/healthz", "GET", 200, 0.003)
    >>> text = metrics.render({"pixelsleuth_analysis_queue_depth": ("gauge", "waiting analyses", 0)})
    >>> 'pixelsleuth_http_requests_total{route="/healthz",method="GET",status="200"} 1' in text
    True
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counts by route and status, a latency histogram by route, and analysis counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency_counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self.latency_sum: Counter[str] = Counter()
        self.latency_total: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            counts = self.latency_counts[route]
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[index] += 1
            self.latency_sum[route] += seconds
            self.latency_total[route] += 1

    def analysed(self, verdict: str) -> None:
        with self._lock:
            self.verdicts[verdict] += 1

    def render(self, gauges: dict[str, tuple[str, str, float]]) -> str:
        """The exposition text; `gauges` maps a metric name to (type, help, value)."""
        lines = [
            "# HELP pixelsleuth_http_requests_total HTTP requests by route template, method and status.",
            "# TYPE pixelsleuth_http_requests_total counter",
        ]
        with self._lock:
            for (route, method, status), count in sorted(self.requests.items()):
                labels = f'route="{_label(route)}",method="{method}",status="{status}"'
                lines.append(f"pixelsleuth_http_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP pixelsleuth_http_request_duration_seconds Time to answer a request, by route.",
                "# TYPE pixelsleuth_http_request_duration_seconds histogram",
            ]
            for route in sorted(self.latency_total):
                name = "pixelsleuth_http_request_duration_seconds"
                route_label = f'route="{_label(route)}"'
                for bound, count in zip(BUCKETS, self.latency_counts[route], strict=True):
                    lines.append(f'{name}_bucket{{{route_label},le="{bound:g}"}} {count}')
                lines.append(f'{name}_bucket{{{route_label},le="+Inf"}} {self.latency_total[route]}')
                lines.append(f"{name}_sum{{{route_label}}} {self.latency_sum[route]:.6f}")
                lines.append(f"{name}_count{{{route_label}}} {self.latency_total[route]}")
            lines += [
                "# HELP pixelsleuth_analyses_total Analyses finished, by verdict.",
                "# TYPE pixelsleuth_analyses_total counter",
            ]
            for verdict, count in sorted(self.verdicts.items()):
                lines.append(f'pixelsleuth_analyses_total{{verdict="{_label(verdict)}"}} {count}')
        for name, (kind, text, value) in gauges.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
