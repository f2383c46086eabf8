"""Which queue consumes which event: the one table publishers and consumers share.

>>> from maestrale.bus.topology import queues_for
>>> [q.name for q in queues_for("maestrale.train.requested")]
['training']
>>> queues_for("maestrale.model.promoted")  # a notification: whoever listens declares its own queue
()

Two kinds of events travel on the bus. *Work* (`train.requested`, `prediction.logged`,
`actual.logged`) must be done by someone: each has a durable queue here, named after its consumer.
A publisher declares that queue, with the consumer's retry policy, before it publishes such an
event, so a request made before any worker ever ran waits in the queue instead of being dropped by
the topic exchange; and a work event that still reaches no queue is not counted as sent
(`Unroutable`). *Notifications* (`model.promoted`, `train.completed`, …) are fan-out: a consumer
that was not running does not need them (a model server also polls its alias), so they have no
entry and may reach no queue.

The consumers (`maestrale worker`, `maestrale monitor run`) declare the same queues with the same
arguments from this table: RabbitMQ refuses a re-declaration whose arguments differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from maestrale.bus.transport import RetryPolicy, topic_matches


@dataclass(frozen=True, slots=True)
class WorkQueue:
    """A durable queue of work events: `WorkQueue("training", ("maestrale.train.requested",), …)`."""

    name: str  # logical name; `<namespace>.<name>` on the broker
    patterns: tuple[str, ...]  # routing keys (event types) bound to it
    retry: RetryPolicy  # the consumer's policy: publisher and consumer must declare the same queues
    consumer: str  # the command that consumes it, for messages telling the user what to start


TRAINING = WorkQueue(
    "training",
    ("maestrale.train.requested",),
    # Retrying helps against a database or storage blip, not against a bad spec: those fail at once.
    RetryPolicy(max_attempts=3, delays=(5.0, 30.0)),
    "maestrale worker",
)
MONITOR = WorkQueue(
    "monitor",
    ("maestrale.prediction.logged", "maestrale.actual.logged"),
    RetryPolicy(),
    "maestrale monitor run",
)
WORK_QUEUES: tuple[WorkQueue, ...] = (TRAINING, MONITOR)


@lru_cache(maxsize=256)
def queues_for(routing_key: str) -> tuple[WorkQueue, ...]:
    """The work queues an event type must reach; empty for a notification."""
    return tuple(q for q in WORK_QUEUES if any(topic_matches(p, routing_key) for p in q.patterns))


def is_work(routing_key: str) -> bool:
    """True when an event of this type must reach a queue to count as sent."""
    return bool(queues_for(routing_key))
