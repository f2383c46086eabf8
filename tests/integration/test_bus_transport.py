"""The bus on the real RabbitMQ and on the in-process transport: same tests, same behaviour."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.schemas import ActualLogged, ActualRecord, ModelPromoted
from maestrale.bus.transport import Message, RetryPolicy
from maestrale.cli.main import app
from tests.integration.conftest import AMQP_URL, wait_for

FAST = RetryPolicy(max_attempts=3, delays=(0.05, 0.1))


def actual(i: int) -> CloudEvent:
    rec = ActualRecord(entity=f"plant-{i % 7}", target_time=datetime(2026, 1, 1, tzinfo=UTC), value=float(i))
    return CloudEvent.create(ActualLogged(records=[rec]), source="tests")


def promoted(name: str = "pv-p50") -> CloudEvent:
    return CloudEvent.create(
        ModelPromoted(name=name, alias="champion", version=2, previous_version=1), subject=name
    )


class Recorder:
    """A handler that records what it saw (thread-safe), optionally failing `fail_first` times per event."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False, delay: float = 0.0) -> None:
        self.events: list[CloudEvent] = []
        self.calls: dict[str, int] = {}
        self.fail_first, self.always_fail, self.delay = fail_first, always_fail, delay
        self.lock = threading.Lock()

    def __call__(self, event: CloudEvent) -> None:
        with self.lock:
            n = self.calls[event.id] = self.calls.get(event.id, 0) + 1
        if self.always_fail or n <= self.fail_first:
            raise RuntimeError(f"downstream unavailable (call {n})")
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.events.append(event)

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [e.id for e in self.events]


def cli_args(bus) -> list[str]:
    url = "memory://" if type(bus).__name__ == "MemoryTransport" else AMQP_URL
    return ["--broker", url, "--namespace", bus.namespace]


def test_roundtrip_routes_by_type_with_confirms(bus):
    rec = Recorder()
    c = Consumer(bus, "registry-watch", rec, ["maestrale.model.*"], retry=FAST).start()
    bus.declare("ingest", ["maestrale.actual.logged"])  # work events must reach a queue (else Unroutable)
    try:
        wanted = [promoted(f"m{i}") for i in range(50)]
        bus.publish_events([actual(0), *wanted, actual(1)])  # returns once confirmed
        wait_for(lambda: len(rec.ids) >= 50, what="50 model events")
        assert sorted(rec.ids) == sorted(e.id for e in wanted)
        first = next(e for e in rec.events if e.id == wanted[0].id)
        assert first.subject == "m0" and first.payload.alias == "champion"  # typed payload
        assert c.stats.handled == 50 and c.stats.failures == 0
    finally:
        c.stop()


def test_competing_consumers_split_a_queue_and_other_queues_get_copies(bus):
    slow = [Recorder(delay=0.002), Recorder(delay=0.002)]
    workers = [Consumer(bus, "workers", r, ["maestrale.actual.logged"], prefetch=1) for r in slow]
    audit = Recorder()
    for c in workers:
        c.declare()
    observer = Consumer(bus, "audit", audit, ["maestrale.#"]).start()
    for c in workers:
        c.start()
    try:
        events = [actual(i) for i in range(200)]
        bus.publish_events(events)
        wait_for(
            lambda: len(slow[0].ids) + len(slow[1].ids) >= 200 and len(audit.ids) >= 200, what="200 events"
        )
        got = slow[0].ids + slow[1].ids
        assert sorted(got) == sorted(e.id for e in events)  # each once in the shared queue
        assert slow[0].ids and slow[1].ids  # and both workers took some
        assert sorted(audit.ids) == sorted(got)  # a second queue gets its own copy of each
    finally:
        for c in [*workers, observer]:
            c.stop()


def test_transient_failures_are_retried_then_succeed(bus):
    rec = Recorder(fail_first=2)
    c = Consumer(bus, "flaky", rec, ["maestrale.model.promoted"], retry=FAST).start()
    try:
        ev = promoted()
        bus.publish_event(ev)
        wait_for(lambda: rec.ids == [ev.id], what="the third attempt to succeed")
        assert rec.calls[ev.id] == 3
        assert bus.dead_letters("flaky") == []
    finally:
        c.stop()


