"""Prometheus metrics of a model server, in a registry of its own (several apps can share a process).

>>> m = ServingMetrics()
>>> m.model_version.labels("pv-forecast").set(3)
>>> b"maestrale_serving_model_version" in m.render()
True
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from maestrale.asgi import TimingMiddleware

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    """Request latency and counts by model/endpoint/status, served versions, reloads, logger health."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "maestrale_serving_request_duration_seconds", "Request latency by model and endpoint",
            ["model", "endpoint"], buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "maestrale_serving_requests_total", "Requests by model, endpoint and HTTP status",
            ["model", "endpoint", "status"], registry=r,
        )  # fmt: skip
        self.model_version = Gauge(
            "maestrale_serving_model_version", "Version currently served, by model", ["model"], registry=r
        )
        self.reloads = Counter(
            "maestrale_serving_reloads_total", "Versions swapped in by a reload", ["model"], registry=r
        )
        self.reload_failures = Counter(
            "maestrale_serving_reload_failures_total", "Reloads that failed (the old version kept serving)",
            ["model"], registry=r,
        )  # fmt: skip
        self.predictions_logged = Counter(
            "maestrale_serving_predictions_logged_total",
            "Prediction records published to the bus",
            registry=r,
        )
        self.predictions_dropped = Counter(
            "maestrale_serving_predictions_dropped_total",
            "Prediction records not logged: buffer full or the bus refused them", ["reason"], registry=r,
        )  # fmt: skip
        self.log_queue = Gauge(
            "maestrale_serving_prediction_log_queue", "Prediction records waiting to be published", registry=r
        )
        self.process = Gauge(
            "maestrale_serving_process_info",
            "1, labelled with the pid of the process that answered this scrape and its worker index "
            "(`maestrale serve --workers N`: each worker exports its own metrics)", ["pid", "worker"],
            registry=r,
        )  # fmt: skip
        # (model, endpoint, status) -> the children of that label set: `labels()` costs ~4 µs a call,
        # a lookup here well under one. Bounded: callers pass served names, route templates, codes.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.identify(0)

    def count(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        """One request answered: its count by status and its latency, by model and endpoint.

        >>> m = ServingMetrics(); m.count("pv-forecast", "/v2/models/{name}/infer", 200, 0.002)
        >>> b'status="200"' in m.render()
        True
        """
        key = (model, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(model, endpoint, str(status)),
                self.latency.labels(model, endpoint),
            )
        children[0].inc()
        children[1].observe(seconds)

    def identify(self, worker: int) -> None:
        """Label the metrics with this process's pid and `worker` index (0..N-1 of `--workers N`).

        >>> m = ServingMetrics(); m.identify(1)
        >>> b'worker="1"' in m.render()
        True
        """
        self.process.clear()
        self.process.labels(str(os.getpid()), str(worker)).set(1)

    def render(self) -> bytes:
        """The text exposition of every metric."""
        return generate_latest(self.registry)


class ServingMetricsMiddleware(TimingMiddleware):
    """Latency and status per (model, endpoint).

    `endpoint` is the route template (bounded cardinality); `model` is the path's `{name}` only when
    this server serves it (`other` otherwise, so random names cannot blow up the label set).
    """

    def __init__(self, app: Any, metrics: ServingMetrics, served: set[str]) -> None:
        super().__init__(app)
        self.metrics, self.served = metrics, served

    def record(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        endpoint = getattr(scope.get("route"), "path", None) or "unmatched"
        name = (scope.get("path_params") or {}).get("name")
        model = "" if name is None else name if name in self.served else "other"
        self.metrics.count(model, endpoint, status, seconds)
