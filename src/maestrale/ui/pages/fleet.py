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


@router.get("/", response_class=HTMLResponse)
def fleet_page(
    request: Request,
    name: str | None = Query(None, max_length=128),
    tag: str | None = Query(None, max_length=300),
    state: str | None = Query(None, max_length=16),
    sort: str = Query("state", max_length=32),
    desc: bool = False,
    archived: bool = False,
) -> HTMLResponse:
    """Every model of the fleet; `state=breach` shows only those with a condition firing."""
    viewer = current_viewer(request)
    if state and state not in STATE_ORDER:
        raise InvalidInput(f"state={state!r}: one of {', '.join(STATE_ORDER)}")
    app = request.app.state
    rows = fleet_overview(
        app.store, app.monitor_store, name=name or None, tag=tag or None, sort=sort, desc=desc,
        include_archived=archived,
    )  # fmt: skip
    counts = Counter(r.state for r in rows)
    shown = [r for r in rows if state is None or r.state == state] if state else rows
    query = {
        "name": name or "", "tag": tag or "", "state": state or "", "sort": sort, "desc": desc,
        "archived": archived,
    }  # fmt: skip
    return render(
        request, "fleet.html", viewer=viewer, rows=shown, counts=counts, total=len(rows),
        columns=COLUMNS, sort_keys=SORT_KEYS, query=query, states=list(STATE_ORDER), numeric=NUMERIC,
    )  # fmt: skip
