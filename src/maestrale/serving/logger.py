"""Prediction logging off the request path: a bounded buffer, flushed to the bus by one thread.

>>> logger = PredictionLogger(get_transport("memory://")).start()  # doctest: +SKIP
>>> logger.log("pv-forecast", 3, frame, predictions, entity="p50", issued_at=now)  # never blocks
... # doctest: +SKIP
True
>>> logger.close()  # flushes what is buffered  # doctest: +SKIP

`log` only appends a reference to the request's frame and predictions (no copy, no JSON): the
records are built and published as `maestrale.prediction.logged` batches by the flush thread, at
most `batch_size` records per flush or every `interval` seconds, through
`maestrale.monitoring.client.log_predictions`. When the buffer holds `capacity` records, new ones
are dropped and counted (`maestrale_serving_predictions_dropped_total{reason="buffer_full"}`): a
slow or absent broker must cost the monitor some records, never the clients their latency.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from maestrale.bus.transport import Transport
    from maestrale.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    model: str
    version: int
    frame: pd.DataFrame
    predictions: Any
    entity: str | np.ndarray
    issued_at: datetime
    target_time: Any  # None (= issued_at), one time, or one per row
    request_id: str


class PredictionLogger:
    """`PredictionLogger(transport, capacity=10_000, batch_size=1_000, interval=1.0).start()`."""

    def __init__(
        self,
        transport: Transport,
        *,
        capacity: int = 10_000,
        batch_size: int = 1_000,
        interval: float = 1.0,
        warn_every: float = 30.0,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.transport, self.metrics = transport, metrics
        self.capacity, self.batch_size, self.interval, self.warn_every = (
            capacity,
            batch_size,
            interval,
            warn_every,
        )
        self._queue: deque[_Entry] = deque()
        self._size = 0  # records (rows) buffered, not entries
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_warning = -float("inf")
        self.logged = self.dropped = self.failed = 0

    # -- request path ---------------------------------------------------------------------------------
    def log(
        self,
        model: str,
        version: int,
        frame: pd.DataFrame,
        predictions: Any,
        *,
        entity: str | np.ndarray,
        issued_at: datetime,
        target_time: Any = None,
        request_id: str | None = None,
    ) -> bool:
        """Buffer one request's rows; False (and counted) when the buffer is full. Never raises."""
        try:
            n = len(frame)
            entry = _Entry(model, version, frame, predictions, entity, issued_at, target_time,
                           request_id or uuid.uuid4().hex)  # fmt: skip
            with self._cond:
                refused = (
                    "stopped" if self._stop else "buffer_full" if self._size + n > self.capacity else None
                )
                if refused:
                    self.dropped += n
                else:
                    self._queue.append(entry)
                    self._size += n
                    if self._size >= self.batch_size:
                        self._cond.notify()
            if refused:
                self._count_drop(n, refused)
            elif self.metrics is not None:
                self.metrics.log_queue.inc(n)
            return refused is None
        except Exception:  # logging must never fail a prediction
            log.exception("prediction logger: could not buffer a request")
            return False

    def _count_drop(self, n: int, reason: str, detail: str = "") -> None:
        if self.metrics is not None:
            self.metrics.predictions_dropped.labels(reason).inc(n)
        now = time.monotonic()
        if now - self._last_warning >= self.warn_every:  # a full buffer must not flood the log too
            self._last_warning = now
            log.warning(
                "prediction logger: dropped %d record(s) (%s%s; %d dropped so far, buffer %d/%d)",
                n, reason, detail, self.dropped + self.failed, self._size, self.capacity,
            )  # fmt: skip

    @property
    def buffered(self) -> int:
        """Records waiting to be published."""
        return self._size

    # -- flush thread ---------------------------------------------------------------------------------
    def start(self) -> PredictionLogger:
        """Start the flush thread."""
        self._thread = threading.Thread(target=self._run, name="maestrale-prediction-log", daemon=True)
        self._thread.start()
        return self

    def _take(self) -> list[_Entry]:
        with self._cond:
            taken, rows = [], 0
            while self._queue and (rows < self.batch_size or not taken):
                entry = self._queue.popleft()
                taken.append(entry)
                rows += len(entry.frame)
            self._size -= rows
        if self.metrics is not None and rows:
            self.metrics.log_queue.dec(rows)
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stop and self._size < self.batch_size:
                    self._cond.wait(self.interval)
                stopping = self._stop
            while batch := self._take():
                self._publish(batch)
                if not stopping and self._size < self.batch_size:
                    break  # a full batch goes at once; a partial one waits for the interval
            if stopping and not self._queue:
                return

    def _publish(self, batch: list[_Entry]) -> None:
        from maestrale.monitoring.client import log_predictions

        groups: dict[tuple[str, int], list[_Entry]] = {}
        for e in batch:
            groups.setdefault((e.model, e.version), []).append(e)
        for (model, version), entries in groups.items():
            n = sum(len(e.frame) for e in entries)
            try:
                frame, features = _records_frame(entries)
                log_predictions(
                    frame, model=model, version=version, features=features, batch_size=self.batch_size,
                    transport=self.transport,
                )  # fmt: skip
            except Exception as exc:  # the bus is down past its own retries, or a record cannot be built
                self.failed += n
                self._count_drop(n, "publish_failed", f": {type(exc).__name__}: {exc}"[:300])
                continue
            self.logged += n
            if self.metrics is not None:
                self.metrics.predictions_logged.inc(n)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, publish what is buffered (waiting up to `timeout` s), stop the thread."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("prediction logger: %d record(s) not published within %gs", self._size, timeout)
            self._thread = None


def _records_frame(entries: list[_Entry]) -> tuple[pd.DataFrame, list[str]]:
    """One frame in `log_predictions`' layout: numeric features + prediction, entity, times, record id."""
    parts = []
    for e in entries:
        n = len(e.frame)
        pred = np.asarray(e.predictions)
        part = e.frame.reset_index(drop=True).copy()
        part["prediction"] = pred.tolist() if pred.ndim > 1 else pred
        part["entity"] = e.entity
        part["issued_at"] = e.issued_at
        part["target_time"] = e.issued_at if e.target_time is None else e.target_time
        # Unique per row and request: a forecast with no target time would otherwise collapse onto one
        # `entity/issued_at/target_time` id; a redelivered batch still stores once.
        part["record_id"] = [f"{e.request_id}/{i}" for i in range(n)]
        parts.append(part)
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    # The monitor stores features as numbers; other inputs (labels, times) are left out of the record.
    features = [
        c for c in entries[0].frame.columns
        if c not in ("target_time", "entity") and pd.api.types.is_numeric_dtype(entries[0].frame[c])
    ]  # fmt: skip
    return frame, features
