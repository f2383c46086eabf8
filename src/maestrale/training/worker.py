"""`maestrale worker`: the training service. Competing consumers of `maestrale.train.requested`.

Each request is trained in a child process (forked from a clean, preloaded fork server), so a hard
time limit can stop it, `maestrale train cancel` can stop it, and a `kill -9` of the worker takes its
child along. Delivery is at least once; the request's idempotency key is stored on the version it
registers, so a redelivered or resent request finds its version and never makes a second one.

A training fails at once (`train.failed`, and its message to `training.dlq` on the first attempt,
with one log line and no traceback) unless its error is transient
(`maestrale.bus.failures.is_transient`: database, storage or broker unavailable): fitting is
deterministic, so a spec, data or estimator parameter that failed once fails again. Transient
errors are retried by the queue's policy (`maestrale.bus.topology.TRAINING`), then dead-lettered.

Threads: each job gets a budget of OpenMP and BLAS threads, applied in its child with threadpoolctl:
`MAESTRALE_TRAIN_THREADS` when set, else the cores this worker may use (its affinity, capped by its
cgroup's CPU quota: a Kubernetes CPU limit counts) ÷ the training slots of live workers on the host
(each worker holds `concurrency` lock files under `MAESTRALE_TRAIN_SLOTS_DIR`, default /dev/shm, which
is per pod in Kubernetes). Without it each job started one thread per core, so N workers ran N × cores
spinning OpenMP threads: 2 workers were 0.53x as fast as 1 on 2 cores (`maestrale.training.threads`).

>>> worker = TrainingWorker(load_settings(), get_transport("amqp://guest:guest@localhost/"))  # doctest: +SKIP
>>> worker.run()  # blocks; N processes with the same queue share the work  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from maestrale.bus.consumer import Consumer
from maestrale.bus.events import CloudEvent
from maestrale.bus.failures import PermanentFailure, is_transient
from maestrale.bus.schemas import TrainCompleted, TrainFailed, TrainRequested, TrainStarted
from maestrale.bus.topology import TRAINING
from maestrale.bus.transport import Transport
from maestrale.config import Settings
from maestrale.errors import BackendUnavailable, NotFound
from maestrale.training.requests import CANCEL_POLL_S, TrainingRequests
from maestrale.training.threads import TrainingSlots, available_cores, budget

log = logging.getLogger(__name__)
QUEUE = TRAINING.name
SOURCE = "maestrale/training-worker"
RETRY = TRAINING.retry  # retrying helps against a database or storage blip, never against a bad spec
# What a child would otherwise import per job (~200 ms of a 0.6 s job, bench/fleet_training.py): it
# unpickles `_child` (this module), re-runs the parent's __main__ (the `maestrale` script imports
# maestrale.cli.main; the fork server's own "__main__" preload never gets the path in CPython 3.11),
# imports what `_child` imports, and the database driver. A missing optional module is skipped.
_PRELOAD = [
    "maestrale.training._preload", "maestrale.training.worker", "maestrale.cli.main",
    "maestrale.training.specio", "maestrale.training.source_policy", "maestrale.training.threads",
    "threadpoolctl", "fsspec", "fsspec.implementations.local",
    "psycopg", "sqlalchemy.dialects.postgresql.psycopg",
]  # fmt: skip
_ctx: Any = None
_ctx_lock = threading.Lock()


def _context() -> Any:
    # forkserver: children fork from a single-threaded server with the heavy imports done, so a job
    # starts in milliseconds and never inherits a lock held by one of the worker's threads
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            _ctx = mp.get_context("forkserver")
            _ctx.set_forkserver_preload(_PRELOAD)
        return _ctx


def _noop() -> None:
    """Target of the warm-up child."""


def warm_up() -> None:
    """Start the fork server and wait for its imports, so the first training does not pay them."""
    proc = _context().Process(target=_noop, daemon=True)
    proc.start()
    proc.join(120)


class TrainingFailed(PermanentFailure):
    """A training that cannot succeed by retrying (bad spec, bad data, a failing fit, time limit)."""

    code = "training_failed"


class Cancelled(PermanentFailure):
    """The request was cancelled (`maestrale train cancel`) while it trained: its process was stopped."""

    code = "cancelled"


class TrainingInterrupted(BackendUnavailable):
    """A training stopped by the outside world (database, storage, its process killed): retried."""


def _die_with_parent() -> None:
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the hard time limit still applies


def _child(
    pipe: Any, settings: dict[str, Any], spec: dict[str, Any], options: dict[str, Any], threads: int | None
) -> None:
    """Runs in the child process: train, register, send back the result or the error."""
    _die_with_parent()
    try:
        seen = None
        if threads is not None:  # before anything is fitted: OpenMP and BLAS read the limit per call
            from maestrale.training.threads import apply_budget

            seen = apply_budget(threads)
            # and for an OpenMP runtime that a custom estimator's module loads later
            os.environ["OMP_NUM_THREADS"] = str(threads)
        from maestrale.config import Settings
        from maestrale.registry.client import Registry
        from maestrale.training.coderefs import trusted_modules
        from maestrale.training.source_policy import SourcePolicy
        from maestrale.training.specio import spec_from_data
        from maestrale.training.trainer import train

        config = Settings(**settings)
        # A request is untrusted, however it reached the bus: only the admin's estimator modules, and
        # the data-source policy checked before anything is read (a refusal is a permanent SpecError).
        with trusted_modules(config.estimator_modules):
            checked = spec_from_data(spec, source=f"of request {options.get('request_id') or '?'}")
            policy = SourcePolicy.from_settings(config)
            result = train(checked, Registry(settings=config), source_policy=policy, **options)
        pipe.send(("ok", {**result.model_dump(mode="json"), "threads": seen}))
    except BaseException as exc:
        pipe.send(("error", (type(exc).__name__, str(exc), not is_transient(exc))))
    finally:
        pipe.close()


def train_in_child(
    settings: Settings,
    spec: dict[str, Any],
    *,
    time_limit_s: float | None,
    cancelled: Callable[[], bool] | None = None,
    threads: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Train in a child process; the result's JSON, or `TrainingFailed` / `TrainingInterrupted`.

    `cancelled()` is asked every `CANCEL_POLL_S` seconds; when it says True the child is killed and
    `Cancelled` raised. Killing is safe at any point: a version is committed last, after its artifact.
    `threads` limits OpenMP and BLAS in the child (None: their defaults); the result's `threads` says
    what threadpoolctl reported there (`{"budget": 2, "openmp": [2], "blas": [2]}`).

    >>> train_in_child(settings, spec, time_limit_s=600, threads=1)["version"]  # doctest: +SKIP
    3
    """
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(child, settings.model_dump(mode="json"), spec, options, threads), daemon=True
    )
    proc.start()
    child.close()
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    next_check = time.monotonic() + CANCEL_POLL_S
    try:
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if parent.poll(wait):
                status, payload = parent.recv()
                break
            if not proc.is_alive():
                # the child may have sent its result and exited between the poll and this check
                # (seen as "died with exit code 0" under load): read what it left in the pipe first
                if parent.poll(0):
                    status, payload = parent.recv()
                    break
                raise TrainingInterrupted(f"training process died with exit code {proc.exitcode}")
            if cancelled is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + CANCEL_POLL_S
                if cancelled():
                    proc.kill()
                    raise Cancelled("cancelled while training: the training process was stopped")
            if deadline is not None and time.monotonic() >= deadline:
                proc.kill()
                raise TrainingFailed(
                    f"training exceeded its time limit of {time_limit_s:g} s and was stopped; "
                    "raise time_limit_s in the spec or make the model cheaper"
                )
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        parent.close()
    if status == "ok":
        return payload
    name, message, permanent = payload
    if permanent:
        raise TrainingFailed(f"{name}: {message}")
    raise TrainingInterrupted(f"{name}: {message}")


