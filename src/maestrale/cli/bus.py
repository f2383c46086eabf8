"""Bus commands: `maestrale bus dlq list|replay` and `maestrale bus relay`.

The broker is MAESTRALE_BROKER_URL (or --broker); queues live under the namespace
MAESTRALE_BUS_NAMESPACE (or --namespace, default `maestrale`).
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from maestrale.cli.output import JsonFlag, fmt_time, note, print_json, say, table

if TYPE_CHECKING:
    from maestrale.bus.transport import Transport

bus_app = typer.Typer(help="The event bus: dead-letter queues and the outbox relay.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter queues: what failed, why, and replay.", no_args_is_help=True)

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker", envvar="MAESTRALE_BROKER_URL", help="Broker URL, e.g. amqp://user:pass@host/vhost."
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace", help="Exchange and queue-name prefix [default: MAESTRALE_BUS_NAMESPACE or maestrale]."
    ),
]


def _transport(broker: str | None, namespace: str | None) -> Transport:
    from maestrale.bus.transport import get_transport
    from maestrale.config import load_settings

    settings = load_settings(broker_url=broker)
    url = settings.broker_url
    if url.startswith("memory:"):
        note("MAESTRALE_BROKER_URL is memory://: the in-process bus of this command only (set amqp://...)")
    return get_transport(url, namespace=namespace or settings.bus_namespace)


@dlq_app.command("list")
def dlq_list(
    queue: Annotated[
        str | None, typer.Argument(help="Queue (consumer) name; all queues when omitted.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most letters shown per queue.")] = 100,
    broker: BrokerOpt = None,
    namespace: NamespaceOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Show dead letters (type, id, error, handler, attempts) without consuming them.

    Example: maestrale bus dlq list trainer --json
    """
    from maestrale.bus.events import event_summary

    bus = _transport(broker, namespace)
    try:
        names = [queue] if queue else bus.queues()
        letters = [d for name in names for d in bus.dead_letters(name, limit)]
    finally:
        bus.close()
    rows = []
    for d in letters:
        summary = event_summary(d.body)
        rows.append(
            {
                "queue": d.queue,
                "type": summary["type"] or d.routing_key,
                "id": summary["id"] or d.message_id,
                "subject": summary["subject"],
                "error": d.error,
                "error_type": d.error_type,
                "handler": d.handler,
                "attempts": d.attempts,
                "failed_at": d.failed_at,
            }
        )
    if json_output:
        print_json(rows)
        return
    if not rows:
        say(f"no dead letters in {', '.join(names) if names else 'any queue'}")
        return
    table(
        None,
        ["queue", "type", "id", "error", "handler", "attempts", "failed"],
        [
            (
                r["queue"],
                r["type"],
                r["id"],
                r["error"],
                r["handler"],
                r["attempts"],
                fmt_time(r["failed_at"]),
            )
            for r in rows
        ],
        no_wrap=["id"],
    )


@dlq_app.command("replay")
def dlq_replay(
    queue: Annotated[str, typer.Argument(help="Queue (consumer) name whose dead letters to replay.")],
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Replay at most this many.")] = None,
    broker: BrokerOpt = None,
    namespace: NamespaceOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Move dead letters back into their queue with a fresh attempt count (fix the cause first).

    Example: maestrale bus dlq replay trainer --limit 10
    """
    bus = _transport(broker, namespace)
    try:
        moved = bus.replay(queue, limit)
    finally:
        bus.close()
    if json_output:
        print_json({"queue": queue, "replayed": moved})
    else:
        say(f"replayed {moved} dead letter(s) into {queue}")


def relay(
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between polls.")] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1000, help="Events per batch.")] = 500,
    once: Annotated[bool, typer.Option("--once", help="Publish what is pending, then exit.")] = False,
    broker: BrokerOpt = None,
    namespace: NamespaceOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """Publish the registry's outbox (MAESTRALE_DATABASE_URL) to the bus until stopped (Ctrl-C, SIGTERM).

    Example: MAESTRALE_BROKER_URL=amqp://maestrale:secret@rabbitmq/prod maestrale bus relay
    """
    from maestrale.bus.relay import OutboxRelay
    from maestrale.config import load_settings

    settings = load_settings()
    assert settings.database_url  # filled by the Settings defaults
    bus = _transport(broker, namespace)
    outbox = OutboxRelay(settings.database_url, bus, batch_size=batch_size)
    try:
        if once:
            while outbox.run_once() == batch_size:
                pass
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            note(f"relaying the outbox to {bus!r}; Ctrl-C to stop")
            outbox.run(stop, interval)
    finally:
        bus.close()
    if json_output:
        print_json({"published": outbox.published})
    else:
        say(f"published {outbox.published} event(s)")


def register(app: typer.Typer) -> None:
    """Attach `maestrale bus ...` to the root app."""
    bus_app.add_typer(dlq_app, name="dlq")
    bus_app.command("relay")(relay)
    app.add_typer(bus_app, name="bus")
