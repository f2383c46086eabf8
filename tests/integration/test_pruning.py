"""Growth kept bounded (maestrale.platform.pruning): old sent outbox rows and old processed-event ids go,
recent and unsent ones stay; on SQLite and on a fresh PostgreSQL database each."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from maestrale.bus.consumer import Consumer
from maestrale.bus.relay import OutboxRelay
from maestrale.bus.transport import get_transport
from maestrale.config import Settings
from maestrale.platform.clock import utcnow
from maestrale.platform.db import ensure_schema, writer
from maestrale.platform.ledger import mark_processed
from maestrale.platform.outbox import add_event
from maestrale.platform.pruning import Pruner, Retention
from maestrale.platform.tables import outbox, processed_events
from tests.conftest import fresh_pg_database
from tests.integration.conftest import wait_for

NOW = utcnow()
WEEK = Retention(outbox=timedelta(days=7), processed=timedelta(days=30), batch=2)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield ensure_schema(f"sqlite:///{tmp_path}/prune.db")
        return
    with fresh_pg_database("maestrale_prune") as url:
        yield ensure_schema(url)


def event(engine: Engine, name: str, sent_days_ago: float | None) -> None:
    """An outbox row named `name`; sent that many days ago, or never (None)."""
    with writer(engine).begin() as conn:
        event_id = add_event(conn, "maestrale.model.archived", name, {"name": name}, source="test")
        sent = None if sent_days_ago is None else NOW - timedelta(days=sent_days_ago)
        conn.execute(update(outbox).where(outbox.c.event_id == event_id).values(sent_at=sent))


def processed(engine: Engine, event_id: str, days_ago: float, consumer: str = "audit") -> None:
    with writer(engine).begin() as conn:
        assert mark_processed(conn, consumer, event_id)
        conn.execute(
            update(processed_events)
            .where(processed_events.c.event_id == event_id)
            .values(processed_at=NOW - timedelta(days=days_ago))
        )


def subjects(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(outbox.c.subject)).scalars())


def ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(processed_events.c.event_id)).scalars())


def test_old_sent_events_and_old_ids_go_recent_and_unsent_ones_stay(engine: Engine):
    for i in range(5):  # more than one batch (batch=2): every old one goes
        event(engine, f"old-sent-{i}", sent_days_ago=8 + i)
    event(engine, "recent-sent", sent_days_ago=6)
    event(engine, "never-sent", sent_days_ago=None)  # owed to the bus: kept, however old
    with writer(engine).begin() as conn:  # an unsent row written long ago
        conn.execute(
            update(outbox).where(outbox.c.subject == "never-sent").values(time=NOW - timedelta(days=90))
        )
    for i in range(3):
        processed(engine, f"old-{i}", days_ago=31 + i)
    processed(engine, "recent", days_ago=29)
    processed(engine, "recent-other", days_ago=1, consumer="monitor")

    pruned = Pruner(engine, WEEK).run(now=NOW)

    assert (pruned.outbox, pruned.processed) == (5, 3)
    assert subjects(engine) == {"recent-sent", "never-sent"}
    assert ids(engine) == {"recent", "recent-other"}
    assert Pruner(engine, WEEK).run(now=NOW).outbox == 0  # nothing left to prune


def test_a_run_deletes_at_most_max_batches_and_the_next_continues(engine: Engine):
    for i in range(5):
        event(engine, f"old-{i}", sent_days_ago=10)
    bounded = Retention(outbox=timedelta(days=7), batch=2, max_batches=1)
    assert Pruner(engine, bounded).run(now=NOW).outbox == 2  # one transaction of 2 rows
    assert len(subjects(engine)) == 3
    assert Pruner(engine, bounded).run(now=NOW).outbox == 2
    assert Pruner(engine, bounded).run(now=NOW).outbox == 1 and subjects(engine) == set()


def test_maybe_run_prunes_at_most_once_per_period(engine: Engine):
    event(engine, "old", sent_days_ago=10)
    clock = [1000.0]
    pruner = Pruner(engine, Retention(every=timedelta(minutes=10)), clock=lambda: clock[0])
    assert pruner.maybe_run() is not None and subjects(engine) == set()  # the first call prunes
    event(engine, "old-again", sent_days_ago=10)
    clock[0] += 599
    assert pruner.maybe_run() is None and subjects(engine) == {"old-again"}  # within the period: nothing
    clock[0] += 1
    assert pruner.maybe_run() is not None and subjects(engine) == set()


def test_the_retention_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MAESTRALE_OUTBOX_RETENTION", "2d")
    monkeypatch.setenv("MAESTRALE_PROCESSED_RETENTION", "45D")
    r = Retention.from_env()
    assert (r.outbox, r.processed, r.every) == (timedelta(days=2), timedelta(days=45), timedelta(minutes=10))
    monkeypatch.delenv("MAESTRALE_OUTBOX_RETENTION")
    monkeypatch.delenv("MAESTRALE_PROCESSED_RETENTION")
    assert Settings().outbox_retention == timedelta(days=7)  # the documented defaults
    assert Settings().processed_retention == timedelta(days=30)


def test_the_relay_loop_prunes_its_database(engine: Engine):
    """A long-running relay keeps the outbox bounded: old sent rows go while new events go out."""
    event(engine, "old-sent", sent_days_ago=10)
    processed(engine, "old-id", days_ago=40)
    event(engine, "to-publish", sent_days_ago=None)
    transport = get_transport("memory://", namespace=f"prune-{uuid.uuid4().hex[:8]}")
    relay = OutboxRelay(engine, transport, retention=WEEK)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, 0.05), daemon=True)
    thread.start()
    try:
        wait_for(lambda: subjects(engine) == {"to-publish"} and not ids(engine), what="the relay's pruning")
        wait_for(lambda: relay.published == 1, what="the pending event published")
    finally:
        stop.set()
        thread.join(10)
        transport.close()
    with engine.connect() as conn:  # the event just published stays (sent now, kept 7 days)
        assert (
            conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_not(None))
            ).scalar()
            == 1
        )


def test_a_transactional_consumer_prunes_its_ledger(engine: Engine):
    processed(engine, "old-id", days_ago=40)
    transport = get_transport("memory://", namespace=f"prune-{uuid.uuid4().hex[:8]}")
    seen: list[str] = []
    consumer = Consumer.transactional(
        transport, "audit", lambda ev, conn: seen.append(ev.id), ["maestrale.model.*"], engine, retention=WEEK
    ).start()
    try:
        event(engine, "to-publish", sent_days_ago=None)
        OutboxRelay(engine, transport).run_once()
        wait_for(lambda: len(seen) == 1, what="the event handled")
        wait_for(lambda: ids(engine) == {seen[0]}, what="the old id pruned, the new one kept")
    finally:
        consumer.stop()
        transport.close()


def test_the_ledger_takes_an_event_once_per_consumer(engine: Engine):
    # on PostgreSQL the insert's rowcount read -1, so every event looked like a duplicate
    with writer(engine).begin() as conn:
        assert mark_processed(conn, "audit", "e1")
        assert not mark_processed(conn, "audit", "e1")
        assert mark_processed(conn, "monitor", "e1")
