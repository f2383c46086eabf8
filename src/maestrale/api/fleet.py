"""The fleet at a glance: every model with its champion, health and latest production figures.

One query path for the REST API (`GET /api/v1/fleet`) and the web UI's fleet page: the registry's
models joined with the monitor's overview, filtered and sorted server-side.

>>> state = app.state  # the REST app's stores  # doctest: +SKIP
>>> rows = fleet_overview(state.store, state.monitor_store, tag="site=foggia", sort="nmae")  # doctest: +SKIP
>>> rows[0].model, rows[0].state, rows[0].nmae  # doctest: +SKIP
('pv-foggia', 'healthy', 0.041)
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from maestrale.api.auth import Read
from maestrale.errors import InvalidInput
from maestrale.vocabulary import parse_window

State = Literal["healthy", "breach", "retraining", "challenger", "unmonitored"]
#: What the fleet can be sorted by: every column of the fleet page.
SORT_KEYS = (
    "model", "state", "champion", "latest_version", "nmae", "nmae_ratio", "skill", "last_data",
    "episodes_open",
)  # fmt: skip
#: Worst first when sorting by state: what needs a look comes to the top.
STATE_ORDER = {"breach": 0, "retraining": 1, "challenger": 2, "healthy": 3, "unmonitored": 4}
#: Registry pages of this size are read until the fleet is whole (a fleet of 10,000 is 10 queries).
PAGE = 1000


class FleetRow(BaseModel):
    """One model of the fleet: where it stands now."""

    model: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    champion: int | None = Field(None, description="The version the `champion` alias points at.")
    latest_version: int
    archived: bool = False
    state: State = Field(
        description="breach: a condition fired at the latest evaluation; retraining: a retraining was "
        "asked and has not ended; challenger: a retrained version is being judged."
    )
    window: str | None = Field(None, description="The shortest evaluation window, whose figures these are.")
    nmae: float | None = None
    nmae_ratio: float | None = Field(None, description="nMAE now ÷ nMAE at training (1.4: 40% worse).")
    skill: float | None = Field(None, description="1 − RMSE ÷ persistence's RMSE.")
    last_data: datetime | None = Field(None, description="Data time of the latest evaluation.")
    episodes_open: int = 0
    firing: list[str] = Field(default_factory=list, description="Conditions firing now, e.g. shortfall.")
    breaches_total: int = 0
    challenger: int | None = None
    retrain_status: str | None = None


def parse_tag_filter(tag: str | None) -> tuple[str, str | None] | None:
    """`key=value` (a tag with that value) or `key` (any value); None for no filter."""
    if not tag:
        return None
    key, sep, value = tag.partition("=")
    if not key.strip():
        raise InvalidInput(f"tag filter {tag!r}: write KEY=VALUE or KEY, e.g. site=foggia")
    return key.strip(), value.strip() if sep else None


def fleet_overview(
    store: Any,
    monitor: Any,
    *,
    name: str | None = None,
    tag: str | None = None,
    sort: str = "model",
    desc: bool = False,
    include_archived: bool = False,
) -> list[FleetRow]:
    """Every model (name containing `name`, carrying `tag`), sorted by `sort` (a `SORT_KEYS` entry)."""
    if sort not in SORT_KEYS:
        raise InvalidInput(f"sort={sort!r}: sort by one of {', '.join(SORT_KEYS)}")
    wanted = parse_tag_filter(tag)
    like = f"%{_escape_like(name)}%" if name else None
    models = []
    token: str | None = None
    while True:  # the registry pages its models; the fleet page shows them all
        page = store.list_models(
            limit=PAGE, page_token=token, name_like=like, include_archived=include_archived
        )
        models.extend(page.items)
        token = page.next_page_token
        if token is None:
            break
    # a model's tags are its own over its champion's (else latest's): a spec's `tags:` land on versions
    version_tags = store.serving_tags([m.name for m in models]) if hasattr(store, "serving_tags") else {}
    tags = {m.name: {**_shown(version_tags.get(m.name, {})), **m.tags} for m in models}
    if wanted is not None:
        key, value = wanted
        models = [m for m in models if key in tags[m.name] and (value is None or tags[m.name][key] == value)]
    by_name = {m.name: m for m in models}
    status = {
        s["model"]: s for s in monitor.overview(aliases=lambda n: by_name[n].aliases if n in by_name else {})
    }
    rows = [_row(m, status.get(m.name), tags[m.name]) for m in models]
    # missing figures go last whichever way round; the name breaks ties
    always = sort in ("model", "state")
    present = [r for r in rows if always or getattr(r, sort) is not None]
    missing = sorted((r for r in rows if not always and getattr(r, sort) is None), key=lambda r: r.model)
    return sorted(present, key=lambda r: _sort_key(r, sort), reverse=desc) + missing


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: Bookkeeping tags training writes on every version: not what a person filters a fleet by.
INTERNAL_TAGS = ("request_id", "spec_sha256")


def _shown(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in INTERNAL_TAGS}


def _row(model: Any, status: dict[str, Any] | None, tags: dict[str, str]) -> FleetRow:
    base = {
        "model": model.name, "description": model.description, "tags": tags,
        "champion": model.aliases.get("champion"), "latest_version": model.latest_version,
        "archived": model.archived, "challenger": model.aliases.get("challenger"),
    }  # fmt: skip
    # model_construct: every value comes from our own stores, already typed; validating 10,000
    # rows again would cost more than the queries behind them
    # (every field given: pydantic's default_factory lookup inspects `list`'s signature per row)
    if status is None:
        return FleetRow.model_construct(**base, **UNMONITORED)
    perf = status.get("performance") or {}
    window = min(perf, key=_window_length) if perf else None
    figures = perf.get(window, {}) if window else {}
    overall, ratios = figures.get("overall", {}), figures.get("ratios", {})
    return FleetRow.model_construct(
        **base,
        state=_state(status),
        window=window,
        nmae=_finite(overall.get("nmae")),
        nmae_ratio=_finite(ratios.get("nmae")),
        skill=_finite(overall.get("skill")),
        last_data=status.get("as_of"),
        episodes_open=int(status.get("episodes_open") or 0),
        firing=list(status.get("firing") or []),
        breaches_total=int(status.get("breaches_total") or 0),
        retrain_status=status.get("retrain_status"),
    )


UNMONITORED: dict[str, Any] = {
    "state": "unmonitored", "window": None, "nmae": None, "nmae_ratio": None, "skill": None,
    "last_data": None, "episodes_open": 0, "firing": [], "breaches_total": 0, "retrain_status": None,
}  # fmt: skip


def _state(status: dict[str, Any]) -> State:
    if status.get("challenger_since") is not None:
        return "challenger"
    if status.get("last_retrain_request") and status.get("retrain_status") == "requested":
        return "retraining"
    if status.get("open_breaches") or status.get("episodes_open"):
        return "breach"
    return "healthy"


def _window_length(window: str) -> float:
    try:
        return parse_window(window).total_seconds()
    except ValueError:  # a stored window the vocabulary no longer reads sorts last
        return math.inf


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _sort_key(row: FleetRow, sort: str) -> tuple[Any, ...]:
    if sort == "state":
        return (STATE_ORDER[row.state], row.model)
    return (getattr(row, sort), row.model)


router = APIRouter(prefix="/api/v1", tags=["fleet"])


@router.get("/fleet", response_model=list[FleetRow], dependencies=[Read])
def get_fleet(
    request: Request,
    name: str | None = Query(None, max_length=128, description="Names containing this text."),
    tag: str | None = Query(None, max_length=300, description="KEY=VALUE, or KEY for any value."),
    sort: str = Query("model", description=f"One of {', '.join(SORT_KEYS)}."),
    desc: bool = False,
    include_archived: bool = False,
) -> list[FleetRow]:
    """Every model with its champion, state and latest production figures (the UI's fleet page)."""
    state = request.app.state
    return fleet_overview(
        state.store, state.monitor_store, name=name, tag=tag, sort=sort, desc=desc,
        include_archived=include_archived,
    )  # fmt: skip
