"""Registries in processes forked from one that already used the database (multiprocessing with fork,
gunicorn --preload, Celery prefork) get connections of their own, and the parent keeps working.

Before `maestrale.platform.db` disposed inherited pools in the child, a child checked out the parent's pooled
PostgreSQL connections: two processes on one socket, failing with `can't change 'autocommit' now:
connection in transaction status INTRANS` or reading each other's results. A RabbitMQ transport
inherited the same way (e.g. the process-wide one `maestrale.monitoring.client` caches) published
on the parent's AMQP connection, and a remote `Registry` sent requests over the parent's keep-alive
HTTP connections.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LinearRegression

from maestrale import Registry
from maestrale.bus.transport import Message

CHILDREN = 4
PER_CHILD = 8


def _model() -> LinearRegression:
    return LinearRegression().fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0))


def _child(url: str, storage: str, name: str, queue: Any) -> None:
    try:
        reg = Registry(database_url=url, storage_url=storage)
        mine = [reg.register(name, _model(), metrics={"nmae": 0.1}).version for _ in range(PER_CHILD)]
        assert [reg.get_version(f"{name}:{v}").version for v in mine] == mine
        assert len(reg.list_versions(name, limit=1000).items) >= len(mine)
        queue.put(("ok", mine))
    except BaseException as exc:  # report everything: the parent asserts on it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_registries_in_forked_children_use_their_own_connections(pg_url: str, tmp_path: Path):
    storage = f"file://{tmp_path}/artifacts"
    parent = Registry(database_url=pg_url, storage_url=storage)
    name = "fork-safety"
    parent.register(name, _model())  # the pool now holds connections the children inherit
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_child, args=(pg_url, storage, name, queue)) for _ in range(CHILDREN)]
    for proc in children:
        proc.start()
    # the parent keeps using its pooled connections while the children run
    deadline = time.monotonic() + 120
    while any(proc.is_alive() for proc in children) and time.monotonic() < deadline:
        assert parent.get_version(f"{name}:1").version == 1
        parent.search_versions(f"name = '{name}'", limit=5)
    results = [queue.get(timeout=60) for _ in children]
    for proc in children:
        proc.join(30)
    errors = [detail for status, detail in results if status != "ok"]
    assert not errors, errors
    registered = sorted(v for _, versions in results for v in versions)
    assert registered == list(range(2, 2 + CHILDREN * PER_CHILD))  # no gaps, no twins
    after = parent.register(name, _model())
    assert after.version == 2 + CHILDREN * PER_CHILD
    assert parent.list_versions(name, limit=1000).items[0].version == after.version


def _publish_from_child(bus: Any, queue: Any) -> None:
    try:
        bus.publish([Message("maestrale.test.forked", b"{}") for _ in range(PER_CHILD)])
        queue.put(("ok", ""))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_a_rabbit_transport_inherited_through_fork_opens_its_own_connection(rabbit: Any):
    rabbit.declare("forked", ["maestrale.test.#"])
    rabbit.publish([Message("maestrale.test.parent", b"{}")])  # the parent's publisher connection is open
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_publish_from_child, args=(rabbit, queue)) for _ in range(CHILDREN)]
    for proc in children:
        proc.start()
    for _ in range(20):  # the parent keeps publishing on its connection meanwhile
        rabbit.publish([Message("maestrale.test.parent", b"{}")])
    results = [queue.get(timeout=60) for _ in children]
    for proc in children:
        proc.join(30)
    assert all(status == "ok" for status, _ in results), results
    rabbit.publish([Message("maestrale.test.parent", b"{}")])
    conn = rabbit.connect()
    try:
        depth = conn.channel().queue_declare(rabbit.queue_name("forked"), passive=True).method.message_count
    finally:
        conn.close()
    assert depth == 1 + 20 + CHILDREN * PER_CHILD + 1


def _read_remote(reg: Registry, ref: str, queue: Any) -> None:
    try:
        for _ in range(30):
            assert reg.get_version(ref).ref == ref
        queue.put(("ok", ""))
    except BaseException as exc:
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def test_a_remote_registry_inherited_through_fork_opens_its_own_connections(server: Any):
    reg = Registry(server.url, token=server.admin_token)
    ref = reg.register("fork-remote", _model()).ref  # the HTTP pool now keeps a connection alive
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    children = [ctx.Process(target=_read_remote, args=(reg, ref, queue)) for _ in range(CHILDREN)]
    for proc in children:
        proc.start()
    while any(proc.is_alive() for proc in children):
        assert reg.get_version(ref).ref == ref
    results = [queue.get(timeout=60) for _ in children]
    assert all(status == "ok" for status, _ in results), results
    assert reg.list_versions("fork-remote").items[0].ref == ref
