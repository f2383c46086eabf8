"""The outbox relay publishes what the registry wrote, and loses nothing while the broker is down."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sklearn.linear_model import Ridge
from typer.testing import CliRunner

from maestrale import Registry
from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.relay import OutboxRelay
from maestrale.cli.main import app
from maestrale.errors import BackendUnavailable
from tests.integration.conftest import AMQP_URL, wait_for

REGISTRY_EVENTS = ["maestrale.model.*"]


def fitted(regression_data) -> Ridge:
    X, y = regression_data
    return Ridge().fit(X, y)


def registry(tmp_path: Path) -> Registry:
    return Registry(database_url=f"sqlite:///{tmp_path}/reg.db", storage_url=f"file://{tmp_path}/artifacts")


class Seen:
    def __init__(self) -> None:
        self.events: list[CloudEvent] = []

    def __call__(self, event: CloudEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def test_relay_publishes_registry_events_in_order(bus, tmp_path, regression_data):
    reg = registry(tmp_path)
    seen = Seen()
    c = Consumer(bus, "registry-events", seen, REGISTRY_EVENTS).start()
    try:
        mv = reg.register("pv-p50", fitted(regression_data), metrics={"nmae": 0.06}, tags={"site": "p50"})
        reg.set_alias("pv-p50", "champion", mv.version)
        relay = OutboxRelay(reg, bus, batch_size=1)  # an embedded Registry, one event per batch
        assert relay.run_once() == 1 and relay.run_once() == 1 and relay.run_once() == 1
        assert relay.run_once() == 0  # all marked sent
        wait_for(lambda: len(seen.events) == 3, what="3 registry events")
        assert seen.types() == [
            "maestrale.model.registered",
            "maestrale.model.alias_set",
            "maestrale.model.promoted",
        ]
        registered = seen.events[0]
        assert registered.subject == "pv-p50" and registered.source == "maestrale/registry"
        assert registered.dataschema == "urn:maestrale:event:model.registered:v1"
        assert registered.payload.version == mv.version and registered.payload.metrics == {"nmae": 0.06}
    finally:
        c.stop()


def test_relay_cli_publishes_the_outbox_once(bus, tmp_path, regression_data, monkeypatch):
    monkeypatch.setenv("MAESTRALE_HOME", str(tmp_path))
    monkeypatch.delenv("MAESTRALE_DATABASE_URL", raising=False)
    monkeypatch.delenv("MAESTRALE_STORAGE_URL", raising=False)
    Registry(settings=None, database_url=f"sqlite:///{tmp_path}/registry.db").register(
        "wind-f1", fitted(regression_data)
    )
    seen = Seen()
    c = Consumer(bus, "cli-relay", seen, REGISTRY_EVENTS).start()
    try:
        url = "memory://" if type(bus).__name__ == "MemoryTransport" else AMQP_URL
        out = CliRunner().invoke(
            app, ["bus", "relay", "--once", "--broker", url, "--namespace", bus.namespace]
        )
        assert out.exit_code == 0 and "published 1 event(s)" in out.stdout, out.output
        wait_for(lambda: seen.types() == ["maestrale.model.registered"], what="the relayed event")
    finally:
        c.stop()


@pytest.mark.slow
def test_relay_keeps_events_while_the_broker_is_down(rabbit, rabbitmqctl, tmp_path, regression_data):
    reg = registry(tmp_path)
    store = reg._meta
    seen = Seen()
    c = Consumer(rabbit, "through-outage", seen, REGISTRY_EVENTS)
    c.declare()  # the durable queue exists before the outage, so it receives what the relay sends after
    rabbit.publish_timeout = 1.0
    rabbitmqctl("stop_app")
    try:
        reg.register("pv-outage", fitted(regression_data))
        relay = OutboxRelay(store, rabbit)
        with pytest.raises(BackendUnavailable, match="nothing is lost"):
            relay.run_once()
        assert [e["type"] for e in store.pending_events()] == ["maestrale.model.registered"]

        stop = threading.Event()  # the long-running relay: backs off while the broker is away
        worker = threading.Thread(target=relay.run, args=(stop, 0.1), daemon=True)
        worker.start()
    finally:
        rabbitmqctl("start_app")
    rabbit.publish_timeout = 20
    try:
        wait_for(lambda: not store.pending_events(), 60, "the relay to publish after the restart")
        c.start()
        wait_for(lambda: len(seen.events) >= 1, 30, "the event after the outage")
        time.sleep(0.5)
        # At least once: a publish cut by the restart may have reached the queue before it is resent.
        assert {(e.type, e.id) for e in seen.events} == {("maestrale.model.registered", seen.events[0].id)}
        assert seen.events[0].payload.name == "pv-outage"
    finally:
        stop.set()
        worker.join(10)
        c.stop()
