"""Hot reload: follow alias moves on the bus, and poll the registry as a fallback for missed events.

>>> watcher = ReloadWatcher(repo, transport, poll_s=30).start()  # doctest: +SKIP
>>> watcher.stop()   # also deletes this server's queue  # doctest: +SKIP

Each server process consumes from a queue of its own, `serve-<host>-<pid>-<random>`, bound to
`maestrale.model.promoted` (champion moves) and `maestrale.model.alias_set` (any alias, for servers
that follow `@challenger` or `@staging`): every replica must see every move, so they cannot share a
queue the way competing workers do. The transports declare durable queues only (no exclusive or
auto-delete queues), so `stop()` deletes the queue; a process killed with SIGKILL leaves it behind
(a few bytes per alias move; `maestrale bus` tools list and delete it).

The handler never loads a model: it asks the repository to reload, which resolves the alias again
and loads in its own thread, so a stale or duplicated event is harmless and a slow load never holds
a bus delivery. The poll does the same every `poll_s` seconds, so a server converges even when an
event was lost (broker down, server started mid-move).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import TYPE_CHECKING

from maestrale.bus.consumer import Consumer
from maestrale.bus.transport import RetryPolicy

if TYPE_CHECKING:
    from maestrale.bus.events import CloudEvent
    from maestrale.bus.transport import Transport
    from maestrale.serving.repository import ModelRepository

log = logging.getLogger(__name__)
RELOAD_TYPES = ("maestrale.model.promoted", "maestrale.model.alias_set")


#: A reload queue unused this long is deleted by RabbitMQ: a server killed with SIGKILL (OOM, a
#: node lost) cannot delete its own queue at shutdown.
RELOAD_QUEUE_EXPIRES_S = 3600.0


def queue_name() -> str:
    """A queue name unique to this server instance: `serve-<host>-<pid>-<6 hex>`."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:60]
    return f"serve-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ReloadWatcher:
    """Reload the repository's alias-following models on alias events and every `poll_s` seconds."""

    def __init__(
        self,
        repository: ModelRepository,
        transport: Transport | None,
        *,
        poll_s: float | None = 30.0,
        queue: str | None = None,
    ) -> None:
        self.repository, self.transport, self.poll_s = repository, transport, poll_s
        self.queue = queue or queue_name()
        self.following = repository.following()
        self.events = 0  # alias events that asked for a reload
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.consumer: Consumer | None = None
        if transport is not None and self.following:
            # One quick retry: the handler only schedules a reload, so a failure is a bug, not the weather.
            self.consumer = Consumer(
                transport, self.queue, self.handle, RELOAD_TYPES,
                retry=RetryPolicy(2, (1.0,), expires_s=RELOAD_QUEUE_EXPIRES_S), prefetch=8,
                concurrency=0, handler_name="maestrale.serving.reload",
            )  # fmt: skip

    def handle(self, event: CloudEvent) -> None:
        """Ask for a reload when the event moves an alias one of our models follows."""
        payload = event.payload
        name, alias = getattr(payload, "name", None), getattr(payload, "alias", None)
        if name in self.following and self.following[name] == alias:
            self.events += 1
            log.info("%s@%s moved to version %s: reloading", name, alias, getattr(payload, "version", "?"))
            self.repository.reload(name)

    def poll_once(self) -> None:
        """Ask every alias-following model to re-resolve its alias (a no-op when nothing moved)."""
        for name in self.following:
            self.repository.reload(name)

    def _poll(self) -> None:
        assert self.poll_s is not None
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def _consume(self) -> None:
        # Consumer.run reconnects by itself once consuming; this loop covers a broker that is down when
        # the server starts (declare fails): the server serves meanwhile, and the poll keeps it current.
        assert self.consumer is not None
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.consumer.run(self._stop)
            except Exception as exc:
                log.warning("reload consumer on %s: %s; retrying in %.0fs", self.queue, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def start(self) -> ReloadWatcher:
        """Start consuming (after declaring, when the broker answers) and polling."""
        if self.consumer is not None:
            try:
                self.consumer.declare()  # now, so no move published after start() is missed
            except Exception as exc:
                log.warning("reload consumer: cannot declare %s yet (%s); polling meanwhile", self.queue, exc)
            self._threads.append(threading.Thread(target=self._consume, name="serve-reload-bus", daemon=True))
        if self.poll_s and self.following:
            self._threads.append(threading.Thread(target=self._poll, name="serve-reload-poll", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming and polling, then delete this server's queue."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self.consumer is not None and self.transport is not None:
            # In a thread with a deadline: with the broker gone, delete() would retry for its whole
            # publish timeout and hold the shutdown.
            t = threading.Thread(target=self._delete_queue, name="serve-reload-cleanup", daemon=True)
            t.start()
            t.join(timeout)

    def _delete_queue(self) -> None:
        assert self.transport is not None
        try:
            self.transport.delete([self.queue])
        except Exception as exc:
            log.warning("could not delete queue %s: %s", self.queue, exc)
