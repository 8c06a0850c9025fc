"""Prometheus metrics of ``llmrouter serve`` (text exposition format, no extra dependency).

* ``llmrouter_requests_total{endpoint,status}``: requests answered, by HTTP status;
* ``llmrouter_errors_total{kind}``: error answers by kind (``auth``, ``budget``, ...);
* ``llmrouter_routed_total{router,model}``: requests answered per router and model;
* ``llmrouter_cost_usd_total{router}``: USD spent;
* ``llmrouter_added_latency_seconds``: the time a request spent in the server outside model
  calls (parsing, auth, routing, budget admission, response writing), a histogram;
* ``llmrouter_in_flight``: requests being served.
"""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["BUCKETS", "Metrics"]

#: Histogram buckets of the added latency, in seconds.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters and one histogram, rendered as Prometheus text by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.routed: dict[tuple[str, str], int] = defaultdict(int)
        self.cost: dict[str, float] = defaultdict(float)
        self.latency_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.in_flight = 0

    def request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def answered(self, router: str, model: str, cost: float, added_s: float) -> None:
        with self._lock:
            self.routed[(router, model)] += 1
            self.cost[router] += cost
            self.latency_sum += max(added_s, 0.0)
            i = next((k for k, b in enumerate(BUCKETS) if added_s <= b), len(BUCKETS))
            self.latency_counts[i] += 1

    def render(self) -> str:
        """The metrics in Prometheus' text format."""
        with self._lock:
            lines = [
                "# HELP llmrouter_requests_total Requests answered, by endpoint and status.",
                "# TYPE llmrouter_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(
                    f'llmrouter_requests_total{{endpoint="{_label(endpoint)}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP llmrouter_errors_total Error answers, by kind.",
                "# TYPE llmrouter_errors_total counter",
            ]
            for kind, n in sorted(self.errors.items()):
                lines.append(f'llmrouter_errors_total{{kind="{_label(kind)}"}} {n}')
            lines += [
                "# HELP llmrouter_routed_total Requests answered, by router and model.",
                "# TYPE llmrouter_routed_total counter",
            ]
            for (router, model), n in sorted(self.routed.items()):
                lines.append(
                    f'llmrouter_routed_total{{router="{_label(router)}",'
                    f'model="{_label(model)}"}} {n}'
                )
            lines += [
                "# HELP llmrouter_cost_usd_total USD spent, by router.",
                "# TYPE llmrouter_cost_usd_total counter",
            ]
            for router, usd in sorted(self.cost.items()):
                lines.append(f'llmrouter_cost_usd_total{{router="{_label(router)}"}} {usd!r}')
            lines += [
                "# HELP llmrouter_added_latency_seconds Time spent outside model calls.",
                "# TYPE llmrouter_added_latency_seconds histogram",
            ]
            total = 0
            for bound, n in zip(BUCKETS, self.latency_counts):
                total += n
                lines.append(f'llmrouter_added_latency_seconds_bucket{{le="{bound}"}} {total}')
            total += self.latency_counts[-1]
            lines += [
                f'llmrouter_added_latency_seconds_bucket{{le="+Inf"}} {total}',
                f"llmrouter_added_latency_seconds_sum {self.latency_sum!r}",
                f"llmrouter_added_latency_seconds_count {total}",
                "# HELP llmrouter_in_flight Requests being served.",
                "# TYPE llmrouter_in_flight gauge",
                f"llmrouter_in_flight {self.in_flight}",
            ]
        return "\n".join(lines) + "\n"
