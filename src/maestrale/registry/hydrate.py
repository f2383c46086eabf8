"""Rows to domain objects. Rows come from our own schema, so objects are built without re-validation
(`model_construct`): search over 100 versions spends its time in SQL, not in pydantic.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from maestrale.registry import schema as s
from maestrale.registry.outbox import aware
from maestrale.registry.types import ArtifactInfo, ColumnSchema, ModelVersion, RegisteredModel

# Left out of list/search summaries; `get_version` (or `full=True`) returns them.
HEAVY_COLUMNS = ("input_schema", "package_versions", "spec", "profile")


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


def hydrate_versions(conn: Connection, rows: Sequence[Row[Any]], full: bool) -> list[ModelVersion]:
    """Versions with params, metrics, tags and aliases (and lineage when `full`), batched by id."""
    if not rows:
        return []
    ids = [r.id for r in rows]
    params: dict[int, dict[str, Any]] = defaultdict(dict)
    metrics: dict[int, dict[str, float]] = defaultdict(dict)
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    lineage: dict[int, list[dict[str, Any]]] = defaultdict(list)
    als: dict[tuple[int, int], list[str]] = defaultdict(list)
    for table, into, decode in (
        (s.version_params, params, json.loads),
        (s.version_metrics, metrics, None),
        (s.version_tags, tags, None),
    ):
        q = select(table.c.version_id, table.c.key, table.c.value).where(table.c.version_id.in_(ids))
        for vid, key, value in conn.execute(q):
            into[vid][key] = decode(value) if decode else value
    if full:
        q = select(s.lineage).where(s.lineage.c.version_id.in_(ids)).order_by(s.lineage.c.id)
        for li in conn.execute(q):
            lineage[li.version_id].append({"relation": li.relation, "target": li.target, "detail": li.detail})
    mids = {r.model_id for r in rows}
    a = s.aliases
    q = select(a.c.model_id, a.c.version, a.c.alias).where(a.c.model_id.in_(mids)).order_by(a.c.alias)
    for mid, version, alias in conn.execute(q):
        als[(mid, version)].append(alias)
    out = []
    for r in rows:
        schema = getattr(r, "input_schema", None) if full else None
        out.append(
            ModelVersion.model_construct(
                name=r.name,
                version=r.version,
                status=r.status,
                created_at=aware(r.created_at),
                created_by=r.created_by,
                description=r.description,
                artifact=ArtifactInfo.model_construct(
                    key=r.artifact_key,
                    sha256=r.artifact_sha256,
                    size=r.artifact_size,
                    format=r.artifact_format,
                    flavor=r.flavor,
                ),
                params=params[r.id],
                metrics=metrics[r.id],
                tags=tags[r.id],
                aliases=als[(r.model_id, r.version)],
                input_schema=[ColumnSchema.model_construct(**c) for c in schema] if schema else None,
                data_fingerprint=r.data_fingerprint,
                data_version=r.data_version,
                code_version=r.code_version,
                package_versions=(r.package_versions or {}) if full else {},
                duration_s=r.duration_s,
                parent_version=r.parent_version,
                reason=r.reason,
                spec=r.spec if full else None,
                profile=r.profile if full else None,
                lineage=lineage[r.id],
            )
        )
    return out
