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

The request and response bodies are in `maestrale.api.monitoring_schemas`; `MonitorCollector`, which
`/metrics` scrapes, is in `maestrale.api.monitoring_metrics`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from maestrale import yamlsafe
from maestrale.api.auth import Read, require
from maestrale.api.monitoring_schemas import (
    ActualBatch,
    BreachOut,
    DecisionOut,
    EvaluationPoint,
    EvaluationSeries,
    IngestResponse,
    ModelStatus,
    PredictionBatch,
)
from maestrale.errors import InvalidInput, NotFound, PayloadTooLarge
from maestrale.limits import MAX_VERSION
from maestrale.monitoring import ingest
from maestrale.monitoring.performance import performance, stored_capacities
from maestrale.monitoring.policy import PolicyError, load_policy, parse_policy
from maestrale.monitoring.store import MonitorStore
from maestrale.vocabulary import parse_window, persistence_lag

router = APIRouter(prefix="/api/v1/monitoring", tags=["monitoring"])
Limit = Annotated[int, Query(ge=1, le=10_000)]
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)
#: A policy is a few hundred bytes; this bound keeps a stray upload from being parsed as YAML.
MAX_POLICY_BYTES = 1 << 20
#: Ingest needs `predict`: a forecasting service's token logs what it forecast and what it measured.
Predict = Depends(require("predict"))


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
@router.post("/predictions", response_model=IngestResponse, dependencies=[Predict])
def log_predictions(request: Request, body: PredictionBatch) -> dict[str, Any]:
    """Store predictions of `model:version`; invalid records are listed in `rejected`, the rest stored."""
    _check_size(body.records)
    return _monitor(request).log_predictions(body.model, body.version, body.records).as_dict()


@router.post("/actuals", response_model=IngestResponse, dependencies=[Predict])
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
    """One performance evaluation computed now with the version's capacity and training metrics.

    Each plant is normalised by the capacity the monitor's policy gave it (stored in the model's
    state at its last evaluation), as the monitor's own evaluations are; others use the spec's.
    """
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
    as_of = as_of or store.data_time(name) or datetime.now(UTC)
    entity_capacity = stored_capacities(store.state(name).get("entity_capacity"))
    report = performance(
        store, name, as_of, window, version=version, capacity=spec.get("capacity"),
        training=mv.metrics if mv is not None else None, persistence_lag=persistence_lag(spec),
        entity_capacity=entity_capacity,
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
        AwareDatetime | None,
        # bounded: a window (up to 10 years) and a lag are subtracted from it
        Query(ge=EARLIEST, le=LATEST, description="live: end of the window (default: the monitor's clock)."),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="live: the version (default: serving).")
    ] = None,
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
    return EvaluationSeries.model_validate(
        {"model": name, "kind": "performance", "window": window, "items": items}
    )


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
    return EvaluationSeries.model_validate({"model": name, "kind": "drift", "window": window, "items": items})


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
    # Never handed to load_policy as text: it reads a one-line `x.yaml` as a file path, and a request
    # must not make the server open its own files. parse_policy bounds the YAML (size, alias bombs).
    if "json" not in request.headers.get("content-type", ""):
        return parse_policy(text).model_dump(mode="json")
    try:
        data = json.loads(text)
        yamlsafe.check_data(data)  # the same node and depth bounds as YAML
    except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise PolicyError(f"policy is not valid JSON: {exc}") from None
    except yamlsafe.YamlError as exc:
        raise PolicyError(f"policy: {exc.message}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy must be a mapping with name and conditions, got {type(data).__name__}")
    return load_policy(data).model_dump(mode="json")
