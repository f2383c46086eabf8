"""Concurrency, crashes, garbage collection and the event outbox, on the real databases."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sqlalchemy import event, select

from maestrale import Registry
from maestrale.platform.tables import outbox


def _register_many(db_url: str, storage_url: str, name: str, count: int, start: mp.Event) -> list[int]:
    reg = Registry(database_url=db_url, storage_url=storage_url)
    rng = np.random.default_rng()
    X = rng.normal(size=(30, 20))
    model = Ridge().fit(X, X @ rng.normal(size=20))
    start.wait()
    return [reg.register(name, model, metrics={"r": float(i)}).version for i in range(count)]


def _concurrent(db_url: str, storage_url: str, name: str, procs: int, each: int) -> list[int]:
    Registry(database_url=db_url, storage_url=storage_url)  # migrate once before the race
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(procs) as pool:
            results = [
                pool.apply_async(_register_many, (db_url, storage_url, name, each, start))
                for _ in range(procs)
            ]
            start.set()
            return [v for r in results for v in r.get(timeout=300)]


@pytest.mark.slow
def test_concurrent_registration_postgres_has_no_gaps_or_duplicates(pg_url, tmp_path):
    got = _concurrent(pg_url, f"file://{tmp_path}/a", "concurrent-pg", procs=8, each=25)
    assert sorted(got) == list(range(1, 201))
    reg = Registry(database_url=pg_url, storage_url=f"file://{tmp_path}/a")
    assert reg.get_model("concurrent-pg").latest_version == 200
    assert reg.list_versions("concurrent-pg", limit=1000).items[-1].version == 1


@pytest.mark.slow
def test_concurrent_registration_sqlite_has_no_gaps_or_duplicates(tmp_path):
    got = _concurrent(
        f"sqlite:///{tmp_path}/r.db", f"file://{tmp_path}/a", "concurrent-lite", procs=4, each=25
    )
    assert sorted(got) == list(range(1, 101))


def test_crash_after_upload_leaves_no_version_and_gc_removes_the_orphan(
    sqlite_registry, regression_data, monkeypatch
):
    X, y = regression_data
    reg = sqlite_registry
    reg.register("crashy", Ridge().fit(X, y))

    def crash(*_a, **_k):
        raise SystemExit("killed between upload and commit")

    monkeypatch.setattr(reg._meta, "create_version", crash)
    with pytest.raises(SystemExit):
        reg.register("crashy", Ridge(alpha=3).fit(X, y))
    monkeypatch.undo()
    assert [v.version for v in reg.list_versions("crashy").items] == [1]
    assert reg.gc() == []  # the orphan is younger than the grace period: maybe an upload in flight
    orphans = reg.gc(grace=timedelta(0), dry_run=True)
    assert len(orphans) == 1
    assert reg.gc(grace=timedelta(0)) == orphans
    assert reg.gc(grace=timedelta(0)) == []
    assert reg.verify("crashy:1").ok  # the referenced object survives
    assert reg.register("crashy", Ridge(alpha=3).fit(X, y)).version == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_failed_transaction_leaves_no_trace_and_no_gap(backend, request, regression_data, tmp_path):
    X, y = regression_data
    reg: Registry = request.getfixturevalue(f"{backend}_registry" if backend == "sqlite" else "pg_registry")
    name = f"atomic-{backend}-{tmp_path.name[-8:]}"
    reg.register(name, Ridge().fit(X, y))
    engine = reg._meta.engine

    def boom(conn, clauseelement, *_args):
        if getattr(clauseelement, "table", None) is outbox:
            raise RuntimeError("database died mid-transaction")

    event.listen(engine, "before_execute", boom)
    try:
        with pytest.raises(RuntimeError, match="died"):
            reg.register(name, Ridge().fit(X, y), metrics={"x": 1.0}, tags={"a": "b"})
    finally:
        event.remove(engine, "before_execute", boom)
    assert reg.get_model(name).latest_version == 1
    assert reg.register(name, Ridge().fit(X, y)).version == 2


def test_outbox_records_events_in_the_same_transaction(sqlite_registry, regression_data):
    X, y = regression_data
    reg = sqlite_registry
    mv = reg.register("evented", Ridge().fit(X, y), metrics={"nmae": 0.05})
    reg.set_alias("evented", "challenger", mv.version)
    reg.set_alias("evented", "champion", mv.version, reason="initial")
    events = reg._meta.pending_events()
    types = [e["type"] for e in events]
    assert types == [
        "maestrale.model.registered",
        "maestrale.model.alias_set",
        "maestrale.model.alias_set",
        "maestrale.model.promoted",
    ]
    first = events[0]
    assert first["specversion"] == "1.0" and first["subject"] == "evented" and len(first["id"]) == 36
    assert first["data"]["version"] == 1 and first["data"]["sha256"] == mv.artifact.sha256
    assert events[-1]["data"] == {
        "name": "evented",
        "alias": "champion",
        "version": 1,
        "previous_version": None,
        "actor": reg.actor,
        "reason": "initial",
    }
    reg._meta.mark_sent([e["id"] for e in events[:2]])
    assert [e["type"] for e in reg._meta.pending_events()] == types[2:]
    with reg._meta.engine.connect() as conn:
        assert conn.execute(select(outbox.c.sent_at).where(outbox.c.sent_at.is_not(None))).all()


def test_same_bytes_are_stored_once(sqlite_registry, tmp_path: Path):
    # pickle of a dict is byte-stable (skops zips are not: they embed object ids and timestamps)
    model = {"coef": [1.0, 2.0]}
    a = sqlite_registry.register("dedupe", model, format="pickle")
    b = sqlite_registry.register("dedupe", model, format="pickle")
    assert a.artifact.sha256 == b.artifact.sha256 and a.version != b.version
    assert len(list((tmp_path / "artifacts").rglob("*"))) == 4  # objects/sha256/xx/<digest>


def _register_with_key(db_url: str, storage_url: str, key: str, start: mp.Event) -> int:
    reg = Registry(database_url=db_url, storage_url=storage_url)
    X = np.random.default_rng(1).normal(size=(30, 4))
    model = Ridge().fit(X, X[:, 0])
    start.wait()
    return reg.register("idempotent-race", model, idempotency_key=key).version


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_idempotency_key_never_makes_a_second_version(backend, request, tmp_path, regression_data):
    X, y = regression_data
    db_url = f"sqlite:///{tmp_path}/r.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    storage = f"file://{tmp_path}/a"
    reg = Registry(database_url=db_url, storage_url=storage)
    name = f"idem-{backend}-{tmp_path.name[-6:]}"
    first = reg.register(name, Ridge().fit(X, y), idempotency_key="req-1", metrics={"nmae": 0.1})
    again = reg.register(name, Ridge(alpha=5).fit(X, y), idempotency_key="req-1", metrics={"nmae": 0.2})
    assert again.version == first.version == 1 and again.metrics == {"nmae": 0.1}
    assert reg.register(name, Ridge().fit(X, y), idempotency_key="req-2").version == 2
    assert reg.get_model(name).latest_version == 2
    # racing retries of one request from four processes: exactly one version
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Event()
        with ctx.Pool(4) as pool:
            results = [
                pool.apply_async(_register_with_key, (db_url, storage, f"race-{backend}", start))
                for _ in range(4)
            ]
            start.set()
            versions = {r.get(timeout=120) for r in results}
    assert len(versions) == 1
