"""The registry's metadata in SQL: versions allocated without gaps, aliases with an audit trail,
and an outbox of events written in the same transaction as the change they announce.

>>> store = SqlStore("sqlite:////tmp/doc-registry.db")
>>> store.get_model("pv-forecast")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from maestrale.errors import BackendUnavailable, ConfigError, InvalidInput, NoHoldout, NotFound
from maestrale.limits import text_problem
from maestrale.platform.clock import utcnow
from maestrale.platform.db import ensure_schema, writer
from maestrale.platform.outbox import add_event, mark_sent, pending_events
from maestrale.refs import ModelRef, validate_key, validate_name
from maestrale.registry import schema as s
from maestrale.registry.aliases import AliasOps
from maestrale.registry.archiving import ArchiveOps
from maestrale.registry.hydrate import (
    hydrate_models,
    parse_documents,
    refresh_statements,
    version_documents,
)
from maestrale.registry.rows import INSERT_VERSION, insert_details, version_row
from maestrale.registry.search import check_like_pattern, decode_token, encode_token
from maestrale.registry.searching import SearchOps, check_limit
from maestrale.registry.types import (
    MAX_TAG_VALUE,
    ArtifactInfo,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionCreate,
)

# Built once: SQLAlchemy then reuses their compiled form, which matters on the register hot path.
_ALLOCATE = (
    update(s.models)
    .where(s.models.c.name == bindparam("m_name"))
    .values(latest_version=s.models.c.latest_version + 1, updated_at=bindparam("m_now"), archived=False)
    .returning(s.models.c.id, s.models.c.latest_version)
)


def _tag_value(value: str) -> str:
    # the embedded API's check; over REST the body models already bound tag values the same way
    text = str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidInput(f"tag value of {len(text)} characters: tag values hold at most {MAX_TAG_VALUE}")
    if problem := text_problem(text, "tag value"):
        raise InvalidInput(problem)
    return text


class SqlStore(AliasOps, ArchiveOps, SearchOps):
    """Registry metadata on SQLite or PostgreSQL (any SQLAlchemy 2 URL that has RETURNING).

    A `maestrale.registry.stores.RegistryStore`; the caller stores the artifact's bytes first.
    """

    remote = False  # the database is ours: `gc` may compare it with the storage

    def __init__(self, database_url: str, auto_upgrade: bool = True) -> None:
        try:
            self.engine = ensure_schema(database_url, auto_upgrade)
        except DBAPIError as exc:
            raise BackendUnavailable(f"cannot reach the database {database_url!r}: {exc.orig}") from None
        self.write_engine = writer(self.engine)
        self.dialect = self.engine.dialect.name
        self._upsert_stmt = self._build_upsert()
        self._doc_queries = {full: version_documents(self.dialect, full) for full in (False, True)}
        self._refresh = refresh_statements(self.dialect)
        self._search_cache: dict[tuple[Any, ...], tuple[str, list[str] | None, dict[str, Any]]] = {}

    # -- models -----------------------------------------------------------------------------
    def _model_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(s.models).where(s.models.c.name == validate_name(name))).first()
        if row is None:
            raise NotFound(f"model {name!r} not found; list models with `maestrale models list`")
        return row

    def _build_upsert(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        else:
            raise ConfigError(f"database dialect {self.dialect!r} is not supported; use SQLite or PostgreSQL")
        return (
            dialect_insert(s.models)
            .values(
                name=bindparam("m_name"),
                description="",
                latest_version=0,
                archived=False,
                created_at=bindparam("m_now"),
                updated_at=bindparam("m_now"),
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )

    def get_model(self, name: str) -> RegisteredModel:
        """A model with its tags and current aliases."""
        with self.engine.connect() as conn:
            row = self._model_row(conn, name)
            return hydrate_models(conn, [row])[0]

    def list_models(
        self,
        limit: int = 100,
        page_token: str | None = None,
        name_like: str | None = None,
        include_archived: bool = False,
    ) -> Page[RegisteredModel]:
        """Models by name, a page at a time."""
        check_limit(limit)
        offset = decode_token(page_token)
        q = select(s.models).order_by(s.models.c.name).limit(limit + 1).offset(offset)
        if name_like:
            q = q.where(s.models.c.name.like(check_like_pattern(name_like, "name_like"), escape="\\"))
        if not include_archived:
            q = q.where(s.models.c.archived.is_(False))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            items = hydrate_models(conn, rows[:limit])
        return Page(items=items, next_page_token=encode_token(offset + limit) if len(rows) > limit else None)

    def set_model_tag(self, name: str, key: str, value: str | None) -> None:
        """Set (or, with None, remove) a tag on the model itself."""
        validate_key(key)
        with self.write_engine.begin() as conn:
            mid = self._model_row(conn, name).id
            conn.execute(
                delete(s.model_tags).where(s.model_tags.c.model_id == mid, s.model_tags.c.key == key)
            )
            if value is not None:
                conn.execute(insert(s.model_tags).values(model_id=mid, key=key, value=_tag_value(value)))

    # -- versions ---------------------------------------------------------------------------
    def create_version(
        self, name: str, new: VersionCreate, trusted_types: list[str] | None = None
    ) -> ModelVersion:
        """Record a version whose artifact is already stored; allocates the next number atomically.

        `trusted_types` is for a store that vets the archive itself (a server): here the caller's
        process serialized and vetted the bytes, so it changes nothing.
        """
        validate_name(name)
        for key in (*new.params, *new.metrics, *new.tags):
            validate_key(key, "key")
        now = utcnow()
        a = new.artifact
        with self.write_engine.begin() as conn:
            conn.execute(self._upsert_stmt, {"m_name": name, "m_now": now})
            if new.idempotency_key is not None:
                existing = self._version_for_key(conn, name, new.idempotency_key)
                if existing is not None:
                    conn.rollback()
                    return self.get_version(f"{name}:{existing}")
            # the row lock (PostgreSQL) or the write lock (SQLite) serialises allocation: no gaps, no twins
            mid, number = conn.execute(_ALLOCATE, {"m_name": name, "m_now": now}).one()
            if new.parent_version is not None and not (0 < new.parent_version < number):
                raise InvalidInput(
                    f"parent_version {new.parent_version} of {name!r} does not exist (latest is {number - 1})"
                )
            vid = conn.execute(INSERT_VERSION, version_row(mid, number, now, new)).scalar_one()
            insert_details(conn, vid, name, new)
            conn.execute(self._refresh["by_id"], {"vid": vid})
            add_event(
                conn,
                "maestrale.model.registered",
                name,
                {
                    "name": name,
                    "version": number,
                    "sha256": a.sha256,
                    "format": a.format,
                    "flavor": a.flavor,
                    "metrics": new.metrics,
                    "tags": new.tags,
                    "parent_version": new.parent_version,
                    "reason": new.reason,
                    "created_by": new.created_by,
                },
                source=s.EVENT_SOURCE,
            )
        return ModelVersion(
            name=name,
            version=number,
            status="ready",
            created_at=now,
            aliases=[],
            **new.model_dump(exclude={"artifact", "input_schema", "holdout"}),
            artifact=a,
            input_schema=new.input_schema,
        )

    def _version_for_key(self, conn: Connection, name: str, key: str) -> int | None:
        # the row lock makes a concurrent twin wait here until the first one committed (PostgreSQL);
        # SQLite's BEGIN IMMEDIATE already serialises writers
        mid = conn.execute(
            select(s.models.c.id).where(s.models.c.name == name).with_for_update()
        ).scalar_one()
        return conn.execute(
            select(s.versions.c.version).where(
                s.versions.c.model_id == mid, s.versions.c.idempotency_key == key
            )
        ).scalar()

    def version_for_key(self, name: str, key: str) -> int | None:
        """The version registered with an idempotency key, if any (no lock: a read-only check)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(s.versions.c.version)
                .select_from(s.versions.join(s.models))
                .where(s.models.c.name == name, s.versions.c.idempotency_key == key)
            ).scalar()

    def resolve(self, ref: str | ModelRef, conn: Connection | None = None) -> tuple[int, int]:
        """(model_id, version number) for a reference; NotFound names what is missing."""
        r = ModelRef.parse(ref)
        if conn is None:
            with self.engine.connect() as c:
                return self.resolve(r, c)
        if r.version is not None:
            row = conn.execute(
                select(s.models.c.id)
                .select_from(s.versions.join(s.models))
                .where(s.models.c.name == r.name, s.versions.c.version == r.version)
            ).first()
            if row is None:
                self._model_row(conn, r.name)
                raise NotFound(f"version {r.version} of model {r.name!r} not found")
            return row.id, r.version
        row = conn.execute(
            select(s.aliases.c.model_id, s.aliases.c.version)
            .select_from(s.aliases.join(s.models))
            .where(s.models.c.name == r.name, s.aliases.c.alias == r.alias)
        ).first()
        if row is None:
            self._model_row(conn, r.name)
            raise NotFound(
                f"model {r.name!r} has no alias {r.alias!r}; set one with "
                f"`maestrale models alias {r.name} {r.alias} VERSION`"
            )
        return row.model_id, row.version

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """Full metadata of the version a reference points at."""
        with self.engine.connect() as conn:
            mid, number = self.resolve(ref, conn)
            docs = (
                conn.execute(
                    self._version_query().where(s.versions.c.model_id == mid, s.versions.c.version == number)
                )
                .scalars()
                .all()
            )
            return parse_documents(docs)[0]

    def holdout(self, ref: str | ModelRef) -> dict[str, Any] | None:
        """The version's holdout series (`maestrale.registry.holdout`), checked; None if it has none.

        A stored document that fails the checks raises `NoHoldout` naming the field (a 404: the
        series cannot be drawn, and retraining replaces it).
        """
        from maestrale.registry.holdout import check_holdout

        with self.engine.connect() as conn:
            mid, number = self.resolve(ref, conn)
            doc = conn.execute(
                select(s.versions.c.holdout).where(
                    s.versions.c.model_id == mid, s.versions.c.version == number
                )
            ).scalar()
        if doc is None:
            return None
        try:
            return check_holdout(doc)
        except ValueError as exc:
            name = ModelRef.parse(ref).name
            raise NoHoldout(
                f"the stored holdout series of {name}:{number} is malformed ({exc}); retrain to replace it"
            ) from None

    def _version_query(self, full: bool = True) -> Any:
        return self._doc_queries[full]

    def _refresh_documents(self, conn: Connection, mid: int, numbers: Iterable[int | None]) -> None:
        """Rewrite the stored search documents of these versions of model `mid` (None: skipped)."""
        wanted = sorted({n for n in numbers if n is not None})
        if wanted:
            conn.execute(self._refresh["by_number"], {"mid": mid, "numbers": wanted})

    def list_versions(
        self,
        name: str,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = True,
        full: bool = False,
    ) -> Page[ModelVersion]:
        """A model's versions, newest first (summaries unless `full`; see `HEAVY_COLUMNS`)."""
        check_limit(limit)
        offset = decode_token(page_token)
        with self.engine.connect() as conn:
            mid = self._model_row(conn, name).id
            # summaries are stored (`versions.search_doc`); the full documents are built here
            q = (
                self._version_query(True)
                if full
                else select(s.versions.c.search_doc).select_from(s.versions.join(s.models))
            )
            q = q.where(s.versions.c.model_id == mid)
            if not include_archived:
                q = q.where(s.versions.c.status == "ready")
            rows = (
                conn.execute(q.order_by(s.versions.c.version.desc()).limit(limit + 1).offset(offset))
                .scalars()
                .all()
            )
        items = parse_documents(rows[:limit])
        return Page(items=items, next_page_token=encode_token(offset + limit) if len(rows) > limit else None)

    def set_version_tag(self, ref: str, key: str, value: str | None) -> None:
        """Set (or, with None, remove) a tag on a version; tags are the one mutable part of a version."""
        validate_key(key)
        with self.write_engine.begin() as conn:
            mid, number = self.resolve(ref, conn)
            vid = conn.execute(
                select(s.versions.c.id).where(s.versions.c.model_id == mid, s.versions.c.version == number)
            ).scalar_one()
            conn.execute(
                delete(s.version_tags).where(s.version_tags.c.version_id == vid, s.version_tags.c.key == key)
            )
            if value is not None:
                conn.execute(insert(s.version_tags).values(version_id=vid, key=key, value=_tag_value(value)))
            conn.execute(self._refresh["by_id"], {"vid": vid})

    # -- housekeeping -----------------------------------------------------------------------
    def referenced_keys(self) -> set[str]:
        """Artifact keys some version (archived included) still points at."""
        with self.engine.connect() as conn:
            return set(conn.execute(select(s.versions.c.artifact_key).distinct()).scalars())

    def pending_events(self, limit: int = 500) -> list[dict[str, Any]]:
        """Unsent outbox events, oldest first, as CloudEvents dicts (the bus relay publishes them)."""
        return pending_events(self.engine, limit)

    def mark_sent(self, event_ids: Iterable[str]) -> None:
        """Mark outbox events as published (called only after the broker confirmed them)."""
        mark_sent(self.write_engine, event_ids)

    def serving_tags(self, names: list[str]) -> dict[str, dict[str, str]]:
        """The tags of each named model's champion version (else its latest), in one query: the
        fleet overview shows them, since a spec's `tags:` land on the versions it trains.

        >>> store.serving_tags(["pv-foggia"])  # doctest: +SKIP
        {'pv-foggia': {'site': 'foggia', 'request_id': '...'}}
        """
        if not names:
            return {}
        m, v, t, a = s.models, s.versions, s.version_tags, s.aliases
        champion = (
            select(a.c.version).where(a.c.model_id == m.c.id, a.c.alias == "champion").scalar_subquery()
        )
        serving = and_(v.c.model_id == m.c.id, v.c.version == func.coalesce(champion, m.c.latest_version))
        q = (
            select(m.c.name, t.c.key, t.c.value)
            .select_from(m.join(v, serving).join(t, t.c.version_id == v.c.id))
            .where(m.c.name.in_(names))
        )
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            for name, key, value in conn.execute(q):
                out.setdefault(name, {})[key] = value
        return out

    def count_versions(self) -> int:
        """Total versions in the store (for /metrics)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(s.versions)).scalar_one())

    def artifact_of(self, ref: str | ModelRef) -> tuple[str, int, ArtifactInfo]:
        """(name, version, artifact) in one query: the hot path of `Registry.load`."""
        r = ModelRef.parse(ref)
        with self.engine.connect() as conn:
            mid, number = self.resolve(r, conn)
            v = conn.execute(
                select(s.versions).where(s.versions.c.model_id == mid, s.versions.c.version == number)
            ).one()
        info = ArtifactInfo(
            key=v.artifact_key,
            sha256=v.artifact_sha256,
            size=v.artifact_size,
            format=v.artifact_format,
            flavor=v.flavor,
        )
        return r.name, number, info
