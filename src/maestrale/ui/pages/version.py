"""The version page (`/models/{name}/versions/{v}`): everything recorded about a version, its
training profile as histograms, its holdout drawn (forecast vs actual, residuals by hour, backtest
folds), and its artifact to download (`/models/{name}/versions/{v}/download`, for a signed-in viewer).

>>> # GET /models/pv-foggia/versions/3            -> the page
>>> # GET /models/pv-foggia/versions/3/download   -> pv-foggia-3.skops (the registered bytes)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from itertools import pairwise
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from maestrale.api.registry import Version, send_version
from maestrale.errors import Forbidden, NotFound
from maestrale.refs import validate_name
from maestrale.registry.types import ModelVersion
from maestrale.ui.web import SECURITY_HEADERS, current_viewer, render

router = APIRouter()
#: Histograms drawn from the training profile; a wider profile lists the rest by name.
MAX_HISTOGRAMS = 24
#: Entities drawn one chart each when the holdout rows carry an entity (the most sampled first).
MAX_ENTITY_CHARTS = 4
#: Input columns listed; a wider schema says how many more there are.
MAX_SCHEMA_ROWS = 500
#: The spec shown as YAML is cut after this many characters (the REST API has all of it).
MAX_SPEC_CHARS = 100_000
# The same recorded-metric vocabulary `maestrale models show` uses (the UI may not import the CLI):
# `nmae` is the holdout's, `persistence_nmae` a baseline's, `backtest_fold2_nmae` one fold's.
BASE_METRICS = ("nmae", "nrmse", "mae", "rmse", "bias", "mape", "skill")
EVALUATIONS = ("holdout", "backtest", "persistence", "climatology")
_FOLD = re.compile(r"^backtest_fold(\d+)_(.+)$")
EXTENSIONS = {"skops": ".skops", "lightgbm": ".txt", "xgboost": ".ubj", "onnx": ".onnx", "pickle": ".pkl"}


def split_metric(key: str) -> tuple[str, str] | None:
    """`(metric, evaluation)` of a recorded metric key; None for one outside the matrix.

    >>> split_metric("backtest_fold2_nmae"), split_metric("persistence_rmse"), split_metric("n_test")
    (('nmae', 'fold2'), ('rmse', 'persistence'), None)
    """
    if m := _FOLD.match(key):
        return (m[2], f"fold{m[1]}") if m[2] in BASE_METRICS else None
    for prefix in EVALUATIONS[1:]:
        if key.startswith(prefix + "_") and key[len(prefix) + 1 :] in BASE_METRICS:
            return key[len(prefix) + 1 :], prefix
    return (key, "holdout") if key in BASE_METRICS else None


def metric_matrix(metrics: dict[str, float]) -> dict[str, Any]:
    """Metrics as a table: a row per base metric, a column per evaluation; the rest apart.

    Each cell is `(recorded key, value)` so the page can name the key it shows.

    >>> m = metric_matrix({"nmae": 0.05, "persistence_nmae": 0.08, "n_test": 336.0})
    >>> m["columns"], m["rows"][0], m["others"]
    (['holdout', 'persistence'], ('nmae', [('nmae', 0.05), ('persistence_nmae', 0.08)]), {'n_test': 336.0})
    """
    cells: dict[tuple[str, str], tuple[str, float]] = {}
    others: dict[str, float] = {}
    for key, value in metrics.items():
        where = split_metric(key)
        if where is None:
            others[key] = value
        else:
            cells[where] = (key, value)
    present = {ev for _, ev in cells}
    folds = sorted((ev for ev in present if ev.startswith("fold")), key=lambda ev: int(ev[4:]))
    columns = [ev for ev in EVALUATIONS if ev in present] + folds
    rows = [
        (metric, [cells.get((metric, ev), ("", None)) for ev in columns])
        for metric in BASE_METRICS
        if any((metric, ev) in cells for ev in columns)
    ]
    return {"columns": columns, "rows": rows, "others": dict(sorted(others.items()))}


def epoch(text: str) -> int:
    """An ISO 8601 time with offset (as the holdout stores them) in epoch seconds, for the charts."""
    return int(datetime.fromisoformat(text).timestamp())


def break_gaps(x: list[int], *columns: list[Any]) -> tuple[list[int], list[list[Any]]]:
    """`x` and its columns with a null point inside each gap longer than 3 usual steps, so a line
    chart breaks there instead of joining two periods with a straight segment.

    >>> break_gaps([0, 1, 2, 10, 11], [5, 5, 5, 6, 6])
    ([0, 1, 2, 3, 10, 11], [[5, 5, 5, None, 6, 6]])
    """
    steps = sorted(b - a for a, b in pairwise(x) if b > a)
    if not steps:
        return x, [list(c) for c in columns]
    usual = steps[len(steps) // 2]
    out_x: list[int] = []
    out: list[list[Any]] = [[] for _ in columns]
    for i, t in enumerate(x):
        if i and t - x[i - 1] > 3 * usual:
            out_x.append(x[i - 1] + usual)
            for col in out:
                col.append(None)
        out_x.append(t)
        for col, src in zip(out, columns, strict=True):
            col.append(src[i])
    return out_x, out


def holdout_series(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The holdout's (time, actual, forecast) points per entity, time-ascending (what uPlot needs).

    One group (entity None) when the rows carry no entity; else the `MAX_ENTITY_CHARTS` most
    sampled entities.
    """
    entities = doc["entity"] or [None] * len(doc["times"])
    order = [e for e, _ in Counter(entities).most_common(MAX_ENTITY_CHARTS)]
    groups = []
    for entity in order:
        points = sorted(
            (epoch(t), a, f)
            for t, a, f, e in zip(doc["times"], doc["actual"], doc["forecast"], entities, strict=True)
            if e == entity
        )
        groups.append({
            "entity": entity, "x": [p[0] for p in points], "actual": [p[1] for p in points],
            "forecast": [p[2] for p in points],
        })  # fmt: skip
    return groups


