"""`maestrale monitor`: consume logged predictions and actuals, evaluate on schedule, relay the outbox.

>>> with MonitorService(settings, policies=[load_policy("policy.yaml")]) as svc:  # doctest: +SKIP
...     svc.wait()  # until Ctrl-C

Three threads: the bus consumer (queue `monitor`: `prediction.logged`, `actual.logged`), the
evaluation loop (`tick` every `interval` seconds of wall time; a model is evaluated when its data
clock moved by its policy's `schedule.every`), and the outbox relay that publishes what the monitor
decided (`monitor.breach`, `train.requested`, `model.promoted`). Ingest is idempotent (record ids,
actual keys), so at-least-once delivery stores everything once. After each round the loop prunes the
monitor's finished retraining requests on the settings' schedule (`retraining.prune_task`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maestrale.bus.events import CloudEvent, MalformedEvent, parse_event
from maestrale.bus.schemas import TrainCompleted, TrainFailed
from maestrale.bus.topology import MONITOR
from maestrale.config import Settings
from maestrale.monitoring import retraining
from maestrale.monitoring.ingest import IngestResult
from maestrale.monitoring.policy import Policy
from maestrale.platform.pruning import Pruner, Retention

log = logging.getLogger(__name__)
QUEUE = MONITOR.name  # the queue and bindings publishers declare too (`maestrale.bus.topology`)
INGEST_TYPES = MONITOR.patterns
INGEST_THREADS = 2
OUTCOME_QUEUE = "monitor-training"  # notifications of training outcomes, for the challenger
OUTCOME_TYPES = ("maestrale.train.completed", "maestrale.train.failed")


def lenient_parse(raw: bytes) -> CloudEvent:
    """`parse_event`, except that a prediction/actual batch with bad records is kept for per-record checks.

    A `prediction.logged` body goes the column-wise way first (`monitoring._columns`: msgspec, no
    pydantic per record); a body that way does not take whole is parsed here as before.
    """
    fast = _fast_decoder()
    if fast is not None and (event := fast(raw)) is not None:
        return event
    try:
        return parse_event(raw)
    except MalformedEvent:
        event = CloudEvent.from_json(raw)  # a broken envelope still dead-letters
        if event.type in INGEST_TYPES and isinstance(event.data.get("records"), list):
            return event
        raise


@functools.cache
def _fast_decoder() -> Callable[[bytes], CloudEvent | None] | None:
    try:
        from maestrale.monitoring._columns import decode_prediction_event
    except ImportError:  # msgspec missing (it comes with the rabbitmq extra): the reference path only
        return None
    return decode_prediction_event


@dataclass
class IngestStats:
    """Counts since start: records stored, duplicates skipped, records rejected (with the last reasons)."""

    predictions: int = 0
    actuals: int = 0
    duplicates: int = 0
    rejected: int = 0


class MonitorService:
    """The monitor as a service: ingest consumer, evaluation loop and outbox relay in one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        policies: list[Policy] | None = None,
        interval: float | None = 30.0,
        relay: bool = True,
        relay_interval: float = 0.5,
        prefetch: int = 64,
    ) -> None:
        from maestrale.bus.consumer import Consumer
        from maestrale.bus.transport import get_transport
        from maestrale.monitoring.monitor import Monitor
        from maestrale.monitoring.store import MonitorStore
        from maestrale.registry.client import Registry

        if not settings.database_url:
            raise ValueError("the monitor needs MAESTRALE_DATABASE_URL (its store lives in SQL)")
        self.settings = settings
        self.transport = get_transport(settings.broker_url, settings.bus_namespace)
        self.store = MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)
        # retrain=True: breaches ask the training service (over the bus) for retrainings
        self.monitor = Monitor(self.store, Registry(settings=settings, actor="monitor"), True, policies)
        self.stats = IngestStats()
        self.last_rejections: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        # Two handler threads: one parses and validates a batch (Python) while the other waits for the
        # database to store the previous one (+25-35% end to end on 2 cores, bench/ingest.py). Each
        # batch is its own transaction, so batches in flight together may be stored in either order:
        # harmless for predictions (idempotent by record id); of two actual batches in flight at once
        # that both carry the same (entity, target_time), the one stored last wins.
        self.consumer = Consumer(
            self.transport, QUEUE, self.handle, INGEST_TYPES, retry=MONITOR.retry, prefetch=prefetch,
            concurrency=INGEST_THREADS, parse=lenient_parse,
        )  # fmt: skip
        # A finished retraining is the challenger at once: the monitor listens to the outcomes of
        # training (notifications, on a queue of its own) instead of waiting for its next evaluation.
        # The tick also adopts them, for outcomes published while no monitor ran.
        self.outcomes = Consumer(
            self.transport, OUTCOME_QUEUE, self.handle_outcome, OUTCOME_TYPES, prefetch=8,
            handler_name="monitor.adopt",
        )  # fmt: skip
        self.interval, self.relay_interval = interval, relay_interval
        # the monitor's own table, on the outbox's schedule (MAESTRALE_PRUNE_EVERY); the outbox and the
        # ledger are the relay's and the transactional consumers' to prune
        self.pruner = Pruner(
            self.store.engine, Retention.from_settings(settings), outbox=False, processed=False,
            tasks={"monitor_retrainings": retraining.prune_task},
        )  # fmt: skip
        self._relay = None
        if relay:
            from maestrale.bus.relay import OutboxRelay

            self._relay = OutboxRelay(settings.database_url, self.transport)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- ingest -----------------------------------------------------------------------------------
    def handle(self, event: CloudEvent) -> None:
        """Store one batch; rejected records are logged with their reasons (the batch is acked)."""
        payload = event.__pydantic_private__.get("_payload") if event.__pydantic_private__ else None
        if event.type == "maestrale.prediction.logged":
            if payload is not None:
                model, version, records = payload.model, payload.version, payload.records
            else:
                data = event.data
                model, version, records = data.get("model"), data.get("version"), data["records"]
                if not isinstance(model, str) or not isinstance(version, int):  # kept in the DLQ, not dropped
                    raise MalformedEvent(f"prediction batch {event.id} has no valid model and version")
            try:
                result = self.store.log_predictions(model, version, records)
            except ValueError as exc:  # refused as a whole (version < 1, too many records): permanent
                raise MalformedEvent(f"prediction batch {event.id}: {exc}") from None
            self._count(result, event, predictions=True)
        elif event.type == "maestrale.actual.logged":
            records = payload.records if payload is not None else event.data["records"]
            try:
                result = self.store.log_actuals(records)
            except ValueError as exc:
                raise MalformedEvent(f"actual batch {event.id}: {exc}") from None
            self._count(result, event, predictions=False)

    def handle_outcome(self, event: CloudEvent) -> None:
        """`train.completed` / `train.failed`: record the outcome of a retraining the monitor asked for,
        and adopt the retrained version (or record the failure) now. Other requests' outcomes are ignored.
        """
        payload, write = event.payload, self.store._writer
        if isinstance(payload, TrainCompleted):
            model = retraining.record_outcome(write, payload.request_id, "completed", version=payload.version)
        elif isinstance(payload, TrainFailed):
            error = f"{payload.error_type}: {payload.error}"
            model = retraining.record_outcome(write, payload.request_id, "failed", error=error)
        else:
            return
        if model is None or model not in self.monitor.awaiting_training():
            return
        # not while this monitor evaluates it, nor while another one does (it adopts at its next tick)
        with self._tick_lock, self.monitor.leases.hold(model) as held:
            version = self.monitor.adopt(model) if held else None
        if version is not None:
            log.info("%s:%s is the challenger (%s)", model, version, event.type)

    def wait_retraining(self, request_id: str, timeout: float = 900.0) -> retraining.Retraining:
        """Block until the training service reported on `request_id` and this monitor acted on it (the
        challenger set, or the failure recorded). For drivers that step simulated time (the demos).

        >>> rec = svc.wait_retraining(result.retrain_request)  # doctest: +SKIP
        >>> rec.status, rec.version  # doctest: +SKIP
        ('completed', 2)
        """
        deadline = time.monotonic() + timeout
        while (rec := retraining.get(self.store.engine, request_id)) is None or not rec.done:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no outcome of retraining {request_id} after {timeout:.0f} s: is a training worker "
                    "consuming the bus (`maestrale worker`), and a relay publishing the outbox?"
                )
            time.sleep(0.02)
        # handle_outcome adopts it too; whichever comes second finds the challenger set and does nothing
        with self._tick_lock, self.monitor.leases.hold(rec.model) as held:
            if held:
                self.monitor.adopt(rec.model)
        return rec

    def _count(self, result: IngestResult, event: CloudEvent, *, predictions: bool) -> None:
        with self._lock:
            if predictions:
                self.stats.predictions += result.stored
            else:
                self.stats.actuals += result.stored
            self.stats.duplicates += result.duplicates
            self.stats.rejected += len(result.rejected)
            if result.rejected:
                self.last_rejections = [
                    {"event": event.id, "index": r.index, "record_id": r.record_id, "reason": r.reason}
                    for r in result.rejected[:20]  # Rejection has slots: no __dict__
                ]
        if result.rejected:
            first = result.rejected[0]
            log.warning(
                "%s: %d record(s) rejected, e.g. #%d (%s): %s", event.id, len(result.rejected), first.index,
                first.record_id, first.reason,
            )  # fmt: skip

    # -- lifecycle --------------------------------------------------------------------------------
    def _loop(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            with self._tick_lock:
                try:
                    self.monitor.tick()
                except Exception:  # the database away for a moment must not end the evaluations for good
                    log.exception("the evaluation round failed; the next one runs in %g s", self.interval)
            self.pruner.maybe_run()  # at most every MAESTRALE_PRUNE_EVERY; never raises

    def start(self) -> MonitorService:
        """Start consuming, evaluating (if `interval`) and relaying."""
        self.consumer.start()
        self.outcomes.start()
        self._stop.clear()
        if self.interval is not None:
            self._threads.append(threading.Thread(target=self._loop, name="monitor-tick", daemon=True))
        if self._relay is not None:
            self._threads.append(
                threading.Thread(
                    target=self._relay.run,
                    args=(self._stop, self.relay_interval),
                    name="monitor-relay",
                    daemon=True,
                )
            )
        for t in self._threads:
            t.start()
        return self

    def wait(self) -> None:
        """Block until `stop()` (or Ctrl-C)."""
        try:
            while not self._stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        """Stop every thread (a running evaluation finishes first)."""
        self._stop.set()
        self.consumer.stop()
        self.outcomes.stop()
        for t in self._threads:
            t.join(30)
        self._threads.clear()

    def __enter__(self) -> MonitorService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
