"""The embedded registry refuses what its databases cannot hold, and reads back what older versions stored.

On SQLite and PostgreSQL: NaN/Infinity and integers beyond 64 bits are refused at registration with
their path (before, SQLite stored them and every listing then failed; PostgreSQL failed with a 500);
references and alias targets beyond the 32-bit version column are InvalidInput; a row an older
Maestrale stored with a non-finite metric, param or document still lists.
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sklearn.linear_model import LinearRegression

from maestrale import Registry
from maestrale.errors import InvalidInput
from maestrale.registry.hydrate import refresh_statements
from maestrale.registry.types import LineageEntry


@pytest.fixture(params=["sqlite", "pg"])
def reg(request: pytest.FixtureRequest) -> Registry:
    return request.getfixturevalue(f"{request.param}_registry")


@pytest.fixture
def model() -> LinearRegression:
    return LinearRegression().fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0))


def _name(request: pytest.FixtureRequest) -> str:
    # PostgreSQL's database is shared by the session: one model per test and backend
    return "in-" + str(abs(hash(request.node.nodeid)))[:10]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metrics": {"mape": float("nan")}}, "metrics.mape is NaN"),
        ({"params": {"n": 10**400}}, "params.n is an integer beyond 64 bits"),
        ({"params": {"x": float("inf")}}, "params.x is infinite"),
        ({"spec": {"window": {"days": np.int64(3)}}}, "spec.window.days is a int64"),
        ({"profile": {"rows": [1, float("-inf")]}}, "profile.rows[1] is infinite"),
        ({"lineage": [{"relation": "data", "target": "t", "detail": {"x": 10**30}}]}, "lineage[0].detail.x"),
    ],
)
def test_registration_refuses_what_json_cannot_hold(
    reg: Registry, model: LinearRegression, request: pytest.FixtureRequest, fields: dict, message: str
):
    name = _name(request)
    reg.register(name, model, metrics={"nmae": 0.1})
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        reg.register(name, model, **fields)
    assert [v.version for v in reg.list_versions(name).items] == [1]
    assert reg.search_versions(f"name = '{name}'", full=True).items[0].metrics == {"nmae": 0.1}


def test_versions_stored_with_non_finite_values_still_list(
    reg: Registry, model: LinearRegression, request: pytest.FixtureRequest
):
    name = _name(request)
    mv = reg.register(name, model, metrics={"nmae": 0.1}, params={"alpha": 0.5}, spec={"a": 1})
    engine = reg._meta.engine
    with engine.begin() as conn:  # what an older Maestrale let through
        vid = conn.execute(sa.text("SELECT max(id) FROM versions")).scalar()
        conn.execute(
            sa.text("INSERT INTO version_metrics VALUES (:v, 'skill', :x)"), {"v": vid, "x": float("inf")}
        )
        conn.execute(sa.text("INSERT INTO version_params VALUES (:v, 'missing', 'NaN', NULL)"), {"v": vid})
        if engine.dialect.name == "sqlite":  # PostgreSQL's json type never accepted NaN
            conn.execute(sa.text("UPDATE versions SET spec = '{\"a\": NaN}' WHERE id = :v"), {"v": vid})
        # as the 0013 migration's backfill of the stored search documents found them
        conn.execute(refresh_statements(engine.dialect.name)["every"])
    listed = reg.list_versions(name).items[0]
    assert listed.metrics == {"nmae": 0.1, "skill": float("inf")}
    assert listed.params == {"alpha": 0.5, "missing": "NaN"}
    full = reg.get_version(mv.ref)
    assert full.spec == ({"a": 1} if engine.dialect.name == "postgresql" else None)
    assert [v.version for v in reg.search_versions(f"name = '{name}'", full=True).items] == [1]


def test_references_and_aliases_beyond_the_version_column_are_invalid(
    reg: Registry, model: LinearRegression, request: pytest.FixtureRequest
):
    name = _name(request)
    reg.register(name, model)
    for ref in (f"{name}:99999999999999999999", f"{name}:2147483648", f"{name}:²"):
        with pytest.raises(InvalidInput, match="versions are integers from 1 to 2147483647"):
            reg.get_version(ref)
    with pytest.raises(InvalidInput, match="version must be an integer from 1 to 2147483647"):
        reg.set_alias(name, "champion", 2**40)
    with pytest.raises(ValidationError, match="parent_version"):
        reg.register(name, model, parent_version=2**40)


def test_tag_values_the_database_cannot_store_are_invalid(
    reg: Registry, model: LinearRegression, request: pytest.FixtureRequest
):
    name = _name(request)
    mv = reg.register(name, model)
    with pytest.raises(InvalidInput, match="NUL character"):
        reg.set_tag(mv.ref, "site", "p\x0050")
    with pytest.raises(InvalidInput, match="at most 500"):
        reg.set_tag(name, "site", "x" * 501)
    with pytest.raises(ValidationError, match="NUL character"):
        reg.register(name, model, tags={"site": "p\x0050"})
    reg.set_tag(mv.ref, "site", "Zürich")
    assert reg.get_version(mv.ref).tags == {"site": "Zürich"}


def test_lineage_entries_are_typed_and_still_read_like_dicts(
    reg: Registry, model: LinearRegression, request: pytest.FixtureRequest
):
    name = _name(request)
    reg.register(name, model)
    data = {"relation": "training_data", "target": "s3://lake/pv.parquet", "detail": {"rows": 8760}}
    mv = reg.get_version(reg.register(name, model, lineage=[data], parent_version=1, reason="drift").ref)
    assert mv.lineage[0] == LineageEntry(**data)
    assert mv.lineage[0]["target"] == "s3://lake/pv.parquet" and mv.lineage[0].get("detail") == {"rows": 8760}
    assert mv.lineage[1].model_dump() == {
        "relation": "parent",
        "target": f"{name}:1",
        "detail": {"reason": "drift"},
    }
    with pytest.raises(ValidationError, match="relation"):
        reg.register(name, model, lineage=[{"target": "s3://lake/pv.parquet"}])
