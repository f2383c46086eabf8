"""The fleet page's pages: counts over the whole fleet, a slice of the sorted rows, links between."""

from __future__ import annotations

import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from maestrale.api.app import create_app
from maestrale.config import load_settings


@pytest.fixture
def client(tmp_path, monkeypatch) -> TestClient:
    from sklearn.linear_model import Ridge

    from maestrale import Registry

    env = {
        "MAESTRALE_HOME": str(tmp_path), "MAESTRALE_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
        "MAESTRALE_STORAGE_URL": f"file://{tmp_path / 'a'}", "MAESTRALE_AUTH": "false",
    }  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reg = Registry()
    x = np.arange(12.0).reshape(6, 2)
    model = Ridge().fit(x, x.sum(axis=1))
    for i in range(5):  # tags on the version, as a spec's `tags:` land: the fleet shows and filters them
        reg.register(f"pv-page-{i}", model, tags={"site": f"s{i % 2}", "request_id": f"r{i}"})
    return TestClient(create_app(load_settings()), headers={"accept": "text/html"})


def _models(html: str) -> list[str]:
    return re.findall(r'<tr data-model="([^"]+)"', html)


def test_the_fleet_comes_a_page_at_a_time(client):
    first = client.get("/", params={"per": 2, "sort": "model"})
    assert first.status_code == 200 and _models(first.text) == ["pv-page-0", "pv-page-1"]
    assert "1–2 of 5" in first.text and "page 1 of 3" in first.text and "All <b>5</b>" in first.text
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    last = client.get("/", params={"per": 2, "sort": "model", "page": 3})
    assert _models(last.text) == ["pv-page-4"] and 'rel="next"' not in last.text
    beyond = client.get("/", params={"per": 2, "sort": "model", "page": 99})  # clamped to the last page
    assert _models(beyond.text) == ["pv-page-4"]
    backwards = client.get("/", params={"per": 2, "sort": "model", "desc": "true"})
    assert _models(backwards.text) == ["pv-page-4", "pv-page-3"]
    # a filter pages what it matches; the default page holds the whole small fleet, with no pager
    tagged = client.get("/", params={"tag": "site=s0", "per": 2, "sort": "model"})
    assert _models(tagged.text) == ["pv-page-0", "pv-page-2"] and "1–2 of 3" in tagged.text
    assert "site=s0" in tagged.text and "request_id" not in tagged.text  # bookkeeping tags are not shown
    assert len(_models(client.get("/").text)) == 5 and 'class="pager"' not in client.get("/").text


@pytest.mark.parametrize("query", [{"per": 0}, {"page": 0}, {"per": "many"}, {"state": "sad"}])
def test_bad_paging_is_a_400_page(client, query):
    r = client.get("/", params=query)
    assert r.status_code == 400 and "<html" in r.text
