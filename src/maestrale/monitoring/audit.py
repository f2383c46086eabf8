"""The monitor's side of the audit trail: breaches, champion/challenger decisions and the retrainings
it asked for, newest first, across the fleet or for one model.

>>> events = monitor_events(store.engine, model="pv-nrel-50", limit=20)  # doctest: +SKIP
>>> [(e["kind"], e["details"].get("outcome")) for e in events[:2]]  # doctest: +SKIP
[('decision', 'promoted'), ('retraining', None)]

Each entry is `{time, kind, model, version, actor, reason, details}`. `time` is when the monitor
recorded it (wall clock, as alias moves are); the data time it judged (`as_of`) is in `details`,
since a replay or a backfill judges past data today. `actor` is "monitor".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from maestrale.monitoring import schema as t
from maestrale.platform.clock import aware

#: What `monitor_events` lists.
MONITOR_KINDS = ("breach", "decision", "retraining")
ACTOR = "monitor"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else aware(value).isoformat()


def _breach(r: Any) -> dict[str, Any]:
    return {
        "time": aware(r.detected_at), "kind": "breach", "model": r.model, "version": r.version,
        "actor": ACTOR, "reason": f"{r.condition}: {r.metric} {r.value:.6g} vs threshold {r.threshold:.6g}",
        "details": {
            "policy": r.policy, "condition": r.condition, "metric": r.metric, "value": r.value,
            "threshold": r.threshold, "window": r.window, "n": r.n, "as_of": _iso(r.as_of),
            "episode_id": r.episode_id, "actions": r.actions,
        },
    }  # fmt: skip


#: How `maestrale.monitoring.manual` prefixes the reason of a decision a person made.
BY_HAND = re.compile(r"^by hand \((?P<actor>[^)]{1,128})\): ")


def decision_actor(reason: str | None) -> str:
    """Who decided: the person named by a hand decision's reason, else the monitor.

    >>> decision_actor("by hand (ana): sensor fixed"), decision_actor("nmae 0.031 < 0.035")
    ('ana', 'monitor')
    """
    match = BY_HAND.match(reason or "")
    return match.group("actor") if match else ACTOR


def _decision(r: Any) -> dict[str, Any]:
    return {
        "time": aware(r.decided_at), "kind": "decision", "model": r.model, "version": r.challenger_version,
        "actor": decision_actor(r.reason), "reason": r.reason,
        "details": {
            "outcome": r.outcome, "champion_version": r.champion_version,
            "challenger_version": r.challenger_version, "metric": r.metric, "margin": r.margin, "n": r.n,
            "champion_metrics": r.champion_metrics, "challenger_metrics": r.challenger_metrics,
            "window_start": _iso(r.window_start), "window_end": _iso(r.window_end), "as_of": _iso(r.as_of),
        },
    }  # fmt: skip


def _retraining(r: Any) -> dict[str, Any]:
    return {
        "time": aware(r.requested_at), "kind": "retraining", "model": r.model, "version": r.version,
        "actor": ACTOR, "reason": r.reason,
        "details": {
            "request_id": r.request_id, "status": r.status, "parent_version": r.parent_version,
            "registered_version": r.version, "error": r.error, "as_of": _iso(r.as_of),
        },
    }  # fmt: skip


_SOURCES: dict[str, tuple[Any, str, Callable[[Any], dict[str, Any]]]] = {
    "breach": (t.monitor_breaches, "detected_at", _breach),
    "decision": (t.monitor_decisions, "decided_at", _decision),
    "retraining": (t.monitor_retrainings, "requested_at", _retraining),
}


def monitor_events(
    engine: Engine,
    *,
    kinds: tuple[str, ...] = MONITOR_KINDS,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    actor: str | None = None,
) -> list[dict[str, Any]]:
    """Breaches, decisions and retraining requests, newest first, `limit` at most in all.

    `actor` "monitor" (or None) lists everything; a person's name lists the decisions they made by hand.

    `since` is inclusive, `until` exclusive, both on the recorded (wall-clock) time. Each kind is
    read newest first with `limit` in SQL, so the merge holds at most `len(kinds) * limit` rows.
    """
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for kind, (table, column, entry) in _SOURCES.items():
            if kind not in kinds:
                continue
            at = table.c[column]
            q = select(table)
            if actor not in (None, ACTOR):
                if kind != "decision":
                    continue  # only decisions are ever made by a person
                q = q.where(table.c.reason.like(f"by hand ({_like_escape(actor or '')}): %", escape="\\"))
            if model is not None:
                q = q.where(table.c.model == model)
            # UTC: SQLite compares the stored text, which is UTC without an offset
            if since is not None:
                q = q.where(at >= since.astimezone(UTC))
            if until is not None:
                q = q.where(at < until.astimezone(UTC))
            order = [at.desc(), table.c.id.desc()] if "id" in table.c else [at.desc()]
            out += [entry(r) for r in conn.execute(q.order_by(*order).limit(limit))]
    out.sort(key=lambda e: e["time"], reverse=True)
    if actor == ACTOR:  # the monitor's own entries only, not the decisions people made
        out = [e for e in out if e["actor"] == ACTOR]
    return out[:limit]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
