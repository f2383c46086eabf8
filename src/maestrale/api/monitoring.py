"""Monitoring endpoints: log predictions and late actuals, read performance, drift and the audit trail.

>>> import httpx
>>> httpx.post("http://maestrale:8080/api/v1/monitoring/predictions", headers=auth, json={
...     "model": "pv-nrel-50", "version": 3,
...     "records": [{"record_id": "p50/2012-06-01T18Z/2012-06-02T10Z", "entity": "p50",
...                  "issued_at": "2012-06-01T18:00Z", "target_time": "2012-06-02T10:00Z",
...                  "features": {"ghi": 710.0}, "prediction": 2.1}]}).json()  # doctest: +SKIP
{'stored': 1, 'duplicates': 0, 'rejected': []}

Ingest is per record: a batch with a naive timestamp or a NaN forecast stores its valid records
and lists the others with their index and the reason (status 200). Resending a batch stores
nothing twice (predictions are keyed by model and record id, actuals by entity and target time).

The module also holds `MonitorCollector`, which `/metrics` scrapes: the latest evaluation of each
model and window as Prometheus gauges, read with two bounded SQL queries per scrape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Query, Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import AwareDatetime, BaseModel, Field

from maestrale.api.auth import Read, Write
from maestrale.errors import InvalidInput, NotFound, PayloadTooLarge
from maestrale.monitoring import ingest
from maestrale.monitoring.performance import parse_window, performance
from maestrale.monitoring.policy import PolicyError, load_policy
from maestrale.monitoring.store import MonitorStore

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"])
Limit = Annotated[int, Query(ge=1, le=10_000)]
#: Metrics of a performance evaluation exposed as `maestrale_monitor_metric{metric=…}`.
GAUGE_METRICS = ("mae", "rmse", "bias", "nbias", "nmae", "nrmse", "mape", "skill")
#: A policy is a few hundred bytes; this bound keeps a stray upload from being parsed as YAML.
MAX_POLICY_BYTES = 1 << 20


# -- request and response bodies ------------------------------------------------------------------
class PredictionBatch(BaseModel):
    """Predictions of one registered version; each record is validated on its own (see `rejected`)."""

    model: str = Field(description="Registered model name, e.g. pv-nrel-50.")
    version: int = Field(ge=1, description="The registry version that made the predictions.")
    # dicts, not PredictionRecord: one bad record must be reported with its reason, not fail the batch
    records: list[dict[str, Any]] = Field(
        description="record_id, entity, issued_at, target_time (ISO 8601 with a time zone), "
        "optional horizon, features (the model inputs) and prediction (number, quantiles or label)."
    )


class ActualBatch(BaseModel):
    """Observed values; a second value for the same entity and target time replaces the first."""

    records: list[dict[str, Any]] = Field(
        description="entity, target_time (ISO 8601 with a time zone) and value (a finite number)."
    )


class Rejected(BaseModel):
    """A record that was not stored: its index in the batch, its id if it had one, and why."""

    index: int
    record_id: str | None = None
    reason: str


class IngestResponse(BaseModel):
    """What happened to a batch."""

    stored: int = Field(description="Records stored now.")
    duplicates: int = Field(description="Records already stored by an earlier call (not stored twice).")
    rejected: list[Rejected] = Field(default_factory=list)


class EvaluationPoint(BaseModel):
    """One evaluation: the window ending at `as_of` (data time), its pairs `n` and its figures."""

    as_of: datetime
    version: int
    window: str
    n: int
    values: dict[str, Any] = Field(
        description="Performance: overall, by_entity, by_horizon, training, ratios. "
        "Drift: features and per-feature stats (psi, ks, wasserstein_norm, js)."
    )


class EvaluationSeries(BaseModel):
    """Stored evaluations of a model, oldest first (`live`: one computed now, not stored)."""

    model: str
    kind: Literal["performance", "drift"]
    window: str | None = None
    live: bool = False
    items: list[EvaluationPoint]


class WindowPerformance(BaseModel):
    """The latest performance evaluation over one window."""

    version: int
    as_of: datetime
    n: int
    overall: dict[str, float]
    ratios: dict[str, float] = Field(default_factory=dict, description="Production / training.")
    training: dict[str, float] = Field(default_factory=dict)


class ModelStatus(BaseModel):
    """Where a monitored model stands."""

    model: str
    serving_version: int | None = Field(description="The champion, else the latest logged version.")
    champion: int | None = None
    challenger: int | None = Field(None, description="A retrained version waiting for its decision.")
    challenger_since: datetime | None = None
    as_of: datetime | None = Field(None, description="Data time of the latest evaluation.")
    evaluated_at: datetime | None = Field(None, description="Wall time of the latest evaluation.")
    performance: dict[str, WindowPerformance] = Field(default_factory=dict, description="By window.")
    open_breaches: int = Field(description="Conditions that fired at the latest evaluation.")
    breaches_total: int
    last_retrain_at: datetime | None = None
    last_retrain_request: str | None = None


class BreachOut(BaseModel):
    """A condition that fired, with the numbers behind it and what the monitor did."""

    id: int
    model: str
    version: int
    policy: str
    condition: str
    metric: str
    value: float
    threshold: float
    window: str
    n: int
    as_of: datetime
    actions: dict[str, Any]
    details: dict[str, Any]
    detected_at: datetime


class DecisionOut(BaseModel):
    """A champion/challenger decision with the figures of both on the same out-of-sample rows."""

    id: int
    model: str
    champion_version: int | None
    challenger_version: int
    outcome: str
    reason: str
    metric: str
    margin: float
    window_start: datetime | None
    window_end: datetime | None
    n: int
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    as_of: datetime
    decided_at: datetime


# -- helpers --------------------------------------------------------------------------------------
def _monitor(request: Request) -> MonitorStore:
    return request.app.state.monitor_store


def _aliases(request: Request, name: str) -> dict[str, int]:
    try:
        return dict(request.app.state.store.get_model(name).aliases)
    except NotFound:  # predictions may be logged for a model the registry does not know
        return {}


def _known(request: Request, name: str) -> MonitorStore:
    store = _monitor(request)
    if not store.known(name):
        raise NotFound(
            f"nothing monitored for {name!r}: no predictions logged and no evaluations stored "
            "(POST them to /api/v1/monitoring/predictions)"
        )
    return store


def _window(window: str | None) -> str | None:
    if window is None:
        return None
    try:
        parse_window(window)
    except ValueError as exc:
        raise InvalidInput(f"window: {exc}") from None
    return window.strip()


def _check_size(records: list[Any]) -> None:
    if len(records) > ingest.MAX_BATCH:
        raise PayloadTooLarge(
            f"{len(records)} records in one batch: send at most {ingest.MAX_BATCH} per request "
            "(split the batch; resending a part is harmless, ingest is idempotent)"
        )


# -- ingest ---------------------------------------------------------------------------------------
@router.post("/predictions", response_model=IngestResponse, dependencies=[Write])
def log_predictions(request: Request, body: PredictionBatch) -> dict[str, Any]:
    """Store predictions of `model:version`; invalid records are listed in `rejected`, the rest stored."""
    _check_size(body.records)
    return _monitor(request).log_predictions(body.model, body.version, body.records).as_dict()


@router.post("/actuals", response_model=IngestResponse, dependencies=[Write])
def log_actuals(request: Request, body: ActualBatch) -> dict[str, Any]:
    """Store observed values (however late: they join their predictions at query time)."""
    _check_size(body.records)
    return _monitor(request).log_actuals(body.records).as_dict()


# -- read -----------------------------------------------------------------------------------------
@router.get("/models", response_model=list[ModelStatus], dependencies=[Read])
def list_models(request: Request, name: str | None = None) -> list[dict[str, Any]]:
    """Models with logged predictions: serving version, latest evaluation, performance, breaches."""
    store = _known(request, name) if name is not None else _monitor(request)
    return store.overview(name, aliases=lambda model: _aliases(request, model))


def _live_performance(
    request: Request, name: str, as_of: datetime | None, window: str, version: int | None
) -> EvaluationPoint:
    """One performance evaluation computed now with the version's capacity and training metrics."""
    store = _monitor(request)
    registry = request.app.state.store
    if version is None:
        champion = _aliases(request, name).get("champion")
        version = champion if champion is not None else store.latest_version(name)
    mv = None
    if version is not None:
        try:
            mv = registry.get_version(f"{name}:{version}")
        except NotFound:
            mv = None  # not registered here: figures without capacity or training ratios
    spec = (mv.spec if mv is not None else None) or {}
    # the same persistence lag the monitor uses for skill (the spec's baseline, default 24 h)
    lag = ((spec.get("baselines") or {}).get("persistence") or {}).get("lag", "24h")
    as_of = as_of or store.data_time(name) or datetime.now(UTC)
    report = performance(
        store, name, as_of, window, version=version, capacity=spec.get("capacity"),
        training=mv.metrics if mv is not None else None, persistence_lag=parse_window(lag),
    )  # fmt: skip
    return EvaluationPoint(
        as_of=as_of, version=version or 0, window=report.window, n=report.n, values=report.as_dict()
    )


