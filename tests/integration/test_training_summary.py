"""Training requests per status and each fleet's progress (`TrainingRequests.counts` / `fleets`, REST
`GET /api/v1/trainings/summary`): what the web UI's trainings page shows, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from maestrale.training.requests import TrainingRequests
from maestrale.training.specio import members_of, spec_from_data
from tests.conftest import start_server

ONE = {
    "name": "pv-sum",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "ridge",
    "train_window": {"start": "2011-06-01", "end": "2011-07-31"},
    "split": {"holdout": {"test_start": "2011-07-15"}},
    "capacity": 3.4,
}
FLEET = {**ONE, "name": "pv-sum-{site}", "fleet": {"site": ["a", "b", "c"]}}


def _fill(store: TrainingRequests) -> tuple[str, list[str]]:
    """One single request and a fleet of three; one member completes, one fails."""
    [single] = store.submit_members(members_of(spec_from_data(ONE)), requested_by="alice")
    fleet = store.submit_members(members_of(spec_from_data(FLEET)), fleet=True, requested_by="bob")
    store.started(fleet[0].id, "w1", 1)
    store.completed(fleet[0].id, 1, {"nmae": 0.1})
    store.failed(fleet[1].id, "boom", 1)
    return single.id, [m.id for m in fleet]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_counts_and_fleet_progress(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'r.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg")
    store = TrainingRequests(url)
    _fill(store)
    assert store.counts() == {"queued": 2, "started": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert store.counts(name="pv-sum")["queued"] == 1
    [fleet] = store.fleets()
    assert fleet["total"] == 3 and fleet["requested_by"] == "bob"
    assert fleet["counts"] == {"queued": 1, "started": 0, "completed": 1, "failed": 1, "cancelled": 0}
    assert store.fleets(name="pv-sum-b")[0]["fleet_id"] == fleet["fleet_id"]
    assert store.fleets(name="pv-sum") == []  # the single request is no fleet


def test_rest_summary(tmp_path):
    handle = start_server(tmp_path / "home")
    try:
        store = TrainingRequests(f"sqlite:///{tmp_path / 'home' / 'registry.db'}")
        _fill(store)
        auth = (
            {"Authorization": f"Bearer {handle.admin_token}"}
            if (handle.home / "admin.token").exists()
            else {}
        )
        body = httpx.get(f"{handle.url}/api/v1/trainings/summary", headers=auth).json()
        assert body["counts"]["queued"] == 2 and body["fleets"][0]["counts"]["failed"] == 1
        r = httpx.get(f"{handle.url}/api/v1/trainings/summary", params={"fleets": 0}, headers=auth)
        assert r.status_code in (400, 422), r.text  # bounded
    finally:
        handle.stop()
