"""Archive and unarchive of the SQL store, each recorded in `archive_history` (who, when, why) and
announced on the outbox, and the registry's side of the audit trail (`history`).

>>> store.archive_version("pv-forecast:2", actor="ana", reason="superseded")  # doctest: +SKIP
>>> store.unarchive_version("pv-forecast:2", actor="ana", reason="needed for the compare")  # doctest: +SKIP
>>> [e["kind"] for e in store.history(model="pv-forecast", limit=10)]  # doctest: +SKIP
['archive', 'archive', 'alias']
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from maestrale.errors import Conflict
from maestrale.platform.clock import aware, utcnow
from maestrale.platform.outbox import add_event
from maestrale.refs import ModelRef, validate_name
from maestrale.registry import schema as s
from maestrale.registry.types import ModelVersion

#: What `history` can list: alias moves and archive/unarchive (of versions and models).
HISTORY_KINDS = ("alias", "archive")


class ArchiveOps:
    """Mixed into `SqlStore`; relies on its engines, `_model_row`, `resolve`, `get_version` and
    `_refresh_documents`."""

    engine: Any
    write_engine: Any
    _model_row: Any
    resolve: Any
    get_version: Any
    _refresh_documents: Any

    @staticmethod
    def _record(
        conn: Connection, mid: int, version: int | None, action: str, actor: str | None, reason: str | None
    ) -> None:
        conn.execute(
            insert(s.archive_history).values(
                model_id=mid, version=version, action=action, actor=actor, reason=reason, at=utcnow()
            )
        )

    # -- models -----------------------------------------------------------------------------
    def archive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None:
        """Hide a model from listings; its versions stay loadable by exact reference."""
        with self.write_engine.begin() as conn:
            row = self._model_row(conn, name)
            conn.execute(
                update(s.models).where(s.models.c.id == row.id).values(archived=True, updated_at=utcnow())
            )
            self._record(conn, row.id, None, "archived", actor, reason)
            data = {"name": name, "actor": actor}
            add_event(conn, "maestrale.model.archived", name, data, source=s.EVENT_SOURCE)

    def unarchive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None:
        """List an archived model again (its archived versions stay archived: unarchive them one by one)."""
        with self.write_engine.begin() as conn:
            row = self._model_row(conn, name)
            if not row.archived:
                raise Conflict(f"model {name!r} is not archived; nothing to unarchive")
            conn.execute(
                update(s.models).where(s.models.c.id == row.id).values(archived=False, updated_at=utcnow())
            )
            self._record(conn, row.id, None, "unarchived", actor, reason)
            data = {"name": name, "actor": actor, "reason": reason}
            add_event(conn, "maestrale.model.unarchived", name, data, source=s.EVENT_SOURCE)

    # -- versions ---------------------------------------------------------------------------
    def archive_version(self, ref: str, actor: str | None = None, reason: str | None = None) -> ModelVersion:
        """Mark a version archived (never deleted); refused while an alias points at it."""
        with self.write_engine.begin() as conn:
            mid, number = self.resolve(ref, conn)
            held = (
                conn.execute(
                    select(s.aliases.c.alias).where(
                        s.aliases.c.model_id == mid, s.aliases.c.version == number
                    )
                )
                .scalars()
                .all()
            )
            if held:
                raise Conflict(
                    f"version {number} is still aliased as {', '.join(held)}: move or delete "
                    "those aliases before archiving it"
                )
            self._set_status(conn, mid, number, "archived")
            self._record(conn, mid, number, "archived", actor, reason)
            name = ModelRef.parse(ref).name
            add_event(
                conn,
                "maestrale.model.version_archived",
                name,
                {"name": name, "version": number, "actor": actor},
                source=s.EVENT_SOURCE,
            )
        return self.get_version(f"{name}:{number}")

    def unarchive_version(
        self, ref: str, actor: str | None = None, reason: str | None = None
    ) -> ModelVersion:
        """Make an archived version ready again (listed, and able to take an alias)."""
        name = ModelRef.parse(ref).name
        with self.write_engine.begin() as conn:
            mid, number = self.resolve(ref, conn)
            status = conn.execute(
                select(s.versions.c.status).where(
                    s.versions.c.model_id == mid, s.versions.c.version == number
                )
            ).scalar_one()
            if status != "archived":
                raise Conflict(f"version {number} of {name!r} is not archived; nothing to unarchive")
            self._set_status(conn, mid, number, "ready")
            self._record(conn, mid, number, "unarchived", actor, reason)
            data = {"name": name, "version": number, "actor": actor, "reason": reason}
            add_event(conn, "maestrale.model.version_unarchived", name, data, source=s.EVENT_SOURCE)
        return self.get_version(f"{name}:{number}")

    def _set_status(self, conn: Connection, mid: int, number: int, status: str) -> None:
        conn.execute(
            update(s.versions)
            .where(s.versions.c.model_id == mid, s.versions.c.version == number)
            .values(status=status)
        )
        self._refresh_documents(conn, mid, (number,))  # the stored search document shows the status

    # -- the audit trail --------------------------------------------------------------------
    def history(
        self,
        *,
        kinds: tuple[str, ...] = HISTORY_KINDS,
        model: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Alias moves and archive/unarchive of every model (or one), newest first, `limit` at most.

        Entries: `{time, kind, model, version, actor, reason, details}`; an alias move's details
        hold the alias, `from` and `to` versions (`to` None: removed); an archive's the `action`
        and `target` (`version` or `model`). `since` is inclusive, `until` exclusive.
        """
        if model is not None:
            validate_name(model)
        sources = {"alias": (s.alias_history, _alias_entry), "archive": (s.archive_history, _archive_entry)}
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for kind, (table, entry) in sources.items():
                if kind in kinds:
                    q = _history_query(table, model, actor, since, until, limit)
                    out += [entry(row) for row in conn.execute(q)]
        out.sort(key=lambda e: e["time"], reverse=True)
        return out[:limit]


def _history_query(
    table: Any,
    model: str | None,
    actor: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Any:
    # newest first, each source bounded by `limit` in SQL: the merge never holds more than kinds x limit
    q = select(table, s.models.c.name).select_from(table.join(s.models))
    if model is not None:
        q = q.where(s.models.c.name == model)
    if actor is not None:
        q = q.where(table.c.actor == actor)
    # UTC: SQLite compares the stored text, which is UTC without an offset
    if since is not None:
        q = q.where(table.c.at >= since.astimezone(UTC))
    if until is not None:
        q = q.where(table.c.at < until.astimezone(UTC))
    return q.order_by(table.c.at.desc(), table.c.id.desc()).limit(limit)


def _alias_entry(r: Any) -> dict[str, Any]:
    return {
        "time": aware(r.at), "kind": "alias", "model": r.name, "version": r.version, "actor": r.actor,
        "reason": r.reason, "details": {"alias": r.alias, "from": r.previous_version, "to": r.version},
    }  # fmt: skip


def _archive_entry(r: Any) -> dict[str, Any]:
    target = "model" if r.version is None else "version"
    return {
        "time": aware(r.at), "kind": "archive", "model": r.name, "version": r.version, "actor": r.actor,
        "reason": r.reason, "details": {"action": r.action, "target": target},
    }  # fmt: skip
