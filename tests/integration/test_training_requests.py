"""Training requests on the bus: permanent errors fail at once, `--wait` says when no worker runs,
and `train list | status | cancel` (CLI, embedded and over REST) with a worker that honours a cancel."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from maestrale import Registry
from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.relay import OutboxRelay
from maestrale.bus.schemas import TrainRequested
from maestrale.cli.main import app
from maestrale.config import load_settings
from maestrale.errors import NotFound
from maestrale.tokens import create_token
from maestrale.training.requests import TrainingRequests
from maestrale.training.service import EmbeddedService, wait_for
from tests.conftest import start_server
from tests.integration.conftest import wait_for as wait_until

SMALL = {
    "name": "pv-req",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "ridge",
    "train_window": {"start": "2011-06-01", "end": "2011-07-31"},
    "split": {"holdout": {"test_start": "2011-07-15"}},
    "capacity": 3.4,
}
SLOW = {  # a fit of minutes: long enough to be cancelled while it runs
    **SMALL,
    "name": "pv-slow",
    "estimator": "hgb",
    "params": {"max_iter": 5000, "early_stopping": False, "max_leaf_nodes": 255, "learning_rate": 0.01},
    "train_window": {"start": "2011-04-15", "end": "2013-12-31"},
    "split": {"holdout": {"test_start": "2013-06-01"}},
}


class Seen:
    """Records the events a consumer handles (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: CloudEvent) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, event_type: str) -> list[CloudEvent]:
        with self.lock:
            return [e for e in self.events if e.type == event_type]


def _watch(bus) -> tuple[Consumer, Seen]:
    seen = Seen()
    return Consumer(bus, "watch", seen, ["maestrale.train.*"]).start(), seen


def _known(requests: TrainingRequests, request_id: str) -> bool:
    try:
        requests.get(request_id)
    except NotFound:
        return False
    return True


def _home_env(monkeypatch, home: Path, **env: str) -> None:
    monkeypatch.setenv("MAESTRALE_HOME", str(home))
    for key, value in env.items():
        monkeypatch.setenv(key, value)


# -- permanent errors fail at once; transient ones are retried ------------------------------------------
def test_permanent_training_errors_fail_at_once_to_the_dlq_with_one_line(bus, tmp_path, caplog):
    from maestrale.training.worker import TrainingWorker

    settings = load_settings(home=tmp_path / "home", bus_namespace=bus.namespace)
    requests = TrainingRequests(settings.database_url)
    worker = TrainingWorker(settings, bus, worker_id="w").start()
    watch, seen = _watch(bus)
    caplog.set_level(logging.INFO)
    try:
        start = time.monotonic()
        [bad_param] = requests.submit({**SMALL, "name": "pv-alpha", "params": {"alpha": "x"}})
        OutboxRelay(settings.database_url, bus).run_once()
        # A spec that `submit` would refuse, published by a plain AMQP client (no request row).
        unknown = TrainRequested(
            request_id=str(uuid.uuid4()),
            idempotency_key="k1",
            spec={**SMALL, "name": "pv-nope", "estimator": "nope"},
        )
        bus.publish_events([CloudEvent.create(unknown, subject="pv-nope", source="tests")])
        wait_until(lambda: _known(requests, unknown.request_id), 30, "the worker to adopt the request")
        done = wait_for(requests, [bad_param.id, unknown.request_id], timeout=60)
        took = time.monotonic() - start
        wait_until(lambda: len(seen.of("maestrale.train.failed")) == 2, 20, "two train.failed events")
        wait_until(lambda: len(bus.dead_letters("training")) == 2, 20, "two dead letters")
    finally:
        watch.stop()
        worker.stop()
    assert [(r.status, r.attempts) for r in done] == [("failed", 1), ("failed", 1)]
    assert "alpha" in done[0].error and "unknown estimator 'nope'" in done[1].error
    assert took < 30  # the first retry alone would wait 5 s, the second 30 s
    letters = {d.message_id: d for d in bus.dead_letters("training")}
    assert {d.attempts for d in letters.values()} == {1} and {d.error_type for d in letters.values()} == {
        "TrainingFailed"
    }
    failed = {e.payload.request_id: e.payload for e in seen.of("maestrale.train.failed")}
    assert (
        failed[unknown.request_id].attempts == 1 and "unknown estimator" in failed[unknown.request_id].error
    )
    ours = [
        r for r in caplog.records if bad_param.id in r.getMessage() or unknown.request_id in r.getMessage()
    ]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [], "no traceback for a permanent error"
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 2 and all("not retried" in r.getMessage() for r in warnings)
    assert worker.consumer.stats.handled == 0 and worker.consumer.stats.failures == 2


# -- `train --wait` with no worker --------------------------------------------------------------------
def test_train_wait_says_at_once_when_no_worker_consumes_the_queue(tmp_path, amqp_url, monkeypatch):
    from maestrale.bus.transports.rabbitmq import RabbitTransport

    namespace = f"t{uuid.uuid4().hex[:10]}"
    _home_env(
        monkeypatch, tmp_path / "home", MAESTRALE_BROKER_URL=amqp_url, MAESTRALE_BUS_NAMESPACE=namespace
    )
    spec = tmp_path / "pv.yaml"
    spec.write_text(yaml.safe_dump({**SMALL, "name": "pv-idle"}))
    start = time.monotonic()
    try:
        result = CliRunner().invoke(app, ["train", str(spec), "--wait", "--timeout", "4"])
    finally:
        bus = RabbitTransport(amqp_url, namespace=namespace)
        bus.delete(["training"])
        bus.close()
    assert time.monotonic() - start < 40
    assert "no worker consumes" in result.stderr, result.output
    assert f"{namespace}.training" in result.stderr and "maestrale worker" in result.stderr
    assert "guest:guest" not in result.output  # the broker is named without its credentials
    assert result.exit_code == 1 and "pv-idle: queued" in result.stderr


