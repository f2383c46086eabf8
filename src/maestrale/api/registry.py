"""Registry endpoints: models, versions, aliases, tags, search and artifact transfer."""

from __future__ import annotations

import hashlib
import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from maestrale.api.auth import Read, Write
from maestrale.api.search_lane import page_body
from maestrale.errors import InvalidInput, NoHoldout, PayloadTooLarge
from maestrale.limits import MAX_VERSION
from maestrale.refs import validate_name
from maestrale.registry.artifacts import CHUNK, object_key
from maestrale.registry.holdout import none_message
from maestrale.registry.types import (
    AliasChange,
    ModelVersion,
    Page,
    RegisteredModel,
    TagValue,
    Text,
    VersionCreate,
)
from maestrale.registry.vetting import TRUST_HEADER, vet_artifact

router = APIRouter(prefix="/api/v1", tags=["registry"])
Limit = Annotated[int, Query(ge=1, le=1000)]
#: Versions are a 32-bit INTEGER column: a larger number is a 400 naming the range, not an overflow.
Version = Annotated[int, Path(ge=1, le=MAX_VERSION, description="The version number, e.g. 3.")]


class AliasBody(BaseModel):
    """Where to point an alias, and why (kept in the audit trail)."""

    version: int = Field(ge=1, le=MAX_VERSION)
    reason: Text | None = None


class ReasonBody(BaseModel):
    """Why (kept in the audit trail); the body is optional."""

    reason: Text | None = None


class TagBody(BaseModel):
    """A tag value."""

    value: TagValue


class HourResidual(BaseModel):
    """Residuals (forecast - actual) of the holdout rows whose target time has this UTC hour."""

    hour: int
    n: int
    mean: float
    mae: float


class HoldoutFold(BaseModel):
    """One backtest fold: its test period (`start`-`end`), training period, sizes and metrics."""

    fold: int
    start: str
    end: str
    train_start: str
    train_end: str
    n_train: int
    n_test: int
    metrics: dict[str, float]


class HoldoutOut(BaseModel):
    """A version's holdout series (`maestrale.registry.holdout`): `rows` scored, at most 1,000 drawn."""

    schema_: str = Field(alias="schema")
    rows: int
    sampling: str = Field(description="all, or even: rows at evenly spaced positions kept")
    times: list[str] = Field(description="UTC target times, ISO 8601")
    actual: list[float]
    forecast: list[float]
    entity: list[str] | None
    by_hour: list[HourResidual]
    folds: list[HoldoutFold]


class StoredArtifact(BaseModel):
    """An uploaded object: register a version with these fields."""

    key: str
    sha256: str
    size: int


def _json(value: BaseModel, status_code: int = 200) -> Response:
    # our objects are already valid: serialise once in pydantic-core instead of re-validating them.
    # The routes that return this say `-> Response`; their `response_model=` documents the body.
    return Response(value.model_dump_json(), status_code=status_code, media_type="application/json")


def _store(request: Request) -> Any:
    return request.app.state.store


def _actor(request: Request) -> str | None:
    return getattr(request.state, "actor", None)


@router.get("/models", response_model=Page[RegisteredModel], dependencies=[Read])
def list_models(
    request: Request,
    limit: Limit = 100,
    page_token: str | None = None,
    name_like: str | None = None,
    include_archived: bool = False,
) -> Response:
    """Models by name, a page at a time."""
    return _json(
        _store(request).list_models(
            limit=limit, page_token=page_token, name_like=name_like, include_archived=include_archived
        )
    )


@router.get("/models/{name}", response_model=RegisteredModel, dependencies=[Read])
def get_model(request: Request, name: str) -> Response:
    """One model with its tags and aliases."""
    return _json(_store(request).get_model(name))


@router.post("/models/{name}/archive", status_code=204, dependencies=[Write])
def archive_model(request: Request, name: str, body: ReasonBody | None = None) -> Response:
    """Hide a model from listings (versions stay loadable by exact reference); audited."""
    _store(request).archive_model(name, actor=_actor(request), reason=body.reason if body else None)
    return Response(status_code=204)


@router.post("/models/{name}/unarchive", status_code=204, dependencies=[Write])
def unarchive_model(request: Request, name: str, body: ReasonBody | None = None) -> Response:
    """List an archived model again (its archived versions stay archived); 409 if it is not archived."""
    _store(request).unarchive_model(name, actor=_actor(request), reason=body.reason if body else None)
    return Response(status_code=204)


@router.put("/models/{name}/tags/{key}", status_code=204, dependencies=[Write])
def set_model_tag(request: Request, name: str, key: str, body: TagBody) -> Response:
    """Set a tag on a model."""
    _store(request).set_model_tag(name, key, body.value)
    return Response(status_code=204)


@router.delete("/models/{name}/tags/{key}", status_code=204, dependencies=[Write])
def delete_model_tag(request: Request, name: str, key: str) -> Response:
    """Remove a tag from a model."""
    _store(request).set_model_tag(name, key, None)
    return Response(status_code=204)