def test_exhausted_retries_dead_letter_with_reason_handler_and_attempts(bus):
    rec = Recorder(always_fail=True)
    c = Consumer(
        bus, "broken", rec, ["maestrale.model.promoted"], retry=FAST, handler_name="tests.broken"
    ).start()
    try:
        ev = promoted()
        bus.publish_event(ev)
        wait_for(lambda: len(bus.dead_letters("broken")) == 1, what="a dead letter")
        [letter] = bus.dead_letters("broken")
        assert letter.attempts == 3 and rec.calls[ev.id] == 3
        assert letter.error == "RuntimeError: downstream unavailable (call 3)"
        assert letter.error_type == "RuntimeError" and letter.handler == "tests.broken"
        assert letter.routing_key == "maestrale.model.promoted" and letter.message_id == ev.id
        assert CloudEvent.from_json(letter.body).id == ev.id
        assert len(bus.dead_letters("broken")) == 1  # listing does not consume
    finally:
        c.stop()


def test_permanent_errors_dead_letter_at_once_with_one_line_and_transient_ones_retry(bus, caplog):
    from maestrale.bus.failures import PermanentFailure
    from maestrale.errors import BackendUnavailable, InvalidInput

    errors = {
        "spec": InvalidInput("spec: unknown field 'estimater'"),
        "fit": PermanentFailure("params do not fit Ridge"),
        "db": BackendUnavailable("database at db:5432 unreachable"),
    }
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def handler(event: CloudEvent) -> None:
        with lock:
            calls[event.subject] = calls.get(event.subject, 0) + 1
        raise errors[event.subject]

    caplog.set_level(logging.INFO)
    c = Consumer(bus, "rules", handler, ["maestrale.model.promoted"], retry=FAST).start()
    try:
        bus.publish_events([promoted(name) for name in errors])
        wait_for(lambda: len(bus.dead_letters("rules")) == 3, what="three dead letters")
    finally:
        c.stop()
    assert calls == {"spec": 1, "fit": 1, "db": 3}
    letters = {CloudEvent.from_json(d.body).subject: d for d in bus.dead_letters("rules")}
    assert {k: (d.attempts, d.error_type) for k, d in letters.items()} == {
        "spec": (1, "InvalidInput"), "fit": (1, "PermanentFailure"), "db": (3, "BackendUnavailable")
    }  # fmt: skip
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # known kinds: no traceback
    dead_lines = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(dead_lines) == 3
    assert sum("(permanent error: not retried)" in line for line in dead_lines) == 2


def test_malformed_messages_go_to_the_dlq_at_once_and_the_consumer_goes_on(bus):
    rec = Recorder()
    c = Consumer(bus, "strict", rec, ["maestrale.#"], retry=FAST).start()
    try:
        good = [promoted("a"), promoted("b")]
        unknown = promoted().model_dump(mode="json") | {"type": "maestrale.model.exploded"}
        invalid = promoted().model_dump(mode="json")
        invalid["data"]["version"] = "two"
        bus.publish_events([good[0]])
        bus.publish(
            [
                Message("maestrale.model.promoted", b'{"specversion": "1.0", "id": ', "bad-json"),
                Message("maestrale.model.exploded", json.dumps(unknown).encode(), "unknown-type"),
                Message("maestrale.model.promoted", json.dumps(invalid).encode(), "bad-payload"),
            ]
        )
        bus.publish_events([good[1]])
        wait_for(
            lambda: len(rec.ids) == 2 and len(bus.dead_letters("strict")) == 3, what="2 handled + 3 dead"
        )
        letters = {d.message_id: d for d in bus.dead_letters("strict")}
        assert all(d.attempts == 1 and d.error_type == "MalformedEvent" for d in letters.values())
        assert letters["bad-json"].error.startswith("MalformedEvent: not JSON")
        assert "unknown event type 'maestrale.model.exploded'" in letters["unknown-type"].error
        assert "data.version" not in letters["bad-payload"].error  # the path is inside the payload:
        assert "version: Input should be a valid integer" in letters["bad-payload"].error
        assert sorted(rec.ids) == sorted(e.id for e in good)
    finally:
        c.stop()


