"""What the `maestrale monitor …` commands share: store, registry and server access, and their rows.

The monitor's records come from the database (MAESTRALE_DATABASE_URL) or, with --registry URL, from
the monitoring endpoints of a `maestrale server`; the helpers below read either and shape what the
commands print. Heavy imports stay inside the functions, so `maestrale --help` stays fast.

>>> as_datetime("2012-06-08T00:00+00:00")
datetime.datetime(2012, 6, 8, 0, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestrale.cli.output import fmt_metric, fmt_time

if TYPE_CHECKING:
    from maestrale.monitoring.monitor import EvaluationResult
    from maestrale.monitoring.policy import Policy
    from maestrale.monitoring.store import MonitorStore

#: The window and metric the status table shows (the default policy's accuracy condition).
STATUS_WINDOW, STATUS_METRIC = "7D", "nmae"


# -- store, registry and server access ------------------------------------------------------------
def open_store() -> MonitorStore:
    from maestrale.config import load_settings
    from maestrale.monitoring.store import MonitorStore

    settings = load_settings()
    assert settings.database_url  # filled by the Settings defaults
    return MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)


def aliases_of() -> Any:
    """`name → {alias: version}` from the embedded registry metadata (no artifact store needed)."""
    from maestrale.config import load_settings
    from maestrale.errors import NotFound
    from maestrale.registry.store import SqlStore

    settings = load_settings()
    assert settings.database_url
    meta = SqlStore(settings.database_url, settings.auto_upgrade)

    def aliases(name: str) -> dict[str, int]:
        try:
            return dict(meta.get_model(name).aliases)
        except NotFound:  # monitored but not registered here
            return {}

    return aliases


def remote_get(url: str, token: str | None, path: str, **params: Any) -> Any:
    """GET a monitoring endpoint of a `maestrale server`, server errors raised as Maestrale errors."""
    from maestrale.registry.remote import RemoteSession

    session = RemoteSession(url, token=token)
    query = {k: v for k, v in params.items() if v is not None}
    return session.json("GET", f"/api/v1/monitoring{path}", params=query)


def require_known(store: MonitorStore, name: str) -> None:
    from maestrale.errors import NotFound
    from maestrale.refs import validate_name

    validate_name(name)
    if not store.known(name):
        raise NotFound(
            f"nothing monitored for {name!r}: no predictions logged and no evaluations stored "
            "(see `maestrale monitor status` for the monitored models)"
        )


def trail(kind: str, name: str, registry: str | None, token: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` breaches or decisions of a model, from the server or the database."""
    if registry:
        return remote_get(registry, token, f"/models/{name}/{kind}", limit=limit)
    store = open_store()
    require_known(store, name)
    return store.audit_trail(kind, name, limit)


def load_policies(files: list[Path] | None) -> list[Policy] | None:
    from maestrale.monitoring.policy import load_policy

    return [load_policy(Path(f)) for f in files] if files else None


# -- rows -----------------------------------------------------------------------------------------
def as_datetime(value: datetime | str | None) -> datetime | None:
    """Datetimes as the store returns them, or ISO strings as the REST API does."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def headline(perf: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The window to show (7D, else the longest evaluated) and its figures."""
    if not perf:
        return None, None
    if STATUS_WINDOW in perf:
        return STATUS_WINDOW, perf[STATUS_WINDOW]
    from maestrale.vocabulary import parse_window

    window = max(perf, key=parse_window)
    return window, perf[window]


def status_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    """The `monitor status` table: one row per model overview (from the store or the server)."""
    rows = []
    for item in items:
        window, perf = headline(item.get("performance") or {})
        figure = ratio = "-"
        if perf is not None:
            value = (perf.get("overall") or {}).get(STATUS_METRIC)
            where = "" if window == STATUS_WINDOW else f", {window}"
            figure = f"{fmt_metric(value)} (n={perf['n']}{where})"
            r = (perf.get("ratios") or {}).get(STATUS_METRIC)
            ratio = "-" if r is None else f"{r:.2f}×"
        alerts = f"{item.get('episodes_open', 0)} open / {item.get('episodes_total', 0)}"
        if item.get("drift_status"):
            alerts += f"; {item['drift_status']}"
        rows.append(
            [
                item["model"],
                item.get("serving_version") or "-",
                fmt_time(as_datetime(item.get("as_of"))),
                figure,
                ratio,
                alerts,
                challenger_cell(item),
            ]
        )
    return rows