@router.get("/models/{name}/versions", response_model=Page[ModelVersion], dependencies=[Read])
def list_versions(
    request: Request,
    name: str,
    limit: Limit = 100,
    page_token: str | None = None,
    include_archived: bool = True,
    full: bool = False,
) -> Response:
    """A model's versions, newest first (summaries unless `full=true`)."""
    return _json(
        _store(request).list_versions(
            name, limit=limit, page_token=page_token, include_archived=include_archived, full=full
        )
    )


@router.post("/models/{name}/versions", response_model=ModelVersion, status_code=201, dependencies=[Write])
def create_version(request: Request, name: str, body: VersionCreate) -> Response:
    """Register a version whose artifact was uploaded with `POST /api/v1/artifacts`."""
    validate_name(name)
    a = body.artifact
    if a.key != object_key(a.sha256):
        raise InvalidInput(f"artifact key {a.key!r} does not match sha256 {a.sha256!r}; upload it first")
    if not request.app.state.artifacts.exists(a.key):
        raise InvalidInput(f"artifact {a.sha256} was not uploaded; POST it to /api/v1/artifacts first")
    # the bytes, not the body, say what the artifact is: format, flavor and size are checked here
    declared = request.headers.get(TRUST_HEADER, "").replace(",", " ").split()
    limit = request.app.state.settings.max_upload_mb << 20
    vet_artifact(request.app.state.artifacts, a, name, max_bytes=limit, trusted_types=declared or None)
    if body.created_by is None or request.app.state.settings.auth:
        body.created_by = _actor(request) or body.created_by  # the token, not the body, says who
    return _json(_store(request).create_version(name, body), 201)


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion, dependencies=[Read])
def get_version(request: Request, name: str, version: Version) -> Response:
    """Metadata of one version."""
    return _json(_store(request).get_version(f"{name}:{version}"))


@router.post("/models/{name}/versions/{version}/archive", response_model=ModelVersion, dependencies=[Write])
def archive_version(
    request: Request, name: str, version: Version, body: ReasonBody | None = None
) -> ModelVersion:
    """Archive a version (refused while an alias points at it); audited."""
    reason = body.reason if body else None
    return _store(request).archive_version(f"{name}:{version}", actor=_actor(request), reason=reason)


@router.post("/models/{name}/versions/{version}/unarchive", response_model=ModelVersion, dependencies=[Write])
def unarchive_version(
    request: Request, name: str, version: Version, body: ReasonBody | None = None
) -> ModelVersion:
    """Make an archived version ready again; 409 if it is not archived; audited."""
    reason = body.reason if body else None
    return _store(request).unarchive_version(f"{name}:{version}", actor=_actor(request), reason=reason)


@router.get("/models/{name}/versions/{version}/holdout", response_model=HoldoutOut, dependencies=[Read])
def get_holdout(request: Request, name: str, version: Version) -> dict[str, Any]:
    """The version's holdout series: at most 1,000 (time, actual, forecast) points, the residuals by
    UTC hour of every holdout row, and the backtest folds' periods and metrics."""
    ref = f"{name}:{version}"
    doc = _store(request).holdout(ref)
    if doc is None:
        raise NoHoldout(none_message(ref))
    return doc


@router.put("/models/{name}/versions/{version}/tags/{key}", status_code=204, dependencies=[Write])
def set_version_tag(request: Request, name: str, version: Version, key: str, body: TagBody) -> Response:
    """Set a tag on a version."""
    _store(request).set_version_tag(f"{name}:{version}", key, body.value)
    return Response(status_code=204)


@router.delete("/models/{name}/versions/{version}/tags/{key}", status_code=204, dependencies=[Write])
def delete_version_tag(request: Request, name: str, version: Version, key: str) -> Response:
    """Remove a tag from a version."""
    _store(request).set_version_tag(f"{name}:{version}", key, None)
    return Response(status_code=204)


@router.get("/models/{name}/versions/{version}/artifact", dependencies=[Read])
def download_version(request: Request, name: str, version: Version) -> Response:
    """Stream a version's artifact; headers carry its version, format and registered sha256."""
    return send_version(request, f"{name}:{version}")


@router.get("/models/{name}/aliases/{alias}/artifact", dependencies=[Read])
def download_alias(request: Request, name: str, alias: str) -> Response:
    """The artifact an alias points at, in one round trip (what model servers call on reload)."""
    return send_version(request, f"{name}@{alias}")


def _header_value(value: str) -> str:
    # registration admits only ASCII identifiers; a row stored before that check must not make the
    # download fail while its headers are encoded (Latin-1): percent-encode anything else
    from urllib.parse import quote

    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def send_version(request: Request, ref: str) -> Response:
    """Stream a version's artifact, sha256-checked, with its version, format and flavor headers.

    >>> send_version(request, "pv-foggia@champion")  # a route's answer  # doctest: +SKIP
    """
    name, number, info = _store(request).artifact_of(ref)
    headers = {
        "X-Model-Version": str(number),
        "X-Artifact-Format": _header_value(info.format),
        "X-Artifact-Flavor": _header_value(info.flavor),
    }
    return _send_object(request, info.key, info.sha256, info.size, f"{name}:{number}", headers)