# -- cancel ---------------------------------------------------------------------------------------------
def test_cancelled_queued_request_is_skipped_by_the_worker(tmp_path, monkeypatch):
    namespace = f"t{uuid.uuid4().hex[:10]}"
    home = tmp_path / "home"
    _home_env(monkeypatch, home, MAESTRALE_BUS_NAMESPACE=namespace)
    settings = load_settings(home=home, bus_namespace=namespace)
    requests = TrainingRequests(settings.database_url)
    [queued] = requests.submit({**SMALL, "name": "pv-skip"})
    runner = CliRunner()
    result = runner.invoke(app, ["train", "cancel", queued.id[:8]])
    assert result.exit_code == 0 and "cancelled; it will not be trained" in result.stdout, result.output
    again = runner.invoke(app, ["train", "cancel", queued.id[:8]])
    assert again.exit_code != 0 and "already cancelled" in again.stderr, again.output
    svc = EmbeddedService(settings)
    watch, seen = _watch(svc.transport)
    svc.start()
    try:
        wait_until(lambda: seen.of("maestrale.train.failed"), 60, "train.failed for the cancelled request")
    finally:
        svc.stop()
        watch.stop()
    [event] = seen.of("maestrale.train.failed")
    assert event.payload.request_id == queued.id and event.payload.error == "cancelled"
    assert not seen.of("maestrale.train.started")  # never trained
    record = requests.get(queued.id)
    assert record.status == "cancelled" and record.error.startswith("cancelled by ")
    with pytest.raises(NotFound):
        Registry(settings=settings).get_model("pv-skip")


@pytest.mark.slow
def test_cancel_stops_a_running_training_at_its_next_check(tmp_path):
    settings = load_settings(home=tmp_path / "home", bus_namespace=f"t{uuid.uuid4().hex[:10]}")
    requests = TrainingRequests(settings.database_url)
    with EmbeddedService(settings) as svc:
        [rec] = requests.submit(SLOW)
        wait_until(lambda: requests.get(rec.id).status == "started", 120, "the training to start")
        time.sleep(1.0)  # inside the fit
        [cancelled] = requests.cancel(rec.id, by="ops")
        asked = time.monotonic()
        assert cancelled.status == "cancelled" and cancelled.worker
        wait_until(lambda: svc.worker.consumer.stats.handled == 1, 30, "the worker to stop the training")
        stopped_after = time.monotonic() - asked
    assert stopped_after < 10  # checked every 2 s
    record = requests.get(rec.id)
    assert (record.status, record.error, record.version) == ("cancelled", "cancelled by ops", None)
    with pytest.raises(NotFound):
        Registry(settings=settings).get_model("pv-slow")


# -- REST routes and the CLI against them ---------------------------------------------------------------
def test_rest_and_cli_list_status_and_cancel_requests(tmp_path):
    home = tmp_path / "srv"
    handle = start_server(home, bus_namespace=f"t{uuid.uuid4().hex[:10]}")
    api = f"{handle.url}/api/v1/trainings"
    admin = {"Authorization": f"Bearer {handle.admin_token}"}
    read_token = create_token(f"sqlite:///{home / 'registry.db'}", "ro", "read")
    read = {"Authorization": f"Bearer {read_token}"}
    try:
        fleet = {**SMALL, "name": "pv-{s}", "fleet": {"s": ["a", "b"]}}
        r = httpx.post(api, json={"yaml": yaml.safe_dump(fleet)}, headers=admin)
        assert r.status_code == 202, r.text
        a, b = r.json()
        listed = httpx.get(api, params={"status": "queued"}, headers=read).json()
        assert {x["id"] for x in listed} == {a["id"], b["id"]}
        assert httpx.get(api, params={"status": "lost"}, headers=read).status_code == 400
        got = httpx.get(f"{api}/{a['id'][:8]}", headers=read)
        assert got.status_code == 200 and got.json()["name"] == "pv-a"
        assert httpx.get(f"{api}/{a['fleet_id']}", headers=read).status_code == 404  # a fleet: list it
        assert httpx.post(f"{api}/{a['id']}/cancel", headers=read).status_code == 403
        cancel = httpx.post(f"{api}/{a['id']}/cancel", headers=admin)
        assert cancel.status_code == 200 and [x["status"] for x in cancel.json()] == ["cancelled"]
        assert cancel.json()[0]["error"] == "cancelled by admin"
        refused = httpx.post(f"{api}/{a['id']}/cancel", headers=admin)
        assert refused.status_code == 409 and "already cancelled" in refused.json()["error"]["message"]
        assert httpx.post(f"{api}/no-such-id/cancel", headers=admin).status_code == 404

        runner = CliRunner()
        remote = ["--registry", handle.url, "--token", handle.admin_token]
        out = runner.invoke(app, ["train", "list", *remote])
        assert out.exit_code == 0 and "cancelled" in out.stdout and "queued" in out.stdout, out.output
        out = runner.invoke(app, ["train", "status", b["id"][:8], "--json", *remote])
        assert out.exit_code == 0 and '"status": "queued"' in out.stdout, out.output
        out = runner.invoke(app, ["train", "cancel", b["fleet_id"], *remote])  # the fleet's unfinished rest
        assert out.exit_code == 0 and "pv-b: cancelled" in out.stdout, out.output
        out = runner.invoke(app, ["train", "status", a["fleet_id"], *remote])
        assert out.exit_code == 0 and "2 cancelled" in out.stdout, out.output
        out = runner.invoke(app, ["train", "status", "feedfacecafe", *remote])
        assert out.exit_code != 0 and "train list" in out.stderr, out.output
    finally:
        handle.stop()
