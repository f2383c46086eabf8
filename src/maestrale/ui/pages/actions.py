"""Every action of the web UI that changes the registry or the monitor: POST forms, checked and audited.

Each handler reads the form (bounded), checks origin, CSRF and the `write` scope (`check_action`),
requires a `reason` wherever production changes (an alias move, a promotion or rejection, archive
and unarchive), calls the same store method the REST API calls with the viewer as the actor, and
answers 303 back to the page it came from with `?done=...`, which the action forms show as a notice.
The forms live in `templates/actions/` and are included by the model, version and monitoring pages.

>>> # POST /models/pv-nrel-50/aliases  alias=champion version=1 reason=v2+overfits csrf=...
>>> #   -> 303 /models/pv-nrel-50?done=champion+now+v1
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse

from maestrale.errors import InvalidInput
from maestrale.limits import MAX_VERSION, text_problem
from maestrale.refs import validate_name
from maestrale.ui.web import SECURITY_HEADERS, Viewer, check_action, read_form, safe_next

router = APIRouter()
#: Reasons land in the alias history, the archive history and decision rows (bounded text columns).
MAX_REASON = 500
MAX_TAG = 500
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION, description="The version number, e.g. 3.")]


def reason_of(form: dict[str, str], what: str) -> str:
    """The form's non-empty `reason`, else a 400 saying why one is needed.

    >>> reason_of({"reason": " rollback: v2 overfits "}, "moving champion")
    'rollback: v2 overfits'
    """
    reason = form.get("reason", "").strip()
    if not reason:
        raise InvalidInput(
            f"a reason is required for {what}: say why in the Reason field (it goes in the audit)"
        )
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason has {len(reason)} characters: keep it to {MAX_REASON}")
    if problem := text_problem(reason, "the reason"):
        raise InvalidInput(problem)
    return reason


def version_of(form: dict[str, str], field: str = "version") -> int:
    """The form's version number (1 .. MAX_VERSION), else a 400 naming the field."""
    raw = form.get(field, "").strip().lstrip("v")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_VERSION:
        raise InvalidInput(f"{field} must be a version number from 1 to {MAX_VERSION}, not {raw[:20]!r}")
    return int(raw)


def back(request: Request, form: dict[str, str], default: str, done: str) -> RedirectResponse:
    """303 to the page the form came from (a path on this site) with the confirmation in `?done=`."""
    target = safe_next(form.get("next")) if form.get("next") else default
    target = target.split("?", 1)[0] + "?" + urlencode({"done": done[:200]})
    return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)


def _model_page(name: str) -> str:
    return f"/models/{quote(name, safe='')}"


async def _act(request: Request) -> tuple[dict[str, str], Viewer]:
    form = await read_form(request)
    return form, check_action(request, "write", form.get("csrf"))


def _store(request: Request) -> Any:
    return request.app.state.store


# -- model: aliases, tags, archive --------------------------------------------------------------
@router.post("/models/{name}/aliases")
async def move_alias(request: Request, name: str) -> RedirectResponse:
    """Point an alias (promote, roll back) at a version; reason required; the alias history records it."""
    form, viewer = await _act(request)
    alias = validate_name(form.get("alias", "champion").strip() or "champion", "alias")
    version = version_of(form)
    reason = reason_of(form, f"moving {alias}")
    change = _store(request).set_alias(name, alias, version, actor=viewer.name, reason=reason)
    was = f" (was v{change.previous_version})" if change.previous_version else ""
    return back(request, form, _model_page(name), f"{alias} now v{version}{was}")


@router.post("/models/{name}/versions/{version}/champion")
async def make_champion(request: Request, name: str, version: VersionNumber) -> RedirectResponse:
    """Make this version the champion (an alias move with a reason)."""
    form, viewer = await _act(request)
    reason = reason_of(form, "making a version champion")
    _store(request).set_alias(name, "champion", version, actor=viewer.name, reason=reason)
    return back(request, form, f"{_model_page(name)}/versions/{version}", f"v{version} is now champion")


def _tag(form: dict[str, str]) -> tuple[str, str | None]:
    key = form.get("key", "").strip()
    if not key:
        raise InvalidInput("enter a tag key, e.g. site")
    value = form.get("value", "").strip()
    if len(value) > MAX_TAG:
        raise InvalidInput(f"the tag value has {len(value)} characters: keep it to {MAX_TAG}")
    return key, value or None  # an empty value removes the tag


@router.post("/models/{name}/tags")
async def model_tag(request: Request, name: str) -> RedirectResponse:
    """Set a model tag (an empty value removes it)."""
    form, _ = await _act(request)
    key, value = _tag(form)
    _store(request).set_model_tag(name, key, value)
    return back(request, form, _model_page(name), f"tag {key} {'set' if value else 'removed'}")


@router.post("/models/{name}/versions/{version}/tags")
async def version_tag(request: Request, name: str, version: VersionNumber) -> RedirectResponse:
    """Set a version tag (an empty value removes it)."""
    form, _ = await _act(request)
    key, value = _tag(form)
    _store(request).set_version_tag(f"{name}:{version}", key, value)
    done = f"tag {key} of v{version} {'set' if value else 'removed'}"
    return back(request, form, f"{_model_page(name)}/versions/{version}", done)


async def _archive_model(request: Request, name: str, change: str) -> RedirectResponse:
    form, viewer = await _act(request)
    reason = reason_of(form, f"{change[:-1]}ing a model")
    getattr(_store(request), f"{change}_model")(name, actor=viewer.name, reason=reason)
    return back(request, form, _model_page(name), f"{name} {change}d")


@router.post("/models/{name}/archive")
async def archive_model(request: Request, name: str) -> RedirectResponse:
    """Archive a model (hidden from listings, versions still loadable); reason required."""
    return await _archive_model(request, name, "archive")


@router.post("/models/{name}/unarchive")
async def unarchive_model(request: Request, name: str) -> RedirectResponse:
    """Unarchive a model; reason required."""
    return await _archive_model(request, name, "unarchive")


async def _archive_version(request: Request, name: str, version: int, change: str) -> RedirectResponse:
    form, viewer = await _act(request)
    reason = reason_of(form, f"{change[:-1]}ing a version")
    getattr(_store(request), f"{change}_version")(f"{name}:{version}", actor=viewer.name, reason=reason)
    return back(request, form, f"{_model_page(name)}/versions/{version}", f"v{version} {change}d")


@router.post("/models/{name}/versions/{version}/archive")
async def archive_version(request: Request, name: str, version: VersionNumber) -> RedirectResponse:
    """Archive a version; refused (409) while an alias points at it; reason required."""
    return await _archive_version(request, name, version, "archive")


@router.post("/models/{name}/versions/{version}/unarchive")
async def unarchive_version(request: Request, name: str, version: VersionNumber) -> RedirectResponse:
    """Unarchive a version; reason required."""
    return await _archive_version(request, name, version, "unarchive")


# -- the monitor's challenger ---------------------------------------------------------------------
@router.post("/models/{name}/challenger")
async def decide(request: Request, name: str) -> RedirectResponse:
    """Promote or reject the pending challenger by hand, recorded as the monitor records its decisions."""
    from maestrale.monitoring.manual import decide_challenger

    form, viewer = await _act(request)
    outcome = form.get("outcome", "")
    reason = reason_of(form, "deciding a challenger")
    app = request.app.state
    done = decide_challenger(app.monitor_store, app.store, name, outcome, reason=reason, actor=viewer.name)
    return back(request, form, f"{_model_page(name)}/monitoring", f"challenger v{done.challenger} {outcome}")
