"""Alias operations of the SQL store: movable names for versions, with an audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from maestrale.errors import Conflict, InvalidInput, NotFound
from maestrale.limits import MAX_VERSION
from maestrale.platform.clock import aware, utcnow
from maestrale.platform.outbox import add_event
from maestrale.refs import DEFAULT_ALIAS, validate_name
from maestrale.registry import schema as s
from maestrale.registry.types import AliasChange


class AliasOps:
    """Mixed into `SqlStore`; uses its `engine`, `write_engine`, `_model_row` and `_refresh_documents`."""

    engine: Any
    write_engine: Any
    _model_row: Any
    _refresh_documents: Any

    # -- aliases ----------------------------------------------------------------------------
    def set_alias(
        self, name: str, alias: str, version: int, actor: str | None = None, reason: str | None = None
    ) -> AliasChange:
        """Point `alias` at `version`, recording who moved it from where; emits alias_set (and promoted)."""
        validate_name(alias, "alias")
        if not 1 <= version <= MAX_VERSION:  # the embedded API's check; REST bounds the body the same way
            raise InvalidInput(f"version must be an integer from 1 to {MAX_VERSION}, not {version}")
        now = utcnow()
        with self.write_engine.begin() as conn:
            model = self._model_row(conn, name)
            status = conn.execute(
                select(s.versions.c.status).where(
                    s.versions.c.model_id == model.id, s.versions.c.version == version
                )
            ).scalar()
            if status is None:
                raise NotFound(
                    f"version {version} of model {name!r} not found (latest is {model.latest_version})"
                )
            if status != "ready":
                raise Conflict(f"version {version} of {name!r} is archived and cannot take alias {alias!r}")
            prev = conn.execute(
                select(s.aliases.c.version).where(
                    s.aliases.c.model_id == model.id, s.aliases.c.alias == alias
                )
            ).scalar()
            if prev is None:
                conn.execute(
                    insert(s.aliases).values(
                        model_id=model.id, alias=alias, version=version, updated_at=now, updated_by=actor
                    )
                )
            else:
                conn.execute(
                    update(s.aliases)
                    .where(s.aliases.c.model_id == model.id, s.aliases.c.alias == alias)
                    .values(version=version, updated_at=now, updated_by=actor)
                )
            conn.execute(
                insert(s.alias_history).values(
                    model_id=model.id,
                    alias=alias,
                    version=version,
                    previous_version=prev,
                    actor=actor,
                    reason=reason,
                    at=now,
                )
            )
            # the search documents list their aliases: the version it left and the one it names
            self._refresh_documents(conn, model.id, (prev, version))
            data = {
                "name": name,
                "alias": alias,
                "version": version,
                "previous_version": prev,
                "actor": actor,
                "reason": reason,
            }
            add_event(conn, "maestrale.model.alias_set", name, data, source=s.EVENT_SOURCE)
            if alias == DEFAULT_ALIAS and prev != version:
                add_event(conn, "maestrale.model.promoted", name, data, source=s.EVENT_SOURCE)
        return AliasChange(
            name=name, alias=alias, version=version, previous_version=prev, actor=actor, reason=reason, at=now
        )

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> AliasChange:
        """Remove an alias (recorded in its history with version None)."""
        now = utcnow()
        with self.write_engine.begin() as conn:
            model = self._model_row(conn, name)
            prev = conn.execute(
                select(s.aliases.c.version).where(
                    s.aliases.c.model_id == model.id, s.aliases.c.alias == alias
                )
            ).scalar()
            if prev is None:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            conn.execute(
                delete(s.aliases).where(s.aliases.c.model_id == model.id, s.aliases.c.alias == alias)
            )
            conn.execute(
                insert(s.alias_history).values(
                    model_id=model.id, alias=alias, version=None, previous_version=prev, actor=actor, at=now
                )
            )
            self._refresh_documents(conn, model.id, (prev,))
            add_event(
                conn,
                "maestrale.model.alias_deleted",
                name,
                {"name": name, "alias": alias, "previous_version": prev, "actor": actor},
                source=s.EVENT_SOURCE,
            )
        return AliasChange(name=name, alias=alias, version=None, previous_version=prev, actor=actor, at=now)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        with self.engine.connect() as conn:
            mid = self._model_row(conn, name).id
            q = (
                select(s.alias_history)
                .where(s.alias_history.c.model_id == mid)
                .order_by(s.alias_history.c.id)
            )
            if alias:
                q = q.where(s.alias_history.c.alias == validate_name(alias, "alias"))
            return [
                AliasChange(
                    name=name,
                    alias=h.alias,
                    version=h.version,
                    previous_version=h.previous_version,
                    actor=h.actor,
                    reason=h.reason,
                    at=aware(h.at),
                )
                for h in conn.execute(q)
            ]
