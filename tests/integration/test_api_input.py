"""Every client mistake is a 4xx in the error envelope: the REST API over real HTTP, SQLite and PostgreSQL.

The requests are the causes of the 500s a Schemathesis run found: integers beyond 32/64 bits, filter
literals that broke `unicode_escape`, a lineage entry without `relation`, a 10**11-day window,
NaN/Infinity in version metadata (which, once stored on SQLite, broke every listing), body-parse
errors outside the envelope, and an OpenAPI document without a security scheme.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from maestrale.registry.formats import serialize
from tests.conftest import fresh_pg_database, start_server

BIG = 99999999999999999999  # > 2**64


@dataclass
class Api:
    """A running server, an admin client and a model with one version (tags.city = 'Zürich')."""

    url: str
    http: httpx.Client
    model: str

    def body(self, **fields: Any) -> dict[str, Any]:
        """A valid `VersionCreate` body for an uploaded model, with `fields` on top."""
        model = serialize(LinearRegression().fit(np.arange(4.0).reshape(-1, 1), np.arange(4.0)))
        up = self.http.post("/api/v1/artifacts", content=model.data)
        assert up.status_code == 201, up.text
        artifact = {**up.json(), "format": model.format, "flavor": model.flavor}
        return {"artifact": artifact, **fields}

    def register(self, raw_json: str) -> httpx.Response:
        """POST a version body as raw text (json.dumps writes NaN/Infinity, as a buggy client would)."""
        return self.http.post(
            f"/api/v1/models/{self.model}/versions",
            content=raw_json,
            headers={"Content-Type": "application/json"},
        )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home: Path = tmp_path_factory.mktemp(f"api-input-{request.param}")
    with contextlib.ExitStack() as stack:
        # a database of its own: the server writes admin.token only into a database with no token yet
        db = (
            stack.enter_context(fresh_pg_database())
            if request.param == "postgres"
            else f"sqlite:///{home}/r.db"
        )
        yield from _api_on(home, db)


def _api_on(home: Path, db: str) -> Iterator[Api]:
    handle = start_server(home, database_url=db)
    http = httpx.Client(
        base_url=handle.url, headers={"Authorization": f"Bearer {handle.admin_token}"}, timeout=60
    )
    model = f"input-{uuid.uuid4().hex[:8]}"
    api = Api(handle.url, http, model)
    first = api.register(
        json.dumps(api.body(tags={"city": "Zürich", "path": "C:\\temp"}, metrics={"nmae": 0.1}))
    )
    assert first.status_code == 201, first.text
    try:
        yield api
    finally:
        http.close()
        handle.stop()


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"code", "message"}
    return err["message"]


# -- integers ---------------------------------------------------------------------------------------
def test_integers_beyond_their_column_are_400_naming_the_field(api: Api):
    m = api.model
    assert "version" in _error(api.http.get(f"/api/v1/models/{m}/versions/{BIG}"), 400)
    assert "version" in _error(api.http.get(f"/api/v1/models/{m}/versions/2147483648/artifact"), 400)
    assert "version" in _error(api.http.put(f"/api/v1/models/{m}/aliases/a", json={"version": 10**30}), 400)
    assert "token_id" in _error(api.http.delete(f"/api/v1/tokens/{BIG}"), 400)
    forged = base64.urlsafe_b64encode(f"o:{10**30}".encode()).decode()
    assert "page_token" in _error(api.http.get("/api/v1/versions", params={"page_token": forged}), 400)
    assert "page_token" in _error(
        api.http.get(f"/api/v1/models/{m}/versions", params={"page_token": forged}), 400
    )
    assert "version" in _error(api.http.get("/api/v1/versions", params={"filter": "version = 1e40"}), 400)
    assert "version" in _error(api.http.get("/api/v1/versions", params={"filter": f"version = {BIG}"}), 400)
    submit = api.http.post("/api/v1/trainings", json={"spec": {"name": m}, "parent_version": BIG})
    assert "parent_version" in _error(submit, 400)
    assert "parent_version" in _error(api.register(json.dumps(api.body(parent_version=BIG))), 400)
    assert "params.n" in _error(api.register(json.dumps(api.body(params={"n": 10**400}))), 400)
    perf = api.http.get(f"/api/v1/monitoring/models/{m}/performance", params={"live": True, "version": BIG})
    assert "version" in _error(perf, 400)
    batch = {"model": m, "version": BIG, "records": []}
    assert "version" in _error(api.http.post("/api/v1/monitoring/predictions", json=batch), 400)
    # in range but absent: the truth is 404
    assert "not found" in _error(api.http.get(f"/api/v1/models/{m}/versions/2147483647"), 404)


# -- filters ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (r"tags.city = '\x'", "position 13: unknown escape \\x"),
        (r"tags.city = '\N'", "unknown escape \\N"),
        (r"tags.city = '\u12'", "\\u needs 4 hex digits"),
        ("metrics.nmae > -1e999", "not a finite number"),
        (" and ".join(["version = 1"] * 1000), "the limit is 4096"),
        (" and ".join(["version = 1"] * 33), "more than 32 clauses"),
        ("tags.city = 'unterminated", "unterminated string"),
        ("name like 'pv\\\\'", "ends with the escape character"),
        ("created_at > 5", "ISO 8601"),
    ],
)
def test_bad_filters_are_400_pointing_at_the_clause(api: Api, flt: str, expected: str):
    msg = _error(api.http.get("/api/v1/versions", params={"filter": flt}), 400)
    assert expected in msg and "filter" in msg


def test_non_ascii_and_escaped_filter_values_match(api: Api):
    for flt in ("tags.city = 'Zürich'", r"tags.city = 'Z\u00fcrich'", r"tags.path = 'C:\\temp'"):
        resp = api.http.get("/api/v1/versions", params={"filter": f"{flt} and name = '{api.model}'"})
        assert resp.status_code == 200, resp.text
        assert [v["version"] for v in resp.json()["items"]] == [1], flt


def test_long_order_by_is_400(api: Api):
    order = ", ".join(["version desc"] * 40)
    assert "order_by" in _error(api.http.get("/api/v1/versions", params={"order_by": order}), 400)


# -- version metadata ---------------------------------------------------------------------------------
def test_lineage_entry_without_relation_is_400(api: Api):
    msg = _error(api.register(json.dumps(api.body(lineage=[{"target": "s3://lake/pv.parquet"}]))), 400)
    assert "lineage.0.relation" in msg
    msg = _error(api.register(json.dumps(api.body(lineage=[{"relation": "x y", "target": "t"}]))), 400)
    assert "lineage.0.relation" in msg


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"metrics": {"nmae": float("inf")}}, "metrics.nmae is infinite"),
        ({"metrics": {"nmae": float("nan")}}, "metrics.nmae is NaN"),
        ({"metrics": {"rmse": "<1e400>"}}, "metrics.rmse is infinite"),  # the literal 1e400
        ({"params": {"alpha": float("-inf")}}, "params.alpha is infinite"),
        ({"duration_s": float("inf")}, "duration_s is infinite"),
        (
            {"spec": {"estimator": {"params": {"missing": [1.0, float("nan")]}}}},
            "spec.estimator.params.missing[1]",
        ),
        ({"profile": {"columns": {"ghi": {"mean": float("inf")}}}}, "profile.columns.ghi.mean is infinite"),
        (
            {"lineage": [{"relation": "data", "target": "t", "detail": {"x": float("inf")}}]},
            "lineage[0].detail.x",
        ),
    ],
)
def test_non_finite_numbers_are_refused_and_listings_stay_up(api: Api, fields: dict, path: str):
    raw = json.dumps(api.body(**fields)).replace('"<1e400>"', "1e400")
    assert path in _error(api.register(raw), 400)
    assert api.http.get(f"/api/v1/models/{api.model}/versions").status_code == 200
    assert api.http.get("/api/v1/versions", params={"full": True}).status_code == 200


def test_text_the_database_cannot_store_is_400(api: Api):
    assert "NUL" in _error(api.register(json.dumps(api.body(description="a\x00b"))), 400)
    tag = api.http.put(f"/api/v1/models/{api.model}/versions/1/tags/k", json={"value": "x" * 501})
    assert "value" in _error(tag, 400)
    assert "NUL" in _error(
        api.http.get(f"/api/v1/models/{api.model}/alias-history", params={"alias": "a\x00"}), 400
    )
    assert "name_like" in _error(api.http.get("/api/v1/models", params={"name_like": "pv\\"}), 400)


# -- monitoring -------------------------------------------------------------------------------------
def test_windows_beyond_ten_years_are_400(api: Api):
    record = {
        "record_id": "r1", "entity": "p1", "issued_at": "2012-06-01T00:00:00Z",
        "target_time": "2012-06-02T00:00:00Z", "features": {"ghi": 1.0}, "prediction": 1.0,
    }  # fmt: skip
    logged = api.http.post(
        "/api/v1/monitoring/predictions", json={"model": api.model, "version": 1, "records": [record]}
    )
    assert logged.status_code == 200, logged.text
    base = f"/api/v1/monitoring/models/{api.model}"
    for path, params in [
        ("/performance", {"window": "99999999999D"}),
        ("/performance", {"window": "99999999999D", "live": True}),
        ("/drift", {"window": "99999999999D"}),
        ("/performance", {"window": "3651D"}),
    ]:
        assert "maximum window" in _error(api.http.get(base + path, params=params), 400), (path, params)
    assert api.http.get(base + "/performance", params={"window": "3650D"}).status_code == 200


# -- the envelope and OpenAPI -----------------------------------------------------------------------
def test_parse_errors_unknown_routes_and_methods_use_the_envelope(api: Api):
    bad_json = api.register('{"artifact": ')
    assert "invalid request" in _error(bad_json, 400)
    not_utf8 = api.http.post(
        f"/api/v1/models/{api.model}/versions",
        content=b'{"a": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert "parsing the body" in _error(not_utf8, 400)  # FastAPI's own HTTPException
    assert api.http.get("/api/v1/nothing-here").json()["error"]["code"] == "not_found"
    wrong = api.http.delete("/api/v1/versions")
    assert "allowed: GET" in _error(wrong, 405) and wrong.headers["allow"] == "GET"
    assert "NUL" in _error(api.http.get("/api/v1/monitoring/models/a%00b/breaches"), 400)


def test_openapi_declares_the_bearer_scheme_and_401s_are_unchanged(api: Api):
    doc = httpx.get(f"{api.url}/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["paths"]["/api/v1/models"]["get"]["security"] == [{"HTTPBearer": []}]
    assert doc["paths"]["/api/v1/tokens"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    missing = httpx.get(f"{api.url}/api/v1/models")
    assert "missing bearer token" in _error(missing, 401)
    basic = httpx.get(f"{api.url}/api/v1/models", headers={"Authorization": "Basic abc"})
    assert "missing bearer token" in _error(basic, 401)
    unknown = httpx.get(f"{api.url}/api/v1/models", headers={"Authorization": "Bearer mst_nope"})
    assert "unknown or revoked token" in _error(unknown, 401)


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    """Run `app` (with test-only routes) under uvicorn on a free port, as `start_server` does."""
    import uvicorn

    from tests.services import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def test_stray_validation_errors_and_unexpected_exceptions(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from pydantic import BaseModel

    from maestrale.api.app import create_app
    from maestrale.config import load_settings

    class Needs(BaseModel):
        count: int

    app = create_app(load_settings(home=tmp_path))

    @app.get("/boom/validation")
    def _validation() -> None:
        Needs.model_validate({"count": "many"})  # a model built from client data inside a handler

    @app.get("/boom/crash")
    def _crash() -> None:
        raise RuntimeError("password=hunter2")

    with _serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert "count: Input should be a valid integer" in _error(client.get("/boom/validation"), 400)
        crash = client.get("/boom/crash")
        msg = _error(crash, 500)
        assert crash.json()["error"]["code"] == "internal" and "hunter2" not in crash.text
        rid = crash.headers["x-request-id"]
        assert rid in msg
        # the connection stays usable: Starlette's own 500 path re-raises and uvicorn then closes it, so a
        # client's next request on that keep-alive connection failed with a reset
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
        conn.request("GET", "/boom/crash")
        assert conn.getresponse().read() and conn.sock is not None
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    logged = [r for r in caplog.records if r.name == "maestrale.api" and rid in r.getMessage()]
    assert logged and "password=hunter2" in str(logged[0].exc_info[1])
