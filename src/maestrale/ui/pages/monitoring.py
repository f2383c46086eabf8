"""The monitoring page of one model (`/models/{name}/monitoring`): performance, forecast vs actual,
drift and the timeline of what the monitor did, over a time range of the monitor's data time.

Everything is read through the monitor store and the registry, as the REST endpoints read it
(`/api/v1/monitoring/models/{name}/performance`, `/drift`, `/breaches`, `/decisions`), and bounded
by the range: the evaluations since its start, the scored pairs in it (averaged into at most 5,000
points), the newest 300 breaches and decisions.

>>> # GET /models/pv-nrel-50/monitoring?range=30d&by=horizon&window=7D&feature=ghi  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from maestrale.errors import InvalidInput, NotFound
from maestrale.monitoring import retraining
from maestrale.monitoring.store import MonitorStore
from maestrale.ui import monitoring_view as view
from maestrale.ui.web import current_viewer, render
from maestrale.vocabulary import parse_window

router = APIRouter()
#: The time ranges the page offers, in days before the monitor's clock (None: everything).
RANGES: dict[str, int | None] = {"30d": 30, "90d": 90, "365d": 365, "all": None}
SPLITS = ("overall", "entity", "horizon")
#: Breaches and decisions read per page view (the newest; the REST endpoints page further back).
TRAIL = 300
#: The key under which drift evaluations store the statistics of the forecasts themselves.
PREDICTIONS = "<predictions>"


def _checked(name: str, range_: str, by: str, window: str | None) -> None:
    from maestrale.refs import validate_name

    try:
        validate_name(name)
    except ValueError as exc:
        raise NotFound(f"no model {name[:80]!r}: {exc}") from None
    if range_ not in RANGES:
        raise InvalidInput(f"range={range_[:20]!r}: use one of {', '.join(RANGES)}")
    if by not in SPLITS:
        raise InvalidInput(f"by={by[:20]!r}: use one of {', '.join(SPLITS)}")
    if window is not None:
        try:
            parse_window(window)
        except ValueError as exc:
            raise InvalidInput(f"window={window[:20]!r}: {exc}") from None


def _status(request: Request, name: str) -> tuple[dict[str, Any], Any]:
    """The monitor's overview of `name` and its registry entry (NotFound if neither knows it)."""
    app = request.app.state
    store: MonitorStore = app.monitor_store
    try:
        model = app.store.get_model(name)
    except NotFound:
        model = None
    if model is None and not store.known(name):
        raise NotFound(f"no model {name!r}: neither registered nor monitored (see the fleet at /)")
    aliases = dict(model.aliases) if model is not None else {}
    [status] = store.overview(name, aliases=lambda _: aliases)
    return status, model


def _profile(request: Request, name: str, version: int | None) -> dict[str, Any] | None:
    if version is None:
        return None
    try:
        return request.app.state.store.get_version(f"{name}:{version}").profile
    except NotFound:
        return None  # predictions logged for a version the registry does not hold


