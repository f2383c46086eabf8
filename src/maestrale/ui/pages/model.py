"""The model page (`/models/{name}`): its versions (columns picked by the viewer, sortable), aliases
with their audit trail, lineage with the reason of each retraining, and the model's trainings.

The picked columns and the sort live in the query string, so a view can be bookmarked or shared:

>>> # GET /models/pv-foggia?c=metrics.nmae&c=params.max_iter&c=tags.site&sort=metrics.nmae
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from maestrale.errors import InvalidInput
from maestrale.refs import validate_name
from maestrale.registry.types import ModelVersion
from maestrale.ui.web import current_viewer, render

router = APIRouter()
#: Newest versions listed on the page; a model with more says so (the REST API pages through all).
MAX_VERSIONS = 500
#: Columns one view may pick (each is a cell per version: a wider table is unreadable anyway).
MAX_COLUMNS = 30
#: Training requests shown, newest first.
MAX_TRAININGS = 50
GROUPS = ("metrics", "params", "tags")
#: Fixed columns that can be sorted on besides the picked ones: (key, heading).
FIXED = (("version", "Version"), ("status", "Status"), ("created", "Created"))
#: Shown when the viewer picked nothing: the headline figures, when the versions have them.
DEFAULT_COLUMNS = ("metrics.nmae", "metrics.skill", "metrics.rmse")


@dataclass(frozen=True, slots=True)
class Column:
    """A picked column: `metrics.nmae` is the group `metrics`, key `nmae`."""

    ref: str
    group: str
    key: str

    def value(self, mv: ModelVersion) -> Any:
        """This column's cell for one version (None when the version lacks it)."""
        return getattr(mv, self.group).get(self.key)


def parse_columns(picked: list[str]) -> list[Column]:
    """The columns named in the query string (`metrics.nmae`, ...), checked; duplicates dropped.

    >>> [c.key for c in parse_columns(["metrics.nmae", "tags.site", "metrics.nmae"])]
    ['nmae', 'site']
    """
    if len(picked) > MAX_COLUMNS:
        raise InvalidInput(f"{len(picked)} columns picked: pick at most {MAX_COLUMNS}")
    out: dict[str, Column] = {}
    for ref in picked:
        group, _, key = ref.partition(".")
        if group not in GROUPS or not key or len(key) > 250:
            raise InvalidInput(
                f"column {ref[:80]!r}: name it GROUP.KEY with GROUP one of {', '.join(GROUPS)} "
                "(e.g. c=metrics.nmae)"
            )
        out.setdefault(ref, Column(ref, group, key))
    return list(out.values())


def _sort_value(value: Any) -> tuple[int, Any]:
    # missing cells last whatever the direction (see sort_versions); numbers before text
    if value is None:
        return (2, 0)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def sort_versions(versions: list[ModelVersion], sort: str, desc: bool, columns: list[Column]) -> None:
    """Sort in place by a fixed column (`version`, `status`, `created`) or a picked one."""
    fixed = {
        "version": lambda mv: mv.version, "status": lambda mv: mv.status,
        "created": lambda mv: mv.created_at,
    }  # fmt: skip
    if sort in fixed:
        versions.sort(key=fixed[sort], reverse=desc)
        return
    column = next((c for c in columns if c.ref == sort), None)
    if column is None:
        raise InvalidInput(f"sort={sort[:80]!r}: sort by version, status, created or a shown column")
    present = [mv for mv in versions if column.value(mv) is not None]
    present.sort(key=lambda mv: _sort_value(column.value(mv)), reverse=desc)
    versions[:] = present + [mv for mv in versions if column.value(mv) is None]


def available(versions: list[ModelVersion]) -> dict[str, list[str]]:
    """Every key each group has on some version: what the column picker offers."""
    keys: dict[str, set[str]] = {g: set() for g in GROUPS}
    for mv in versions:
        for group in GROUPS:
            keys[group].update(getattr(mv, group))
    return {g: sorted(k)[:1000] for g, k in keys.items()}


def lineage(versions: list[ModelVersion]) -> list[dict[str, Any]]:
    """Each version with where it came from, oldest first: parent (if any), reason, who, when."""
    known = {mv.version for mv in versions}
    return [
        {
            "version": mv.version, "parent": mv.parent_version,
            "parent_listed": mv.parent_version in known, "reason": mv.reason,
            "by": mv.created_by, "at": mv.created_at,
        }
        for mv in sorted(versions, key=lambda mv: mv.version)
    ]  # fmt: skip


def _trainings(request: Request, name: str) -> list[Any]:
    # the same service (and the same lazily opened TrainingRequests) as GET /api/v1/trainings
    from maestrale.api.trainings import training_requests

    return training_requests(request).list(name=name, limit=MAX_TRAININGS)


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(
    request: Request,
    name: str,
    c: list[str] = Query([]),
    sort: str = Query("version", max_length=300),
    desc: bool = True,
) -> HTMLResponse:
    """One model: versions (picked columns), aliases and their moves, lineage, trainings."""
    viewer = current_viewer(request)
    validate_name(name)
    store = request.app.state.store
    model = store.get_model(name)  # NotFound: 404 naming the model
    page = store.list_versions(name, limit=MAX_VERSIONS, include_archived=True)
    versions = list(page.items)
    offered = available(versions)
    picked = [ref for ref in c if ref]
    if not picked:  # the headline figures, when the versions have them
        picked = [ref for ref in DEFAULT_COLUMNS if ref.partition(".")[2] in offered["metrics"]]
    columns = parse_columns(picked)
    sort_versions(versions, sort, desc, columns)
    history = store.alias_history(name)
    history.reverse()  # newest move first: what changed last is what people look for
    refs = [col.ref for col in columns]

    def link(**changes: Any) -> str:
        # the picked columns repeat (c=..&c=..): formatting.with_query keeps one value per key
        state = {"c": refs, "sort": sort, "desc": desc, **changes}
        pairs = [("c", ref) for ref in state["c"]] + [("sort", state["sort"])]
        return "?" + urlencode(pairs + ([("desc", "true")] if state["desc"] else [("desc", "false")]))

    return render(
        request, "model.html", viewer=viewer, model=model, versions=versions, columns=columns,
        offered=offered, sort=sort, desc=desc, link=link, fixed=FIXED, history=history,
        lineage=lineage(versions),
        trainings=_trainings(request, name), truncated=page.next_page_token is not None,
        max_versions=MAX_VERSIONS,
    )  # fmt: skip
