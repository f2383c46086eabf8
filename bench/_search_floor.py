"""The physical floor of a registry search, measured beside it (``bench/registry_vs_mlflow.py``).

A search returns 100 version documents out of 1,000 versions as Python objects. Whatever a registry
does, it cannot go faster than:

* direct: the one indexed SQL query that selects those documents, run by a bare ``sqlite3``
  connection (no ORM, no pool), plus decoding each JSON document to Python values (``orjson``, no
  validation, no typed objects) -- ``direct_floor``;
* REST: the same, plus one HTTP/1.1 round trip of the same response bytes on loopback between a
  bare asyncio server (a fixed answer: no framework, no routing, no auth) and ``http.client``
  -- ``http_round_trip``.

Both also print a typed floor, for a search that returns typed, validated versions (as MLflow's
hands back its ``ModelVersion`` entities): the SQL's rows fetched by bare ``sqlite3`` (``fetch``,
no decoding), plus ``hydrate``, the page's bytes validated into ``ModelVersion`` objects in one
pydantic-core call (``Page[ModelVersion].model_validate_json``, Rust: the fastest way pydantic has,
and it parses the JSON itself); for REST, plus the same bare HTTP round trip.

MLflow's time over the floor is the largest speed-up any implementation could show here: when it is
below a target, the target is beyond the floor.

>>> floor = direct_floor(Path("registry.db"), sql, args, n=30)  # doctest: +SKIP
>>> floor["median"]  # ms  # doctest: +SKIP
0.41
"""

from __future__ import annotations

import asyncio
import http.client
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from _bench_common import free_port, summary, wall_samples


def direct_floor(
    db: Path, sql: str, args: Sequence[Any] | dict[str, Any], n: int, decode: bool = True
) -> dict[str, Any]:
    """Median ms of: the store's compiled search SQL on a bare sqlite3 connection + orjson per document
    (``decode=False``: the rows fetched, not decoded)."""
    con = sqlite3.connect(str(db))
    try:

        def once() -> int:
            rows = con.execute(sql, args).fetchall()
            return len([orjson.loads(r[0]) for r in rows]) if decode else len(rows)

        times = wall_samples(once, n)  # after a warm-up: page cache, statement cache
    finally:
        con.close()
    return summary(times)


def http_round_trip(body: bytes, n: int) -> dict[str, Any]:
    """Median ms of one keep-alive GET answered with ``body`` by a bare asyncio server (loopback)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    answer = head + body
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    class Fixed(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buf = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\r\n\r\n" in self.buf:  # a GET has no body: one answer per header block
                _, self.buf = self.buf.split(b"\r\n\r\n", 1)
                self.transport.write(answer)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(loop.create_server(Fixed, "127.0.0.1", port))
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    try:

        def once() -> bytes:
            conn.request("GET", "/api/v1/versions?limit=100")
            return conn.getresponse().read()

        assert once() == body
        times = wall_samples(once, n)
    finally:
        conn.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return summary(times)


def search_floors(store: Any, db: Path, flt: str, n: int) -> dict[str, Any]:
    """Both floors for ``store.search_versions(flt, limit=100)`` on the SQLite file ``db``."""
    sql, names, params = store._search_sql(flt, None, False, False)
    values = {**params, "lim": 101, "off": 0}
    args = tuple(values[k] for k in names) if names is not None else values
    direct = direct_floor(db, sql, args, n)
    fetch = direct_floor(db, sql, args, n, decode=False)
    docs, _ = store.search_documents(flt, limit=100)
    body = ('{"items":[' + ",".join(docs) + '],"next_page_token":null,"total":null}').encode()
    trip = http_round_trip(body, n)
    rest = round(direct["median"] + trip["median"], 3)
    hydrate = hydrate_floor(body, n)
    return {
        "direct": direct, "http_round_trip": trip, "rest_median": rest, "body_bytes": len(body),
        "fetch": fetch, "hydrate": hydrate,
        "direct_typed_median": round(fetch["median"] + hydrate["median"], 3),
        "rest_typed_median": round(fetch["median"] + trip["median"] + hydrate["median"], 3),
    }  # fmt: skip


def hydrate_floor(body: bytes, n: int) -> dict[str, Any]:
    """Median ms of validating a page's bytes into typed ``ModelVersion`` objects (pydantic-core)."""
    from maestrale.registry.types import ModelVersion, Page

    page = Page[ModelVersion]
    assert len(page.model_validate_json(body).items) == body.count(b'"artifact":')
    return summary(wall_samples(lambda: page.model_validate_json(body), n))
