"""The search's fast lane (`api.search_lane`) answers exactly what the FastAPI route answers.

Every well-formed, authorised `GET /api/v1/versions` is answered by the lane; the same query with a
parameter the lane does not know goes on to the route (which ignores unknown parameters), so both
answers can be compared byte for byte. Every malformed or unauthorised search reaches the route and
gets its 4xx envelope, and the lane counts none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import Ridge

from maestrale import Registry
from maestrale.api.app import create_app
from maestrale.api.search_lane import SearchLane, search_arguments
from maestrale.config import load_settings
from maestrale.tokens import create_token


def _lane(app: Any) -> SearchLane:
    layer = app.middleware_stack
    while not isinstance(layer, SearchLane):
        layer = layer.app
    return layer


@pytest.fixture
def world(tmp_path: Path) -> Any:
    settings = load_settings(home=tmp_path / "home", auth=True)
    app = create_app(settings)
    reg = Registry(settings=settings)
    X = np.random.default_rng(3).normal(size=(30, 3))
    for i in range(7):
        reg.register(
            "lane-model", Ridge(alpha=i + 1.0).fit(X, X.sum(1)), metrics={"nmae": 0.05 + i / 100},
            tags={"site": "north" if i % 2 else "south"},
        )  # fmt: skip
    reg.archive("lane-model:2")
    token = create_token(str(settings.database_url), "viewer", "read")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        client.get("/api/v1/versions")  # the token is now in the cache: later searches take the lane
        yield app, client, settings


QUERIES: list[dict[str, Any]] = [
    {},
    {"filter": "tags.site = 'north'"},
    {"filter": "metrics.nmae < 0.09 and name = 'lane-model'", "order_by": "metrics.nmae"},
    {"limit": 2, "order_by": "version"},
    {"include_archived": "true", "full": "1"},
    {"include_archived": "FALSE", "full": "false", "filter": ""},
]


@pytest.mark.parametrize("query", QUERIES, ids=[str(i) for i in range(len(QUERIES))])
def test_lane_answers_what_the_route_answers(world: Any, query: dict[str, Any]) -> None:
    app, client, _ = world
    lane = _lane(app)
    before = lane.served
    fast = client.get("/api/v1/versions", params=query)
    assert fast.status_code == 200 and lane.served == before + 1
    routed = client.get("/api/v1/versions", params={**query, "route": "please"})
    assert routed.status_code == 200 and lane.served == before + 1
    assert fast.content == routed.content
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    token = fast.json()["next_page_token"]
    if token:  # the next page too
        nxt = client.get("/api/v1/versions", params={**query, "page_token": token})
        assert nxt.status_code == 200 and lane.served == before + 2
        assert nxt.json()["items"] and nxt.json()["items"][0] not in fast.json()["items"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"limit": 0}, 400, "invalid"),
        ({"limit": 1001}, 400, "invalid"),
        ({"limit": "ten"}, 400, "invalid"),
        ({"full": "maybe"}, 400, "invalid"),
        ({"filter": "tags.site = 'a\x00'"}, 400, "invalid"),
        ({"filter": "metrics.nmae <"}, 400, "invalid"),
        ({"order_by": "nonsense desc desc"}, 400, "invalid"),
    ],
)
def test_bad_searches_reach_the_route_and_its_envelope(
    world: Any, query: dict, status: int, code: str
) -> None:
    app, client, _ = world
    lane = _lane(app)
    before = lane.served
    r = client.get("/api/v1/versions", params=query)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert lane.served == before


def test_tokens_the_cache_does_not_hold_take_the_route(world: Any) -> None:
    app, client, settings = world
    lane = _lane(app)
    before = lane.served
    for headers, status in [
        ({"Authorization": ""}, 401),
        ({"Authorization": "Bearer mst_unknown"}, 401),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401),
    ]:
        assert client.get("/api/v1/versions", headers=headers).status_code == status
    assert lane.served == before
    fresh = create_token(str(settings.database_url), "fresh", "read")
    as_fresh = {"Authorization": f"Bearer {fresh}"}
    first = client.get("/api/v1/versions", headers=as_fresh)  # a cache miss: the route looks it up
    assert first.status_code == 200 and lane.served == before
    again = client.get("/api/v1/versions", headers=as_fresh)
    assert again.content == first.content and lane.served == before + 1


def test_lane_searches_are_counted_under_the_route_template(world: Any) -> None:
    app, client, _ = world
    for _ in range(3):
        client.get("/api/v1/versions", params={"filter": "tags.site = 'south'"})
    metrics = client.get("/metrics").text
    line = next(
        ln for ln in metrics.splitlines()
        if ln.startswith("maestrale_http_requests_total") and 'route="/api/v1/versions"' in ln
        and 'status="200"' in ln
    )  # fmt: skip
    assert float(line.rsplit(" ", 1)[1]) >= _lane(app).served >= 3


@pytest.mark.parametrize(
    "query",
    [b"limit=5&limit=6", b"x=1", b"filter=%00", b"limit=%EF%BC%95", b"limit=+5", b"a=1&" * 9, b"f" * 17_000],
)
def test_search_arguments_leaves_the_unusual_to_the_route(query: bytes) -> None:
    assert search_arguments(query) is None
