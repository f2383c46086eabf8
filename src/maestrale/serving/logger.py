"""Prediction logging off the request path: a bounded buffer, flushed to the bus by one thread.

>>> logger = PredictionLogger(get_transport("memory://")).start()  # doctest: +SKIP
>>> logger.log("pv-forecast", 3, frame, predictions, entity="p50", issued_at=now)  # never blocks
... # doctest: +SKIP
True
>>> logger.close()  # flushes what is buffered  # doctest: +SKIP

`log` only appends a reference to the request's frame and predictions (no copy, no JSON): the
records are built and published as `maestrale.prediction.logged` batches by the flush thread, at
most `batch_size` records per flush or every `interval` seconds, through
`maestrale.monitoring.client.deliver`: to the monitor's queue, or, on the embedded bus (memory://)
with no monitor queue in this process, straight into the monitor's store of `settings`. When the
buffer holds `capacity` records, new ones are dropped and counted
(`maestrale_serving_predictions_dropped_total{reason="buffer_full"}`): a slow or absent broker
must cost the monitor some records, never the clients their latency.

An event holds the requests of one model version and one caller: `logged_by`, the name of the
bearer token that sent them (when the server checks tokens), travels with it, so a fabricated
forecast can be traced to its token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from maestrale.serving.ids import new_id

if TYPE_CHECKING:
    from maestrale.bus.transport import Transport
    from maestrale.config import Settings
    from maestrale.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Entry:
    model: str
    version: int
    rows: int
    names: list[str]  # the numeric feature columns
    values: np.ndarray | None  # rows × len(names), float64; the request's frame is not kept
    predictions: Any
    entity: str | np.ndarray
    issued_at: datetime
    target_time: Any  # None (= issued_at), one time, or one per row
    request_id: str
    logged_by: str | None  # the caller's token name; None when the server checks no token


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
        settings: Settings | None = None,
    ) -> None:
        # settings: the database of the embedded monitor store, used when the bus is memory:// and no
        # monitor consumes in this process (see `maestrale.monitoring.client.deliver`)
        self.transport, self.metrics, self.settings = transport, metrics, settings
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
        logged_by: str | None = None,
    ) -> bool:
        """Buffer one request's rows; False (and counted) when the buffer is full. Never raises.

        `logged_by` names who sent the request (a token name); it is published with the batch.
        """
        try:
            n = len(frame)
            keep, names = _layout(frame)
            # Copy the numbers out now: holding each request's DataFrame until the flush costs more
            # (allocator and GC work on the request threads) than this one array.
            values = None
            if names:
                values = frame.to_numpy(dtype="float64") if len(keep) == frame.shape[1] else (
                    frame.iloc[:, keep].to_numpy(dtype="float64")
                )  # fmt: skip
            entry = _Entry(model, version, n, names, values, predictions, entity, issued_at, target_time,
                           request_id or new_id(), logged_by)  # fmt: skip
            return self._append(entry)
        except Exception:  # logging must never fail a prediction
            log.exception("prediction logger: could not buffer a request")
            return False

    def log_values(
        self, model: str, version: int, names: list[str], values: np.ndarray, predictions: Any, *,
        entity: str | np.ndarray, issued_at: datetime, target_time: Any = None, logged_by: str | None = None,
    ) -> bool:  # fmt: skip
        """`log` for a request decoded straight to an array (rows × `names`, numeric): no DataFrame.

        >>> logger.log_values("pv", 3, ["ghi"], np.array([[500.0]]), [0.4], entity="p", issued_at=now)
        ... # doctest: +SKIP
        True
        """
        try:
            # a copy, as `log` makes one: the caller's array may be a view of a request buffer
            floats = np.array(values, dtype=np.float64)
            entry = _Entry(model, version, len(floats), names, floats, predictions, entity, issued_at,
                           target_time, new_id(), logged_by)  # fmt: skip
            return self._append(entry)
        except Exception:  # logging must never fail a prediction
            log.exception("prediction logger: could not buffer a request")
            return False

    def _append(self, entry: _Entry) -> bool:
        """Queue `entry` unless stopped or full (then counted as dropped); True when queued."""
        n = entry.rows
        with self._cond:
            refused = "stopped" if self._stop else "buffer_full" if self._size + n > self.capacity else None
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
            taken: list[_Entry] = []
            rows = 0
            while self._queue and (rows < self.batch_size or not taken):
                entry = self._queue.popleft()
                taken.append(entry)
                rows += entry.rows
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
        from maestrale.bus.schemas import PredictionLogged
        from maestrale.monitoring.client import deliver

        # one event per model version and caller: `logged_by` is a field of the batch, not of each record
        groups: dict[tuple[str, int, str | None], list[_Entry]] = {}
        for e in batch:
            groups.setdefault((e.model, e.version, e.logged_by), []).append(e)
        for (model, version, logged_by), entries in groups.items():
            n = sum(e.rows for e in entries)
            try:
                records = [r for e in entries for r in _records(e)]
                size = self.batch_size
                head: dict[str, Any] = {"model": model, "version": version}
                if logged_by is not None:
                    head["logged_by"] = logged_by
                payloads = [
                    (PredictionLogged, {**head, "records": records[i : i + size]})
                    for i in range(0, len(records), size)
                ]
                sent = deliver(payloads, model, self.settings, self.transport)
            except Exception as exc:  # the bus is down past its own retries, or a record cannot be built
                self.failed += n
                self._count_drop(n, "publish_failed", f": {type(exc).__name__}: {exc}"[:300])
                continue
            if sent < n:  # the embedded store refused some (it logged why): never count them as logged
                self.failed += n - sent
                self._count_drop(n - sent, "rejected")
            self.logged += sent
            if self.metrics is not None:
                self.metrics.predictions_logged.inc(sent)

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


def _iso(value: Any) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()  # the common case (the request time), without pandas
    stamp = pd.Timestamp(value)
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()


_LAYOUTS: dict[tuple[Any, ...], tuple[list[int], list[str]]] = {}


def _layout(frame: pd.DataFrame) -> tuple[list[int], list[str]]:
    """Positions and names of the numeric feature columns, computed once per column layout.

    Per request, pandas column access costs ~0.5 ms for 8 columns; the layout of a served model's
    frames never changes, so it is looked up instead.
    """
    # the decoder builds every frame of a served model with the schema's dtypes: names decide
    key = tuple(frame.columns)
    found = _LAYOUTS.get(key)
    if found is None:
        kinds = [getattr(dt, "kind", "O") for dt in frame.dtypes]
        keep = [
            i for i, (c, k) in enumerate(zip(frame.columns, kinds, strict=True))
            if c not in ("target_time", "entity") and k in "biuf"
        ]  # fmt: skip
        found = _LAYOUTS[key] = (keep, [str(frame.columns[i]) for i in keep])
    return found


def _records(e: _Entry) -> list[dict[str, Any]]:
    """The JSON records of one request, built straight from its arrays (no per-request DataFrame).

    Features are the numeric input columns (the monitor stores numbers); record ids are unique per
    row and request, so a forecast without a target time does not collapse onto one id.
    """
    n, names = e.rows, e.names
    values: list[list[float]] = [[] for _ in range(n)] if e.values is None else e.values.tolist()
    pred = np.asarray(e.predictions)
    preds = pred.tolist() if pred.ndim > 1 else pred.astype("float64").ravel().tolist()
    issued = _iso(e.issued_at)
    if e.target_time is None:
        targets = [issued] * n
    elif isinstance(e.target_time, str | datetime | pd.Timestamp):
        targets = [_iso(e.target_time)] * n
    else:
        targets = [_iso(t) for t in e.target_time]
    entities = [str(x) for x in e.entity] if isinstance(e.entity, np.ndarray) else [str(e.entity)] * n
    return [
        {
            "record_id": f"{e.request_id}/{i}",
            "entity": entities[i],
            "issued_at": issued,
            "target_time": targets[i],
            # NaN is not JSON: a missing input is logged as null
            "features": {k: (v if v == v else None) for k, v in zip(names, values[i], strict=True)},
            "prediction": preds[i],
        }
        for i in range(n)
    ]
