"""Hostile training specs against a real REST server and a real training worker on the bus.

A write token is all an attacker needs to POST a spec, and anyone who can publish on the broker can
skip the API altogether: the REST API refuses early (400, nothing queued), and the worker refuses
every request itself before it imports, calls or reads anything (`train.failed` at once, no retry).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from maestrale.bus.events import CloudEvent, parse_event
from maestrale.bus.schemas import TrainFailed, TrainRequested
from maestrale.bus.transport import Transport
from maestrale.config import Settings, load_settings
from maestrale.training.requests import TrainingRecord, TrainingRequests
from maestrale.training.worker import TrainingWorker, declare_training_queue
from tests.conftest import ServerHandle

BASE = {
    "data": {"dataset": "nrel_system50"},
    "target": "power_kw",
    "features": ["ghi", "temp_air"],
    "estimator": "ridge",
    "train_window": {"start": "2011-06-01", "end": "2011-06-30"},
    "split": {"holdout": {"test_start": "2011-06-24"}},
}


def evil(canary: Path, **changes: Any) -> dict[str, Any]:
    """`estimator: os:system` with a command that leaves `canary` behind if it ever runs."""
    spec = {**BASE, "name": "pv-evil", "estimator": "os:system", "params": {"command": f"touch {canary}"}}
    return {**spec, **changes}


# one hostile spec per kind of code reference; each would touch the canary (or worse) if called
CODE_REFS = {
    "os:system": {},
    "builtins:exec": {"estimator": "builtins:exec", "params": {"source": "open('{canary}', 'w')"}},
    "subprocess:Popen": {"estimator": "subprocess:Popen", "params": {"args": ["touch", "{canary}"]}},
    "dunder": {"estimator": "sklearn.linear_model:__class__", "params": {}},
    "feature_set": {"estimator": "ridge", "params": {}, "features": None, "feature_set": "os:system"},
}


def code_ref(canary: Path, kind: str) -> dict[str, Any]:
    changes = yaml.safe_load(yaml.safe_dump(CODE_REFS[kind]).replace("{canary}", str(canary)))
    return {k: v for k, v in evil(canary, **changes).items() if v is not None}


def post(server: ServerHandle, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    return httpx.post(f"{server.url}/api/v1/trainings", json=body, headers=headers, timeout=30)


def queued(server: ServerHandle) -> list[Any]:
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    return httpx.get(f"{server.url}/api/v1/trainings", headers=headers, timeout=30).json()


def refused(response: httpx.Response, *needles: str) -> str:
    """The message of a 400 in the API's envelope, checked to contain every needle."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid"
    for needle in needles:
        assert needle in error["message"], error["message"]
    return str(error["message"])


# -- REST -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(CODE_REFS))
@pytest.mark.parametrize("form", ["spec", "yaml"])
def test_rest_refuses_code_references_with_400_and_runs_nothing(
    server: ServerHandle, tmp_path: Path, kind: str, form: str
):
    canary = tmp_path / "canary"
    spec = code_ref(canary, kind)
    body = {"spec": spec} if form == "spec" else {"yaml": yaml.safe_dump(spec, sort_keys=False)}
    message = refused(post(server, body), "estimator" if kind != "feature_set" else "feature_set")
    assert "line " in message if form == "yaml" else "line " not in message
    assert not canary.exists() and queued(server) == []


@pytest.mark.parametrize("path", ["/etc/hostname.yaml", "../../x.yaml", "REAL"])
def test_rest_reads_no_file_for_a_yaml_that_looks_like_a_path(
    server: ServerHandle, tmp_path: Path, path: str
):
    real = tmp_path / "spec.yaml"
    real.write_text(yaml.safe_dump({**BASE, "name": "pv-real", "description": "MARKER-7f3a"}))
    if path == "REAL":
        path = str(real)
    message = refused(post(server, {"yaml": path}), "a spec is a YAML mapping")
    assert "MARKER-7f3a" not in message and "pv-real" not in message
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in message
    assert queued(server) == []


