"""The fleet page (`/`): every model, its champion and health, filtered and sorted server-side.

>>> # GET /?tag=site%3Dfoggia&sort=nmae_ratio&desc=true  ->  the worst-drifting Foggia models first
"""

from __future__ import annotations

from collections import Counter

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from maestrale.api.fleet import SORT_KEYS, STATE_ORDER, fleet_overview
from maestrale.errors import InvalidInput
from maestrale.ui.web import current_viewer, render

router = APIRouter()
#: Column headings of the fleet table, in order: (sort key, heading, tooltip).
COLUMNS = (
    ("model", "Model", "The registered model's name"),
    ("state", "State", "breach: a condition fired at the latest evaluation; retraining: asked, not ended; "
     "challenger: a retrained version is being judged"),
    ("champion", "Champion", "The version the champion alias points at"),
    ("latest_version", "Latest", "The newest registered version"),
    ("nmae", "nMAE", "Normalised mean absolute error over the shortest evaluation window"),
    ("nmae_ratio", "vs training", "nMAE now against nMAE at training (+40%: 40% worse)"),
    ("skill", "Skill", "1 − RMSE ÷ persistence RMSE: above 0 beats 'tomorrow as today'"),
    ("last_data", "Last data", "Data time of the latest evaluation"),
    ("episodes_open", "Open alerts", "Alert episodes still open"),
)  # fmt: skip


NUMERIC = {"champion", "latest_version", "nmae", "nmae_ratio", "skill", "episodes_open"}
#: Rows per page (`per=` up to MAX_PER_PAGE shows more; the state counts always cover the fleet).
PER_PAGE, MAX_PER_PAGE = 100, 10_000


@router.get("/", response_class=HTMLResponse)
def fleet_page(
    request: Request,
    name: str | None = Query(None, max_length=128),
    tag: str | None = Query(None, max_length=300),
    state: str | None = Query(None, max_length=16),
    sort: str = Query("state", max_length=32),
    desc: bool = False,
    archived: bool = False,
    page: int = Query(1, ge=1, le=100_000),
    per: int = Query(PER_PAGE, ge=1, le=MAX_PER_PAGE),
) -> HTMLResponse:
    """Every model of the fleet, `per` rows a page; `state=breach` shows only those with a condition firing.

    The counts per state and the sort cover the whole fleet; the page shows its slice of the sorted
    rows (a browser lays out 100 rows in a few ms, 1,000 in hundreds).
    """
    viewer = current_viewer(request)
    if state and state not in STATE_ORDER:
        raise InvalidInput(f"state={state!r}: one of {', '.join(STATE_ORDER)}")
    app = request.app.state
    rows = fleet_overview(
        app.store, app.monitor_store, name=name or None, tag=tag or None, sort=sort, desc=desc,
        include_archived=archived,
    )  # fmt: skip
    counts = Counter(r.state for r in rows)
    matching = [r for r in rows if r.state == state] if state else rows
    pages = max(1, -(-len(matching) // per))
    page = min(page, pages)
    shown = matching[(page - 1) * per : page * per]
    query = {
        "name": name or "", "tag": tag or "", "state": state or "", "sort": sort, "desc": desc,
        "archived": archived, "per": per if per != PER_PAGE else "",
    }  # fmt: skip
    pager = {"page": page, "pages": pages, "first": (page - 1) * per + 1 if shown else 0,
             "last": (page - 1) * per + len(shown), "matching": len(matching)}  # fmt: skip
    return render(
        request, "fleet.html", viewer=viewer, rows=shown, counts=counts, total=len(rows),
        columns=COLUMNS, sort_keys=SORT_KEYS, query=query, states=list(STATE_ORDER), numeric=NUMERIC,
        pager=pager,
    )  # fmt: skip
