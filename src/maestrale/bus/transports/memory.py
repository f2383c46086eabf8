"""In-process transport: the one-machine bus and the test double, with RabbitMQ's semantics.

Every `MemoryTransport` of one namespace in a process shares one broker, so the outbox relay, the
training worker and the monitor of `maestrale demo` talk as they would over RabbitMQ. Nothing
survives the process: that is the embedded trade-off (the outbox still holds unsent registry events).

Unlike RabbitMQ's publishers, this one never declares a work queue itself (`maestrale.bus.topology`):
a queue of this process that no consumer of this process drains would hold the events until exit
and then lose them. A work event that no declared queue takes raises `Unroutable` instead, so the
outbox keeps it and the SDK says so (`maestrale.log_predictions` stores straight into the monitor's
database when no monitor consumes here).

>>> from maestrale.bus.transports.memory import MemoryTransport
>>> bus = MemoryTransport("doc-memory")
>>> bus.declare("audit", ["maestrale.#"])
>>> bus.delete()
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maestrale.bus.topology import is_work
from maestrale.bus.transport import (
    H_ATTEMPT,
    H_ERROR,
    H_ERROR_TYPE,
    H_FAILED_AT,
    H_HANDLER,
    H_QUEUE,
    H_ROUTING_KEY,
    Callback,
    DeadLetter,
    Delivery,
    Message,
    RetryPolicy,
    Transport,
    error_text,
    is_permanent,
    topic_matches,
)
from maestrale.errors import NotFound

log = logging.getLogger(__name__)
_DLQ_HEADERS = (H_ERROR, H_ERROR_TYPE, H_HANDLER, H_FAILED_AT, H_QUEUE)
__all__ = ["MemoryTransport", "topic_matches"]


@dataclass(slots=True)
class _Item:
    routing_key: str
    body: bytes
    message_id: str | None
    headers: dict[str, Any]
    redelivered: bool = False


@dataclass
class _Queue:
    patterns: list[str]
    ready: deque[_Item] = field(default_factory=deque)
    delayed: list[tuple[float, int, _Item]] = field(default_factory=list)  # (due, seq, item) heap
    cond: threading.Condition = field(default_factory=threading.Condition)
    consumers: int = 0  # consume() loops running on this queue (guarded by `cond`)

    def put(self, item: _Item, delay: float = 0.0) -> None:
        with self.cond:
            if delay > 0:
                heapq.heappush(self.delayed, (time.monotonic() + delay, next(_seq), item))
            else:
                self.ready.append(item)
            self.cond.notify()

    def get(self, timeout: float) -> _Item | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                now = time.monotonic()
                while self.delayed and self.delayed[0][0] <= now:  # retries whose delay is over
                    self.ready.append(heapq.heappop(self.delayed)[2])
                if self.ready:
                    return self.ready.popleft()
                if now >= deadline:
                    return None
                wake = min(deadline, self.delayed[0][0]) if self.delayed else deadline
                self.cond.wait(wake - now)


_seq = itertools.count()


class _Broker:
    """The shared state of one namespace: queues (incl. `.dlq`) by logical name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}


_brokers: dict[str, _Broker] = {}
_brokers_lock = threading.Lock()


