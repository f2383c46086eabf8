"""The trainings page (`/trainings`): the queue, fleet progress and failures, live; the spec editor.

The page and its live part (`/trainings/live`, polled by htmx every 2 s) read the training
requests the REST API serves (`maestrale.api.trainings.training_requests`: `GET /api/v1/trainings`
and `/summary`, what `maestrale train list` prints). `/trainings/new` is a YAML editor: the server
validates the text exactly as `POST /api/v1/trainings` does and shows every problem beside the line
it names; a valid spec is queued (one request per fleet member) and the browser goes to the queue.

>>> # GET /trainings?name=pv-nrel-50&status=failed   ->  that model's failed requests with their errors
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from maestrale.api.trainings import TrainingSubmit, checked_members, training_requests
from maestrale.errors import InvalidInput
from maestrale.training.requests import STATUSES
from maestrale.ui.web import SECURITY_HEADERS, check_action, current_viewer, read_form, render

router = APIRouter()
#: The requests table shows the newest this many (the counts above it cover all of them).
SHOWN = 200
#: The editor's text, bounded below the form limit: a spec file is a few KiB, a big fleet some hundreds.
MAX_SPEC_CHARS = 200_000
EXAMPLE = """\
name: pv-nrel-50
data: {dataset: nrel_system50, freq: 1h}
target: power_kw
feature_set: pv_features
estimator: ridge
train_window: {start: 2011-06-01, end: 2011-07-31}
split: {holdout: {test_start: 2011-07-15}}
capacity: 3.4
"""


def _filters(name: str | None, status: str | None, fleet: str | None) -> dict[str, str]:
    if status and status not in STATUSES:
        raise InvalidInput(f"status={status!r}: one of {', '.join(STATUSES)}")
    return {"name": (name or "").strip(), "status": status or "", "fleet": (fleet or "").strip()}


def _live(request: Request, query: dict[str, str]) -> dict[str, Any]:
    """What the live part shows: counts, the newest fleets' progress, the newest requests."""
    store = training_requests(request)
    name, fleet = query["name"] or None, query["fleet"] or None
    return {
        "counts": store.counts(name=name, fleet_id=fleet),
        "fleets": [] if fleet else store.fleets(limit=5, name=name),
        "rows": store.list(name=name, fleet_id=fleet, status=query["status"] or None, limit=SHOWN),
        "query": query,
        "live_url": "/trainings/live?" + urlencode({k: v for k, v in query.items() if v}),
        "statuses": STATUSES,
        "submitted": [s for s in request.query_params.get("submitted", "").split(",") if s][:1000],
    }


@router.get("/trainings", response_class=HTMLResponse)
def trainings_page(
    request: Request,
    name: str | None = Query(None, max_length=128),
    status: str | None = Query(None, max_length=16),
    fleet: str | None = Query(None, max_length=64),
) -> HTMLResponse:
    """The queue: counts per status, fleets' progress bars, requests newest first, failures' errors."""
    viewer = current_viewer(request)
    return render(request, "trainings.html", viewer=viewer, **_live(request, _filters(name, status, fleet)))


@router.get("/trainings/live", response_class=HTMLResponse)
def trainings_live(
    request: Request,
    name: str | None = Query(None, max_length=128),
    status: str | None = Query(None, max_length=16),
    fleet: str | None = Query(None, max_length=64),
) -> HTMLResponse:
    """The live fragment the page polls (every 2 s): the same figures, nothing else."""
    viewer = current_viewer(request)
    return render(
        request, "trainings_live.html", viewer=viewer, **_live(request, _filters(name, status, fleet))
    )


@router.get("/trainings/new", response_class=HTMLResponse)
def new_training(request: Request) -> HTMLResponse:
    """The spec editor (write scope to submit)."""
    viewer = current_viewer(request)
    return render(request, "training_new.html", viewer=viewer, text=EXAMPLE, reason="", issues=[], lines=[])


@router.post("/trainings/new")
async def submit_training(request: Request) -> Response:
    """Validate as `POST /api/v1/trainings` does: problems beside their lines (400), else queue it."""
    from maestrale.training.spec import SpecError

    form = await read_form(request)
    viewer = check_action(request, "write", form.get("csrf"))
    text = form.get("spec", "").replace("\r\n", "\n")
    reason = form.get("reason", "").strip() or "manual"
    issues: list[dict[str, Any]] = []
    if not text.strip():
        issues = [{"line": None, "path": "", "message": "the spec is empty: write one (see the example)"}]
    elif len(text) > MAX_SPEC_CHARS:
        issues = [
            {"line": None, "path": "", "message": f"the spec is longer than {MAX_SPEC_CHARS:,} characters"}
        ]
    else:
        try:
            body = TrainingSubmit(yaml=text, reason=reason[:500])
            members, fleet = checked_members(body, request.app.state.settings)
        except SpecError as exc:
            issues = [{"line": i.line, "path": i.path, "message": i.message} for i in exc.issues]
        except InvalidInput as exc:
            issues = [{"line": None, "path": "", "message": exc.message}]
    if issues:
        return render(
            request, "training_new.html", status=400, viewer=viewer, text=text, reason=reason,
            issues=issues, lines=_annotated(text, issues),
        )  # fmt: skip
    records = training_requests(request).submit_members(
        members, fleet=fleet, reason=body.reason, requested_by=viewer.name
    )
    ids = ",".join(r.id for r in records)
    return RedirectResponse(
        f"/trainings?{urlencode({'submitted': ids})}", status_code=303, headers=SECURITY_HEADERS
    )


def _annotated(text: str, issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spec's lines, numbered, each with the problems that name it (for the listing beside the editor).

    >>> _annotated("a: 1\\nb: x", [{"line": 2, "message": "b: not a number"}])[1]
    {'n': 2, 'text': 'b: x', 'issues': ['b: not a number']}
    """
    by_line: dict[int, list[str]] = {}
    for issue in issues:
        if issue.get("line"):
            by_line.setdefault(int(issue["line"]), []).append(issue["message"])
    lines = text.split("\n")[:5_000]  # the listing is bounded like the text
    return [{"n": n, "text": line, "issues": by_line.get(n, [])} for n, line in enumerate(lines, start=1)]


@router.post("/trainings/{request_id}/cancel")
async def cancel_training(request: Request, request_id: str) -> Response:
    """Cancel a queued or started request (or every unfinished member of a fleet); 409 if finished."""
    form = await read_form(request)
    viewer = check_action(request, "write", form.get("csrf"))
    done = training_requests(request).cancel(request_id[:64], by=viewer.name)
    target = f"/trainings?{urlencode({'done': f'cancelled {len(done)} request(s)'})}"
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
