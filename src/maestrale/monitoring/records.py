"""The monitor's own records: evaluations, breaches, decisions, per-model state and read models.

A mixin of `MonitorStore` (same engine): `store.breaches("pv-nrel-50")`, `store.decisions(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Text,
    and_,
    cast,
    func,
    insert,
    select,
    update,
)

from maestrale.monitoring import schema as t
from maestrale.platform.clock import aware


class MonitorRecords:
    """Evaluations, breaches, decisions and state; expects `self.engine` and `self._writer`."""

    engine: Engine
    _writer: Engine

    if TYPE_CHECKING:  # provided by MonitorStore

        def models(self) -> list[str]: ...
        def latest_version(self, model: str) -> int | None: ...

    def add_evaluation(self, conn: Connection, **row: Any) -> None:
        """Append one evaluation (kind performance|drift) inside the caller's transaction."""
        now = datetime.now(UTC)
        res = conn.execute(insert(t.monitor_evaluations).values(evaluated_at=now, **row))
        key = res.inserted_primary_key
        assert key is not None
        # the newest stored row is the latest, as before: overwrite the pointer in the same transaction
        latest = t.monitor_latest_evaluations
        pointer = {"model": row["model"], "kind": row["kind"], "window": row["window"]}
        copy = {
            "evaluation_id": int(key[0]), "version": row["version"], "as_of": row["as_of"], "n": row["n"],
            "evaluated_at": now, "summary": summary_of(row.get("values")),
        }  # fmt: skip
        upsert = _dialect_insert(conn)(latest).values(**pointer, **copy)
        conn.execute(upsert.on_conflict_do_update(index_elements=list(pointer), set_=copy))

    def add_breach(self, conn: Connection, **row: Any) -> int:
        """Record a breach inside the caller's transaction; returns its id."""
        res = conn.execute(insert(t.monitor_breaches).values(detected_at=datetime.now(UTC), **row))
        key = res.inserted_primary_key
        assert key is not None  # an INSERT of one row always has its key
        return int(key[0])

    def add_decision(self, conn: Connection, **row: Any) -> None:
        """Record a champion/challenger decision inside the caller's transaction."""
        conn.execute(insert(t.monitor_decisions).values(decided_at=datetime.now(UTC), **row))

    def state(self, model: str) -> dict[str, Any]:
        """The monitor's state of `model` (empty dict before its first evaluation)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(t.monitor_state).where(t.monitor_state.c.model == model))
                .mappings()
                .first()
            )
        if row is None:
            return {}
        return {k: (aware(v) if isinstance(v, datetime) else v) for k, v in row.items()}

    def set_state(self, conn: Connection, model: str, **values: Any) -> None:
        """Update (or create) the state row of `model` inside the caller's transaction."""
        values["updated_at"] = datetime.now(UTC)
        done = conn.execute(update(t.monitor_state).where(t.monitor_state.c.model == model).values(**values))
        if done.rowcount == 0:
            conn.execute(insert(t.monitor_state).values(model=model, **values))

    def series(
        self,
        model: str,
        *,
        kind: str = "performance",
        window: str | None = None,
        limit: int = 10_000,
        since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Stored evaluations of `model`, oldest first: as_of, version, window, n and the values.

        `since` keeps those with `as_of >= since` (a page's time range reads only what it shows).
        """
        e = t.monitor_evaluations
        q = select(e.c.as_of, e.c.version, e.c.window, e.c.n, e.c["values"]).where(
            e.c.model == model, e.c.kind == kind
        )
        if window is not None:
            q = q.where(e.c.window == window)
        if since is not None:
            q = q.where(e.c.as_of >= since.astimezone(UTC))
        q = q.order_by(e.c.as_of, e.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [{**r, "as_of": aware(r["as_of"])} for r in rows]

    def breaches(self, model: str | None = None, limit: int = 1_000) -> list[dict[str, Any]]:
        """Recorded breaches, oldest first."""
        b = t.monitor_breaches
        q = select(b).order_by(b.c.as_of, b.c.id).limit(limit)
        if model is not None:
            q = q.where(b.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in rows]

    def episodes(self, model: str, limit: int = 1_000) -> list[dict[str, Any]]:
        """The newest `limit` alert episodes of `model`, oldest first (`maestrale.monitoring.episodes`).

        >>> eps = store.episodes("pv-nrel-50")  # doctest: +SKIP
        >>> [(e["condition"], e["breaches"], e["open"]) for e in eps]  # doctest: +SKIP
        [('shortfall', 6, False), ('input-drift', 2, True)]
        """
        from maestrale.monitoring.episodes import episodes

        with self.engine.connect() as conn:
            return episodes(conn, model, limit=limit)

    def pairs_since(self, model: str, since: datetime, version: int | None) -> int:
        """Scored pairs of `model` (`version`) with a target time after `since`: a challenger's evidence."""
        p, a = t.predictions, t.actuals
        q = (
            select(func.count())
            .select_from(p.join(a, and_(a.c.entity == p.c.entity, a.c.target_time == p.c.target_time)))
            .where(p.c.model == model, p.c.target_time > since.astimezone(UTC))
        )
        if version is not None:
            q = q.where(p.c.version == version)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def decisions(self, model: str | None = None, limit: int = 1_000) -> list[dict[str, Any]]:
        """Champion/challenger decisions with their numbers, oldest first."""
        d = t.monitor_decisions
        q = select(d).order_by(d.c.as_of, d.c.id).limit(limit)
        if model is not None:
            q = q.where(d.c.model == model)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in rows]

    def decided(self, model: str, challenger_version: int) -> bool:
        """True once a decision about `model:challenger_version` is recorded."""
        d = t.monitor_decisions
        q = select(d.c.id).where(d.c.model == model, d.c.challenger_version == challenger_version)
        with self.engine.connect() as conn:
            return conn.execute(q).first() is not None

    # -- read models of the API, the CLI and /metrics ---------------------------------------------
    def latest_evaluations(
        self, *, kind: str | None = None, model: str | None = None, full: bool = True
    ) -> list[dict[str, Any]]:
        """The latest stored evaluation of each (model, kind, window), in one bounded query.

        Rows: id, model, version, kind, window, as_of, n, values, evaluated_at (aware datetimes).
        With `full=False`, `values` is the evaluation's summary (`summary_of`: the overall figures,
        ratios, training figures, drift status and PSI per feature), read without the evaluations.

        >>> rows = store.latest_evaluations(kind="performance")  # doctest: +SKIP
        >>> [(r["model"], r["window"], r["n"]) for r in rows]  # doctest: +SKIP
        [('pv-nrel-50', '3D', 72), ('pv-nrel-50', '7D', 168)]
        """
        e, latest = t.monitor_evaluations, t.monitor_latest_evaluations
        if full:  # the pointers add_evaluation keeps: one indexed lookup per row, however long the history
            q = select(e).join(latest, e.c.id == latest.c.evaluation_id)
        else:
            q = select(
                latest.c.evaluation_id.label("id"), latest.c.model, latest.c.version, latest.c.kind,
                # as text, decoded below by the fastest parser at hand (the JSON type's hook is json's)
                latest.c.window, latest.c.as_of, latest.c.n, cast(latest.c.summary, Text).label("values"),
                latest.c.evaluated_at,
            )  # fmt: skip
        q = q.order_by(latest.c.model, latest.c.kind, latest.c.window)
        if kind is not None:
            q = q.where(latest.c.kind == kind)
        if model is not None:
            q = q.where(latest.c.model == model)
        with self.engine.connect() as conn:
            result = conn.execute(q)
            keys, rows = list(result.keys()), result.all()
        # plain tuples zipped with the keys: a RowMapping per row cost 20 µs (80 ms for 1,000 models)
        out = [dict(zip(keys, row, strict=True)) for row in rows]
        for r in out:
            r["as_of"], r["evaluated_at"] = aware(r["as_of"]), aware(r["evaluated_at"])
            if not full:
                r["values"] = _loads(r["values"]) if r["values"] is not None else None
        return out

    def breach_counts(self, model: str | None = None) -> dict[tuple[str, str], int]:
        """Recorded breaches per (model, condition), in one grouped query."""
        b = t.monitor_breaches
        q = select(b.c.model, b.c.condition, func.count()).group_by(b.c.model, b.c.condition)
        if model is not None:
            q = q.where(b.c.model == model)
        with self.engine.connect() as conn:
            return {(m, c): int(n) for m, c, n in conn.execute(q).all()}

    def known(self, model: str) -> bool:
        """True if `model` has logged predictions or stored evaluations (an index lookup each)."""
        p, e = t.predictions, t.monitor_evaluations
        with self.engine.connect() as conn:
            if conn.execute(select(p.c.id).where(p.c.model == model).limit(1)).first() is not None:
                return True
            return conn.execute(select(e.c.id).where(e.c.model == model).limit(1)).first() is not None

    def audit_trail(self, kind: str, model: str, limit: int = 1_000) -> list[dict[str, Any]]:
        """The newest `limit` breaches (`kind="breaches"`) or decisions (`"decisions"`), oldest first.

        Unlike `breaches()`/`decisions()`, a long history keeps its recent end, not its start.
        """
        table = {"breaches": t.monitor_breaches, "decisions": t.monitor_decisions}[kind]
        q = (
            select(table)
            .where(table.c.model == model)
            .order_by(table.c.as_of.desc(), table.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [_aware_row(r) for r in reversed(rows)]

    def overview(
        self, model: str | None = None, *, aliases: Callable[[str], dict[str, int]] | None = None
    ) -> list[dict[str, Any]]:
        """One summary per monitored model: clock, latest performance per window, breaches, challenger.

        `aliases(name)` gives the registry's aliases of a model (`{"champion": 3}`): the serving
        version is the champion, else the version of the latest logged prediction (as the monitor
        decides). `open_breaches` counts the conditions that fired at the latest evaluation,
        `episodes_open` the alert episodes still open; `challenger_pairs` of `challenger_min_samples`
        is how far the challenger is from a decision; `drift_status` says e.g. "no reference for December".

        >>> store.overview(aliases=lambda name: registry.get_model(name).aliases)  # doctest: +SKIP
        [{'model': 'pv-nrel-50', 'serving_version': 3, 'as_of': ..., 'performance': {'7D': {...}}, ...}]
        """
        models = [model] if model is not None else self.models()
        perf: dict[str, dict[str, Any]] = {}
        evaluated: dict[str, datetime] = {}
        drift_status: dict[str, str] = {}
        for row in self.latest_evaluations(model=model, full=False):  # every kind in one read
            m = row["model"]
            evaluated[m] = max(evaluated.get(m, row["evaluated_at"]), row["evaluated_at"])
            if row["kind"] == "drift" and (status := (row["values"] or {}).get("status")):
                drift_status[m] = status
            if row["kind"] == "performance":
                values = row["values"] or {}
                perf.setdefault(m, {})[row["window"]] = {
                    "version": row["version"],
                    "as_of": row["as_of"],
                    "n": row["n"],
                    "overall": values.get("overall", {}),
                    "ratios": values.get("ratios", {}),
                    "training": values.get("training", {}),
                }
        s, b, ep = t.monitor_state, t.monitor_breaches, t.monitor_episodes
        episodes_q = select(ep.c.model, ep.c.ended_at.is_(None), func.count()).group_by(
            ep.c.model, ep.c.ended_at.is_(None)
        )
        states_q = select(s)
        totals_q = select(b.c.model, func.count()).group_by(b.c.model)
        # breaches recorded at the model's latest evaluation: the conditions firing now
        open_q = (
            select(b.c.model, b.c.condition, func.count())
            .join(s, and_(s.c.model == b.c.model, s.c.as_of == b.c.as_of))
            .group_by(b.c.model, b.c.condition)
        )
        if model is not None:
            states_q = states_q.where(s.c.model == model)
            totals_q = totals_q.where(b.c.model == model)
            open_q = open_q.where(b.c.model == model)
            episodes_q = episodes_q.where(ep.c.model == model)
        with self.engine.connect() as conn:
            episode_counts: dict[str, dict[bool, int]] = {}
            for m, is_open, n in conn.execute(episodes_q).all():
                episode_counts.setdefault(m, {})[bool(is_open)] = int(n)
            result = conn.execute(states_q)
            keys = list(result.keys())
            plain = (dict(zip(keys, row, strict=True)) for row in result.all())
            states = {r["model"]: _aware_row(r) for r in plain}
            totals: dict[str, int] = {m: int(n) for m, n in conn.execute(totals_q).all()}
            opened: dict[str, int] = {}
            firing: dict[str, list[str]] = {}
            for m, condition, n in conn.execute(open_q).all():
                opened[m] = opened.get(m, 0) + int(n)
                firing.setdefault(m, []).append(condition)
        out = []
        for m in models:
            state = states.get(m, {})
            known_aliases = aliases(m) if aliases is not None else {}
            champion = known_aliases.get("champion")
            serving: int | None
            if champion is not None:
                serving = champion
            else:  # the version the monitor evaluated last, else (never evaluated) the last one logged
                evaluated_versions = [w["version"] for w in perf.get(m, {}).values() if w.get("version")]
                serving = max(evaluated_versions) if evaluated_versions else self.latest_version(m)
            since = state.get("challenger_since")
            counts = episode_counts.get(m, {})
            out.append(
                {
                    "model": m,
                    "serving_version": serving,
                    "champion": champion,
                    "challenger": known_aliases.get("challenger"),
                    "challenger_since": state.get("challenger_since"),
                    "as_of": state.get("as_of"),
                    "evaluated_at": evaluated.get(m),
                    "performance": perf.get(m, {}),
                    "open_breaches": int(opened.get(m, 0)),
                    "firing": sorted(firing.get(m, [])),  # the conditions behind open_breaches
                    "breaches_total": int(totals.get(m, 0)),
                    "last_retrain_at": state.get("last_retrain_at"),
                    "last_retrain_request": state.get("last_retrain_request"),
                    "retrain_status": state.get("retrain_status"),
                    "retrain_note": state.get("retrain_note"),
                    # the challenger's evidence so far: out-of-sample pairs of the serving version
                    "challenger_pairs": None if since is None else self.pairs_since(m, since, serving),
                    "challenger_min_samples": state.get("challenger_min_samples"),
                    "episodes_open": counts.get(True, 0),
                    "episodes_total": counts.get(True, 0) + counts.get(False, 0),
                    "drift_status": drift_status.get(m),
                }
            )
        return out


try:  # orjson parses 1,000 models' summaries several times faster than json; optional
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the stdlib parser gives the same values
    from json import loads as _loads  # type: ignore[assignment]


#: What an evaluation's summary keeps of its values: enough for an overview of 1,000 models.
SUMMARY_KEYS = ("overall", "ratios", "training", "status")


def summary_of(values: Any) -> dict[str, Any] | None:
    """The part of an evaluation's values an overview reads; drift statistics reduced to PSI.

    >>> summary_of({"overall": {"nmae": 0.04}, "by_entity": {}, "stats": {"ghi": {"psi": 0.1, "ks": 0.2}}})
    {'overall': {'nmae': 0.04}, 'stats': {'ghi': {'psi': 0.1}}}
    """
    if not isinstance(values, dict):
        return None
    out = {k: values[k] for k in SUMMARY_KEYS if k in values}
    stats = values.get("stats")
    if isinstance(stats, dict):
        out["stats"] = {f: {"psi": s["psi"]} for f, s in stats.items() if isinstance(s, dict) and "psi" in s}
    return out


def _dialect_insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _aware_row(row: Any) -> dict[str, Any]:
    return {k: (aware(v) if isinstance(v, datetime) else v) for k, v in row.items()}
