"""Fixtures of the bus tests: the real RabbitMQ at 127.0.0.1:5672 and the in-process transport.

Every test gets its own namespace (a uuid): its exchange and queues are deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

AMQP_URL = os.environ.get("MAESTRALE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2F")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def rabbit_up(url: str = AMQP_URL) -> bool:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """The RabbitMQ the machine runs; fails (not skips) with how to start it when it is down."""
    if not rabbit_up():
        pytest.fail(f"RabbitMQ at {AMQP_URL} is not reachable; start it with `rabbitmq-server -detached`")
    return AMQP_URL


@pytest.fixture
def rabbit(amqp_url: str) -> Iterator:
    """A RabbitTransport in a fresh namespace; its queues and exchange are deleted afterwards."""
    from maestrale.bus.transports.rabbitmq import RabbitTransport

    bus = RabbitTransport(amqp_url, namespace=f"test-{uuid.uuid4().hex[:10]}", publish_timeout=20)
    yield bus
    bus.delete()
    bus.close()


@pytest.fixture
def memory_bus() -> Iterator:
    """A MemoryTransport in a fresh namespace."""
    from maestrale.bus.transports.memory import MemoryTransport

    bus = MemoryTransport(namespace=f"test-{uuid.uuid4().hex[:10]}", poll_interval=0.01)
    yield bus
    bus.delete()


@pytest.fixture(params=["memory", "rabbitmq"])
def bus(request: pytest.FixtureRequest):
    """Each transport in turn: the behaviour under test must be the same on both."""
    return request.getfixturevalue({"memory": "memory_bus", "rabbitmq": "rabbit"}[request.param])


@pytest.fixture
def rabbitmqctl() -> Iterator[Callable[[str], None]]:
    """`ctl("stop_app")` / `ctl("start_app")` on the local node; always restarted afterwards."""
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail(
            "rabbitmqctl is not on PATH: this test stops and restarts the local RabbitMQ with "
            "`rabbitmqctl stop_app/start_app` (Debian package rabbitmq-server, usually /usr/sbin)"
        )

    def ctl(command: str) -> None:
        subprocess.run([exe, command], check=True, capture_output=True, timeout=120)

    try:
        yield ctl
    finally:
        subprocess.run([exe, "start_app"], check=False, capture_output=True, timeout=120)
        wait_for(rabbit_up, 60, "RabbitMQ to accept connections again")
