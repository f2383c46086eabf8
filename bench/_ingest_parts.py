"""Parts of `bench/ingest.py`: its child processes (the monitor service, a bare consumer) and databases."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import Any

import pika
import sqlalchemy as sa
from _bench_common import FreshDatabase


# -- child processes ---------------------------------------------------------------------------------------
def run_service(
    db_url: str, amqp: str, namespace: str, home: str, counts: Any, ready: Any, stop: Any
) -> None:
    """Child: a real MonitorService (no evaluation loop, no relay); its ingest counters go to `counts`."""
    from maestrale.config import load_settings
    from maestrale.monitoring.service import MonitorService

    settings = load_settings(home=home, database_url=db_url, broker_url=amqp, bus_namespace=namespace)
    svc = MonitorService(settings, interval=None, relay=False).start()
    ready.set()
    while not stop.wait(0.01):
        s = svc.stats
        counts[0], counts[1], counts[2] = s.predictions, s.duplicates, s.rejected
    svc.stop()
    svc.transport.close()


def run_bare_consumer(amqp: str, queue: str, per_event: int, counts: Any, ready: Any, stop: Any) -> None:
    """Child: plain pika, ack every message and count it, nothing else (the bus's upper bound)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=64)

    def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        counts[0] += per_event

    ch.basic_consume(queue, on_message)
    ready.set()
    while not stop.is_set():
        conn.process_data_events(time_limit=0.05)
    conn.close()


class Child:
    """A child process (spawned, its own GIL) with shared counters: [stored, duplicates, rejected]."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.counts = ctx.Array("q", 3, lock=False)
        self.ready, self.stop = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(target=target, args=(*args, self.counts, self.ready, self.stop), daemon=True)
        self.proc.start()
        deadline = time.monotonic() + 120
        while not self.ready.wait(0.05):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{target.__name__} did not start (exit code {self.proc.exitcode})")

    def wait_for(self, index: int, n: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.counts[index] < n:
            if time.monotonic() > deadline or not self.proc.is_alive():
                raise TimeoutError(f"only {self.counts[index]}/{n} arrived")
            time.sleep(0.001)

    def close(self) -> None:
        self.stop.set()
        self.proc.join(60)
        if self.proc.is_alive():
            self.proc.terminate()


# -- databases ---------------------------------------------------------------------------------------------
Postgres = FreshDatabase  # a fresh database next to the admin URL, dropped by drop()


def count(engine: sa.Engine, table: str = "predictions") -> tuple[int, int]:
    """(rows, distinct (model, record_id)) of `table`."""
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(
                sa.text(f"SELECT count(*), count(DISTINCT model || '|' || record_id) FROM {table}")
            ).one()
        )


def truncate(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM predictions" if engine.dialect.name == "sqlite" else "TRUNCATE predictions")
        )
