"""The monitor's retraining requests stay bounded (maestrale.monitoring.retraining.prune): finished ones
older than the retention go, open ones and the one a model's state still names stay; on SQLite and on a
fresh PostgreSQL database each, and from the monitor service's loop."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from maestrale.config import load_settings
from maestrale.monitoring import retraining
from maestrale.monitoring.schema import monitor_retrainings
from maestrale.monitoring.service import MonitorService
from maestrale.monitoring.store import MonitorStore
from maestrale.platform.clock import utcnow
from maestrale.platform.db import ensure_schema, writer
from maestrale.platform.pruning import Pruner, Retention
from tests.conftest import fresh_pg_database
from tests.integration.conftest import wait_for

NOW = utcnow()
MONTH = Retention(processed=timedelta(days=30), batch=2)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield ensure_schema(f"sqlite:///{tmp_path}/retrainings.db")
        return
    with fresh_pg_database("maestrale_retrain_prune") as url:
        yield ensure_schema(url)


def retrained(engine: Engine, request_id: str, status: str, days_ago: float, model: str = "pv") -> None:
    """A request row whose last update (its outcome, or the request itself) was `days_ago` days ago."""
    at = NOW - timedelta(days=days_ago)
    with writer(engine).begin() as conn:
        conn.execute(
            insert(monitor_retrainings).values(
                request_id=request_id, model=model, parent_version=1, reason="monitor: test", as_of=at,
                status=status, requested_at=at - timedelta(hours=1), updated_at=at,
            )
        )  # fmt: skip


def request_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(monitor_retrainings.c.request_id)).scalars())


def test_old_finished_requests_go_open_and_recent_ones_stay(engine: Engine):
    for i, status in enumerate(["completed", "failed", "lost", "completed", "failed"]):  # > one batch
        retrained(engine, f"old-{status}-{i}", status, days_ago=31 + i)
    retrained(engine, "old-open", "requested", days_ago=90)  # its outcome may still come
    retrained(engine, "recent-completed", "completed", days_ago=29)
    retrained(engine, "old-not-adopted", "completed", days_ago=60, model="wind")
    store = MonitorStore(engine)
    with store._writer.begin() as conn:  # the wind model's state still waits to adopt this one
        store.set_state(conn, "wind", last_retrain_request="old-not-adopted", retrain_status="requested")
        store.set_state(conn, "pv", last_retrain_request=None)  # a NULL in the subquery keeps nothing

    pruned = Pruner(engine, MONTH, outbox=False, processed=False,
                    tasks={"monitor_retrainings": retraining.prune_task}).run(now=NOW)  # fmt: skip

    assert pruned.tasks == {"monitor_retrainings": 5} and (pruned.outbox, pruned.processed) == (0, 0)
    assert request_ids(engine) == {"old-open", "recent-completed", "old-not-adopted"}
    assert retraining.prune(engine, timedelta(days=30), now=NOW) == 0  # nothing left
    # once adopted, it goes at the next run
    with store._writer.begin() as conn:
        store.set_state(conn, "wind", last_retrain_request=None, retrain_status="completed")
    assert retraining.prune(engine, timedelta(days=30), now=NOW) == 1
    assert request_ids(engine) == {"old-open", "recent-completed"}


def test_the_monitor_service_loop_prunes_its_requests(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home", bus_namespace=f"t{uuid.uuid4().hex[:8]}",
                             processed_retention="30D")  # fmt: skip
    svc = MonitorService(settings, interval=0.05, relay=False)
    engine = svc.store.engine
    retrained(engine, "old", "failed", days_ago=40)
    retrained(engine, "open", "requested", days_ago=40)
    with svc:
        wait_for(lambda: request_ids(engine) == {"open"}, what="the old finished request pruned")
