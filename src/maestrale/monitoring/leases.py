"""Leases: several monitor processes share one fleet, and each model is evaluated by one at a time.

>>> leases = open_leases(store.engine)  # doctest: +SKIP
>>> with leases.fleet() as ours, leases.hold("pv-nrel-50") as held:  # doctest: +SKIP
...     if ours and held:
...         monitor.evaluate("pv-nrel-50", as_of)

**PostgreSQL** (any number of monitors, on any hosts): a lease is a row lock. `monitor_leases` has one
row per model; `hold` locks it with `SELECT … FOR UPDATE SKIP LOCKED` in a transaction kept open on a
connection of its own while the caller evaluates, and a monitor that finds the row locked skips the
model. The lock is PostgreSQL's, so it dies with its holder: a `kill -9` closes the socket and the
server ends the session and its locks at once; a host that vanishes is noticed by the TCP keepalives
the lease session asks for (about a minute). There is no expiry to tune, so a slow evaluation is
never taken over while it runs. Committing the lease records who held it last (`holder`, `taken_at`).

**SQLite** (one host, embedded): monitors take turns on the whole fleet. `fleet()` takes an OS lock
(`flock`) on `<database>.monitor.lock` for a tick; a second monitor finding it taken skips its tick.
The kernel releases the lock when its holder dies, so `kill -9` leaves nothing to clean up. Several
monitors on one SQLite file add no capacity (SQLite has one writer): run one, or use PostgreSQL.

Leases only say who evaluates; what makes a step evaluated once is the caller re-checking the schedule
after taking the lease (another monitor may have just evaluated the model) and `Monitor.evaluate`
writing its results and the model's clock in one transaction (a monitor killed mid-evaluation leaves
nothing behind, and the next holder evaluates that step).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, exists, select, text, update
from sqlalchemy.dialects.postgresql import insert

from maestrale.monitoring.schema import monitor_leases as leases_table

log = logging.getLogger(__name__)
# The server's view of a lease session: no idle-in-transaction timeout may end a lease while its holder
# evaluates (the session only waits), and TCP keepalives end the session of a host that vanished.
# Transaction-local (`set_config(..., true)`): the pooled session is left as it was.
_SESSION = text(
    "SELECT set_config('idle_in_transaction_session_timeout', '0', true),"
    " set_config('tcp_keepalives_idle', '30', true), set_config('tcp_keepalives_interval', '10', true),"
    " set_config('tcp_keepalives_count', '3', true)"
)


def holder_name() -> str:
    """Who holds a lease: host (the pod's name on Kubernetes) and process id, e.g. `monitor-7f9c:1`."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


class Leases(Protocol):
    """Who may evaluate what: `fleet()` for a whole tick, `hold(model)` for one model."""

    def fleet(self) -> contextlib.AbstractContextManager[bool]:
        """True if this monitor may tick now (always, except on SQLite while another monitor ticks)."""
        ...

    def hold(self, model: str) -> contextlib.AbstractContextManager[bool]:
        """True while this monitor holds `model`'s lease; False if another monitor holds it."""
        ...


class RowLeases:
    """PostgreSQL: a locked `monitor_leases` row per model held (see the module docstring)."""

    def __init__(self, engine: Engine, holder: str | None = None) -> None:
        self.engine = engine
        self.holder = holder or holder_name()

    @contextlib.contextmanager
    def fleet(self) -> Iterator[bool]:
        yield True  # per-model leases: monitors share the tick

    @contextlib.contextmanager
    def hold(self, model: str) -> Iterator[bool]:
        """Lock `model`'s lease row for the block, without waiting: False if another monitor has it.

        >>> with RowLeases(engine).hold("pv-nrel-50") as held:  # doctest: +SKIP
        ...     held
        True
        """
        with self.engine.connect() as conn:
            held = self._take(conn, model)
            if held is None:  # the model's first lease: its row, committed at once so no one waits on it
                conn.execute(insert(leases_table).values(model=model).on_conflict_do_nothing())
                conn.commit()
                held = self._take(conn, model)
            try:
                yield bool(held)
            finally:
                self._release(conn, bool(held))

    def _take(self, conn: Connection, model: str) -> bool | None:
        """True: locked (its transaction left open); False: another session has it; None: no row yet."""
        conn.execute(_SESSION)
        locked = (
            select(leases_table.c.model)
            .where(leases_table.c.model == model)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        taken = conn.execute(
            update(leases_table)
            .where(leases_table.c.model == locked)
            .values(holder=self.holder, taken_at=datetime.now(UTC))
            .returning(leases_table.c.model)
        ).first()
        if taken is not None:
            return True
        there = conn.execute(select(exists().where(leases_table.c.model == model))).scalar()
        conn.rollback()
        return False if there else None

    @staticmethod
    def _release(conn: Connection, held: bool) -> None:
        if not held:
            return
        try:
            conn.commit()  # records holder and taken_at; the lock goes with the transaction
        except Exception:  # the session is gone, and its lock with it: nothing left to release
            log.warning("releasing a monitor lease failed (the database connection was lost)", exc_info=True)


class FileLeases:
    """SQLite: one monitor ticks at a time, under an OS lock next to the database file."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}.monitor.lock"

    @contextlib.contextmanager
    def fleet(self) -> Iterator[bool]:
        """Hold the fleet for one tick, without waiting: False while another monitor process ticks."""
        import fcntl

        with open(self.path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def hold(self, model: str) -> Iterator[bool]:
        yield True  # the fleet lock covers every model


class OneProcess:
    """An in-memory SQLite database: only this process can see it, so there is no one to share with."""

    @contextlib.contextmanager
    def fleet(self) -> Iterator[bool]:
        yield True

    @contextlib.contextmanager
    def hold(self, model: str) -> Iterator[bool]:
        yield True


def open_leases(engine: Engine, holder: str | None = None) -> Leases:
    """The leases that fit the database: row locks on PostgreSQL, a file lock on an SQLite file.

    >>> open_leases(get_engine("sqlite:////tmp/monitor.db")).path  # doctest: +SKIP
    '/tmp/monitor.db.monitor.lock'
    """
    if engine.dialect.name == "postgresql":
        return RowLeases(engine, holder)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        return FileLeases(database)
    return OneProcess()
