"""`MonitorCollector`, which `/metrics` scrapes: the monitor's latest evaluations as Prometheus families.

The latest evaluation of each model and window becomes gauges (metric, samples, ratio to training,
drift PSI, last evaluation and data time), the breaches a counter; two bounded SQL queries per scrape.

>>> registry = metrics_registry(store)  # doctest: +SKIP  (then generate_latest(registry))
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestrale.monitoring.store import MonitorStore
from maestrale.vocabulary import METRICS


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class MonitorCollector(Collector):
    """Prometheus families read from the monitor's store at each scrape (latest evaluation per window).

    >>> registry = CollectorRegistry(); registry.register(MonitorCollector(store))  # doctest: +SKIP

    Two queries per scrape, both bounded by the number of models × windows (or × conditions):
    the latest row per (model, kind, window) of `monitor_evaluations`, and the breach counts.
    """

    def __init__(self, store: MonitorStore) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        # no families up front: describing would otherwise mean a scrape (SQL) at registration
        return []

    def collect(self) -> Iterator[Metric]:
        """Build every family from the latest evaluations and the breach counts."""
        metric = GaugeMetricFamily(
            "maestrale_monitor_metric",
            "Production performance of the latest evaluation over the window (mae, rmse, nmae, skill, …)",
            labels=["model", "version", "window", "metric"],
        )
        samples = GaugeMetricFamily(
            "maestrale_monitor_samples",
            "Prediction/actual pairs behind the latest performance evaluation of the window",
            labels=["model", "version", "window"],
        )
        ratio = GaugeMetricFamily(
            "maestrale_monitor_ratio_to_training",
            "Production metric / the version's training (holdout) metric; 1.3 = 30% worse",
            labels=["model", "version", "window", "metric"],
        )
        psi = GaugeMetricFamily(
            "maestrale_monitor_drift_psi",
            "Population stability index of each logged feature (and the prediction) vs the training profile",
            labels=["model", "version", "window", "feature"],
        )
        breaches = CounterMetricFamily(
            "maestrale_monitor_breaches",
            "Policy breaches recorded by the monitor",
            labels=["model", "condition"],
        )
        last = GaugeMetricFamily(
            "maestrale_monitor_last_evaluation_timestamp_seconds",
            "Wall-clock time of the model's latest evaluation (Unix seconds)",
            labels=["model"],
        )
        clock = GaugeMetricFamily(
            "maestrale_monitor_as_of_timestamp_seconds",
            "Data time of the model's latest evaluation: the latest target time with an actual",
            labels=["model"],
        )
        latest: dict[str, tuple[datetime, datetime]] = {}
        for row in self.store.latest_evaluations(full=False):  # summaries: what these gauges read
            model, version, window = row["model"], str(row["version"]), row["window"]
            values = row["values"] or {}
            seen = latest.get(model)
            if seen is None or row["evaluated_at"] > seen[0]:
                latest[model] = (row["evaluated_at"], row["as_of"])
            if row["kind"] == "performance":
                samples.add_metric([model, version, window], float(row["n"]))
                overall = values.get("overall", {})
                for name in METRICS:  # every metric a performance evaluation scores
                    if isinstance(overall.get(name), int | float):
                        metric.add_metric([model, version, window, name], float(overall[name]))
                for name, value in (values.get("ratios") or {}).items():
                    if isinstance(value, int | float):
                        ratio.add_metric([model, version, window, name], float(value))
            elif row["kind"] == "drift":
                for feature, stats in (values.get("stats") or {}).items():
                    if isinstance((stats or {}).get("psi"), int | float):
                        psi.add_metric([model, version, window, feature], float(stats["psi"]))
        for (model, condition), count in sorted(self.store.breach_counts().items()):
            breaches.add_metric([model, condition], float(count))
        for model, (evaluated_at, as_of) in sorted(latest.items()):
            last.add_metric([model], _ts(evaluated_at))
            clock.add_metric([model], _ts(as_of))
        yield from (metric, samples, ratio, psi, breaches, last, clock)


def metrics_registry(store: MonitorStore) -> CollectorRegistry:
    """A registry holding the monitor's collector, scraped with the API's own at `/metrics`.

    One per app (not the process-wide registry of `telemetry`): each app reads its own database.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(store))
    return registry