@router.get("/models/{name}/performance", response_model=EvaluationSeries, dependencies=[Read])
def model_performance(
    request: Request,
    name: str,
    window: Annotated[str | None, Query(description="e.g. 7D; stored: every window if omitted.")] = None,
    limit: Limit = 1_000,
    live: Annotated[
        bool, Query(description="Compute one evaluation now instead of reading the series.")
    ] = False,
    as_of: Annotated[
        AwareDatetime | None, Query(description="live: end of the window (default: the monitor's clock).")
    ] = None,
    version: Annotated[int | None, Query(ge=1, description="live: the version (default: serving).")] = None,
) -> EvaluationSeries:
    """The stored performance series (oldest first), or with `live=true` one evaluation computed now.

    Example: `GET …/models/pv-nrel-50/performance?live=true&as_of=2012-06-08T00:00Z&window=7D`
    """
    store = _known(request, name)
    window = _window(window)
    if live:
        point = _live_performance(request, name, as_of, window or "7D", version)
        return EvaluationSeries(model=name, kind="performance", window=point.window, live=True, items=[point])
    if as_of is not None or version is not None:
        raise InvalidInput("as_of and version apply to live=true: add it to compute an evaluation now")
    items = store.series(name, kind="performance", window=window, limit=limit)
    return EvaluationSeries(model=name, kind="performance", window=window, items=items)


