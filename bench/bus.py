"""Bus benchmark: Maestrale's RabbitMQ transport against raw pika, in the same run, on the same broker.

    .venv/bin/python bench/bus.py [--url amqp://guest:guest@127.0.0.1:5672/%2F]

1. Single events, latency: publish one event (confirmed), wait until the consumer has it; repeated.
   Maestrale: `bus.publish_event` + a `Consumer` (full CloudEvent + payload validation, ack; handler
   on the connection's thread with `--concurrency 0`, the default here as on the raw side, or in a
   pool of N threads). Raw pika: `BlockingChannel.confirm_delivery()` + `basic_publish`, and a
   `basic_consume` callback that `json.loads` the body and acks inline.
2. Single events, throughput: N events, one confirmed publish call each, consumed concurrently.
3. Batched predictions: `maestrale.prediction.logged` events of 1,000 records, built from plain
   dicts (Maestrale validates them into `PredictionLogged`), serialised, published (Maestrale:
   pipelined batches of 10 events; raw pika: one confirm each) and read by a consumer in another
   process, as the monitoring service would (Maestrale: full validation into typed records; raw:
   `json.loads`); records/s from the first build to the last record counted.

Both sides run side by side and the rounds alternate (raw, Maestrale, raw, ...), so load from other
work on the machine falls on both alike; medians over the rounds are reported.
Prints human lines, then one JSON line with both sides and the ratios (Maestrale / raw; >1 is better
for throughput, and for latency the ratio is raw / Maestrale so that >1 is better too).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pika

from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.schemas import ModelPromoted, PredictionLogged
from maestrale.bus.transports.rabbitmq import RabbitTransport

PROMOTED = "maestrale.model.promoted"
PREDICTED = "maestrale.prediction.logged"


def small_event(i: int) -> CloudEvent:
    return CloudEvent.create(
        ModelPromoted(name="pv-p50", alias="champion", version=i + 1, previous_version=i), subject="pv-p50"
    )


def records(n: int, offset: int) -> list[dict[str, Any]]:
    t0 = datetime(2026, 11, 26, tzinfo=UTC)
    return [
        {
            "record_id": f"r{offset + i}",
            "entity": f"plant-{i % 50}",
            "issued_at": t0.isoformat(),
            "target_time": (t0 + timedelta(minutes=15 * (i % 96))).isoformat(),
            "horizon": 900 * (i % 96),
            "features": {"ghi": 400.0 + i % 7, "temp": 11.5, "cloud": 0.3, "hour": i % 24},
            "prediction": 12.5 + i % 3,
        }
        for i in range(n)
    ]


class Counter:
    """Counts handled units and wakes a waiter when a target is reached."""

    def __init__(self) -> None:
        self.n, self.target, self.lock, self.done = 0, 0, threading.Lock(), threading.Event()

    def expect(self, target: int) -> None:
        with self.lock:
            self.n, self.target = 0, target
            self.done.clear()

    def add(self, k: int = 1) -> None:
        with self.lock:
            self.n += k
            if self.n >= self.target:
                self.done.set()

    def wait(self, timeout: float = 120) -> None:
        if not self.done.wait(timeout):
            raise TimeoutError(f"only {self.n}/{self.target} arrived")


def raw_consume(params: pika.URLParameters, queue: str, prefetch: int, on_body: Callable[[bytes], None],
                stop: Any) -> None:  # fmt: skip
    """Plain pika: basic_consume, the work inline, ack."""
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)

    def on_message(ch: Any, method: Any, _props: Any, body: bytes) -> None:
        on_body(body)
        ch.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_message)
    while not stop.is_set():
        conn.process_data_events(time_limit=0.1)
    conn.close()


def consume_records(kind: str, url: str, name: str, count: Any, ready: Any, stop: Any) -> None:
    """Child process: count prediction records as a monitor would receive them (own process, own GIL)."""

    def add(n: int) -> None:
        with count.get_lock():
            count.value += n

    if kind == "raw":
        ready.set()
        raw_consume(
            pika.URLParameters(url),
            f"{name}.preds",
            8,
            lambda b: add(len(json.loads(b)["data"]["records"])),
            stop,
        )
        return
    bus = RabbitTransport(url, namespace=name)
    c = Consumer(bus, "preds", lambda ev: add(len(ev.payload.records)), [PREDICTED], prefetch=8).start()
    ready.set()
    stop.wait()
    c.stop()
    bus.close()


class RecordConsumer:
    """The prediction consumer of one side, in a child process, like a separate monitoring service."""

    def __init__(self, kind: str, url: str, name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.count, self.ready, self.stop = ctx.Value("q", 0), ctx.Event(), ctx.Event()
        self.proc = ctx.Process(
            target=consume_records, args=(kind, url, name, self.count, self.ready, self.stop)
        )
        self.proc.start()
        if not self.ready.wait(60):
            raise RuntimeError("the consumer process did not start")

    def wait_for(self, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.count.value < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.count.value}/{n} records arrived")
            time.sleep(0.002)

    def close(self) -> None:
        self.stop.set()
        self.proc.join(10)


# -- the two sides --------------------------------------------------------------------------------------
class MaestraleSide:
    def __init__(self, url: str, concurrency: int) -> None:
        self.bus = RabbitTransport(url, namespace=f"bench-{uuid.uuid4().hex[:8]}")
        self.counter = Counter()
        c = self.counter
        small = Consumer(
            self.bus, "small", lambda ev: c.add(), [PROMOTED], prefetch=100, concurrency=concurrency
        )
        self.consumers = [small.start()]
        self.bus.declare("preds", [PREDICTED])
        self.child = RecordConsumer("maestrale", url, self.bus.namespace)

    def publish_one(self, body: CloudEvent) -> None:
        self.bus.publish_event(body)

    def publish_predictions(self, batches: list[list[dict[str, Any]]]) -> None:
        events = [
            CloudEvent.create(PredictionLogged(model="pv-p50", version=3, records=recs), subject="pv-p50")
            for recs in batches
        ]
        self.bus.publish_events(events)

    def close(self) -> None:
        self.child.close()
        for c in self.consumers:
            c.stop()
        self.bus.delete()
        self.bus.close()


class RawPikaSide:
    def __init__(self, url: str) -> None:
        self.params = pika.URLParameters(url)
        self.exchange = f"bench-raw-{uuid.uuid4().hex[:8]}"
        self.conn = pika.BlockingConnection(self.params)
        self.ch = self.conn.channel()
        self.ch.exchange_declare(self.exchange, "topic", durable=True)
        self.queues = {f"{self.exchange}.small": PROMOTED, f"{self.exchange}.preds": PREDICTED}
        for q, key in self.queues.items():
            self.ch.queue_declare(q, durable=True)
            self.ch.queue_bind(q, self.exchange, key)
        self.ch.confirm_delivery()
        self.counter = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._consume, daemon=True)
        self.thread.start()
        self.child = RecordConsumer("raw", url, self.exchange)
        time.sleep(0.3)

    def _consume(self) -> None:
        c = self.counter
        raw_consume(self.params, f"{self.exchange}.small", 100, lambda body: c.add(), self.stop)

    def _publish(self, key: str, body: bytes, message_id: str) -> None:
        props = pika.BasicProperties(
            content_type="application/cloudevents+json", delivery_mode=2, message_id=message_id, type=key
        )
        self.ch.basic_publish(self.exchange, key, body, props)

    def publish_one(self, event: CloudEvent) -> None:
        self._publish(event.type, json.dumps(event.model_dump(mode="json")).encode(), event.id)

    def publish_predictions(self, batches: list[list[dict[str, Any]]]) -> None:
        now = datetime.now(UTC).isoformat()
        for recs in batches:
            doc = {
                "specversion": "1.0", "id": str(uuid.uuid4()), "source": "bench", "type": PREDICTED,
                "time": now, "subject": "pv-p50", "data": {"model": "pv-p50", "version": 3, "records": recs},
            }  # fmt: skip
            self._publish(PREDICTED, json.dumps(doc).encode(), doc["id"])

    def close(self) -> None:
        self.child.close()
        self.stop.set()
        self.thread.join(5)
        for q in self.queues:
            self.ch.queue_delete(q)
        self.ch.exchange_delete(self.exchange)
        self.conn.close()


# -- measurements ---------------------------------------------------------------------------------------
def latency(side: Any, n: int) -> list[float]:
    """Seconds from publish to handled, one event at a time."""
    samples = []
    for i in range(n):
        ev = small_event(i)
        side.counter.expect(1)
        t = time.perf_counter()
        side.publish_one(ev)
        side.counter.wait()
        samples.append(time.perf_counter() - t)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(samples[int(0.99 * (len(samples) - 1))] * 1000, 3),
        "mean_ms": round(statistics.fmean(samples) * 1000, 3),
    }


def throughput(side: Any, n: int) -> float:
    events = [small_event(i) for i in range(n)]
    side.counter.expect(n)
    t = time.perf_counter()
    for ev in events:
        side.publish_one(ev)
    side.counter.wait()
    return round(n / (time.perf_counter() - t), 1)


def predictions(side: Any, n_events: int, per_event: int) -> float:
    batches = [records(per_event, k * per_event) for k in range(n_events)]
    base = side.child.count.value
    t = time.perf_counter()
    for start in range(0, n_events, 10):  # a logger flushing every 10,000 records
        side.publish_predictions(batches[start : start + 10])
    side.child.wait_for(base + n_events * per_event)
    return round(n_events * per_event / (time.perf_counter() - t), 1)


def measure(sides: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Rounds alternate between the sides, so load from elsewhere on the machine hits both alike."""
    lat: dict[str, list[float]] = {k: [] for k in sides}
    events: dict[str, list[float]] = {k: [] for k in sides}
    recs: dict[str, list[float]] = {k: [] for k in sides}
    for side in sides.values():  # warm-up
        latency(side, 20)
        predictions(side, 5, args.records)
    for _ in range(args.rounds):
        for name, side in sides.items():
            lat[name] += latency(side, args.n_latency // args.rounds)
            events[name].append(throughput(side, args.n_throughput // args.rounds))
            recs[name].append(predictions(side, args.n_batches // args.rounds, args.records))
    out = {}
    for name in sides:
        out[name] = {
            "latency": summary(lat[name]),
            "events_per_s": statistics.median(events[name]),
            "events_per_s_rounds": events[name],
            "records_per_s": statistics.median(recs[name]),
            "records_per_s_rounds": recs[name],
        }
        o = out[name]
        single = f"p50 {o['latency']['p50_ms']:.2f} ms, p99 {o['latency']['p99_ms']:.2f} ms; "
        single += f"{o['events_per_s']:,.0f} events/s"
        print(f"{name:10s} single event: {single}; predictions {o['records_per_s']:,.0f} records/s (median)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--n-latency", type=int, default=600)
    p.add_argument("--n-throughput", type=int, default=3000)
    p.add_argument("--n-batches", type=int, default=150, help="prediction.logged events")
    p.add_argument("--records", type=int, default=1000, help="records per prediction.logged event")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument(
        "--concurrency", type=int, default=0,
        help="Maestrale's small-event consumer: 0 = handler on the connection thread, like the raw side; "
        "N = a pool of N handler threads (the default for long handlers such as training)",
    )  # fmt: skip
    args = p.parse_args()
    sides = {"raw pika": RawPikaSide(args.url), "maestrale": MaestraleSide(args.url, args.concurrency)}
    try:
        results = measure(sides, args)
    finally:
        for side in sides.values():
            side.close()
    raw, ours = results["raw pika"], results["maestrale"]
    ratios = {
        "latency_p50": round(raw["latency"]["p50_ms"] / ours["latency"]["p50_ms"], 2),
        "events_per_s": round(ours["events_per_s"] / raw["events_per_s"], 2),
        "records_per_s": round(ours["records_per_s"] / raw["records_per_s"], 2),
    }
    print(f"ratios (maestrale vs raw, >1 is better): {ratios}; targets: >= 0.7 and >= 100,000 records/s")
    config = {"concurrency": args.concurrency, "records_per_event": args.records, "rounds": args.rounds}
    print(
        json.dumps({"bench": "bus", "config": config, "raw_pika": raw, "maestrale": ours, "ratios": ratios})
    )


if __name__ == "__main__":
    main()
