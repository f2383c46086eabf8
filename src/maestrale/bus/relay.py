"""The outbox relay: publishes the database's outbox to the bus, marking rows sent only once confirmed.

>>> from maestrale.bus import OutboxRelay, get_transport
>>> relay = OutboxRelay("sqlite:////tmp/doc-registry.db", get_transport("memory://"))
>>> relay.run_once()  # events published in this call  # doctest: +SKIP
3

Ordering and duplicates: events go out oldest first; a crash between the broker's confirm and
`mark_sent` publishes a batch again, which idempotent consumers absorb. Run one relay per database
(two would each publish every event, still correct but twice the traffic).

Nothing is marked sent that no queue took: a work event (`train.requested`) that is `Unroutable`
(the in-process bus with no worker in this process, or a RabbitMQ user that may not declare the
training queue) stays pending and goes out once its consumer exists; the rest of the batch is sent.

`run` also keeps the outbox bounded: at most every `MAESTRALE_PRUNE_EVERY` it deletes the rows sent
more than `MAESTRALE_OUTBOX_RETENTION` ago, and the processed-event ids older than
`MAESTRALE_PROCESSED_RETENTION` (`maestrale.platform.pruning`); unsent rows are never deleted.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine

from maestrale.bus.events import CloudEvent, MalformedEvent, validate_payload
from maestrale.bus.transport import Message, Transport, Unroutable
from maestrale.errors import ConfigError
from maestrale.platform.pruning import Pruner, Retention

log = logging.getLogger(__name__)


@runtime_checkable
class OutboxSource(Protocol):
    """Where pending events come from: `SqlStore` has both methods."""

    def pending_events(self, limit: int = 500) -> list[dict[str, Any]]: ...

    def mark_sent(self, event_ids: list[str]) -> None: ...


class _EngineOutbox:
    def __init__(self, engine: Engine) -> None:
        from maestrale.platform.db import writer

        self.engine, self.write_engine = engine, writer(engine)

    def pending_events(self, limit: int = 500) -> list[dict[str, Any]]:
        from maestrale.platform.outbox import pending_events

        return pending_events(self.engine, limit)

    def mark_sent(self, event_ids: list[str]) -> None:
        from maestrale.platform.outbox import mark_sent

        mark_sent(self.write_engine, event_ids)


def outbox_source(source: Any) -> OutboxSource:
    """An outbox from a database URL, an Engine, a `SqlStore` or an embedded `Registry`."""
    if isinstance(source, str):
        from maestrale.platform.db import ensure_schema

        return _EngineOutbox(ensure_schema(source))
    if isinstance(source, Engine):
        return _EngineOutbox(source)
    meta = getattr(source, "_meta", None)  # an embedded Registry keeps its SqlStore there
    if meta is not None and not hasattr(source, "pending_events"):
        if not hasattr(meta, "pending_events"):
            raise ConfigError(
                "the outbox relay runs next to the registry's database; a remote Registry has no outbox: "
                "run `maestrale bus relay` where MAESTRALE_DATABASE_URL points at that database"
            )
        source = meta
    if isinstance(source, OutboxSource):
        return source
    raise ConfigError(f"cannot read an outbox from {source!r}; pass a database URL, an Engine or a SqlStore")


class OutboxRelay:
    """`OutboxRelay(engine_or_store, transport).run(stop)`: publish pending outbox events forever."""

    def __init__(
        self, source: Any, transport: Transport, *, batch_size: int = 500, retention: Retention | None = None
    ) -> None:
        self.outbox = outbox_source(source)
        self.transport = transport
        self.batch_size = batch_size
        self.retention = retention  # None: the settings' (read when `run` starts)
        self.pruner: Pruner | None = None
        self.published = 0
        self.held = 0  # work events of the last batch that no queue took (still pending)
        self._warned_at = float("-inf")

    def run_once(self) -> int:
        """Publish one batch of pending events; returns how many were confirmed and marked sent.

        Raises `BackendUnavailable` when the broker does not confirm in time: the events stay pending.
        Work events that reach no queue stay pending too (counted in `held`, with a warning a minute).
        """
        rows = self.outbox.pending_events(self.batch_size)
        if not rows:
            return 0
        messages = []
        for row in rows:
            event = CloudEvent.model_validate(row)
            try:
                validate_payload(event)
            except MalformedEvent as exc:
                # Published anyway: consumers dead-letter it with this reason, where operators look.
                log.error("outbox event %s does not match its schema: %s", event.id, exc.message)
            messages.append(Message.of(event))
        held: set[str | None] = set()
        try:
            self.transport.publish(messages)
        except Unroutable as exc:  # every other message was confirmed
            held = set(exc.message_ids)
            if time.monotonic() - self._warned_at > 60:  # the relay polls every second: no flood
                self._warned_at = time.monotonic()
                log.warning("outbox relay: %s (kept in the outbox until then)", exc.message)
        sent = [m.message_id for m in messages if m.message_id and m.message_id not in held]
        self.outbox.mark_sent(sent)
        self.held = len(held)
        self.published += len(sent)
        return len(sent)

    def run(self, stop: threading.Event, interval: float = 1.0, max_backoff: float = 30.0) -> None:
        """Relay until `stop` is set: a full batch goes on at once, an empty one waits `interval` s.

        Any failure (broker or database down) is logged and retried with exponential backoff;
        unsent events simply stay in the outbox meanwhile. Between batches the outbox and the
        processed-event ids of this database are pruned on their schedule (`Pruner.maybe_run`).
        """
        engine = getattr(self.outbox, "engine", None)  # an SqlStore or a database URL/Engine has one
        if self.pruner is None and isinstance(engine, Engine):
            self.pruner = Pruner(engine, self.retention)
        failures = 0
        while not stop.is_set():
            try:
                n = self.run_once()
                failures = 0
                if self.pruner is not None:
                    self.pruner.maybe_run()  # at most every `retention.every`; never raises
            except Exception as exc:
                failures += 1
                delay = min(max_backoff, interval * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
                log.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
                stop.wait(delay)
                continue
            if n < self.batch_size:
                stop.wait(interval)
