"""The Alembic migrations build exactly the schema the code queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from maestrale import tokens as _tokens  # noqa: F401 - each component registers its tables
from maestrale.monitoring import schema as _monitoring  # noqa: F401
from maestrale.platform.db import HEAD_REVISION, current_revision, get_engine, upgrade
from maestrale.platform.tables import metadata
from maestrale.registry import schema as _registry  # noqa: F401
from maestrale.training import tables as _training  # noqa: F401


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_the_schema(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path}/m.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    assert upgrade(url) == HEAD_REVISION
    assert upgrade(url) == HEAD_REVISION  # idempotent
    engine = get_engine(url)
    assert current_revision(engine) == HEAD_REVISION
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
