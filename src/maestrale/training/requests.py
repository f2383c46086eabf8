"""Training requests: submitted with their `train.requested` events in one transaction, tracked by status.

The API and the CLI call `submit`; workers move a request through started → completed | failed.
The `train.requested` events go through the database's outbox, so a request whose row committed is
published even if the broker was down at that moment. A request published by someone else (the
monitor, which talks to training over the bus only, or a plain AMQP client) gets its row when a
worker receives it (`adopt`).

`cancel` moves a queued or started request to `cancelled`: a worker that receives it later skips
it, and the worker running it stops its training process within `CANCEL_POLL_S` seconds (both
report `train.failed` with the error "cancelled"). A version registered before that stays.

>>> store = TrainingRequests("sqlite:///.maestrale/registry.db")  # doctest: +SKIP
>>> [r.id for r in store.submit(load_spec("pv-fleet.yaml"), requested_by="ops")]  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from maestrale.errors import Conflict, InvalidInput, NotFound
from maestrale.platform.clock import aware, utcnow
from maestrale.platform.db import ensure_schema, writer
from maestrale.platform.outbox import add_event
from maestrale.training.tables import trainings

EVENT_SOURCE = "maestrale/training"
Status = Literal["queued", "started", "completed", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "started", "completed", "failed", "cancelled")
FINAL: tuple[Status, ...] = ("completed", "failed", "cancelled")
MIN_PREFIX = 6  # shortest id prefix `find` accepts (a table shows 8 characters)
CANCEL_POLL_S = 2.0  # how often a worker running a training checks whether it was cancelled


class TrainingRecord(BaseModel):
    """Where one training request stands."""

    id: str
    name: str
    fleet_id: str | None = None
    status: Status
    reason: str | None = None
    parent_version: int | None = None
    requested_by: str | None = None
    worker: str | None = None
    attempts: int = 0
    version: int | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def done(self) -> bool:
        """True once the request completed, failed or was cancelled."""
        return self.status in FINAL


def _record(row: Any) -> TrainingRecord:
    return TrainingRecord(
        id=row.id, name=row.name, fleet_id=row.fleet_id, status=row.status, reason=row.reason,
        parent_version=row.parent_version, requested_by=row.requested_by, worker=row.worker,
        attempts=row.attempts, version=row.version, metrics=row.metrics, error=row.error,
        created_at=aware(row.created_at), updated_at=aware(row.updated_at),
    )  # fmt: skip


class TrainingRequests:
    """The `trainings` table of the registry database."""

    def __init__(self, database_url: str, auto_upgrade: bool = True) -> None:
        self.engine = ensure_schema(database_url, auto_upgrade)
        self.write_engine = writer(self.engine)

    def submit(
        self,
        spec: Any,
        *,
        reason: str = "manual",
        parent_version: int | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> list[TrainingRecord]:
        """Queue one request per fleet member (one for a plain spec); returns them in member order.

        `spec` is a `TrainingSpec` or its plain-data form. `idempotency_key` makes a resend of the
        same submission train once (member keys are derived from it).
        """
        from maestrale.training.fleet import expand_fleet
        from maestrale.training.spec import TrainingSpec

        if not isinstance(spec, TrainingSpec):
            if not isinstance(spec, dict):
                raise InvalidInput("a training spec must be a mapping (the YAML spec as JSON)")
            spec = TrainingSpec.model_validate(spec)
        return self.submit_members(
            expand_fleet(spec), fleet=spec.fleet is not None, reason=reason, parent_version=parent_version,
            requested_by=requested_by, idempotency_key=idempotency_key,
        )  # fmt: skip

    def submit_members(
        self,
        members: list[Any],
        *,
        fleet: bool = False,
        reason: str = "manual",
        parent_version: int | None = None,
        requested_by: str | None = None,
        idempotency_key: str | None = None,
        reuse_unchanged: bool = False,
    ) -> list[TrainingRecord]:
        """Queue already-expanded member specs; `fleet=True` groups them under one fleet id.

        `reuse_unchanged`: a member whose spec, data and code match a registered version completes
        with that version instead of training (`maestrale train` without --force).
        """
        fleet_id = str(uuid.uuid4()) if fleet else None
        now = utcnow()
        out = []
        with self.write_engine.begin() as conn:
            for i, member in enumerate(members):
                request_id = str(uuid.uuid4())
                key = f"{idempotency_key}/{i}" if idempotency_key else request_id
                body = member.model_dump(mode="json", exclude_none=True)
                conn.execute(
                    insert(trainings).values(
                        id=request_id, name=member.name, fleet_id=fleet_id, status="queued", spec=body,
                        reason=reason, parent_version=parent_version, requested_by=requested_by,
                        attempts=0, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
                add_event(
                    conn, "maestrale.train.requested", member.name,
                    {"request_id": request_id, "idempotency_key": key, "spec": body, "reason": reason,
                     "parent_version": parent_version, "requested_by": requested_by, "fleet_id": fleet_id,
                     "reuse_unchanged": reuse_unchanged},
                    source=EVENT_SOURCE,
                )  # fmt: skip
                out.append(TrainingRecord(
                    id=request_id, name=member.name, fleet_id=fleet_id, status="queued", reason=reason,
                    parent_version=parent_version, requested_by=requested_by, created_at=now, updated_at=now,
                ))  # fmt: skip
        return out

    def get(self, request_id: str) -> TrainingRecord:
        """One request; NotFound names it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(trainings).where(trainings.c.id == request_id)).first()
        if row is None:
            raise NotFound(f"training request {request_id!r} not found")
        return _record(row)

    def list(
        self,
        *,
        fleet_id: str | None = None,
        name: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[TrainingRecord]:
        """Requests, newest first, optionally of one fleet, one model or in one status."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown training status {status!r}: use one of {', '.join(STATUSES)}")
        t = trainings
        q = select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit)
        if fleet_id:
            q = q.where(t.c.fleet_id == fleet_id)
        if name:
            q = q.where(t.c.name == name)
        if status:
            q = q.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(q)]

    def counts(self, *, name: str | None = None, fleet_id: str | None = None) -> dict[str, int]:
        """How many requests are in each status (every status present, zero included), in one query.

        >>> store.counts(name="pv-nrel-50")  # doctest: +SKIP
        {'queued': 0, 'started': 1, 'completed': 4, 'failed': 1, 'cancelled': 0}
        """
        t = trainings
        q = select(t.c.status, func.count()).group_by(t.c.status)
        if name:
            q = q.where(t.c.name == name)
        if fleet_id:
            q = q.where(t.c.fleet_id == fleet_id)
        with self.engine.connect() as conn:
            found = {status: int(n) for status, n in conn.execute(q).all()}
        return {status: found.get(status, 0) for status in STATUSES}

    def fleets(self, *, limit: int = 10, name: str | None = None) -> builtins.list[dict[str, Any]]:
        """The newest `limit` fleet submissions with their progress: members per status, in two queries.

        `name` keeps the fleets with a member of that name. Each entry: `fleet_id`, `created_at`,
        `total`, `counts` (status -> members) and `requested_by`.
        """
        t = trainings
        newest = (
            select(t.c.fleet_id, func.min(t.c.created_at).label("created_at"))
            .where(t.c.fleet_id.is_not(None))
            .group_by(t.c.fleet_id)
            .order_by(func.min(t.c.created_at).desc())
            .limit(max(1, min(limit, 100)))
        )
        if name:
            newest = newest.where(t.c.fleet_id.in_(select(t.c.fleet_id).where(t.c.name == name)))
        with self.engine.connect() as conn:
            heads = conn.execute(newest).all()
            ids = [h.fleet_id for h in heads]
            rows = conn.execute(
                select(t.c.fleet_id, t.c.status, func.count(), func.max(t.c.requested_by))
                .where(t.c.fleet_id.in_(ids))
                .group_by(t.c.fleet_id, t.c.status)
            ).all() if ids else []  # fmt: skip
        counts: dict[str, dict[str, int]] = {i: dict.fromkeys(STATUSES, 0) for i in ids}
        by: dict[str, str | None] = {}
        for fleet_id, status, n, requested_by in rows:
            counts[fleet_id][status] = int(n)
            by[fleet_id] = by.get(fleet_id) or requested_by
        return [
            {"fleet_id": h.fleet_id, "created_at": aware(h.created_at), "counts": counts[h.fleet_id],
             "total": sum(counts[h.fleet_id].values()), "requested_by": by.get(h.fleet_id)}
            for h in heads
        ]  # fmt: skip

    def find(self, ref: str) -> builtins.list[TrainingRecord]:
        """The request `ref` names, or the members of the fleet it names (ids or unique id prefixes).

        >>> [r.status for r in store.find("3f2a9c01")]  # doctest: +SKIP
        ['completed']
        """
        ref = ref.strip()
        if not ref or len(ref) > 64 or not ref.isprintable():  # ids are at most 64 printable characters
            raise NotFound(f"no training request or fleet {ref[:80]!r}: `maestrale train list` shows the ids")
        t = trainings
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(or_(t.c.id == ref, t.c.fleet_id == ref))).all()
            start = ref.lower()  # ids are UUIDs: hex digits and dashes cannot hold a LIKE wildcard
            if not rows and len(start) >= MIN_PREFIX and set(start) <= set("0123456789abcdef-"):
                like = f"{start}%"
                hits = conn.execute(
                    select(t.c.id, t.c.fleet_id).where(or_(t.c.id.like(like), t.c.fleet_id.like(like)))
                ).all()
                named = {h.id if h.id.startswith(start) else h.fleet_id for h in hits}
                if len(named) > 1:
                    raise InvalidInput(f"{ref!r} starts {len(named)} request or fleet ids: give more of it")
                if named:
                    [full] = named
                    rows = conn.execute(select(t).where(or_(t.c.id == full, t.c.fleet_id == full))).all()
        if not rows:
            short = f" (give at least {MIN_PREFIX} characters of an id)" if len(start) < MIN_PREFIX else ""
            raise NotFound(
                f"no training request or fleet {ref!r}{short}: `maestrale train list` shows their ids"
            )
        return sorted((_record(r) for r in rows), key=lambda r: r.name)

    def status(self, request_id: str) -> str | None:
        """The status of one request (one cheap read: a running training polls it), None if unknown."""
        with self.engine.connect() as conn:
            return conn.execute(select(trainings.c.status).where(trainings.c.id == request_id)).scalar()

    def cancel(self, ref: str, by: str | None = None) -> builtins.list[TrainingRecord]:
        """Cancel the request `ref` (or every unfinished member of the fleet it names); returns them.

        A queued request is never trained; a started one is stopped by its worker within
        `CANCEL_POLL_S` seconds. `Conflict` when nothing named is left to cancel.
        """
        records = self.find(ref)
        todo = [r.id for r in records if not r.done]
        if not todo:
            states = ", ".join(sorted({r.status for r in records}))
            raise Conflict(
                f"training {ref!r} is already {states}: only a queued or started request can be cancelled"
            )
        error = f"cancelled by {by}" if by else "cancelled"
        t = trainings
        with self.write_engine.begin() as conn:  # only what is still unfinished: a worker may finish first
            conn.execute(
                update(t).where(t.c.id.in_(todo), t.c.status.in_(("queued", "started")))
                .values(status="cancelled", error=error, updated_at=utcnow())
            )  # fmt: skip
        return [self.get(r.id) for r in records]

    def adopt(self, req: Any, name: str) -> None:
        """Track a request that arrived without a row: the monitor's retrainings (it talks to training
        over the bus only) or a plain AMQP client's. Idempotent: a redelivery, or two workers given the
        same request, make one row.
        """
        now = utcnow()
        row = {
            "id": req.request_id, "name": name, "fleet_id": req.fleet_id, "status": "queued",
            "spec": req.spec, "reason": req.reason, "parent_version": req.parent_version,
            "requested_by": req.requested_by, "attempts": 0, "created_at": now, "updated_at": now,
        }  # fmt: skip
        with self.write_engine.begin() as conn:
            dialect = conn.dialect.name
            if dialect in ("sqlite", "postgresql"):
                dialect_insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
                conn.execute(dialect_insert(trainings).values(**row).on_conflict_do_nothing())
            elif conn.execute(select(trainings.c.id).where(trainings.c.id == req.request_id)).first() is None:
                conn.execute(insert(trainings).values(**row))

    def _update(self, request_id: str, **values: Any) -> None:
        with self.write_engine.begin() as conn:
            conn.execute(
                update(trainings).where(trainings.c.id == request_id).values(updated_at=utcnow(), **values)
            )

    def started(self, request_id: str, worker: str, attempt: int) -> bool:
        """A worker took the request (again, after a redelivery); False if it was cancelled meanwhile."""
        t = trainings
        with self.write_engine.begin() as conn:
            taken = conn.execute(
                update(t).where(t.c.id == request_id, t.c.status != "cancelled")
                .values(status="started", worker=worker, attempts=attempt, updated_at=utcnow())
            )  # fmt: skip
        return taken.rowcount == 1

    def completed(self, request_id: str, version: int, metrics: dict[str, float]) -> None:
        """The version is registered."""
        self._update(request_id, status="completed", version=version, metrics=metrics, error=None)

    def failed(self, request_id: str, error: str, attempts: int) -> None:
        """The request failed for good (a cancelled one keeps its status and why)."""
        t = trainings
        with self.write_engine.begin() as conn:
            conn.execute(
                update(t).where(t.c.id == request_id, t.c.status != "cancelled")
                .values(status="failed", error=error[:4000], attempts=attempts, updated_at=utcnow())
            )  # fmt: skip
