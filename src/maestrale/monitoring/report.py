"""The monitoring report: one self-contained HTML file per model, plots inline, no network needed.

>>> from maestrale.monitoring.report import write_report
>>> write_report(store, registry, "pv-nrel-50", "report.html", window="7D")  # doctest: +SKIP
PosixPath('report.html')

Sections: the champion and the data covered; performance over time against the training figure;
forecast vs actual; drift per feature; and the event timeline with the audit tables (breaches,
champion/challenger decisions, alias moves). Plots are PNGs embedded as base64 (`_plots`), the CSS is
inline and there is no script or external URL, so the file can be mailed, archived or attached to a
ticket and still read the same years later. Every missing piece says so instead of failing.
"""

from __future__ import annotations

import html
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maestrale.errors import NotFound
from maestrale.monitoring import _plots
from maestrale.monitoring._plots import PlotDependencyMissing, require_matplotlib
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.monitoring.store import MonitorStore
    from maestrale.registry.client import Registry
    from maestrale.registry.types import AliasChange, ModelVersion

RECENT = timedelta(days=14)
HISTORY = timedelta(days=365)  # the daily-mean panel: bounded, so a years-old fleet stays quick
# the training metrics shown up front; the rest (folds, baselines) sit behind a <details>
HEADLINE = ("nmae", "nrmse", "nbias", "mae", "rmse", "bias", "skill", "mape", "backtest_nmae",
            "persistence_nmae", "n_train", "n_test")  # fmt: skip
_US = timedelta(microseconds=1)
__all__ = ["PlotDependencyMissing", "ReportData", "build_report", "collect", "render", "require_matplotlib",
           "write_report"]  # fmt: skip


@dataclass
class ReportData:
    """Everything the report shows, read once from the monitor store and the registry."""

    model: str
    window: str | None
    generated_at: datetime
    champion: ModelVersion | None
    serving: ModelVersion | None  # the champion, else the version of the latest logged predictions
    registered: bool
    first: datetime | None  # first and last target time logged, and how many predictions
    last: datetime | None
    logged: int
    clock: datetime | None  # latest target time with an actual (the monitor's clock)
    performance: list[dict[str, Any]]
    drift: list[dict[str, Any]]
    drift_window: str | None
    breaches: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    aliases: list[AliasChange]
    scored: pd.DataFrame | None = None  # prediction/actual pairs of the history panel
    episodes: list[dict[str, Any]] | None = None  # alert episodes (repeated breaches grouped)

    def summary(self) -> str:
        """One line for the CLI: what the report is built from."""
        return (
            f"{self.model}: {len(self.performance)} performance and {len(self.drift)} drift evaluations, "
            f"{len(self.breaches)} breaches in {len(self.episodes or [])} episodes, {len(self.decisions)} "
            f"decisions, {len(self.aliases)} alias moves"
        )


def _coverage(store: MonitorStore, model: str) -> tuple[datetime | None, datetime | None, int]:
    from sqlalchemy import func, select

    from maestrale.monitoring import schema as t
    from maestrale.platform.clock import aware

    p = t.predictions
    q = select(func.min(p.c.target_time), func.max(p.c.target_time), func.count()).where(p.c.model == model)
    with store.engine.connect() as conn:
        first, last, n = conn.execute(q).one()
    return (first and aware(first)), (last and aware(last)), int(n or 0)


def _in_window(evals: list[dict[str, Any]], window: str | None) -> list[dict[str, Any]]:
    """Evaluations over `window`, compared as durations: "7D", "7d" and "1W" are the same window."""
    if window is None:
        return evals
    span = parse_window(window)
    return [e for e in evals if parse_window(e["window"]) == span]


