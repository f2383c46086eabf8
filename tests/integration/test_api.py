"""The REST API over real HTTP: auth and scopes, limits, health, metrics, OpenAPI, streaming artifacts."""

from __future__ import annotations

import hashlib
import os
import stat

import httpx
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from maestrale import Registry
from maestrale.errors import Forbidden, PayloadTooLarge, Unauthorized
from maestrale.tokens import create_token, list_tokens, revoke_token
from tests.conftest import start_server


def _db(server) -> str:
    return f"sqlite:///{server.home / 'registry.db'}"


def test_admin_token_created_on_first_start_with_mode_0600(server):
    path = server.home / "admin.token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert server.admin_token.startswith("mst_")
    tokens = list_tokens(_db(server))
    assert [(t.name, t.scope) for t in tokens] == [("admin", "admin")]
    # the database keeps only a hash of it
    assert server.admin_token not in (server.home / "registry.db").read_bytes().decode("latin-1")


def test_missing_unknown_and_underscoped_tokens(server, regression_data):
    X, y = regression_data
    r = httpx.get(f"{server.url}/api/v1/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(f"{server.url}/api/v1/models", headers={"Authorization": "Bearer mst_nope"})
    assert r.status_code == 401
    read_token = create_token(_db(server), "dashboard", "read")
    write_token = create_token(_db(server), "trainer", "write")
    reader = Registry(server.url, token=read_token)
    assert reader.list_models().items == []
    with pytest.raises(Forbidden, match="scope 'read'; this operation needs 'write'"):
        reader.register("scoped", Ridge().fit(X, y))
    writer = Registry(server.url, token=write_token)
    mv = writer.register("scoped", Ridge().fit(X, y))
    assert mv.created_by == "trainer"  # the token names the actor, not the request body
    writer.set_alias("scoped", "champion", 1)
    assert writer.alias_history("scoped")[0].actor == "trainer"
    np.testing.assert_allclose(reader.load("scoped").predict(X), Ridge().fit(X, y).predict(X))
    r = httpx.post(
        f"{server.url}/api/v1/tokens",
        json={"name": "x", "scope": "read"},
        headers={"Authorization": f"Bearer {write_token}"},
    )
    assert r.status_code == 403
    with pytest.raises(Unauthorized):
        Registry(server.url, token="mst_wrong").list_models()


def test_token_admin_endpoints_and_revocation(server, monkeypatch):
    import maestrale.tokens as tokens  # TokenCache lives there, shared with the model server

    monkeypatch.setattr(tokens, "CACHE_TTL_S", 0.0)
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    r = httpx.post(f"{server.url}/api/v1/tokens", json={"name": "ci", "scope": "write"}, headers=admin)
    assert r.status_code == 201
    secret = r.json()["token"]
    listed = httpx.get(f"{server.url}/api/v1/tokens", headers=admin).json()
    assert [t["name"] for t in listed] == ["admin", "ci"] and all(t["token"] is None for t in listed)
    ci = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{server.url}/api/v1/models", headers=ci).status_code == 200
    revoke_token(_db(server), listed[1]["id"])
    assert httpx.get(f"{server.url}/api/v1/models", headers=ci).status_code == 401
    r = httpx.post(f"{server.url}/api/v1/tokens", json={"name": "bad", "scope": "root"}, headers=admin)
    assert r.status_code == 400
    assert "choose one of read, predict, write, admin" in r.json()["error"]["message"]


def test_upload_limit_and_transit_corruption(tmp_path):
    handle = start_server(tmp_path / "home", max_upload_mb=1)
    try:
        headers = {"Authorization": f"Bearer {handle.admin_token}"}
        big = os.urandom((1 << 20) + 10)
        r = httpx.post(f"{handle.url}/api/v1/artifacts", content=big, headers=headers)
        assert r.status_code == 413 and "MAESTRALE_MAX_UPLOAD_MB" in r.json()["error"]["message"]

        def chunks():  # no Content-Length: the server must count while streaming
            for _ in range(3):
                yield os.urandom(600_000)

        r = httpx.post(f"{handle.url}/api/v1/artifacts", content=chunks(), headers=headers)
        assert r.status_code == 413
        small = b"abc" * 100
        r = httpx.post(
            f"{handle.url}/api/v1/artifacts", content=small, headers={**headers, "x-content-sha256": "0" * 64}
        )
        assert r.status_code == 400 and "corrupted in transit" in r.json()["error"]["message"]
        assert not list((tmp_path / "home" / "artifacts").rglob("*.npy"))
        reg = Registry(handle.url, token=handle.admin_token)
        with pytest.raises(PayloadTooLarge):
            reg.register("too-big", {"blob": os.urandom(2 << 20)}, format="pickle")
        with pytest.raises(Exception, match="not found"):
            reg.get_model("too-big")
    finally:
        handle.stop()


def test_registering_an_unuploaded_artifact_is_refused(server):
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    digest = hashlib.sha256(b"never uploaded").hexdigest()
    body = {
        "artifact": {
            "key": f"objects/sha256/{digest[:2]}/{digest}",
            "sha256": digest,
            "size": 14,
            "format": "skops",
            "flavor": "sklearn.linear_model.Ridge",
        }
    }
    r = httpx.post(f"{server.url}/api/v1/models/ghost/versions", json=body, headers=headers)
    assert r.status_code == 400 and "POST it to /api/v1/artifacts first" in r.json()["error"]["message"]
    body["artifact"]["key"] = "../../etc/passwd"
    r = httpx.post(f"{server.url}/api/v1/models/ghost/versions", json=body, headers=headers)
    assert r.status_code == 400 and "does not match" in r.json()["error"]["message"]


def test_large_artifact_streams_both_ways(server):
    reg = Registry(server.url, token=server.admin_token)
    payload = {"blob": os.urandom(3 << 20)}
    mv = reg.register("large", payload, format="pickle")
    assert mv.artifact.size > 3 << 20
    assert reg.load(mv.ref, trusted=True) == payload
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    with httpx.stream("GET", f"{server.url}/api/v1/models/large/versions/1/artifact", headers=headers) as r:
        assert r.status_code == 200 and r.headers["x-content-sha256"] == mv.artifact.sha256
        digest = hashlib.sha256()
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == mv.artifact.sha256


def test_health_metrics_openapi_and_errors(server, regression_data):
    X, y = regression_data
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}
    reg = Registry(server.url, token=server.admin_token)
    reg.register("metered", Ridge().fit(X, y))
    reg.list_models()
    text = httpx.get(f"{server.url}/metrics").text
    assert (
        'maestrale_http_requests_total{method="POST",route="/api/v1/models/{name}/versions",status="201"}'
        in text
    )
    assert "maestrale_registry_versions 1.0" in text
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path in (
        "/api/v1/models",
        "/api/v1/models/{name}/versions",
        "/api/v1/versions",
        "/api/v1/models/{name}/aliases/{alias}",
        "/api/v1/artifacts",
        "/api/v1/tokens",
    ):
        assert path in spec["paths"], path
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    r = httpx.get(f"{server.url}/api/v1/models/metered/versions/99", headers=headers)
    assert r.status_code == 404 and "version 99" in r.json()["error"]["message"]
    r = httpx.get(f"{server.url}/api/v1/models/metered/versions/abc", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid"
    r = httpx.put(
        f"{server.url}/api/v1/models/metered/aliases/champion", json={"version": 0}, headers=headers
    )
    assert r.status_code == 400
    r = httpx.get(f"{server.url}/api/v1/versions", params={"filter": "bogus ~ 1"}, headers=headers)
    assert r.status_code == 400 and "cannot parse filter" in r.json()["error"]["message"]


def test_remote_registry_reports_unreachable_server():
    from maestrale.errors import BackendUnavailable

    reg = Registry("http://127.0.0.1:9", token="x")
    with pytest.raises(BackendUnavailable, match="is `maestrale server` running"):
        reg.list_models()
