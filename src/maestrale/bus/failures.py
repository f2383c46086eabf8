"""Which failures of a bus handler are permanent (fail at once) and which transient (retry): one rule.

>>> from maestrale.errors import BackendUnavailable, InvalidInput
>>> is_permanent(InvalidInput("spec: unknown field 'estimater'")), is_transient(BackendUnavailable("db down"))
(True, True)
>>> is_permanent(RuntimeError("?")), is_transient(RuntimeError("?"))  # unknown: retried, then dead-lettered
(False, False)

Permanent: the event or what it asks for is wrong, and the same input fails the same way again.
`InvalidInput` and its kinds (`MalformedEvent`, `SpecError`, `DataError`, `InvalidName`) and
`PermanentFailure` (e.g. the training worker's `TrainingFailed`: a bad estimator parameter, a time
limit overrun). A consumer dead-letters these on the first attempt, with one log line.

Transient: the outside world failed and a later attempt may succeed: `BackendUnavailable`
(database, blob storage, broker, server), connection and time-out errors, and the database
driver's operational errors. Retried by the queue's `RetryPolicy`, then dead-lettered.

Anything else (a bug, an unexpected library error) is retried like a transient error by a consumer,
since it cannot tell. Code that knows its work is deterministic decides otherwise: the training
worker fails a training at once unless `is_transient`, because a fit that raised once raises again
on the same spec and data.
"""

from __future__ import annotations

from maestrale.errors import BackendUnavailable, InvalidInput, MaestraleError

# Transient errors of optional libraries, matched by class name so that none has to be imported:
# SQLAlchemy's database errors, and the connection errors of httpx, botocore, azure-core and pika.
_TRANSIENT_NAMES = frozenset(
    {
        "OperationalError", "InterfaceError", "DisconnectionError",  # sqlalchemy.exc / DB-API
        "TransportError", "TimeoutException",  # httpx
        "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",  # botocore
        "ServiceRequestError", "ServiceResponseError",  # azure.core
        "AMQPConnectionError", "AMQPChannelError", "ConnectionClosed",  # pika
    }
)  # fmt: skip


class PermanentFailure(MaestraleError):
    """A failure that retrying cannot fix, though the input was well-formed (a fit that cannot run)."""

    status_code = 422
    code = "permanent_failure"


def is_permanent(exc: BaseException) -> bool:
    """True when a handler must not be retried on this error (see the module docstring)."""
    return isinstance(exc, InvalidInput | PermanentFailure)


def is_transient(exc: BaseException) -> bool:
    """True when the error came from the outside world, so a later attempt may succeed."""
    if isinstance(exc, BackendUnavailable | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | PermissionError):
        return True  # disk, socket and network trouble; a missing file stays missing
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)
