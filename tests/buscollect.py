"""A consumer in this process that collects what reaches a queue of the in-process bus.

The embedded delivery (`maestrale.monitoring.client.deliver`) publishes prediction batches only when
a monitor consumes in the process; otherwise it stores them straight into the monitor's store. Tests
that inspect the published events run this stand-in for the monitor's consumer:

>>> with collecting(MemoryTransport("t"), "monitor", ["maestrale.prediction.logged"]) as c:  # doctest: +SKIP
...     ...  # publish
...     batches = c.payloads()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from maestrale.bus.events import parse_event
from maestrale.bus.transports.memory import MemoryTransport


class Collector:
    """The events a `collecting` consumer received, in arrival order."""

    def __init__(self, bus: MemoryTransport, queue: str) -> None:
        self.bus, self.queue = bus, queue
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def receive(self, delivery: Any) -> None:
        with self._lock:
            self.events.append(parse_event(delivery.body))

    def payloads(self, settle_s: float = 0.3) -> list[Any]:
        """The payloads received once the queue is drained (the consumer polls every 50 ms)."""
        deadline = time.monotonic() + 10
        while self.bus.depth(self.queue) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(settle_s)  # the last item taken from the queue may still be in its callback
        with self._lock:
            return [e.payload for e in self.events]


@contextmanager
def collecting(bus: MemoryTransport, queue: str, patterns: Sequence[str]) -> Iterator[Collector]:
    """Declare `queue`, consume it in a thread until the block ends; yields the `Collector`."""
    bus.declare(queue, list(patterns))
    collector, stop = Collector(bus, queue), threading.Event()
    thread = threading.Thread(
        target=bus.consume, args=(queue, collector.receive), kwargs={"handler": "test.collect", "stop": stop},
        daemon=True,
    )  # fmt: skip
    thread.start()
    deadline = time.monotonic() + 5
    while not bus.consumer_count(queue) and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield collector
    finally:
        stop.set()
        thread.join(5)
