"""`maestrale worker` and the bus mode of `maestrale train`: the training service from the shell."""

from __future__ import annotations

import signal
import threading
from collections.abc import Set
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maestrale.cli.output import error, note, print_json, say, table

if TYPE_CHECKING:
    from maestrale.training.requests import TrainingRecord
    from maestrale.training.spec import TrainingSpec


def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Trainings run at once in this process.")] = 1,
    relay: Annotated[
        bool, typer.Option(help="Also relay the outbox to the bus (one relay per database).")
    ] = False,
) -> None:
    """Train what arrives on `maestrale.train.requested` (competing consumers: run N of these).

    Example: `MAESTRALE_BROKER_URL=amqp://guest:guest@rabbitmq/ maestrale worker --concurrency 1`
    """
    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transport import get_transport
    from maestrale.config import load_settings
    from maestrale.training.worker import TrainingWorker

    settings = load_settings()
    if settings.broker_url.startswith("memory"):
        note("MAESTRALE_BROKER_URL is memory://: this worker only sees requests made in this process")
    transport = get_transport(settings.broker_url, settings.bus_namespace)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())  # finish the running training, then exit
    from maestrale.training.worker import declare_training_queue

    declare_training_queue(transport)
    if relay:
        threading.Thread(
            target=OutboxRelay(settings.database_url, transport).run, args=(stop,), daemon=True
        ).start()
    w = TrainingWorker(settings, transport, concurrency=concurrency)
    from maestrale.training.worker import warm_up

    warm_up()  # before saying we consume: the first request must not pay the imports
    broker = settings.broker_url.split("@")[-1]  # never print credentials
    say(f"worker {w.worker_id} consuming {settings.bus_namespace}.training on {broker}")
    w.run(stop)


def _progress_table(records: list[TrainingRecord], reused: Set[str] = frozenset()) -> list[list[Any]]:
    def nmae(r: TrainingRecord) -> str:
        v = (r.metrics or {}).get("nmae")
        return "-" if v is None else f"{v:.4g}"

    def version(r: TrainingRecord) -> str:
        return "-" if r.version is None else f"{r.version} (unchanged)" if r.id in reused else str(r.version)

    return [[r.name, r.status, version(r), nmae(r), r.attempts, (r.error or "")[:80]] for r in records]


def reused_requests(database_url: str, records: list[TrainingRecord]) -> set[str]:
    """Ids of the completed requests that got an existing version back (their version has another
    request's `request_id` tag: the worker trained nothing for them)."""
    from maestrale.registry.store import SqlStore

    store = SqlStore(database_url)
    done = [r for r in records if r.status == "completed" and r.version is not None]
    return {r.id for r in done if store.get_version(f"{r.name}:{r.version}").tags.get("request_id") != r.id}


def train_via_bus(
    members: list[TrainingSpec],
    *,
    reason: str | None,
    wait: bool,
    as_json: bool,
    timeout: float | None,
    reuse: bool = False,
) -> None:
    """Submit one request per member (with their events, atomically) and optionally wait for them.

    `reuse`: the workers give back a version that already has a member's spec, data and code.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from maestrale.bus.relay import OutboxRelay
    from maestrale.bus.transport import get_transport
    from maestrale.cli.train_requests import no_worker_notice
    from maestrale.config import load_settings
    from maestrale.training.requests import TrainingRequests
    from maestrale.training.service import EmbeddedService, wait_for

    settings = load_settings()
    assert settings.database_url
    requests = TrainingRequests(settings.database_url, settings.auto_upgrade)
    embedded = settings.broker_url.startswith("memory")
    service = EmbeddedService(settings).start() if embedded else None
    try:
        records = requests.submit_members(
            members, fleet=len(members) > 1, reason=reason or "manual", reuse_unchanged=reuse
        )
        transport = get_transport(settings.broker_url, settings.bus_namespace)
        if not embedded:  # publish now rather than waiting for the cluster's relay (duplicates are absorbed)
            OutboxRelay(settings.database_url, transport).run_once()
        # said at once, not after --timeout (embedded, the worker is this process's own)
        if wait and not embedded and (idle := no_worker_notice(settings, transport)):
            note(idle)
        if not (wait or embedded):
            if as_json:
                print_json([r.model_dump(mode="json") for r in records])
            else:
                for r in records:
                    say(f"queued {r.name}: request {r.id}")
            return
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            disable=as_json, transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task(f"training {len(records)} model(s)", total=len(records))

            def show(current: list[TrainingRecord]) -> None:
                running = [r.name for r in current if r.status == "started"]
                label = f"training: {', '.join(running[:3])}" if running else "waiting for a worker"
                bar.update(task, completed=sum(r.done for r in current), description=label)

            done = wait_for(requests, [r.id for r in records], timeout=timeout, on_change=show)
    finally:
        if service is not None:
            service.stop()
    reused = reused_requests(settings.database_url, done)
    if as_json:
        print_json([r.model_dump(mode="json") | {"reused": r.id in reused} for r in done])
    else:
        cols = ["model", "status", "version", "nMAE", "attempts", "error"]
        table(None, cols, _progress_table(done, reused))
        for r in done:
            if r.id in reused:
                note(f"{r.name}: not trained, {r.name}:{r.version} has the same spec, data and code "
                     "(--force trains anyway)")  # fmt: skip
    failed = [r for r in done if r.status != "completed"]
    for r in failed:
        error(f"{r.name}: {r.status}{': ' + r.error if r.error else ''}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach `worker` to the root app."""
    app.command("worker")(worker)