def test_dlq_list_and_replay_from_the_cli(bus):
    rec = Recorder(always_fail=True)
    c = Consumer(bus, "replayable", rec, ["maestrale.model.promoted"], retry=FAST).start()
    runner = CliRunner()
    try:
        events = [promoted(f"m{i}") for i in range(3)]
        bus.publish_events(events)
        wait_for(lambda: len(bus.dead_letters("replayable")) == 3, what="3 dead letters")
        out = runner.invoke(app, ["bus", "dlq", "list", "replayable", "--json", *cli_args(bus)])
        assert out.exit_code == 0, out.output
        rows = json.loads(out.stdout)
        assert {r["id"] for r in rows} == {e.id for e in events}
        assert {(r["type"], r["attempts"], r["error_type"]) for r in rows} == {
            ("maestrale.model.promoted", 3, "RuntimeError")
        }
        assert all(r["handler"].endswith("Recorder") for r in rows)
        human = runner.invoke(app, ["bus", "dlq", "list", "replayable", *cli_args(bus)])
        assert "downstream unavailable" in human.stdout and events[0].id in human.stdout

        rec.always_fail = False  # the cause is fixed: replay two, then the rest
        out = runner.invoke(app, ["bus", "dlq", "replay", "replayable", "--limit", "2", *cli_args(bus)])
        assert out.exit_code == 0 and "replayed 2" in out.stdout, out.output
        wait_for(lambda: len(rec.ids) == 2, what="2 replayed events handled")
        assert len(bus.dead_letters("replayable")) == 1
        out = runner.invoke(app, ["bus", "dlq", "replay", "replayable", "--json", *cli_args(bus)])
        assert json.loads(out.stdout) == {"queue": "replayable", "replayed": 1}
        wait_for(lambda: len(rec.ids) == 3, what="all replayed events handled")
        assert sorted(rec.ids) == sorted(e.id for e in events) and bus.dead_letters("replayable") == []
        missing = runner.invoke(app, ["bus", "dlq", "list", "no-such-queue", *cli_args(bus)])
        assert missing.exit_code == 1 and "no-such-queue" in missing.output
    finally:
        c.stop()


def test_dlq_list_of_every_queue_on_the_memory_bus(memory_bus):
    rec = Recorder(always_fail=True)
    c = Consumer(memory_bus, "one", rec, ["maestrale.#"], retry=RetryPolicy(1, (0,))).start()
    Consumer(memory_bus, "two", Recorder(), ["maestrale.train.*"]).declare()
    try:
        memory_bus.publish_event(promoted())
        wait_for(lambda: len(memory_bus.dead_letters("one")) == 1, what="a dead letter")
        out = CliRunner().invoke(app, ["bus", "dlq", "list", "--json", *cli_args(memory_bus)])
        assert [r["queue"] for r in json.loads(out.stdout)] == ["one"]
    finally:
        c.stop()