@router.get("/models/{name}/drift", response_model=EvaluationSeries, dependencies=[Read])
def model_drift(
    request: Request,
    name: str,
    window: Annotated[str | None, Query(description="e.g. 7D; every window if omitted.")] = None,
    limit: Limit = 1_000,
) -> EvaluationSeries:
    """The stored drift series (oldest first): per-feature PSI, KS, Wasserstein and JS of each window."""
    store = _known(request, name)
    window = _window(window)
    items = store.series(name, kind="drift", window=window, limit=limit)
    return EvaluationSeries(model=name, kind="drift", window=window, items=items)


@router.get("/models/{name}/breaches", response_model=list[BreachOut], dependencies=[Read])
def model_breaches(request: Request, name: str, limit: Limit = 1_000) -> list[dict[str, Any]]:
    """The newest `limit` breaches of a model, oldest first: condition, value, threshold, n, actions."""
    return _known(request, name).audit_trail("breaches", name, limit)


@router.get("/models/{name}/decisions", response_model=list[DecisionOut], dependencies=[Read])
def model_decisions(request: Request, name: str, limit: Limit = 1_000) -> list[dict[str, Any]]:
    """The newest `limit` champion/challenger decisions, oldest first, with both versions' figures."""
    return _known(request, name).audit_trail("decisions", name, limit)


_POLICY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-yaml": {"schema": {"type": "string"}},
            "text/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/policies/validate", response_model=dict[str, Any], dependencies=[Read], openapi_extra=_POLICY_BODY
)
async def validate_policy(request: Request) -> dict[str, Any]:
    """Validate a policy (YAML text or JSON); 200 with the normalised policy, 400 listing each problem.

    Example: `curl --data-binary @policy.yaml -H 'Content-Type: application/x-yaml' …/policies/validate`
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_POLICY_BYTES:
        raise PayloadTooLarge(f"a policy of {declared} bytes: the limit is {MAX_POLICY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_POLICY_BYTES:
        raise PayloadTooLarge(f"a policy of {len(raw)} bytes: the limit is {MAX_POLICY_BYTES} bytes")
    text = raw.decode("utf-8", errors="replace")
    # Parsed here, never handed to load_policy as text: it reads a one-line `x.yaml` as a file path,
    # and a request must not make the server open its own files.
    is_json = "json" in request.headers.get("content-type", "")
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if isinstance(exc, ValueError) else "YAML"
        raise PolicyError(f"policy is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy must be a mapping with name and conditions, got {type(data).__name__}")
    return load_policy(data).model_dump(mode="json")


# -- Prometheus -----------------------------------------------------------------------------------
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
        for row in self.store.latest_evaluations():
            model, version, window = row["model"], str(row["version"]), row["window"]
            values = row["values"] or {}
            seen = latest.get(model)
            if seen is None or row["evaluated_at"] > seen[0]:
                latest[model] = (row["evaluated_at"], row["as_of"])
            if row["kind"] == "performance":
                samples.add_metric([model, version, window], float(row["n"]))
                overall = values.get("overall", {})
                for name in GAUGE_METRICS:
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
