"""The transport interface: publish confirmed batches, consume with retries and a dead-letter queue.

One file per backend under `maestrale.bus.transports`; `get_transport` picks one by URL scheme.

>>> from maestrale.bus.transport import get_transport
>>> bus = get_transport("memory://", namespace="doc")
>>> bus.declare("audit", ["maestrale.model.*"])
>>> bus.close()

Semantics every backend keeps (the memory backend is the executable spec, RabbitMQ the real one):

- one topic exchange per namespace; the routing key is the event type; a queue is bound by patterns
  (`maestrale.model.*`, `maestrale.#`);
- `publish` returns only when the broker has accepted every message (publisher confirms), so a
  caller can delete its copy (e.g. mark outbox rows sent) afterwards;
- at-least-once delivery: a message is acked after the callback returns; a crash or a lost
  connection redelivers it, so handlers must be idempotent (see `maestrale.bus.consumer`);
- a callback that raises is retried after `RetryPolicy.delays`; after `max_attempts` the message
  goes to `<queue>.dlq` with the error, the handler's name and the attempt count; a permanent error
  (`maestrale.bus.failures`: `InvalidInput` such as `MalformedEvent`, `PermanentFailure`) goes there
  at once, since retrying cannot fix it;
- a *work* event (`maestrale.bus.topology`: `train.requested`, `prediction.logged`, …) that reaches
  no queue is not sent: `publish` raises `Unroutable` naming it, and confirms all the others.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from maestrale.bus.failures import is_permanent as is_permanent  # re-exported for the backends
from maestrale.errors import BackendUnavailable, ConfigError, InvalidInput

if TYPE_CHECKING:
    from maestrale.bus.events import CloudEvent

# Header names: namespaced so they never collide with a producer's own headers.
H_ATTEMPT = "x-maestrale-attempt"
H_ROUTING_KEY = "x-maestrale-routing-key"
H_ERROR = "x-maestrale-error"
H_ERROR_TYPE = "x-maestrale-error-type"
H_HANDLER = "x-maestrale-handler"
H_QUEUE = "x-maestrale-queue"
H_FAILED_AT = "x-maestrale-failed-at"
MAX_ERROR_CHARS = 4000


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` zero or more (`maestrale.#` matches `maestrale.a.b`)."""

    def match(p: tuple[str, ...], k: tuple[str, ...]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and (p[0] == "*" or p[0] == k[0]) and match(p[1:], k[1:])

    return match(tuple(pattern.split(".")), tuple(key.split(".")))


class Unroutable(BackendUnavailable):
    """Work events that reached no queue: nothing will consume them, so they were not sent.

    `message_ids` are the messages concerned; every other message of the batch was confirmed.
    """

    code = "unroutable"

    def __init__(self, message: str, message_ids: Sequence[str | None], routing_keys: Sequence[str]) -> None:
        super().__init__(message)
        self.message_ids, self.routing_keys = list(message_ids), sorted(set(routing_keys))


@dataclass(frozen=True, slots=True)
class Message:
    """What is published: `Message("maestrale.train.requested", body, message_id=event.id)`."""

    routing_key: str
    body: bytes
    message_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, event: CloudEvent) -> Message:
        """The message that carries `event` (routing key = its type)."""
        return cls(event.type, event.to_json(), event.id)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery handed to a consume callback; `attempt` is 1 on the first try."""

    body: bytes
    routing_key: str
    attempt: int
    redelivered: bool
    message_id: str | None
    headers: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message parked in `<queue>.dlq`, with why it is there."""

    queue: str
    routing_key: str
    body: bytes
    error: str
    error_type: str
    handler: str
    attempts: int
    failed_at: datetime | None
    message_id: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`RetryPolicy(max_attempts=5, delays=(1, 5, 30, 120))`: wait delays[k-1] s after failed attempt k.

    The last delay repeats when there are more attempts than delays.
    """

    max_attempts: int = 5
    delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
    # Seconds a queue (and its retry and dead-letter queues) may stay unused before the broker
    # deletes it; None: never. For per-process queues (a model server's reload queue), so that a
    # process killed without its shutdown hook leaves nothing behind.
    expires_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not self.delays or min(self.delays) < 0:
            raise InvalidInput("RetryPolicy needs max_attempts >= 1 and at least one delay >= 0")
        if self.expires_s is not None and self.expires_s <= 0:
            raise InvalidInput(f"RetryPolicy expires_s must be positive seconds, not {self.expires_s}")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` failed."""
        return self.delays[min(failed_attempt, len(self.delays)) - 1]


