"""The monitor's side of a retraining: ask over the bus, learn the outcome from the bus.

The monitor and the training service share no table. To retrain, the monitor writes
`maestrale.train.requested` to its outbox in the same transaction as a `monitor_retrainings` row
(`request`), so the request exists if and only if the monitor recorded it; the relay publishes it
and the training service creates its own `trainings` row on receipt. The outcome comes back as
`maestrale.train.completed` / `maestrale.train.failed` (`record_outcome`, called by the monitor
service's `monitor-training` consumer), and the challenger logic reads only this table.

An outcome that never comes (the event lost with a broker's data, a training service that was never
deployed) does not block the model for ever: a request still open after the policy's
`promotion.max_wait` of data time is `lost`, and the next breach may ask again.

The table stays bounded: `prune` deletes finished requests (completed, failed, lost) whose outcome
is older than the processed-event retention (`MAESTRALE_PROCESSED_RETENTION`, 30 days), on the
monitor service's pruning schedule (`prune_task`). Open requests stay, and so does the request a
model's state still points at (its outcome not yet adopted).

>>> with store._writer.begin() as conn:  # doctest: +SKIP
...     request_id = request(conn, model="pv", spec=spec, reason="monitor: shortfall", parent_version=3,
...                          as_of=as_of, idempotency_key="monitor/pv/20120612T230000")
>>> record_outcome(store._writer, request_id, "completed", version=4)  # doctest: +SKIP
'pv'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, insert, select, update

from maestrale.bus.schemas import TrainRequested
from maestrale.monitoring.schema import monitor_retrainings as r
from maestrale.monitoring.schema import monitor_state
from maestrale.platform.clock import aware, utcnow
from maestrale.platform.outbox import add_event
from maestrale.platform.pruning import BATCH, MAX_BATCHES, Retention, delete_in_batches

EVENT_SOURCE = "maestrale/monitor"
Status = Literal["requested", "completed", "failed", "lost"]
OPEN: tuple[Status, ...] = ("requested",)
FINISHED: tuple[Status, ...] = ("completed", "failed", "lost")


@dataclass(frozen=True, slots=True)
class Retraining:
    """One retraining the monitor asked for, as far as the monitor knows."""

    request_id: str
    model: str
    parent_version: int | None
    reason: str
    as_of: datetime
    status: Status
    version: int | None
    error: str | None
    requested_at: datetime

    @property
    def done(self) -> bool:
        """True once an outcome arrived (or the request was given up as lost)."""
        return self.status not in OPEN


def request(
    conn: Connection,
    *,
    model: str,
    spec: dict[str, Any],
    reason: str,
    parent_version: int | None,
    as_of: datetime,
    idempotency_key: str,
) -> str:
    """Record a retraining and write its `train.requested` event, in the caller's transaction.

    Returns the request id. The training service creates its own record of it on receipt.
    """
    request_id = str(uuid.uuid4())
    payload = TrainRequested(
        request_id=request_id, idempotency_key=idempotency_key, spec=spec, reason=reason,
        parent_version=parent_version, requested_by="monitor",
    )  # fmt: skip
    now = utcnow()
    conn.execute(
        insert(r).values(
            request_id=request_id, model=model, parent_version=parent_version, reason=reason, as_of=as_of,
            status="requested", requested_at=now, updated_at=now,
        )
    )  # fmt: skip
    add_event(conn, TrainRequested.type, model, payload.model_dump(mode="json"), source=EVENT_SOURCE)
    return request_id


def record_outcome(
    write: Engine, request_id: str, status: Literal["completed", "failed"], *, version: int | None = None,
    error: str | None = None,
) -> str | None:  # fmt: skip
    """Store what the training service reported; returns the model, or None if the monitor did not ask.

    The first outcome wins: a redelivered or late event changes nothing once one is recorded (a
    request given up as `lost` still takes its late outcome, for the record).
    """
    with write.begin() as conn:
        model = conn.execute(select(r.c.model).where(r.c.request_id == request_id)).scalar()
        if model is None:
            return None  # requested by someone else (a person, a schedule): not the monitor's business
        conn.execute(
            update(r)
            .where(r.c.request_id == request_id, r.c.status.in_(("requested", "lost")))
            .values(status=status, version=version, error=None if error is None else error[:4000],
                    updated_at=utcnow())
        )  # fmt: skip
    return str(model)


def mark_lost(conn: Connection, request_id: str, why: str) -> None:
    """Give up waiting for the outcome of an open request (see the module docstring)."""
    conn.execute(
        update(r)
        .where(r.c.request_id == request_id, r.c.status == "requested")
        .values(status="lost", error=why[:4000], updated_at=utcnow())
    )


def get(engine: Engine, request_id: str) -> Retraining | None:
    """The monitor's record of `request_id`, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(r).where(r.c.request_id == request_id)).first()
    return None if row is None else _record(row)


def history(engine: Engine, model: str, limit: int = 20) -> list[Retraining]:
    """The newest `limit` retrainings the monitor asked for `model`, newest first."""
    q = select(r).where(r.c.model == model).order_by(r.c.requested_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [_record(row) for row in conn.execute(q)]


def _record(row: Any) -> Retraining:
    return Retraining(
        request_id=row.request_id, model=row.model, parent_version=row.parent_version, reason=row.reason,
        as_of=aware(row.as_of), status=row.status, version=row.version, error=row.error,
        requested_at=aware(row.requested_at),
    )  # fmt: skip


def prune(engine: Engine, older_than: timedelta, *, now: datetime | None = None, batch: int = BATCH,
          max_batches: int = MAX_BATCHES) -> int:  # fmt: skip
    """Delete finished requests whose last update is older than `now - older_than`; returns how many.

    Open requests stay however old (`adopt` gives them up as `lost` first), and so does any request a
    model's `monitor_state.last_retrain_request` still names: `adopt` reads its outcome from here.

    >>> prune(store.engine, timedelta(days=30))  # doctest: +SKIP
    12
    """
    cutoff = (now or utcnow()) - older_than
    pending = select(monitor_state.c.last_retrain_request).where(
        monitor_state.c.last_retrain_request.is_not(None)
    )
    old = (
        select(r.c.request_id)
        .where(r.c.status.in_(FINISHED), r.c.updated_at < cutoff, r.c.request_id.not_in(pending))
        .order_by(r.c.updated_at)
    )
    return delete_in_batches(engine, r, old, batch, max_batches)


def prune_task(engine: Engine, retention: Retention, now: datetime | None = None) -> int:
    """`prune` as a `maestrale.platform.pruning.Pruner` task: kept as long as processed-event ids.

    >>> tasks = {"monitor_retrainings": prune_task}
    >>> Pruner(engine, outbox=False, processed=False, tasks=tasks).run().tasks  # doctest: +SKIP
    {'monitor_retrainings': 12}
    """
    return prune(
        engine, retention.processed, now=now, batch=retention.batch, max_batches=retention.max_batches
    )