def collect(store: MonitorStore, registry: Registry, model: str, *, window: str | None = None) -> ReportData:
    """Read what the report needs; `window` (e.g. "7D") keeps only that evaluation window.

    >>> collect(store, registry, "pv-nrel-50").summary()  # doctest: +SKIP
    'pv-nrel-50: 12 performance and 6 drift evaluations, 3 breaches, 1 decisions, 2 alias moves'
    """
    from maestrale.refs import validate_name

    validate_name(model)
    champion = serving = None
    registered = True
    try:
        champion = serving = registry.get_version(f"{model}@champion")
    except NotFound:
        try:
            registry.get_model(model)
        except NotFound:
            registered = False
    first, last, logged = _coverage(store, model)
    if serving is None and (latest := store.latest_version(model)) is not None:
        with suppress(NotFound):
            serving = registry.get_version(f"{model}:{latest}")
    aliases: list[AliasChange] = []
    if registered:
        with suppress(NotFound):
            aliases = registry.alias_history(model)
    perf = _in_window(store.series(model, kind="performance"), window)
    drift_all = _in_window(store.series(model, kind="drift"), window)
    with_stats = [e for e in drift_all if "stats" in (e["values"] or {})]
    windows = [e["window"] for e in (with_stats or drift_all)]
    # the heatmap needs one series: the window evaluated most often (the policy's drift window)
    drift_window = max(sorted(set(windows)), key=windows.count) if windows else None
    data = ReportData(
        model=model,
        window=window,
        generated_at=datetime.now(UTC),
        champion=champion,
        serving=serving,
        registered=registered,
        first=first,
        last=last,
        logged=logged,
        clock=store.data_time(model),
        performance=perf,
        drift=[e for e in drift_all if e["window"] == drift_window],
        drift_window=drift_window,
        breaches=store.breaches(model),
        decisions=store.decisions(model),
        aliases=aliases,
        episodes=store.episodes(model),
    )
    if data.clock is not None and first is not None:
        start = max(first, data.clock - HISTORY)
        data.scored = store.scored(model, start, data.clock + _US)
    return data


# -- HTML helpers ---------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _t(value: datetime | None) -> str:
    return "-" if value is None else _plots.naive(value).strftime("%Y-%m-%d %H:%M UTC")