def _columns(profile: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The profile's histograms by column, `<predictions>` last (as the drift heatmap names it)."""
    from maestrale.stats.profile import histograms

    return {k: v for k, v in histograms(profile).items() if k != "<target>"}  # actuals are not features


def _histogram(
    store: MonitorStore, name: str, column: dict[str, Any], feature: str, version: int | None,
    end: datetime, window: str,
) -> dict[str, Any]:  # fmt: skip
    """Reference vs current for `feature`: current = the logged values of the latest drift window."""
    span = parse_window(window)
    logged = store.logged(name, end - span + timedelta(microseconds=1), end + timedelta(microseconds=1),
                          version=version)  # fmt: skip
    key = "prediction" if feature == PREDICTIONS else feature
    values = logged[key].to_numpy(dtype="float64") if key in logged else np.empty(0)
    spec = view.histogram_chart(column, values)
    return {"spec": spec, "n": spec["n"], "outside": spec["outside"], "feature": feature, "window": window,
            "end": end, "version": version}  # fmt: skip


def monitoring_data(
    request: Request, name: str, range_: str, by: str, window: str | None, feature: str | None
) -> dict[str, Any]:
    """Everything the page shows (see the module docstring for what bounds each part)."""
    _checked(name, range_, by, window)
    store: MonitorStore = request.app.state.monitor_store
    status, model = _status(request, name)
    clock = status.get("as_of") or store.data_time(name)
    days = RANGES[range_]
    since = clock - timedelta(days=days) if clock is not None and days is not None else None
    perf_rows = store.series(name, kind="performance", since=since)
    windows = view.window_order(r["window"] for r in perf_rows)
    if by != "overall" and window not in windows:
        window = windows[-1] if windows else None  # the longest: the steadiest figures
    splits, split_total = view.split_keys([r for r in perf_rows if r["window"] == window], by) if (
        by != "overall") else ([], 0)  # fmt: skip
    forecast, pairs = _forecast(store, name, since, clock)
    drift_rows = store.series(name, kind="drift", since=since)
    drift_windows = view.drift_windows(drift_rows)
    drift_window = drift_windows[-1] if drift_windows else None
    heatmap = view.drift_heatmap(drift_rows, drift_window)
    serving = status.get("serving_version")
    columns = _columns(_profile(request, name, serving))
    histogram = None
    if columns:
        feature = feature if feature in columns else next(iter(columns))
        latest = next((r for r in reversed(drift_rows) if r["window"] == drift_window), None)
        end = latest["as_of"] if latest is not None else clock
        if end is not None:
            histogram = _histogram(store, name, columns[feature], feature, serving, end, drift_window or "7D")
    trail = view.timeline(
        store.audit_trail("breaches", name, TRAIL), store.audit_trail("decisions", name, TRAIL),
        retraining.history(store.engine, name, limit=50), since,
    )  # fmt: skip
    return {
        "model_name": name, "model": model, "overview": status, "clock": clock, "since": since,
        "range": range_, "ranges": list(RANGES), "by": by, "splits": list(SPLITS), "window": window,
        "windows": windows, "split_keys": splits, "split_total": split_total,
        "perf_charts": view.performance_charts(perf_rows, by=by, window=window),
        "forecast": forecast, "pairs": pairs,
        "heatmap": heatmap, "drift_window": drift_window, "features": list(columns), "feature": feature,
        "histogram": histogram, "timeline": trail, "trail_limit": TRAIL, "latest": _latest(status),
    }  # fmt: skip


def _forecast(
    store: MonitorStore, name: str, since: datetime | None, clock: datetime | None
) -> tuple[dict[str, Any], int]:
    """The forecast-vs-actual chart of the range and its number of pairs, averaged by the database."""
    start = since or store.data_start(name)
    if start is None or clock is None:
        return view.forecast_chart(None, 3600), 0
    bucket = view.bucket_seconds(view.epoch(start), view.epoch(clock))
    buckets = store.scored_buckets(name, start, clock + timedelta(microseconds=1), bucket)
    return view.forecast_chart(buckets, bucket), int(buckets["n"].sum())


def _latest(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The latest evaluation of each window, as the monitor stored it (the table under the charts)."""
    perf = status.get("performance") or {}
    return [{"window": w, **perf[w]} for w in view.window_order(perf)]


@router.get("/models/{name}/monitoring", response_class=HTMLResponse)
def monitoring_page(
    request: Request,
    name: str,
    range_: str = Query("90d", alias="range", max_length=8),
    by: str = Query("overall", max_length=16),
    window: str | None = Query(None, max_length=16),
    feature: str | None = Query(None, max_length=128),
) -> HTMLResponse:
    """Performance per window, forecast vs actual, drift and the monitor's timeline of one model."""
    viewer = current_viewer(request)
    data = monitoring_data(request, name, range_, by, window or None, feature or None)
    return render(request, "monitoring.html", viewer=viewer, **data)


@router.get("/models/{name}/monitoring/histogram", response_class=HTMLResponse)
def histogram_fragment(
    request: Request, name: str, feature: str = Query(..., max_length=128)
) -> HTMLResponse:
    """The reference-vs-current histogram of one feature (the page's feature picker swaps it in)."""
    viewer = current_viewer(request)
    _checked(name, "all", "overall", None)
    store: MonitorStore = request.app.state.monitor_store
    status, _ = _status(request, name)
    serving = status.get("serving_version")
    columns = _columns(_profile(request, name, serving))
    if feature not in columns:
        known = ", ".join(columns) or "none (the serving version has no profile)"
        raise InvalidInput(f"feature={feature[:60]!r} is not profiled; profiled: {known}")
    drift = store.latest_evaluations(kind="drift", model=name)
    windows = view.window_order(r["window"] for r in drift)
    latest = next((r for r in drift if r["window"] == windows[-1]), None) if windows else None
    end = latest["as_of"] if latest is not None else status.get("as_of") or store.data_time(name)
    if end is None:
        raise NotFound(f"nothing logged for {name!r} yet: no current values to compare")
    hist = _histogram(store, name, columns[feature], feature, serving, end, windows[-1] if windows else "7D")
    return render(request, "monitoring_histogram.html", viewer=viewer, histogram=hist, model_name=name)
