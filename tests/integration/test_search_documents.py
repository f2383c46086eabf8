"""Each version's search document is stored with it (`versions.search_doc`, migration 0013): every
writer of what a search returns (registration, tags, aliases, archive) rewrites it in the same
transaction, and the migration fills it for versions an older Maestrale wrote. SQLite and PostgreSQL.

The check after each step: the next search shows the change, and every stored document equals the
one built from the rows at that moment (so a writer that forgot to rewrite it is caught).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from maestrale.platform.db import HEAD_REVISION, get_engine, upgrade
from maestrale.registry import schema as s
from maestrale.registry.hydrate import version_documents
from maestrale.registry.store import SqlStore
from maestrale.registry.types import VersionCreate


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("fresh_pg"))
    return f"sqlite:///{tmp_path}/registry.db"


def _new(**meta: Any) -> VersionCreate:
    artifact = {"key": "k", "sha256": "0" * 64, "size": 1, "format": "skops", "flavor": "sklearn.Ridge"}
    return VersionCreate(artifact=artifact, **meta)


def _stored_and_built(store: SqlStore) -> tuple[dict[int, Any], dict[int, Any]]:
    """Every version's stored document and the one built from its rows now, by versions.id."""
    built_q = version_documents(store.dialect, False).add_columns(s.versions.c.id)
    with store.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(s.versions.c.id, s.versions.c.search_doc)).all())
        built = {vid: doc for doc, vid in conn.execute(built_q)}
    return (
        {k: json.loads(v) if v is not None else None for k, v in stored.items()},
        {k: json.loads(v) for k, v in built.items()},
    )


def _found(store: SqlStore, flt: str, **kw: Any) -> list[tuple[int, str, list[str], dict[str, str]]]:
    stored, built = _stored_and_built(store)
    assert stored == built  # no writer left a stale document behind
    # sorted: SQLite before 3.44 aggregates aliases in no particular order
    return [(v.version, v.status, sorted(v.aliases), v.tags) for v in store.search_versions(flt, **kw).items]


def test_tags_aliases_and_status_show_in_the_next_search(url: str) -> None:
    store, name = SqlStore(url), f"docs-{uuid.uuid4().hex[:8]}"
    for site in ("a", "a"):
        store.create_version(name, _new(tags={"site": site}, metrics={"nmae": 0.1}))
    mine = f"name = '{name}'"
    assert _found(store, mine) == [(2, "ready", [], {"site": "a"}), (1, "ready", [], {"site": "a"})]

    store.set_version_tag(f"{name}:1", "site", "b")
    assert _found(store, f"{mine} and tags.site = 'b'") == [(1, "ready", [], {"site": "b"})]
    store.set_version_tag(f"{name}:1", "site", None)
    assert _found(store, f"{mine} and version = 1") == [(1, "ready", [], {})]

    store.set_alias(name, "champion", 1)
    assert _found(store, mine) == [(2, "ready", [], {"site": "a"}), (1, "ready", ["champion"], {})]
    store.set_alias(name, "champion", 2)  # moved: the version it left loses it
    store.set_alias(name, "challenger", 2)
    assert _found(store, mine) == [
        (2, "ready", ["challenger", "champion"], {"site": "a"}),
        (1, "ready", [], {}),
    ]
    store.delete_alias(name, "challenger")
    assert _found(store, mine) == [(2, "ready", ["champion"], {"site": "a"}), (1, "ready", [], {})]

    store.archive_version(f"{name}:1")
    assert _found(store, mine) == [(2, "ready", ["champion"], {"site": "a"})]
    assert _found(store, mine, include_archived=True)[1] == (1, "archived", [], {})
    store.unarchive_version(f"{name}:1")
    assert _found(store, mine)[1] == (1, "ready", [], {})
    # a listing reads the same stored documents
    listed = store.list_versions(name).items
    assert [(v.version, v.aliases, v.tags) for v in listed] == [(2, ["champion"], {"site": "a"}), (1, [], {})]


def _old_version(conn: sa.Connection, name: str) -> None:
    """A model with one version, its details and an alias, as a Maestrale at schema 0012 wrote them."""
    now = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    mid = conn.execute(
        sa.insert(s.models).values(name=name, description="", latest_version=1, archived=False,
                                   created_at=now, updated_at=now).returning(s.models.c.id)
    ).scalar_one()  # fmt: skip
    vid = conn.execute(
        sa.insert(s.versions).values(
            model_id=mid, version=1, status="ready", created_at=now, description="old",
            artifact_key="k", artifact_sha256="0" * 64, artifact_size=1, artifact_format="skops",
            flavor="sklearn.Ridge", input_schema=[{"name": "x", "dtype": "float64"}], package_versions={},
        ).returning(s.versions.c.id)
    ).scalar_one()  # fmt: skip
    conn.execute(sa.insert(s.version_params).values(version_id=vid, key="alpha", value="0.5", value_num=0.5))
    conn.execute(sa.insert(s.version_metrics).values(version_id=vid, key="nmae", value=0.07))
    conn.execute(sa.insert(s.version_tags).values(version_id=vid, key="site", value="p50"))
    conn.execute(sa.insert(s.aliases).values(model_id=mid, alias="champion", version=1, updated_at=now))


def test_the_migration_fills_the_documents_of_existing_versions(url: str) -> None:
    assert upgrade(url, "0012") == "0012"
    with get_engine(url).begin() as conn:
        _old_version(conn, "old-model")
    assert upgrade(url) == HEAD_REVISION
    store = SqlStore(url)
    assert _found(store, "tags.site = 'p50'") == [(1, "ready", ["champion"], {"site": "p50"})]
    v = store.search_versions("name = 'old-model'").items[0]
    assert (v.description, v.params, v.metrics, v.input_schema) == (
        "old",
        {"alpha": 0.5},
        {"nmae": 0.07},
        None,
    )
    assert v.created_at == datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert store.get_version("old-model:1").input_schema is not None  # the full record is still built