@router.get("/models/{name}/aliases/{alias}", response_model=ModelVersion, dependencies=[Read])
def resolve_alias(request: Request, name: str, alias: str) -> Response:
    """The version an alias points at."""
    return _json(_store(request).get_version(f"{name}@{alias}"))


@router.put("/models/{name}/aliases/{alias}", response_model=AliasChange, dependencies=[Write])
def set_alias(request: Request, name: str, alias: str, body: AliasBody) -> AliasChange:
    """Point an alias at a version (audited; moving `champion` emits `maestrale.model.promoted`)."""
    return _store(request).set_alias(name, alias, body.version, actor=_actor(request), reason=body.reason)


@router.delete("/models/{name}/aliases/{alias}", response_model=AliasChange, dependencies=[Write])
def delete_alias(request: Request, name: str, alias: str) -> AliasChange:
    """Remove an alias."""
    return _store(request).delete_alias(name, alias, actor=_actor(request))


@router.get("/models/{name}/alias-history", response_model=list[AliasChange], dependencies=[Read])
def alias_history(request: Request, name: str, alias: str | None = None) -> list[AliasChange]:
    """Audit trail of alias moves."""
    return _store(request).alias_history(name, alias)


# Well-formed, authorised searches are answered by `api.search_lane.SearchLane` before routing; this
# route answers the rest (its errors) and describes the endpoint in the OpenAPI document.
@router.get("/versions", response_model=Page[ModelVersion], dependencies=[Read])
def search_versions(
    request: Request,
    filter: str | None = None,
    order_by: str | None = None,
    limit: Limit = 100,
    page_token: str | None = None,
    include_archived: bool = False,
    full: bool = False,
) -> Response:
    """Search versions, e.g. `filter=metrics.nmae < 0.08 and tags.site = 'p50'` (summaries unless `full`)."""
    docs, token = _store(request).search_documents(
        filter,
        order_by=order_by,
        limit=limit,
        page_token=page_token,
        include_archived=include_archived,
        full=full,
    )
    # the database already wrote each version as JSON: pass it through untouched
    return Response(page_body(docs, token), media_type="application/json")


@router.post("/artifacts", response_model=StoredArtifact, status_code=201, dependencies=[Write])
async def upload_artifact(request: Request) -> StoredArtifact:
    """Upload an artifact as the raw request body; send `X-Content-Sha256` to detect corruption in transit."""
    limit = request.app.state.settings.max_upload_mb * (1 << 20)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"upload of {int(declared)} bytes exceeds the limit of "
            f"{limit >> 20} MiB (raise MAESTRALE_MAX_UPLOAD_MB on the server)"
        )
    sha = hashlib.sha256()
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as spool:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"upload exceeds the limit of {limit >> 20} MiB "
                    "(raise MAESTRALE_MAX_UPLOAD_MB on the server)"
                )
            sha.update(chunk)
            spool.write(chunk)
        expected = request.headers.get("x-content-sha256")
        if expected and expected != sha.hexdigest():
            raise InvalidInput(
                f"upload corrupted in transit: sha256 {sha.hexdigest()} != declared {expected}"
            )
        obj = await run_in_threadpool(request.app.state.artifacts.put_file, spool)
    return StoredArtifact(key=obj.key, sha256=obj.sha256, size=obj.size)


@router.get("/artifacts/{sha256}", dependencies=[Read])
def download_artifact(request: Request, sha256: str) -> Response:
    """Stream an object by digest."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise InvalidInput(f"{sha256!r} is not a sha256 hex digest")
    key = object_key(sha256)
    size = request.app.state.artifacts.size(key)  # ArtifactMissing: a 404 for an unknown digest
    return _send_object(request, key, sha256, size, f"object {sha256}")


def _send_object(
    request: Request, key: str, sha256: str, size: int | None, what: str, extra: dict[str, str] | None = None
) -> Response:
    artifacts = request.app.state.artifacts
    headers = {"X-Content-Sha256": sha256, **(extra or {})}
    if size is not None and size <= CHUNK:
        # small models: one read, and a corrupted object fails here with a clear 500 instead of mid-stream
        return Response(
            artifacts.get_bytes(key, sha256, what), media_type="application/octet-stream", headers=headers
        )
    chunks = artifacts.iter_chunks(key, what)
    first = next(chunks, b"")  # raises ArtifactMissing before the response starts

    def body() -> Any:
        yield first
        yield from chunks

    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(body(), media_type="application/octet-stream", headers=headers)


# GET /api/v1/audit (maestrale.api.audit) rides on this router, which every app includes: the audit
# trail spans components, but it needs no wiring of its own in the app factory