def error_text(exc: BaseException) -> str:
    """`ValueError: bad spec`, cut to a size that fits in an AMQP header."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


Callback = Callable[[Delivery], None]


class Transport(ABC):
    """A message broker seen as: topic exchange + durable queues + retry + dead-letter queues.

    Logical queue names (`"trainer"`) become `<namespace>.<name>` on the broker, so two namespaces
    never share a queue (tests use a uuid namespace).
    """

    #: True when the bus lives in this process only (what no consumer here takes is gone at exit).
    in_process: ClassVar[bool] = False
    #: What to do about an `Unroutable` on this backend, appended to its message.
    unroutable_hint: ClassVar[str] = ""

    def __init__(self, namespace: str = "maestrale") -> None:
        if not namespace or any(c in namespace for c in " #*"):
            raise ConfigError(f"bus namespace {namespace!r} must be a non-empty name without spaces, # or *")
        self.namespace = namespace
        self._work_declared: set[str] = set()  # work queues this publisher declared (topology)
        self._work_lock = threading.Lock()

    def declare_work_queues(self, routing_keys: Iterable[str], *, again: bool = False) -> None:
        """Declare, once per transport, the work queues (`maestrale.bus.topology`) these keys must reach.

        `again=True` declares them even if this transport did before (the queue may have been deleted).
        """
        from maestrale.bus.topology import queues_for

        wanted = {q.name: q for key in set(routing_keys) for q in queues_for(key)}
        with self._work_lock:
            todo = [q for n, q in wanted.items() if again or n not in self._work_declared]
            for q in todo:
                self.declare(q.name, q.patterns, q.retry)
                self._work_declared.add(q.name)

    def unroutable(self, messages: Sequence[Message]) -> Unroutable:
        """The error for work `messages` that reached no queue: what was not sent and what to start."""
        from maestrale.bus.topology import queues_for

        keys = sorted({m.routing_key for m in messages})
        queues = {q.name: q for k in keys for q in queues_for(k)}.values()
        start = " and ".join(f"`{q.consumer}` (queue {self.queue_name(q.name)})" for q in queues)
        return Unroutable(
            f"{len(messages)} {', '.join(keys)} event(s) reached no queue in bus namespace "
            f"{self.namespace!r}, so they were not sent: nothing would consume them. Start "
            f"{start or 'their consumer'} and send them again{self.unroutable_hint}",
            [m.message_id for m in messages],
            keys,
        )

    @abstractmethod
    def consumer_count(self, queue: str) -> int | None:
        """How many consumers take from `queue` right now; None when the queue does not exist.

        >>> bus.consumer_count("training")  # 0: requests wait until `maestrale worker` runs  # doctest: +SKIP
        0
        """

    def queue_name(self, queue: str) -> str:
        """The broker-side name of a logical queue: `trainer` → `maestrale.trainer`."""
        return f"{self.namespace}.{queue}"

    @abstractmethod
    def declare(self, queue: str, patterns: Sequence[str], retry: RetryPolicy | None = None) -> None:
        """Create (idempotently) a durable queue bound to routing-key patterns, its retry path and DLQ."""

    @abstractmethod
    def publish(self, messages: Sequence[Message]) -> None:
        """Publish a batch; return once the broker confirmed all of it (raise BackendUnavailable if not)."""

    @abstractmethod
    def consume(
        self,
        queue: str,
        callback: Callback,
        *,
        handler: str,
        stop: threading.Event,
        retry: RetryPolicy | None = None,
        prefetch: int = 32,
        concurrency: int = 1,
    ) -> None:
        """Deliver messages of `queue` to `callback` until `stop` is set; ack, retry or dead-letter each.

        `concurrency` handler threads run callbacks; 0 runs them on the connection's own thread (least
        latency, for callbacks that take milliseconds: a long one would starve the heartbeats).
        """

    @abstractmethod
    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` messages of `<queue>.dlq`, oldest first, left in place."""

    @abstractmethod
    def replay(self, queue: str, limit: int | None = None) -> int:
        """Move up to `limit` dead letters back into `queue` with a fresh attempt count; returns how many."""

    @abstractmethod
    def queues(self) -> list[str]:
        """Logical names of the queues declared in this namespace."""

    @abstractmethod
    def delete(self, queues: Iterable[str] | None = None) -> None:
        """Delete queues (all of this namespace's, and its exchange, when None): for tests and teardown."""

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources need nothing
        """Release connections; the transport can still be used (it reconnects)."""

    # -- conveniences built on the primitives -------------------------------------------------------
    def publish_event(self, event: CloudEvent) -> None:
        """Publish one event, confirmed: `bus.publish_event(CloudEvent.create(payload))`."""
        self.publish([Message.of(event)])

    def publish_events(self, events: Iterable[CloudEvent]) -> None:
        """Publish many events as one confirmed batch (pipelined on RabbitMQ)."""
        self.publish([Message.of(e) for e in events])


def get_transport(url: str, namespace: str = "maestrale", **options: Any) -> Transport:
    """The transport for a broker URL: `memory://` (in-process) or `amqp://` / `amqps://` (RabbitMQ).

    >>> get_transport("memory://").namespace
    'maestrale'
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from maestrale.bus.transports.memory import MemoryTransport

        return MemoryTransport(namespace, **options)
    if scheme in ("amqp", "amqps"):
        try:
            from maestrale.bus.transports.rabbitmq import RabbitTransport
        except ImportError as exc:
            raise ConfigError(
                f"MAESTRALE_BROKER_URL={url!r} needs pika ({exc.name} is missing): "
                "pip install 'maestrale[rabbitmq]'"
            ) from None
        return RabbitTransport(url, namespace, **options)
    raise ConfigError(
        f"unsupported broker URL scheme {scheme!r} in {url!r}; use memory:// (in-process) "
        "or amqp://user:pass@host:5672/vhost (RabbitMQ; amqps:// for TLS)"
    )