def test_rest_answers_400_listing_the_problems_of_a_bad_json_spec(server: ServerHandle):
    message = refused(post(server, {"spec": {}}), "4 problems", "name: required field", "estimator: required")
    assert "data: required field" in message and "target: required field" in message
    refused(post(server, {"spec": {**BASE, "name": "pv", "split": {"holdout": {}}}}), "split.holdout")
    deep: dict[str, Any] = {}
    for _ in range(500):
        deep = {"x": deep}
    refused(post(server, {"spec": {**BASE, "name": "pv", "params": deep}}), "nests deeper than 64 levels")


def test_rest_refuses_a_yaml_bomb_in_milliseconds(server: ServerHandle):
    bomb = (
        yaml.safe_dump({**BASE, "name": "pv"}) + 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    )
    for i in range(1, 7):
        bomb += f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]\n"
    started = time.perf_counter()
    refused(post(server, {"yaml": bomb}), "expands to more than 100,000 nodes")
    assert time.perf_counter() - started < 1.0


def test_rest_applies_the_data_source_policy(server: ServerHandle, tmp_path: Path):
    def with_data(data: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {**BASE, "name": "pv", "data": data}}

    refused(post(server, with_data({"uri": "/etc/passwd"})), "data.uri", "MAESTRALE_DATA_SOURCES")
    message = refused(post(server, with_data({"uri": "${PATH}"})), "${PATH}", "MAESTRALE_SPEC_ENV")
    assert os.environ["PATH"] not in message
    literal = with_data({"uri": "abfs://lake/pv/x.parquet", "storage_options": {"account_name": "x"}})
    refused(post(server, literal), "data.storage_options.account_name", "literal")
    refused(
        post(server, with_data({"sql": {"url": "sqlite:////etc/x.db", "query": "SELECT 1"}})), "data.sql.url"
    )
    assert queued(server) == []


# -- the worker, reached straight over the bus --------------------------------------------------------
@contextmanager
def running_worker(settings: Settings, transport: Transport) -> Iterator[list[Any]]:
    """A TrainingWorker consuming `transport`, and the train.completed/failed events it publishes."""
    declare_training_queue(transport)
    transport.declare("observer", ["maestrale.train.failed", "maestrale.train.completed"])
    seen: list[Any] = []
    stop = threading.Event()
    worker = TrainingWorker(settings, transport, worker_id="trust-test")
    observer = threading.Thread(
        target=transport.consume, args=("observer", lambda d: seen.append(parse_event(d.body).payload)),
        kwargs={"handler": "observer", "stop": stop}, daemon=True,
    )  # fmt: skip
    threads = [threading.Thread(target=worker.run, args=(stop,), daemon=True), observer]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def publish_and_wait(settings: Settings, transport: Transport, spec: dict[str, Any]) -> TrainingRecord:
    """Publish `train.requested` as a plain client would (no row, no REST) and wait for the outcome."""
    request = TrainRequested(request_id=str(uuid.uuid4()), idempotency_key=str(uuid.uuid4()), spec=spec)
    transport.publish_event(CloudEvent.create(request, subject=str(spec.get("name")), source="attacker"))
    requests = TrainingRequests(settings.database_url or "")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            record = requests.get(request.request_id)
        except Exception:  # not adopted yet
            record = None
        if record is not None and record.done:
            return record
        time.sleep(0.1)
    raise AssertionError("the worker did not finish the request in 120 s")


@pytest.fixture
def worker_settings(tmp_path: Path) -> Settings:
    lake = tmp_path / "lake"
    lake.mkdir()
    return load_settings(home=tmp_path / "home", data_sources=[str(lake)])


