"""Rows to domain objects, assembled as JSON inside the database.

One query returns each version as a JSON document (params, metrics, tags, aliases and lineage
aggregated by correlated subqueries); pydantic-core then validates the whole page in one call, and
the REST API can pass the documents through without parsing them.

A version is immutable except its tags, aliases and status, so its summary document is built once,
when it is registered, and stored in `versions.search_doc`; the writers of tags, aliases and status
rewrite it in the same transaction (`refresh_statements`). A search or a listing is then one indexed
query that hands the stored text through, with no aggregation per hit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, Row, bindparam, case, func, literal, literal_column, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from maestrale.platform.clock import aware
from maestrale.registry import schema as s
from maestrale.registry.types import ModelVersion, RegisteredModel

# Left out of list/search summaries; `get_version` (or `full=True`) returns them.
HEAVY_COLUMNS = ("input_schema", "package_versions", "spec", "profile")
VERSIONS = TypeAdapter(list[ModelVersion])
_PLAIN = (
    "version",
    "status",
    "created_by",
    "description",
    "data_fingerprint",
    "data_version",
    "code_version",
    "duration_s",
    "parent_version",
    "reason",
    "idempotency_key",
)


def hydrate_models(conn: Connection, rows: Sequence[Row[Any]]) -> list[RegisteredModel]:
    """Models with their tags and aliases (two queries for any number of rows)."""
    ids = [r.id for r in rows]
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    als: dict[int, dict[str, int]] = defaultdict(dict)
    if ids:
        for t in conn.execute(select(s.model_tags).where(s.model_tags.c.model_id.in_(ids))):
            tags[t.model_id][t.key] = t.value
        for a in conn.execute(select(s.aliases).where(s.aliases.c.model_id.in_(ids))):
            als[a.model_id][a.alias] = a.version
    return [
        RegisteredModel(
            name=r.name,
            description=r.description,
            latest_version=r.latest_version,
            archived=r.archived,
            created_at=aware(r.created_at),
            updated_at=aware(r.updated_at),
            tags=tags[r.id],
            aliases=als[r.id],
        )
        for r in rows
    ]


class _Json:
    """The JSON functions of one dialect (SQLite's JSON1 or PostgreSQL's json_*)."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def obj(self, *pairs: tuple[str, Any]) -> ColumnElement[Any]:
        args: list[Any] = []
        for key, value in pairs:
            args += [literal(key), value]
        return func.json_build_object(*args) if self.pg else func.json_object(*args)

    def group_object(self, key: Any, value: Any) -> Any:
        if self.pg:
            return func.coalesce(func.json_object_agg(key, value), literal_column("'{}'::json"))
        return func.json_group_object(key, value)

    def group_array(self, value: Any, order: Any = None) -> Any:
        if self.pg:
            agg = func.json_agg(literal_column(f"{value} ORDER BY {order}") if order is not None else value)
            return func.coalesce(agg, literal_column("'[]'::json"))
        return func.json_group_array(value)

    def number(self, col: Any) -> Any:
        # Registration refuses NaN and infinities now, but older versions may hold them. PostgreSQL
        # writes them as JSON strings ("Infinity"), which pydantic reads back as floats; SQLite would
        # write a bare `Inf` and break the whole page, so it gets the same strings.
        if self.pg:
            return col
        return case(
            (col == literal_column("9e999"), "Infinity"),
            (col == literal_column("-9e999"), "-Infinity"),
            else_=col,
        )

    def param(self, col: Any) -> Any:
        # a param's JSON text; Python's json.dumps wrote NaN/Infinity as bare tokens that no SQL JSON
        # parser accepts: send those as strings instead of failing the page
        # (no IN (...): an expanding parameter would stop the search SQL from being compiled once)
        bad = or_(col == "NaN", col == "Infinity", col == "-Infinity")
        if self.pg:
            return case((bad, func.to_json(col)), else_=col.cast(s.versions.c.spec.type))
        return case((bad, func.json_quote(col)), else_=func.json(col))

    def document(self, col: Any) -> Any:
        # a JSON column: on SQLite an old document with NaN/Infinity reads as null rather than
        # failing every listing (PostgreSQL never stored one: its json type refuses them)
        return col if self.pg else case((func.json_valid(col) == 1, func.json(col)), else_=None)

    def timestamp(self, col: Any) -> Any:
        # SQLite keeps UTC as naive text 'YYYY-MM-DD HH:MM:SS.ffffff'; make it ISO 8601 with Z
        return col if self.pg else func.replace(col, " ", "T") + "Z"