class MemoryTransport(Transport):
    """`MemoryTransport("maestrale")`: thread-safe, shared per namespace within the process."""

    in_process = True
    unroutable_hint = (
        " in this process: the in-process bus (memory://) reaches only the consumers of the process "
        "that publishes; set MAESTRALE_BROKER_URL=amqp://… for services in other processes"
    )

    def __init__(self, namespace: str = "maestrale", poll_interval: float = 0.05) -> None:
        super().__init__(namespace)
        self.poll_interval = poll_interval
        with _brokers_lock:
            self._broker = _brokers.setdefault(namespace, _Broker())

    def _queue(self, queue: str) -> _Queue:
        with self._broker.lock:
            q = self._broker.queues.get(queue)
        if q is None:
            raise NotFound(f"queue {self.queue_name(queue)!r} does not exist; a consumer declares it")
        return q

    def declare(self, queue: str, patterns: Sequence[str], retry: RetryPolicy | None = None) -> None:
        with self._broker.lock:
            q = self._broker.queues.setdefault(queue, _Queue(list(patterns)))
            for p in patterns:  # like AMQP, re-declaring adds bindings and never removes them
                if p not in q.patterns:
                    q.patterns.append(p)
            self._broker.queues.setdefault(f"{queue}.dlq", _Queue([]))

    def publish(self, messages: Sequence[Message]) -> None:
        with self._broker.lock:
            targets = list(self._broker.queues.values())
        lost = []
        for m in messages:
            routed = False
            for q in targets:
                if any(topic_matches(p, m.routing_key) for p in q.patterns):
                    q.put(_Item(m.routing_key, m.body, m.message_id, {**m.headers, H_ATTEMPT: 1}))
                    routed = True
            if not routed and is_work(m.routing_key):
                lost.append(m)
        if lost:
            raise self.unroutable(lost)

    def consumer_count(self, queue: str) -> int | None:
        with self._broker.lock:
            q = self._broker.queues.get(queue)
        if q is None:
            return None
        with q.cond:
            return q.consumers

    def consume(
        self,
        queue: str,
        callback: Callback,
        *,
        handler: str,
        stop: threading.Event,
        retry: RetryPolicy | None = None,
        prefetch: int = 32,
        concurrency: int = 1,
    ) -> None:
        policy = retry or RetryPolicy()
        q, dlq = self._queue(queue), self._queue(f"{queue}.dlq")

        def work() -> None:
            while not stop.is_set():
                item = q.get(self.poll_interval)
                if item is None:
                    continue
                attempt = int(item.headers.get(H_ATTEMPT, 1))
                delivery = Delivery(
                    item.body, item.routing_key, attempt, item.redelivered, item.message_id, item.headers
                )
                try:
                    callback(delivery)
                except Exception as exc:
                    permanent = is_permanent(exc)
                    if permanent or attempt >= policy.max_attempts:
                        dlq.put(_dead(item, queue, handler, exc, attempt))
                        log.warning(
                            "dead-lettered %s from %s after %d attempt(s)%s: %s", item.message_id, queue,
                            attempt, " (permanent error: not retried)" * permanent, error_text(exc),
                        )  # fmt: skip
                    else:
                        retry_headers = {**item.headers, H_ATTEMPT: attempt + 1, H_ERROR: error_text(exc)}
                        q.put(_Item(item.routing_key, item.body, item.message_id, retry_headers),
                              policy.delay(attempt))  # fmt: skip
                except BaseException:
                    item.redelivered = True  # the process is going down: put it back, as a lost ack would
                    q.put(item)
                    raise

        threads = [
            threading.Thread(target=work, name=f"maestrale-bus-{queue}-{i}", daemon=True)
            for i in range(max(1, concurrency))
        ]
        with q.cond:
            q.consumers += 1
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            with q.cond:
                q.consumers -= 1

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        dlq = self._queue(f"{queue}.dlq")
        with dlq.cond:
            items = list(itertools.islice(dlq.ready, limit))
        return [_as_dead_letter(queue, i) for i in items]

    def replay(self, queue: str, limit: int | None = None) -> int:
        q, dlq = self._queue(queue), self._queue(f"{queue}.dlq")
        moved = 0
        with dlq.cond:
            count = len(dlq.ready) if limit is None else min(limit, len(dlq.ready))
            items = [dlq.ready.popleft() for _ in range(count)]
        for item in items:
            headers = {k: v for k, v in item.headers.items() if k not in _DLQ_HEADERS}
            q.put(_Item(item.routing_key, item.body, item.message_id, {**headers, H_ATTEMPT: 1}))
            moved += 1
        return moved

    def queues(self) -> list[str]:
        with self._broker.lock:
            return sorted(n for n in self._broker.queues if not n.endswith(".dlq"))

    def delete(self, queues: Iterable[str] | None = None) -> None:
        with self._broker.lock:
            names = list(self._broker.queues) if queues is None else list(queues)
            for n in names:
                self._broker.queues.pop(n, None)
                self._broker.queues.pop(f"{n}.dlq", None)
        if queues is None:
            with _brokers_lock:
                if _brokers.get(self.namespace) is self._broker:
                    del _brokers[self.namespace]
                self._broker = _brokers.setdefault(self.namespace, _Broker())

    def depth(self, queue: str) -> int:
        """Messages waiting in a queue (ready + waiting for a retry): `bus.depth("trainer.dlq")`."""
        q = self._queue(queue)
        with q.cond:
            return len(q.ready) + len(q.delayed)


def _dead(item: _Item, queue: str, handler: str, exc: BaseException, attempt: int) -> _Item:
    headers = {
        **item.headers,
        H_ATTEMPT: attempt,
        H_ERROR: error_text(exc),
        H_ERROR_TYPE: type(exc).__name__,
        H_HANDLER: handler,
        H_QUEUE: queue,
        H_ROUTING_KEY: item.routing_key,
        H_FAILED_AT: datetime.now(UTC).isoformat(),
    }
    return _Item(item.routing_key, item.body, item.message_id, headers)


def _as_dead_letter(queue: str, item: _Item) -> DeadLetter:
    h = item.headers
    failed = h.get(H_FAILED_AT)
    return DeadLetter(
        queue=queue,
        routing_key=item.routing_key,
        body=item.body,
        error=str(h.get(H_ERROR, "")),
        error_type=str(h.get(H_ERROR_TYPE, "")),
        handler=str(h.get(H_HANDLER, "")),
        attempts=int(h.get(H_ATTEMPT, 0)),
        failed_at=datetime.fromisoformat(failed) if failed else None,
        message_id=item.message_id,
    )
