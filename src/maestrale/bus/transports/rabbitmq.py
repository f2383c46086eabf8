"""RabbitMQ transport (AMQP 0-9-1 with pika): durable topic exchange, confirms, retries, DLQs.

>>> from maestrale.bus.transports.rabbitmq import RabbitTransport
>>> bus = RabbitTransport("amqp://guest:guest@127.0.0.1:5672/%2F", namespace="maestrale")  # doctest: +SKIP
>>> bus.publish_event(event)  # returns once RabbitMQ confirmed it                      # doctest: +SKIP

Topology for namespace `ns` and queue `q`: topic exchange `ns` (durable); queue `ns.q` (durable,
bound by patterns); one retry queue per delay, `ns.q.retry.<ms>` (durable, `x-message-ttl` = the
delay, dead-lettering back to `ns.q` through the default exchange); and `ns.q.dlq`.

Work events (`maestrale.bus.topology`: `train.requested`, `prediction.logged`, `actual.logged`) must
not be dropped because their consumer has not run yet: `publish` declares their queues first (once
per transport, with the consumer's own arguments) and publishes them `mandatory`, so one that still
reaches no queue comes back and raises `Unroutable` instead of vanishing in the exchange.

Why TTL queues for retries: RabbitMQ has no delayed delivery without a plugin, and sleeping in the
consumer would hold the message (and the prefetch slot) hostage. One queue per delay keeps every
message in a queue with the same TTL, so expiry is strictly FIFO (a per-message TTL in one shared
queue would block short delays behind long ones). Retries and dead letters go through the default
exchange straight to `ns.q`, never back through the topic exchange, so other queues bound to the
same event type do not get a second copy. The copy is published with a confirm before the
original is acked: a crash in between yields a duplicate, never a loss.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import (
    ChannelClosedByBroker,
)

from maestrale.bus.topology import is_work
from maestrale.bus.transport import (
    H_ATTEMPT,
    H_ERROR,
    H_ERROR_TYPE,
    H_FAILED_AT,
    H_HANDLER,
    H_QUEUE,
    H_ROUTING_KEY,
    Callback,
    DeadLetter,
    Message,
    RetryPolicy,
    Transport,
)
from maestrale.bus.transports._rabbit_io import (
    CONNECTION_ERRORS,
    ConsumeSession,
    Publisher,
    Reconnect,
    declare_topology,
    header_str,
    topology_names,
)
from maestrale.errors import BackendUnavailable, ConfigError, Conflict, NotFound

log = logging.getLogger(__name__)
_DLQ_HEADERS = (H_ERROR, H_ERROR_TYPE, H_HANDLER, H_FAILED_AT, H_QUEUE)


class RabbitTransport(Transport):
    """`RabbitTransport("amqp://guest:guest@127.0.0.1:5672/%2F", namespace="maestrale")`.

    `publish_timeout`: how long `publish` keeps reconnecting and resending before it raises
    `BackendUnavailable`; `max_inflight`: unconfirmed messages allowed before waiting for confirms.
    """

    unroutable_hint = (
        " (a publisher declares these queues itself, unless its RabbitMQ user lacks the 'configure' "
        "permission: then grant it, or start the consumer once so that it declares them)"
    )

    def __init__(
        self,
        url: str,
        namespace: str = "maestrale",
        *,
        publish_timeout: float = 30.0,
        max_inflight: int = 2000,
        backoff_max: float = 5.0,
        management_url: str | None = None,
    ) -> None:
        super().__init__(namespace)
        try:
            self.params = pika.URLParameters(url)
        except Exception as exc:
            raise ConfigError(
                f"bad broker URL {url!r} ({exc}); e.g. amqp://user:pass@rabbitmq:5672/vhost"
            ) from None
        # One attempt per connect: Reconnect below owns the backoff, so stop_app cannot stall us in pika.
        self.params.connection_attempts = 1
        self.params.socket_timeout = 5
        self.params.blocked_connection_timeout = 60
        self.url = url
        self.publish_timeout = publish_timeout
        self.max_inflight = max_inflight
        self.backoff_max = backoff_max
        self.management_url = management_url
        self._lock = threading.RLock()  # pika connections are not thread-safe
        self._pub: Publisher | None = None
        self._pub_pid = os.getpid()
        self._declared: set[str] = set()
        self._may_declare = True  # False once the broker refused this user a queue declaration
        self.resent = 0  # messages published again after a lost connection (possible duplicates)

    def __repr__(self) -> str:
        return f"RabbitTransport({self.params.host}:{self.params.port}, namespace={self.namespace!r})"

    # -- connections ------------------------------------------------------------------------------
    def connect(self) -> BlockingConnection:
        """A new connection (callers own it); raises pika's AMQPConnectionError when the broker is down."""
        return BlockingConnection(self.params)

    def _publisher(self) -> Publisher:
        if self._pub is not None and self._pub_pid != os.getpid():
            # inherited through fork: its socket is the parent's connection; forget it, never close it
            self._pub = None
        if self._pub is None or not self._pub.conn.is_open:
            self._pub = Publisher(self.params, self.namespace)
            self._pub_pid = os.getpid()
        elif time.monotonic() - self._pub.last_used > 20:
            # An idle BlockingConnection misses heartbeats; let it notice a close before we publish.
            self._pub.conn.process_data_events(0)
        return self._pub

    def _drop_publisher(self) -> None:
        if self._pub is not None and self._pub_pid == os.getpid():
            self._pub.close()
        self._pub = None

    def _with_channel(self, what: str, fn: Any) -> Any:
        """Run `fn(channel)` on a fresh channel of the publishing connection, reconnecting on loss."""
        retry = Reconnect(self.backoff_max)
        deadline = time.monotonic() + self.publish_timeout
        with self._lock:
            while True:
                try:
                    ch = self._publisher().conn.channel()
                    try:
                        return fn(ch)
                    finally:
                        if ch.is_open:
                            ch.close()
                except ChannelClosedByBroker as exc:
                    if exc.reply_code == 404:
                        raise NotFound(
                            f"{what}: {exc.reply_text} (queues are declared by their consumers)"
                        ) from None
                    if exc.reply_code == 406:  # e.g. a queue re-declared with other arguments
                        raise Conflict(f"{what}: {exc.reply_text}") from None
                    if exc.reply_code == 403:
                        raise ConfigError(
                            f"{what}: {exc.reply_text}; give the user of MAESTRALE_BROKER_URL the RabbitMQ "
                            f"permissions it needs on '^{self.namespace}\\.' (rabbitmqctl set_permissions)"
                        ) from None
                    raise
                except CONNECTION_ERRORS as exc:
                    self._drop_publisher()
                    if time.monotonic() > deadline:
                        raise BackendUnavailable(
                            f"{what}: RabbitMQ at {self._where()} unreachable ({exc!r})"
                        ) from None
                    retry.sleep(exc)

    def _where(self) -> str:
        return f"{self.params.host}:{self.params.port}"

    # -- topology ---------------------------------------------------------------------------------
    def declare(self, queue: str, patterns: Sequence[str], retry: RetryPolicy | None = None) -> None:
        policy = retry or RetryPolicy()
        name = self.queue_name(queue)

        def run(ch: BlockingChannel) -> None:
            self._declared.update(declare_topology(ch, self.namespace, name, patterns, policy))

        self._with_channel(f"declare {name}", run)

    def consumer_count(self, queue: str) -> int | None:
        def run(ch: BlockingChannel) -> int:
            return int(ch.queue_declare(self.queue_name(queue), passive=True).method.consumer_count)

        try:
            return self._with_channel(f"count the consumers of {self.queue_name(queue)}", run)
        except NotFound:
            return None

    def queues(self) -> list[str]:
        prefix = f"{self.namespace}."
        names = set(self._management_queues()) | self._declared
        return sorted(
            n.removeprefix(prefix)
            for n in names
            if n.startswith(prefix) and not n.endswith(".dlq") and ".retry." not in n
        )

    def _management_queues(self) -> list[str]:
        # AMQP cannot list queues; the management plugin's HTTP API can, when it is enabled.
        import httpx

        p = self.params
        url = self.management_url or f"http://{p.host}:15672"
        vhost = quote(p.virtual_host, safe="")
        creds = p.credentials
        # an amqp:// URL always gives user and password; EXTERNAL (TLS client certificates) gives none
        auth = (creds.username, creds.password) if isinstance(creds, pika.PlainCredentials) else None
        try:
            r = httpx.get(f"{url}/api/queues/{vhost}?columns=name", auth=auth, timeout=3)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"cannot list RabbitMQ queues without the management API at {url} ({exc}); name the queue "
                "(e.g. `maestrale bus dlq list trainer`) or `rabbitmq-plugins enable rabbitmq_management`"
            ) from None
        return [q["name"] for q in r.json()]

    def delete(self, queues: Iterable[str] | None = None) -> None:
        prefix = f"{self.namespace}."
        if queues is None:
            names = set(self._declared)
            with contextlib.suppress(ConfigError):
                names |= {n for n in self._management_queues() if n.startswith(prefix)}
        else:
            wanted = {self.queue_name(q) for q in queues}
            names = {n for n in self._declared if any(n == w or n.startswith(f"{w}.") for w in wanted)}
            names |= wanted | {f"{w}.dlq" for w in wanted}

        def run(ch: BlockingChannel) -> None:
            for n in sorted(names):
                ch.queue_delete(n)
            if queues is None:
                ch.exchange_delete(self.namespace)

        self._with_channel(f"delete queues of {self.namespace}", run)
        self._declared -= names

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        deadline = time.monotonic() + self.publish_timeout
        work = {m.routing_key for m in messages if is_work(m.routing_key)}
        self._declare_work(work, again=False)
        returned = self._publish(messages, list(range(len(messages))), deadline)
        if returned:
            # Their queue was deleted since this transport declared it: declare it again, resend once.
            self._declare_work({messages[i].routing_key for i in returned}, again=True)
            returned = self._publish(messages, returned, deadline)
        if returned:
            raise self.unroutable([messages[i] for i in returned])

    def _declare_work(self, routing_keys: set[str], *, again: bool) -> None:
        if not routing_keys or not self._may_declare:
            return
        try:
            self.declare_work_queues(routing_keys, again=again)
        except ConfigError as exc:  # no 'configure' permission: rely on the consumers' declarations
            self._may_declare = False
            log.warning("cannot declare the work queues (%s); relying on the consumers' declarations", exc)

    def _publish(self, messages: Sequence[Message], indices: list[int], deadline: float) -> list[int]:
        """Publish `messages[i] for i in indices` until confirmed; returns the indices that came back."""
        retry = Reconnect(self.backoff_max)
        returned: list[int] = []
        with self._lock:
            for start in range(0, len(indices), self.max_inflight):
                todo = indices[start : start + self.max_inflight]
                while todo:
                    pub = None
                    try:
                        pub = self._publisher()
                        pub.publish(messages, todo, deadline)
                        returned += sorted(pub.returned)
                        todo = pub.unconfirmed(todo)
                    except Exception as exc:  # pika raises odd types (ValueError) mid-close: all mean "gone"
                        # Unconfirmed messages go out again on the next connection: the broker may have
                        # stored some of them, hence duplicates, never losses.
                        if pub is not None:
                            returned += sorted(pub.returned)
                            todo = pub.unconfirmed(todo)
                            self.resent += len(todo)
                        if not isinstance(exc, (*CONNECTION_ERRORS, BackendUnavailable)):
                            log.warning("publish failed unexpectedly; reconnecting", exc_info=True)
                        self._drop_publisher()
                        if time.monotonic() > deadline:
                            raise BackendUnavailable(
                                f"RabbitMQ at {self._where()} did not take {len(todo)} message(s) within "
                                f"{self.publish_timeout:g}s ({exc!r}); nothing is lost: retry later"
                            ) from None
                        retry.sleep(exc)
        return returned

    def close(self) -> None:
        with self._lock:
            self._drop_publisher()

    # -- consuming --------------------------------------------------------------------------------
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
        policy = retry or RetryPolicy()
        name = self.queue_name(queue)
        self._declared.update(topology_names(name, policy))  # each session declares them (see ConsumeSession)
        backoff = Reconnect(self.backoff_max)
        from concurrent.futures import ThreadPoolExecutor

        # concurrency=0: handlers run on the connection's thread (no hop; they must be quick, or the
        # connection misses its heartbeats); otherwise a pool of that many handler threads.
        pool = (
            ThreadPoolExecutor(concurrency, thread_name_prefix=f"maestrale-{queue}") if concurrency else None
        )
        try:
            while not stop.is_set():
                session = None
                try:
                    session = ConsumeSession(self, queue, callback, handler, policy, prefetch, pool, stop)
                    backoff.reset()
                    session.run()
                except Exception as exc:  # pika raises odd types (ValueError) mid-close: all mean "gone"
                    if stop.is_set():
                        break
                    unexpected = not isinstance(exc, CONNECTION_ERRORS)
                    log.warning(
                        "consumer %s lost RabbitMQ (%r); reconnecting", name, exc, exc_info=unexpected
                    )
                    backoff.sleep(exc, stop)
                finally:
                    if session is not None:
                        session.close()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    # -- dead letters -----------------------------------------------------------------------------
    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        name = f"{self.queue_name(queue)}.dlq"

        def run(ch: BlockingChannel) -> list[DeadLetter]:
            count = ch.queue_declare(name, passive=True).method.message_count
            out = []
            # Browse: get without ack, then close the channel so RabbitMQ requeues them in order.
            for _ in range(min(limit, count)):
                got = _get_one(ch, name)
                if got is None:
                    break
                _tag, routing_key, props, body = got
                out.append(_as_dead_letter(queue, routing_key, props, body))
            return out

        return self._with_channel(f"list the dead letters of {queue!r}", run)

    def replay(self, queue: str, limit: int | None = None) -> int:
        name = self.queue_name(queue)

        def run(ch: BlockingChannel) -> int:
            count = ch.queue_declare(f"{name}.dlq", passive=True).method.message_count
            ch.confirm_delivery()  # one by one is fine here: replay is an operator's action
            moved = 0
            # Bounded by the count at the start, so letters that fail again are not replayed twice.
            for _ in range(count if limit is None else min(limit, count)):
                got = _get_one(ch, f"{name}.dlq")
                if got is None:
                    break
                tag, _key, props, body = got
                headers = {k: v for k, v in (props.headers or {}).items() if k not in _DLQ_HEADERS}
                headers[H_ATTEMPT] = 1
                props.headers = headers
                ch.basic_publish("", name, body, props)
                ch.basic_ack(tag)
                moved += 1
            return moved

        return self._with_channel(f"replay the dead letters of {queue!r}", run)


