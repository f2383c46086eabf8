"""The audit trail (`maestrale.api.audit`) on SQLite and PostgreSQL: rows made through the registry,
the monitor's record writers and the token API, listed newest first, filtered, and over REST with
token events for admin tokens only."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import Ridge

from maestrale import Registry
from maestrale.api.app import create_app
from maestrale.api.audit import audit_trail
from maestrale.config import load_settings
from maestrale.errors import InvalidInput
from maestrale.monitoring import retraining
from maestrale.monitoring.store import MonitorStore
from maestrale.tokens import create_token, list_tokens, revoke_token

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _tick() -> None:
    time.sleep(0.002)  # distinct recorded times, so "newest first" has one right answer


def _world(url: str, tmp_path: Path) -> tuple[Registry, MonitorStore, datetime]:
    """Two models' history: alias moves, archive/unarchive, a breach, a retraining, a decision, tokens."""
    started = datetime.now(UTC)
    ana = Registry(database_url=url, storage_url=f"file://{tmp_path}/artifacts", actor="ana")
    model = Ridge().fit([[0.0], [1.0]], [0.0, 1.0])
    for name in ("pv-a", "pv-b"):
        ana.register(name, model)
        ana.register(name, model)
    ana.set_alias("pv-a", "champion", 1, reason="first deploy")
    _tick()
    ana.archive("pv-b:2", reason="bad data")
    _tick()
    monitor = MonitorStore(url)
    with monitor._writer.begin() as conn:
        monitor.add_breach(
            conn, model="pv-a", version=1, policy="default", condition="shortfall", metric="nmae",
            value=0.21, threshold=0.15, window="7D", n=168, as_of=T0, actions={"breach": True}, details={},
        )  # fmt: skip
    _tick()
    with monitor._writer.begin() as conn:
        retraining.request(
            conn, model="pv-a", spec={"name": "pv-a"}, reason="shortfall: nmae 0.21 > 0.15",
            parent_version=1, as_of=T0, idempotency_key="k1",
        )  # fmt: skip
    _tick()
    with monitor._writer.begin() as conn:
        monitor.add_decision(
            conn, model="pv-a", champion_version=1, challenger_version=2, outcome="promoted",
            reason="nmae 0.08 beats 0.21 by more than 5%", metric="nmae", margin=0.05,
            window_start=T0, window_end=T0 + timedelta(days=7), n=168,
            champion_metrics={"nmae": 0.21}, challenger_metrics={"nmae": 0.08}, as_of=T0 + timedelta(days=7),
        )  # fmt: skip
    _tick()
    Registry(database_url=url, storage_url=f"file://{tmp_path}/artifacts", actor="monitor").set_alias(
        "pv-a", "champion", 2, reason="challenger promoted"
    )
    _tick()
    create_token(url, "dashboard", "read", created_by="root")
    _tick()
    ana.unarchive("pv-b:2", reason="data fixed")
    _tick()
    dashboard = next(t for t in list_tokens(url) if t.name == "dashboard")
    revoke_token(url, dashboard.id, revoked_by="root")
    return ana, monitor, started


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_audit_trail_merges_every_component_newest_first(backend: str, tmp_path: Path, request) -> None:
    url = f"sqlite:///{tmp_path}/audit.db" if backend == "sqlite" else request.getfixturevalue("fresh_pg")
    reg, monitor, started = _world(url, tmp_path)
    store = reg._meta  # the server's SqlStore

    entries = audit_trail(store, monitor, url)
    kinds = [
        (e["kind"], e["model"], e["details"].get("action") or e["details"].get("alias")) for e in entries
    ]
    assert kinds == [
        ("token", None, "revoked"),
        ("archive", "pv-b", "unarchived"),
        ("token", None, "created"),
        ("alias", "pv-a", "champion"),
        ("decision", "pv-a", None),
        ("retraining", "pv-a", None),
        ("breach", "pv-a", None),
        ("archive", "pv-b", "archived"),
        ("alias", "pv-a", "champion"),
    ]
    times = [e["time"] for e in entries]
    assert times == sorted(times, reverse=True) and all(t.tzinfo is not None for t in times)
    promoted, decision = entries[3], entries[4]
    assert promoted["actor"] == "monitor" and promoted["details"] == {"alias": "champion", "from": 1, "to": 2}
    assert promoted["reason"] == "challenger promoted" and promoted["version"] == 2
    assert decision["details"]["outcome"] == "promoted" and decision["details"]["challenger_metrics"] == {
        "nmae": 0.08
    }
    assert entries[5]["details"]["status"] == "requested" and entries[5]["reason"].startswith("shortfall")
    breach = entries[6]
    assert breach["details"]["value"] == 0.21 and breach["details"]["as_of"].startswith("2026-06-01")
    assert entries[7]["actor"] == "ana" and entries[7]["reason"] == "bad data"
    assert entries[0]["actor"] == "root" and entries[0]["details"]["name"] == "dashboard"

    # filters: kind, model, actor, time range, limit
    only = audit_trail(store, monitor, url, kinds=["archive"])
    assert [e["details"]["action"] for e in only] == ["unarchived", "archived"]
    assert {e["kind"] for e in audit_trail(store, monitor, url, model="pv-b")} == {"archive"}
    assert {e["actor"] for e in audit_trail(store, monitor, url, actor="ana")} == {"ana"}
    by_monitor = audit_trail(store, monitor, url, actor="monitor")
    assert [e["kind"] for e in by_monitor] == ["alias", "decision", "retraining", "breach"]
    assert audit_trail(store, monitor, url, until=started) == []
    newer = audit_trail(store, monitor, url, since=entries[2]["time"])
    assert newer == entries[:3]
    page = audit_trail(store, monitor, url, limit=4)
    assert page == entries[:4]
    assert audit_trail(store, monitor, url, until=page[-1]["time"], limit=100) == entries[4:]
    assert [e["kind"] for e in audit_trail(store, monitor, url, include_tokens=False)][:2] == [
        "archive",
        "alias",
    ]
    for bad, message in [
        ({"kinds": ["aliases"]}, "unknown audit kind 'aliases'"),
        ({"since": datetime(2026, 1, 1)}, "no UTC offset"),
        ({"since": T0, "until": T0}, "must be after since"),
        ({"limit": 0}, "limit must be from 1"),
        ({"model": "bad name!"}, "name"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            audit_trail(store, monitor, url, **bad)


def test_rest_audit_shows_token_changes_to_admin_tokens_only(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", auth=True)
    app = create_app(settings)
    url = str(settings.database_url)
    _world(url, tmp_path)
    reader = create_token(url, "viewer", "read", created_by="root")
    admin = (tmp_path / "home" / "admin.token").read_text().strip()
    with TestClient(app) as client:
        as_reader = {"Authorization": f"Bearer {reader}"}
        r = client.get("/api/v1/audit", headers=as_reader)
        body = r.json()
        assert r.status_code == 200 and body["hidden"] == ["token"] and body["next_until"] is None
        assert "token" not in {e["kind"] for e in body["entries"]} and len(body["entries"]) == 7
        r = client.get("/api/v1/audit", params={"kind": "token"}, headers=as_reader)
        assert r.status_code == 403 and "need 'admin'" in r.json()["error"]["message"]
        as_admin = {"Authorization": f"Bearer {admin}"}
        body = client.get(
            "/api/v1/audit", params={"kind": "token,archive", "limit": 3}, headers=as_admin
        ).json()
        assert [e["kind"] for e in body["entries"]] == ["token", "token", "archive"]
        assert body["entries"][0]["details"]["name"] == "viewer" and body["hidden"] == []
        assert body["next_until"] == body["entries"][-1]["time"]
        r = client.get("/api/v1/audit", params={"kind": "alias", "model": "pv-a"}, headers=as_reader)
        assert [e["details"]["to"] for e in r.json()["entries"]] == [2, 1]
        for params, status in [
            ({"kind": "everything"}, 400),
            ({"since": "2026-06-01T00:00:00"}, 400),
            ({"limit": 5000}, 400),
            ({"actor": "x" * 200}, 400),
        ]:
            r = client.get("/api/v1/audit", params=params, headers=as_reader)
            assert r.status_code == status, (params, r.text)
            assert r.json()["error"]["message"]
        # unarchive over REST records the token's name as the actor
        r = client.post("/api/v1/models/pv-b/versions/2/archive", json={"reason": "again"}, headers=as_admin)
        assert r.status_code == 200 and r.json()["status"] == "archived"
        r = client.post(
            "/api/v1/models/pv-b/versions/2/unarchive", json={"reason": "back"}, headers=as_reader
        )
        assert r.status_code == 403
        r = client.post("/api/v1/models/pv-b/versions/2/unarchive", headers=as_admin)
        assert r.status_code == 200 and r.json()["status"] == "ready"
        r = client.post("/api/v1/models/pv-b/versions/2/unarchive", headers=as_admin)
        assert r.status_code == 409 and "is not archived" in r.json()["error"]["message"]
        newest = client.get("/api/v1/audit", params={"kind": "archive", "limit": 2}, headers=as_admin).json()
        assert [(e["actor"], e["reason"]) for e in newest["entries"]] == [("admin", None), ("admin", "again")]
        # a revocation over REST names the admin token that did it
        viewer = next(t for t in list_tokens(url) if t.name == "viewer")
        assert client.delete(f"/api/v1/tokens/{viewer.id}", headers=as_admin).status_code == 204
        newest = client.get("/api/v1/audit", params={"kind": "token", "limit": 1}, headers=as_admin).json()
        assert newest["entries"][0]["actor"] == "admin"
        assert newest["entries"][0]["details"] == {
            "action": "revoked", "id": viewer.id, "name": "viewer", "scope": "read", "prefix": reader[:10]
        }  # fmt: skip
