"""The service's counters, rendered in Prometheus' text format for ``GET /metrics``.

Everything is updated from the event loop's thread only, so plain integers suffice; a
scrape reads them in the same thread.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable

# Seconds; the lower buckets matter most, where a micro-batched prediction lands.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """A cumulative histogram with fixed upper bounds, as Prometheus exposes one."""

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        prefix = f"{labels}," if labels else ""
        lines, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {running}')
        lines.append(f'{name}_bucket{{{prefix}le="+Inf"}} {self.count}')
        braces = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}_sum{braces} {self.total:.6f}")
        lines.append(f"{name}_count{braces} {self.count}")
        return lines


class ServiceMetrics:
    """Requests, errors, latency, batch sizes and predictions per class."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.errors: Counter[tuple[str, int]] = Counter()
        self.predictions: Counter[tuple[str, str]] = Counter()
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.rejected_busy = 0
        self.reloads = 0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[endpoint] += 1
        if status >= 400:
            self.errors[(endpoint, status)] += 1
        else:
            self.latency.observe(seconds)

    def predicted(self, version: str, labels: Iterable[object]) -> None:
        for label, count in Counter(str(label) for label in labels).items():
            self.predictions[(version, label)] += count

    def render(self, *, model: str, version: str, in_flight: int, monitor: dict) -> str:
        """Every metric in Prometheus' text exposition format (version 0.0.4)."""
        m = _label(model)
        out = [
            "# HELP flowscope_requests_total Prediction requests received, by endpoint.",
            "# TYPE flowscope_requests_total counter",
            *(
                f'flowscope_requests_total{{endpoint="{_label(e)}"}} {n}'
                for e, n in sorted(self.requests.items())
            ),
            "# HELP flowscope_request_errors_total Requests answered with an error status.",
            "# TYPE flowscope_request_errors_total counter",
            *(
                f'flowscope_request_errors_total{{endpoint="{_label(e)}",status="{s}"}} {n}'
                for (e, s), n in sorted(self.errors.items())
            ),
            "# HELP flowscope_request_latency_seconds Latency of answered requests.",
            "# TYPE flowscope_request_latency_seconds histogram",
            *self.latency.lines("flowscope_request_latency_seconds"),
            "# HELP flowscope_batch_rows Rows per model call after micro-batching.",
            "# TYPE flowscope_batch_rows histogram",
            *self.batch_rows.lines("flowscope_batch_rows"),
            "# HELP flowscope_predictions_total Predictions made, by model version and class.",
            "# TYPE flowscope_predictions_total counter",
            *(
                f'flowscope_predictions_total{{model="{m}",version="{_label(v)}",'
                f'class="{_label(c)}"}} {n}'
                for (v, c), n in sorted(self.predictions.items())
            ),
            "# HELP flowscope_requests_rejected_busy_total Requests refused at the limit (503).",
            "# TYPE flowscope_requests_rejected_busy_total counter",
            f"flowscope_requests_rejected_busy_total {self.rejected_busy}",
            "# HELP flowscope_requests_in_flight Prediction requests being answered.",
            "# TYPE flowscope_requests_in_flight gauge",
            f"flowscope_requests_in_flight {in_flight}",
            "# HELP flowscope_model_reloads_total Times a moved alias was loaded and swapped in.",
            "# TYPE flowscope_model_reloads_total counter",
            f"flowscope_model_reloads_total {self.reloads}",
            "# HELP flowscope_model_info The model version answering now.",
            "# TYPE flowscope_model_info gauge",
            f'flowscope_model_info{{model="{m}",version="{_label(version)}"}} 1',
        ]
        for key, value in monitor.items():
            out += [
                f"# TYPE flowscope_monitor_{key} gauge",
                f"flowscope_monitor_{key} {value}",
            ]
        return "\n".join(out) + "\n"


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