def test_idempotent_consumer_applies_a_redelivered_event_once(bus, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/effects.db")
    meta = sa.MetaData()
    effects = sa.Table(
        "effects", meta, sa.Column("n", sa.Integer, primary_key=True), sa.Column("event_id", sa.String)
    )
    meta.create_all(engine)

    def apply(event: CloudEvent, conn: sa.Connection) -> None:
        conn.execute(effects.insert().values(event_id=event.id))

    c = Consumer.transactional(bus, "ledger", apply, ["maestrale.model.promoted"], engine, retry=FAST).start()
    try:
        ev, other = promoted(), promoted("other")
        bus.publish_events([ev, ev, other])  # a publisher resending after a lost confirm
        bus.publish_events([ev])
        wait_for(lambda: c.stats.handled == 4, what="4 deliveries")
        with engine.connect() as conn:
            rows = [r.event_id for r in conn.execute(sa.select(effects.c.event_id))]
        assert sorted(rows) == sorted([ev.id, other.id])
        assert c.stats.duplicates == 2
    finally:
        c.stop()
        engine.dispose()


def test_stop_lets_a_running_handler_finish_and_ack(bus):
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow(event: CloudEvent) -> None:
        started.set()
        release.wait(5)
        done.append(event.id)

    c = Consumer(bus, "graceful", slow, ["maestrale.model.promoted"]).start()
    ev = promoted()
    bus.publish_event(ev)
    assert started.wait(10)
    stopper = threading.Thread(target=c.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    assert done == [ev.id]
    seen = Recorder()  # nothing left to redeliver: the event was acked before the consumer stopped
    again = Consumer(bus, "graceful", seen, ["maestrale.model.promoted"]).start()
    try:
        marker = promoted("marker")
        bus.publish_event(marker)
        wait_for(lambda: seen.ids == [marker.id], what="only the marker")
    finally:
        again.stop()


@pytest.mark.parametrize("url", ["redis://localhost", "kafka://x"])
def test_unsupported_broker_url_says_what_works(url):
    from maestrale.bus.transport import get_transport
    from maestrale.errors import ConfigError

    with pytest.raises(ConfigError, match=r"use memory:// .* amqp://"):
        get_transport(url, namespace=f"t{uuid.uuid4().hex[:6]}")


def test_the_documented_pika_example_publishes_a_valid_train_request(rabbit):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    code = doc.split("<!-- example:pika -->\n```python\n", 1)[1].split("```", 1)[0]
    assert 'exchange = "maestrale"' in code
    code = code.replace('exchange = "maestrale"', f"exchange = {rabbit.namespace!r}")  # this test's exchange
    rec = Recorder()
    c = Consumer(rabbit, "trainer", rec, ["maestrale.train.requested"]).start()
    try:
        exec(compile(code, "docs/events.md", "exec"), {})
        wait_for(lambda: len(rec.events) == 1, what="the train request from plain pika")
        ev = rec.events[0]
        assert ev.subject == "pv-p50" and ev.payload.idempotency_key == "pv-p50-2026-11-26"
        assert rabbit.dead_letters("trainer") == []
    finally:
        c.stop()


def test_listing_every_rabbitmq_queue_without_the_management_api_says_what_to_do(amqp_url):
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.errors import ConfigError

    bus = RabbitTransport(
        amqp_url, namespace=f"test-{uuid.uuid4().hex[:10]}", management_url="http://127.0.0.1:9"
    )
    with pytest.raises(
        ConfigError, match=r"name the queue .*maestrale bus dlq list trainer.*rabbitmq_management"
    ):
        bus.queues()


def test_inline_handlers_retry_and_dead_letter_the_same(bus):
    rec = Recorder(fail_first=1)
    bad = Recorder(always_fail=True)
    ok = Consumer(bus, "inline-ok", rec, ["maestrale.model.promoted"], retry=FAST, concurrency=0).start()
    dead = Consumer(bus, "inline-dead", bad, ["maestrale.model.promoted"], retry=FAST, concurrency=0).start()
    try:
        events = [promoted(f"m{i}") for i in range(20)]
        bus.publish_events(events)
        wait_for(lambda: len(rec.ids) == 20 and len(bus.dead_letters("inline-dead")) == 20, what="20 + 20")
        assert sorted(rec.ids) == sorted(e.id for e in events)
        assert {d.attempts for d in bus.dead_letters("inline-dead")} == {3}
    finally:
        ok.stop()
        dead.stop()


def test_rabbitmq_queues_with_expires_disappear_when_unused(rabbit):
    """A per-process queue (a model server's reload queue) must not outlive a SIGKILLed process."""
    import pika

    from maestrale.bus.transport import RetryPolicy

    policy = RetryPolicy(2, (1.0,), expires_s=1.0)
    rabbit.declare("short-lived", ["maestrale.model.promoted"], policy)
    full = rabbit.queue_name("short-lived")
    names = [full, f"{full}.dlq", f"{full}.retry.1000"]
    params = pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")

    def exists(name: str) -> bool:
        conn = pika.BlockingConnection(params)
        try:
            conn.channel().queue_declare(name, passive=True)
            return True
        except pika.exceptions.ChannelClosedByBroker:
            return False
        finally:
            if conn.is_open:
                conn.close()

    assert all(exists(n) for n in names)
    # even a passive declare renews the lease: look again only once it has surely run out
    time.sleep(4)
    assert not any(exists(n) for n in names), "queues declared with expires_s were not deleted"