def test_os_system_on_the_bus_fails_at_once_and_never_runs(
    bus: Transport, worker_settings: Settings, tmp_path
):
    canary = tmp_path / "canary"
    with running_worker(worker_settings, bus) as seen:
        record = publish_and_wait(worker_settings, bus, evil(canary))
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    assert record.status == "failed" and record.attempts == 1, record
    assert "os:system is not an estimator class" in (record.error or "")
    [event] = seen
    assert isinstance(event, TrainFailed) and event.request_id == record.id and event.attempts == 1
    assert "SpecError" in event.error
    assert not canary.exists()
    # Failed for good at once: dead-lettered on its first attempt (not retried), where operators look.
    [letter] = bus.dead_letters("training")
    assert letter.attempts == 1 and letter.error_type == "TrainingFailed" and record.id in letter.error


def hostile_on_the_bus(canary: Path, lake: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """Spec → the reason the worker must give, for every rule (each would misbehave if obeyed)."""
    outside = lake.parent / "secret.csv"
    outside.write_text("time,ghi,temp_air,power_kw\n")
    (lake / "escape.csv").symlink_to(outside)
    data = {**BASE, "name": "pv-data", "time_column": "time"}
    return {
        **{kind: (code_ref(canary, kind), "not") for kind in CODE_REFS if kind != "os:system"},
        "Bunch": ({**BASE, "name": "pv-bunch", "estimator": "sklearn.utils:Bunch"}, "not a scikit-learn"),
        "outside": ({**data, "data": {"uri": "/etc/passwd"}}, "outside the folders"),
        "dotdot": ({**data, "data": {"uri": f"{lake}/../secret.csv"}}, "outside the folders"),
        "symlink": ({**data, "data": {"uri": str(lake / "escape.csv")}}, "symlinks and '..' count"),
        "url": ({**data, "data": {"uri": "http://169.254.169.254/latest/x.csv"}}, "not under a URL prefix"),
        "env": ({**data, "data": {"uri": "${PATH}"}}, "MAESTRALE_SPEC_ENV"),
        "endpoint": (
            {**data, "data": {"uri": f"{lake}/pv.csv", "storage_options": {"endpoint_url": "http://x"}}},
            "is a literal value",
        ),
    }  # fmt: skip


def test_every_hostile_spec_on_the_bus_fails_at_once_with_its_reason(
    memory_bus: Transport, worker_settings: Settings, tmp_path: Path
):
    canary = tmp_path / "canary"
    lake = Path(worker_settings.data_sources[0])  # type: ignore[index]
    cases = hostile_on_the_bus(canary, lake)
    with running_worker(worker_settings, memory_bus):
        outcomes = {
            name: publish_and_wait(worker_settings, memory_bus, spec) for name, (spec, _) in cases.items()
        }
    for name, (_, reason) in cases.items():
        record = outcomes[name]
        assert record.status == "failed" and record.attempts == 1, (name, record)
        assert reason in (record.error or ""), (name, record.error)
        assert os.environ["PATH"] not in (record.error or "")
    assert not canary.exists()


def test_allowed_sources_still_train_through_the_worker(memory_bus: Transport, worker_settings: Settings):
    from maestrale.datasets import nrel_system50

    lake = Path(worker_settings.data_sources[0])  # type: ignore[index]
    frame = nrel_system50("1h").loc["2011-06-01":"2011-06-30", ["ghi", "temp_air", "power_kw"]]
    frame.reset_index().to_csv(lake / "pv.csv", index=False)
    spec = {
        **BASE,
        "name": "pv-lake",
        "time_column": "time",
        "data": {"uri": f"{lake}/pv.csv", "read_options": {"sep": ","}},
    }
    with running_worker(worker_settings, memory_bus):
        record = publish_and_wait(worker_settings, memory_bus, spec)
        packaged = publish_and_wait(worker_settings, memory_bus, {**BASE, "name": "pv-packaged"})
    assert (record.status, record.version) == ("completed", 1), record.error
    assert (packaged.status, packaged.version) == ("completed", 1), packaged.error