def _get_one(ch: BlockingChannel, queue: str) -> tuple[int, str, pika.BasicProperties, bytes] | None:
    """One message of `queue`, unacked: (delivery tag, routing key, properties, body); None when empty."""
    method, props, body = ch.basic_get(queue, auto_ack=False)
    if method is None or props is None or body is None:
        return None
    tag, routing_key = method.delivery_tag, method.routing_key
    if tag is None or routing_key is None:  # a broker always sends both; None is only a constructor default
        raise BackendUnavailable(
            f"RabbitMQ answered basic.get on {queue} without a delivery tag or routing key"
        )
    return tag, routing_key, props, body


def _as_dead_letter(queue: str, routing_key: str, props: Any, body: bytes) -> DeadLetter:
    h = props.headers or {}
    failed = h.get(H_FAILED_AT)
    return DeadLetter(
        queue=queue,
        routing_key=header_str(h.get(H_ROUTING_KEY)) or props.type or routing_key,
        body=body,
        error=header_str(h.get(H_ERROR)),
        error_type=header_str(h.get(H_ERROR_TYPE)),
        handler=header_str(h.get(H_HANDLER)),
        attempts=int(h.get(H_ATTEMPT, 0)),
        failed_at=datetime.fromisoformat(header_str(failed)) if failed else None,
        message_id=props.message_id,
    )