def _document(dialect: str, full: bool, name: Any) -> Any:
    """The JSON text of one version (columns of `versions`, `name` its model's name), as SQL."""
    j = _Json(dialect)
    v = s.versions.c
    p, m, t, a, li = s.version_params, s.version_metrics, s.version_tags, s.aliases, s.lineage
    pairs: list[tuple[str, Any]] = [("name", name)]
    pairs += [(c, j.number(v[c]) if c == "duration_s" else v[c]) for c in _PLAIN]
    pairs += [
        ("created_at", j.timestamp(v.created_at)),
        (
            "artifact",
            j.obj(
                ("key", v.artifact_key),
                ("sha256", v.artifact_sha256),
                ("size", v.artifact_size),
                ("format", v.artifact_format),
                ("flavor", v.flavor),
            ),
        ),
        (
            "params",
            select(j.group_object(p.c.key, j.param(p.c.value)))
            .where(p.c.version_id == v.id)
            .scalar_subquery(),
        ),
        (
            "metrics",
            select(j.group_object(m.c.key, j.number(m.c.value)))
            .where(m.c.version_id == v.id)
            .scalar_subquery(),
        ),
        ("tags", select(j.group_object(t.c.key, t.c.value)).where(t.c.version_id == v.id).scalar_subquery()),
    ]
    # ordered on PostgreSQL; SQLite < 3.44 has no ORDER BY inside aggregates (a version rarely has two)
    aliases = select(j.group_array("aliases.alias", "aliases.alias") if j.pg else j.group_array(a.c.alias))
    pairs.append(
        ("aliases", aliases.where(a.c.model_id == v.model_id, a.c.version == v.version).scalar_subquery())
    )
    if full:
        lineage_doc = j.obj(
            ("relation", li.c.relation), ("target", li.c.target), ("detail", j.document(li.c.detail))
        )
        if j.pg:
            lineage = select(func.coalesce(func.json_agg(lineage_doc), literal_column("'[]'::json")))
        else:
            lineage = select(j.group_array(lineage_doc))
        pairs += [(c, j.document(v[c])) for c in HEAVY_COLUMNS]
        pairs.append(("lineage", lineage.where(li.c.version_id == v.id).scalar_subquery()))
    doc = j.obj(*pairs)
    if j.pg:
        doc = doc.cast(s.versions.c.description.type)  # text, like SQLite's json_object
    return doc


def version_documents(dialect: str, full: bool) -> Any:
    """SELECT of one JSON text column `doc` per version (join `models`; add WHERE/ORDER as needed).

    Summaries (`full=False`) are also stored, in `versions.search_doc` (see `refresh_documents`):
    searches and listings read that column instead of this query.
    """
    doc = _document(dialect, full, s.models.c.name)
    return select(doc.label("doc")).select_from(s.versions.join(s.models))


def refresh_statements(dialect: str) -> dict[str, Any]:
    """UPDATEs that rewrite `versions.search_doc` from the rows it summarises, built once per store.

    `by_id` takes `vid`; `by_number` takes `mid` and `numbers` (a list: an alias move touches the
    version it left and the one it points at); `every` rewrites all rows (the 0013 backfill).

    >>> with engine.begin() as conn:  # doctest: +SKIP
    ...     conn.execute(refresh_statements("sqlite")["by_id"], {"vid": 7})
    """
    v = s.versions.c
    name = select(s.models.c.name).where(s.models.c.id == v.model_id).scalar_subquery()
    every = update(s.versions).values(search_doc=_document(dialect, False, name))
    return {
        "by_id": every.where(v.id == bindparam("vid")),
        "by_number": every.where(
            v.model_id == bindparam("mid"), v.version.in_(bindparam("numbers", expanding=True))
        ),
        "every": every,
    }


def parse_documents(docs: Sequence[str | bytes]) -> list[ModelVersion]:
    """Validate a page of version documents in one pydantic-core call."""
    if not docs:
        return []
    return VERSIONS.validate_json("[" + ",".join(d if isinstance(d, str) else d.decode() for d in docs) + "]")
