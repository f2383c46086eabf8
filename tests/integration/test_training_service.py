"""The training service end to end: requests over the bus, competing workers, kill -9, failures, REST."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from maestrale import Registry
from maestrale.config import load_settings
from maestrale.training.requests import TrainingRequests
from maestrale.training.service import EmbeddedService, wait_for

SMALL = {
    "name": "pv-svc",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "ridge",
    "train_window": {"start": "2011-05-01", "end": "2011-08-31"},
    "split": {"holdout": {"test_start": "2011-08-01"}},
    "capacity": 3.4,
}


def _spec(**changes: object) -> dict:
    return {**SMALL, **changes}


def _settings(tmp_path: Path, **extra: object):
    return load_settings(home=tmp_path / "home", **extra)


def test_embedded_service_trains_a_fleet_through_the_bus(tmp_path):
    settings = _settings(tmp_path, bus_namespace=f"t{uuid.uuid4().hex[:8]}")
    requests = TrainingRequests(settings.database_url)
    fleet = _spec(
        name="pv-{variant}",
        fleet=[{"variant": "a"}, {"variant": "b", "estimator": "hgb", "params": {"max_iter": 20}}],
    )
    with EmbeddedService(settings):
        records = requests.submit(fleet, requested_by="test")
        assert len({r.fleet_id for r in records}) == 1 and records[0].fleet_id
        done = wait_for(requests, [r.id for r in records], timeout=120)
    assert [(r.name, r.status, r.version) for r in done] == [
        ("pv-a", "completed", 1),
        ("pv-b", "completed", 1),
    ]
    reg = Registry(settings=settings)
    mv = reg.get_version("pv-b:1")
    assert mv.idempotency_key and mv.tags["request_id"] == done[1].id
    assert mv.spec["estimator"] == "hgb" and mv.metrics["nmae"] == pytest.approx(done[1].metrics["nmae"])
    assert requests.list(fleet_id=records[0].fleet_id)[0].fleet_id == records[0].fleet_id


def test_bad_data_fails_at_once_with_the_reason_and_registers_nothing(tmp_path):
    settings = _settings(tmp_path, bus_namespace=f"t{uuid.uuid4().hex[:8]}")
    requests = TrainingRequests(settings.database_url)
    with EmbeddedService(settings):
        [rec] = requests.submit(_spec(name="pv-broken", features=["no_such_column"], feature_set=None))
        [done] = wait_for(requests, [rec.id], timeout=60)
    assert done.status == "failed" and "no_such_column" in done.error and done.attempts == 1
    with pytest.raises(Exception, match="not found"):
        Registry(settings=settings).get_model("pv-broken")


def test_hard_time_limit_stops_a_training(tmp_path):
    from maestrale.training.worker import TrainingFailed, train_in_child

    settings = _settings(tmp_path)
    slow = _spec(
        name="pv-slow",
        estimator="hgb",
        params={"max_iter": 5000, "early_stopping": False, "max_leaf_nodes": 255, "learning_rate": 0.01},
        train_window={"start": "2011-04-15", "end": "2013-12-31"},
        split={"holdout": {"test_start": "2013-06-01"}},
    )
    start = time.monotonic()
    with pytest.raises(TrainingFailed, match="time limit of 2 s"):
        train_in_child(settings, slow, time_limit_s=2)
    assert time.monotonic() - start < 20


def test_redelivered_request_returns_the_same_version(tmp_path):
    from maestrale.bus.schemas import TrainRequested

    settings = _settings(tmp_path, bus_namespace=f"t{uuid.uuid4().hex[:8]}")
    svc = EmbeddedService(settings).start()
    try:
        req = TrainRequested(
            request_id=str(uuid.uuid4()), idempotency_key="same-key", spec=_spec(name="pv-twice")
        )
        from maestrale.bus.events import CloudEvent

        event = CloudEvent.create(req, subject="pv-twice", source="test")
        svc.transport.publish_events([event, CloudEvent.create(req, subject="pv-twice", source="test")])
        requests = TrainingRequests(settings.database_url)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if svc.worker.consumer.stats.handled >= 2:
                break
            time.sleep(0.1)
    finally:
        svc.stop()
    assert svc.worker.consumer.stats.handled == 2
    assert Registry(settings=settings).get_model("pv-twice").latest_version == 1
    assert requests.get(req.request_id).status == "completed"


# -- RabbitMQ: competing consumers and kill -9 -------------------------------------------------------
def _worker_env(tmp_path: Path, namespace: str, amqp_url: str) -> dict[str, str]:
    home = tmp_path / "home"
    return {
        **os.environ,
        "MAESTRALE_HOME": str(home),
        "MAESTRALE_BROKER_URL": amqp_url,
        "MAESTRALE_BUS_NAMESPACE": namespace,
    }


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "maestrale.cli.main", "worker"]
    return subprocess.Popen(
        cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.mark.slow
def test_competing_workers_on_rabbitmq(tmp_path, amqp_url):
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transports.rabbitmq import RabbitTransport

    namespace = f"t{uuid.uuid4().hex[:8]}"
    settings = _settings(tmp_path, broker_url=amqp_url, bus_namespace=namespace)
    bus = RabbitTransport(amqp_url, namespace=namespace)
    from maestrale.training.worker import TrainingWorker

    workers = [
        TrainingWorker(settings, RabbitTransport(amqp_url, namespace=namespace), worker_id=f"w{i}")
        for i in range(2)
    ]
    from maestrale.training.worker import declare_training_queue

    declare_training_queue(bus)  # before publishing: unroutable messages are dropped by the exchange
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        requests = TrainingRequests(settings.database_url)
        fleet = _spec(name="pv-{n}", fleet={"n": ["a", "b", "c", "d"]})
        records = requests.submit(fleet)
        assert OutboxRelay(settings.database_url, bus).run_once() == 4
        done = wait_for(requests, [r.id for r in records], timeout=180)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        bus.delete()
        bus.close()
    assert [r.status for r in done] == ["completed"] * 4
    assert {r.version for r in done} == {1}
    assert {r.worker for r in done} <= {"w0", "w1"}


@pytest.mark.slow
def test_kill_9_mid_fit_is_redelivered_and_registers_exactly_one_version(tmp_path, amqp_url):
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transports.rabbitmq import RabbitTransport

    namespace = f"t{uuid.uuid4().hex[:8]}"
    env = _worker_env(tmp_path, namespace, amqp_url)
    settings = _settings(tmp_path, broker_url=amqp_url, bus_namespace=namespace)
    requests = TrainingRequests(settings.database_url)
    bus = RabbitTransport(amqp_url, namespace=namespace)
    log = tmp_path / "workers.log"
    first = _start_worker(env, log)
    second = None
    try:
        slow = _spec(
            name="pv-kill",
            estimator="hgb",
            params={"max_iter": 400, "early_stopping": False, "learning_rate": 0.02},
            train_window={"start": "2011-04-15", "end": "2013-06-30"},
            split={"holdout": {"test_start": "2013-05-01"}, "backtest": {"folds": 3, "test_size": "60D"}},
        )
        [rec] = requests.submit(slow)
        from maestrale.training.worker import declare_training_queue

        declare_training_queue(bus)
        OutboxRelay(settings.database_url, bus).run_once()
        deadline = time.monotonic() + 120
        while requests.get(rec.id).status != "started":
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            assert first.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1.0)  # mid-fit
        first_worker = requests.get(rec.id).worker
        os.killpg(first.pid, signal.SIGKILL)  # the worker and everything it started
        first.wait(10)
        assert requests.get(rec.id).status == "started"
        second = _start_worker(env, log)
        [done] = wait_for(requests, [rec.id], timeout=300)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        bus.delete()
        bus.close()
    assert done.status == "completed", log.read_text()[-3000:]
    assert done.attempts == 2 and done.worker != first_worker
    reg = Registry(settings=settings)
    assert reg.get_model("pv-kill").latest_version == 1
    assert [v.version for v in reg.list_versions("pv-kill").items] == [1]


def test_rest_submit_and_follow_a_training(tmp_path):
    from tests.conftest import start_server

    home = tmp_path / "srv"
    namespace = f"t{uuid.uuid4().hex[:8]}"
    handle = start_server(home, bus_namespace=namespace)
    settings = load_settings(home=home, bus_namespace=namespace)
    try:
        headers = {"Authorization": f"Bearer {handle.admin_token}"}
        r = httpx.post(
            f"{handle.url}/api/v1/trainings", json={"yaml": "name: x\nestimater: ridge\n"}, headers=headers
        )
        assert r.status_code == 400 and "line 2" in r.json()["error"]["message"]
        with EmbeddedService(settings):
            r = httpx.post(
                f"{handle.url}/api/v1/trainings",
                json={"yaml": yaml.safe_dump(_spec(name="pv-rest")), "reason": "api test"},
                headers=headers,
            )
            assert r.status_code == 202, r.text
            [queued] = r.json()
            assert queued["status"] == "queued" and queued["requested_by"] == "admin"
            deadline = time.monotonic() + 90
            while True:
                got = httpx.get(f"{handle.url}/api/v1/trainings/{queued['id']}", headers=headers).json()
                if got["status"] in ("completed", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        assert got["status"] == "completed" and got["version"] == 1, got
        listed = httpx.get(
            f"{handle.url}/api/v1/trainings", params={"name": "pv-rest"}, headers=headers
        ).json()
        assert [x["id"] for x in listed] == [queued["id"]]
        assert httpx.get(f"{handle.url}/api/v1/trainings/nope", headers=headers).status_code == 404
    finally:
        handle.stop()


def test_a_result_sent_just_before_the_child_exits_is_not_lost(tmp_path, monkeypatch):
    """The race seen under load: the parent's wait ends, the child sends its result and exits, and the
    parent then finds it dead ("died with exit code 0"). Forced here: the first wait sees nothing
    until the child has gone, as a slow parent would."""
    from maestrale.training import worker

    real = worker._context()

    class LateConnection:
        def __init__(self, conn, proc_box):
            self.conn, self.proc_box, self.first = conn, proc_box, True

        def poll(self, timeout=0.0):
            if self.first and timeout > 0:
                self.first = False
                self.proc_box[0].join(120)  # the child sends and exits while "we" were not looking
                return False
            return self.conn.poll(timeout)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    class Context:
        box: list = []

        def Pipe(self, duplex=True):
            parent, child = real.Pipe(duplex=duplex)
            return LateConnection(parent, self.box), child

        def Process(self, *args, **kwargs):
            proc = real.Process(*args, **kwargs)
            self.box.append(proc)
            return proc

    monkeypatch.setattr(worker, "_context", lambda: Context())
    result = worker.train_in_child(_settings(tmp_path), _spec(name="pv-late"), time_limit_s=300)
    assert result["version"] == 1
