"""Monitor and training talk over the bus only (memory:// and RabbitMQ).

The monitor publishes `train.requested` from its outbox and learns the outcome from `train.completed`
/ `train.failed` into its own table; a stand-in training service here consumes the real work queue
and answers with the real events. The training service, for its part, accepts a request it has no
row for (the monitor writes none) and creates it once, however often it is delivered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from maestrale import Registry
from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.schemas import TrainCompleted, TrainFailed, TrainRequested
from maestrale.bus.topology import TRAINING
from maestrale.config import Settings, load_settings
from maestrale.monitoring import retraining
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.schema import monitor_retrainings
from maestrale.monitoring.service import MonitorService
from maestrale.training.requests import TrainingRequests
from maestrale.training.tables import trainings
from tests.conftest import fresh_pg_database
from tests.integration.conftest import AMQP_URL
from tests.integration.test_monitoring_loop import POLICY, START, log_day, register


@pytest.fixture(params=["memory", "rabbitmq"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    bus = request.getfixturevalue({"memory": "memory_bus", "rabbitmq": "rabbit"}[request.param])
    broker = "memory://" if request.param == "memory" else AMQP_URL
    yield load_settings(home=tmp_path / "home", broker_url=broker, bus_namespace=bus.namespace)


class StandInTraining:
    """Consumes the training queue as `maestrale worker` would; registers `factor` or fails."""

    def __init__(self, settings: Settings, registry: Registry, *, fail: bool = False) -> None:
        from maestrale.bus.transport import get_transport

        self.transport = get_transport(settings.broker_url, settings.bus_namespace)
        self.registry, self.fail = registry, fail
        self.received: list[TrainRequested] = []
        self.consumer = Consumer(
            self.transport, TRAINING.name, self.handle, TRAINING.patterns, retry=TRAINING.retry
        )

    def handle(self, event: CloudEvent) -> None:
        req = event.payload
        assert isinstance(req, TrainRequested)
        self.received.append(req)
        name = str(req.spec["name"])
        if self.fail:
            outcome = TrainFailed(request_id=req.request_id, error="bad data", error_type="DataError",
                                  worker="stand-in", attempts=1)  # fmt: skip
        else:
            version = register(self.registry, 0.8, START + timedelta(days=5))
            outcome = TrainCompleted(request_id=req.request_id, name=name, version=version, duration_s=0.1)
        self.transport.publish_event(CloudEvent.create(outcome, subject=name, source="test/training"))

    def __enter__(self) -> StandInTraining:
        self.consumer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.transport.close()


def breach_and_request(svc: MonitorService, reg: Registry) -> str:
    """A 20% capacity loss from day 3: the shortfall condition asks for a retraining."""
    v1 = register(reg, 1.0, START)
    reg.set_alias("pv-synth", "champion", v1)
    champion = reg.load(f"pv-synth:{v1}")
    for day in range(0, 8):
        log_day(svc.store, v1, champion, day, loss=0.2 if day >= 3 else 0.0)
        for result in svc.monitor.tick():
            if result.retrain_request:
                return result.retrain_request
    raise AssertionError("no retraining requested")


def trainings_rows(settings: Settings) -> int:
    svc_engine = TrainingRequests(settings.database_url or "").engine
    with svc_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(trainings)).scalar() or 0)


def test_a_retraining_goes_out_and_its_completion_comes_back_over_the_bus(settings: Settings):
    reg = Registry(settings=settings)
    policy = load_policy(POLICY)
    with (
        MonitorService(settings, policies=[policy], interval=None, relay_interval=0.05) as svc,
        StandInTraining(settings, reg) as training,
    ):
        request_id = breach_and_request(svc, reg)
        rec = svc.wait_retraining(request_id, timeout=60)
    assert rec.status == "completed" and rec.version == 2 and rec.model == "pv-synth"
    [received] = training.received  # published by the monitor's relay, from its outbox
    assert received.request_id == request_id and received.requested_by == "monitor"
    assert received.parent_version == 1 and received.spec["split"]["refit"] is True
    assert reg.get_model("pv-synth").aliases["challenger"] == 2  # adopted on train.completed
    state = svc.store.state("pv-synth")
    assert state["retrain_status"] == "completed" and state["challenger_since"] is not None
    assert trainings_rows(settings) == 0  # the monitor wrote no row of the training service's


def test_a_failed_retraining_frees_the_model_for_the_next_request(settings: Settings):
    reg = Registry(settings=settings)
    with (
        MonitorService(settings, policies=[load_policy(POLICY)], interval=None, relay_interval=0.05) as svc,
        StandInTraining(settings, reg, fail=True),
    ):
        request_id = breach_and_request(svc, reg)
        rec = svc.wait_retraining(request_id, timeout=60)
        assert rec.status == "failed" and rec.error == "DataError: bad data"
        state = svc.store.state("pv-synth")
        assert state["retrain_status"] == "failed" and state["last_retrain_request"] is None
        assert "challenger" not in reg.get_model("pv-synth").aliases
        # an outcome of a request the monitor did not make (a person's) is none of its business
        other = TrainCompleted(request_id=str(uuid.uuid4()), name="pv-synth", version=1, duration_s=1)
        svc.handle_outcome(CloudEvent.create(other, subject="pv-synth", source="test"))
        assert [r.request_id for r in retraining.history(svc.store.engine, "pv-synth")] == [request_id]


def test_a_request_without_outcome_is_given_up_after_max_wait(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home", bus_namespace=f"t{uuid.uuid4().hex[:8]}")
    reg = Registry(settings=settings)
    with MonitorService(settings, policies=[load_policy(POLICY)], interval=None, relay=False) as svc:
        request_id = breach_and_request(svc, reg)  # no training service: no outcome will come
        assert svc.monitor.adopt("pv-synth") is None
        assert svc.store.state("pv-synth")["retrain_status"] == "requested"  # still waiting
        month = timedelta(days=30)  # past the policy's max_wait (10D) in data time and in wall time
        rec = retraining.get(svc.store.engine, request_id)
        assert rec is not None
        with svc.store._writer.begin() as conn:
            r = monitor_retrainings
            conn.execute(
                update(r).where(r.c.request_id == request_id)
                .values(as_of=rec.as_of - month, requested_at=rec.requested_at - month)
            )  # fmt: skip
        assert svc.monitor.adopt("pv-synth") is None
    state = svc.store.state("pv-synth")
    assert state["retrain_status"] == "lost" and state["last_retrain_request"] is None
    assert "no outcome from the training service within 10 days" in state["retrain_note"]
    rec = retraining.get(svc.store.engine, request_id)
    assert rec is not None and rec.status == "lost"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_training_service_adopts_a_request_without_a_row_once(backend: str, tmp_path: Path):
    req = TrainRequested(request_id=str(uuid.uuid4()), idempotency_key="monitor/pv/1", spec={"name": "pv"},
                         requested_by="monitor", parent_version=3)  # fmt: skip
    if backend == "sqlite":
        requests = TrainingRequests(f"sqlite:///{tmp_path}/t.db")
        requests.adopt(req, "pv")
        requests.adopt(req, "pv")  # a redelivery, or a second worker given it
    else:
        with fresh_pg_database("maestrale_adopt") as url:
            requests = TrainingRequests(url)
            requests.adopt(req, "pv")
            requests.adopt(req, "pv")
            record = requests.get(req.request_id)
    if backend == "sqlite":
        record = requests.get(req.request_id)
        assert len(requests.list(name="pv")) == 1
    assert (record.status, record.requested_by, record.parent_version) == ("queued", "monitor", 3)
