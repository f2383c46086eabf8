"""The training service in one process: worker + outbox relay threads, and waiting for requests.

In embedded mode (`memory://` bus) nothing else would consume `train.requested`, so `maestrale train`
starts an `EmbeddedService` for its own lifetime; against RabbitMQ the workers are separate
processes (`maestrale worker`) and the CLI only submits, relays and waits.

>>> with EmbeddedService(settings):  # doctest: +SKIP
...     records = TrainingRequests(settings.database_url).submit(spec)
...     wait_for(TrainingRequests(settings.database_url), [r.id for r in records])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from maestrale.config import Settings
from maestrale.training.requests import TrainingRecord, TrainingRequests


class EmbeddedService:
    """Runs a training worker and the outbox relay in background threads of this process."""

    def __init__(self, settings: Settings, *, concurrency: int = 1, relay_interval: float = 0.05) -> None:
        from maestrale.bus.relay import OutboxRelay
        from maestrale.bus.transport import get_transport
        from maestrale.training.worker import TrainingWorker

        assert settings.database_url
        self.transport = get_transport(settings.broker_url, settings.bus_namespace)
        self.worker = TrainingWorker(settings, self.transport, concurrency=concurrency)
        self.relay = OutboxRelay(settings.database_url, self.transport)
        self.relay_interval = relay_interval
        self._stop = threading.Event()
        self._relay_thread: threading.Thread | None = None

    def start(self) -> EmbeddedService:
        """Declare the queue, start consuming, start relaying."""
        self.worker.start()
        self._stop.clear()
        self._relay_thread = threading.Thread(
            target=self.relay.run, args=(self._stop, self.relay_interval), name="outbox-relay", daemon=True
        )
        self._relay_thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying and consuming (a running training finishes first)."""
        self._stop.set()
        if self._relay_thread is not None:
            self._relay_thread.join(10)
        self.worker.stop()
        self.transport.close()

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(
    requests: TrainingRequests | Any,
    ids: Sequence[str],
    *,
    timeout: float | None = None,
    poll: float = 0.2,
    on_change: Callable[[list[TrainingRecord]], None] | None = None,
) -> list[TrainingRecord]:
    """Poll until every request completed or failed (or `timeout` s passed); returns them in order.

    `requests` is anything with `get(id) -> TrainingRecord` (the table, or the REST client).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: list[str] = []
    while True:
        records = [requests.get(i) for i in ids]
        state = [f"{r.status}:{r.version}" for r in records]
        if state != last and on_change is not None:
            on_change(records)
        last = state
        if all(r.done for r in records) or (deadline is not None and time.monotonic() >= deadline):
            return records
        time.sleep(poll)
