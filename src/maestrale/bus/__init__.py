"""The event bus: typed CloudEvents over RabbitMQ (or in-process), at least once, with retries and DLQs.

>>> from maestrale.bus import CloudEvent, Consumer, get_transport
>>> bus = get_transport("memory://")  # or amqp://user:pass@rabbitmq:5672/vhost

Names load on first use, so `import maestrale.bus` never imports pika or SQLAlchemy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {
    "CloudEvent": "maestrale.bus.events",
    "MalformedEvent": "maestrale.bus.events",
    "parse_event": "maestrale.bus.events",
    "EVENT_TYPES": "maestrale.bus.schemas",
    "Transport": "maestrale.bus.transport",
    "Message": "maestrale.bus.transport",
    "RetryPolicy": "maestrale.bus.transport",
    "DeadLetter": "maestrale.bus.transport",
    "get_transport": "maestrale.bus.transport",
    "Consumer": "maestrale.bus.consumer",
    "already_processed": "maestrale.platform.ledger",
    "mark_processed": "maestrale.bus.consumer",
    "OutboxRelay": "maestrale.bus.relay",
}
__all__ = [
    "EVENT_TYPES",
    "CloudEvent",
    "Consumer",
    "DeadLetter",
    "MalformedEvent",
    "Message",
    "OutboxRelay",
    "RetryPolicy",
    "Transport",
    "already_processed",
    "get_transport",
    "mark_processed",
    "parse_event",
]

if TYPE_CHECKING:
    from maestrale.bus.consumer import Consumer, mark_processed
    from maestrale.bus.events import CloudEvent, MalformedEvent, parse_event
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.schemas import EVENT_TYPES
    from maestrale.bus.transport import DeadLetter, Message, RetryPolicy, Transport, get_transport
    from maestrale.platform.ledger import already_processed


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maestrale.bus' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
