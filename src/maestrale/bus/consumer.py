"""The consumer runtime: parse each message as an event, call the handler, ack; effectively once via SQL.

>>> from maestrale.bus import Consumer, get_transport
>>> bus = get_transport("memory://", namespace="doc-consumer")
>>> seen = []
>>> c = Consumer(bus, "audit", lambda ev: seen.append(ev.id), ["maestrale.model.*"]).start()
>>> c.stop()

Delivery is at least once. A handler whose effect lives in the SQL database gets it once with
`Consumer.transactional(bus, "monitor", handle, types, engine)`: the handler runs inside a
transaction that also records `(consumer, event id)` in the ledger (`maestrale.platform.ledger`),
and a redelivered event finds its row and is skipped. Other handlers must be idempotent by themselves.

What a handler's exception does (the rule lives in `maestrale.bus.failures`, for every transport):

- permanent, the event or what it asks is wrong: `InvalidInput` (`MalformedEvent`, `SpecError`,
  `DataError`, `InvalidName`) and `PermanentFailure` (`TrainingFailed`). Dead-lettered at once, with
  one log line giving the reason; no retry, no traceback.
- transient, the outside world failed: `BackendUnavailable`, connection and time-out errors, the
  database's `OperationalError`. Retried after `RetryPolicy.delays` (one log line per attempt), then
  dead-lettered.
- anything else, unknown (a bug?): retried like a transient error, logged with its traceback.

A handler that knows more reports it itself: the training worker turns any non-transient failure of
a training into `train.failed` at once and raises `TrainingFailed`, so the request is dead-lettered
on its first attempt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict, Unpack

from sqlalchemy import Connection, Engine

from maestrale.bus.events import CloudEvent, parse_event
from maestrale.bus.failures import is_permanent, is_transient
from maestrale.bus.transport import Delivery, RetryPolicy, Transport
from maestrale.platform.db import HEAD_REVISION, current_revision, ensure_schema, writer
from maestrale.platform.ledger import mark_processed
from maestrale.platform.pruning import Pruner, Retention

log = logging.getLogger(__name__)
Handler = Callable[[CloudEvent], None]
TransactionalHandler = Callable[[CloudEvent, Connection], None]


class ConsumerOptions(TypedDict, total=False):
    """The keyword options of `Consumer` that `Consumer.transactional` passes on."""

    retry: RetryPolicy | None
    prefetch: int
    concurrency: int
    parse: Callable[[bytes], CloudEvent]


@dataclass
class ConsumerStats:
    """What a consumer did: handled events, duplicates skipped, handler failures."""

    handled: int = 0
    duplicates: int = 0
    failures: int = 0
    redelivered: int = 0


class Consumer:
    """Consume `types` (event types or patterns like `maestrale.model.*`) from queue `name`.

    `Consumer(bus, "trainer", handle, ["maestrale.train.requested"]).run(stop)` blocks;
    `.start()` runs it in a daemon thread and `.stop()` ends it. Competing consumers share a
    `name`; each distinct `name` gets its own copy of every matching event. `prefetch` bounds the
    unacked messages held; `concurrency` handler threads run at once (0: on the connection's thread,
    for quick handlers only).
    """

    def __init__(
        self,
        transport: Transport,
        name: str,
        handler: Handler,
        types: Sequence[str],
        *,
        retry: RetryPolicy | None = None,
        prefetch: int = 32,
        concurrency: int = 1,
        handler_name: str | None = None,
        parse: Callable[[bytes], CloudEvent] = parse_event,
    ) -> None:
        self.transport, self.name, self.handler, self.types = transport, name, handler, list(types)
        # `parse` turns a body into an event; a consumer that validates record by record (the
        # monitor's ingest) passes a lenient one, so one bad record does not dead-letter its batch.
        self.parse = parse
        self.retry = retry or RetryPolicy()
        self.prefetch, self.concurrency = prefetch, concurrency
        self.handler_name = handler_name or _qualname(handler)
        self.stats = ConsumerStats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._declared = False

    @classmethod
    def transactional(
        cls,
        transport: Transport,
        name: str,
        handler: TransactionalHandler,
        types: Sequence[str],
        engine: Engine | str,
        retention: Retention | None = None,
        **options: Unpack[ConsumerOptions],
    ) -> Consumer:
        """A consumer whose `handler(event, conn)` runs in one transaction with its ledger row.

        The ledger is kept bounded: after an event, at most every `retention.every`, ids older than
        `retention.processed` are deleted (`maestrale.platform.pruning`; default: the settings').

        >>> def count(ev, conn):  # doctest: +SKIP
        ...     conn.execute(insert(seen).values(event_id=ev.id))
        >>> Consumer.transactional(bus, "counter", count, ["maestrale.#"], engine).start()  # doctest: +SKIP
        """
        if isinstance(engine, str):
            engine = ensure_schema(engine)
        elif current_revision(engine) != HEAD_REVISION:
            ensure_schema(engine.url.render_as_string(hide_password=False))
        write = writer(engine)
        consumer = cls(transport, name, lambda ev: None, types, handler_name=_qualname(handler), **options)
        pruner = Pruner(engine, retention, outbox=False)  # the outbox is the relay's to prune

        def once(event: CloudEvent) -> None:
            with write.begin() as conn:
                if not mark_processed(conn, name, event.id):
                    with consumer._lock:
                        consumer.stats.duplicates += 1
                    return
                handler(event, conn)
            pruner.maybe_run()  # after the commit, outside the effect's transaction; never raises

        consumer.handler = once
        return consumer

    def declare(self) -> None:
        """Create the queue, its bindings, retry queues and DLQ (run() does it too)."""
        self.transport.declare(self.name, self.types, self.retry)
        self._declared = True

    def _on_delivery(self, delivery: Delivery) -> None:
        # MalformedEvent propagates: the transport dead-letters it at once and carries on.
        event = self.parse(delivery.body)
        if delivery.redelivered:
            with self._lock:
                self.stats.redelivered += 1
        try:
            self.handler(event)
        except Exception as exc:
            with self._lock:
                self.stats.failures += 1
            # A permanent error is logged once, by the transport, as it dead-letters the message.
            if not is_permanent(exc):
                log.warning(
                    "handler %s failed on %s %s (attempt %d of %d): %s: %s", self.handler_name,
                    event.type, event.id, delivery.attempt, self.retry.max_attempts, type(exc).__name__, exc,
                    exc_info=not is_transient(exc),  # a known outage needs no traceback; a surprise does
                )  # fmt: skip
            raise
        with self._lock:
            self.stats.handled += 1

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` (or `.stop()`) is set; reconnects by itself when the broker goes away."""
        stop = stop or self._stop
        if not self._declared:
            self.declare()
        self.transport.consume(
            self.name,
            self._on_delivery,
            handler=self.handler_name,
            stop=stop,
            retry=self.retry,
            prefetch=self.prefetch,
            concurrency=self.concurrency,
        )

    def start(self) -> Consumer:
        """Declare (so nothing published from now on is missed), then consume in a daemon thread."""
        self.declare()
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"consumer-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming; running handlers finish and ack first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _qualname(fn: object) -> str:
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}.{name}" if module else name
