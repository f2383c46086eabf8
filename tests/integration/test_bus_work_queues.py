"""Work events on the real RabbitMQ: never lost for want of a consumer, never counted unless queued.

A fleet submitted before any worker ever ran waits in the training queue that the publisher declared;
a publisher whose RabbitMQ user may not declare queues gets `Unroutable` for a work event that reached
no queue (publisher confirms + `mandatory`), and the outbox keeps it until its queue exists.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pika
import pytest

from maestrale.bus.events import CloudEvent
from maestrale.bus.relay import OutboxRelay
from maestrale.bus.schemas import ActualLogged, ActualRecord, ModelPromoted
from maestrale.config import load_settings
from maestrale.training.requests import TrainingRequests
from maestrale.training.service import wait_for

SPEC = {
    "name": "pv-{site}",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "ridge",
    "train_window": {"start": "2011-06-01", "end": "2011-07-31"},
    "split": {"holdout": {"test_start": "2011-07-15"}},
    "capacity": 3.4,
    "fleet": {"site": ["a", "b", "c"]},
}


def _depth(amqp_url: str, queue: str) -> int:
    """Messages ready in `queue`, read by a plain pika client (passive declare)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin_bus(amqp_url: str, namespace: str) -> Iterator:
    from maestrale.bus.transports.rabbitmq import RabbitTransport

    bus = RabbitTransport(amqp_url, namespace=namespace, publish_timeout=20)
    yield bus
    bus.delete()
    bus.close()


@pytest.fixture
def limited_url(amqp_url: str, namespace: str) -> Iterator[str]:
    """A RabbitMQ user that may use the namespace's exchange but not declare any queue (configure)."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail("rabbitmqctl is not on PATH: this test creates a RabbitMQ user with limited permissions")
    user, password = f"maestrale-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex

    def ctl(*args: str) -> None:
        subprocess.run([exe, *args], check=True, capture_output=True, timeout=60)

    ctl("add_user", user, password)
    try:
        ctl("set_permissions", "-p", "/", user, f"^{namespace}$", ".*", ".*")
        yield amqp_url.replace("guest:guest@", f"{user}:{password}@")
    finally:
        subprocess.run([exe, "delete_user", user], check=False, capture_output=True, timeout=60)


@pytest.mark.slow
def test_fleet_submitted_before_any_worker_ever_ran_is_trained_once_one_starts(tmp_path, amqp_url, namespace):
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.training.worker import TrainingWorker

    settings = load_settings(home=tmp_path / "home", broker_url=amqp_url, bus_namespace=namespace)
    requests = TrainingRequests(settings.database_url)
    records = requests.submit(SPEC, requested_by="test")
    relay_bus = RabbitTransport(amqp_url, namespace=namespace)
    try:
        # No worker has ever run in this namespace: no queue existed until the relay published.
        assert OutboxRelay(settings.database_url, relay_bus).run_once() == 3
        assert _depth(amqp_url, f"{namespace}.training") == 3  # waiting, not dropped by the exchange
        worker = TrainingWorker(settings, RabbitTransport(amqp_url, namespace=namespace), worker_id="late")
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            done = wait_for(requests, [r.id for r in records], timeout=240)
        finally:
            stop.set()
            thread.join(60)
    finally:
        relay_bus.delete()
        relay_bus.close()
    assert [(r.name, r.status, r.version, r.worker) for r in done] == [
        (f"pv-{s}", "completed", 1, "late") for s in "abc"
    ]


def test_unroutable_work_is_an_error_not_a_count_and_stays_in_the_outbox(
    tmp_path, amqp_url, namespace, admin_bus, limited_url
):
    from maestrale.bus.transport import Unroutable
    from maestrale.bus.transports.rabbitmq import RabbitTransport
    from maestrale.monitoring.client import log_actuals
    from maestrale.training.worker import declare_training_queue

    admin_bus.declare("audit", ["maestrale.model.#"])  # the exchange exists; no work queue does
    user_bus = RabbitTransport(limited_url, namespace=namespace, publish_timeout=10)
    try:
        record = ActualRecord(entity="p50", target_time=datetime(2026, 1, 1, tzinfo=UTC), value=1.5)
        promoted = ModelPromoted(name="pv-p50", alias="champion", version=2, previous_version=1)
        with pytest.raises(Unroutable, match=r"maestrale monitor run.*configure") as info:
            user_bus.publish_events(
                [CloudEvent.create(ActualLogged(records=[record])), CloudEvent.create(promoted)]
            )
        assert info.value.routing_keys == ["maestrale.actual.logged"]
        assert _depth(amqp_url, f"{namespace}.audit") == 1  # the notification of the batch went out

        # The SDK reports no count for actuals that reached no durable queue.
        actuals = pd.DataFrame(
            {"value": [1.0, 2.0]}, index=pd.date_range("2026-01-01", periods=2, freq="1h", tz="UTC")
        )
        with pytest.raises(Unroutable):
            log_actuals(actuals, entity="p50", transport=user_bus)

        # The relay keeps an unroutable request pending, and sends it once its queue exists.
        settings = load_settings(home=tmp_path / "home", broker_url=limited_url, bus_namespace=namespace)
        [request] = TrainingRequests(settings.database_url).submit({**SPEC, "name": "pv-x", "fleet": None})
        relay = OutboxRelay(settings.database_url, user_bus)
        assert relay.run_once() == 0 and relay.held == 1
        declare_training_queue(admin_bus)  # e.g. the first `maestrale worker` starts
        assert relay.run_once() == 1 and relay.held == 0
        assert relay.run_once() == 0  # sent once, not again
        assert _depth(amqp_url, f"{namespace}.training") == 1
    finally:
        user_bus.close()
    assert request.status == "queued"


def test_publisher_redeclares_a_work_queue_deleted_since_it_declared_it(amqp_url, namespace, admin_bus):
    """A queue deleted under a long-lived publisher (an operator's cleanup) is declared again."""
    record = ActualRecord(entity="p50", target_time=datetime(2026, 1, 1, tzinfo=UTC), value=1.5)
    admin_bus.publish_events([CloudEvent.create(ActualLogged(records=[record]))])
    assert _depth(amqp_url, f"{namespace}.monitor") == 1
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    conn.channel().queue_delete(f"{namespace}.monitor")  # behind the publisher's back
    conn.close()
    admin_bus.publish_events([CloudEvent.create(ActualLogged(records=[record]))])
    assert _depth(amqp_url, f"{namespace}.monitor") == 1