def challenger_cell(item: dict[str, Any]) -> str:
    """`v4: 40 of 72 pairs (since 2012-06-08 00:00)`, or the latest retraining's outcome, or `-`.

    >>> challenger_cell({"challenger": 4, "challenger_pairs": 40, "challenger_min_samples": 72})
    'v4: 40 of 72 out-of-sample pairs'
    """
    challenger = item.get("challenger")
    since = as_datetime(item.get("challenger_since"))
    if challenger is not None:
        pairs, need = item.get("challenger_pairs"), item.get("challenger_min_samples")
        progress = f": {pairs} of {need} out-of-sample pairs" if pairs is not None and need else ""
        return f"v{challenger}{progress}" + (f" (after {fmt_time(since)})" if since else "")
    status = item.get("retrain_status")
    if status == "requested":
        return f"retraining {str(item.get('last_retrain_request'))[:8]} running"
    if status in ("failed", "lost"):  # lost: no outcome came back within the promotion's max_wait
        return f"retraining {status}: {item.get('retrain_note') or '?'}"[:80]
    return "-"


EPISODE_COLUMNS = ["start", "end", "condition", "breaches", "peak", "at", "threshold", "window", "actions"]


def episode_rows(items: list[dict[str, Any]]) -> list[list[Any]]:
    """The `monitor episodes` table: one row per episode (open ones end in `open`)."""
    rows = []
    for e in items:
        actions = e.get("actions") or {}
        acted = "breach" if actions.get("breach") else "-"
        if actions.get("retrain"):
            acted += " retrain " + ",".join(str(r)[:8] for r in actions["retrain"])
        rows.append(
            [
                fmt_time(as_datetime(e["started_at"])),
                "open" if e.get("ended_at") is None else fmt_time(as_datetime(e["ended_at"])),
                e["condition"],
                e["breaches"],
                f"{e['peak_metric']} {fmt_metric(e['peak_value'])}",
                fmt_time(as_datetime(e["peak_at"])),
                fmt_metric(e["threshold"]),
                e["window"],
                acted,
            ]
        )
    return rows


def evaluation_lines(r: EvaluationResult) -> list[str]:
    """What one evaluation found and did, as the lines `monitor run` prints."""
    figures = []
    for window, rep in r.performance.items():
        metric = STATUS_METRIC if STATUS_METRIC in rep.overall else "mae"
        value = rep.overall.get(metric)
        ratio = rep.ratios.get(metric)
        times = f", {ratio:.2f}× training" if ratio is not None else ""
        figures.append(f"{metric} {window} {fmt_metric(value)} (n={rep.n}{times})")
    lines = [f"{r.model}:{r.version} at {fmt_time(r.as_of)}: " + ("; ".join(figures) or "no performance")]
    for b in r.breaches:
        acted = ", ".join(f"{k}: {v}" for k, v in b.actions.items() if v is not False)
        episode, opened = r.episodes.get(b.condition, (None, False))
        tag = "" if episode is None else f" (episode {episode}{', new' if opened else ''})"
        lines.append(f"  breach {b.condition}{tag}: {b.description}" + (f" [{acted}]" if acted else ""))
    if r.retrain_request:
        lines.append(f"  retraining requested: {r.retrain_request}")
    if r.decision is not None and r.challenger is not None:
        outcome = r.decision.outcome or "undecided"
        lines.append(f"  challenger {r.model}:{r.challenger} {outcome}: {r.decision.reason}")
    if r.promoted is not None:
        lines.append(f"  promoted {r.model}:{r.promoted} to champion")
    return lines


def evaluation_json(r: EvaluationResult) -> dict[str, Any]:
    """One evaluation as `monitor evaluate --json` prints it."""
    from dataclasses import asdict

    return {
        "model": r.model,
        "version": r.version,
        "as_of": r.as_of,
        "performance": {w: rep.as_dict() for w, rep in r.performance.items()},
        "drift": r.drift,
        "breaches": [asdict(b) for b in r.breaches],
        "retrain_request": r.retrain_request,
        "challenger": r.challenger,
        "decision": None if r.decision is None else asdict(r.decision),
        "promoted": r.promoted,
        "episodes": {c: {"id": i, "opened": o} for c, (i, o) in r.episodes.items()},
    }
