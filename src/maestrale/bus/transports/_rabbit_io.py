"""RabbitMQ I/O for `rabbitmq.py`: the pipelined-confirm publisher, the consume loop, reconnect backoff.

Consuming: one connection whose I/O thread acks, and handler threads that work. Handlers run in a
thread pool so a long one (a training run) never starves the connection of its heartbeats; they
hand their outcome back with `add_callback_threadsafe`, because a pika connection may only be
touched from the thread that owns it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pika
from pika.adapters.blocking_connection import BlockingConnection
from pika.channel import Channel
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ConnectionWrongStateError,
    NackError,
    UnroutableError,
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
    Delivery,
    Message,
    RetryPolicy,
    error_text,
    is_permanent,
)
from maestrale.errors import BackendUnavailable

if TYPE_CHECKING:
    from maestrale.bus.transports.rabbitmq import RabbitTransport

log = logging.getLogger("maestrale.bus.transports.rabbitmq")  # one logger for the whole backend
# Everything that means "the connection or channel is gone": reconnect and carry on.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    AMQPConnectionError,
    AMQPChannelError,
    ConnectionWrongStateError,
    OSError,
)
_GONE = CONNECTION_ERRORS
PERSISTENT = pika.DeliveryMode.Persistent
CONTENT_TYPE = "application/cloudevents+json"


class Reconnect:
    """Exponential backoff with jitter between reconnection attempts: 0.1 s, 0.2 s, ... `maximum`."""

    def __init__(self, maximum: float = 5.0, initial: float = 0.1) -> None:
        self.maximum, self.initial, self.attempts = maximum, initial, 0

    def reset(self) -> None:
        """Call after a successful connection."""
        self.attempts = 0

    def sleep(self, exc: BaseException, stop: threading.Event | None = None) -> None:
        """Wait before the next attempt (returns early when `stop` is set)."""
        # Jitter: after a broker restart, N consumers must not reconnect in lockstep.
        delay = min(self.maximum, self.initial * 2**self.attempts) * random.uniform(0.5, 1.0)
        self.attempts += 1
        log.info("RabbitMQ unavailable (%r); retrying in %.2fs", exc, delay)
        if stop is None:
            time.sleep(delay)
        else:
            stop.wait(delay)


class Publisher:
    """One connection + channel with pipelined publisher confirms.

    pika's `BlockingChannel.confirm_delivery()` makes every `basic_publish` wait for its own confirm
    (0.8-1.4k msg/s on the 2-core dev machine); enabling confirms on the underlying channel with our
    own callback, and publishing there without a flush per message, lets a whole batch go out at once
    and be confirmed in a few multi-acks (8-15k msg/s). That is the one place we reach into pika's
    `_impl` (pika 1.x); `tests/integration/test_bus_*.py` pin the behaviour.

    Work events (`maestrale.bus.topology`) go out `mandatory`: one that no queue takes comes back
    (`basic.return`, which RabbitMQ sends before that message's ack) and lands in `returned`, not in
    `confirmed`, so the caller never counts it as sent.
    """

    def __init__(self, params: pika.URLParameters, exchange: str) -> None:
        self.conn = BlockingConnection(params)
        self.channel = self.conn.channel()
        # pika's private async Channel under the blocking one: the only way to buffer a batch of
        # publishes and take confirms by callback. Private, so absent from pika's stubs.
        self._async: Channel = self.channel._impl  # type: ignore[attr-defined]
        self.channel.exchange_declare(exchange, "topic", durable=True)
        self.exchange = exchange
        self.next_tag = 1
        self.outstanding: dict[int, int] = {}  # delivery tag -> index in the batch
        self.confirmed: set[int] = set()  # indices the broker acked (nacked ones go out again)
        self.returned: set[int] = set()  # indices of work events no queue took
        self._keys: dict[int, tuple[str, str | None]] = {}  # index -> (routing key, message id)
        self._bounced: set[tuple[str, str | None]] = set()  # (routing key, message id) returned
        ready: list[bool] = []

        def selected(_frame: Any) -> None:
            ready.append(True)
            self.conn.call_later(0, _noop)

        self._async.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected)
        self._async.add_on_return_callback(self._on_return)
        self._wait(lambda: bool(ready), time.monotonic() + 30)
        self.last_used = time.monotonic()

    def _on_return(self, _channel: Any, method: Any, props: Any, _body: bytes) -> None:
        # A return carries no delivery tag: the (routing key, message id) pair names the message.
        self._bounced.add((method.routing_key, props.message_id))

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            tags = [t for t in self.outstanding if t <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        nack = isinstance(method, pika.spec.Basic.Nack)
        for tag in tags:
            index = self.outstanding.pop(tag, None)
            if index is None or nack:
                continue
            if self._keys.get(index) in self._bounced:
                self.returned.add(index)
            else:
                self.confirmed.add(index)
        if not self.outstanding:
            self.conn.call_later(0, _noop)  # wakes process_data_events up now, not at its time limit

    def _wait(self, done: Any, deadline: float) -> None:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendUnavailable("RabbitMQ did not confirm the published messages in time")
            self.conn.process_data_events(time_limit=min(left, 1.0))

    def publish(self, messages: Sequence[Message], todo: list[int], deadline: float) -> None:
        """Publish `messages[i] for i in todo`, then wait for the confirms; see `unconfirmed`, `returned`."""
        self.confirmed, self.returned, self._bounced = set(), set(), set()
        self.outstanding, self._keys = {}, {}
        for i in todo:
            m = messages[i]
            mandatory = is_work(m.routing_key)
            if mandatory:
                self._keys[i] = (m.routing_key, m.message_id)
            props = pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=PERSISTENT,
                message_id=m.message_id,
                type=m.routing_key,
                headers=m.headers or None,
            )
            self.outstanding[self.next_tag] = i
            self.next_tag += 1
            # Buffered, not flushed per message: the frames of the whole batch go out in _wait.
            self._async.basic_publish(self.exchange, m.routing_key, m.body, props, mandatory)
        self._wait(lambda: not self.outstanding, deadline)
        self.last_used = time.monotonic()

    def unconfirmed(self, todo: list[int]) -> list[int]:
        """What of `todo` must go out again (nacked, or unconfirmed when the connection dropped)."""
        return [i for i in todo if i not in self.confirmed and i not in self.returned]

    def close(self) -> None:
        try:
            if self.conn.is_open:
                self.conn.close()
        except CONNECTION_ERRORS:
            pass


def _noop() -> None:
    pass


def topology_names(name: str, policy: RetryPolicy) -> list[str]:
    """The queues behind one logical queue: itself, its DLQ and one retry queue per delay."""
    return [name, f"{name}.dlq", *(retry_queue(name, ms) for ms in _delays_ms(policy))]


def _delays_ms(policy: RetryPolicy) -> list[int]:
    return sorted({round(d * 1000) for d in policy.delays})


def declare_topology(
    ch: Any, exchange: str, name: str, patterns: Sequence[str], policy: RetryPolicy
) -> list[str]:
    """Declare (idempotently) exchange, queue + bindings, DLQ and retry queues; returns the queue names."""
    expiry = {} if policy.expires_s is None else {"x-expires": round(policy.expires_s * 1000)}
    ch.exchange_declare(exchange, "topic", durable=True)
    ch.queue_declare(name, durable=True, arguments=expiry or None)
    for p in patterns:
        ch.queue_bind(name, exchange, routing_key=p)
    ch.queue_declare(f"{name}.dlq", durable=True, arguments=expiry or None)
    for ms in _delays_ms(policy):
        args = {
            "x-message-ttl": ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": name,
            **expiry,
        }
        ch.queue_declare(retry_queue(name, ms), durable=True, arguments=args)
    return topology_names(name, policy)


def retry_queue(name: str, ms: int) -> str:
    """`maestrale.trainer`, 5000 → `maestrale.trainer.retry.5000`."""
    return f"{name}.retry.{ms}"


def header_str(v: Any) -> str:
    """A header value as text (pika returns long strings as bytes)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else ("" if v is None else str(v))


class ConsumeSession:
    """One connection's worth of consuming `name`; `run()` returns when `stop` is set, raises on loss."""

    def __init__(
        self,
        transport: RabbitTransport,
        queue: str,
        callback: Callback,
        handler: str,
        policy: RetryPolicy,
        prefetch: int,
        pool: ThreadPoolExecutor | None,
        stop: threading.Event,
    ) -> None:
        self.queue, self.name = queue, transport.queue_name(queue)
        self.callback, self.handler, self.policy = callback, handler, policy
        self.pool, self.stop = pool, stop
        self.inflight = 0  # touched only on the I/O thread
        self.closed = self.draining = False
        self.conn = transport.connect()
        self.ch = self.conn.channel()
        # Declared on every (re)connection, so a consumer started while RabbitMQ is down, or whose queue
        # was deleted meanwhile, recovers by itself (bindings are made by `declare`, not here).
        declare_topology(self.ch, transport.namespace, self.name, (), policy)
        self.ch.basic_qos(prefetch_count=prefetch)
        # Retry and dead-letter copies are confirmed before the original is acked (see rabbitmq.py).
        self.ch.confirm_delivery()
        self.tag = self.ch.basic_consume(self.name, self._on_message)

    def run(self) -> None:
        while not self.stop.is_set():
            self.conn.process_data_events(time_limit=0.25)
        # Graceful stop: no new deliveries; queued ones go back; running handlers finish and ack.
        self.draining = True
        self.ch.basic_cancel(self.tag)
        while self.inflight > 0:
            self.conn.process_data_events(time_limit=0.25)

    def close(self) -> None:
        self.closed = True
        try:
            if self.conn.is_open:
                self.conn.close()
        except _GONE:
            pass

    def _on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        headers = props.headers or {}
        delivery = Delivery(
            body=body,
            routing_key=header_str(headers.get(H_ROUTING_KEY)) or props.type or method.routing_key,
            attempt=int(headers.get(H_ATTEMPT, 1)),
            redelivered=bool(method.redelivered),
            message_id=props.message_id,
            headers=headers,
        )
        self.inflight += 1
        if self.pool is None:  # inline (concurrency=0): no thread hop, for handlers that take milliseconds
            self._settle(delivery, method.delivery_tag, props, *self._call(delivery))
        else:
            self.pool.submit(self._work, delivery, method.delivery_tag, props)

    def _call(self, delivery: Delivery) -> tuple[BaseException | None, bool]:
        """(error, skipped) of running the callback on `delivery`."""
        if self.draining or self.closed:
            return None, True
        try:
            self.callback(delivery)
        except Exception as exc:
            return exc, False
        except BaseException:
            return None, True  # interpreter shutting down: leave the message to RabbitMQ
        return None, False

    def _work(self, delivery: Delivery, tag: int, props: Any) -> None:
        """Handler thread: run the callback, then hand the outcome to the I/O thread."""
        error, skipped = self._call(delivery)
        # Connection lost: nothing to do, RabbitMQ redelivers the unacked message (idempotent handlers
        # absorb the repeat).
        with contextlib.suppress(*_GONE):
            self.conn.add_callback_threadsafe(
                functools.partial(self._settle, delivery, tag, props, error, skipped)
            )

    def _settle(
        self, delivery: Delivery, tag: int, props: Any, error: BaseException | None, skipped: bool
    ) -> None:
        """I/O thread: ack, requeue, retry or dead-letter."""
        self.inflight -= 1
        if self.closed:
            return
        try:
            if skipped:
                self.ch.basic_nack(tag, requeue=True)
            elif error is None:
                self.ch.basic_ack(tag)
            else:
                self._fail(delivery, tag, props, error)
        except _GONE as exc:
            log.debug("could not settle delivery %s on %s: %r", tag, self.name, exc)

    def _fail(self, delivery: Delivery, tag: int, props: Any, error: BaseException) -> None:
        headers = dict(props.headers or {})
        text = error_text(error)
        permanent = is_permanent(error)
        if permanent or delivery.attempt >= self.policy.max_attempts:
            target = f"{self.name}.dlq"
            headers.update(
                {
                    H_ATTEMPT: delivery.attempt,
                    H_ERROR: text,
                    H_ERROR_TYPE: type(error).__name__,
                    H_HANDLER: self.handler,
                    H_QUEUE: self.queue,
                    H_ROUTING_KEY: delivery.routing_key,
                    H_FAILED_AT: datetime.now(UTC).isoformat(),
                }
            )
            log.warning("dead-lettered %s from %s after %d attempt(s)%s: %s", props.message_id, self.name,
                        delivery.attempt, " (permanent error: not retried)" * permanent, text)  # fmt: skip
        else:
            target = retry_queue(self.name, round(self.policy.delay(delivery.attempt) * 1000))
            headers.update(
                {H_ATTEMPT: delivery.attempt + 1, H_ROUTING_KEY: delivery.routing_key, H_ERROR: text}
            )
        copy = pika.BasicProperties(
            content_type=props.content_type,
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=props.message_id,
            type=props.type,
            headers=headers,
        )
        try:
            # mandatory: a missing retry/dead-letter queue must not swallow the message silently
            self.ch.basic_publish("", target, delivery.body, copy, mandatory=True)
        except (NackError, UnroutableError) as exc:
            log.error("could not move %s to %s (%r); requeued", props.message_id, target, exc)
            self.ch.basic_nack(tag, requeue=True)
            return
        self.ch.basic_ack(tag)
