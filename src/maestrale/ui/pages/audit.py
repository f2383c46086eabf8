"""The audit page (`/audit`): who changed what, when and why, across the registry, the monitor and tokens.

One list, newest first, from `maestrale.api.audit.audit_trail` (what `GET /api/v1/audit` serves):
alias moves (promotions, rollbacks), archive/unarchive, breaches, champion/challenger decisions,
retraining requests and, for admins only, token creations and revocations. Filters: kind, model,
actor, a UTC time range; "Older" pages back by the last entry's time.

>>> # GET /audit?kind=alias&model=pv-nrel-50&since=2026-12-01  ->  that model's alias moves since 1 December
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from maestrale.api.audit import KINDS, audit_trail
from maestrale.errors import InvalidInput
from maestrale.ui.web import current_viewer, render

router = APIRouter()
PAGE = 100


def moment(text: str | None, what: str) -> datetime | None:
    """A date (`2026-12-01`, midnight UTC) or an ISO time (UTC when it has no offset); 400 otherwise.

    >>> moment("2026-12-01", "since").isoformat()
    '2026-12-01T00:00:00+00:00'
    """
    if not text or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what}={text[:40]!r} is no date: write 2026-12-01 or 2026-12-01T08:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    kind: str | None = Query(None, max_length=32),
    model: str | None = Query(None, max_length=128),
    actor: str | None = Query(None, max_length=128),
    since: str | None = Query(None, max_length=40),
    until: str | None = Query(None, max_length=40),
) -> HTMLResponse:
    """The trail, newest first; token changes only for admins (as `GET /api/v1/audit`)."""
    viewer = current_viewer(request)
    admin = viewer.can("admin")
    kinds = [k for k in KINDS if admin or k != "token"]
    if kind and kind not in kinds:
        raise InvalidInput(f"kind={kind[:32]!r}: choose among {', '.join(kinds)}")
    state = request.app.state
    entries = audit_trail(
        state.store, state.monitor_store, str(state.settings.database_url),
        kinds=[kind] if kind else kinds, model=(model or "").strip() or None,
        actor=(actor or "").strip() or None, since=moment(since, "since"), until=moment(until, "until"),
        limit=PAGE, include_tokens=admin,
    )  # fmt: skip
    query = {"kind": kind or "", "model": model or "", "actor": actor or "", "since": since or "",
             "until": until or ""}  # fmt: skip
    older = entries[-1]["time"].isoformat() if len(entries) == PAGE else None
    return render(
        request, "audit.html", viewer=viewer, entries=entries, kinds=kinds, query=query, older=older,
        tokens_hidden=not admin,
    )  # fmt: skip
