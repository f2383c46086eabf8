"""Fault test: 10,000 events through RabbitMQ while the broker stops and starts mid-stream.

Publishers resend what was not confirmed when the connection dropped, and consumers see again what
they had not acked: both make duplicates. The transactional consumer's ledger must absorb all of
them: every event takes effect exactly once, none is lost.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.schemas import ActualLogged, ActualRecord
from maestrale.bus.transport import RetryPolicy
from maestrale.platform.db import ensure_schema
from tests.integration.conftest import wait_for

N_EVENTS = 10_000
BATCH = 250
AHEAD = 1_000


@pytest.mark.slow
def test_no_loss_and_no_double_effect_across_a_broker_restart(rabbit, rabbitmqctl, tmp_path):
    engine = ensure_schema(f"sqlite:///{tmp_path}/effects.db")
    meta = sa.MetaData()
    # No unique key on purpose: a double effect would show up as a second row.
    effects = sa.Table(
        "effects",
        meta,
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    )
    meta.create_all(engine)

    def apply(event: CloudEvent, conn: sa.Connection) -> None:
        conn.execute(effects.insert().values(event_id=event.id, value=event.payload.records[0].value))

    rabbit.publish_timeout = 120
    consumer = Consumer.transactional(
        rabbit,
        "fault",
        apply,
        ["maestrale.actual.logged"],
        engine,
        prefetch=200,
        concurrency=2,
        retry=RetryPolicy(max_attempts=20, delays=(0.2, 1.0)),
    ).start()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        CloudEvent.create(ActualLogged(records=[ActualRecord(entity="p1", target_time=t0, value=float(i))]))
        for i in range(N_EVENTS)
    ]
    published = [0]
    errors: list[BaseException] = []

    def count(q: sa.Select) -> int:
        with engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    distinct = sa.select(sa.func.count(sa.distinct(effects.c.event_id)))

    def publish() -> None:
        try:
            for start in range(0, N_EVENTS, BATCH):
                # Stay at most AHEAD events ahead of the consumer, so the outage hits both sides mid-stream.
                while published[0] - count(distinct) > AHEAD:
                    time.sleep(0.01)
                rabbit.publish_events(events[start : start + BATCH])
                published[0] = start + BATCH
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        wait_for(lambda: count(distinct) >= N_EVENTS // 4, 60, "a quarter of the stream")
        outage_at = (published[0], count(distinct))
        rabbitmqctl("stop_app")
        time.sleep(1.0)
    finally:
        rabbitmqctl("start_app")
    try:
        publisher.join(180)
        assert not errors, errors
        wait_for(lambda: count(distinct) >= N_EVENTS, 180, f"all {N_EVENTS} effects")
        time.sleep(1.0)  # let late redeliveries arrive: they must not add rows either
    finally:
        consumer.stop()
    elapsed = time.monotonic() - started

    rows = count(sa.select(sa.func.count()).select_from(effects))
    with engine.connect() as conn:
        ids = {r.event_id for r in conn.execute(sa.select(effects.c.event_id))}
    assert ids == {e.id for e in events}  # 0 lost
    assert rows == N_EVENTS  # 0 double effects
    stats = consumer.stats
    print(
        "\nfault test:",
        json.dumps(
            {
                "events": N_EVENTS,
                "effects": rows,
                "outage_after_published": outage_at[0],
                "outage_after_applied": outage_at[1],
                "publisher_resent": rabbit.resent,
                "deliveries": stats.handled,
                "duplicates_absorbed": stats.duplicates,
                "redelivered_flag": stats.redelivered,
                "seconds": round(elapsed, 1),
            }
        ),
    )
    assert stats.handled == N_EVENTS + stats.duplicates