def _n(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    return f"{value:.4g}" if np.isfinite(value) else "-"


def _pairs(mapping: dict[str, Any] | None) -> str:
    """Metrics on one line, `nmae=0.031 rmse=0.12` (plain text: escape it where it is used)."""
    return " ".join(f"{k}={_n(v)}" for k, v in sorted((mapping or {}).items())) or "-"


def _table(columns: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    """Cells must already be escaped (they may hold markup); headers are escaped here."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        (f'<tr class="{cls}">' if cls else "<tr>") + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for row, cls in zip(rows, classes or [""] * len(rows), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">'


def _empty(message: str) -> str:
    return f'<p class="empty">{_e(message)}</p>'


# -- sections -------------------------------------------------------------------------------------
def _header(d: ReportData, title: str) -> str:
    champ = d.champion
    if champ is not None:
        why = f", {champ.reason}" if champ.reason else ""
        who = f"v{champ.version} (registered {_t(champ.created_at)}{why})"
    elif d.serving is not None:
        who = f"no champion alias; the latest predictions come from v{d.serving.version}"
    else:
        who = "no champion alias" if d.registered else "model not registered in this registry"
    covered = (
        f"{_t(d.first)} → {_t(d.last)}, {d.logged} predictions logged"
        if d.logged
        else "no predictions logged yet"
    )
    facts = [
        ("model", d.model),
        ("champion", who),
        ("data window (target times)", covered),
        ("monitor clock (latest target time with an actual)", _t(d.clock)),
        ("evaluation window", d.window or "all"),
        ("generated", _t(d.generated_at)),
    ]
    out = [f"<h1>{_e(title)}</h1>", '<table class="facts">']
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts]
    out.append("</table>")
    mv = d.serving
    if mv is not None and mv.metrics:
        label = "champion" if mv is d.champion else f"v{mv.version}"
        head = [k for k in HEADLINE if k in mv.metrics]
        out.append(f"<h3>Training (holdout) metrics of the {_e(label)}</h3>")
        out.append(_table(head, [[_n(mv.metrics[k]) for k in head]]) if head else "")
        rest = [[_e(k), _n(v)] for k, v in sorted(mv.metrics.items())]
        every = _table(["metric", "value"], rest)
        out.append(f"<details><summary>all {len(rest)} metrics</summary>{every}</details>")
    elif mv is not None:
        out.append(_empty(f"v{mv.version} has no training metrics recorded"))
    return "\n".join(out)


def _performance(d: ReportData) -> str:
    evals = d.performance
    if not evals:
        over = f" over {d.window}" if d.window else ""
        return _empty(f"no performance evaluations{over} yet: the monitor records them once actuals arrive")
    metric, bias = _plots.pick_metric(evals, "nmae", "mae"), _plots.pick_metric(evals, "nbias", "bias")
    fallback = d.champion.metrics.get(metric) if d.champion is not None else None
    uri = _plots.performance_png(evals, fallback)
    latest = {e["window"]: e for e in evals}  # oldest first: the last one per window wins
    cols = ["window", "as of", "version", "n", metric, f"{metric} / training", bias, "skill"]
    rows = []
    for w, e in sorted(latest.items()):
        overall, ratios = e["values"].get("overall", {}), e["values"].get("ratios", {})
        rows.append([_e(w), _t(e["as_of"]), f"v{e['version']}", _n(e["n"]), _n(overall.get(metric)),
                     _n(ratios.get(metric)), _n(overall.get(bias)), _n(overall.get("skill"))])  # fmt: skip
    table = _table(cols, rows)
    return _img(uri, f"{metric} and {bias} over time") + "<h3>Latest evaluation per window</h3>" + table


def _forecast(d: ReportData) -> str:
    if d.scored is None or d.scored.empty or d.clock is None:
        return _empty(
            "no scored predictions yet: a prediction counts once the actual of its entity and time arrives"
        )
    return _img(_plots.forecast_png(d.scored, d.clock), "prediction vs actual")


def _drift(d: ReportData) -> str:
    if not d.drift:
        return _empty(f"no drift evaluations{f' over {d.window}' if d.window else ''} yet")
    done = [e for e in d.drift if "stats" in (e["values"] or {})]
    if not done:
        note = d.drift[-1]["values"].get("note", "no statistics")
        return _empty(
            f"{len(d.drift)} drift evaluations over {d.drift_window}, none with statistics ({note})"
        )
    uri, shown, total = _plots.drift_png(done)
    out = [
        f"<p>PSI per feature at each drift evaluation over {_e(d.drift_window)}; above "
        f"{_plots.PSI_ALERT} (highlighted) is a significant shift.</p>",
        _img(uri, "PSI heatmap"),
    ]
    if shown < total:
        out.append(_empty(f"the heatmap shows the {shown} of {total} features with the highest PSI"))
    last = done[-1]
    stats = {f: s or {} for f, s in last["values"]["stats"].items()}
    order = sorted(stats, key=lambda f: -(stats[f].get("psi") or 0.0))
    cols = ["psi", "ks", "ks_pvalue", "wasserstein_norm", "js", "n_cur"]
    rows = [[_e(f)] + [_n(stats[f].get(c)) for c in cols] for f in order]
    hot = ["hot" if (stats[f].get("psi") or 0.0) > _plots.PSI_ALERT else "" for f in order]
    out.append(f"<h3>Latest drift evaluation: {_t(last['as_of'])}, v{last['version']}, n={last['n']}</h3>")
    out.append(_table(["feature", *cols], rows, hot))
    return "\n".join(out)


def _actions(actions: dict[str, Any] | None) -> str:
    """`{"breach": True, "retrain": "not requested: cooldown …"}` → `breach: yes; retrain: not requested…`"""
    shown = {k: ("yes" if v is True else "no" if v is False else v) for k, v in (actions or {}).items()}
    return "; ".join(f"{k}: {v}" for k, v in shown.items())


def _episodes(episodes: list[dict[str, Any]]) -> str:
    """One row per episode: repeated breaches of one condition are one alert with its start, end, peak."""
    if not episodes:
        return _empty("no breaches recorded")
    rows = [[_t(e["started_at"]), "open" if e["ended_at"] is None else _t(e["ended_at"]), _e(e["condition"]),
             _n(e["breaches"]), _e(f"{e['peak_metric']} {_n(e['peak_value'])}"), _t(e["peak_at"]),
             _n(e["threshold"]), _e(e["window"]), _e(f"v{e['first_version']}" + (
                 f"–v{e['last_version']}" if e["last_version"] != e["first_version"] else "")),
             _e(_actions(e.get("actions"))), _e(e["description"])] for e in episodes]  # fmt: skip
    cols = ["start", "end", "condition", "breaches", "peak", "peak at", "threshold", "window", "versions",
            "actions", "peak description"]  # fmt: skip
    return _table(cols, rows, ["hot" if e["ended_at"] is None else "" for e in episodes])


def _events(d: ReportData) -> str:
    period = (d.first, d.last) if d.first is not None and d.last is not None else None
    uri, off = _plots.timeline_png(d.breaches, d.decisions, d.aliases, period)
    out = [_img(uri, "event timeline") if uri else _empty("no breaches, decisions or alias moves yet")]
    if uri and off:
        out.append(_empty(f"{off} alias moves fall outside the data period: listed below, not plotted"))
    out.append("<h3>Alert episodes</h3>")
    out.append(_episodes(d.episodes or []))
    rows = [[_t(b["as_of"]), f"v{b['version']}", _e(b["condition"]), _e(b["metric"]), _n(b["value"]),
             _n(b["threshold"]), _e(b["window"]), _n(b["n"]), _e(_actions(b.get("actions"))),
             _e((b.get("details") or {}).get("description"))] for b in d.breaches]  # fmt: skip
    cols = ["date", "version", "condition", "metric", "value", "threshold", "window", "n", "actions",
            "description"]  # fmt: skip
    if rows:  # every breach stays in the audit trail, folded: the episodes above are the alerts
        out.append(f"<details><summary>all {len(rows)} breaches</summary>{_table(cols, rows)}</details>")
    out.append("<h3>Champion/challenger decisions</h3>")
    rows = [[_t(x["as_of"]), _e(f"v{x['champion_version']} vs v{x['challenger_version']}"),
             f'<span class="{_e(x["outcome"])}">{_e(x["outcome"])}</span>', _e(x["reason"]),
             _e(f"{x['metric']} better by {x['margin']:.0%}"), _n(x["n"]), _e(_pairs(x["champion_metrics"])),
             _e(_pairs(x["challenger_metrics"]))] for x in d.decisions]  # fmt: skip
    cols = ["date", "champion vs challenger", "outcome", "reason", "needs", "n", "champion metrics",
            "challenger metrics"]  # fmt: skip
    out.append(_table(cols, rows) if rows else _empty("no champion/challenger decisions recorded"))
    out.append("<h3>Alias moves</h3>")
    rows = [[_t(a.at), _e(a.alias), _e(a.previous_version), _e("removed" if a.version is None else a.version),
             _e(a.actor), _e(a.reason)] for a in d.aliases]  # fmt: skip
    cols = ["at (wall clock)", "alias", "from", "to", "actor", "reason"]
    out.append(_table(cols, rows) if rows else _empty("no alias moves recorded"))
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}h1{font-size:1.6em}
h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-top:1.4em}table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f4f4f4}
table.facts th{width:22em}tr.hot td{background:#fdd}img{max-width:100%;height:auto}
p.empty{color:#777;font-style:italic}.promoted{color:#1a7f37;font-weight:bold}.rejected,.expired{color:#b35900}
footer{margin-top:3em;color:#888;font-size:.8em}
"""


def render(data: ReportData, *, title: str | None = None) -> str:
    """The HTML of collected data (see `collect`)."""
    from maestrale import __version__

    require_matplotlib()
    title = title or f"Monitoring report: {data.model}"
    sections = [
        ("Performance over time", _performance(data)),
        ("Forecast vs actual", _forecast(data)),
        ("Drift per feature", _drift(data)),
        ("Events and audit trail", _events(data)),
    ]
    body = [_header(data, title)] + [f"<section><h2>{_e(h)}</h2>\n{s}\n</section>" for h, s in sections]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<footer>generated by maestrale {_e(__version__)} at {_t(data.generated_at)}</footer>"
        + "\n</body></html>\n"
    )


def build_report(
    store: MonitorStore,
    registry: Registry,
    model: str,
    *,
    window: str | None = None,
    title: str | None = None,
) -> str:
    """The report of `model` as an HTML string.

    >>> html_text = build_report(store, registry, "pv-nrel-50", window="7D")  # doctest: +SKIP
    """
    require_matplotlib()  # before any query: a missing extra fails fast with the install hint
    return render(collect(store, registry, model, window=window), title=title)


def write_report(
    store: MonitorStore,
    registry: Registry,
    model: str,
    path: str | Path,
    *,
    window: str | None = None,
    title: str | None = None,
) -> Path:
    """Write the report of `model` to `path` (UTF-8) and return the path.

    >>> write_report(store, registry, "pv-nrel-50", "report-pv-nrel-50.html")  # doctest: +SKIP
    PosixPath('report-pv-nrel-50.html')
    """
    path = Path(path)
    path.write_text(build_report(store, registry, model, window=window, title=title), encoding="utf-8")
    return path
