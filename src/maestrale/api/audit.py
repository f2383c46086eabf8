"""The audit trail of the whole system: one list, newest first, of who changed what, when and why.

It merges what each component records, through that component's own read API (no second copy of
its queries): the registry's alias moves and archive/unarchive (`SqlStore.history`), the monitor's
breaches, champion/challenger decisions and retraining requests (`maestrale.monitoring.audit`), and
token creations and revocations (`maestrale.tokens.token_events`). The web UI's audit page and
`GET /api/v1/audit` both call `audit_trail`.

>>> entries = audit_trail(store, monitor_store, database_url, kinds=["alias", "decision"],
...                       model="pv-nrel-50", limit=50)  # doctest: +SKIP
>>> [(e["kind"], e["actor"], e["details"]) for e in entries[:1]]  # doctest: +SKIP
[('alias', 'ana', {'alias': 'champion', 'from': 3, 'to': 4})]

Token events are for admin tokens only: a token's name says which service holds a credential and
its scope what that credential can do, which is exactly what `GET /api/v1/tokens` already keeps
from read and write tokens; the audit trail must not hand it out through a side door.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from maestrale.api.auth import require
from maestrale.errors import Forbidden, InvalidInput
from maestrale.monitoring.audit import MONITOR_KINDS, monitor_events
from maestrale.monitoring.store import MonitorStore
from maestrale.refs import validate_name
from maestrale.registry.archiving import HISTORY_KINDS
from maestrale.registry.store import SqlStore
from maestrale.tokens import TokenInfo, token_events

#: Every kind of entry, in the order the filter lists them.
KINDS = (*HISTORY_KINDS, *MONITOR_KINDS, "token")
MAX_LIMIT = 1_000


def check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    """The kinds asked for (all when none), each checked; commas split (`alias,breach`).

    >>> check_kinds(["alias,breach"])
    ('alias', 'breach')
    """
    if not kinds:
        return KINDS
    asked = tuple(dict.fromkeys(k.strip() for text in kinds for k in text.split(",") if k.strip()))
    unknown = [k for k in asked if k not in KINDS]
    if unknown or len(asked) > len(KINDS):
        raise InvalidInput(f"unknown audit kind {unknown[0][:40]!r}: choose among {', '.join(KINDS)}")
    return asked or KINDS


def audit_trail(
    store: SqlStore,
    monitor: MonitorStore,
    database_url: str,
    *,
    kinds: Sequence[str] | None = None,
    model: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    include_tokens: bool = True,
) -> list[dict[str, Any]]:
    """Entries `{time, kind, model, version, actor, reason, details}`, newest first, `limit` at most.

    Filters: `kinds` (default all), `model`, `actor` (the monitor's entries have actor "monitor";
    token events have no model, so a `model` filter leaves them out), `since` (inclusive) and
    `until` (exclusive) on the recorded time. `include_tokens=False` drops token events (callers
    below admin). Page back in time by passing the last entry's time as the next `until`.
    """
    wanted = check_kinds(kinds)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
    for moment, what in ((since, "since"), (until, "until")):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{what} has no UTC offset: write it as 2026-12-01T00:00:00Z")
    if since is not None and until is not None and until <= since:
        raise InvalidInput(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    if model is not None:
        validate_name(model)
    if actor is not None and not 0 < len(actor) <= 128:
        raise InvalidInput("actor must be 1-128 characters, e.g. the token name 'ana'")
    window: dict[str, Any] = {"since": since, "until": until, "limit": limit}
    out: list[dict[str, Any]] = []
    registry_kinds = tuple(k for k in wanted if k in HISTORY_KINDS)
    if registry_kinds:
        out += store.history(kinds=registry_kinds, model=model, actor=actor, **window)
    monitor_kinds = tuple(k for k in wanted if k in MONITOR_KINDS)
    if monitor_kinds:  # the monitor's entries, and decisions people made by hand (actor: the person)
        out += monitor_events(monitor.engine, kinds=monitor_kinds, model=model, actor=actor, **window)
    if "token" in wanted and include_tokens and model is None:
        out += token_events(database_url, actor=actor, **window)
    out.sort(key=lambda e: e["time"], reverse=True)
    return out[:limit]


# -- REST -----------------------------------------------------------------------------------------
router = APIRouter(tags=["audit"])


class AuditEntry(BaseModel):
    """One change: when it was recorded, its kind, the model and version it concerns, who and why."""

    time: datetime
    kind: str = Field(description=f"One of {', '.join(KINDS)}.")
    model: str | None
    version: int | None
    actor: str | None
    reason: str | None
    details: dict[str, Any] = Field(description="The kind's own facts and numbers.")


class AuditPage(BaseModel):
    """Entries newest first; `next_until` pages further back; `hidden` names kinds left out for scope."""

    entries: list[AuditEntry]
    next_until: datetime | None = Field(
        default=None, description="Pass as `until` for the next (older) page; null on the last page."
    )
    hidden: list[str] = Field(default_factory=list)


@router.get("/audit", response_model=AuditPage)
def audit(
    request: Request,
    info: Annotated[TokenInfo, Depends(require("read"))],
    kind: Annotated[
        list[str] | None, Query(max_length=len(KINDS), description="Repeat or comma-separate.")
    ] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> AuditPage:
    """Alias moves, archive/unarchive, breaches, challenger decisions, retraining requests and (admin
    tokens only) token changes, newest first, filtered by kind, model, actor and time range."""
    admin = info.allows("admin")
    wanted = check_kinds(kind)
    if kind and "token" in wanted and not admin:
        raise Forbidden(
            f"token {info.name!r} has scope {info.scope!r}; token changes in the audit trail need 'admin' "
            "(leave kind=token out to see the rest)"
        )
    state = request.app.state
    entries = audit_trail(
        state.store, state.monitor_store, state.settings.database_url, kinds=wanted, model=model,
        actor=actor, since=since, until=until, limit=limit, include_tokens=admin,
    )  # fmt: skip
    next_until = entries[-1]["time"] if len(entries) == limit else None
    hidden = [] if admin or "token" not in wanted else ["token"]
    return AuditPage(entries=[AuditEntry(**e) for e in entries], next_until=next_until, hidden=hidden)
