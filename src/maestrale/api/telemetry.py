"""Prometheus metrics for the API: request counts by route and status, and a latency histogram."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from maestrale.asgi import TimingMiddleware

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "maestrale_http_requests_total", "HTTP requests served", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "maestrale_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
    registry=REGISTRY,
)


class MetricsMiddleware(TimingMiddleware):
    """The API server's request counts and latency by method and route template."""

    def record(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        # the route template, not the raw path, keeps label cardinality bounded
        path = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope.get("method", "")
        REQUESTS.labels(method, path, str(status)).inc()
        LATENCY.labels(method, path).observe(seconds)
