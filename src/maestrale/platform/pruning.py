"""Growth kept bounded: published outbox rows and old processed-event ids are deleted on a schedule.

The outbox keeps every event until the relay marks it sent; the ledger (`processed_events`) keeps
every id a transactional consumer applied. Both would grow without limit. The long-running services
prune them: the outbox relay's loop (`maestrale.bus.relay.OutboxRelay.run`, one per database in
every service that relays) and each transactional consumer call `Pruner.maybe_run()`, which does
something at most once per `Retention.every`.

What goes, what stays:

- outbox: rows *sent* more than `outbox` ago (`MAESTRALE_OUTBOX_RETENTION`, 7 days). An unsent row is
  never deleted, however old: it is an event still owed to the bus.
- processed_events: ids processed more than `processed` ago (`MAESTRALE_PROCESSED_RETENTION`,
  30 days). Keep this longer than any redelivery can take (retries wait minutes; a message parked in
  a dead-letter queue and replayed by hand is the long case): a forgotten id would apply twice.

A component prunes its own tables with the same schedule and batches: it passes `tasks`, named
functions of `(engine, retention, now)` that delete with `delete_in_batches` and return how many
rows went (the monitor's finished retraining requests: `maestrale.monitoring.retraining.prune_task`).
The platform knows no component, so it never lists their tables itself.

Deletes go in batches of `batch` rows, each its own short transaction, so pruning never holds a
long lock on a busy table; one run stops after `max_batches` and the next run continues.

>>> pruner = Pruner(engine, Retention(outbox=timedelta(days=7)))  # doctest: +SKIP
>>> pruner.maybe_run()  # None until `every` has passed since the last run  # doctest: +SKIP
Pruned(outbox=1200, processed=0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, Table, delete, select, tuple_

from maestrale.platform.clock import utcnow
from maestrale.platform.db import writer
from maestrale.platform.tables import outbox, processed_events

if TYPE_CHECKING:
    from maestrale.config import Settings

log = logging.getLogger(__name__)
BATCH = 1_000
MAX_BATCHES = 100  # at most 100,000 rows per run per table: a backlog is cleared over several runs


@dataclass(frozen=True, slots=True)
class Retention:
    """How long sent outbox rows and processed-event ids are kept, and how often pruning runs."""

    outbox: timedelta = timedelta(days=7)
    processed: timedelta = timedelta(days=30)
    every: timedelta = timedelta(minutes=10)
    batch: int = BATCH
    max_batches: int = MAX_BATCHES

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """The retention the settings give (`MAESTRALE_OUTBOX_RETENTION`, `..._PROCESSED_RETENTION`, ...).

        >>> from maestrale.config import Settings
        >>> Retention.from_settings(Settings(outbox_retention="2D")).outbox
        datetime.timedelta(days=2)
        """
        return cls(
            outbox=settings.outbox_retention,
            processed=settings.processed_retention,
            every=settings.prune_every,
        )

    @classmethod
    def from_env(cls) -> Retention:
        """`from_settings` of the environment's settings (`MAESTRALE_*`)."""
        from maestrale.config import load_settings

        return cls.from_settings(load_settings())


@dataclass(frozen=True, slots=True)
class Pruned:
    """Rows deleted by one run."""

    outbox: int = 0
    processed: int = 0
    tasks: Mapping[str, int] = field(default_factory=dict)  # rows each component's task deleted


#: A component's pruning: `task(engine, retention, now)` deletes its old rows, returns how many went.
PruneTask = Callable[[Engine, Retention, datetime | None], int]


def prune_outbox(engine: Engine, older_than: timedelta, *, now: datetime | None = None,
                 batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:  # fmt: skip
    """Delete outbox rows sent before `now - older_than` (unsent rows stay); returns how many went."""
    cutoff = (now or utcnow()) - older_than
    old = select(outbox.c.id).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < cutoff)
    return delete_in_batches(engine, outbox, old.order_by(outbox.c.id), batch, max_batches)


def prune_processed(engine: Engine, older_than: timedelta, *, now: datetime | None = None,
                    batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:  # fmt: skip
    """Delete ledger rows processed before `now - older_than`; returns how many went."""
    cutoff = (now or utcnow()) - older_than
    p = processed_events
    old = select(p.c.consumer, p.c.event_id).where(p.c.processed_at < cutoff).order_by(p.c.processed_at)
    return delete_in_batches(engine, p, old, batch, max_batches)


def delete_in_batches(
    engine: Engine, table: Table, old: Select[Any], batch: int = BATCH, max_batches: int = MAX_BATCHES
) -> int:
    """Delete the rows of `table` whose primary keys `old` selects, `batch` per transaction.

    `old` selects the primary key columns, in their order, and is ordered (the oldest first); at most
    `max_batches` transactions run, so a backlog is cleared over several runs. Returns the rows deleted.

    >>> old = select(outbox.c.id).where(outbox.c.sent_at < cutoff).order_by(outbox.c.id)  # doctest: +SKIP
    >>> delete_in_batches(engine, outbox, old)  # doctest: +SKIP
    1000
    """
    # select the keys of one batch, delete those keys, commit: portable (no DELETE ... LIMIT), and
    # each transaction touches at most `batch` rows
    keys = list(table.primary_key.columns)
    total = 0
    for _ in range(max_batches):
        with writer(engine).begin() as conn:
            rows = conn.execute(old.limit(batch)).all()
            if not rows:
                break
            if len(keys) == 1:
                where = keys[0].in_([r[0] for r in rows])
            else:
                where = tuple_(*keys).in_([tuple(r) for r in rows])
            total += conn.execute(delete(table).where(where)).rowcount
        if len(rows) < batch:
            break
    return total


class Pruner:
    """Prunes one database's outbox and ledger, at most once per `retention.every` (thread-safe).

    `outbox=False` leaves the outbox alone (a transactional consumer: the outbox is the relay's),
    `processed=False` the ledger; `tasks` are the components' own prunings, run on the same schedule.
    """

    def __init__(
        self,
        engine: Engine,
        retention: Retention | None = None,
        *,
        outbox: bool = True,
        processed: bool = True,
        tasks: Mapping[str, PruneTask] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.retention = retention or Retention.from_env()
        self.outbox, self.processed, self.clock = outbox, processed, clock
        self.tasks: dict[str, PruneTask] = dict(tasks or {})
        self._last: float | None = None
        self._lock = threading.Lock()

    def maybe_run(self) -> Pruned | None:
        """Prune if `retention.every` passed since the last run (the first call prunes); else None.

        A failure (the database away) is logged and retried at the next period: pruning must never
        stop the service that calls it.
        """
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.retention.every.total_seconds():
                return None
            self._last = now
        try:
            return self.run()
        except Exception as exc:
            log.warning("pruning failed (retried at the next period): %s", exc)
            return None

    def run(self, now: datetime | None = None) -> Pruned:
        """Prune now: sent outbox rows older than `retention.outbox`, ledger rows than `.processed`,
        then each task's rows.
        """
        r = self.retention
        sizes = {"batch": r.batch, "max_batches": r.max_batches}
        sent = prune_outbox(self.engine, r.outbox, now=now, **sizes) if self.outbox else 0
        done = prune_processed(self.engine, r.processed, now=now, **sizes) if self.processed else 0
        tasks = {name: task(self.engine, r, now) for name, task in self.tasks.items()}
        if sent or done:
            log.info("pruned %d sent outbox event(s) and %d processed-event id(s)", sent, done)
        for name, n in tasks.items():
            if n:
                log.info("pruned %d row(s) of %s", n, name)
        return Pruned(outbox=sent, processed=done, tasks=tasks)