def _line(group: dict[str, Any], target: str) -> dict[str, Any]:
    x, (actual, forecast) = break_gaps(group["x"], group["actual"], group["forecast"])
    return {
        "type": "line",
        "x": x,
        "y_label": target,
        "sync": "holdout",
        "series": [{"label": "actual", "values": actual}, {"label": "forecast", "values": forecast}],
    }


def holdout_charts(doc: dict[str, Any], target: str) -> dict[str, Any]:
    """Chart specs of a holdout: forecast vs actual (per entity), residuals by hour, fold metrics."""
    lines = [
        {"id": f"holdout-{i}", "entity": g["entity"], "spec": _line(g, target)}
        for i, g in enumerate(holdout_series(doc))
    ]
    hours = doc["by_hour"]
    by_hour = {
        "type": "line", "time": False, "x": [h["hour"] for h in hours], "x_label": "UTC hour",
        "y_label": "forecast − actual",
        "series": [{"label": "mean residual", "values": [h["mean"] for h in hours], "points": True},
                   {"label": "MAE", "values": [h["mae"] for h in hours], "points": True}],
    }  # fmt: skip
    return {"lines": lines, "by_hour": by_hour if hours else None, "folds": fold_chart(doc["folds"])}


def fold_chart(folds: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bars of one metric per backtest fold: nMAE when every fold has it, else the first shared one."""
    if not folds:
        return None
    shared = set.intersection(*(set(f["metrics"]) for f in folds))
    metric = "nmae" if "nmae" in shared else min(shared, default=None)
    if metric is None:
        return None
    return {
        "type": "bars", "x": [f["fold"] for f in folds], "x_label": "fold", "y_label": metric,
        "series": [{"label": metric, "values": [f["metrics"][metric] for f in folds]}],
    }  # fmt: skip


def profile_charts(profile: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Bars of each profiled column's training histogram (share of rows per bin), and the columns
    left out beyond `MAX_HISTOGRAMS`."""
    from maestrale.stats.profile import histograms

    charts, rest = [], []
    for i, (name, hist) in enumerate(histograms(profile).items()):
        if i >= MAX_HISTOGRAMS:
            rest.append(name)
            continue
        total = sum(hist["counts"]) or 1
        spec = {
            "type": "bars", "x": hist["edges"][:-1], "x_label": name, "y_label": "share of rows",
            "series": [{"label": "training", "values": [c / total for c in hist["counts"]]}],
        }  # fmt: skip
        charts.append({"id": f"profile-{i}", "name": name, "spec": spec, "rows": sum(hist["counts"])})
    return charts, rest


def _holdout(request: Request, mv: ModelVersion) -> tuple[dict[str, Any] | None, str | None]:
    from maestrale.registry.holdout import none_message

    try:
        doc = request.app.state.store.holdout(mv.ref)
    except NotFound as exc:  # NoHoldout: a stored series that fails its checks; the page still opens
        return None, str(exc)
    return (doc, None) if doc is not None else (None, none_message(mv.ref))


def spec_yaml(spec: dict[str, Any] | None) -> str:
    """The recorded spec as YAML (keys in recorded order), cut at `MAX_SPEC_CHARS`."""
    import yaml

    if not spec:
        return ""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's: several times faster
    text = yaml.dump(spec, Dumper=dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return text if len(text) <= MAX_SPEC_CHARS else text[:MAX_SPEC_CHARS] + "\n# … cut: see the REST API\n"


def _detail(value: Any) -> str:
    text = (
        json.dumps(value, separators=(", ", ": "), default=str, ensure_ascii=False)
        if value is not None
        else ""
    )
    return text if len(text) <= 500 else text[:500] + " …"


@router.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
def version_page(request: Request, name: str, version: Version) -> HTMLResponse:
    """One version: facts, params, metrics, folds, spec, data, code, schema, profile and holdout."""
    viewer = current_viewer(request)
    validate_name(name)
    store = request.app.state.store
    mv = store.get_version(f"{name}:{version}")  # NotFound: 404 naming the version
    model = store.get_model(name)
    doc, missing = _holdout(request, mv)
    target = str((mv.spec or {}).get("target") or "target")
    histos, unshown = profile_charts(mv.profile)
    base = str(request.base_url).rstrip("/")
    return render(
        request, "version.html", viewer=viewer, model=model, mv=mv, matrix=metric_matrix(mv.metrics),
        holdout=doc, holdout_missing=missing, charts=holdout_charts(doc, target) if doc else None,
        histograms=histos, histograms_unshown=unshown, spec_text=spec_yaml(mv.spec),
        schema=(mv.input_schema or [])[:MAX_SCHEMA_ROWS], schema_total=len(mv.input_schema or []),
        lineage=[(e.relation, e.target, _detail(e.detail)) for e in mv.lineage], base_url=base,
        extension=EXTENSIONS.get(mv.artifact.format, ".bin"),
    )  # fmt: skip


@router.get("/models/{name}/versions/{version}/download")
def download(request: Request, name: str, version: Version) -> Response:
    """The version's artifact as an attachment, for a signed-in viewer with read scope.

    The REST endpoint wants a bearer token a browser link cannot send; this streams the same bytes
    (`api.registry`'s sender: sha256-checked, chunked when large) under the session cookie.
    """
    viewer = current_viewer(request)
    if not viewer.can("read"):
        raise Forbidden(f"{viewer.name!r} has scope {viewer.scope!r}; downloading needs 'read'")
    validate_name(name)
    response = send_version(request, f"{name}:{version}")
    fmt = response.headers.get("x-artifact-format", "")
    # name is [a-z0-9._-] (validate_name): safe in a header as it is
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{name}-{version}{EXTENSIONS.get(fmt, ".bin")}"'
    )
    for key in ("X-Content-Type-Options", "Cache-Control", "Referrer-Policy"):
        response.headers[key] = SECURITY_HEADERS[key]
    return response