def declare_training_queue(transport: Transport) -> None:
    """Create the training queue (idempotent): requests published before any worker started wait in it."""
    transport.declare(TRAINING.name, TRAINING.patterns, TRAINING.retry)


class TrainingWorker:
    """Consumes training requests from the bus; `concurrency` trainings run at once per process."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        default_time_limit_s: float | None = 3600.0,
    ) -> None:
        from maestrale.registry.store import SqlStore
        from maestrale.training.source_policy import SourcePolicy

        assert settings.database_url
        self.settings, self.transport = settings, transport
        self.worker_id = worker_id or f"{socket.gethostname()}/{os.getpid()}"
        self.default_time_limit_s = default_time_limit_s
        self.slots = TrainingSlots(settings.train_slots_dir, concurrency)  # held while consuming
        SourcePolicy.from_settings(settings)  # a bad MAESTRALE_DATA_SOURCES fails at start, not per request
        self.requests = TrainingRequests(settings.database_url, settings.auto_upgrade)
        self.store = SqlStore(settings.database_url, settings.auto_upgrade)
        # prefetch 1: a long training must not hold back requests another worker could take
        self.consumer = Consumer(
            transport, TRAINING.name, self.handle, TRAINING.patterns, retry=TRAINING.retry,
            prefetch=concurrency, concurrency=concurrency, handler_name="maestrale.training.worker",
        )  # fmt: skip

    def thread_budget(self) -> int:
        """Threads for the next job: MAESTRALE_TRAIN_THREADS, else cores ÷ live training slots on the host.

        Asked per job (two small file reads and a lock probe per slot), so a worker that starts or dies
        on the host, or a resized pod, changes the next job's budget.
        """
        override = self.settings.train_threads
        if override is not None:
            return budget(override=override, cores=1, slots=1)
        return budget(override=None, cores=available_cores(), slots=self.slots.count())

    def _publish(self, payload: Any, subject: str) -> None:
        self.transport.publish_event(CloudEvent.create(payload, subject=subject, source=SOURCE))

    def handle(self, event: CloudEvent) -> None:
        """Train one request (or recognise it as already done) and report the outcome."""
        req = event.payload
        assert isinstance(req, TrainRequested)
        name = str(req.spec.get("name", event.subject or "?"))
        try:
            record = self.requests.get(req.request_id)
            attempt = record.attempts + 1
        except NotFound:  # published by a plain AMQP client, without a row: track it from here
            self.requests.adopt(req, name)
            record, attempt = None, 1
        if record is not None and record.status == "cancelled":  # cancelled while it waited in the queue
            self._cancelled(req, name, attempt)
            return
        if self._finish_existing(req, name):  # a redelivery after the version committed: don't retrain
            return
        t0 = time.perf_counter()
        if not self.requests.started(req.request_id, self.worker_id, attempt):  # cancelled just now
            self._cancelled(req, name, attempt)
            return
        self._publish(TrainStarted(request_id=req.request_id, worker=self.worker_id, attempt=attempt), name)
        limit = req.spec.get("time_limit_s")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            limit = self.default_time_limit_s  # a malformed value fails in the child's validation
        threads = self.thread_budget()
        started = time.perf_counter()
        log.debug("request %s: bookkeeping before training %.3f s", req.request_id, started - t0)
        try:
            result = train_in_child(
                self.settings, req.spec, time_limit_s=float(limit) * 1.1 + 5 if limit else None,
                threads=threads, reason=req.reason, parent_version=req.parent_version,
                request_id=req.request_id, idempotency_key=req.idempotency_key, reuse=req.reuse_unchanged,
                cancelled=lambda: self.requests.status(req.request_id) == "cancelled",
            )  # fmt: skip
        except Cancelled:
            if not self._finish_existing(req, name):  # a version committed before the kill stands
                self._cancelled(req, name, attempt)
            return
        except TrainingFailed as exc:
            self._fail(req, name, exc, attempt, quiet=True)
            # Permanent: the transport dead-letters it now, not after the retries, with one log line
            # (no traceback) that names the request and the cause.
            raise TrainingFailed(f"training {req.request_id} of {name}: {exc}") from None
        except Exception as exc:
            if attempt >= RETRY.max_attempts:
                self._fail(req, name, exc, attempt)
            raise  # the transport retries it, then dead-letters it
        t1 = time.perf_counter()
        reused = bool(result.get("reused"))  # an unchanged version given back: nothing was trained
        seen = result.get("threads")  # what threadpoolctl reported in the child, after the limit
        self._finish(req, name, result["version"], result["metrics"], t1 - started, reused, seen)
        log.debug("request %s: training %.3f s, reporting %.3f s", req.request_id, t1 - started,
                  time.perf_counter() - t1)  # fmt: skip

    def _finish_existing(self, req: TrainRequested, name: str) -> bool:
        """Report the version this request's idempotency key already registered; False if none."""
        existing = self.store.version_for_key(name, req.idempotency_key)
        if existing is None:
            return False
        mv = self.store.get_version(f"{name}:{existing}")
        self._finish(req, name, mv.version, mv.metrics, duration=mv.duration_s or 0.0)
        return True

    def _finish(
        self, req: TrainRequested, name: str, version: int, metrics: dict[str, float], duration: float,
        reused: bool = False, threads: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.requests.completed(req.request_id, version, clean)
        self._publish(
            TrainCompleted(request_id=req.request_id, name=name, version=version, metrics=clean,
                           duration_s=round(duration, 4), reused=reused),
            name,
        )  # fmt: skip
        n = (threads or {}).get("budget")
        used = f" ({n} thread{'s' * (n != 1)})" if n else ""
        # `threads` on the record: the child's threadpoolctl report, for log processors and tests
        note = used + " (unchanged: reused)" * reused
        log.info("training %s → %s:%d%s", req.request_id, name, version, note, extra={"threads": threads})

    def _fail(
        self, req: TrainRequested, name: str, exc: BaseException, attempt: int, quiet: bool = False
    ) -> None:
        """Record and announce (`train.failed`) that the request failed for good."""
        message = str(exc)
        self.requests.failed(req.request_id, message, attempt)
        self._publish(
            TrainFailed(request_id=req.request_id, error=message, error_type=type(exc).__name__,
                        worker=self.worker_id, attempts=attempt),
            name,
        )  # fmt: skip
        if not quiet:  # else the transport's dead-letter line says it
            log.warning("training %s of %s failed: %s", req.request_id, name, message)

    def _cancelled(self, req: TrainRequested, name: str, attempt: int) -> None:
        # The row already says cancelled, and by whom; the event tells the requester.
        self._publish(
            TrainFailed(request_id=req.request_id, error="cancelled", error_type="Cancelled",
                        worker=self.worker_id, attempts=max(1, attempt)),
            name,
        )  # fmt: skip
        log.info("training %s of %s cancelled: not trained", req.request_id, name)

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until `stop` is set (reconnecting to the broker as needed)."""
        warm_up()  # the fork server's imports happen now, not inside the first request
        self.slots.acquire()
        try:
            self.consumer.run(stop)
        finally:
            self.slots.release()

    def start(self) -> TrainingWorker:
        """Consume in a background thread (embedded mode)."""
        warm_up()
        self.slots.acquire()
        self.consumer.start()
        return self

    def stop(self) -> None:
        """Stop consuming; a running training finishes first."""
        self.consumer.stop()
        self.slots.release()
